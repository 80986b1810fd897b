"""Tests of the accent classifier, its training run_fn and its served SavedModel."""

from __future__ import annotations

import collections
import json
import logging
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components import clip_metrics, features
from components.errors import InvalidArgumentError
from components.trainer import data, export, model
from components.trainer.config import REFERENCE_HIDDEN_BLOCKS, ClassifierArchitecture, TrainerConfig
from components.yamnet import params
from tests import example_builders
from tests.unit import trainer_testing

CLASS_NAMES = features.DEFAULT_CLASS_NAMES
NOT_SPEECH_ID = features.not_speech_class_id(CLASS_NAMES)


# build_model


def test_build_model_has_the_reference_layers() -> None:
    classifier = model.build_model()

    layer_summary = [
        (
            type(layer).__name__,
            layer.name,
            getattr(layer, "units", None),
            getattr(getattr(layer, "activation", None), "__name__", None),
            getattr(layer, "rate", None),
        )
        for layer in classifier.layers
    ]
    assert layer_summary == [
        ("InputLayer", "embedding", None, None, None),
        ("Dense", "dense_1", 256, "relu", None),
        ("Dropout", "dropout_1", None, None, 0.15),
        ("Dense", "dense_2", 384, "relu", None),
        ("Dropout", "dropout_2", None, None, 0.2),
        ("Dense", "dense_3", 192, "relu", None),
        ("Dropout", "dropout_3", None, None, 0.25),
        ("Dense", "dense_4", 384, "relu", None),
        ("Dropout", "dropout_4", None, None, 0.2),
        ("Dense", model.OUTPUT_LAYER_NAME, 7, "softmax", None),
    ]
    assert tuple(classifier.input_shape) == (None, 1024)
    assert tuple(classifier.output_shape) == (None, 7)
    assert (
        classifier.count_params()
        == 1024 * 256 + 256 + 256 * 384 + 384 + 384 * 192 + 192 + 192 * 384 + 384 + 384 * 7 + 7
    )


def test_build_model_compiles_like_the_reference() -> None:
    classifier = model.build_model()

    assert isinstance(classifier.optimizer, keras.optimizers.Adam)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(1.9644e-5)
    assert isinstance(classifier.loss, keras.losses.CategoricalCrossentropy)
    embeddings = np.random.default_rng(0).random((8, 1024), dtype=np.float32)
    one_hot_labels = keras.utils.to_categorical(np.arange(8) % 7, 7)
    results = classifier.evaluate(embeddings, one_hot_labels, verbose=0, return_dict=True)
    assert set(results) == {"loss", "accuracy", "auc"}


