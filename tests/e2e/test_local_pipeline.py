"""The whole pipeline on LocalDagRunner: ML Metadata, the pushed model, blessing and caching."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components import audio, features
from pipeline import cli, configs, run_summary
from pipeline.pipeline import COMPONENT_IDS, OPTIONAL_COMPONENT_IDS
from tests.e2e.conftest import run_pipeline

pytestmark = pytest.mark.e2e

# The steps of a run without optional steps (no --tune).
ALL_COMPONENTS = set(COMPONENT_IDS) - OPTIONAL_COMPONENT_IDS


def _versions(output: Path) -> list[str]:
    serving = output / "serving" / configs.SERVING_MODEL_NAME
    return sorted(path.name for path in serving.iterdir()) if serving.exists() else []


def _latest_run(output: Path) -> dict[str, run_summary.ComponentRun]:
    return run_summary.latest_run(run_summary.open_store(str(output / "metadata.sqlite")))


def test_every_component_executed_and_is_recorded_in_ml_metadata(first_run: Path) -> None:
    runs = _latest_run(first_run)
    assert set(runs) == ALL_COMPONENTS
    assert all(run.state == "complete" for run in runs.values()), {
        name: run.state for name, run in runs.items()
    }
    assert (first_run / "pipeline_root").is_dir()
    assert (first_run / "quarantine.csv").is_file()
    with open(first_run / "quarantine.csv", newline="") as report:
        assert next(csv.reader(report)) == ["filename", "reason"]


def test_pushed_model_classifies_a_waveform_into_a_known_accent(first_run: Path, corpus: Path) -> None:
    versions = _versions(first_run)
    assert len(versions) == 1 and versions[0].isdigit()
    model = tf.saved_model.load(str(first_run / "serving" / configs.SERVING_MODEL_NAME / versions[0]))
    wav_path = sorted(corpus.rglob("*.wav"))[0]
    waveform = audio.load_waveform(wav_path.read_bytes(), wav_path.name)
    outputs = model.signatures[features.SERVING_SIGNATURE](
        **{features.WAVEFORM_INPUT_KEY: tf.constant(waveform)}
    )
    probabilities = outputs[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy()
    assert probabilities.shape == (len(configs.PipelineSettings().class_names),)
    assert np.isclose(probabilities.sum(), 1.0, atol=1e-4)
    assert outputs[features.ACCENT_OUTPUT_KEY].numpy().decode() in configs.PipelineSettings().class_names


def _card_dir(output: Path) -> Path:
    """The ModelCard artifact's directory of the latest run, as ML Metadata records it."""
    cards = _latest_run(output)["ModelCardGenerator"].outputs["model_card"]
    assert len(cards) == 1
    return Path(cards[0].uri)


def test_pushed_version_carries_its_model_card(first_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [version] = _versions(first_run)
    carried = first_run / "serving" / configs.SERVING_MODEL_NAME / version / "assets.extra" / "model_card"
    card_dir = _card_dir(first_run)
    for name in ("model_card.html", "README.md", "model_card.json"):
        assert (carried / name).read_bytes() == (card_dir / name).read_bytes()
    assert "NOT blessed" not in (carried / "model_card.html").read_text()
    # The page the Kubeflow UI renders: ML Metadata types it system.HTML; its URI is the HTML file itself.
    store = run_summary.open_store(str(first_run / "metadata.sqlite"))
    [page] = _latest_run(first_run)["ModelCardGenerator"].outputs["model_card_page"]
    [page_type] = store.get_artifact_types_by_id([page.type_id])
    assert page_type.name == "system.HTML"
    assert Path(page.uri).read_bytes() == (card_dir / "model_card.html").read_bytes()
    capsys.readouterr()
    assert cli.main(["report", str(first_run)]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[1].startswith("Blessed: yes")
    assert f"HTML: {card_dir / 'model_card.html'}" in report
    assert "WARNING: offline YAMNet weights: these numbers say nothing about real accents" in report


def test_rerun_with_unchanged_corpus_reuses_the_cached_embeddings(first_run: Path, corpus: Path) -> None:
    first_examples = _latest_run(first_run)["EmbeddingGen"].outputs["examples"][0].uri
    assert run_pipeline(corpus, first_run, "--learning-rate", "0.002", "--min-auc", "0") == 0
    rerun = _latest_run(first_run)
    assert rerun["EmbeddingGen"].state == "cached"
    assert rerun["EmbeddingGen"].outputs["examples"][0].uri == first_examples
    assert len(_versions(first_run)) == 1


def test_worse_model_is_not_blessed_and_not_pushed(first_run: Path, corpus: Path) -> None:
    versions_before = _versions(first_run)
    # A tiny learning rate leaves the classifier near its seeded initial weights: worse than the blessed one.
    assert run_pipeline(corpus, first_run, "--learning-rate", "1e-9", "--min-auc", "0") == 0
    runs = _latest_run(first_run)
    assert runs["Trainer"].state == "complete"
    blessing = runs["Evaluator"].outputs["blessing"][0]
    assert blessing.custom_properties["blessed"].int_value == 0
    assert "Pusher" not in runs or runs["Pusher"].state != "complete"
    assert _versions(first_run) == versions_before
    # A model that is not blessed still gets its card, saying so and which threshold it failed.
    card = runs["ModelCardGenerator"].outputs["model_card"][0]
    assert card.custom_properties["blessed"].int_value == 0
    assert "failed" in card.custom_properties["blessing_reason"].string_value
    card_dir = _card_dir(first_run)
    assert "NOT blessed" in (card_dir / "model_card.html").read_text()
    assert "FAIL" in (card_dir / "README.md").read_text()


def test_pushed_model_is_served_over_grpc_and_predict_prints_an_accent(first_run: Path, corpus: Path) -> None:
    import io
    import json

    from components.serving import client, server

    versions = _versions(first_run)
    with server.start_server(
        first_run / "serving" / configs.SERVING_MODEL_NAME, configs.SERVING_MODEL_NAME
    ) as running:
        assert running.manager.wait_for_version(int(versions[-1]), timeout_seconds=60) is not None
        output = io.StringIO()
        wav_paths = [str(path) for path in sorted(corpus.glob("*.wav"))[:2]]
        exit_code = client.predict_files(
            wav_paths,
            server=running.address,
            model_name=configs.SERVING_MODEL_NAME,
            output_json=True,
            stream=output,
        )
    assert exit_code == 0
    results = [json.loads(line) for line in output.getvalue().splitlines() if line.strip()]
    assert len(results) == 2
    for result in results:
        assert result["accent"] in configs.PipelineSettings().class_names
        assert abs(sum(result["class_probabilities"].values()) - 1.0) < 1e-3
