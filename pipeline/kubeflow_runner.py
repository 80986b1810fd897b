"""Compiles the pipeline for a self-hosted Kubeflow Pipelines 2.x or Vertex AI, and submits it.

The ``kfp`` target (the default) writes a PipelineSpec that KFP's open-source
backend runs: container executors only, schema 2.1 parameters, the project's
step entrypoint on the launcher's local paths, resources on every step. With
PVC mounts, KFP's Kubernetes platform spec follows it as a second YAML
document, the layout the KFP SDK compiler writes when kfp-kubernetes'
``mount_pvc`` is used; ``kfp.Client().create_run_from_pipeline_package``
reads both. The ``vertex`` target writes the same spec for Vertex AI
Pipelines, as a PipelineJob (PipelineSpec plus runtime config) for ``.json``.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.errors import AccentPipelineError, InvalidArgumentError
from components.yamnet import defaults as yamnet_defaults
from pipeline import configs, kubeflow_step

logger = logging.getLogger(__name__)

# The command of every step's container: the project's entrypoint (pipeline/kubeflow_step.py).
STEP_COMMAND = ("python", "-m", "pipeline.kubeflow_step")

# A PersistentVolumeClaim's name is a DNS-1123 subdomain.
_CLAIM_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CLAIM_NAME_MAX_LENGTH = 253


class KubeflowSubmitError(AccentPipelineError, RuntimeError):
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
        InvalidArgumentError: If the value has no colon, or the claim name or mount path is invalid.
    """
    claim_name, separator, mount_path = text.partition(":")
    if not separator:
        raise InvalidArgumentError(
            f"expected CLAIM:MOUNT_PATH, e.g. accent-model-store:/models, not {text!r}"
        )
    check_pvc_mounts({claim_name: mount_path})
    return claim_name, posixpath.normpath(mount_path)


