"""Runs a compiled PipelineSpec offline, the way Kubeflow Pipelines' open-source driver and launcher do.

Test code, written from KFP's backend (``backend/src/v2``: ``compiler/visitor.go``,
``driver/resolve.go``, ``driver/driver.go``, ``component/launcher_v2.go``,
``metadata/client.go``, ``metadata/converter.go``, ``expression/expression.go``):

* **Refusal.** A spec with an executor that is neither a container nor an importer
  is refused when the run is created ("not implemented").
* **Driver.** Tasks run in dependency order. A parameter comes from
  ``runtimeValue.constant`` only (``constantValue``, the schema 2.0 form, fails
  the task). An upstream artifact is handed over as the driver hands it: named
  by its ML Metadata id, its custom properties as metadata (numbers as doubles,
  plus ``display_name`` and ``store_session_info``), and ``instanceSchema: ""``.
  Output URIs are ``<root>/<pipeline>/<run>/<task>/<salt>/<output>``. A trigger
  condition is evaluated on the executor input; a key that is not there fails
  the task. A task with caching on reuses the outputs of an earlier execution
  with the same component, command, parameters and input artifacts.
* **Launcher.** Every input is downloaded to ``LocalPathForURI`` (``minio://b/k``
  to ``/minio/b/k``); the parents of the output paths are created; the command
  runs with ``{{$}}`` replaced by the executor input JSON; the executor output
  is read from ``outputs.outputFile``; each output's URI and metadata are
  merged from it, and the output is uploaded from the local path of that URI,
  or not at all when the URI has no such path.
* **Pod.** Each command runs in a fresh mount namespace whose root is a tmpfs
  holding the machine's top-level folders, fresh ``/minio``, ``/s3`` and
  ``/gcs`` folders, and each PVC of the Kubernetes platform spec bound at its
  mount path, with the project's ``.venv`` python in place of the image's.

The object store is a folder: ``minio://bucket/key`` is ``<store>/bucket/key``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

logger = logging.getLogger(__name__)

# LocalPathForURI of launcher_v2.go.
_LOCAL_PREFIXES = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}

# How long one step may run before the emulated pod is killed.
STEP_TIMEOUT_SECONDS = 1200


class RunRefusedError(ValueError):
    """The KFP API server would refuse to create the run."""


class TaskFailedError(RuntimeError):
    """A task failed in the driver, the launcher or its command; the run stops."""


def local_path_for_uri(uri: str) -> str | None:
    """The launcher's ``LocalPathForURI``; None for an unsupported scheme (an error in Go)."""
    for uri_prefix, local_prefix in _LOCAL_PREFIXES.items():
        if uri.startswith(uri_prefix):
            return local_prefix + uri[len(uri_prefix) :]
    return None


@dataclasses.dataclass
class ArtifactRecord:
    """An artifact as KFP's ML Metadata holds it."""

    id: int
    uri: str
    custom_properties: dict[str, Any]
    # The artifact type's name in ML Metadata: the schema title (the KFP UI renders system.HTML).
    type_title: str = ""

    def runtime_artifact(self) -> dict[str, Any]:
        """The RuntimeArtifact the driver builds for a downstream task (metadata/converter.go)."""
        return {
            "name": str(self.id),
            "uri": self.uri,
            "metadata": dict(self.custom_properties),
            "type": {"instanceSchema": ""},
        }


@dataclasses.dataclass
class TaskRecord:
    """What happened to one task of a run."""

    state: str  # "complete", "cached", "skipped" or "failed"
    outputs: dict[str, ArtifactRecord] = dataclasses.field(default_factory=dict)
    executor_input: dict[str, Any] | None = None
    log_path: Path | None = None


def schema_title(artifact_type: Mapping[str, Any]) -> str:
    """The title of an ArtifactTypeSchema, given as ``schemaTitle`` or inside a YAML ``instanceSchema``."""
    if artifact_type.get("schemaTitle"):
        return artifact_type["schemaTitle"]
    return str((yaml.safe_load(artifact_type.get("instanceSchema") or "{}") or {}).get("title", ""))


def _mlmd_value(value: Any) -> Any:
    """A metadata value as MLMD stores it and the driver hands it back (StructValueToMLMDValue)."""
    if isinstance(value, bool):
        return float(int(value))
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return {"list": value}
    if isinstance(value, dict):
        return {"struct": value}
    return value


class _NoSuchKeyError(KeyError):
    pass


class _CelMap(dict):
    """A CEL map: field access by attribute or index; a missing key is an error."""

    def __getattr__(self, name: str) -> Any:
        return self[name]

    def __getitem__(self, key: Any) -> Any:
        if key not in self:
            raise _NoSuchKeyError(f"no such key: {key}")
        return _cel_value(super().__getitem__(key))