def test_build_model_takes_the_number_of_classes_and_learning_rate() -> None:
    classifier = model.build_model(num_classes=4, learning_rate=1e-3)

    assert tuple(classifier.output_shape) == (None, 4)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(1e-3)
    probabilities = classifier.predict(np.zeros((3, 1024), np.float32), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(("num_classes", "learning_rate"), [(1, 1e-3), (7, 0.0), (7, -1.0)])
def test_build_model_rejects_bad_arguments(num_classes: int, learning_rate: float) -> None:
    with pytest.raises(ValueError):
        model.build_model(num_classes, learning_rate)


# class_weights_from_counts


def test_balanced_counts_give_unit_weights() -> None:
    assert model.class_weights_from_counts(np.full(7, 25), 7) == {
        class_index: 1.0 for class_index in range(7)
    }


def test_class_weights_balance_the_total_weight_of_each_class() -> None:
    counts = {0: 10, 1: 30, 2: 60}
    weights = model.class_weights_from_counts(counts, 3)

    assert weights == pytest.approx({0: 100 / 30, 1: 100 / 90, 2: 100 / 180})
    weighted_totals = [weights[class_index] * count for class_index, count in counts.items()]
    assert weighted_totals == pytest.approx([100 / 3] * 3)
    assert sum(weighted_totals) == pytest.approx(sum(counts.values()))


def test_absent_class_gets_zero_weight_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    counts = np.array([0, 40, 40, 20, 20, 0, 80])
    with caplog.at_level(logging.WARNING, logger=model.__name__):
        weights = model.class_weights_from_counts(counts, 7, CLASS_NAMES)

    assert all(math.isfinite(weight) for weight in weights.values())
    assert weights[0] == 0.0
    assert weights[5] == 0.0
    assert weights[1] == pytest.approx(200 / (5 * 40))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("Irish" in message for message in warnings)
    assert any("Welsh" in message for message in warnings)
    assert not any("Midlands" in message for message in warnings)


def test_class_weights_accept_a_sparse_mapping() -> None:
    weights = model.class_weights_from_counts({1: 5, 3: 15}, 4)

    assert weights == pytest.approx({0: 0.0, 1: 2.0, 2: 0.0, 3: 20 / 30})


@pytest.mark.parametrize(
    "counts",
    [np.zeros(3, dtype=int), np.array([1, -1, 2]), np.array([1, 2]), {0: 1, 5: 2}],
    ids=["all-zero", "negative", "wrong-length", "unknown-id"],
)
def test_class_weights_reject_bad_counts(counts: object) -> None:
    with pytest.raises(ValueError):
        model.class_weights_from_counts(counts, 3)


# TrainerConfig


def test_trainer_config_round_trips_through_custom_config_and_defaults_the_seed() -> None:
    config = TrainerConfig.from_custom_config(trainer_testing.TRAINING_CONFIG)

    assert config.seed == 0
    assert config.class_names == tuple(CLASS_NAMES)
    assert config.learning_rate == pytest.approx(1e-3)
    assert TrainerConfig.from_custom_config(config.to_custom_config()) == config


def test_trainer_config_is_plain_json_for_the_trainer() -> None:
    custom_config = TrainerConfig().to_custom_config()

    assert json.loads(json.dumps(custom_config)) == custom_config


@pytest.mark.parametrize(
    "missing_key",
    ["class_names", "epochs", "batch_size", "learning_rate", "early_stopping_patience"],
)
def test_custom_config_requires_every_key(missing_key: str) -> None:
    config = {key: value for key, value in trainer_testing.TRAINING_CONFIG.items() if key != missing_key}

    with pytest.raises(ValueError, match=missing_key):
        TrainerConfig.from_custom_config(config)


def test_custom_config_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="epoch"):
        TrainerConfig.from_custom_config({**trainer_testing.TRAINING_CONFIG, "epoch": 3})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("class_names", "Irish"),
        ("class_names", ["Irish"]),
        ("class_names", ["Irish", "Irish"]),
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", True),
        ("learning_rate", 0.0),
        ("learning_rate", "fast"),
        ("early_stopping_patience", -1),
        ("seed", -3),
    ],
)
def test_custom_config_rejects_bad_values(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        TrainerConfig.from_custom_config({**trainer_testing.TRAINING_CONFIG, key: value})


def test_custom_config_must_exist() -> None:
    with pytest.raises(ValueError, match="custom_config"):
        TrainerConfig.from_custom_config(None)


# clip_accuracy


def test_clip_accuracy_averages_speech_patches_per_clip() -> None:
    class_names = ("Irish", "Welsh", features.NOT_SPEECH_CLASS_NAME)
    patch_probabilities = np.array(
        [
            [0.6, 0.4, 0.0],  # clip a, Irish: speech patches average to Irish...
            [0.3, 0.7, 0.0],
            [0.8, 0.2, 0.0],
            [0.0, 0.0, 1.0],  # ...and its non-speech patch is ignored.
            [0.9, 0.1, 0.0],  # clip b, Welsh: predicted Irish, wrong.
            [0.1, 0.9, 0.0],  # clip c, Welsh: right.
            [0.0, 0.0, 1.0],  # clip d has no speech patch: not scored.
        ]
    )
    labels = np.array([0, 0, 0, 2, 1, 1, 2])
    clip_ids = [b"a", b"a", b"a", b"a", b"b", b"c", b"d"]
    accents = [b"Irish"] * 4 + [b"Welsh"] * 3

    result = clip_metrics.clip_metrics(patch_probabilities, labels, clip_ids, accents, class_names)

    assert result.to_json_dict() == {
        "clip_accuracy": pytest.approx(2 / 3),
        "num_clips": 3,
        "num_skipped_clips": 1,
    }


# data


def test_datasets_read_the_examples_artifact(tmp_path: pytest.TempPathFactory) -> None:
    patches = example_builders.write_examples_artifact(
        tmp_path, train_clips_per_accent=2, eval_clips_per_accent=1
    )
    train_pattern = example_builders.split_pattern(tmp_path, features.TRAIN_SPLIT)

    counts = data.count_labels([train_pattern], 7)
    expected = collections.Counter(patch.label for patch in patches[features.TRAIN_SPLIT])
    assert counts.tolist() == [expected.get(class_index, 0) for class_index in range(7)]

    batches = list(data.make_training_dataset([train_pattern], 7, batch_size=5, shuffle=False))
    embeddings = np.concatenate([batch_embeddings.numpy() for batch_embeddings, _ in batches])
    one_hot_labels = np.concatenate([batch_labels.numpy() for _, batch_labels in batches])
    assert embeddings.shape == (len(patches[features.TRAIN_SPLIT]), 1024)
    np.testing.assert_allclose(embeddings[0], patches[features.TRAIN_SPLIT][0].embedding)
    assert one_hot_labels.argmax(axis=1).tolist() == [patch.label for patch in patches[features.TRAIN_SPLIT]]
    np.testing.assert_array_equal(one_hot_labels.sum(axis=1), 1.0)


def test_datasets_read_plain_and_gzipped_files_together(tmp_path: pytest.TempPathFactory) -> None:
    patches = example_builders.write_examples_artifact(
        tmp_path, train_clips_per_accent=1, eval_clips_per_accent=1
    )
    plain_path = tmp_path / "Split-train" / "data_tfrecord-00001-of-00002"
    with tf.io.TFRecordWriter(str(plain_path)) as writer:
        for patch in patches[features.EVAL_SPLIT]:
            writer.write(example_builders.make_example(patch).SerializeToString())
    train_pattern = example_builders.split_pattern(tmp_path, features.TRAIN_SPLIT)

    counts = data.count_labels([train_pattern], 7)
    expected = collections.Counter(
        patch.label for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT) for patch in patches[split]
    )
    assert counts.tolist() == [expected.get(class_index, 0) for class_index in range(7)]


