"""The compiled ``kfp`` spec, executed offline the way KFP's open-source driver and launcher run it.

Three runs on the demo corpus with offline YAMNet, against one object store
(a folder) and two PVCs (folders), with the paths of the README's runbook:
the first pushes a model with no baseline; the second, from KFP's cache but
for the baseline step, evaluates against the served version and pushes
nothing new; the third, with a model made worse, is not blessed and pushes
nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow as tf

from components import demo_corpus, features
from pipeline import cli
from pipeline.pipeline import COMPONENT_IDS as EVERY_COMPONENT_ID
from pipeline.pipeline import (
    EVALUATOR_ID,
    MODEL_CARD_GENERATOR_ID,
    OPTIONAL_COMPONENT_IDS,
    PUSHER_ID,
    UNCACHED_COMPONENT_IDS,
)
from tests.kfp_emulator import KfpEmulator, TaskRecord
from tests.kubeflow_commands import MOUNT_FLAGS, PVC_MOUNTS, STEP_PATH_FLAGS, compile_command

pytestmark = pytest.mark.e2e

# The steps of a pipeline compiled without optional steps (no --tune).
COMPONENT_IDS = tuple(step for step in EVERY_COMPONENT_ID if step not in OPTIONAL_COMPONENT_IDS)

PIPELINE_ROOT = "minio://mlpipeline/accent"
SETTINGS = ["--yamnet", "offline", "--split", "utterance", "--eval-fraction", "0.25", "--epochs", "8"]
SETTINGS += ["--batch-size", "16", "--min-auc", "0"]


def _compile(output: Path, learning_rate: str) -> Path:
    """The runbook's command, with the demo's settings and a stable corpus cache key."""
    command = compile_command(
        output,
        PIPELINE_ROOT,
        *STEP_PATH_FLAGS,
        *MOUNT_FLAGS,
        "--corpus-fingerprint",
        "demo-corpus-v1",
        "--learning-rate",
        learning_rate,
        *SETTINGS,
    )
    assert cli.main(command) == 0
    return output


def _served_versions(volumes: dict[str, Path]) -> list[str]:
    serving = volumes["accent-model-store"] / "accent"
    return sorted(path.name for path in serving.iterdir()) if serving.exists() else []


def _metadata(record: TaskRecord, output: str) -> dict:
    return record.outputs[output].custom_properties


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("kfp")
    volumes = {claim: base / "volumes" / claim for claim in PVC_MOUNTS}
    for directory in volumes.values():
        directory.mkdir(parents=True)
    demo_corpus.write_demo_corpus(str(volumes["accent-pipeline-root"] / "corpus"), clips_per_speaker=3)
    package = _compile(base / "pipeline.yaml", "0.002")
    emulator = KfpEmulator(package, base / "store", volumes, base / "pods")
    return {"base": base, "volumes": volumes, "emulator": emulator, "store": base / "store"}


@pytest.fixture(scope="module")
def first_run(cluster: dict) -> dict[str, TaskRecord]:
    return cluster["emulator"].run("run-1")


@pytest.fixture(scope="module")
def second_run(cluster: dict, first_run: dict[str, TaskRecord]) -> dict[str, TaskRecord]:
    return cluster["emulator"].run("run-2")


@pytest.fixture(scope="module")
def worse_run(cluster: dict, second_run: dict[str, TaskRecord]) -> dict[str, TaskRecord]:
    emulator = cluster["emulator"]
    # A tiny learning rate leaves the classifier near its seeded initial weights: worse than the served one.
    emulator.load(_compile(cluster["base"] / "worse.yaml", "1e-9"))
    return emulator.run("run-3")


def test_first_run_pushes_a_model_with_no_baseline(cluster: dict, first_run: dict[str, TaskRecord]) -> None:
    assert {name: record.state for name, record in first_run.items()} == dict.fromkeys(
        COMPONENT_IDS, "complete"
    )
    assert _metadata(first_run["LatestServedModel"], "model")["baseline_present"] == 0.0
    blessing = _metadata(first_run["Evaluator"], "blessing")
    assert blessing["blessed"] == 1.0
    assert "baseline_model" not in blessing and "baseline_model_id" not in blessing
    versions = _served_versions(cluster["volumes"])
    assert len(versions) == 1
    pushed = _metadata(first_run["Pusher"], "pushed_model")
    assert pushed["pushed_destination"] == f"/models/accent/{versions[0]}"
    served = tf.saved_model.load(str(cluster["volumes"]["accent-model-store"] / "accent" / versions[0]))
    assert features.SERVING_SIGNATURE in served.signatures
    carried = (
        cluster["volumes"]["accent-model-store"] / "accent" / versions[0] / "assets.extra" / "model_card"
    )
    assert (carried / "model_card.html").is_file() and (carried / "README.md").is_file()
    card = first_run[MODEL_CARD_GENERATOR_ID].outputs["model_card"]
    assert (cluster["store"] / card.uri.removeprefix("minio://") / "model_card.html").is_file()
    assert card.custom_properties["blessed"] == 1.0
    # The page the KFP UI renders inline: a system.HTML artifact whose URI is one object of HTML.
    page = first_run[MODEL_CARD_GENERATOR_ID].outputs["model_card_page"]
    assert page.type_title == "system.HTML"
    # The UI lists only system.HTML artifacts that have a display name (MetricsVisualizations.tsx).
    assert page.custom_properties["display_name"]
    page_object = cluster["store"] / page.uri.removeprefix("minio://")
    assert page_object.is_file()
    assert (
        page_object.read_text()
        == (cluster["store"] / card.uri.removeprefix("minio://") / "model_card.html").read_text()
    )


def test_artifacts_live_in_the_object_store_under_kfps_layout(
    cluster: dict, first_run: dict[str, TaskRecord]
) -> None:
    examples = first_run["EmbeddingGen"].outputs["examples"]
    prefix = f"{PIPELINE_ROOT}/accent-recognition/run-1/EmbeddingGen/"
    assert examples.uri.startswith(prefix) and examples.uri.endswith("/examples")
    local_examples = cluster["store"] / examples.uri.removeprefix("minio://")
    assert sorted(path.name for path in local_examples.iterdir()) == ["Split-eval", "Split-train"]
    assert json.loads(examples.custom_properties["split_names"]) == ["train", "eval"]
    # The Evaluator names the model it judged by its URI, never by the launcher's local path.
    assert (
        _metadata(first_run["Evaluator"], "blessing")["current_model"]
        == first_run["Trainer"].outputs["model"].uri
    )
    for record in first_run.values():
        for artifact in record.outputs.values():
            assert artifact.uri.startswith(PIPELINE_ROOT)
            assert not any(str(value).startswith("/minio/") for value in artifact.custom_properties.values())
    assert (cluster["volumes"]["accent-pipeline-root"] / "quarantine.csv").is_file()


def test_steps_get_untyped_inputs_from_the_driver(first_run: dict[str, TaskRecord]) -> None:
    trainer_inputs = first_run["Trainer"].executor_input["inputs"]["artifacts"]
    assert trainer_inputs["examples"]["artifacts"][0]["type"] == {"instanceSchema": ""}
    assert trainer_inputs["examples"]["artifacts"][0]["name"].isdigit()


def test_second_run_is_gated_against_the_served_version(
    cluster: dict, first_run: dict[str, TaskRecord], second_run: dict[str, TaskRecord]
) -> None:
    states = {name: record.state for name, record in second_run.items()}
    # The baseline is read afresh, so the steps that depend on it run again; every other step is cached.
    rerun = {*UNCACHED_COMPONENT_IDS, EVALUATOR_ID, MODEL_CARD_GENERATOR_ID, PUSHER_ID}
    assert {name for name, state in states.items() if state == "complete"} == rerun
    assert {name for name, state in states.items() if state == "cached"} == set(COMPONENT_IDS) - rerun
    version = _served_versions(cluster["volumes"])[0]
    baseline = second_run["LatestServedModel"].outputs["model"]
    assert baseline.custom_properties["baseline_present"] == 1.0
    assert baseline.custom_properties["served_version"] == float(version)
    blessing = _metadata(second_run["Evaluator"], "blessing")
    assert blessing["baseline_model"] == baseline.uri
    assert blessing["blessed"] == 1.0
    assert _metadata(second_run["Pusher"], "pushed_model")["already_served"] == 1.0
    assert _served_versions(cluster["volumes"]) == [version]


def test_a_worse_model_is_not_blessed_and_pushes_nothing(
    cluster: dict, first_run: dict[str, TaskRecord], worse_run: dict[str, TaskRecord]
) -> None:
    assert worse_run["Trainer"].state == "complete"
    assert worse_run["EmbeddingGen"].state == "cached"
    blessing = _metadata(worse_run["Evaluator"], "blessing")
    assert blessing["blessed"] == 0.0
    assert blessing["baseline_model"] == worse_run["LatestServedModel"].outputs["model"].uri
    assert worse_run["Pusher"].state == "skipped"
    card = _metadata(worse_run[MODEL_CARD_GENERATOR_ID], "model_card")
    assert card["blessed"] == 0.0 and "failed" in card["blessing_reason"]
    assert _served_versions(cluster["volumes"]) == [
        _metadata(first_run["Pusher"], "pushed_model")["pushed_version"]
    ]
