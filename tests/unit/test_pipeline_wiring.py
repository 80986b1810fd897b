"""create_pipeline wires every step (the Kubeflow compilation is tested in test_kubeflow.py)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import configs
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
