"""The summary printed at the end of a run, read from ML Metadata and the run's artifacts.

It also tells the truth about runs that died mid-step (SIGKILL, out of memory,
power loss). Such a run leaves its current executions RUNNING in ML Metadata
forever, and may leave Beam's ``beam-temp*`` directories inside their output
directories. An execution that is RUNNING while no process holds the output
directory's lock (``pipeline.output_lock``) has no live owner: it is reported
as ``interrupted``, never as running. The next run marks such executions
CANCELED in ML Metadata (``mark_interrupted``), the state TFX itself gives an
execution stopped before it finished, with a note (custom property
``interrupted``) naming the run that left them; the summary reports the
interrupted runs among the latest two runs, so a rerun's summary names the run
it recovered from.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence

import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import artifact_files, evaluation, features
from components.errors import InvalidArgumentError, first_line
from components.model_card import generate
from components.tuner import trials as tuner_trials
from components.web import defaults as web_defaults
from pipeline import output_lock
from pipeline import pipeline as pipeline_definition

# ML Metadata's names for execution states, for the report.
_EXECUTION_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "complete",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}

# The states of an execution that has not finished; with no live owner, it was interrupted.
_UNFINISHED_STATES = (metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.NEW)

INTERRUPTED_STATE = "interrupted"

# The custom property, a note, of an execution that the next run found interrupted and marked CANCELED.
INTERRUPTED_PROPERTY = "interrupted"

# What an interrupted Beam job leaves in its output directories.
BEAM_TEMP_PREFIX = "beam-temp"


@dataclasses.dataclass
class ComponentRun:
    """One component's execution in a pipeline run."""

    component_id: str
    state: str
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    execution_id: int = 0


