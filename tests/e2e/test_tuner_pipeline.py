"""The pipeline with --tune on LocalDagRunner: the Tuner's search, the Trainer's tuned model, caching.

It runs on the session's demo corpus (``tests/e2e/conftest.py``) with the speaker split.
"""

from __future__ import annotations

import contextlib
import html
import io
from pathlib import Path

import keras
import pytest

from components import features
from components.trainer import model
from components.trainer.config import ClassifierArchitecture
from components.tuner import trials, tuning_split
from components.tuner.config import TunerConfig
from pipeline import run_summary
from tests import example_builders
from tests.e2e.conftest import run_pipeline

pytestmark = pytest.mark.e2e

# A 2-trial search of 2 epochs each and a 3-epoch Trainer, on the speaker split (the default).
TUNE_FLAGS = ("--split", "speaker", "--eval-fraction", "0.1", "--tune", "--tuner-trials", "2")
SHORT_FLAGS = ("--tuner-epochs", "2", "--epochs", "3", "--min-auc", "0")


def _run_and_capture(corpus: Path, output: Path) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run_pipeline(corpus, output, *TUNE_FLAGS, *SHORT_FLAGS) == 0
    return stdout.getvalue()


def _latest_run(output: Path) -> dict[str, run_summary.ComponentRun]:
    return run_summary.latest_run(run_summary.open_store(str(output / "metadata.sqlite")))


@pytest.fixture(scope="module")
def tuned_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    output = tmp_path_factory.mktemp("tuned_run")
    return output, _run_and_capture(corpus, output)


def test_the_tuner_runs_before_the_trainer_and_the_summary_shows_its_trials(
    tuned_run: tuple[Path, str],
) -> None:
    output, summary = tuned_run
    runs = _latest_run(output)
    assert runs["Tuner"].state == "complete"
    assert runs["Trainer"].state == "complete"
    assert runs["Tuner"].execution_id < runs["Trainer"].execution_id
    table = trials.read_trials_table(runs["Tuner"].outputs[trials.TUNER_RESULTS_KEY][0].uri)
    assert len(table) == 2
    assert "Tuner trials (2 completed; objective val_auc on the tuning validation):" in summary
    for trial in table:
        assert f"  trial {trial.trial_id}: val_auc {trial.objective:.4f}" in summary
    assert "Chosen hyperparameters: Dense " in summary


def test_the_trained_model_is_the_best_trials(tuned_run: tuple[Path, str]) -> None:
    output, _ = tuned_run
    runs = _latest_run(output)
    best_values = trials.read_best_hyperparameters(
        runs["Tuner"].outputs[trials.BEST_HYPERPARAMETERS_KEY][0].uri
    )
    table = trials.read_trials_table(runs["Tuner"].outputs[trials.TUNER_RESULTS_KEY][0].uri)
    best_trial = max(table, key=lambda trial: trial.objective)
    assert best_trial.hyperparameters == best_values
    best = ClassifierArchitecture.from_hyperparameter_values(best_values)

    model_run_dir = Path(runs["Trainer"].outputs["model_run"][0].uri)
    classifier = keras.models.load_model(model_run_dir / model.CLASSIFIER_FILENAME)
    dense_layers = [layer for layer in classifier.layers if layer.name.startswith("dense_")]
    dropout_layers = [layer for layer in classifier.layers if layer.name.startswith("dropout_")]
    assert [layer.units for layer in dense_layers] == list(best.units)
    assert [layer.rate for layer in dropout_layers] == list(best.dropout_rates)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(best.learning_rate, rel=1e-6)
    assert classifier.get_layer(model.OUTPUT_LAYER_NAME).units == len(features.DEFAULT_CLASS_NAMES)


def test_the_model_card_shows_the_trials_and_the_tuned_architecture(tuned_run: tuple[Path, str]) -> None:
    output, _ = tuned_run
    runs = _latest_run(output)
    table = trials.read_trials_table(runs["Tuner"].outputs[trials.TUNER_RESULTS_KEY][0].uri)
    best_values = trials.read_best_hyperparameters(
        runs["Tuner"].outputs[trials.BEST_HYPERPARAMETERS_KEY][0].uri
    )
    card_dir = Path(runs["ModelCardGenerator"].outputs["model_card"][0].uri)
    page = html.unescape((card_dir / "model_card.html").read_text())
    assert 'id="hyperparameter-search"' in page
    for trial in table:
        assert f"<td>{trial.trial_id}" in page
        assert trials.describe_hyperparameters(trial.hyperparameters) in page
    assert f"Chosen: <strong>{trials.describe_hyperparameters(best_values)}</strong>" in page
    best = ClassifierArchitecture.from_hyperparameter_values(best_values)
    assert f"Dense {'/'.join(str(units) for units in best.units)} ReLU with dropout" in page


def test_no_eval_speaker_is_in_the_tuning_validation(tuned_run: tuple[Path, str]) -> None:
    output, _ = tuned_run
    examples_uri = _latest_run(output)["EmbeddingGen"].outputs["examples"][0].uri
    train_files = [example_builders.split_pattern(examples_uri, features.TRAIN_SPLIT)]
    eval_files = [example_builders.split_pattern(examples_uri, features.EVAL_SPLIT)]
    config = TunerConfig()
    split = tuning_split.make_tuning_split(
        train_files, eval_files, len(config.class_names), config.validation_fraction, config.seed
    )
    eval_speakers = tuning_split.read_speaker_ids(eval_files)
    assert eval_speakers and split.validation_speakers and split.train_speakers
    assert not split.validation_speakers & eval_speakers
    assert not split.validation_speakers & split.train_speakers
    assert split.validation_speakers | split.train_speakers == tuning_split.read_speaker_ids(train_files)


def test_a_rerun_with_unchanged_corpus_and_settings_reuses_the_cached_search(
    tuned_run: tuple[Path, str], corpus: Path
) -> None:
    output, _ = tuned_run
    first = _latest_run(output)["Tuner"].outputs[trials.BEST_HYPERPARAMETERS_KEY][0].uri
    summary = _run_and_capture(corpus, output)
    rerun = _latest_run(output)
    assert rerun["Tuner"].state == "cached"
    assert rerun["Tuner"].outputs[trials.BEST_HYPERPARAMETERS_KEY][0].uri == first
    assert rerun["Trainer"].state == "cached"
    assert "Tuner trials (2 completed" in summary
