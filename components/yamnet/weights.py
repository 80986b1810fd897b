"""Weights of the Keras YAMNet: the official ``yamnet.h5``, or offline weights.

``load_h5_weights`` copies the 110 arrays of the published ``yamnet.h5``
(tensorflow/models, research/audioset/yamnet) into the network with h5py,
because Keras 3 cannot read a file whose layer names contain '/'.

``set_offline_weights`` gives the network deterministic, seeded, UNTRAINED
weights whose batch-norm statistics are calibrated on synthetic speech-like
audio, so that embeddings vary with the input instead of collapsing to zero.
They are for plumbing (tests, demos without internet): their scores mean
nothing, their top class says nothing about speech, and an accent classifier
trained on their embeddings is no measure of what real YAMNet would give.
"""

from __future__ import annotations

import logging
import os
import threading

import h5py
import keras
import numpy as np
import tensorflow as tf

from components.errors import InvalidArgumentError
from components.yamnet import defaults, frontend, network, params, synthetic_audio

logger = logging.getLogger(__name__)

# Bump when the offline weights change for a given seed (it keys the offline cache).
OFFLINE_WEIGHTS_VERSION = 1

# Number of arrays in the official yamnet.h5.
NUM_H5_ARRAYS = 110

# Calibration audio of the offline weights: speech-like clips plus quiet noise clips.
CALIBRATION_CLIPS = 14
CALIBRATION_BACKGROUND_CLIPS = 2
CALIBRATION_SECONDS = 2.5

# Batch-norm offset of the offline weights (a small positive value keeps ReLUs alive).
OFFLINE_BATCHNORM_BETA = 0.1

# The weights argument, the YAMNet handle and the weights source that mean seeded, UNTRAINED weights;
# defined in the light ``defaults`` module, which the command line imports without TensorFlow.
OFFLINE_WEIGHTS = defaults.OFFLINE_WEIGHTS

OFFLINE_WARNING = (
    "YAMNet weights are OFFLINE (%s): UNTRAINED, deterministic and calibrated for plumbing. Embeddings "
    "are calibrated random features, scores and class names beyond Speech mean nothing and the top "
    "class says nothing about speech; accuracy numbers from this run say nothing about real accents."
)

_offline_warning_lock = threading.Lock()
_offline_warning_logged = False

# Names of the h5 arrays each kind of Keras layer expects, by Keras variable name.
_H5_NAMES_BY_VARIABLE: dict[type, dict[str, tuple[str, ...]]] = {
    keras.layers.DepthwiseConv2D: {"kernel": ("depthwise_kernel", "kernel")},
    keras.layers.Conv2D: {"kernel": ("kernel",)},
    keras.layers.BatchNormalization: {
        "beta": ("beta",),
        "moving_mean": ("moving_mean",),
        "moving_variance": ("moving_variance",),
    },
    keras.layers.Dense: {"kernel": ("kernel",), "bias": ("bias",)},
}


class WeightsFileError(InvalidArgumentError):
    """Raised when an h5 file does not hold YAMNet's weights in the expected layout."""


def warn_offline_weights(where: str) -> bool:
    """Logs, once per process, that the YAMNet weights in use are offline (untrained) weights.

    Every place that learns it runs on offline weights (building them,
    resolving the handle, loading a SavedModel) calls this; only the first
    call of a process logs, so a run warns once per process instead of once
    per place.

    Args:
        where: What the weights are, for the message (e.g. ``"seed 0 at /tmp/yamnet"``).

    Returns:
        Whether this call logged the warning.
    """
    global _offline_warning_logged
    with _offline_warning_lock:
        if _offline_warning_logged:
            return False
        _offline_warning_logged = True
    logger.warning(OFFLINE_WARNING, where)
    return True


def _variable_name(variable: keras.Variable) -> str:
    return variable.name.split("/")[-1].split(":")[0]


