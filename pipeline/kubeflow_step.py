"""The entrypoint of every Kubeflow step: TFX's v2 executor entrypoint, fitted to KFP's launcher.

A compiled step runs ``python -m pipeline.kubeflow_step`` with TFX's own
arguments (``--executor_class_path``, ``--json_serialized_invocation_args``,
``--json_serialized_inputs_spec_args`` and the Beam arguments). Before it hands
them to ``tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor``,
it mends what the open-source KFP backend gives a step:

* **Untyped inputs.** KFP's driver hands upstream artifacts over with an empty
  ``instanceSchema``, from which TFX cannot tell the artifact's class; the type
  is filled from the step's inputs spec.
* **Local paths** (``--local-artifact-paths``, for a self-hosted KFP). KFP's
  launcher downloads every input artifact to a local path before the command
  runs and uploads every output from its local path afterwards: ``minio://b/k``
  is ``/minio/b/k``, ``s3://`` is ``/s3/`` and ``gs://`` is ``/gcs/``
  (``LocalPathForURI`` in ``backend/src/v2/component/launcher_v2.go``). The
  step works on those paths, so it needs no object-store client and no
  credentials, and TensorFlow needs no ``minio://`` file system. The output
  folders are created (the launcher makes only their parents), and the
  executor output names the artifacts by their URIs again: the launcher takes
  each output's URI from it, and skips the upload of an artifact whose URI is
  a local path.

On Vertex AI Pipelines (no ``--local-artifact-paths``) the steps read and
write ``gs://`` URIs directly, as TFX's entrypoint does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components.artifacts import KFP_SYSTEM_TITLE_CLASS_PATHS
from components.errors import AccentPipelineError

logger = logging.getLogger("accent-pipeline.kubeflow-step")

# Object-store URI prefix -> the local path prefix where KFP's launcher puts the artifact.
LAUNCHER_LOCAL_PREFIXES: dict[str, str] = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}

# Artifact types whose URI is a file rather than a folder (value artifacts).
_VALUE_ARTIFACT_TITLES = frozenset(
    {"tfx.String", "tfx.Integer", "tfx.Float", "tfx.Boolean", "tfx.Bytes", "tfx.JsonValue"}
    | set(KFP_SYSTEM_TITLE_CLASS_PATHS)
)


class StepInputError(AccentPipelineError, ValueError):
    """The executor input cannot be run: an input without a type, or a URI with no local path."""


def local_path_for_uri(uri: str) -> str | None:
    """The local path where KFP's launcher puts an artifact's URI, or None for another scheme."""
    for uri_prefix, local_prefix in LAUNCHER_LOCAL_PREFIXES.items():
        if uri.startswith(uri_prefix):
            return local_prefix + uri[len(uri_prefix) :]
    return None


def uri_for_local_path(path: str) -> str | None:
    """The object-store URI of a launcher's local path, or None for any other path."""
    for uri_prefix, local_prefix in LAUNCHER_LOCAL_PREFIXES.items():
        if path.startswith(local_prefix):
            return uri_prefix + path[len(local_prefix) :]
    return None


def _schema_title(artifact_type: pipeline_spec_pb2.ArtifactTypeSchema) -> str:
    """The title of an artifact type, whether it is given as a title or as a YAML schema."""
    if artifact_type.WhichOneof("kind") == "schema_title":
        return artifact_type.schema_title
    for line in artifact_type.instance_schema.splitlines():
        if line.startswith("title:"):
            return line.partition(":")[2].strip()
    return ""


def fill_input_types(
    executor_input: pipeline_spec_pb2.ExecutorInput, inputs_spec: pipeline_spec_pb2.ComponentInputsSpec
) -> None:
    """Gives every input artifact that arrived without a type the type of its inputs spec entry.

    Args:
        executor_input: The step's executor input, changed in place.
        inputs_spec: The step's component inputs spec.

    Raises:
        StepInputError: If an untyped input has no entry in the inputs spec.
    """
    for name, artifact_list in executor_input.inputs.artifacts.items():
        for artifact in artifact_list.artifacts:
            if _schema_title(artifact.type):
                continue
            if name not in inputs_spec.artifacts:
                raise StepInputError(
                    f"input artifact {name!r} has no type, and the inputs spec does not name it"
                )
            artifact.type.CopyFrom(inputs_spec.artifacts[name].artifact_type)


def _runtime_artifacts(
    executor_input: pipeline_spec_pb2.ExecutorInput,
) -> Iterator[tuple[str, pipeline_spec_pb2.RuntimeArtifact, bool]]:
    """Every artifact of the executor input, with its name and whether it is an output."""
    for is_output, artifacts in (
        (False, executor_input.inputs.artifacts),
        (True, executor_input.outputs.artifacts),
    ):
        for name, artifact_list in artifacts.items():
            for artifact in artifact_list.artifacts:
                yield name, artifact, is_output