def test_count_labels_rejects_labels_outside_the_vocabulary(tmp_path: pytest.TempPathFactory) -> None:
    example_builders.write_examples_artifact(tmp_path, train_clips_per_accent=1, eval_clips_per_accent=1)

    with pytest.raises(ValueError, match="Label ids"):
        data.count_labels(example_builders.split_pattern(tmp_path, features.TRAIN_SPLIT), 3)


def test_missing_files_are_reported(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ValueError, match="No TFRecord file"):
        data.count_labels(str(tmp_path / "Split-train" / "*"), 7)


# The served model's clip aggregation, without YAMNet.


def _clip_module() -> export.AccentServingModule:
    return export.AccentServingModule(tf.Module(), model.build_model(), CLASS_NAMES)


def test_clip_probabilities_average_the_speech_patches() -> None:
    speech_a = [0.1, 0.5, 0.1, 0.1, 0.1, 0.05, 0.05]
    speech_b = [0.3, 0.1, 0.3, 0.1, 0.1, 0.05, 0.05]
    not_speech = [0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.9]
    patch_probabilities = tf.constant([speech_a, not_speech, speech_b], tf.float32)

    clip = _clip_module().clip_probabilities(patch_probabilities).numpy()

    np.testing.assert_allclose(clip, (np.array(speech_a) + np.array(speech_b)) / 2, rtol=1e-6)


