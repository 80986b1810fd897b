"""Compiles the pipeline for Kubeflow Pipelines v2 and submits it.

``.yaml`` output is a KFP PipelineSpec, which ``kfp.Client().create_run_from_pipeline_package``
accepts; ``.json`` output is a Vertex AI PipelineJob (PipelineSpec plus runtime config).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml
from tfx import v1 as tfx

from pipeline import configs
from pipeline.pipeline import create_pipeline

logger = logging.getLogger(__name__)


def default_corpus_dir(pipeline_root: str) -> str:
    """Returns the corpus location used when none is given: ``<pipeline root>/corpus``."""
    return pipeline_root.rstrip("/") + "/corpus"


def compile_kubeflow(
    output_path: str,
    image: str,
    pipeline_root: str,
    settings: configs.PipelineSettings,
    corpus_dir: str | None = None,
    serving_base_path: str | None = None,
    corpus_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Compiles ``create_pipeline(...)`` with KubeflowV2DagRunner.

    Args:
        output_path: ``.yaml``/``.yml`` for a KFP PipelineSpec, ``.json`` for a Vertex PipelineJob.
        image: The pipeline image (see the Dockerfile); every step runs in it.
        pipeline_root: Bucket URI (or cluster path) for the artifacts.
        settings: Settings of the run; ``beam_pipeline_args`` reach every Beam step.
        corpus_dir: The corpus URI; defaults to ``<pipeline root>/corpus``.
        serving_base_path: Where the Pusher writes; defaults to ``<pipeline root>/serving/accent``.
        corpus_fingerprint: Cache key of the corpus. Defaults to the compile
            time, so a recompiled pipeline always indexes the corpus again.

    Returns:
        The compiled document that was written.

    Raises:
        ValueError: If the output suffix is neither YAML nor JSON.
    """
    suffix = Path(output_path).suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"Output must end in .yaml, .yml or .json, not {output_path!r}")
    root = pipeline_root.rstrip("/")
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=root,
        corpus_dir=corpus_dir or default_corpus_dir(root),
        corpus_fingerprint=corpus_fingerprint or f"compiled-{int(time.time())}",
        serving_model_dir=serving_base_path or f"{root}/serving/{configs.SERVING_MODEL_NAME}",
        settings=settings,
        quarantine_copy_path=f"{root}/quarantine.csv",
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
    )
    pipeline_job = runner.run(pipeline, write_out=False)
    if suffix == ".json":
        document = pipeline_job
        text = json.dumps(pipeline_job, indent=2, sort_keys=True)
    else:
        document = dict(pipeline_job["pipelineSpec"])
        document["defaultPipelineRoot"] = root
        text = yaml.safe_dump(document, sort_keys=False)
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    Path(output_path).write_text(text)
    logger.info(
        "Wrote %s (%s)", output_path, "Vertex PipelineJob" if suffix == ".json" else "KFP PipelineSpec"
    )
    return document


def submit_kubeflow(package_path: str, host: str, experiment: str | None = None) -> str:
    """Submits a compiled PipelineSpec to a Kubeflow Pipelines endpoint.

    Args:
        package_path: The YAML written by ``compile_kubeflow``.
        host: The KFP API endpoint, e.g. ``http://localhost:8080`` after a port-forward.
        experiment: Experiment name; KFP's default when None.

    Returns:
        The id of the new run.
    """
    import kfp

    client = kfp.Client(host=host)
    run = client.create_run_from_pipeline_package(package_path, arguments={}, experiment_name=experiment)
    logger.info("Submitted run %s to %s", run.run_id, host)
    return run.run_id
