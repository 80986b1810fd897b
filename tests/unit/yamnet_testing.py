"""Shared, once-per-session objects of the YAMNet tests (the offline export is slow to build)."""

from __future__ import annotations

import csv
import functools
import pathlib

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from components.yamnet import handle, synthetic_audio, weights

SEED = 0
# Seed of the test clips: different from the calibration audio's.
CLIP_SEED = 424242

_offline_export: dict[str, pathlib.Path] = {}


def offline_export_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Returns an offline export made by the handle resolver, once per test session."""
    if "dir" not in _offline_export:
        cache_dir = tmp_path_factory.mktemp("yamnet-offline-cache")
        _offline_export["dir"] = handle.resolve_yamnet_handle("offline", cache_dir, seed=SEED)
    return _offline_export["dir"]


@functools.lru_cache(maxsize=1)
def offline_network() -> keras.Model:
    """Returns the offline Keras network (seed 0), built once per test session."""
    return weights.build_yamnet("offline", SEED)


@functools.lru_cache(maxsize=1)
def speech_like_clips() -> tuple[np.ndarray, ...]:
    """Returns 8 speech-like test clips of different lengths (not the calibration audio)."""
    clips = synthetic_audio.synthetic_clips(CLIP_SEED, num_clips=8, duration_seconds=2.0)
    lengths = [32000, 15600, 20000, 27000, 9000, 32000, 24000, 16001]
    return tuple(clip[:length] for clip, length in zip(clips, lengths, strict=True))


# The published architecture: (kind, stride, filters) of layers 1..14.
ARCHITECTURE = [("conv", 2, 32)] + [
    ("separable", stride, filters)
    for stride, filters in [
        (1, 64),
        (2, 128),
        (1, 128),
        (2, 256),
        (1, 256),
        (2, 512),
        (1, 512),
        (1, 512),
        (1, 512),
        (1, 512),
        (1, 512),
        (2, 1024),
        (1, 1024),
    ]
]


def official_arrays(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Random arrays with the shapes and names of the official yamnet.h5, by layer group."""
    groups: dict[str, dict[str, np.ndarray]] = {}

    def batch_norm(name, channels):
        groups[name] = {
            "beta": rng.normal(size=channels).astype(np.float32),
            "moving_mean": rng.normal(size=channels).astype(np.float32),
            "moving_variance": rng.uniform(0.5, 2.0, size=channels).astype(np.float32),
        }

    channels = 1
    for layer_number, (kind, _, filters) in enumerate(ARCHITECTURE, start=1):
        prefix = f"layer{layer_number}"
        if kind == "conv":
            groups[f"{prefix}/conv"] = {
                "kernel": rng.normal(0, 0.3, (3, 3, channels, filters)).astype(np.float32)
            }
            batch_norm(f"{prefix}/conv/bn", filters)
        else:
            groups[f"{prefix}/depthwise_conv"] = {
                "depthwise_kernel": rng.normal(0, 0.3, (3, 3, channels, 1)).astype(np.float32)
            }
            batch_norm(f"{prefix}/depthwise_conv/bn", channels)
            groups[f"{prefix}/pointwise_conv"] = {
                "kernel": rng.normal(0, 0.05, (1, 1, channels, filters)).astype(np.float32)
            }
            batch_norm(f"{prefix}/pointwise_conv/bn", filters)
        channels = filters
    groups["logits"] = {
        "kernel": rng.normal(0, 0.05, (1024, 521)).astype(np.float32),
        "bias": rng.normal(size=521).astype(np.float32),
    }
    return groups


def write_keras2_h5(path, groups, under_model_weights=False):
    """Writes arrays the way Keras 2's save_weights lays out yamnet.h5: <group>/<group>/<name>:0."""
    with h5py.File(path, "w") as h5_file:
        root = h5_file.create_group("model_weights") if under_model_weights else h5_file
        root.attrs["layer_names"] = [name.encode() for name in ["input_1", "reshape", *groups]]
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.3.1"
        root.create_group("input_1").attrs["weight_names"] = []
        root.create_group("reshape").attrs["weight_names"] = []
        for group_name, arrays in groups.items():
            group = root.require_group(group_name)
            weight_names = [f"{group_name}/{array_name}:0" for array_name in arrays]
            group.attrs["weight_names"] = [name.encode() for name in weight_names]
            for weight_name, array in zip(weight_names, arrays.values(), strict=True):
                group.create_dataset(weight_name, data=array)


def write_class_map(path: pathlib.Path) -> pathlib.Path:
    """Writes a class map CSV in the published layout (521 rows, row 0 Speech) and returns its path."""
    with open(path, "w", newline="", encoding="utf-8") as csv_file:
        writer = csv.writer(csv_file)
        writer.writerow(["index", "mid", "display_name"])
        writer.writerow([0, "/m/09x0r", "Speech"])
        for index in range(1, 521):
            writer.writerow([index, f"/m/test{index}", f"Test class {index}"])
    return path


class DictFormYamnet(tf.Module):
    """YAMNet whose ``__call__`` returns a dict, like the current official export.py.

    Wraps a loaded tuple-form YAMNet: ``{"predictions", "embeddings", "log_mel_spectrogram"}``.
    """

    def __init__(self, yamnet: tf.Module):
        super().__init__()
        self.yamnet = yamnet

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, waveform):
        scores, embeddings, log_mel_spectrogram = self.yamnet(waveform)
        return {"predictions": scores, "embeddings": embeddings, "log_mel_spectrogram": log_mel_spectrogram}

    @tf.function(input_signature=[])
    def class_map_path(self):
        return self.yamnet.class_map_path()


def write_dict_form_yamnet(tuple_form_dir: pathlib.Path, output_dir: pathlib.Path) -> pathlib.Path:
    """Writes a dict-form YAMNet SavedModel wrapping the tuple-form SavedModel at ``tuple_form_dir``."""
    tf.saved_model.save(DictFormYamnet(tf.saved_model.load(str(tuple_form_dir))), str(output_dir))
    return output_dir
