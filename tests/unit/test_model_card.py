"""Tests of the model card library on a real Trainer run and a real TFMA evaluation of it."""

from __future__ import annotations

import html
import json
import math
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from PIL import Image

import schemas
from components import evaluation, evaluation_metrics, features
from components.model_card import generate, history, inputs
from components.trainer import model as trainer_model
from tests.unit import test_evaluation, trainer_testing

CLASS_NAMES = features.DEFAULT_CLASS_NAMES


def test_d_prime_of_the_reference_auc() -> None:
    assert inputs.d_prime(0.8909) == pytest.approx(1.7414, abs=1e-4)
    assert inputs.d_prime(0.5) == 0.0
    assert math.isnan(inputs.d_prime(float("nan")))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[trainer_testing.TrainedRun, pathlib.Path]:
    trained_run = trainer_testing.trained_run(tmp_path_factory)
    output_path = tmp_path_factory.mktemp("tfma")
    eval_config = evaluation.build_eval_config(CLASS_NAMES, min_macro_auc=0.5, max_auc_regression=0.0)
    test_evaluation._run_tfma(eval_config, trained_run, output_path, with_baseline=False)
    (output_path / "BLESSED").write_text("")  # stands in for the blessing artifact
    return trained_run, output_path


def _data_summary() -> inputs.DataSummary:
    return inputs.DataSummary(
        by_split_accent={
            (split, accent): inputs.GroupCounts(clips=3, speakers=1, patches=10)
            for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT)
            for accent in trainer_testing.PRESENT_ACCENTS
        },
        by_split_gender={
            (split, gender): inputs.GroupCounts(clips=6, speakers=2, patches=17)
            for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT)
            for gender in ("female", "male")
        },
        not_speech_patches={features.TRAIN_SPLIT: 5, features.EVAL_SPLIT: 3},
        quarantine_by_reason={"truncated": 2, "not audio": 1},
        quarantine_total=3,
        split_strategy="speaker",
    )


def _clip() -> inputs.ExampleClip:
    rng = np.random.default_rng(0)
    return inputs.ExampleClip(
        clip_id="mim_00001_00000001",
        accent="Midlands",
        waveform=(0.1 * rng.standard_normal(32000)).astype(np.float32),
        sample_rate=16000,
        log_mel=rng.standard_normal((200, 64)),
        patch_probabilities=rng.dirichlet(np.ones(7), size=3),
    )