@dataclasses.dataclass(frozen=True)
class InterruptedExecution:
    """An execution that never finished because the run that owned it died."""

    execution_id: int
    component_id: str
    run_id: str
    # Why it counts as interrupted: the note of the run that found it, or empty if none has yet.
    note: str
    # ``beam-temp*`` directories left in its output directories (found when the pipeline root is known).
    beam_temp_dirs: tuple[str, ...]


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    """Opens the SQLite ML Metadata store of a local run, read-only in spirit."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def _run_contexts(store: metadata_store.MetadataStore) -> list[metadata_store_pb2.Context]:
    """The pipeline runs recorded in the store, latest first."""
    return sorted(
        store.get_contexts_by_type("pipeline_run"),
        key=lambda context: (context.create_time_since_epoch, context.id),
        reverse=True,
    )


def _context_of_type(
    store: metadata_store.MetadataStore, execution_id: int, type_name: str
) -> metadata_store_pb2.Context | None:
    for context in store.get_contexts_by_execution(execution_id):
        if store.get_context_types_by_id([context.type_id])[0].name == type_name:
            return context
    return None


def _component_id(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> str:
    node_context = _context_of_type(store, execution.id, "node")
    return node_context.name.split(".")[-1] if node_context else str(execution.id)


def is_interrupted(execution: metadata_store_pb2.Execution, owner_alive: bool) -> bool:
    """Whether an execution was interrupted: unfinished with no live owner, or so marked by a later run.

    Args:
        execution: An execution.
        owner_alive: Whether a run that may own unfinished executions is alive
            (another process holds the output directory's lock).
    """
    if execution.last_known_state in _UNFINISHED_STATES:
        return not owner_alive
    return (
        execution.last_known_state == metadata_store_pb2.Execution.CANCELED
        and INTERRUPTED_PROPERTY in execution.custom_properties
    )


def latest_run(store: metadata_store.MetadataStore, owner_alive: bool = False) -> dict[str, ComponentRun]:
    """Returns the executions of the latest pipeline run, by component id.

    Args:
        store: The ML Metadata store.
        owner_alive: Whether a run may be writing to the store now; if not, an
            execution still RUNNING was interrupted and is reported so.

    Returns:
        Component id to its execution; empty if the store has no run.
    """
    run_contexts = _run_contexts(store)
    if not run_contexts:
        return {}
    runs: dict[str, ComponentRun] = {}
    for execution in sorted(store.get_executions_by_context(run_contexts[0].id), key=lambda item: item.id):
        component_id = _component_id(store, execution)
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
        if is_interrupted(execution, owner_alive):
            state = INTERRUPTED_STATE
        else:
            state = _EXECUTION_STATES.get(execution.last_known_state, str(execution.last_known_state))
        runs[component_id] = ComponentRun(
            component_id=component_id, state=state, outputs=outputs, execution_id=execution.id
        )
    return runs


def find_beam_temp_dirs(directories: Iterable[str]) -> list[str]:
    """The ``beam-temp*`` directories anywhere below some directories, sorted.

    Args:
        directories: Directories to search; missing ones are skipped.
    """
    found = []
    for directory in directories:
        for root, subdirectories, _ in tf.io.gfile.walk(directory):
            for name in list(subdirectories):
                if name.rstrip("/").startswith(BEAM_TEMP_PREFIX):
                    found.append(os.path.join(root, name.rstrip("/")))
                    subdirectories.remove(name)
    return sorted(found)


def execution_output_dirs(pipeline_root: str, component_id: str, execution_id: int) -> list[str]:
    """The output directories of an execution: ``<pipeline root>/<component>/<output key>/<execution id>``.

    TFX names them so before the execution starts; an execution that never
    finished has its outputs there, unpublished and absent from ML Metadata.

    Args:
        pipeline_root: The pipeline root.
        component_id: The component's id.
        execution_id: The execution's id in ML Metadata.
    """
    component_dir = os.path.join(pipeline_root, component_id)
    if not tf.io.gfile.isdir(component_dir):
        return []
    candidates = (
        os.path.join(component_dir, key.rstrip("/"), str(execution_id))
        for key in tf.io.gfile.listdir(component_dir)
    )
    return sorted(path for path in candidates if tf.io.gfile.isdir(path))


def interrupted_executions(
    store: metadata_store.MetadataStore,
    owner_alive: bool = False,
    pipeline_root: str | None = None,
    unfinished_only: bool = False,
) -> list[InterruptedExecution]:
    """The executions of the store that were interrupted, oldest first.

    Args:
        store: The ML Metadata store.
        owner_alive: Whether a run may be writing to the store now (then no
            unfinished execution counts as interrupted).
        pipeline_root: The pipeline root, to find ``beam-temp*`` directories
            in their outputs; None not to look.
        unfinished_only: Only those still RUNNING or NEW, not those a later
            run already marked CANCELED.

    Returns:
        The interrupted executions.
    """
    states = list(_UNFINISHED_STATES)
    if not unfinished_only:
        states.append(metadata_store_pb2.Execution.CANCELED)
    interrupted = []
    for execution in sorted(store.get_executions(), key=lambda item: item.id):
        if execution.last_known_state not in states or not is_interrupted(execution, owner_alive):
            continue
        component_id = _component_id(store, execution)
        run_context = _context_of_type(store, execution.id, "pipeline_run")
        beam_temp_dirs = (
            find_beam_temp_dirs(execution_output_dirs(pipeline_root, component_id, execution.id))
            if pipeline_root
            else []
        )
        note = execution.custom_properties.get(INTERRUPTED_PROPERTY)
        interrupted.append(
            InterruptedExecution(
                execution_id=execution.id,
                component_id=component_id,
                run_id=run_context.name if run_context else "?",
                note=note.string_value if note else "",
                beam_temp_dirs=tuple(beam_temp_dirs),
            )
        )
    return interrupted


def mark_interrupted(store: metadata_store.MetadataStore, execution_ids: Sequence[int], note: str) -> None:
    """Marks unfinished executions CANCELED, with a note saying why.

    Call it only while no run can own them: holding the output directory's
    lock. CANCELED is the state TFX gives an execution stopped before it
    finished; LocalDagRunner never resumes an earlier run's execution (it
    looks executions up within the current run) and its cache reuses only
    successful ones, so the mark changes nothing but the truth of the record.

    Args:
        store: The ML Metadata store.
        execution_ids: The executions.
        note: Why, e.g. which run left them and when it started.
    """
    executions = store.get_executions_by_id(list(execution_ids))
    for execution in executions:
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties[INTERRUPTED_PROPERTY].string_value = note
    store.put_executions(executions)


def _interruption_lines(
    store: metadata_store.MetadataStore, owner_alive: bool, pipeline_root: str | None
) -> list[str]:
    """Lines on interrupted runs: those still unfinished, and those among the latest two runs."""
    recent_runs = {context.name for context in _run_contexts(store)[:2]}
    shown = [
        execution
        for execution in interrupted_executions(store, owner_alive, pipeline_root)
        if execution.run_id in recent_runs or not execution.note
    ]
    lines = []
    for run_id in dict.fromkeys(execution.run_id for execution in shown):
        in_run = [execution for execution in shown if execution.run_id == run_id]
        notes = "; ".join(dict.fromkeys(execution.note for execution in in_run if execution.note))
        lines.append(
            f"Interrupted run {run_id}: {', '.join(execution.component_id for execution in in_run)} "
            f"never finished ({notes or 'left RUNNING by a run that ended abnormally'})"
        )
    leftovers = [path for execution in shown for path in execution.beam_temp_dirs]
    if leftovers:
        lines.append("Leftover Beam temporary files of interrupted steps: " + ", ".join(leftovers))
    return lines


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


def format_summary(
    metadata_path: str,
    class_names: list[str] | tuple[str, ...],
    pipeline_root: str | None = None,
    corpus_dir: str | None = None,
) -> str:
    """Builds the end-of-run summary of the latest run recorded in ML Metadata.

    An unfinished execution counts as interrupted unless another process holds
    the lock of the output directory, which is the directory of ``metadata_path``.

    Args:
        metadata_path: The run's SQLite ML Metadata file, ``OUT/metadata.sqlite``.
        class_names: The label vocabulary, to name per-class metrics.
        pipeline_root: The pipeline root, to report ``beam-temp*`` directories
            left by interrupted steps; None not to look.
        corpus_dir: The run's corpus, whose clips the web page command offers as examples; None for none.

    Returns:
        Human-readable lines: components and their state, interrupted runs,
        clips and patches per split and class, quarantine, the Tuner's trials
        and chosen hyperparameters (when it ran), metrics, blessing,
        pushed path, the command that starts the web page on the pushed model
        and, last, the model card's path.
    """
    owner_alive = output_lock.is_held_by_another_process(os.path.dirname(os.path.abspath(metadata_path)))
    store = open_store(metadata_path)
    runs = latest_run(store, owner_alive=owner_alive)
    if not runs:
        return "No pipeline run recorded in ML Metadata."
    embedding = runs.get(pipeline_definition.EMBEDDING_GEN_ID)
    embedding_summary = _embedding_summary(embedding)
    eval_patch_counts = embedding_summary.patches.get(features.EVAL_SPLIT, {}) if embedding_summary else {}
    evaluator = runs.get(pipeline_definition.EVALUATOR_ID)
    lines = [
        "",
        "Run summary",
        _components_line(runs),
        *_interruption_lines(store, owner_alive, pipeline_root),
        *_embedding_lines(embedding, embedding_summary),
        *_tuner_lines(runs.get(pipeline_definition.TUNER_ID)),
        *_metric_lines(evaluator, class_names, eval_patch_counts),
        *_blessing_lines(evaluator),
        _push_line(runs),
        *_web_page_lines(runs, corpus_dir),
        *_model_card_lines(runs),
    ]
    return "\n".join(lines)


def _components_line(runs: dict[str, ComponentRun]) -> str:
    """Each step of the run and its state, in the pipeline's order, then any step it does not list."""
    order = {
        component_id: position for position, component_id in enumerate(pipeline_definition.COMPONENT_IDS)
    }
    ordered = sorted(runs.values(), key=lambda run: order.get(run.component_id, len(order)))
    return "Components: " + ", ".join(f"{run.component_id} ({run.state})" for run in ordered)


