"""Tests of the Tuner step's code: config, search space, speaker-disjoint tuning split, tuner_fn, trials."""

from __future__ import annotations

import json
import math
import pathlib

import keras_tuner
import numpy as np
import pytest
from tfx.components.tuner import executor as tuner_executor
from tfx.types import standard_artifacts

from components import features
from components.errors import InvalidArgumentError
from components.trainer.config import REFERENCE_HIDDEN_BLOCKS, ClassifierArchitecture, TrainerConfig
from components.tuner import search, search_space, trials, tuning_split
from components.tuner.config import TunerConfig
from tests import example_builders

NUM_CLASSES = len(features.DEFAULT_CLASS_NAMES)
ACCENTS = ("Midlands", "Northern", "Scottish", "Southern")


# TunerConfig


def test_tuner_config_round_trips_and_requires_every_key() -> None:
    config = TunerConfig(max_trials=3, epochs_per_trial=2)
    assert TunerConfig.from_custom_config(config.to_custom_config()) == config
    partial = config.to_custom_config()
    del partial["seed"]
    with pytest.raises(InvalidArgumentError, match="seed"):
        TunerConfig.from_custom_config(partial)
    with pytest.raises(InvalidArgumentError, match="unknown"):
        TunerConfig.from_custom_config({**config.to_custom_config(), "trials": 3})


@pytest.mark.parametrize(
    "bad",
    [{"max_trials": 0}, {"epochs_per_trial": 1.5}, {"validation_fraction": 1.0}, {"class_names": ("a",)}],
)
def test_tuner_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(InvalidArgumentError):
        TunerConfig(**bad)


# search space


def test_the_default_trial_is_the_reference_model() -> None:
    architecture = search_space.architecture_from_hyperparameters(keras_tuner.HyperParameters())
    assert architecture == ClassifierArchitecture(REFERENCE_HIDDEN_BLOCKS, TrainerConfig.learning_rate)


def test_the_space_spans_the_issues_ranges() -> None:
    hyperparameters = keras_tuner.HyperParameters()
    search_space.architecture_from_hyperparameters(hyperparameters)
    space = {hp.name: hp.get_config() for hp in hyperparameters.space}
    assert (space["num_hidden_layers"]["min_value"], space["num_hidden_layers"]["max_value"]) == (2, 5)
    for layer_number in range(1, 6):
        units = space[f"units_{layer_number}"]
        dropout = space[f"dropout_{layer_number}"]
        assert (units["min_value"], units["max_value"]) == (128, 512)
        assert (dropout["min_value"], dropout["max_value"]) == (0.0, 0.5)
    learning_rate = space["learning_rate"]
    assert (learning_rate["min_value"], learning_rate["max_value"], learning_rate["sampling"]) == (
        1e-5,
        1e-3,
        "log",
    )


@pytest.mark.parametrize("num_hidden_layers", [2, 3, 5])
def test_a_trial_builds_as_many_layers_as_it_draws(num_hidden_layers: int) -> None:
    hyperparameters = keras_tuner.HyperParameters()
    hyperparameters.Fixed("num_hidden_layers", num_hidden_layers)
    hyperparameters.Fixed(f"units_{num_hidden_layers}", 160)
    classifier = search_space.AccentHyperModel(NUM_CLASSES).build(hyperparameters)
    dense_units = [layer.units for layer in classifier.layers if layer.name.startswith("dense_")]
    assert len(dense_units) == num_hidden_layers
    assert dense_units[-1] == 160
    assert classifier.output_shape == (None, NUM_CLASSES)


def test_random_trials_stay_inside_the_space() -> None:
    hyperparameters = keras_tuner.HyperParameters()
    search_space.architecture_from_hyperparameters(hyperparameters)
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_auc", max_trials=20, seed=3)
    oracle._set_project_dir("/nonexistent", "unused")
    oracle.hyperparameters = hyperparameters
    for _ in range(20):
        values = oracle._random_values()
        architecture = ClassifierArchitecture.from_hyperparameter_values(values)
        assert 2 <= len(architecture.hidden_blocks) <= 5
        assert all(128 <= units <= 512 and units % 32 == 0 for units in architecture.units)
        assert all(0.0 <= rate <= 0.5 for rate in architecture.dropout_rates)
        assert 1e-5 <= architecture.learning_rate <= 1e-3


# the tuning split


def test_validation_speakers_are_chosen_per_accent_deterministically_and_never_all() -> None:
    speaker_accents = {f"mi_{number}": "Midlands" for number in range(8)}
    speaker_accents.update({f"no_{number}": "Northern" for number in range(4)})
    speaker_accents["sc_0"] = "Scottish"
    chosen = tuning_split.choose_validation_speakers(speaker_accents, 0.25, seed=7)
    assert chosen == tuning_split.choose_validation_speakers(dict(reversed(speaker_accents.items())), 0.25, 7)
    assert sum(speaker.startswith("mi_") for speaker in chosen) == 2
    assert sum(speaker.startswith("no_") for speaker in chosen) == 1
    assert "sc_0" not in chosen, "an accent's only speaker stays to train on"
    other_seeds = {tuning_split.choose_validation_speakers(speaker_accents, 0.25, seed) for seed in range(6)}
    assert len(other_seeds) > 1, "the seed chooses the speakers"


