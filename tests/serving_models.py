"""Small SavedModels that honour the serving contract, for serving tests.

``build_saved_model`` writes a tf.Module whose ``serving_default`` signature
takes a 16 kHz mono float32 ``waveform`` and returns ``class_probabilities``,
``accent`` and ``patch_probabilities`` like the real model (YAMNet plus the
classifier), but computes them from a few simple per-patch statistics and a
fixed linear map. Each version adds a large bias to one class, so the accent a
version predicts (``expected_accent``) tells versions apart. A waveform with
NaN or Inf samples makes the model raise, to test how errors inside a model
are reported. Its ``from_examples`` signature takes serialized tf.Examples
with an ``embedding`` feature, like the real model's.

``build_blocking_saved_model`` writes a model whose ``serving_default`` counts
its calls and blocks until the test releases it (``release_blocking_model``),
to test the server's limits on concurrent and cancelled work.

``push_model_version`` publishes a built model under a TF Serving base path the
way TFX's Pusher does: it copies into a temporary directory next to the
version directory, then renames it into place.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from components import features
from components.serving import server
from components.yamnet import params

# YAMNet's patch geometry: 0.975 s windows with a 0.48 s hop at 16 kHz.
PATCH_WINDOW_SAMPLES = params.PATCH_WINDOW_SAMPLES
PATCH_HOP_SAMPLES = params.PATCH_HOP_SAMPLES

# Logit added to the version's class, so it wins whatever the waveform.
VERSION_BIAS = 6.0

NUM_PATCH_STATISTICS = 5

# How often a waiting BlockingAccentModel call looks for its release file.
BLOCKING_POLL_MICROSECONDS = 20_000


def expected_class_id(version: int) -> int:
    """Returns the class a fixture model of ``version`` predicts for any waveform."""
    return (version - 1) % len(features.DEFAULT_CLASS_NAMES)


def expected_accent(version: int) -> str:
    """Returns the accent a fixture model of ``version`` predicts for any waveform."""
    return features.DEFAULT_CLASS_NAMES[expected_class_id(version)]


class FixtureAccentModel(tf.Module):
    """A deterministic stand-in for the served accent model."""

    def __init__(self, version: int) -> None:
        super().__init__(name="fixture_accent_model")
        num_classes = len(features.DEFAULT_CLASS_NAMES)
        statistic_index, class_index = np.meshgrid(
            np.arange(NUM_PATCH_STATISTICS), np.arange(num_classes), indexing="ij"
        )
        weights = np.sin(1.0 + statistic_index * 1.7 + class_index * 0.9).astype(np.float32)
        bias = np.zeros(num_classes, dtype=np.float32)
        bias[expected_class_id(version)] = VERSION_BIAS
        self.weights = tf.Variable(weights, trainable=False, name="weights")
        self.bias = tf.Variable(bias, trainable=False, name="bias")
        self.class_names = tf.constant(features.DEFAULT_CLASS_NAMES)

    @tf.function(
        input_signature=[
            tf.TensorSpec(shape=[None], dtype=tf.float32, name=features.WAVEFORM_INPUT_KEY),
        ]
    )
    def serve(self, waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        """Scores one waveform patch by patch, like YAMNet plus the classifier."""
        waveform = tf.debugging.check_numerics(waveform, "the fixture model rejects NaN and Inf samples")
        num_samples = tf.shape(waveform)[0]
        samples_after_first_patch = tf.maximum(0, num_samples - PATCH_WINDOW_SAMPLES)
        num_hops = (samples_after_first_patch + PATCH_HOP_SAMPLES - 1) // PATCH_HOP_SAMPLES
        padded_length = PATCH_WINDOW_SAMPLES + num_hops * PATCH_HOP_SAMPLES
        padded = tf.pad(waveform, [[0, padded_length - num_samples]])
        patches = tf.signal.frame(padded, PATCH_WINDOW_SAMPLES, PATCH_HOP_SAMPLES)
        zero_crossings = tf.reduce_mean(tf.abs(tf.sign(patches[:, 1:]) - tf.sign(patches[:, :-1])), axis=1)
        statistics = tf.stack(
            [
                tf.reduce_mean(patches, axis=1),
                tf.sqrt(tf.reduce_mean(tf.square(patches), axis=1)),
                tf.reduce_max(tf.abs(patches), axis=1),
                tf.math.reduce_std(patches, axis=1),
                zero_crossings / 2.0,
            ],
            axis=1,
        )
        patch_probabilities = tf.nn.softmax(tf.matmul(statistics * 4.0, self.weights) + self.bias)
        class_probabilities = tf.reduce_mean(patch_probabilities, axis=0)
        accent = tf.gather(self.class_names, tf.argmax(class_probabilities))
        return {
            features.CLASS_PROBABILITIES_OUTPUT_KEY: class_probabilities,
            features.ACCENT_OUTPUT_KEY: accent,
            features.PATCH_PROBABILITIES_OUTPUT_KEY: patch_probabilities,
        }

    @tf.function(
        input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name=features.EXAMPLES_INPUT_KEY)]
    )
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Scores serialized per-patch tf.Examples from the first values of their embedding."""
        parsed = tf.io.parse_example(
            examples,
            {features.EMBEDDING_KEY: tf.io.FixedLenFeature([features.EMBEDDING_SIZE], tf.float32)},
        )
        statistics = parsed[features.EMBEDDING_KEY][:, :NUM_PATCH_STATISTICS]
        return {
            features.PROBABILITIES_OUTPUT_KEY: tf.nn.softmax(tf.matmul(statistics, self.weights) + self.bias)
        }


