"""The Kubeflow step entrypoint: typed inputs, the launcher's local paths and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import kubeflow_step

MODEL_SCHEMA = "title: tfx.Model\ntype: object\n"


def _executor_input(input_type: dict, output_uri: str = "minio://mlpipeline/r/Trainer/1/model") -> dict:
    return {
        "inputs": {
            "artifacts": {
                "examples": {
                    "artifacts": [
                        {
                            "name": "7",
                            "uri": "minio://mlpipeline/r/EmbeddingGen/2/examples",
                            "type": input_type,
                        }
                    ]
                }
            }
        },
        "outputs": {
            "artifacts": {
                "model": {
                    "artifacts": [
                        {"name": "model", "uri": output_uri, "type": {"instanceSchema": MODEL_SCHEMA}}
                    ]
                }
            },
            "outputFile": "/minio/mlpipeline/r/Trainer/1/output_metadata.json",
        },
    }


def _parse(document: dict) -> pipeline_spec_pb2.ExecutorInput:
    return json_format.ParseDict(document, pipeline_spec_pb2.ExecutorInput())


def _inputs_spec() -> pipeline_spec_pb2.ComponentInputsSpec:
    return json_format.ParseDict(
        {
            "artifacts": {
                "examples": {"artifactType": {"instanceSchema": "title: tfx.Examples\ntype: object\n"}}
            }
        },
        pipeline_spec_pb2.ComponentInputsSpec(),
    )


@pytest.mark.parametrize(
    ("uri", "local_path"),
    [
        ("minio://mlpipeline/a/b", "/minio/mlpipeline/a/b"),
        ("s3://bucket/a", "/s3/bucket/a"),
        ("gs://bucket/a", "/gcs/bucket/a"),
        ("file:///tmp/a", None),
        ("/models/accent", None),
    ],
)
def test_local_paths_are_the_launchers_and_map_back(uri: str, local_path: str | None) -> None:
    assert kubeflow_step.local_path_for_uri(uri) == local_path
    if local_path is not None:
        assert kubeflow_step.uri_for_local_path(local_path) == uri


def test_untyped_inputs_take_the_type_of_the_inputs_spec() -> None:
    executor_input = _parse(_executor_input({"instanceSchema": ""}))
    kubeflow_step.fill_input_types(executor_input, _inputs_spec())
    artifact = executor_input.inputs.artifacts["examples"].artifacts[0]
    assert artifact.type.instance_schema.startswith("title: tfx.Examples")


def test_typed_inputs_keep_their_type() -> None:
    executor_input = _parse(_executor_input({"schemaTitle": "tfx.Model"}))
    kubeflow_step.fill_input_types(executor_input, _inputs_spec())
    assert executor_input.inputs.artifacts["examples"].artifacts[0].type.schema_title == "tfx.Model"


def test_an_untyped_input_the_spec_does_not_name_is_an_error() -> None:
    executor_input = _parse(_executor_input({"instanceSchema": ""}))
    with pytest.raises(kubeflow_step.StepInputError, match="'examples' has no type"):
        kubeflow_step.fill_input_types(executor_input, pipeline_spec_pb2.ComponentInputsSpec())


def test_an_artifact_with_no_launcher_path_is_an_error() -> None:
    executor_input = _parse(_executor_input({"instanceSchema": ""}, output_uri="hdfs://cluster/model"))
    with pytest.raises(kubeflow_step.StepInputError, match="stages only"):
        kubeflow_step.use_launcher_local_paths(executor_input)


def test_artifacts_move_to_local_paths_outputs_get_folders_and_the_output_names_uris_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The launcher's /minio, relocated under the test's folder.
    monkeypatch.setitem(kubeflow_step.LAUNCHER_LOCAL_PREFIXES, "minio://", f"{tmp_path}/minio/")
    executor_input = _parse(_executor_input({"instanceSchema": ""}))
    uri_by_local_path = kubeflow_step.use_launcher_local_paths(executor_input)
    model_path = f"{tmp_path}/minio/mlpipeline/r/Trainer/1/model"
    assert executor_input.outputs.artifacts["model"].artifacts[0].uri == model_path
    assert Path(model_path).is_dir(), "the launcher makes only the parent"
    examples_path = f"{tmp_path}/minio/mlpipeline/r/EmbeddingGen/2/examples"
    assert executor_input.inputs.artifacts["examples"].artifacts[0].uri == examples_path
    assert not Path(examples_path).exists(), "inputs are the launcher's to download"

    executor_output = tmp_path / "output_metadata.json"
    executor_output.write_text(
        json.dumps(
            {
                "artifacts": {
                    "model": {
                        "artifacts": [
                            {
                                "uri": model_path,
                                "metadata": {"current_model": examples_path, "blessed": 1.0, "note": "kept"},
                            }
                        ]
                    }
                }
            }
        )
    )
    kubeflow_step.restore_uris(str(executor_output), uri_by_local_path)
    artifact = json.loads(executor_output.read_text())["artifacts"]["model"]["artifacts"][0]
    assert artifact["uri"] == "minio://mlpipeline/r/Trainer/1/model"
    assert artifact["metadata"] == {
        "current_model": "minio://mlpipeline/r/EmbeddingGen/2/examples",
        "blessed": 1.0,
        "note": "kept",
    }


def test_a_failing_step_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    executor_input = _executor_input({"instanceSchema": ""})
    exit_code = kubeflow_step.main(
        [
            "--executor_class_path",
            "components.pusher.Executor",
            "--json_serialized_invocation_args",
            json.dumps(executor_input),
        ]
    )
    assert exit_code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("step failed: StepInputError:")
