"""create_pipeline wires every step, and the Kubeflow compilation carries it whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline import cli, configs, kubeflow_runner
from pipeline.pipeline import create_pipeline

COMPONENT_IDS = [
    "CorpusIndexGen",
    "YamnetModelGen",
    "EmbeddingGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "ValidationGate",
    "Trainer",
    "LatestBlessedModelResolver",
    "Evaluator",
    "Pusher",
]


def _pipeline(tmp_path: Path, **settings: object):
    return create_pipeline(
        pipeline_name="test",
        pipeline_root=str(tmp_path / "root"),
        corpus_dir=str(tmp_path / "corpus"),
        corpus_fingerprint="abc",
        serving_model_dir=str(tmp_path / "serving"),
        settings=configs.PipelineSettings(**settings),
    )


def test_every_step_is_wired_in_order(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    ids = [component.id for component in pipeline.components]
    assert sorted(ids) == sorted(COMPONENT_IDS)
    position = {component_id: ids.index(component_id) for component_id in ids}
    assert position["EmbeddingGen"] > position["CorpusIndexGen"]
    assert position["Trainer"] > position["ValidationGate"]
    assert position["Pusher"] > position["Evaluator"]


def test_trainer_runs_only_after_the_validation_gate(tmp_path: Path) -> None:
    components = {component.id: component for component in _pipeline(tmp_path).components}
    assert "ValidationGate" in {node.id for node in components["Trainer"].upstream_nodes}


def test_settings_reach_the_components(tmp_path: Path) -> None:
    components = {
        component.id: component
        for component in _pipeline(
            tmp_path, epochs=3, yamnet_handle="offline", split_strategy="utterance"
        ).components
    }
    assert components["YamnetModelGen"].exec_properties["yamnet_handle"] == "offline"
    assert components["CorpusIndexGen"].exec_properties["split_strategy"] == "utterance"
    custom_config = components["Trainer"].exec_properties["custom_config"]
    custom_config = json.loads(custom_config) if isinstance(custom_config, str) else custom_config
    assert custom_config["epochs"] == 3


def test_pusher_sits_inside_the_blessing_condition(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    components = {component.id: component for component in pipeline.components}

    def context_names(component_id: str) -> list[str]:
        return [
            type(context).__name__
            for context in pipeline.dsl_context_registry.get_contexts(components[component_id])
        ]

    assert context_names("Pusher") == ["CondContext"], "the Pusher must run only inside Cond on the blessing"
    assert context_names("Trainer") == []


@pytest.mark.slow
def test_kubeflow_yaml_holds_every_component_the_image_and_the_beam_args(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    assert (
        cli.main(
            [
                "compile-kubeflow",
                "--output",
                str(output),
                "--image",
                "example/accent:1",
                "--pipeline-root",
                "gs://bucket/root",
                "--beam-arg=--runner=DataflowRunner",
                "--beam-arg=--region=europe-west2",
            ]
        )
        == 0
    )
    spec = yaml.safe_load(output.read_text())
    assert spec["defaultPipelineRoot"] == "gs://bucket/root"
    text = output.read_text()
    for component_id in COMPONENT_IDS:
        assert component_id in text, component_id
    executors = spec["deploymentSpec"]["executors"]
    images = {executor["container"]["image"] for executor in executors.values() if "container" in executor}
    assert images == {"example/accent:1"}
    embedding_executor = next(value for key, value in executors.items() if "EmbeddingGen" in key)
    embedding_args = " ".join(embedding_executor["container"].get("args", []))
    assert "--runner=DataflowRunner" in embedding_args and "--region=europe-west2" in embedding_args


@pytest.mark.slow
def test_kubeflow_json_is_a_vertex_pipeline_job(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.json"
    document = kubeflow_runner.compile_kubeflow(
        str(output),
        image="example/accent:1",
        pipeline_root="gs://bucket/root",
        settings=configs.PipelineSettings(),
    )
    assert set(document) >= {"pipelineSpec", "runtimeConfig", "displayName"}
    assert json.loads(output.read_text())["pipelineSpec"]["pipelineInfo"]["name"] == configs.PIPELINE_NAME


def test_kubeflow_output_must_be_yaml_or_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="yaml"):
        kubeflow_runner.compile_kubeflow(
            str(tmp_path / "p.txt"), image="i", pipeline_root="gs://b", settings=configs.PipelineSettings()
        )
