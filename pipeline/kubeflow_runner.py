"""Compiles the pipeline for Kubeflow Pipelines v2 and submits it.

``.yaml`` output is a KFP PipelineSpec, which ``kfp.Client().create_run_from_pipeline_package``
accepts; with PVC mounts, KFP's Kubernetes platform spec follows it as a second YAML document,
the layout the KFP SDK compiler writes when kfp-kubernetes' ``mount_pvc`` is used. ``.json``
output is a Vertex AI PipelineJob (PipelineSpec plus runtime config).
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline import configs

logger = logging.getLogger(__name__)

# A PersistentVolumeClaim's name is a DNS-1123 subdomain.
_CLAIM_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CLAIM_NAME_MAX_LENGTH = 253


class KubeflowSubmitError(RuntimeError):
    """A submission that did not reach the Kubeflow Pipelines API, or that the API refused."""


def default_corpus_dir(pipeline_root: str) -> str:
    """Returns the corpus location used when none is given: ``<pipeline root>/corpus``."""
    return pipeline_root.rstrip("/") + "/corpus"


def parse_pvc_mount(text: str) -> tuple[str, str]:
    """Parses one ``CLAIM:MOUNT_PATH`` value of ``--pvc-mount``.

    Args:
        text: The claim name and the absolute mount path, separated by the first colon.

    Returns:
        The claim name and the normalised mount path.

    Raises:
        ValueError: If the value has no colon, or the claim name or mount path is invalid.
    """
    claim_name, separator, mount_path = text.partition(":")
    if not separator:
        raise ValueError(f"expected CLAIM:MOUNT_PATH, e.g. accent-model-store:/models, not {text!r}")
    check_pvc_mounts({claim_name: mount_path})
    return claim_name, posixpath.normpath(mount_path)


def check_pvc_mounts(pvc_mounts: Mapping[str, str]) -> None:
    """Checks PVC mounts (claim name -> mount path) as Kubernetes would.

    Args:
        pvc_mounts: Claim name to absolute mount path inside every step's container.

    Raises:
        ValueError: If a claim name is not a DNS-1123 subdomain, a mount path is not
            absolute, is ``/`` or holds a colon, or two claims share a mount path.
    """
    claims_by_path: dict[str, str] = {}
    for claim_name, mount_path in pvc_mounts.items():
        if len(claim_name) > _CLAIM_NAME_MAX_LENGTH or not _CLAIM_NAME.fullmatch(claim_name):
            raise ValueError(
                f"PVC name {claim_name!r} is not a Kubernetes object name "
                "(lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
            )
        if not mount_path.startswith("/"):
            raise ValueError(f"mount path of {claim_name!r} must be absolute, not {mount_path!r}")
        if ":" in mount_path:
            raise ValueError(f"mount path {mount_path!r} of {claim_name!r} must not contain ':'")
        normalised = posixpath.normpath(mount_path)
        if normalised == "/":
            raise ValueError(f"{claim_name!r} cannot be mounted over the container's root directory")
        if normalised in claims_by_path:
            raise ValueError(
                f"{claim_name!r} and {claims_by_path[normalised]!r} are both mounted at {normalised}"
            )
        claims_by_path[normalised] = claim_name


def kubernetes_platform_spec(
    pipeline_spec: Mapping[str, Any], pvc_mounts: Mapping[str, str]
) -> dict[str, Any]:
    """Builds KFP's Kubernetes platform spec that mounts the PVCs into every container step.

    Only ``container`` executors run as pods; importer and resolver executors have
    no container to mount into, so they get no entry.

    Args:
        pipeline_spec: The compiled PipelineSpec (``deploymentSpec.executors`` is read).
        pvc_mounts: Claim name to absolute mount path.

    Returns:
        ``{"platforms": {"kubernetes": {"deploymentSpec": {"executors": {label: {"pvcMount": [...]}}}}}}``,
        each executor's entry a ``KubernetesExecutorConfig`` of kfp-kubernetes in JSON form.

    Raises:
        ValueError: If the mounts are invalid (see ``check_pvc_mounts``).
    """
    check_pvc_mounts(pvc_mounts)
    mounts = [
        {"constant": claim_name, "mountPath": posixpath.normpath(mount_path)}
        for claim_name, mount_path in pvc_mounts.items()
    ]
    executors = {
        label: {"pvcMount": [dict(mount) for mount in mounts]}
        for label, executor in pipeline_spec["deploymentSpec"]["executors"].items()
        if "container" in executor
    }
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def compile_kubeflow(
    output_path: str,
    image: str,
    pipeline_root: str,
    settings: configs.PipelineSettings,
    corpus_dir: str | None = None,
    serving_base_path: str | None = None,
    corpus_fingerprint: str | None = None,
    quarantine_copy_path: str | None = None,
    pvc_mounts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Compiles ``create_pipeline(...)`` with KubeflowV2DagRunner.

    Args:
        output_path: ``.yaml``/``.yml`` for a KFP PipelineSpec, ``.json`` for a Vertex PipelineJob.
        image: The pipeline image (see the Dockerfile); every step runs in it.
        pipeline_root: Object store URI of the artifacts (``gs://``, ``s3://``, ``minio://``).
        settings: Settings of the run; ``beam_pipeline_args`` reach every Beam step.
        corpus_dir: The corpus URI or path; defaults to ``<pipeline root>/corpus``.
        serving_base_path: Where the Pusher writes; defaults to ``<pipeline root>/serving/accent``.
        corpus_fingerprint: Cache key of the corpus. Defaults to the compile
            time, so a recompiled pipeline always indexes the corpus again.
        quarantine_copy_path: Where EmbeddingGen also copies the quarantine report;
            defaults to ``<pipeline root>/quarantine.csv``, ``""`` for no copy.
        pvc_mounts: Claim name to mount path: PersistentVolumeClaims that every
            container step mounts (YAML output only), written as KFP's Kubernetes
            platform spec in a second YAML document.

    Returns:
        The compiled PipelineSpec (YAML) or PipelineJob (JSON) that was written,
        without the platform spec.

    Raises:
        ValueError: If the output suffix is neither YAML nor JSON, if PVC mounts are
            asked of a Vertex PipelineJob, or if a PVC mount is invalid.
    """
    suffix = Path(output_path).suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"Output must end in .yaml, .yml or .json, not {output_path!r}")
    if pvc_mounts and suffix == ".json":
        raise ValueError(
            "Vertex AI Pipelines cannot mount PersistentVolumeClaims: PVC mounts need a "
            "Kubeflow Pipelines cluster and a .yaml output"
        )
    if pvc_mounts:
        check_pvc_mounts(pvc_mounts)

    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    root = pipeline_root.rstrip("/")
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=root,
        corpus_dir=corpus_dir or default_corpus_dir(root),
        corpus_fingerprint=corpus_fingerprint or f"compiled-{int(time.time())}",
        serving_model_dir=serving_base_path or f"{root}/serving/{configs.SERVING_MODEL_NAME}",
        settings=settings,
        quarantine_copy_path=(
            f"{root}/quarantine.csv" if quarantine_copy_path is None else quarantine_copy_path
        ),
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
        documents = [document]
        if pvc_mounts:
            documents.append(kubernetes_platform_spec(document, pvc_mounts))
        text = yaml.safe_dump_all(documents, sort_keys=False)
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    Path(output_path).write_text(text)
    logger.info(
        "Wrote %s (%s%s)",
        output_path,
        "Vertex PipelineJob" if suffix == ".json" else "KFP PipelineSpec",
        f", PVC mounts {dict(pvc_mounts)}" if pvc_mounts else "",
    )
    return document