def _cel_value(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, _CelMap):
        return _CelMap(value)
    if isinstance(value, list):
        return [_cel_value(item) for item in value]
    return value


def evaluate_condition(condition: str, executor_input: Mapping[str, Any]) -> bool:
    """Evaluates a trigger condition (the CEL subset TFX writes) on an executor input.

    Raises:
        TaskFailedError: If the condition reads a key the executor input lacks, or is not boolean.
    """
    expression = re.sub(r"!(?!=)", " not ", condition.replace("&&", " and ").replace("||", " or "))
    expression = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", expression))
    names = {
        "inputs": _cel_value(dict(executor_input.get("inputs", {}))),
        "int": int,
        "double": float,
        "string": str,
    }
    try:
        result = eval(expression, {"__builtins__": {}}, names)  # Test code: the spec is the test's own.
    except _NoSuchKeyError as error:
        raise TaskFailedError(f"condition {condition!r}: evaluation error: {error.args[0]}") from error
    if not isinstance(result, bool):
        raise TaskFailedError(f"condition {condition!r}: return type is not bool, got {result!r}")
    return result


def resolve_parameter(name: str, parameter_spec: Mapping[str, Any]) -> Any:
    """A task's input parameter, as driver/resolve.go resolves it for a root-DAG task.

    Raises:
        TaskFailedError: For anything but ``runtimeValue.constant``.
    """
    runtime_value = parameter_spec.get("runtimeValue")
    if runtime_value is None:
        kind = next(iter(parameter_spec), "nothing")
        raise TaskFailedError(
            f"resolving input parameter {name!r}: parameter spec of type {kind} not implemented yet"
        )
    if "constant" not in runtime_value:
        kind = next(iter(runtime_value), "nothing")
        raise TaskFailedError(
            f"resolving input parameter {name!r}: param runtime value spec of type {kind} not implemented"
        )
    return runtime_value["constant"]


def check_executors(pipeline_spec: Mapping[str, Any]) -> None:
    """Refuses a spec that KFP's compiler cannot turn into a workflow (compiler/visitor.go)."""
    for label, executor in pipeline_spec["deploymentSpec"]["executors"].items():
        if "container" not in executor and "importer" not in executor:
            raise RunRefusedError(
                f"executor {label}: non-container and non-importer executor not implemented"
            )


def _topological_order(tasks: Mapping[str, Any]) -> list[str]:
    upstream = {
        name: set(task.get("dependentTasks", []))
        | {
            spec["taskOutputArtifact"]["producerTask"]
            for spec in task.get("inputs", {}).get("artifacts", {}).values()
            if "taskOutputArtifact" in spec
        }
        for name, task in tasks.items()
    }
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(name for name in tasks if name not in order and upstream[name] <= set(order))
        if not ready:
            raise RunRefusedError(f"the DAG has a cycle among {sorted(set(tasks) - set(order))}")
        order.extend(ready)
    return order


_POD_SCRIPT = r"""
set -eu
root=$1; local_dir=$2; shift 2
mount -t tmpfs pod-root "$root"
for entry in /*; do
  name=${entry#/}
  case "$name" in minio|s3|gcs) continue;; esac
  if [ -L "$entry" ]; then ln -s "$(readlink "$entry")" "$root/$name"
  elif [ -d "$entry" ]; then mkdir "$root/$name"; mount --rbind "$entry" "$root/$name"
  fi
done
for scheme in minio s3 gcs; do
  mkdir -p "$local_dir/$scheme" "$root/$scheme"; mount --bind "$local_dir/$scheme" "$root/$scheme"
done
while [ "$1" != "--" ]; do
  mkdir -p "$root$2"; mount --bind "$1" "$root$2"; shift 2
done
shift
cd "$root"
exec chroot "$root" "$@"
"""