def check_pvc_mounts(pvc_mounts: Mapping[str, str]) -> None:
    """Checks PVC mounts (claim name -> mount path) as Kubernetes would.

    Args:
        pvc_mounts: Claim name to absolute mount path inside every step's container.

    Raises:
        InvalidArgumentError: If a claim name is not a DNS-1123 subdomain, a mount path is not
            absolute, is ``/`` or holds a colon, or two claims share a mount path.
    """
    claims_by_path: dict[str, str] = {}
    for claim_name, mount_path in pvc_mounts.items():
        if len(claim_name) > _CLAIM_NAME_MAX_LENGTH or not _CLAIM_NAME.fullmatch(claim_name):
            raise InvalidArgumentError(
                f"PVC name {claim_name!r} is not a Kubernetes object name "
                "(lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
            )
        if not mount_path.startswith("/"):
            raise InvalidArgumentError(f"mount path of {claim_name!r} must be absolute, not {mount_path!r}")
        if ":" in mount_path:
            raise InvalidArgumentError(f"mount path {mount_path!r} of {claim_name!r} must not contain ':'")
        normalised = posixpath.normpath(mount_path)
        if normalised == "/":
            raise InvalidArgumentError(
                f"{claim_name!r} cannot be mounted over the container's root directory"
            )
        if normalised in claims_by_path:
            raise InvalidArgumentError(
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
        InvalidArgumentError: If the mounts are invalid (see ``check_pvc_mounts``).
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


def parse_step_resources(text: str) -> tuple[str, configs.StepResources]:
    """Parses one ``STEP=CPU[/CPU_LIMIT],MEMORY_GB[/MEMORY_LIMIT_GB]`` value of ``--resources``.

    Memory is in gigabytes, written as a number with an optional ``G`` (``8``, ``8G``,
    ``0.5G``); a request without a limit is also the limit.

    Args:
        text: e.g. ``EmbeddingGen=8,16G`` or ``Trainer=2/4,8G/16G``.

    Returns:
        The step id and its resources.

    Raises:
        InvalidArgumentError: If the value is malformed or names no step of the pipeline.
    """
    from pipeline.pipeline import COMPONENT_IDS

    step, separator, amounts = text.partition("=")
    cpu, comma, memory = amounts.partition(",")
    if not separator or not comma:
        raise InvalidArgumentError(f"expected STEP=CPU,MEMORY_GB, e.g. EmbeddingGen=8,16G, not {text!r}")
    if step not in COMPONENT_IDS:
        raise InvalidArgumentError(
            f"{step!r} is no step of the pipeline; the steps are {', '.join(COMPONENT_IDS)}"
        )
    try:
        cpu_request, cpu_limit = _request_and_limit(cpu, unit="")
        memory_request, memory_limit = _request_and_limit(memory, unit="G")
        return step, configs.StepResources(cpu_request, cpu_limit, memory_request, memory_limit)
    except ValueError as error:
        raise InvalidArgumentError(f"{text!r}: {error}") from error


def _request_and_limit(text: str, unit: str) -> tuple[float, float]:
    """``REQUEST[/LIMIT]`` as two numbers, each with an optional unit suffix."""
    request, _, limit = text.partition("/")
    values = [
        float(value.strip().removesuffix(unit) if unit else value) for value in (request, limit or request)
    ]
    return values[0], values[1]


def _is_on_mount(path: str, mount_paths: list[str]) -> bool:
    normalised = posixpath.normpath(path)
    return any(normalised == mount or normalised.startswith(mount + "/") for mount in mount_paths)


def check_step_paths(
    target: str, pipeline_root: str, pvc_mounts: Mapping[str, str], paths_by_flag: Mapping[str, str]
) -> None:
    """Checks that every step can open the paths it is given, which are parameters, not artifacts.

    Nothing stages a parameter: on a self-hosted KFP with a ``minio://`` or ``s3://`` root a step
    opens a path only on a mounted PVC (a ``gs://`` path, too, when the root is ``gs://``); on
    Vertex AI Pipelines only ``gs://`` paths.

    Args:
        target: ``kfp`` or ``vertex``.
        pipeline_root: The pipeline root URI.
        pvc_mounts: Claim name -> mount path of every step.
        paths_by_flag: The flag that sets a path -> the path; empty paths are not checked.

    Raises:
        InvalidArgumentError: Naming the first path no step could open, and the flag that fixes it.
    """
    mount_paths = [posixpath.normpath(path) for path in pvc_mounts.values()]
    for flag, path in paths_by_flag.items():
        if not path:
            continue
        if target == "vertex":
            if not path.startswith("gs://"):
                raise InvalidArgumentError(
                    f"{flag} {path!r}: a Vertex AI Pipelines step opens gs:// paths only; give {flag} gs://..."
                )
        elif not (
            _is_on_mount(path, mount_paths)
            or (path.startswith("gs://") and pipeline_root.startswith("gs://"))
        ):
            mounts = ", ".join(mount_paths) or "none"
            raise InvalidArgumentError(
                f"{flag} is {path!r}, which a step on Kubeflow Pipelines cannot open: it is a parameter, "
                f"and nothing stages it. Give {flag} a path on a --pvc-mount (mounted now: {mounts}), "
                f"e.g. --pvc-mount accent-pipeline-root:/pipeline-root and {flag} /pipeline-root/..."
            )


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
    target: str | None = None,
    step_resources: Mapping[str, configs.StepResources] | None = None,
) -> dict[str, Any]:
    """Compiles ``create_pipeline(...)`` for a self-hosted Kubeflow Pipelines 2.x or for Vertex AI.

    The spec is TFX's KubeflowV2DagRunner output (pipeline spec schema 2.1), adapted by
    ``adapt_pipeline_spec``.

    Args:
        output_path: ``.yaml``/``.yml`` for a PipelineSpec, ``.json`` for a Vertex PipelineJob.
        image: The pipeline image (see the Dockerfile); every step runs in it.
        pipeline_root: Object store URI of the artifacts (``minio://``, ``s3://``, ``gs://``).
        settings: Settings of the run. ``beam_pipeline_args``, if any, reach every step and
            replace the default of multi-threading with one worker per requested CPU.
        corpus_dir: The corpus; defaults to ``<pipeline root>/corpus``.
        serving_base_path: Where the Pusher writes; defaults to ``<pipeline root>/serving/accent``.
        corpus_fingerprint: Cache key of the corpus. Defaults to the compile
            time, so a recompiled pipeline always indexes the corpus again.
        quarantine_copy_path: Where EmbeddingGen also copies the quarantine report;
            defaults to ``<pipeline root>/quarantine.csv``, ``""`` for no copy.
        pvc_mounts: Claim name -> mount path: PersistentVolumeClaims that every
            container step mounts (``kfp`` only), written as KFP's Kubernetes
            platform spec in a second YAML document.
        target: ``kfp`` or ``vertex``; by default ``vertex`` for ``.json`` output,
            else ``configs.KUBEFLOW_TARGET``.
        step_resources: Step id -> pod resources, over ``configs.KUBEFLOW_STEP_RESOURCES``.

    Returns:
        The compiled PipelineSpec (YAML) or PipelineJob (JSON) that was written,
        without the platform spec.

    Raises:
        InvalidArgumentError: If the output suffix, the target, the root or a PVC mount is
            invalid, or a step could not open a path it is given.
    """
    suffix = Path(output_path).suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise InvalidArgumentError(f"Output must end in .yaml, .yml or .json, not {output_path!r}")
    target = target or ("vertex" if suffix == ".json" else configs.KUBEFLOW_TARGET)
    if target not in configs.KUBEFLOW_TARGETS:
        raise InvalidArgumentError(
            f"target must be one of {', '.join(configs.KUBEFLOW_TARGETS)}, not {target!r}"
        )
    if target == "kfp" and suffix == ".json":
        raise InvalidArgumentError(
            "A self-hosted Kubeflow Pipelines takes the YAML PipelineSpec: write .yaml"
        )
    if pvc_mounts and target == "vertex":
        raise InvalidArgumentError(
            "Vertex AI Pipelines cannot mount PersistentVolumeClaims: PVC mounts need a "
            "Kubeflow Pipelines cluster and a .yaml output"
        )
    pvc_mounts = dict(pvc_mounts or {})
    check_pvc_mounts(pvc_mounts)
    root = pipeline_root.rstrip("/")
    schemes = ("gs://",) if target == "vertex" else tuple(kubeflow_step.LAUNCHER_LOCAL_PREFIXES)
    if not root.startswith(schemes):
        raise InvalidArgumentError(
            f"The pipeline root of target {target!r} must start with {' or '.join(schemes)}, not {root!r}"
        )
    corpus_dir = corpus_dir or default_corpus_dir(root)
    serving_base_path = serving_base_path or f"{root}/serving/{configs.SERVING_MODEL_NAME}"
    if quarantine_copy_path is None:
        quarantine_copy_path = f"{root}/quarantine.csv"
    check_step_paths(
        target,
        root,
        pvc_mounts,
        {
            "--corpus": corpus_dir,
            "--serving-base-path": serving_base_path,
            "--quarantine-copy": quarantine_copy_path,
            "--yamnet": "" if _is_remote_handle(settings.yamnet_handle) else settings.yamnet_handle,
        },
    )

    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=root,
        corpus_dir=corpus_dir,
        corpus_fingerprint=corpus_fingerprint or f"compiled-{int(time.time())}",
        serving_model_dir=serving_base_path,
        settings=settings,
        quarantine_copy_path=quarantine_copy_path,
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True
        ),
    )
    pipeline_job = runner.run(pipeline, write_out=False)
    resources = {**configs.KUBEFLOW_STEP_RESOURCES, **dict(step_resources or {})}
    adapt_pipeline_spec(pipeline_job["pipelineSpec"], target, bool(settings.beam_pipeline_args), resources)
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
        "Wrote %s (%s for %s%s)",
        output_path,
        "PipelineJob" if suffix == ".json" else "PipelineSpec",
        "Vertex AI Pipelines" if target == "vertex" else "Kubeflow Pipelines",
        f", PVC mounts {pvc_mounts}" if pvc_mounts else "",
    )
    return document


