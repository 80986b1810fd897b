"""The summary printed at the end of a run, read from ML Metadata and the run's artifacts."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import evaluation, features
from components.embedding import beam_job

# ML Metadata's names for execution states, for the report.
_EXECUTION_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


@dataclasses.dataclass
class ComponentRun:
    """One component's execution in a pipeline run."""

    component_id: str
    state: str
    outputs: dict[str, list[metadata_store_pb2.Artifact]]


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    """Opens the SQLite ML Metadata store of a local run, read-only in spirit."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def latest_run(store: metadata_store.MetadataStore) -> dict[str, ComponentRun]:
    """Returns the executions of the latest pipeline run, by component id.

    Args:
        store: The ML Metadata store.

    Returns:
        Component id to its execution; empty if the store has no run.
    """
    run_contexts = store.get_contexts_by_type("pipeline_run")
    if not run_contexts:
        return {}
    run_context = max(run_contexts, key=lambda context: (context.create_time_since_epoch, context.id))
    runs: dict[str, ComponentRun] = {}
    for execution in sorted(store.get_executions_by_context(run_context.id), key=lambda item: item.id):
        node_contexts = [
            context
            for context in store.get_contexts_by_execution(execution.id)
            if store.get_context_types_by_id([context.type_id])[0].name == "node"
        ]
        component_id = node_contexts[0].name.split(".")[-1] if node_contexts else str(execution.id)
        outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
        output_events = [
            event
            for event in store.get_events_by_execution_ids([execution.id])
            if event.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
        ]
        artifacts = {
            artifact.id: artifact
            for artifact in store.get_artifacts_by_id([e.artifact_id for e in output_events])
        }
        for event in output_events:
            key = event.path.steps[0].key if event.path.steps else "output"
            outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        runs[component_id] = ComponentRun(
            component_id=component_id,
            state=_EXECUTION_STATES.get(execution.last_known_state, str(execution.last_known_state)),
            outputs=outputs,
        )
    return runs


def _read_json(path: str) -> dict[str, Any]:
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as json_file:
        return json.load(json_file)


def _metric_values(evaluation_uri: str) -> dict[str, float]:
    """Reads the overall-slice metrics of the candidate model from an Evaluator output."""
    values: dict[str, float] = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for metric_key_and_value in slice_metrics.metric_keys_and_values:
            key = metric_key_and_value.key
            if key.is_diff or (key.model_name and key.model_name != "candidate"):
                continue
            value = metric_key_and_value.value
            if not value.HasField("double_value"):
                continue
            name = key.name
            if key.HasField("sub_key") and key.sub_key.HasField("class_id"):
                name = f"{name}[class {key.sub_key.class_id.value}]"
            values[name] = value.double_value.value
    return values


def _validation_failures(evaluation_uri: str) -> list[str]:
    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    for slice_failure in result.metric_validations_per_slice:
        for failure in slice_failure.failures:
            against = "change against the latest blessed model" if failure.metric_key.is_diff else "value"
            value = failure.metric_value.double_value.value
            threshold = text_format.MessageToString(failure.metric_threshold, as_one_line=True)
            failures.append(f"{failure.metric_key.name} {against} {value:.4f} fails {threshold}")
    if result.missing_thresholds:
        failures.append(f"missing thresholds: {len(result.missing_thresholds)}")
    return failures


def format_summary(metadata_path: str, class_names: list[str] | tuple[str, ...]) -> str:
    """Builds the end-of-run summary of the latest run recorded in ML Metadata.

    Args:
        metadata_path: The run's SQLite ML Metadata file.
        class_names: The label vocabulary, to name per-class metrics.

    Returns:
        Human-readable lines: components and their state, clips and patches
        per split and class, quarantine, metrics, blessing and pushed path.
    """
    runs = latest_run(open_store(metadata_path))
    if not runs:
        return "No pipeline run recorded in ML Metadata."
    lines = [
        "",
        "Run summary",
        "Components: " + ", ".join(f"{run.component_id} ({run.state})" for run in runs.values()),
    ]

    eval_patch_counts: dict[str, int] = {}
    embedding = runs.get("EmbeddingGen")
    if embedding and embedding.outputs.get("quarantine_report"):
        report_uri = embedding.outputs["quarantine_report"][0].uri
        summary = _read_json(os.path.join(report_uri, beam_job.SUMMARY_FILE))
        for kind in ("clips", "patches"):
            for split, per_class in sorted(summary.get(kind, {}).items()):
                counts = ", ".join(f"{name} {count}" for name, count in sorted(per_class.items()))
                lines.append(f"{kind.capitalize()} in {split} ({sum(per_class.values())}): {counts}")
        eval_patch_counts = summary.get("patches", {}).get(features.EVAL_SPLIT, {})
        quarantined = embedding.outputs["quarantine_report"][0].custom_properties.get("num_quarantined")
        if quarantined is not None:
            lines.append(f"Quarantined entries: {quarantined.int_value} (see quarantine.csv)")

    evaluator = runs.get("Evaluator")
    if evaluator and evaluator.outputs.get("evaluation"):
        evaluation_uri = evaluator.outputs["evaluation"][0].uri
        metrics = _metric_values(evaluation_uri)
        shown = {name: value for name, value in metrics.items() if "[class" not in name}
        lines.append(
            "Metrics (eval split): "
            + ", ".join(
                f"{name} {value:.4f}" for name, value in sorted(shown.items()) if not math.isnan(value)
            )
        )
        per_class = []
        for class_id, class_name in enumerate(class_names):
            value = metrics.get(f"{evaluation.PER_CLASS_AUC_METRIC_NAME}[class {class_id}]")
            if eval_patch_counts.get(class_name) and value is not None and not math.isnan(value):
                per_class.append(f"{class_name} {value:.3f}")
        if per_class:
            lines.append("Per-class AUC (classes present in eval): " + ", ".join(per_class))
    if evaluator and evaluator.outputs.get("blessing"):
        blessing = evaluator.outputs["blessing"][0]
        blessed = blessing.custom_properties.get("blessed")
        if blessed is not None and blessed.int_value == 1:
            lines.append("Blessed: yes (every threshold passed)")
        else:
            failures = _validation_failures(evaluator.outputs["evaluation"][0].uri)
            lines.append("Blessed: no: " + ("; ".join(failures) if failures else "validation failed"))

    pusher = runs.get("Pusher")
    if pusher and pusher.outputs.get("pushed_model"):
        pushed = pusher.outputs["pushed_model"][0].custom_properties
        if pushed.get("pushed") and pushed["pushed"].int_value == 1:
            already = " (the same model was already served there)" if pushed.get("already_served") else ""
            lines.append(f"Pushed: {pushed['pushed_destination'].string_value}{already}")
        else:
            lines.append("Pushed: no")
    else:
        lines.append("Pushed: no (the model was not blessed, so the Pusher did not run)")
    return "\n".join(lines)