class KfpEmulator:
    """Runs one compiled pipeline package, run after run, against one store and one set of PVCs."""

    def __init__(
        self, package_path: Path, store_dir: Path, pvc_dirs: Mapping[str, Path], work_dir: Path
    ) -> None:
        """Loads the package (PipelineSpec, then the Kubernetes platform spec if any).

        Args:
            package_path: The YAML written by ``compile-kubeflow``.
            store_dir: The folder standing in for the object store.
            pvc_dirs: Claim name -> the folder that holds the claim's volume.
            work_dir: Where pods, logs and executor inputs are kept.

        Raises:
            RunRefusedError: If KFP could not run the spec at all.
        """
        self.store_dir = store_dir
        self.pvc_dirs = dict(pvc_dirs)
        self.work_dir = work_dir
        self.artifacts: list[ArtifactRecord] = []
        self._cache: dict[str, dict[str, ArtifactRecord]] = {}
        self.load(package_path)

    def load(self, package_path: Path) -> None:
        """Takes another compiled package for the next runs; ML Metadata and the cache stay."""
        documents = list(yaml.safe_load_all(package_path.read_text()))
        self.pipeline_spec = documents[0]
        self.platform_spec = documents[1] if len(documents) > 1 else {}
        check_executors(self.pipeline_spec)

    # The object store.

    def _store_path(self, uri: str) -> Path:
        scheme, _, rest = uri.partition("://")
        if f"{scheme}://" not in _LOCAL_PREFIXES:
            raise TaskFailedError(f"unsupported storage scheme of {uri!r}")
        return self.store_dir / rest

    def _download(self, uri: str, local_path: Path) -> None:
        source = self._store_path(uri)
        if source.is_dir():
            shutil.copytree(source, local_path, dirs_exist_ok=True)
        elif source.is_file():
            local_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, local_path)
        else:
            raise TaskFailedError(
                f"failed to download input artifact from remote storage URI {uri!r}: not found"
            )

    def _upload(self, local_path: Path, uri: str) -> None:
        if not local_path.exists():
            logger.warning("Local filepath %s does not exist", local_path)
            return
        destination = self._store_path(uri)
        if local_path.is_dir():
            shutil.copytree(local_path, destination, dirs_exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local_path, destination)

    # A run.

    def run(self, run_id: str | None = None) -> dict[str, TaskRecord]:
        """Runs every task of the pipeline; returns what happened to each.

        Raises:
            TaskFailedError: When a task fails; ``failed_run`` then holds the records so far.
        """
        run_id = run_id or uuid.uuid4().hex[:12]
        root = self.pipeline_spec["defaultPipelineRoot"].rstrip("/")
        run_root = f"{root}/{self.pipeline_spec['pipelineInfo']['name']}/{run_id}"
        tasks = self.pipeline_spec["root"]["dag"]["tasks"]
        records: dict[str, TaskRecord] = {}
        self.failed_run = records
        for task_name in _topological_order(tasks):
            started = time.monotonic()
            records[task_name] = self._run_task(task_name, tasks[task_name], run_root, records)
            logger.info("%s: %s in %.1f s", task_name, records[task_name].state, time.monotonic() - started)
        return records

    def _run_task(
        self, task_name: str, task: Mapping[str, Any], run_root: str, records: Mapping[str, TaskRecord]
    ) -> TaskRecord:
        component = self.pipeline_spec["components"][task["componentRef"]["name"]]
        executor_label = component["executorLabel"]
        executor = self.pipeline_spec["deploymentSpec"]["executors"][executor_label]
        inputs = self._resolve_inputs(task_name, task, component, records)
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not evaluate_condition(condition, {"inputs": inputs}):
            return TaskRecord(state="skipped")
        container = executor["container"]
        cache_key = hashlib.sha256(
            json.dumps(
                [component, container, inputs["parameterValues"], _artifact_ids(inputs)], sort_keys=True
            ).encode()
        ).hexdigest()
        if task.get("cachingOptions", {}).get("enableCache") and cache_key in self._cache:
            return TaskRecord(state="cached", outputs=self._cache[cache_key])

        task_root = f"{run_root}/{task_name}/{uuid.uuid4().hex[:8]}"
        outputs = {
            "artifacts": {
                name: {
                    "artifacts": [
                        {
                            "name": name,
                            "uri": f"{task_root}/{name}",
                            "type": spec["artifactType"],
                            **({"metadata": spec["metadata"]} if "metadata" in spec else {}),
                        }
                    ]
                }
                for name, spec in component.get("outputDefinitions", {}).get("artifacts", {}).items()
            },
            "outputFile": f"{local_path_for_uri(task_root)}/output_metadata.json",
        }
        executor_input = {"inputs": inputs, "outputs": outputs}
        # protojson, as the launcher marshals it: camelCase field names.
        executor_input_json = json_format.MessageToJson(
            json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput()), indent=None
        )
        pod_dir = self.work_dir / f"{task_name}-{uuid.uuid4().hex[:8]}"
        local_dir = pod_dir / "local"
        for artifact in _all_artifacts(inputs):
            local_path = local_path_for_uri(artifact["uri"])
            if local_path is not None:
                self._download(artifact["uri"], local_dir / local_path.lstrip("/"))
        for artifact in _all_artifacts(outputs):
            (local_dir / local_path_for_uri(artifact["uri"]).lstrip("/")).parent.mkdir(
                parents=True, exist_ok=True
            )

        command = [part.replace("{{$}}", executor_input_json) for part in container["command"]]
        args = [part.replace("{{$}}", executor_input_json) for part in container.get("args", [])]
        if command[0] == "python":
            command[0] = sys.executable
        log_path = pod_dir / "log.txt"
        exit_code = self._run_in_pod(pod_dir, executor_label, [*command, *args], log_path)
        if exit_code != 0:
            raise TaskFailedError(f"task {task_name}: command exited with {exit_code}; log: {log_path}")

        executor_output_path = local_dir / outputs["outputFile"].lstrip("/")
        executor_output = (
            json.loads(executor_output_path.read_text()) if executor_output_path.exists() else {}
        )
        recorded: dict[str, ArtifactRecord] = {}
        for name, artifact_list in outputs["artifacts"].items():
            artifact = dict(artifact_list["artifacts"][0])
            produced = executor_output.get("artifacts", {}).get(name, {}).get("artifacts", [])
            if produced:  # mergeRuntimeArtifacts: the executor's URI and metadata win.
                artifact["uri"] = produced[0].get("uri") or artifact["uri"]
                artifact["metadata"] = {**artifact.get("metadata", {}), **produced[0].get("metadata", {})}
            local_path = local_path_for_uri(artifact["uri"])
            if local_path is None:
                logger.warning(
                    "Output %r has no recognised storage URI %r: not uploaded", name, artifact["uri"]
                )
            else:
                self._upload(local_dir / local_path.lstrip("/"), artifact["uri"])
            properties = {key: _mlmd_value(value) for key, value in artifact.get("metadata", {}).items()}
            properties.setdefault("display_name", name)
            properties.setdefault("store_session_info", json.dumps({"Provider": "minio"}))
            record = ArtifactRecord(
                id=len(self.artifacts) + 1,
                uri=artifact["uri"],
                custom_properties=properties,
                type_title=schema_title(artifact["type"]),
            )
            self.artifacts.append(record)
            recorded[name] = record
        self._cache[cache_key] = recorded
        return TaskRecord(
            state="complete", outputs=recorded, executor_input=executor_input, log_path=log_path
        )

    def _resolve_inputs(
        self,
        task_name: str,
        task: Mapping[str, Any],
        component: Mapping[str, Any],
        records: Mapping[str, TaskRecord],
    ) -> dict[str, Any]:
        task_inputs = task.get("inputs", {})
        parameter_values = {
            name: resolve_parameter(name, spec) for name, spec in task_inputs.get("parameters", {}).items()
        }
        for name, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if name not in parameter_values and not spec.get("isOptional") and "defaultValue" not in spec:
                raise TaskFailedError(
                    f"task {task_name}: neither value nor default value provided for {name!r}"
                )
        artifacts = {}
        for name, spec in task_inputs.get("artifacts", {}).items():
            if "taskOutputArtifact" not in spec:
                raise TaskFailedError(
                    f"task {task_name}: artifact input {name!r} of kind {next(iter(spec))} not emulated"
                )
            producer = spec["taskOutputArtifact"]["producerTask"]
            key = spec["taskOutputArtifact"]["outputArtifactKey"]
            if producer not in records or key not in records[producer].outputs:
                raise TaskFailedError(
                    f"task {task_name}: cannot find output {key!r} of producer task {producer!r}"
                )
            artifacts[name] = {"artifacts": [records[producer].outputs[key].runtime_artifact()]}
        # Values as structpb would hold them (numbers are doubles).
        values = json_format.MessageToDict(json_format.ParseDict(parameter_values, struct_pb2.Struct()))
        return {"parameterValues": values, "artifacts": artifacts}

    def _run_in_pod(self, pod_dir: Path, executor_label: str, command: list[str], log_path: Path) -> int:
        mounts: list[str] = []
        executor_config = (
            self.platform_spec.get("platforms", {})
            .get("kubernetes", {})
            .get("deploymentSpec", {})
            .get("executors", {})
            .get(executor_label, {})
        )
        for pvc_mount in executor_config.get("pvcMount", []):
            claim = pvc_mount["constant"]
            if claim not in self.pvc_dirs:
                raise TaskFailedError(f"persistentvolumeclaim {claim!r} not found")
            mounts += [str(self.pvc_dirs[claim]), pvc_mount["mountPath"]]
        (pod_dir / "root").mkdir(parents=True)
        script = pod_dir / "pod.sh"
        script.write_text(_POD_SCRIPT)
        with open(log_path, "wb") as log_file:
            completed = subprocess.run(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "bash",
                    str(script),
                    str(pod_dir / "root"),
                    str(pod_dir / "local"),
                    *mounts,
                    "--",
                    *command,
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=STEP_TIMEOUT_SECONDS,
                check=False,
            )
        return completed.returncode


def _all_artifacts(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [artifact for entry in section["artifacts"].values() for artifact in entry["artifacts"]]


def _artifact_ids(inputs: Mapping[str, Any]) -> dict[str, list[str]]:
    return {
        name: [artifact["name"] for artifact in entry["artifacts"]]
        for name, entry in inputs["artifacts"].items()
    }