@pytest.fixture(scope="module")
def card(
    evaluated: tuple[trainer_testing.TrainedRun, pathlib.Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[inputs.ModelCardInputs, generate.ModelCardPaths]:
    trained_run, output_path = evaluated
    card_inputs = inputs.ModelCardInputs(
        model_name="accent",
        version="1",
        class_names=CLASS_NAMES,
        yamnet=inputs.YamnetProvenance("offline", pretrained=False),
        history=history.read_training_history(str(trained_run.model_run_dir)),
        evaluation=inputs.read_evaluation(str(output_path), CLASS_NAMES),
        blessed=inputs.read_blessing(str(output_path)),
        data=_data_summary(),
        example_clips=(_clip(),),
        layers=inputs.read_classifier_layers(str(trained_run.model_run_dir)),
        schema_features=inputs.read_schema_features(str(schemas.SCHEMA_PATH.parent)),
    )
    return card_inputs, generate.write_model_card(card_inputs, tmp_path_factory.mktemp("card"))


@pytest.mark.slow
def test_the_trainer_writes_its_history(evaluated: tuple[trainer_testing.TrainedRun, pathlib.Path]) -> None:
    trained = history.read_training_history(str(evaluated[0].model_run_dir))
    assert trained.epochs_run == len(trained.metrics["loss"]) >= 1
    assert {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"} <= set(trained.metrics)
    assert trained.optimizer["learning_rate"] > 0
    assert {"beta_1", "beta_2", "epsilon"} <= set(trained.optimizer)
    assert set(trained.class_weights) == set(CLASS_NAMES)


@pytest.mark.slow
def test_card_metrics_equal_tfma_metrics(
    evaluated: tuple[trainer_testing.TrainedRun, pathlib.Path],
    card: tuple[inputs.ModelCardInputs, generate.ModelCardPaths],
) -> None:
    card_inputs, paths = card
    tfma_metrics = test_evaluation._metrics_by_slice(evaluated[1])
    overall = card_inputs.evaluation.overall
    tfma_overall = tfma_metrics[()][""]
    assert overall.accuracy == tfma_overall[evaluation.ACCURACY_METRIC_NAME]
    assert overall.macro_auc == tfma_overall[evaluation.GATING_METRIC_NAME]
    assert overall.clip_accuracy == tfma_overall[evaluation.CLIP_ACCURACY_METRIC_NAME]
    assert overall.example_count == tfma_overall["example_count"]
    assert overall.macro_d_prime == pytest.approx(math.sqrt(2) * inputs.stats.norm.ppf(overall.macro_auc))
    assert overall.confusion_matrix.sum() == tfma_overall["example_count"]
    for class_id, class_metrics in enumerate(overall.classes):
        if class_metrics.support:
            tfma_auc = tfma_metrics[()][f"classId:{class_id}"][evaluation.PER_CLASS_AUC_METRIC_NAME]
            assert class_metrics.auc == tfma_auc
            assert class_metrics.recall == pytest.approx(
                overall.confusion_matrix[class_id, class_id] / overall.confusion_matrix[class_id].sum()
            )
            assert class_id in {CLASS_NAMES.index(name) for name in overall.roc_curves}
        else:
            assert math.isnan(class_metrics.auc)
    # Clip level: TFMA's array-valued metrics, read back unchanged.
    assert overall.clip_macro_auc == tfma_overall[evaluation_metrics.CLIP_MACRO_AUC_NAME]
    assert 0.0 <= overall.clip_macro_auc <= 1.0
    assert overall.clip_macro_d_prime == pytest.approx(inputs.d_prime(overall.clip_macro_auc))
    clip_matrix = inputs.metric_array(tfma_overall[evaluation_metrics.CLIP_CONFUSION_MATRIX_NAME])
    np.testing.assert_array_equal(overall.clip_confusion_matrix, clip_matrix)
    assert overall.clip_confusion_matrix.sum() == overall.clip_count > 0
    assert np.trace(overall.clip_confusion_matrix) / overall.clip_count == pytest.approx(
        overall.clip_accuracy
    )
    clip_aucs = inputs.metric_array(tfma_overall[evaluation_metrics.CLIP_CLASS_AUCS_NAME])
    present_clip_classes = overall.present_clip_classes()
    assert {metrics.class_name for metrics in present_clip_classes} == set(trainer_testing.PRESENT_ACCENTS)
    for class_metrics in present_clip_classes:
        assert class_metrics.auc == clip_aucs[CLASS_NAMES.index(class_metrics.class_name)]
    assert {"gender=female", "gender=male"} <= set(card_inputs.evaluation.slices)
    assert card_inputs.evaluation.validation_ok
    (threshold,) = card_inputs.evaluation.thresholds
    assert threshold.bound == 0.5 and threshold.passed
    # The JSON carries the same numbers, at full precision.
    content = json.loads(paths.json.read_text())
    overall_json = {
        entry["type"]: float(entry["value"])
        for entry in content["quantitative_analysis"]["performance_metrics"]
        if "slice" not in entry
    }
    assert overall_json["accuracy"] == overall.accuracy
    assert overall_json["present_class_macro_auc"] == overall.macro_auc
    assert overall_json["clip_macro_auc"] == overall.clip_macro_auc


@pytest.mark.slow
def test_every_image_is_a_png_of_sensible_size(
    card: tuple[inputs.ModelCardInputs, generate.ModelCardPaths],
) -> None:
    _, paths = card
    names = {path.name for path in paths.images}
    assert {"architecture.png", "training_curves.png", "confusion_matrix.png", "roc_curves.png"} <= names
    assert "clip_mim_00001_00000001.png" in names
    for path in paths.images:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert 200 <= image.width <= 3000 and 150 <= image.height <= 3000, (path, image.size)


@pytest.mark.slow
def test_html_is_self_contained(card: tuple[inputs.ModelCardInputs, generate.ModelCardPaths]) -> None:
    _, paths = card
    page = paths.html.read_text()
    assert not re.search(r"https?://", page)
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == len(paths.images)
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    for section in ("Model details", "Training", "Data", "Evaluation", "Blessing", "Limitations"):
        assert section in page
    assert 'id="offline-warning"' in page
    assert "Per class (overall, clips)" in page
    assert 'id="schema-features"' in page and "<td>embedding</td><td>FLOAT</td><td>1024</td>" in page
    assert "<td>eval</td><td>female</td><td>6</td><td>2</td><td>17</td>" in page


@pytest.mark.slow
def test_the_card_shows_the_trained_classifiers_layers(
    card: tuple[inputs.ModelCardInputs, generate.ModelCardPaths],
) -> None:
    card_inputs, paths = card
    names = [layer.name for layer in card_inputs.layers]
    assert names[0] == features.EMBEDDING_KEY and names[-1] == trainer_model.OUTPUT_LAYER_NAME
    dense_units = [layer.output_shape for layer in card_inputs.layers if layer.name.startswith("dense_")]
    assert dense_units == ["(None, 256)", "(None, 384)", "(None, 192)", "(None, 384)"]
    assert "Dense 256/384/192/384 ReLU with dropout -> softmax (7)" in html.unescape(paths.html.read_text())
    content = json.loads(paths.json.read_text())
    assert "Dense 256/384/192/384" in content["model_parameters"]["model_architecture"]


def test_schema_features_are_read_from_the_curated_schema() -> None:
    by_name = {
        feature.name: feature for feature in inputs.read_schema_features(str(schemas.SCHEMA_PATH.parent))
    }

    assert by_name["embedding"] == inputs.SchemaFeature("embedding", "FLOAT", "1024", "1", ">= 0")
    assert by_name["label"].type == "INT"
    assert by_name["label"].domain == f"0 to {len(features.DEFAULT_CLASS_NAMES) - 1}, categorical"
    assert {features.GENDER_KEY, features.ACCENT_KEY, features.SPEAKER_ID_KEY} <= set(by_name)


def test_patches_per_gender_come_from_tfdv_statistics(tmp_path: pathlib.Path) -> None:
    import pandas as pd
    import tensorflow_data_validation as tfdv

    genders = {features.TRAIN_SPLIT: ["female"] * 5 + ["male"] * 3, features.EVAL_SPLIT: ["male"] * 4}
    for split, values in genders.items():
        statistics = tfdv.generate_statistics_from_dataframe(
            pd.DataFrame({features.GENDER_KEY: values, "label": list(range(len(values)))})
        )
        split_dir = tmp_path / f"Split-{split}"
        split_dir.mkdir()
        (split_dir / "FeatureStats.pb").write_bytes(statistics.SerializeToString())

    counts = inputs.read_patches_by_split_gender(str(tmp_path))

    assert counts == {
        (features.EVAL_SPLIT, "male"): 4,
        (features.TRAIN_SPLIT, "female"): 5,
        (features.TRAIN_SPLIT, "male"): 3,
    }


@pytest.mark.slow
def test_hugging_face_readme_front_matter(
    card: tuple[inputs.ModelCardInputs, generate.ModelCardPaths],
) -> None:
    card_inputs, paths = card
    text = paths.readme.read_text()
    assert text.startswith("---\n")
    front_matter = yaml.safe_load(text.split("---\n", 2)[1])
    assert front_matter["library_name"] == "keras"
    assert {"audio-classification", "accent-classification"} <= set(front_matter["tags"])
    assert front_matter["datasets"]
    (model_index,) = front_matter["model-index"]
    metrics = model_index["results"][0]["metrics"]
    assert {
        "type": "accuracy",
        "name": "Patch accuracy",
        "value": card_inputs.evaluation.overall.accuracy,
    } in metrics
    for path in paths.images:
        assert f"]({path.name})" in text
    assert paths.schema_validated


# Appended to a copy of the card (never to the card itself): after the page has loaded, it records
# how many of its images the browser decoded, which --dump-dom then shows.
_IMAGE_PROBE = (
    "<script>window.addEventListener('load', () => {"
    "const images = [...document.images];"
    "const decoded = images.filter((image) => image.complete && image.naturalWidth > 0).length;"
    "document.body.setAttribute('data-images-decoded', decoded + '/' + images.length);});</script>"
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed: `make browser` (part of `make test`) installs it")
    return found


@pytest.mark.slow
def test_browser_renders_the_card(
    card: tuple[inputs.ModelCardInputs, generate.ModelCardPaths], tmp_path: pathlib.Path
) -> None:
    _, paths = card
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    screenshot = tmp_path / "card.png"
    subprocess.run(
        [*flags, f"--screenshot={screenshot}", "--window-size=1200,3000", paths.html.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    probe = tmp_path / "probe.html"
    probe.write_text(paths.html.read_text() + _IMAGE_PROBE)
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "Model card: accent" in dom and "Limitations and intended use" in dom
    number_of_images = len(paths.images)
    assert number_of_images > 0
    assert f'data-images-decoded="{number_of_images}/{number_of_images}"' in dom, "an image did not decode"
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.shape[0] >= 1000
    assert pixels.std() > 10, "the screenshot is blank"
    assert (pixels < 128).mean() > 0.01, "no text or figure drawn"


def test_the_card_artifacts_headline_is_tfmas_overall_slice_and_the_thresholds(
    card: tuple[inputs.ModelCardInputs, generate.ModelCardPaths],
) -> None:
    from components.model_card import component

    card_inputs, _ = card
    overall = card_inputs.evaluation.overall
    properties = component.card_properties(card_inputs)
    assert properties["blessed"] == int(card_inputs.blessed)
    assert properties["yamnet_pretrained"] == 0 and properties["yamnet_handle"] == "offline"
    for name in component.METRIC_PROPERTIES:
        value = getattr(overall, name)
        assert properties.get(name, float("nan")) == value or not math.isfinite(value)
    assert properties["blessing_reason"] == component.blessing_reason(card_inputs)
    for threshold in card_inputs.evaluation.thresholds:
        assert f"{threshold.metric} {threshold.value:.4f} {threshold.kind}" in properties["blessing_reason"]