def _h5_names_for(layer: keras.layers.Layer) -> dict[str, tuple[str, ...]]:
    for layer_type, names in _H5_NAMES_BY_VARIABLE.items():
        if isinstance(layer, layer_type):
            return names
    raise TypeError(f"Layer {layer.name} of type {type(layer).__name__} holds no YAMNet weights")


def _classifier_group(
    h5_path: str | os.PathLike, other_groups: dict[str, dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    kernel_shape = (params.EMBEDDING_SIZE, params.NUM_CLASSES)
    bias_shape = (params.NUM_CLASSES,)
    candidates = sorted(
        name
        for name, group_arrays in other_groups.items()
        if tuple(np.shape(group_arrays.get("kernel"))) == kernel_shape
        and tuple(np.shape(group_arrays.get("bias"))) == bias_shape
    )
    if len(candidates) == 1:
        return other_groups[candidates[0]]
    if not candidates:
        raise WeightsFileError(
            f"{os.fspath(h5_path)} is not a YAMNet weights file: no classifier group, i.e. no group "
            f"holding a {kernel_shape} kernel and a {bias_shape} bias (other groups: {sorted(other_groups)})"
        )
    raise WeightsFileError(
        f"{os.fspath(h5_path)} holds {len(candidates)} classifier groups {candidates}, each with a "
        f"{kernel_shape} kernel and a {bias_shape} bias; cannot tell which one is YAMNet's"
    )


def read_h5_arrays(h5_path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Reads the YAMNet arrays of an h5 weights file, grouped by published layer name.

    Works with the Keras 2 layouts (``save_weights``: ``<group>/<group>/kernel:0``;
    ``model.save``: the same under ``model_weights/``) and with flat
    ``<group>/kernel`` files: every dataset belongs to the longest published
    convolution or batch-norm layer name that prefixes its path, and is named
    by its last path component without the ``:0`` suffix.

    The classifier is found by its shapes, whatever its group's name: the one
    top-level group holding a (1024, 521) ``kernel`` and a (521,) ``bias``.
    The published ``yamnet.h5`` calls it ``logits``; a file re-saved by today's
    official ``yamnet.py``, whose Dense layer is unnamed, calls it ``dense``.

    Args:
        h5_path: Path of the h5 file.

    Returns:
        ``{published layer name: {array name: array}}`` for every published
        layer, the classifier under ``logits``.

    Raises:
        FileNotFoundError: If the file does not exist.
        WeightsFileError: If a layer's arrays are missing or ambiguous, or there
            is no classifier group or more than one.
    """
    if not os.path.isfile(h5_path):
        raise FileNotFoundError(f"YAMNet weights file {os.fspath(h5_path)!r} does not exist")
    layer_names = [name for name in network.weighted_layer_names() if name != network.LOGITS_LAYER]
    arrays: dict[str, dict[str, np.ndarray]] = {name: {} for name in layer_names}
    other_groups: dict[str, dict[str, np.ndarray]] = {}
    dataset_paths: list[str] = []
    with h5py.File(h5_path, "r") as h5_file:
        root = h5_file.get("model_weights", h5_file)
        root.visititems(
            lambda path, item: dataset_paths.append(path) if isinstance(item, h5py.Dataset) else None
        )
        for path in dataset_paths:
            owners = [name for name in layer_names if path.startswith(name + "/")]
            if owners:
                owner = max(owners, key=len)
                group_arrays = arrays[owner]
            elif "/" in path:
                owner = path.split("/", 1)[0]
                group_arrays = other_groups.setdefault(owner, {})
            else:
                continue
            array_name = path.rsplit("/", 1)[-1].split(":")[0]
            if array_name in group_arrays:
                raise WeightsFileError(
                    f"{os.fspath(h5_path)}: layer group {owner!r} holds more than one array named "
                    f"{array_name!r}; cannot tell which one to use"
                )
            group_arrays[array_name] = np.asarray(root[path][()])
    missing_groups = [name for name, group_arrays in arrays.items() if not group_arrays]
    if missing_groups:
        raise WeightsFileError(
            f"{os.fspath(h5_path)} is not a YAMNet weights file: no arrays for layer group(s) "
            f"{missing_groups[:5]}{' ...' if len(missing_groups) > 5 else ''} "
            f"({len(missing_groups)} of {len(layer_names)} missing)"
        )
    arrays[network.LOGITS_LAYER] = _classifier_group(h5_path, other_groups)
    return arrays


def load_h5_weights(yamnet_network: keras.Model, h5_path: str | os.PathLike) -> None:
    """Copies the weights of an official-layout ``yamnet.h5`` into the network.

    Args:
        yamnet_network: A model from ``network.build_yamnet_network``.
        h5_path: Path of ``yamnet.h5`` (layer groups ``layer1/conv``, ...,
            and the classifier, ``logits`` or ``dense``; 110 arrays).

    Raises:
        FileNotFoundError: If the file does not exist.
        WeightsFileError: If an array is missing, unexpected, or has the wrong shape.
    """
    arrays = read_h5_arrays(h5_path)
    assignments: list[tuple[keras.Variable, np.ndarray]] = []
    for published_name, group_arrays in arrays.items():
        layer = yamnet_network.get_layer(network.keras_layer_name(published_name))
        h5_names = _h5_names_for(layer)
        used: set[str] = set()
        for variable in layer.weights:
            candidates = [name for name in h5_names[_variable_name(variable)] if name in group_arrays]
            if not candidates:
                raise WeightsFileError(
                    f"{os.fspath(h5_path)}: layer group {published_name!r} has no array "
                    f"{h5_names[_variable_name(variable)][0]!r} (it holds {sorted(group_arrays)})"
                )
            array = group_arrays[candidates[0]]
            if tuple(array.shape) != tuple(variable.shape):
                raise WeightsFileError(
                    f"{os.fspath(h5_path)}: array {published_name}/{candidates[0]} has shape "
                    f"{tuple(array.shape)}, YAMNet expects {tuple(variable.shape)}"
                )
            used.add(candidates[0])
            assignments.append((variable, array))
        unexpected = sorted(set(group_arrays) - used)
        if unexpected:
            raise WeightsFileError(
                f"{os.fspath(h5_path)}: layer group {published_name!r} holds unexpected array(s) "
                f"{unexpected}; YAMNet's batch norms have no scale (gamma) and its convolutions no bias"
            )
    if len(assignments) != NUM_H5_ARRAYS:
        raise WeightsFileError(f"Expected {NUM_H5_ARRAYS} arrays, matched {len(assignments)}")
    for variable, array in assignments:
        variable.assign(array.astype(np.float32))
    logger.info("Loaded %d YAMNet arrays from %s", len(assignments), os.fspath(h5_path))


def calibration_patches(seed: int) -> np.ndarray:
    """Returns the log-mel patches of the offline weights' calibration audio.

    Args:
        seed: Seed of the offline weights; the audio is derived from it.

    Returns:
        A float32 array [P, 96, 64].
    """
    clips = synthetic_audio.synthetic_clips(
        seed=seed + 1_000_003,
        num_clips=CALIBRATION_CLIPS,
        duration_seconds=CALIBRATION_SECONDS,
        num_background_clips=CALIBRATION_BACKGROUND_CLIPS,
    )
    patches = [frontend.waveform_to_log_mel_and_patches(tf.constant(clip))[1].numpy() for clip in clips]
    return np.concatenate(patches, axis=0)


def _random_kernel(rng: np.random.Generator, layer: keras.layers.Layer, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        fan_in = shape[0] * shape[1]
    elif isinstance(layer, keras.layers.Conv2D):
        fan_in = shape[0] * shape[1] * shape[2]
    else:
        fan_in = shape[0]
    gain = 2.0 if isinstance(layer, keras.layers.Conv2D) else 1.0
    return (rng.standard_normal(shape) * np.sqrt(gain / fan_in)).astype(np.float32)


def set_offline_weights(yamnet_network: keras.Model, seed: int = defaults.OFFLINE_SEED) -> None:
    """Gives the network deterministic, untrained weights with calibrated batch norms.

    Kernels are drawn from He-normal distributions seeded by ``seed``. Then the
    calibration audio (``calibration_patches``) runs through the network layer
    by layer, and each batch norm's moving mean and variance are set to the
    statistics of its input, so that every layer's output is normalised and
    the embeddings stay O(1) instead of collapsing. The logits' bias centres
    the logits on the calibration audio. The result is bit-identical from run
    to run in the same environment.

    These weights are UNTRAINED: the scores, and the class map's names beyond
    "Speech", mean nothing; the top class says nothing about speech.

    Args:
        yamnet_network: A model from ``network.build_yamnet_network``.
        seed: Seed of the weights.

    Raises:
        RuntimeError: If the calibrated embeddings are not finite or collapse.
    """
    warn_offline_weights(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for published_name in network.weighted_layer_names():
        layer = yamnet_network.get_layer(network.keras_layer_name(published_name))
        for variable in layer.weights:
            name = _variable_name(variable)
            shape = tuple(variable.shape)
            if name == "kernel":
                variable.assign(_random_kernel(rng, layer, shape))
            elif name == "moving_variance":
                variable.assign(np.ones(shape, np.float32))
            else:
                variable.assign(np.zeros(shape, np.float32))

    activation = tf.constant(calibration_patches(seed))
    logger.info("Calibrating offline YAMNet batch norms on %d synthetic patches", activation.shape[0])
    for layer in yamnet_network.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            values = activation.numpy().astype(np.float64)
            layer.moving_mean.assign(values.mean(axis=(0, 1, 2)).astype(np.float32))
            layer.moving_variance.assign(values.var(axis=(0, 1, 2)).astype(np.float32))
            layer.beta.assign(np.full(layer.beta.shape, OFFLINE_BATCHNORM_BETA, np.float32))
        if layer.name == network.LOGITS_LAYER:
            logits = activation.numpy().astype(np.float64) @ layer.kernel.numpy().astype(np.float64)
            layer.bias.assign((-logits.mean(axis=0)).astype(np.float32))
        activation = layer(activation, training=False)
        if layer.name == network.EMBEDDINGS_OUTPUT:
            embeddings = activation.numpy()
            spread = float(embeddings.std(axis=0).mean())
            finite = bool(np.all(np.isfinite(embeddings)))
            if not finite or spread < 1e-3:
                raise RuntimeError(
                    f"Offline YAMNet calibration failed: embeddings finite={finite}, "
                    f"mean per-dimension spread {spread:.3g}"
                )
            logger.info(
                "Offline YAMNet embeddings on calibration audio: mean %.3f, mean per-dimension std %.3f",
                float(embeddings.mean()),
                spread,
            )


def build_yamnet(
    weights: str | os.PathLike = OFFLINE_WEIGHTS, seed: int = defaults.OFFLINE_SEED
) -> keras.Model:
    """Builds YAMNet's network with official or offline weights.

    Args:
        weights: ``"offline"`` for seeded, calibrated, UNTRAINED weights (see
            ``set_offline_weights``), or the path of the official ``yamnet.h5``.
        seed: Seed of the offline weights (ignored for an h5 file).

    Returns:
        A model from patches [B, 96, 64] to ``{"scores", "embeddings"}``.
    """
    yamnet_network = network.build_yamnet_network()
    if os.fspath(weights) == OFFLINE_WEIGHTS:
        set_offline_weights(yamnet_network, seed)
    else:
        load_h5_weights(yamnet_network, weights)
    return yamnet_network