def _is_remote_handle(handle: str) -> bool:
    """Whether a YAMNet handle is a hub URL or ``offline``, rather than a path a step must open."""
    return handle == yamnet_defaults.OFFLINE_WEIGHTS or handle.startswith(("http://", "https://"))


def adapt_pipeline_spec(
    pipeline_spec: dict[str, Any],
    target: str,
    has_beam_args: bool,
    resources_by_step: Mapping[str, configs.StepResources],
) -> None:
    """Adapts TFX's compiled PipelineSpec to what KFP's open-source backend (or Vertex) runs.

    * Every container runs the project's entrypoint, ``pipeline.kubeflow_step``, which on
      ``kfp`` works on the launcher's local paths (``--local-artifact-paths``).
    * Every container gets CPU and memory: requests and limits on ``kfp``, limits on
      Vertex (which picks a machine from them).
    * Without Beam arguments, every step runs Beam multi-threaded with one worker per
      requested CPU.
    * A trigger condition names the task's own input (TFX writes ``_<Producer>.<output>``,
      which KFP's driver cannot find among the inputs).
    * The steps of ``UNCACHED_COMPONENT_IDS`` never come from KFP's cache.

    Args:
        pipeline_spec: The PipelineSpec, changed in place.
        target: ``kfp`` or ``vertex``.
        has_beam_args: Whether Beam arguments were given (they are in every container's args).
        resources_by_step: Step id -> resources; other steps get ``KUBEFLOW_DEFAULT_RESOURCES``.

    Raises:
        ValueError: If an executor is neither a container nor an importer, or a trigger
            condition names an artifact that no input of its task carries.
    """
    from pipeline.pipeline import UNCACHED_COMPONENT_IDS

    step_by_executor = {
        component["executorLabel"]: name for name, component in pipeline_spec["components"].items()
    }
    for label, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        if "importer" in executor:
            continue
        if "container" not in executor:
            raise ValueError(
                f"executor {label!r} is a {', '.join(executor)} executor: KFP's backend runs container "
                "and importer executors only"
            )
        container = executor["container"]
        step_resources = resources_by_step.get(step_by_executor[label], configs.KUBEFLOW_DEFAULT_RESOURCES)
        container["command"] = [*STEP_COMMAND, *(["--local-artifact-paths"] if target == "kfp" else [])]
        if not has_beam_args:
            container["args"] = [
                *container.get("args", []),
                "--direct_running_mode=multi_threading",
                f"--direct_num_workers={max(1, math.ceil(step_resources.cpu_request))}",
            ]
        container["resources"] = {
            "cpuLimit": step_resources.cpu_limit,
            "memoryLimit": step_resources.memory_limit_gb,
        }
        if target == "kfp":
            container["resources"].update(
                cpuRequest=step_resources.cpu_request, memoryRequest=step_resources.memory_request_gb
            )
    for task_name, task in pipeline_spec["root"]["dag"]["tasks"].items():
        trigger_policy = task.get("triggerPolicy", {})
        if trigger_policy.get("condition"):
            trigger_policy["condition"] = _condition_on_task_inputs(
                task_name, task, trigger_policy["condition"]
            )
        if task_name in UNCACHED_COMPONENT_IDS:
            task["cachingOptions"] = {"enableCache": False}


# A reference to an input artifact in a trigger condition (CEL).
_CONDITION_ARTIFACT = re.compile(r"inputs\.artifacts\['([^']+)'\]")


def _condition_on_task_inputs(task_name: str, task: Mapping[str, Any], condition: str) -> str:
    """Rewrites ``inputs.artifacts['_<Producer>.<output>']`` to the task input fed by that output."""
    input_artifacts = task.get("inputs", {}).get("artifacts", {})
    input_by_producer_output = {
        (spec["taskOutputArtifact"]["producerTask"], spec["taskOutputArtifact"]["outputArtifactKey"]): name
        for name, spec in input_artifacts.items()
        if "taskOutputArtifact" in spec
    }

    def task_input(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in input_artifacts:
            return match.group(0)
        producer, _, output = key.removeprefix("_").partition(".")
        if (producer, output) not in input_by_producer_output:
            raise ValueError(
                f"the condition of task {task_name!r} reads {key!r}, which none of its inputs carries"
            )
        return f"inputs.artifacts['{input_by_producer_output[producer, output]}']"

    return _CONDITION_ARTIFACT.sub(task_input, condition)


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
