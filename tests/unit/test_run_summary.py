"""The run summary and the next run tell the truth about a run that was killed mid-step."""

import logging
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import features
from pipeline import configs, local_runner, output_lock, run_summary
from pipeline.pipeline import COMPONENT_IDS, CORPUS_INDEX_GEN_ID, EMBEDDING_GEN_ID
from tests.lock_holders import start_holder, stop_holder

_RUNNING = metadata_store_pb2.Execution.RUNNING
_COMPLETE = metadata_store_pb2.Execution.COMPLETE


def _record_run(layout: local_runner.OutputLayout, run_id: str, states: dict[str, int]) -> dict[str, int]:
    """Records a pipeline run in ML Metadata as TFX does: an execution per step, in run and node contexts."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(layout.metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    context_types = {
        name: store.put_context_type(metadata_store_pb2.ContextType(name=name), can_add_fields=True)
        for name in ("pipeline", "pipeline_run", "node")
    }
    pipeline_context = metadata_store_pb2.Context(
        type_id=context_types["pipeline"], name=configs.PIPELINE_NAME
    )
    existing = store.get_context_by_type_and_name("pipeline", configs.PIPELINE_NAME)
    if existing is not None:
        pipeline_context = existing
    run_context = metadata_store_pb2.Context(type_id=context_types["pipeline_run"], name=run_id)
    execution_ids = {}
    for component_id, state in states.items():
        execution_type = store.put_execution_type(
            metadata_store_pb2.ExecutionType(name=f"components.{component_id}"), can_add_fields=True
        )
        node_context = store.get_context_by_type_and_name("node", f"{configs.PIPELINE_NAME}.{component_id}")
        if node_context is None:
            node_context = metadata_store_pb2.Context(
                type_id=context_types["node"], name=f"{configs.PIPELINE_NAME}.{component_id}"
            )
        execution = metadata_store_pb2.Execution(type_id=execution_type, last_known_state=state)
        execution_id, _, context_ids = store.put_execution(
            execution, artifact_and_events=[], contexts=[pipeline_context, run_context, node_context]
        )
        pipeline_context.id, run_context.id = context_ids[0], context_ids[1]
        execution_ids[component_id] = execution_id
    return execution_ids


def _beam_temp(layout: local_runner.OutputLayout, component_id: str, execution_id: int) -> Path:
    """A Beam temporary directory inside a step's output, as a killed Beam job leaves it."""
    directory = (
        layout.pipeline_root / component_id / "examples" / str(execution_id) / "Split-train" / "beam-temp-abc"
    )
    directory.mkdir(parents=True)
    (directory / "shard-00000").write_bytes(b"partial")
    return directory


def _execution(layout: local_runner.OutputLayout, execution_id: int) -> metadata_store_pb2.Execution:
    return run_summary.open_store(str(layout.metadata_path)).get_executions_by_id([execution_id])[0]


def _killed_run(layout: local_runner.OutputLayout) -> tuple[int, dict[str, int], Path]:
    """A run SIGKILLed inside EmbeddingGen: a stale lock record, a RUNNING execution, Beam temp files."""
    holder = start_holder(layout.output_dir)
    execution_ids = _record_run(layout, "run-1", {CORPUS_INDEX_GEN_ID: _COMPLETE, EMBEDDING_GEN_ID: _RUNNING})
    beam_temp = _beam_temp(layout, EMBEDDING_GEN_ID, execution_ids[EMBEDDING_GEN_ID])
    holder.kill()
    holder.wait()
    return holder.pid, execution_ids, beam_temp


def test_a_step_left_running_by_a_dead_run_is_reported_interrupted_not_running(tmp_path: Path) -> None:
    layout = local_runner.OutputLayout(tmp_path)
    _, _, beam_temp = _killed_run(layout)
    summary = run_summary.format_summary(str(layout.metadata_path), features.DEFAULT_CLASS_NAMES)
    assert "EmbeddingGen (interrupted)" in summary and "(running)" not in summary
    assert "CorpusIndexGen (complete)" in summary
    assert "Interrupted run run-1: EmbeddingGen" in summary
    with_files = run_summary.format_summary(
        str(layout.metadata_path), features.DEFAULT_CLASS_NAMES, pipeline_root=str(layout.pipeline_root)
    )
    assert str(beam_temp) in with_files