def test_clip_probabilities_fall_back_to_every_patch_without_speech() -> None:
    not_speech = np.array([[0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.9], [0.1, 0.0, 0.0, 0.0, 0.0, 0.2, 0.7]])

    clip = _clip_module().clip_probabilities(tf.constant(not_speech, tf.float32)).numpy()

    np.testing.assert_allclose(clip, not_speech.mean(axis=0), rtol=1e-6)


def test_clip_probabilities_are_uniform_without_patches() -> None:
    clip = _clip_module().clip_probabilities(tf.zeros([0, 7], tf.float32)).numpy()

    np.testing.assert_allclose(clip, np.full(7, 1 / 7), rtol=1e-6)


# Export and run_fn, on the real offline YAMNet export.


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> trainer_testing.TrainedRun:
    return trainer_testing.trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def served_model(trained_run: trainer_testing.TrainedRun) -> tf.Module:
    return tf.saved_model.load(str(trained_run.serving_model_dir))


def _serialized_examples(embeddings: np.ndarray) -> tf.Tensor:
    examples = [
        example_builders.make_example(
            example_builders.Patch(
                embedding=embedding,
                label=0,
                accent="Irish",
                speaker_id="speaker",
                gender="male",
                clip_id="clip",
                patch_index=index,
                is_speech=1,
            )
        ).SerializeToString()
        for index, embedding in enumerate(embeddings)
    ]
    return tf.constant(examples)