def _embedding_summary(embedding: ComponentRun | None) -> artifact_files.EmbeddingSummary | None:
    """The clip and patch counts of the embedding step's QuarantineReport, if it wrote them."""
    if not embedding or not embedding.outputs.get("quarantine_report"):
        return None
    report_uri = embedding.outputs["quarantine_report"][0].uri
    if not artifact_files.EmbeddingSummary.exists(report_uri):
        return None
    return artifact_files.EmbeddingSummary.read(report_uri)


def _embedding_lines(
    embedding: ComponentRun | None, summary: artifact_files.EmbeddingSummary | None
) -> list[str]:
    """Clips and patches per split and class, and the quarantined count."""
    if not embedding or not embedding.outputs.get("quarantine_report"):
        return []
    lines = []
    if summary:
        for kind, counts in (
            (artifact_files.CLIPS_KIND, summary.clips),
            (artifact_files.PATCHES_KIND, summary.patches),
        ):
            for split, per_class in sorted(counts.items()):
                class_counts = ", ".join(f"{name} {count}" for name, count in sorted(per_class.items()))
                lines.append(f"{kind.capitalize()} in {split} ({sum(per_class.values())}): {class_counts}")
    quarantined = embedding.outputs["quarantine_report"][0].custom_properties.get("num_quarantined")
    if quarantined is not None:
        lines.append(f"Quarantined entries: {quarantined.int_value} (see quarantine.csv)")
    return lines


