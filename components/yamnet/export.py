"""Exports the Keras YAMNet as a SavedModel with the TF Hub model's call contract.

``tensorflow_hub.load(DIR)`` or ``tf.saved_model.load(DIR)`` on the export gives
an object that behaves like https://tfhub.dev/google/yamnet/1:

* ``model(waveform)``: 1-D float32 16 kHz waveform of any length ->
  ``(scores [N, 521], embeddings [N, 1024], log_mel_spectrogram [M, 64])``;
* ``model.class_map_path()``: path of the class map CSV;

and adds two functions for batched embedding:

* ``model.embed_patches(patches [B, 96, 64])`` -> ``{"scores", "embeddings"}``;
* ``model.log_mel_patches(waveform)`` -> ``{"log_mel_spectrogram", "patches"}``.

A ``yamnet_weights.json`` asset records where the weights came from
(``describe_weights`` reads it).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import tempfile
from typing import Any

import keras
import tensorflow as tf

from components.yamnet import class_map, frontend, network, params
from components.yamnet import weights as yamnet_weights
from pipeline import configs

logger = logging.getLogger(__name__)

WEIGHTS_INFO_FILENAME = "yamnet_weights.json"
EMBED_PATCHES_FUNCTION = "embed_patches"
LOG_MEL_PATCHES_FUNCTION = "log_mel_patches"
PATCHES_OUTPUT = "patches"
LOG_MEL_OUTPUT = "log_mel_spectrogram"


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
        """Returns ``(scores [N, 521], embeddings [N, 1024], log_mel_spectrogram [M, 64])``."""
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


def _write_weights_info(path: pathlib.Path, info: dict[str, Any]) -> None:
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_yamnet(
    output_dir: str | os.PathLike,
    weights: str | os.PathLike = "offline",
    seed: int = configs.OFFLINE_YAMNET_SEED,
    class_map_csv: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Writes YAMNet as a SavedModel loadable with ``tensorflow_hub.load``.

    Args:
        output_dir: Directory of the SavedModel (created; existing files are overwritten).
        weights: ``"offline"`` for seeded, calibrated, UNTRAINED weights (plumbing
            only: their scores mean nothing and their top class says nothing
            about speech), or the path of the official ``yamnet.h5``.
        seed: Seed of the offline weights (ignored for an h5 file).
        class_map_csv: Class map to ship with h5 weights (``yamnet_class_map.csv``
            from tensorflow/models). Without it, h5 exports ship the offline
            class map (row 0 is Speech, the others are placeholders).

    Returns:
        The SavedModel directory.
    """
    output_path = pathlib.Path(output_dir)
    offline = os.fspath(weights) == "offline"
    yamnet_network = yamnet_weights.build_yamnet(weights, seed)
    info: dict[str, Any] = {
        "source": "offline" if offline else "h5",
        "seed": seed if offline else None,
        "pretrained": not offline,
        "h5_path": None if offline else os.path.abspath(os.fspath(weights)),
        "offline_weights_version": yamnet_weights.OFFLINE_WEIGHTS_VERSION if offline else None,
    }
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
        tf.saved_model.save(module, str(output_path))
    if offline:
        logger.warning(
            "Exported OFFLINE (untrained) YAMNet weights, seed %d, to %s: embeddings are calibrated random "
            "features and the top class says nothing about speech; use for plumbing only",
            seed,
            output_path,
        )
    else:
        logger.info("Exported YAMNet with weights from %s to %s", weights, output_path)
    return output_path


def describe_weights(saved_model_dir: str | os.PathLike) -> dict[str, Any]:
    """Describes the weights of a YAMNet SavedModel.

    Args:
        saved_model_dir: A SavedModel directory.

    Returns:
        The contents of its ``yamnet_weights.json`` (``source`` "offline" or
        "h5", ``seed``, ``pretrained``, ``h5_path``), or
        ``{"source": "hub", "pretrained": True}`` for a directory without it,
        such as the real Hub model.
    """
    directory = pathlib.Path(saved_model_dir)
    for candidate in (directory / "assets" / WEIGHTS_INFO_FILENAME, directory / WEIGHTS_INFO_FILENAME):
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    return {"source": "hub", "pretrained": True}