def use_launcher_local_paths(executor_input: pipeline_spec_pb2.ExecutorInput) -> dict[str, str]:
    """Points every artifact at the local path of KFP's launcher and creates the output folders.

    Args:
        executor_input: The step's executor input, changed in place.

    Returns:
        Local path -> the URI it stands for.

    Raises:
        StepInputError: If an artifact's URI has no launcher path (an unknown scheme).
    """
    uri_by_local_path: dict[str, str] = {}
    for name, artifact, is_output in _runtime_artifacts(executor_input):
        local_path = local_path_for_uri(artifact.uri)
        if local_path is None:
            raise StepInputError(
                f"artifact {name!r} has URI {artifact.uri!r}: KFP's launcher stages only "
                f"{', '.join(LAUNCHER_LOCAL_PREFIXES)} URIs"
            )
        uri_by_local_path[local_path] = artifact.uri
        artifact.uri = local_path
        if is_output:
            is_file = _schema_title(artifact.type) in _VALUE_ARTIFACT_TITLES
            os.makedirs(os.path.dirname(local_path) if is_file else local_path, exist_ok=True)
    return uri_by_local_path


def _remote_value(value: Any, uri_by_local_path: dict[str, str]) -> Any:
    """A metadata value with every launcher local path in it turned back into its URI."""
    if isinstance(value, str):
        return uri_by_local_path.get(value) or uri_for_local_path(value) or value
    if isinstance(value, dict):
        return {key: _remote_value(item, uri_by_local_path) for key, item in value.items()}
    if isinstance(value, list):
        return [_remote_value(item, uri_by_local_path) for item in value]
    return value


def restore_uris(executor_output_path: str, uri_by_local_path: dict[str, str]) -> None:
    """Rewrites the executor output so that it names artifacts by URI, not by local path.

    Args:
        executor_output_path: The ExecutorOutput JSON that TFX's entrypoint wrote.
        uri_by_local_path: Local path -> URI, from ``use_launcher_local_paths``.
    """
    if not os.path.exists(executor_output_path):
        return
    with open(executor_output_path) as output_file:
        executor_output = json.load(output_file)
    for artifact_list in executor_output.get("artifacts", {}).values():
        for artifact in artifact_list.get("artifacts", []):
            artifact.update(_remote_value({"uri": artifact.get("uri", "")}, uri_by_local_path))
            if "metadata" in artifact:
                artifact["metadata"] = _remote_value(artifact["metadata"], uri_by_local_path)
    with open(executor_output_path, "w") as output_file:
        json.dump(executor_output, output_file, indent=2, sort_keys=True)


def _parse_arguments(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """TFX's entrypoint arguments plus ``--local-artifact-paths``; the rest are Beam arguments."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.kubeflow_step", description=__doc__)
    parser.add_argument("--local-artifact-paths", action="store_true")
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--json_serialized_inputs_spec_args", default="")
    return parser.parse_known_args(list(argv))


def run_step(argv: Sequence[str]) -> None:
    """Runs one TFX executor as a KFP step.

    Args:
        argv: The step's arguments (see the module docstring).

    Raises:
        StepInputError: If the executor input cannot be run.
    """
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    # TFX's entrypoint imports a custom artifact's class from its schema title; a KFP system.* title
    # names no Python class, so it is looked up in this table, which the entrypoint consults first.
    for title, class_path in KFP_SYSTEM_TITLE_CLASS_PATHS.items():
        compiler_utils.TITLE_TO_CLASS_PATH.setdefault(title, class_path)
    args, beam_args = _parse_arguments(argv)
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(args.json_serialized_invocation_args, executor_input, ignore_unknown_fields=True)
    inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
    if args.json_serialized_inputs_spec_args:
        json_format.Parse(args.json_serialized_inputs_spec_args, inputs_spec, ignore_unknown_fields=True)
    fill_input_types(executor_input, inputs_spec)
    uri_by_local_path = use_launcher_local_paths(executor_input) if args.local_artifact_paths else {}
    logger.info("Running %s", args.executor_class_path)
    tfx_args = argparse.Namespace(
        executor_class_path=args.executor_class_path,
        json_serialized_invocation_args=json_format.MessageToJson(executor_input),
        json_serialized_inputs_spec_args=args.json_serialized_inputs_spec_args,
    )
    kubeflow_v2_run_executor.main((tfx_args, beam_args))
    if args.local_artifact_paths:
        restore_uris(executor_input.outputs.output_file, uri_by_local_path)
    logger.info("%s finished", args.executor_class_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one step and returns its exit code: 0, or 1 with a one-line reason on stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_step(sys.argv[1:] if argv is None else argv)
    except Exception as error:  # The step's own error: traceback in the log, one line for the UI.
        logger.exception("The step failed")
        print(f"step failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