def test_a_step_of_a_live_run_is_reported_running(tmp_path: Path) -> None:
    layout = local_runner.OutputLayout(tmp_path)
    holder = start_holder(layout.output_dir)
    try:
        _record_run(layout, "run-1", {EMBEDDING_GEN_ID: _RUNNING})
        summary = run_summary.format_summary(str(layout.metadata_path), features.DEFAULT_CLASS_NAMES)
    finally:
        stop_holder(holder)
    assert "EmbeddingGen (running)" in summary and "nterrupted" not in summary


def test_the_next_run_reports_the_dead_run_cancels_its_steps_and_removes_their_beam_temp_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layout = local_runner.OutputLayout(tmp_path)
    pid, execution_ids, beam_temp = _killed_run(layout)
    stale_push = layout.serving_model_dir / ".tmp-1700000000-0123abcd"
    (stale_push / "variables").mkdir(parents=True)
    with caplog.at_level(logging.WARNING), output_lock.hold(layout.output_dir) as lock:
        interrupted = local_runner.recover_interrupted_runs(layout, lock)
        assert f"PID {pid}" in caplog.text and "ended abnormally" in caplog.text
        assert [execution.component_id for execution in interrupted] == [EMBEDDING_GEN_ID]
        assert EMBEDDING_GEN_ID in caplog.text and str(beam_temp) in caplog.text
        assert not beam_temp.exists() and beam_temp.parent.exists()
        assert not stale_push.exists()
        canceled = _execution(layout, execution_ids[EMBEDDING_GEN_ID])
        assert canceled.last_known_state == metadata_store_pb2.Execution.CANCELED
        note = canceled.custom_properties[run_summary.INTERRUPTED_PROPERTY].string_value
        assert f"PID {pid}" in note
        assert _execution(layout, execution_ids[CORPUS_INDEX_GEN_ID]).last_known_state == _COMPLETE

        # The rerun itself completes; its summary still names the run that was interrupted before it.
        _record_run(layout, "run-2", {CORPUS_INDEX_GEN_ID: _COMPLETE, EMBEDDING_GEN_ID: _COMPLETE})
        summary = run_summary.format_summary(
            str(layout.metadata_path), features.DEFAULT_CLASS_NAMES, pipeline_root=str(layout.pipeline_root)
        )
    assert "EmbeddingGen (complete)" in summary
    assert "Interrupted run run-1: EmbeddingGen" in summary and f"PID {pid}" in summary
    assert "Leftover" not in summary  # Its Beam temporary files are gone.

    # Once reported, an interruption two runs back is not repeated.
    _record_run(layout, "run-3", {CORPUS_INDEX_GEN_ID: _COMPLETE, EMBEDDING_GEN_ID: _COMPLETE})
    assert "Interrupted" not in run_summary.format_summary(
        str(layout.metadata_path), features.DEFAULT_CLASS_NAMES
    )


def test_recovery_without_a_store_or_an_interrupted_run_does_nothing(tmp_path: Path) -> None:
    layout = local_runner.OutputLayout(tmp_path)
    with output_lock.hold(layout.output_dir) as lock:
        assert local_runner.recover_interrupted_runs(layout, lock) == []
        _record_run(layout, "run-1", {EMBEDDING_GEN_ID: _COMPLETE})
        assert local_runner.recover_interrupted_runs(layout, lock) == []


def test_the_summary_lists_the_steps_in_the_order_of_the_pipeline(tmp_path: Path) -> None:
    layout = local_runner.OutputLayout(tmp_path)
    _record_run(layout, "run-1", dict.fromkeys(reversed(COMPONENT_IDS), _COMPLETE))
    summary = run_summary.format_summary(str(layout.metadata_path), features.DEFAULT_CLASS_NAMES)
    components_line = next(line for line in summary.splitlines() if line.startswith("Components: "))
    assert components_line == "Components: " + ", ".join(f"{step} (complete)" for step in COMPONENT_IDS)