@pytest.mark.slow
def test_from_examples_matches_the_keras_model(
    tmp_path: pytest.TempPathFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    keras.utils.set_random_seed(3)
    classifier = model.build_model()
    embeddings = np.random.default_rng(5).random((6, 1024), dtype=np.float32)
    output_dir = export.export_serving_model(
        classifier, trainer_testing.yamnet_testing.offline_export_dir(tmp_path_factory), CLASS_NAMES, tmp_path
    )

    loaded = tf.saved_model.load(output_dir)
    served = loaded.signatures[features.EXAMPLES_SIGNATURE](examples=_serialized_examples(embeddings))

    probabilities = served[features.PROBABILITIES_OUTPUT_KEY].numpy()
    np.testing.assert_allclose(probabilities, classifier.predict(embeddings, verbose=0), rtol=1e-5, atol=1e-6)
    assert export.read_served_class_names(output_dir) == list(CLASS_NAMES)


@pytest.fixture(scope="module")
def untrained_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[tf.Module, keras.Model]:
    keras.utils.set_random_seed(7)
    classifier = model.build_model()
    yamnet_dir = trainer_testing.yamnet_testing.offline_export_dir(tmp_path_factory)
    output_dir = export.export_serving_model(
        classifier, yamnet_dir, CLASS_NAMES, tmp_path_factory.mktemp("untrained-served")
    )
    return tf.saved_model.load(output_dir), classifier


def _speech_like_waveform() -> tf.Tensor:
    return tf.constant(trainer_testing.yamnet_testing.speech_like_clips()[0])


@pytest.mark.parametrize(
    ("bad_sample", "message"),
    [
        (np.nan, "NaN or Inf"),
        (np.inf, "NaN or Inf"),
        (-np.inf, "NaN or Inf"),
        (1e6, r"outside \[-1, 1\]"),
        (-1.5, r"outside \[-1, 1\]"),
    ],
)
def test_serving_default_refuses_non_finite_and_out_of_range_samples(
    untrained_export: tuple[tf.Module, keras.Model], bad_sample: float, message: str
) -> None:
    served, _ = untrained_export
    waveform = _speech_like_waveform().numpy()
    waveform[100] = bad_sample

    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served.signatures[features.SERVING_SIGNATURE](waveform=tf.constant(waveform))


def test_serving_default_accepts_full_scale_samples(untrained_export: tuple[tf.Module, keras.Model]) -> None:
    served, _ = untrained_export
    waveform = _speech_like_waveform().numpy()
    waveform[100] = 1.0
    waveform[200] = -1.0
    waveform[300] = export.MAX_ABS_AMPLITUDE
    waveform[400] = -export.MAX_ABS_AMPLITUDE

    outputs = served.signatures[features.SERVING_SIGNATURE](waveform=tf.constant(waveform))

    assert np.isfinite(outputs[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy()).all()


@pytest.mark.slow
def test_served_export_accepts_a_dict_form_yamnet(
    untrained_export: tuple[tf.Module, keras.Model],
    tmp_path: pytest.TempPathFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    served, classifier = untrained_export
    dict_form_dir = trainer_testing.yamnet_testing.write_dict_form_yamnet(
        trainer_testing.yamnet_testing.offline_export_dir(tmp_path_factory), tmp_path / "dict_form"
    )
    output_dir = export.export_serving_model(classifier, dict_form_dir, CLASS_NAMES, tmp_path / "served")
    from_dict_form = tf.saved_model.load(output_dir).signatures[features.SERVING_SIGNATURE]
    waveform = _speech_like_waveform()

    expected = served.signatures[features.SERVING_SIGNATURE](waveform=waveform)
    outputs = from_dict_form(waveform=waveform)

    for key in (features.CLASS_PROBABILITIES_OUTPUT_KEY, features.PATCH_PROBABILITIES_OUTPUT_KEY):
        np.testing.assert_allclose(outputs[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-6)
    assert outputs[features.ACCENT_OUTPUT_KEY].numpy() == expected[features.ACCENT_OUTPUT_KEY].numpy()


class HubLikeYamnet(tf.Module):
    """YAMNet with only the TF Hub contract, ``__call__(waveform) -> (scores, embeddings, log_mel)``."""

    def __init__(self, yamnet: tf.Module) -> None:
        super().__init__()
        self.yamnet = yamnet

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, waveform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return self.yamnet(waveform)


def _call_only_yamnet_dir(
    yamnet_form: str, tmp_path: pytest.TempPathFactory, tmp_path_factory: pytest.TempPathFactory
):
    offline_dir = trainer_testing.yamnet_testing.offline_export_dir(tmp_path_factory)
    if yamnet_form == "dict_form":
        return trainer_testing.yamnet_testing.write_dict_form_yamnet(offline_dir, tmp_path / "dict_form")
    hub_like_dir = tmp_path / "hub_like"
    tf.saved_model.save(HubLikeYamnet(tf.saved_model.load(str(offline_dir))), str(hub_like_dir))
    return hub_like_dir


@pytest.mark.slow
@pytest.mark.parametrize("yamnet_form", ["hub_like", "dict_form"])
def test_serving_batch_is_exported_for_a_yamnet_without_embed_patches(
    untrained_export: tuple[tf.Module, keras.Model],
    yamnet_form: str,
    tmp_path: pytest.TempPathFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _, classifier = untrained_export
    yamnet_dir = _call_only_yamnet_dir(yamnet_form, tmp_path, tmp_path_factory)
    assert not hasattr(tf.saved_model.load(str(yamnet_dir)), "embed_patches")
    output_dir = export.export_serving_model(classifier, yamnet_dir, CLASS_NAMES, tmp_path / "served")
    served = tf.saved_model.load(output_dir)
    speech = trainer_testing.yamnet_testing.speech_like_clips()[0]
    # Shorter than one patch (15,600 samples), one patch and a bit, and several patches.
    clips = [speech[:9000], speech[:15601], speech[:32000]]
    waveforms = np.full((len(clips), 40000), 0.5, dtype=np.float32)
    for row, clip in enumerate(clips):
        waveforms[row, : clip.size] = clip
    lengths = np.array([clip.size for clip in clips], dtype=np.int32)

    batched = served.signatures[export.BATCH_SIGNATURE](
        waveforms=tf.constant(waveforms), num_samples=tf.constant(lengths)
    )

    num_patches = batched[export.NUM_PATCHES_OUTPUT_KEY].numpy()
    assert num_patches.tolist() == [params.num_patches(int(length)) for length in lengths]
    patch_probabilities = batched[features.PATCH_PROBABILITIES_OUTPUT_KEY].numpy()
    assert patch_probabilities.shape == (len(clips), max(num_patches), len(CLASS_NAMES))
    for row, clip in enumerate(clips):
        expected = served.signatures[features.SERVING_SIGNATURE](waveform=tf.constant(clip))
        assert (
            batched[features.ACCENT_OUTPUT_KEY].numpy()[row] == expected[features.ACCENT_OUTPUT_KEY].numpy()
        )
        np.testing.assert_allclose(
            batched[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy()[row],
            expected[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy(),
            atol=1e-5,
        )
        np.testing.assert_allclose(
            patch_probabilities[row, : num_patches[row]],
            expected[features.PATCH_PROBABILITIES_OUTPUT_KEY].numpy(),
            atol=1e-5,
        )
        assert not patch_probabilities[row, num_patches[row] :].any()


def test_export_rejects_class_names_that_do_not_match(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ValueError, match="3 class names"):
        export.export_serving_model(
            model.build_model(), tmp_path / "yamnet", ["a", "b", "c"], tmp_path / "out"
        )


@pytest.mark.slow
def test_served_model_has_the_contract_signatures(served_model: tf.Module) -> None:
    serving = served_model.signatures[features.SERVING_SIGNATURE]
    assert set(serving.structured_input_signature[1]) == {features.WAVEFORM_INPUT_KEY}
    assert set(serving.structured_outputs) == {
        features.CLASS_PROBABILITIES_OUTPUT_KEY,
        features.ACCENT_OUTPUT_KEY,
        features.PATCH_PROBABILITIES_OUTPUT_KEY,
    }
    from_examples = served_model.signatures[features.EXAMPLES_SIGNATURE]
    assert set(from_examples.structured_input_signature[1]) == {features.EXAMPLES_INPUT_KEY}
    assert set(from_examples.structured_outputs) == {features.PROBABILITIES_OUTPUT_KEY}
    assert [name.decode() for name in served_model.class_names.numpy()] == list(CLASS_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("num_samples", [0, 8000, 15600, 15601, 23280, 23281, 40000])
def test_serving_default_classifies_a_waveform(served_model: tf.Module, num_samples: int) -> None:
    waveform = 0.1 * np.sin(np.arange(num_samples) * 2 * np.pi * 220 / features.SAMPLE_RATE).astype(
        np.float32
    )

    outputs = served_model.signatures[features.SERVING_SIGNATURE](waveform=tf.constant(waveform))

    patch_probabilities = outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY].numpy()
    class_probabilities = outputs[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy()
    accent = outputs[features.ACCENT_OUTPUT_KEY].numpy().decode()
    assert patch_probabilities.dtype == np.float32
    assert patch_probabilities.shape == (params.num_patches(num_samples), 7)
    assert class_probabilities.dtype == np.float32
    assert class_probabilities.shape == (7,)
    assert outputs[features.ACCENT_OUTPUT_KEY].dtype == tf.string
    assert outputs[features.ACCENT_OUTPUT_KEY].shape == ()
    assert np.isfinite(class_probabilities).all()
    assert class_probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert accent in CLASS_NAMES
    assert accent == CLASS_NAMES[int(np.argmax(class_probabilities))]
    is_speech = patch_probabilities.argmax(axis=1) != NOT_SPEECH_ID
    expected = (
        patch_probabilities[is_speech].mean(axis=0) if is_speech.any() else patch_probabilities.mean(axis=0)
    )
    np.testing.assert_allclose(class_probabilities, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_from_examples_agrees_with_serving_default(
    served_model: tf.Module, trained_run: trainer_testing.TrainedRun
) -> None:
    waveform = np.random.default_rng(11).normal(0.0, 0.1, 40000).astype(np.float32)
    yamnet = tf.saved_model.load(str(trained_run.yamnet_dir))
    _, embeddings, _ = yamnet(tf.constant(waveform))

    from_waveform = served_model.signatures[features.SERVING_SIGNATURE](waveform=tf.constant(waveform))
    from_examples = served_model.signatures[features.EXAMPLES_SIGNATURE](
        examples=_serialized_examples(embeddings.numpy())
    )

    np.testing.assert_allclose(
        from_examples[features.PROBABILITIES_OUTPUT_KEY].numpy(),
        from_waveform[features.PATCH_PROBABILITIES_OUTPUT_KEY].numpy(),
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.slow
def test_run_fn_learns_the_eval_split(
    served_model: tf.Module, trained_run: trainer_testing.TrainedRun
) -> None:
    eval_patches = trained_run.patches[features.EVAL_SPLIT]
    embeddings = np.stack([patch.embedding for patch in eval_patches])
    labels = np.array([patch.label for patch in eval_patches])

    outputs = served_model.signatures[features.EXAMPLES_SIGNATURE](examples=_serialized_examples(embeddings))

    predictions = outputs[features.PROBABILITIES_OUTPUT_KEY].numpy().argmax(axis=1)
    chance = max(collections.Counter(labels.tolist()).values()) / len(labels)
    assert (predictions == labels).mean() > chance


@pytest.mark.slow
def test_run_fn_writes_class_names_logs_and_clip_metrics(trained_run: trainer_testing.TrainedRun) -> None:
    assert export.read_served_class_names(trained_run.serving_model_dir) == list(CLASS_NAMES)
    assert list(trained_run.model_run_dir.rglob("events.out.tfevents.*"))
    trainer_clip_metrics = json.loads((trained_run.model_run_dir / model.CLIP_METRICS_FILENAME).read_text())
    eval_clips = {patch.clip_id for patch in trained_run.patches[features.EVAL_SPLIT]}
    assert trainer_clip_metrics["num_clips"] == len(eval_clips)
    assert trainer_clip_metrics["num_skipped_clips"] == 0
    assert 0.0 <= trainer_clip_metrics["clip_accuracy"] <= 1.0


def test_run_fn_requires_the_yamnet_base_model(tmp_path: pytest.TempPathFactory) -> None:
    fn_args = tfx.components.FnArgs(
        train_files=[str(tmp_path / "*")],
        eval_files=[str(tmp_path / "*")],
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "run"),
        base_model=None,
        custom_config=dict(trainer_testing.TRAINING_CONFIG),
    )
    with pytest.raises(ValueError, match="base_model"):
        model.run_fn(fn_args)


# The Tuner's best hyperparameters (issue #14)

TUNED_VALUES = {
    "num_hidden_layers": 3,
    "units_1": 128,
    "dropout_1": 0.0,
    "units_2": 512,
    "dropout_2": 0.45,
    "units_3": 160,
    "dropout_3": 0.30000000000000004,
    # KerasTuner may keep the values of deeper, inactive layers: they must not count.
    "units_4": 224,
    "dropout_4": 0.1,
    "learning_rate": 3.1e-4,
}
TUNED_BLOCKS = ((128, 0.0), (512, 0.45), (160, 0.30000000000000004))


def _dense_and_dropout(classifier: keras.Model) -> list[tuple[int, float]]:
    units = [layer.units for layer in classifier.layers if layer.name.startswith("dense_")]
    rates = [layer.rate for layer in classifier.layers if layer.name.startswith("dropout_")]
    return list(zip(units, rates, strict=True))


def test_build_model_takes_hidden_blocks() -> None:
    classifier = model.build_model(7, 3.1e-4, TUNED_BLOCKS)

    assert _dense_and_dropout(classifier) == list(TUNED_BLOCKS)
    assert classifier.layers[-1].name == model.OUTPUT_LAYER_NAME
    assert float(classifier.optimizer.learning_rate) == pytest.approx(3.1e-4)


@pytest.mark.parametrize("hidden_blocks", [(), ((0, 0.1),), ((128, 1.0),), ((128, -0.1),)])
def test_build_model_rejects_bad_hidden_blocks(hidden_blocks: tuple) -> None:
    with pytest.raises(ValueError):
        model.build_model(7, 1e-3, hidden_blocks)


@pytest.mark.parametrize("hyperparameters", [None, {}])
def test_without_the_tuner_the_trainer_builds_the_reference(hyperparameters: dict | None) -> None:
    config = TrainerConfig(learning_rate=2e-4)
    architecture = model.classifier_architecture(hyperparameters, config)

    assert architecture == ClassifierArchitecture(REFERENCE_HIDDEN_BLOCKS, 2e-4)
    assert architecture.units == (256, 384, 192, 384)
    assert architecture.dropout_rates == (0.15, 0.2, 0.25, 0.2)


def test_the_tuners_best_hyperparameters_choose_the_architecture() -> None:
    config = TrainerConfig(learning_rate=2e-4)
    for hyperparameters in ({"space": [], "values": TUNED_VALUES}, TUNED_VALUES):
        architecture = model.classifier_architecture(hyperparameters, config)
        assert architecture.hidden_blocks == TUNED_BLOCKS
        assert architecture.learning_rate == 3.1e-4
    assert ClassifierArchitecture.from_hyperparameter_values(
        ClassifierArchitecture(TUNED_BLOCKS, 3.1e-4).to_hyperparameter_values()
    ) == ClassifierArchitecture(TUNED_BLOCKS, 3.1e-4)


@pytest.mark.parametrize("missing", ["num_hidden_layers", "learning_rate", "units_3", "dropout_2"])
def test_incomplete_hyperparameters_are_a_clear_error(missing: str) -> None:
    values = {name: value for name, value in TUNED_VALUES.items() if name != missing}
    with pytest.raises(InvalidArgumentError, match=missing):
        model.classifier_architecture({"values": values}, TrainerConfig())


@pytest.mark.slow
def test_run_fn_saves_the_reference_classifier_without_the_tuner(
    trained_run: trainer_testing.TrainedRun,
) -> None:
    classifier = keras.models.load_model(trained_run.model_run_dir / model.CLASSIFIER_FILENAME)
    assert _dense_and_dropout(classifier) == list(REFERENCE_HIDDEN_BLOCKS)


@pytest.mark.slow
def test_run_fn_trains_the_tuners_best_model(
    trained_run: trainer_testing.TrainedRun, tmp_path: pytest.TempPathFactory
) -> None:
    fn_args = tfx.components.FnArgs(
        train_files=[example_builders.split_pattern(trained_run.examples_uri, features.TRAIN_SPLIT)],
        eval_files=[example_builders.split_pattern(trained_run.examples_uri, features.EVAL_SPLIT)],
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "model_run"),
        base_model=str(trained_run.yamnet_dir),
        custom_config={**trainer_testing.TRAINING_CONFIG, "epochs": 1},
        hyperparameters={"space": [], "values": TUNED_VALUES},
    )
    model.run_fn(fn_args)

    classifier = keras.models.load_model(tmp_path / "model_run" / model.CLASSIFIER_FILENAME)
    assert _dense_and_dropout(classifier) == list(TUNED_BLOCKS)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(3.1e-4)
    assert (tmp_path / "serving" / "saved_model.pb").is_file()