def test_excluded_speakers_are_never_held_out() -> None:
    speaker_accents = {f"mi_{number}": "Midlands" for number in range(6)}
    for excluded_count in range(5):
        excluded = {f"mi_{number}" for number in range(excluded_count)}
        chosen = tuning_split.choose_validation_speakers(speaker_accents, 0.5, 0, excluded_speakers=excluded)
        assert chosen and not chosen & excluded


def _patches_of(patches: list[example_builders.Patch], speakers: set[str]) -> list[example_builders.Patch]:
    return [patch for patch in patches if patch.speaker_id in speakers]


@pytest.fixture(scope="module")
def shared_speaker_artifact(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """Train: 6 speakers per accent (seeds 1 and 3). Eval: seed 2's and 2 train speakers of each accent."""
    uri = tmp_path_factory.mktemp("tuning") / "examples"
    train = example_builders.synthetic_patches(ACCENTS, 6, 2, seed=1) + example_builders.synthetic_patches(
        ACCENTS, 6, 2, seed=3
    )
    shared = {patch.speaker_id for patch in train if patch.speaker_id.endswith(("_1_0", "_3_1"))}
    evaluation = example_builders.synthetic_patches(ACCENTS, 3, 2, seed=2) + _patches_of(train, shared)
    example_builders.write_split(uri, features.TRAIN_SPLIT, train)
    example_builders.write_split(uri, features.EVAL_SPLIT, evaluation)
    return {"uri": [uri], features.TRAIN_SPLIT: train, features.EVAL_SPLIT: evaluation}


def _files(artifact: dict[str, list], split: str) -> list[str]:
    return [example_builders.split_pattern(artifact["uri"][0], split)]


def test_no_eval_speaker_is_in_the_tuning_validation_and_the_tuning_parts_are_disjoint(
    shared_speaker_artifact: dict[str, list],
) -> None:
    split = tuning_split.make_tuning_split(
        _files(shared_speaker_artifact, features.TRAIN_SPLIT),
        _files(shared_speaker_artifact, features.EVAL_SPLIT),
        NUM_CLASSES,
        validation_fraction=0.5,
        seed=0,
    )
    train_speakers = {patch.speaker_id for patch in shared_speaker_artifact[features.TRAIN_SPLIT]}
    eval_speakers = {patch.speaker_id for patch in shared_speaker_artifact[features.EVAL_SPLIT]}
    assert eval_speakers & train_speakers, "the fixture shares speakers, as the utterance split does"
    assert split.validation_speakers and split.train_speakers
    assert not split.validation_speakers & eval_speakers
    assert not split.validation_speakers & split.train_speakers
    assert split.validation_speakers | split.train_speakers == train_speakers
    validation_accents = {speaker[:2] for speaker in split.validation_speakers}
    assert validation_accents == {accent[:2].lower() for accent in ACCENTS}
    validation_labels = [
        patch.label
        for patch in _patches_of(shared_speaker_artifact[features.TRAIN_SPLIT], split.validation_speakers)
    ]
    np.testing.assert_array_equal(
        split.validation_counts, np.bincount(validation_labels, minlength=NUM_CLASSES)
    )


def test_the_speaker_datasets_hold_exactly_their_speakers_patches(
    shared_speaker_artifact: dict[str, list],
) -> None:
    train_patches = shared_speaker_artifact[features.TRAIN_SPLIT]
    speakers = {train_patches[0].speaker_id, train_patches[-1].speaker_id}
    expected = _patches_of(train_patches, speakers)
    dataset = tuning_split.make_speaker_dataset(
        _files(shared_speaker_artifact, features.TRAIN_SPLIT),
        speakers,
        NUM_CLASSES,
        batch_size=5,
        num_records=len(expected),
        shuffle=False,
    )
    embeddings, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    np.testing.assert_allclose(np.concatenate(embeddings), np.stack([patch.embedding for patch in expected]))
    np.testing.assert_array_equal(np.concatenate(labels).argmax(axis=1), [patch.label for patch in expected])
    assert int(dataset.cardinality()) == math.ceil(len(expected) / 5)


def test_a_train_split_with_no_speaker_to_spare_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    patches = [patch for patch in example_builders.synthetic_patches(ACCENTS, 1, 2, seed=1)]
    example_builders.write_split(tmp_path, features.TRAIN_SPLIT, patches)
    with pytest.raises(InvalidArgumentError, match="hold out"):
        tuning_split.make_tuning_split(
            [example_builders.split_pattern(tmp_path, features.TRAIN_SPLIT)], None, NUM_CLASSES, 0.25, 0
        )


# tuner_fn through TFX's Tuner executor, and the trials table read back


@pytest.mark.slow
def test_the_tfx_tuner_runs_a_seeded_search_and_its_trials_are_read_back(
    shared_speaker_artifact: dict[str, list], tmp_path: pathlib.Path
) -> None:
    examples = standard_artifacts.Examples()
    examples.uri = str(shared_speaker_artifact["uri"][0])
    examples.split_names = json.dumps([features.TRAIN_SPLIT, features.EVAL_SPLIT])
    outputs = {}
    for key, artifact_type in (
        (trials.BEST_HYPERPARAMETERS_KEY, standard_artifacts.HyperParameters),
        (trials.TUNER_RESULTS_KEY, standard_artifacts.TunerResults),
    ):
        artifact = artifact_type()
        artifact.uri = str(tmp_path / key)
        pathlib.Path(artifact.uri).mkdir()
        outputs[key] = [artifact]
    exec_properties = {
        "tuner_fn": "components.tuner.search.tuner_fn",
        "train_args": json.dumps({"splits": [features.TRAIN_SPLIT]}),
        "eval_args": json.dumps({"splits": [features.EVAL_SPLIT]}),
        "custom_config": json.dumps(
            TunerConfig(max_trials=2, epochs_per_trial=1, batch_size=16).to_custom_config()
        ),
    }
    executor = tuner_executor.Executor(
        tuner_executor.base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path / "tmp"), unique_id="1")
    )
    executor.Do({"examples": [examples]}, outputs, exec_properties)

    table = trials.read_trials_table(outputs[trials.TUNER_RESULTS_KEY][0].uri)
    best = trials.read_best_hyperparameters(outputs[trials.BEST_HYPERPARAMETERS_KEY][0].uri)
    assert len(table) == 2
    assert all(row.status == trials.COMPLETED_STATUS and 0.0 <= row.objective <= 1.0 for row in table)
    assert len({row.trial_id for row in table}) == 2
    assert table[0].architecture() == ClassifierArchitecture(
        REFERENCE_HIDDEN_BLOCKS, TrainerConfig.learning_rate
    ), "the first trial is the reference"
    assert table[1].architecture() != table[0].architecture()
    best_row = max(table, key=lambda row: row.objective)
    assert best_row.hyperparameters == best
    assert ClassifierArchitecture.from_tuner_hyperparameters({"values": best}) == best_row.architecture()
    lines = trials.format_trials_lines(table, best)
    assert lines[0].startswith("Tuner trials (2 completed; objective val_auc")
    assert sum("(chosen)" in line for line in lines) == 1
    assert lines[-1].startswith("Chosen hyperparameters: Dense ")


