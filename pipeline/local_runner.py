"""Runs the pipeline on this machine with LocalDagRunner.

Layout of the output directory ``OUT``:
``OUT/pipeline_root/`` (artifacts), ``OUT/metadata.sqlite`` (ML Metadata),
``OUT/serving/accent/<version>/`` (pushed models, TF Serving's layout) and
``OUT/quarantine.csv`` (the entries set aside, with reasons) and ``OUT/.lock``
(the lock a run holds on ``OUT``, see ``pipeline.output_lock``).

A run holds the lock on ``OUT`` from start to end, so no two runs write to one
ML Metadata store or serving path. Holding it, a run first cleans up after an
earlier run that died (``recover_interrupted_runs``).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
from pathlib import Path

import tensorflow as tf
from tfx import v1 as tfx
from tfx.dsl.compiler import compiler
from tfx.proto.orchestration import pipeline_pb2

from components import corpus, pusher
from components.errors import InvalidArgumentError
from pipeline import configs, output_lock, run_summary
from pipeline.pipeline import UNCACHED_COMPONENT_IDS, create_pipeline

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where a local run writes, under one output directory."""

    output_dir: Path

    @property
    def pipeline_root(self) -> Path:
        """Artifacts of every component."""
        return self.output_dir / "pipeline_root"

    @property
    def metadata_path(self) -> Path:
        """The SQLite ML Metadata store."""
        return self.output_dir / "metadata.sqlite"

    @property
    def serving_model_dir(self) -> Path:
        """TF Serving's model base path: one integer version per push."""
        return self.output_dir / "serving" / configs.SERVING_MODEL_NAME

    @property
    def quarantine_path(self) -> Path:
        """The quarantine report of the latest run."""
        return self.output_dir / "quarantine.csv"

    @property
    def lock_path(self) -> Path:
        """The lock a run holds on the output directory."""
        return output_lock.lock_path(self.output_dir)


def recover_interrupted_runs(
    layout: OutputLayout, lock: output_lock.OutputLock
) -> list[run_summary.InterruptedExecution]:
    """Cleans up after earlier runs on this output directory that died before they ended.

    With the lock held no other run is alive, so every execution still RUNNING
    in ML Metadata was left by a dead run. Each is reported, its
    ``beam-temp*`` directories are removed (its outputs were never published),
    and it is marked CANCELED with a note naming the run that left it (see
    ``run_summary.mark_interrupted``). Temporary directories of pushes that
    did not finish are removed from the serving path.

    Args:
        layout: The output directory.
        lock: The lock on it, held by the caller.

    Returns:
        The executions found interrupted.

    Raises:
        ValueError: If the lock is not on this output directory.
    """
    if lock.output_dir != layout.output_dir:
        raise ValueError(f"The lock is on {lock.output_dir}, not on {layout.output_dir}")
    pusher.remove_stale_temporary_dirs(str(layout.serving_model_dir))
    if not layout.metadata_path.exists():
        return []
    store = run_summary.open_store(str(layout.metadata_path))
    interrupted = run_summary.interrupted_executions(
        store, owner_alive=False, pipeline_root=str(layout.pipeline_root), unfinished_only=True
    )
    if not interrupted:
        return []
    left_by = lock.previous_owner.describe() if lock.previous_owner else "an earlier run"
    found = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
    for execution in interrupted:
        logger.warning(
            "%s (execution %d of run %s) was left RUNNING by %s, which ended abnormally: "
            "marking it CANCELED (interrupted)",
            execution.component_id,
            execution.execution_id,
            execution.run_id,
            left_by,
        )
        for beam_temp_dir in execution.beam_temp_dirs:
            logger.warning("Removing %s, Beam temporary files of the interrupted step", beam_temp_dir)
            tf.io.gfile.rmtree(beam_temp_dir)
    run_summary.mark_interrupted(
        store,
        [execution.execution_id for execution in interrupted],
        f"left RUNNING by {left_by}, which ended abnormally; marked CANCELED by PID {os.getpid()} at {found}",
    )
    return interrupted


def run_local(corpus_dir: str, output_dir: str, settings: configs.PipelineSettings) -> OutputLayout:
    """Runs the whole pipeline with LocalDagRunner.

    A second run with the same output directory reuses the cached outputs of
    unchanged steps, and pushes a new version only when its model is blessed.

    Args:
        corpus_dir: The OpenSLR-83 style corpus.
        output_dir: The output directory ``OUT``.
        settings: Settings of the run; without Beam arguments, it runs with
            ``configs.LOCAL_BEAM_PIPELINE_ARGS``.

    Returns:
        The output layout.

    Raises:
        InvalidArgumentError: If the corpus directory does not exist.
        output_lock.OutputLockedError: If another run holds the lock on the output directory.
    """
    layout = OutputLayout(Path(output_dir).resolve())
    with output_lock.hold(layout.output_dir) as lock:
        recover_interrupted_runs(layout, lock)
        _run_locked(Path(corpus_dir), layout, settings)
    return layout


def _run_locked(corpus_dir: Path, layout: OutputLayout, settings: configs.PipelineSettings) -> None:
    """Runs the pipeline; the caller holds the lock on the output directory."""
    corpus_path = corpus_dir.resolve()
    if not corpus_path.is_dir():
        raise InvalidArgumentError(f"Corpus directory {str(corpus_dir)!r} does not exist")
    layout.pipeline_root.mkdir(parents=True, exist_ok=True)
    logger.info("Fingerprinting corpus %s", corpus_path)
    fingerprint = corpus.corpus_fingerprint(str(corpus_path))
    if not settings.beam_pipeline_args:
        settings = dataclasses.replace(settings, beam_pipeline_args=configs.LOCAL_BEAM_PIPELINE_ARGS)
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=str(layout.pipeline_root),
        corpus_dir=str(corpus_path),
        corpus_fingerprint=fingerprint,
        serving_model_dir=str(layout.serving_model_dir),
        settings=settings,
        quarantine_copy_path=str(layout.quarantine_path),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(layout.metadata_path)
        ),
    )
    logger.info("Running pipeline %s into %s", configs.PIPELINE_NAME, layout.output_dir)
    tfx.orchestration.LocalDagRunner().run_with_ir(compile_pipeline(pipeline))


def compile_pipeline(pipeline: tfx.dsl.Pipeline) -> pipeline_pb2.Pipeline:
    """Compiles the pipeline to TFX's IR, with the cache off for the steps that must always run.

    TFX 1.16 has no per-step cache switch in its DSL, so it is set in the IR.

    Args:
        pipeline: The pipeline of ``create_pipeline``.

    Returns:
        The IR that LocalDagRunner runs.
    """
    pipeline_ir = compiler.Compiler().compile(pipeline)
    for node in pipeline_ir.nodes:
        if node.pipeline_node.node_info.id in UNCACHED_COMPONENT_IDS:
            node.pipeline_node.execution_options.caching_options.enable_cache = False
    return pipeline_ir