def build_saved_model(export_dir: Path, version: int) -> Path:
    """Writes a fixture SavedModel of ``version`` to ``export_dir``.

    Args:
        export_dir: Directory to create; it must not exist yet.
        version: The model version; it picks the class the model favours.

    Returns:
        ``export_dir``.
    """
    model = FixtureAccentModel(version)
    signatures = {
        features.SERVING_SIGNATURE: model.serve,
        features.EXAMPLES_SIGNATURE: model.serve_examples,
    }
    tf.saved_model.save(model, str(export_dir), signatures=signatures)
    return export_dir


class BlockingAccentModel(tf.Module):
    """A served model whose every call counts itself, then waits until the test releases it.

    A waiting call looks at its ``released`` variable every
    ``BLOCKING_POLL_MICROSECONDS`` and sleeps in between (tf.data's sleep), so
    it uses next to no CPU. ``release_blocking_model`` sets the variable.
    """

    def __init__(self) -> None:
        super().__init__(name="blocking_accent_model")
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False, name="calls")
        self.released = tf.Variable(False, trainable=False, name="released")
        self.class_names = tf.constant(features.DEFAULT_CLASS_NAMES)

    def _sleep_once(self) -> tf.Tensor:
        one_element = tf.data.experimental.to_variant(tf.data.Dataset.range(1))
        sleeping = tf.raw_ops.SleepDataset(
            input_dataset=one_element,
            sleep_microseconds=BLOCKING_POLL_MICROSECONDS,
            output_types=[tf.int64],
            output_shapes=[tf.TensorShape([])],
        )
        dataset = tf.data.experimental.from_variant(sleeping, tf.TensorSpec([], tf.int64))
        return dataset.reduce(tf.constant(0, tf.int64), lambda total, element: total + element)

    @tf.function(
        input_signature=[
            tf.TensorSpec(shape=[None], dtype=tf.float32, name=features.WAVEFORM_INPUT_KEY),
        ]
    )
    def serve(self, waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        """Counts the call, waits for the release, then answers the first class for any waveform."""
        self.calls.assign_add(1)
        num_polls = tf.constant(0, tf.int64)
        while not self.released:
            num_polls += 1 + self._sleep_once()
        num_classes = len(features.DEFAULT_CLASS_NAMES)
        class_probabilities = tf.one_hot(0, num_classes) + 0.0 * tf.cast(num_polls, tf.float32)
        return {
            features.CLASS_PROBABILITIES_OUTPUT_KEY: class_probabilities + 0.0 * tf.reduce_mean(waveform),
            features.ACCENT_OUTPUT_KEY: self.class_names[0],
            features.PATCH_PROBABILITIES_OUTPUT_KEY: class_probabilities[tf.newaxis, :],
        }


def build_blocking_saved_model(export_dir: Path) -> Path:
    """Writes a ``BlockingAccentModel`` to ``export_dir``.

    Args:
        export_dir: Directory to create; it must not exist yet.

    Returns:
        ``export_dir``.
    """
    model = BlockingAccentModel()
    tf.saved_model.save(model, str(export_dir), signatures={features.SERVING_SIGNATURE: model.serve})
    return export_dir


def _served_blocking_model(running: server.RunningServer) -> tf.Module:
    current = running.manager.current()
    if current is None:
        raise ValueError("the server has not loaded the blocking model yet")
    return current.saved_model


def release_blocking_model(running: server.RunningServer) -> None:
    """Lets every waiting and every later call of the ``BlockingAccentModel`` ``running`` serves finish."""
    _served_blocking_model(running).released.assign(True)


def blocking_model_calls(running: server.RunningServer) -> int:
    """Returns how many calls the ``BlockingAccentModel`` served by ``running`` has started."""
    return int(_served_blocking_model(running).calls.numpy())


def cached_saved_model(cache_root: Path, version: int) -> Path:
    """Returns a fixture SavedModel of ``version`` under ``cache_root``, building it once.

    Args:
        cache_root: A directory that lives for the whole test session, e.g.
            ``tmp_path_factory.getbasetemp() / "serving_models"``.
        version: The model version.

    Returns:
        The SavedModel directory.
    """
    model_dir = cache_root / f"version-{version}"
    if not (model_dir / "saved_model.pb").exists():
        cache_root.mkdir(parents=True, exist_ok=True)
        staging_dir = cache_root / f".staging-{version}-{uuid.uuid4().hex}"
        build_saved_model(staging_dir, version)
        staging_dir.rename(model_dir)
    return model_dir


def push_model_version(source_dir: Path, model_base_path: Path, version: int) -> Path:
    """Publishes a SavedModel as ``<model_base_path>/<version>`` the way TFX's Pusher does.

    Args:
        source_dir: A SavedModel directory.
        model_base_path: The served model's base path.
        version: The version number to publish as.

    Returns:
        The new version directory.
    """
    model_base_path.mkdir(parents=True, exist_ok=True)
    staging_dir = model_base_path / f".pushing-{version}-{uuid.uuid4().hex}"
    shutil.copytree(source_dir, staging_dir)
    version_dir = model_base_path / str(version)
    staging_dir.rename(version_dir)
    return version_dir


def push_cached_version(cache_root: Path, model_base_path: Path, version: int) -> Path:
    """Publishes the fixture SavedModel of ``version`` (``cached_saved_model``) as that version.

    Args:
        cache_root: The session's SavedModel cache, as for ``cached_saved_model``.
        model_base_path: The served model's base path.
        version: The fixture model's version, and the version number to publish it as.

    Returns:
        The new version directory.
    """
    return push_model_version(cached_saved_model(cache_root, version), model_base_path, version)


def make_waveform(seconds: float, seed: int = 0) -> np.ndarray:
    """Returns a reproducible 16 kHz float32 test waveform in [-1, 1].

    Args:
        seconds: Duration.
        seed: Seed of the noise and of the tone's pitch.

    Returns:
        A 1-D float32 array.
    """
    generator = np.random.default_rng(seed)
    num_samples = round(seconds * features.SAMPLE_RATE)
    time = np.arange(num_samples) / features.SAMPLE_RATE
    frequency = generator.uniform(100.0, 1000.0)
    tone = 0.5 * np.sin(2.0 * np.pi * frequency * time) * np.linspace(0.2, 1.0, num_samples)
    noise = generator.normal(0.0, 0.05, num_samples)
    return np.clip(tone + noise, -1.0, 1.0).astype(np.float32)


def write_wav(path: Path, waveform: np.ndarray, sample_rate: int = features.SAMPLE_RATE) -> Path:
    """Writes a mono 16-bit PCM WAV file.

    Args:
        path: Where to write.
        waveform: Float samples in [-1, 1].
        sample_rate: Samples per second.

    Returns:
        ``path``.
    """
    pcm = np.round(np.clip(waveform, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as wav_file:
        wav_file.setnchannels(1)
        wav_file.setsampwidth(2)
        wav_file.setframerate(sample_rate)
        wav_file.writeframes(pcm.tobytes())
    return path


@contextlib.contextmanager
def loopback_server(model_base_path: Path, model_name: str, version: int) -> Iterator[server.RunningServer]:
    """Runs the project's server on 127.0.0.1 (ephemeral port); yields it once ``version`` is served."""
    running = server.start_server(
        model_base_path, model_name, host="127.0.0.1", port=0, poll_wait_seconds=0.2
    )
    try:
        assert running.manager.wait_for_version(version, timeout_seconds=30.0) is not None
        yield running
    finally:
        running.stop(grace_seconds=1.0)


def record_rpcs(running: server.RunningServer, monkeypatch: Any) -> dict[str, list[str]]:
    """Records what ``running`` answers: each Predict's signature and each GetModelMetadata's model.

    Args:
        running: The server.
        monkeypatch: pytest's ``monkeypatch``, which restores the servicer afterwards.

    Returns:
        ``{"predict_signatures": [...], "metadata_models": [...]}``, filled as requests arrive.
    """
    servicer = running.prediction_servicer
    recorded: dict[str, list[str]] = {"predict_signatures": [], "metadata_models": []}
    real_predict = servicer._predict
    real_get_model_metadata = servicer._get_model_metadata

    def predict(request: Any, *args: object) -> Any:
        recorded["predict_signatures"].append(request.model_spec.signature_name)
        return real_predict(request, *args)

    def get_model_metadata(request: Any, *args: object) -> Any:
        recorded["metadata_models"].append(request.model_spec.name)
        return real_get_model_metadata(request, *args)

    monkeypatch.setattr(servicer, "_predict", predict)
    monkeypatch.setattr(servicer, "_get_model_metadata", get_model_metadata)
    return recorded