def _tuner_lines(tuner: ComponentRun | None) -> list[str]:
    """The Tuner's trials table and the hyperparameters it chose, when the run had a Tuner that wrote them."""
    if not tuner or not tuner.outputs.get(tuner_trials.TUNER_RESULTS_KEY):
        return []
    try:
        table = tuner_trials.read_trials_table(tuner.outputs[tuner_trials.TUNER_RESULTS_KEY][0].uri)
        best_artifacts = tuner.outputs.get(tuner_trials.BEST_HYPERPARAMETERS_KEY)
        best = tuner_trials.read_best_hyperparameters(best_artifacts[0].uri) if best_artifacts else None
        return tuner_trials.format_trials_lines(table, best)
    except (InvalidArgumentError, tf.errors.OpError) as error:
        return [f"Tuner trials: unreadable ({first_line(error)})"]


def _metric_lines(
    evaluator: ComponentRun | None, class_names: Sequence[str], eval_patch_counts: Mapping[str, int]
) -> list[str]:
    """The overall metrics, and the per-class AUC of the classes present in eval."""
    if not evaluator or not evaluator.outputs.get("evaluation"):
        return []
    metrics = _metric_values(evaluator.outputs["evaluation"][0].uri)
    shown = {name: value for name, value in metrics.items() if "[class" not in name}
    lines = [
        "Metrics (eval split): "
        + ", ".join(f"{name} {value:.4f}" for name, value in sorted(shown.items()) if not math.isnan(value))
    ]
    per_class = []
    for class_id, class_name in enumerate(class_names):
        value = metrics.get(f"{evaluation.PER_CLASS_AUC_METRIC_NAME}[class {class_id}]")
        if eval_patch_counts.get(class_name) and value is not None and not math.isnan(value):
            per_class.append(f"{class_name} {value:.3f}")
    if per_class:
        lines.append("Per-class AUC (classes present in eval): " + ", ".join(per_class))
    return lines


def _blessing_lines(evaluator: ComponentRun | None) -> list[str]:
    """Whether the model was blessed, and if not, which thresholds it failed."""
    if not evaluator or not evaluator.outputs.get("blessing"):
        return []
    blessed = evaluator.outputs["blessing"][0].custom_properties.get("blessed")
    if blessed is not None and blessed.int_value == 1:
        return ["Blessed: yes (every threshold passed)"]
    failures = _validation_failures(evaluator.outputs["evaluation"][0].uri)
    return ["Blessed: no: " + ("; ".join(failures) if failures else "validation failed")]


def _push_line(runs: dict[str, ComponentRun]) -> str:
    """Where the model was pushed, or why it was not."""
    pusher = runs.get(pipeline_definition.PUSHER_ID)
    if pusher and pusher.outputs.get("pushed_model"):
        pushed = pusher.outputs["pushed_model"][0].custom_properties
        if pushed.get("pushed") and pushed["pushed"].int_value == 1:
            already = " (the same model was already served there)" if pushed.get("already_served") else ""
            return f"Pushed: {pushed['pushed_destination'].string_value}{already}"
        return "Pushed: no"
    if any(run.state == INTERRUPTED_STATE for run in runs.values()):
        return "Pushed: no (the run was interrupted before the Pusher)"
    return "Pushed: no (the model was not blessed, so the Pusher did not run)"


def _web_page_lines(runs: dict[str, ComponentRun], corpus_dir: str | None) -> list[str]:
    """The one command that serves the pushed model and starts the web page on it, after a push."""
    pusher = runs.get(pipeline_definition.PUSHER_ID)
    if not pusher or not pusher.outputs.get("pushed_model"):
        return []
    pushed = pusher.outputs["pushed_model"][0].custom_properties
    if not pushed.get("pushed") or pushed["pushed"].int_value != 1:
        return []
    model_base_path = os.path.dirname(pushed["pushed_destination"].string_value.rstrip("/"))
    command = [_console_script(), "web", "--model-base-path", model_base_path]
    if corpus_dir:
        command += ["--examples", corpus_dir]
    page_url = f"http://{web_defaults.DEFAULT_HOST}:{web_defaults.DEFAULT_PORT}/"
    return [f"Web page: {shlex.join(command)}  (serves the model; the page is on {page_url})"]


def _console_script() -> str:
    """``accent-pipeline`` beside this Python (``.venv/bin/accent-pipeline``), relative when below here."""
    script = os.path.join(os.path.dirname(sys.executable), "accent-pipeline")
    if not os.path.exists(script):
        return "accent-pipeline"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else script


def _model_card_lines(runs: dict[str, ComponentRun]) -> list[str]:
    """Where the model card is (its ``model_card.html``), on its own line, when the run wrote one."""
    card_run = runs.get(pipeline_definition.MODEL_CARD_GENERATOR_ID)
    if not card_run or not card_run.outputs.get("model_card"):
        return []
    card_dir = card_run.outputs["model_card"][0].uri
    return [f"Model card: {os.path.join(card_dir, generate.HTML_FILENAME)}"]