def test_reading_a_missing_or_malformed_trials_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"no tuner_results\.json"):
        trials.read_trials_table(str(tmp_path))
    (tmp_path / trials.TUNER_RESULTS_FILENAME).write_text('{"trial_id": 1}')
    with pytest.raises(InvalidArgumentError, match="not a list of trials"):
        trials.read_trials_table(str(tmp_path))
    (tmp_path / trials.BEST_HYPERPARAMETERS_FILENAME).write_text("[]")
    with pytest.raises(InvalidArgumentError, match="has no values"):
        trials.read_best_hyperparameters(str(tmp_path))


def test_search_targets_validation_auc() -> None:
    tuner = search.build_tuner(TunerConfig(max_trials=4), "/tmp/unused-tuner-dir-for-test")
    assert tuner.oracle.objective.name == "val_auc"
    assert tuner.oracle.objective.direction == "max"
    assert tuner.oracle.max_trials == 4
    assert isinstance(tuner.oracle, keras_tuner.oracles.BayesianOptimizationOracle)


def test_when_every_train_speaker_is_also_in_eval_the_split_warns_and_still_holds_speakers_out(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    patches = example_builders.synthetic_patches(ACCENTS, 6, 1, seed=1)
    example_builders.write_split(tmp_path, features.TRAIN_SPLIT, patches)
    example_builders.write_split(tmp_path, features.EVAL_SPLIT, patches[::2])
    files = {
        split: [example_builders.split_pattern(tmp_path, split)]
        for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT)
    }
    with caplog.at_level("WARNING", logger=tuning_split.__name__):
        split = tuning_split.make_tuning_split(
            files[features.TRAIN_SPLIT], files[features.EVAL_SPLIT], NUM_CLASSES, 0.25, 0
        )
    assert split.validation_speakers and not split.validation_speakers & split.train_speakers
    assert any("utterance split" in record.getMessage() for record in caplog.records)
