"""Runs the pipeline on this machine with LocalDagRunner.

Layout of the output directory ``OUT``:
``OUT/pipeline_root/`` (artifacts), ``OUT/metadata.sqlite`` (ML Metadata),
``OUT/serving/accent/<version>/`` (pushed models, TF Serving's layout) and
``OUT/quarantine.csv`` (the entries set aside, with reasons).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from tfx import v1 as tfx
from tfx.dsl.compiler import compiler
from tfx.proto.orchestration import pipeline_pb2

from components import corpus
from pipeline import configs
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


def run_local(corpus_dir: str, output_dir: str, settings: configs.PipelineSettings) -> OutputLayout:
    """Runs the whole pipeline with LocalDagRunner.

    A second run with the same output directory reuses the cached outputs of
    unchanged steps, and pushes a new version only when its model is blessed.

    Args:
        corpus_dir: The OpenSLR-83 style corpus.
        output_dir: The output directory ``OUT``.
        settings: Settings of the run.

    Returns:
        The output layout.

    Raises:
        ValueError: If the corpus directory does not exist.
    """
    corpus_path = Path(corpus_dir).resolve()
    if not corpus_path.is_dir():
        raise ValueError(f"Corpus directory {corpus_dir!r} does not exist")
    layout = OutputLayout(Path(output_dir).resolve())
    layout.pipeline_root.mkdir(parents=True, exist_ok=True)
    logger.info("Fingerprinting corpus %s", corpus_path)
    fingerprint = corpus.corpus_fingerprint(str(corpus_path))
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
    return layout


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
