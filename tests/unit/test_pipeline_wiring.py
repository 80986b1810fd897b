"""create_pipeline wires every step (the Kubeflow compilation is tested in test_kubeflow.py)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import configs, local_runner
from pipeline.pipeline import (
    COMPONENT_IDS,
    OPTIONAL_COMPONENT_IDS,
    TUNER_FN,
    UNCACHED_COMPONENT_IDS,
    create_pipeline,
)


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
    assert sorted(ids) == sorted(set(COMPONENT_IDS) - OPTIONAL_COMPONENT_IDS)
    assert "Tuner" not in ids, "without tune there is no Tuner"
    position = {component_id: ids.index(component_id) for component_id in ids}
    assert position["EmbeddingGen"] > position["CorpusIndexGen"]
    assert position["Trainer"] > position["ValidationGate"]
    assert position["Pusher"] > position["Evaluator"]
    assert position["Evaluator"] > position["LatestServedModel"]
    assert position["Evaluator"] < position["ModelCardGenerator"] < position["Pusher"]


def test_every_evaluated_model_gets_a_card_that_the_pusher_carries(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, split_strategy="utterance")
    components = {component.id: component for component in pipeline.components}
    card = components["ModelCardGenerator"]
    producers = {
        name: (channel.producer_component_id, channel.output_key) for name, channel in card.inputs.items()
    }
    assert producers == {
        "model_run": ("Trainer", "model_run"),
        "model": ("Trainer", "model"),
        "yamnet_model": ("YamnetModelGen", "model"),
        "evaluation": ("Evaluator", "evaluation"),
        "blessing": ("Evaluator", "blessing"),
        "clip_index": ("CorpusIndexGen", "clip_index"),
        "quarantine_report": ("EmbeddingGen", "quarantine_report"),
        "statistics": ("StatisticsGen", "statistics"),
        "schema": ("CuratedSchemaGen", "schema"),
    }
    assert set(card.outputs) == {"model_card", "model_card_page"}
    assert card.outputs["model_card_page"].type.TYPE_NAME == "system.HTML"
    assert card.exec_properties["split_strategy"] == "utterance"
    assert json.loads(card.exec_properties["class_names_json"]) == list(
        configs.PipelineSettings().class_names
    )
    assert pipeline.dsl_context_registry.get_contexts(card) == [], (
        "a model that is not blessed gets a card too"
    )
    pusher_card = components["Pusher"].inputs["model_card"]
    assert (pusher_card.producer_component_id, pusher_card.output_key) == ("ModelCardGenerator", "model_card")


def test_with_the_tuner_the_card_reads_its_trials(tmp_path: Path) -> None:
    components = {component.id: component for component in _pipeline(tmp_path, tune=True).components}
    card_inputs = components["ModelCardGenerator"].inputs
    for key in ("tuner_results", "best_hyperparameters"):
        assert (card_inputs[key].producer_component_id, card_inputs[key].output_key) == ("Tuner", key)


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


def test_every_step_is_a_container_step_with_no_resolver(tmp_path: Path) -> None:
    from tfx.dsl.components.base import base_component

    components = _pipeline(tmp_path).components
    assert all(isinstance(component, base_component.BaseComponent) for component in components)


def test_the_baseline_is_the_served_model_and_never_cached_locally(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    components = {component.id: component for component in pipeline.components}
    assert components["LatestServedModel"].exec_properties["serving_base_path"] == str(tmp_path / "serving")
    baseline_channel = components["Evaluator"].inputs["baseline_model"]
    assert baseline_channel.producer_component_id == "LatestServedModel"
    pipeline_ir = local_runner.compile_pipeline(pipeline)
    cached = {
        node.pipeline_node.node_info.id: node.pipeline_node.execution_options.caching_options.enable_cache
        for node in pipeline_ir.nodes
    }
    assert set(cached) == set(COMPONENT_IDS) - OPTIONAL_COMPONENT_IDS
    assert {step for step, enabled in cached.items() if not enabled} == set(UNCACHED_COMPONENT_IDS)


def test_tune_adds_a_tuner_between_the_validation_gate_and_the_trainer(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, tune=True, tuner_trials=3, tuner_epochs=2, batch_size=32)
    ids = [component.id for component in pipeline.components]
    assert sorted(ids) == sorted(COMPONENT_IDS)
    assert ids.index("ValidationGate") < ids.index("Tuner") < ids.index("Trainer")
    components = {component.id: component for component in pipeline.components}
    tuner = components["Tuner"]
    assert "ValidationGate" in {node.id for node in tuner.upstream_nodes}
    assert tuner.exec_properties["tuner_fn"] == TUNER_FN
    assert (tuner.inputs["examples"].producer_component_id, tuner.inputs["examples"].output_key) == (
        "EmbeddingGen",
        "examples",
    )
    custom_config = tuner.exec_properties["custom_config"]
    custom_config = json.loads(custom_config) if isinstance(custom_config, str) else custom_config
    assert (custom_config["max_trials"], custom_config["epochs_per_trial"], custom_config["batch_size"]) == (
        3,
        2,
        32,
    )
    hyperparameters = components["Trainer"].inputs["hyperparameters"]
    assert (hyperparameters.producer_component_id, hyperparameters.output_key) == (
        "Tuner",
        "best_hyperparameters",
    )
    pipeline_ir = local_runner.compile_pipeline(pipeline)
    cached = {
        node.pipeline_node.node_info.id: node.pipeline_node.execution_options.caching_options.enable_cache
        for node in pipeline_ir.nodes
    }
    assert cached["Tuner"], "an unchanged corpus and settings reuse the Tuner's cached search"


def test_without_tune_the_trainer_has_no_hyperparameters_input(tmp_path: Path) -> None:
    components = {component.id: component for component in _pipeline(tmp_path).components}
    assert "hyperparameters" not in components["Trainer"].inputs