def _connection_failure(error: Exception) -> str:
    """The cause of a urllib3 connection failure, without urllib3's object reprs."""
    reason = getattr(error, "reason", None) or error
    return re.sub(r"^<[^>]*>:\s*", "", str(reason))


def _refusal(error: Any) -> str:
    """Status and message of an error answer of the KFP API (its JSON ``error_message`` if any)."""
    body = error.body.decode("utf-8", errors="replace") if isinstance(error.body, bytes) else error.body
    message = (body or "").strip()
    try:
        answer = json.loads(message)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        message = str(answer.get("error_message") or answer.get("message") or message)
    status = f"HTTP {error.status} {error.reason}" if error.status else str(error.reason)
    return f"{status}: {message[:500]}" if message else status


def submit_kubeflow(
    package_path: str,
    host: str,
    experiment: str | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
) -> str:
    """Submits a compiled PipelineSpec (and its platform spec) to a Kubeflow Pipelines endpoint.

    ``kfp.Client.create_run_from_pipeline_package`` reads every YAML document of
    the package: the first is the PipelineSpec, the others form the platform spec,
    and both go in the run's ``pipeline_spec``.

    Args:
        package_path: The YAML written by ``compile_kubeflow``.
        host: The KFP API endpoint, e.g. ``http://localhost:8080`` after a port-forward.
        experiment: Experiment name, looked up and created if missing; KFP's default when None.
        namespace: Namespace of the experiment on a multi-user KFP; None on a single-user one.
        service_account: Kubernetes service account of the run's pods; KFP's default when None.

    Returns:
        The id of the new run.

    Raises:
        FileNotFoundError: If the package does not exist.
        KubeflowSubmitError: If the API cannot be reached or refuses a request.
    """
    if not Path(package_path).is_file():
        raise FileNotFoundError(f"No compiled pipeline at {package_path}")
    import kfp
    import kfp_server_api
    import urllib3

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="This client only works with", category=FutureWarning)
            client = kfp.Client(host=host, namespace=namespace or "kubeflow")
        run = client.create_run_from_pipeline_package(
            package_path,
            arguments={},
            experiment_name=experiment,
            namespace=namespace,
            service_account=service_account,
        )
    except urllib3.exceptions.HTTPError as error:
        raise KubeflowSubmitError(
            f"Cannot reach the Kubeflow Pipelines API at {host}: {_connection_failure(error)}"
        ) from error
    except kfp_server_api.ApiException as error:
        raise KubeflowSubmitError(
            f"Kubeflow Pipelines at {host} refused the request: {_refusal(error)}"
        ) from error
    except TimeoutError as error:  # kfp's health check gives up after five answers that were errors.
        raise KubeflowSubmitError(f"Kubeflow Pipelines at {host} is not healthy: {error}") from error
    logger.info("Submitted run %s to %s", run.run_id, host)
    return run.run_id
