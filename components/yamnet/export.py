"""Exports the Keras YAMNet as a SavedModel with the TF Hub model's call contract.

``tensorflow_hub.load(DIR)`` or ``tf.saved_model.load(DIR)`` on the export gives
an object that behaves like https://tfhub.dev/google/yamnet/1:

* ``model(waveform)``: 1-D float32 16 kHz waveform of any length ->
  ``(scores [N, 521], embeddings [N, 1024], log_mel_spectrogram [M, 64])``;
* ``model.signatures["serving_default"]``: the same function as a signature,
  named as in the Hub model (official ``export.py``): input ``waveform``,
  outputs ``output_0`` (scores), ``output_1`` (embeddings) and ``output_2``
  (log-mel spectrogram);
* ``model.class_map_path()``: path of the class map CSV;

and adds two functions for batched embedding:

* ``model.embed_patches(patches [B, 96, 64])`` -> ``{"scores", "embeddings"}``;
* ``model.log_mel_patches(waveform)`` -> ``{"log_mel_spectrogram", "patches"}``.

A ``yamnet_weights.json`` asset records where the weights came from and the
export's format version; ``describe_weights`` reads it into a ``WeightsInfo``.

Real (h5) weights ship the real class map, which must be given; offline
weights ship placeholder names labelled as untrained offline weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf

from components.errors import InvalidArgumentError
from components.yamnet import class_map, defaults, frontend, network, params
from components.yamnet import weights as yamnet_weights

logger = logging.getLogger(__name__)

WEIGHTS_INFO_FILENAME = "yamnet_weights.json"
EMBED_PATCHES_FUNCTION = "embed_patches"
LOG_MEL_PATCHES_FUNCTION = "log_mel_patches"
PATCHES_OUTPUT = "patches"
LOG_MEL_OUTPUT = "log_mel_spectrogram"

# Bump when the exported SavedModel changes (2: the serving_default signature); a cached offline
# export of another version is exported again.
EXPORT_VERSION = 2

SERVING_SIGNATURE = "serving_default"

# Where the weights of a YAMNet SavedModel came from (``WeightsInfo.source``).
SOURCE_OFFLINE = yamnet_weights.OFFLINE_WEIGHTS
SOURCE_H5 = "h5"
SOURCE_HUB = "hub"
SOURCES = (SOURCE_OFFLINE, SOURCE_H5, SOURCE_HUB)

CLASS_MAP_SOURCE = (
    "yamnet_class_map.csv from tensorflow/models, research/audioset/yamnet "
    "(https://raw.githubusercontent.com/tensorflow/models/master/research/audioset/yamnet/yamnet_class_map.csv)"
)


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
    """Where the weights of a YAMNet SavedModel came from.

    Attributes:
        source: ``"offline"`` (seeded, untrained), ``"h5"`` (the official
            ``yamnet.h5``) or ``"hub"`` (a SavedModel without
            ``yamnet_weights.json``, such as the TF Hub model).
        seed: Seed of offline weights; None otherwise.
        h5_path: Absolute path of the h5 file the weights came from; None otherwise.
        offline_weights_version: ``weights.OFFLINE_WEIGHTS_VERSION`` of offline weights; None otherwise.
        export_version: ``EXPORT_VERSION`` of the project's export; None for a foreign SavedModel.

    Raises:
        ValueError: If ``source`` is not one of ``SOURCES``.
    """

    source: str
    seed: int | None = None
    h5_path: str | None = None
    offline_weights_version: int | None = None
    export_version: int | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(
                f"Unknown YAMNet weights source {self.source!r}; expected one of {list(SOURCES)}"
            )

    @property
    def pretrained(self) -> bool:
        """Whether the weights are trained YAMNet weights (False for offline weights)."""
        return self.source != SOURCE_OFFLINE

    def describe(self) -> str:
        """Returns a short description for log messages, e.g. ``"offline, seed 0"``."""
        if self.source == SOURCE_OFFLINE:
            return f"{SOURCE_OFFLINE}, seed {self.seed}"
        if self.source == SOURCE_H5:
            return f"{SOURCE_H5} from {self.h5_path}"
        return SOURCE_HUB

    def to_json_dict(self) -> dict[str, Any]:
        """Returns the contents of ``yamnet_weights.json`` (with ``pretrained``, for people who read it)."""
        return {**dataclasses.asdict(self), "pretrained": self.pretrained}

    @classmethod
    def from_json_dict(cls, contents: Mapping[str, Any]) -> WeightsInfo:
        """Reads the contents of ``yamnet_weights.json``.

        Args:
            contents: The parsed JSON object; keys other than the attributes
                (such as ``pretrained``, which follows from ``source``) are ignored.

        Returns:
            The information.

        Raises:
            ValueError: If ``source`` is missing or unknown.
        """
        if "source" not in contents:
            raise ValueError(f"{WEIGHTS_INFO_FILENAME} has no 'source': {dict(contents)}")
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in contents.items() if key in names})


class YamnetModule(tf.Module):
    """The exported object: YAMNet's Hub contract plus batched functions.

    Args:
        yamnet_network: A model from ``network.build_yamnet_network`` with its weights.
        class_map_file: Path of the class map CSV to ship as an asset.
        weights_info_file: Path of ``yamnet_weights.json`` to ship as an asset.
    """

    def __init__(self, yamnet_network: keras.Model, class_map_file: str, weights_info_file: str):
        super().__init__(name="yamnet")
        self.yamnet_network = yamnet_network
        self.network_variables = list(yamnet_network.variables)
        self.class_map_asset = tf.saved_model.Asset(class_map_file)
        self.weights_info_asset = tf.saved_model.Asset(weights_info_file)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
    def __call__(self, waveform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Returns ``(scores [N, 521], embeddings [N, 1024], log_mel_spectrogram [M, 64])``.

        Also the ``serving_default`` signature, whose outputs are named
        ``output_0``, ``output_1`` and ``output_2`` in that order, as in the Hub model.
        """
        return network.yamnet_frames(self.yamnet_network, waveform)

    @tf.function(input_signature=[tf.TensorSpec([None, params.PATCH_FRAMES, params.PATCH_BANDS], tf.float32)])
    def embed_patches(self, patches: tf.Tensor) -> dict[str, tf.Tensor]:
        """Returns ``{"scores": [B, 521], "embeddings": [B, 1024]}`` for a batch of patches."""
        scores, embeddings = network.embed_patches(self.yamnet_network, patches)
        return {network.SCORES_OUTPUT: scores, network.EMBEDDINGS_OUTPUT: embeddings}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])
    def log_mel_patches(self, waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        """Returns ``{"log_mel_spectrogram": [M, 64], "patches": [N, 96, 64]}`` (the front end alone)."""
        spectrogram, patches = frontend.waveform_to_log_mel_and_patches(waveform)
        return {LOG_MEL_OUTPUT: spectrogram, PATCHES_OUTPUT: patches}

    @tf.function(input_signature=[])
    def class_map_path(self) -> tf.Tensor:
        """Returns the path of the class map CSV (``index,mid,display_name``)."""
        return self.class_map_asset.asset_path


def _write_weights_info(path: pathlib.Path, info: WeightsInfo) -> None:
    path.write_text(json.dumps(info.to_json_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _check_class_map(
    offline: bool, weights: str | os.PathLike, class_map_csv: str | os.PathLike | None
) -> None:
    if offline:
        if class_map_csv is not None:
            raise InvalidArgumentError(
                f"A class map ({os.fspath(class_map_csv)}) cannot be shipped with offline weights: they are "
                "untrained, so real class names would label meaningless scores. Offline exports ship "
                "placeholder names labelled as untrained offline weights; drop the class map, or export "
                "real weights with --weights yamnet.h5."
            )
        return
    if class_map_csv is None:
        raise InvalidArgumentError(
            f"Exporting YAMNet from h5 weights ({os.fspath(weights)}) needs their class map: pass "
            f"--class-map yamnet_class_map.csv (class_map_csv=...), the {CLASS_MAP_SOURCE}."
        )
    names = class_map.read_display_names(class_map_csv)
    if len(names) != params.NUM_CLASSES:
        raise InvalidArgumentError(
            f"{os.fspath(class_map_csv)} has {len(names)} class name(s); YAMNet's class map has "
            f"{params.NUM_CLASSES}. Pass the {CLASS_MAP_SOURCE}."
        )


def export_yamnet(
    output_dir: str | os.PathLike,
    weights: str | os.PathLike = yamnet_weights.OFFLINE_WEIGHTS,
    seed: int = defaults.OFFLINE_SEED,
    class_map_csv: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Writes YAMNet as a SavedModel loadable with ``tensorflow_hub.load``.

    Args:
        output_dir: Directory of the SavedModel (created; existing files are overwritten).
        weights: ``"offline"`` for seeded, calibrated, UNTRAINED weights (plumbing
            only: their scores mean nothing and their top class says nothing
            about speech), or the path of the official ``yamnet.h5``.
        seed: Seed of the offline weights (ignored for an h5 file).
        class_map_csv: The class map of h5 weights (``yamnet_class_map.csv``
            from tensorflow/models), required with them. Offline weights take
            none: they ship placeholder names labelled as untrained offline weights.

    Returns:
        The SavedModel directory.

    Raises:
        InvalidArgumentError: If h5 weights come without a class map of 521 names, or
            offline weights with one; nothing is written then.
    """
    output_path = pathlib.Path(output_dir)
    offline = os.fspath(weights) == yamnet_weights.OFFLINE_WEIGHTS
    _check_class_map(offline, weights, class_map_csv)
    yamnet_network = yamnet_weights.build_yamnet(weights, seed)
    if offline:
        info = WeightsInfo(
            source=SOURCE_OFFLINE,
            seed=seed,
            offline_weights_version=yamnet_weights.OFFLINE_WEIGHTS_VERSION,
            export_version=EXPORT_VERSION,
        )
    else:
        info = WeightsInfo(
            source=SOURCE_H5, h5_path=os.path.abspath(os.fspath(weights)), export_version=EXPORT_VERSION
        )
    with tempfile.TemporaryDirectory(prefix="yamnet-assets-") as assets_dir:
        class_map_file = pathlib.Path(assets_dir) / class_map.CLASS_MAP_FILENAME
        if class_map_csv is None:
            class_map.write_offline_class_map(class_map_file)
        else:
            class_map_file.write_bytes(pathlib.Path(class_map_csv).read_bytes())
        weights_info_file = pathlib.Path(assets_dir) / WEIGHTS_INFO_FILENAME
        _write_weights_info(weights_info_file, info)
        module = YamnetModule(yamnet_network, str(class_map_file), str(weights_info_file))
        output_path.mkdir(parents=True, exist_ok=True)
        tf.saved_model.save(
            module, str(output_path), signatures={SERVING_SIGNATURE: module.__call__.get_concrete_function()}
        )
    logger.info("Exported YAMNet (%s weights) to %s", info.describe(), output_path)
    return output_path


def describe_weights(saved_model_dir: str | os.PathLike) -> WeightsInfo:
    """Describes the weights of a YAMNet SavedModel.

    Args:
        saved_model_dir: A SavedModel directory, local or remote (any URI
            ``tf.io.gfile`` opens, such as ``gs://...``).

    Returns:
        What its ``yamnet_weights.json`` says, or ``WeightsInfo(source="hub")``
        for a directory without it, such as the real Hub model.

    Raises:
        ValueError: If the file exists but names no known source.
    """
    directory = os.fspath(saved_model_dir).rstrip("/")
    for candidate in (f"{directory}/assets/{WEIGHTS_INFO_FILENAME}", f"{directory}/{WEIGHTS_INFO_FILENAME}"):
        if tf.io.gfile.exists(candidate) and not tf.io.gfile.isdir(candidate):
            with tf.io.gfile.GFile(candidate) as weights_info_file:
                return WeightsInfo.from_json_dict(json.loads(weights_info_file.read()))
    return WeightsInfo(source=SOURCE_HUB)
