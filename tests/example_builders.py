"""Builders of small per-patch tf.Example files in the Examples-artifact layout.

``write_examples_artifact(uri, ...)`` writes
``<uri>/Split-train/data_tfrecord-00000-of-00001.gz`` and
``<uri>/Split-eval/data_tfrecord-00000-of-00001.gz``: gzipped TFRecords of
serialized tf.Examples built by ``components.embedding.patch_examples`` (gzipped
as ExampleGen writes them; the embedding job's own files are plain).
Embeddings are class-dependent Gaussians, so a classifier can separate them.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from components import features
from components.corpus.records import ClipRecord
from components.embedding import patch_examples

SPLIT_DIR_TEMPLATE = "Split-{split}"
DATA_FILENAME = "data_tfrecord-00000-of-00001.gz"


def patch_feature_spec() -> dict[str, tf.io.FixedLenFeature]:
    """The parsing spec of every feature of a patch's tf.Example, spelled out independently of the encoder."""
    return {
        features.EMBEDDING_KEY: tf.io.FixedLenFeature([features.EMBEDDING_SIZE], tf.float32),
        features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        features.ACCENT_KEY: tf.io.FixedLenFeature([], tf.string),
        features.SPEAKER_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        features.GENDER_KEY: tf.io.FixedLenFeature([], tf.string),
        features.CLIP_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        features.PATCH_INDEX_KEY: tf.io.FixedLenFeature([], tf.int64),
        features.IS_SPEECH_KEY: tf.io.FixedLenFeature([], tf.int64),
    }


@dataclasses.dataclass(frozen=True)
class Patch:
    """One patch's features, as written into its tf.Example."""

    embedding: np.ndarray
    label: int
    accent: str
    speaker_id: str
    gender: str
    clip_id: str
    patch_index: int
    is_speech: int


def make_example(patch: Patch) -> tf.train.Example:
    """Returns the tf.Example of one patch, in the embedding job's format (``patch_examples``)."""
    record = ClipRecord(
        clip_id=patch.clip_id,
        source=f"/corpus/{patch.clip_id}.wav",
        accent_code=patch.clip_id[:2],
        accent=patch.accent,
        label=patch.label,
        gender=patch.gender,
        speaker_id=patch.speaker_id,
        split="",
        transcript="",
    )
    return patch_examples.patch_example(
        record, patch.patch_index, patch.embedding, patch.label, bool(patch.is_speech)
    )


def class_centers(num_classes: int, seed: int = 1234, scale: float = 1.0) -> np.ndarray:
    """Returns one random non-negative 1024-d mean embedding per class, ``[num_classes, 1024]``."""
    return np.random.default_rng(seed).uniform(0.0, 2.0 * scale, size=(num_classes, features.EMBEDDING_SIZE))


def synthetic_patches(
    accents: Sequence[str],
    clips_per_accent: int,
    patches_per_clip: int,
    seed: int,
    class_names: Sequence[str] = features.DEFAULT_CLASS_NAMES,
    noise: float = 1.0,
    non_speech_patches_per_clip: int = 1,
    center_seed: int = 1234,
) -> list[Patch]:
    """Makes clips of (rectified, so non-negative) Gaussian embeddings around a per-class center.

    Each clip has ``patches_per_clip`` speech patches labelled with its accent
    and ``non_speech_patches_per_clip`` patches labelled "Not a speech" (if that
    class exists). Speakers alternate genders.

    Args:
        accents: Accent names of the clips to make; each must be in ``class_names``.
        clips_per_accent: Clips per accent.
        patches_per_clip: Speech patches per clip.
        seed: Seed of the noise and of the speaker ids.
        class_names: The label vocabulary.
        noise: Standard deviation of the Gaussian noise around the class center.
        non_speech_patches_per_clip: Extra "Not a speech" patches per clip.
        center_seed: Seed of the class centers (keep it equal across splits).

    Returns:
        The patches, clip by clip.
    """
    rng = np.random.default_rng(seed)
    centers = class_centers(len(class_names), center_seed)
    not_speech_id = features.not_speech_class_id(class_names)
    patches: list[Patch] = []
    for accent in accents:
        accent_id = list(class_names).index(accent)
        for clip_number in range(clips_per_accent):
            speaker_number = clip_number % 3
            speaker_id = f"{accent[:2].lower()}_{seed}_{speaker_number}"
            gender = "female" if speaker_number % 2 == 0 else "male"
            clip_id = f"{accent.lower()}_{seed}_{clip_number:03d}"
            labels = [accent_id] * patches_per_clip
            if not_speech_id != features.NO_CLASS_ID:
                labels += [not_speech_id] * non_speech_patches_per_clip
            for patch_index, label in enumerate(labels):
                # YAMNet embeddings are ReLU outputs: the schema requires them to be >= 0.
                embedding = np.maximum(
                    0.0, centers[label] + rng.normal(0.0, noise, size=features.EMBEDDING_SIZE)
                )
                patches.append(
                    Patch(
                        embedding=embedding.astype(np.float32),
                        label=label,
                        accent=accent,
                        speaker_id=speaker_id,
                        gender=gender,
                        clip_id=clip_id,
                        patch_index=patch_index,
                        is_speech=int(label != not_speech_id),
                    )
                )
    return patches


def write_split(uri: str | pathlib.Path, split: str, patches: Sequence[Patch]) -> pathlib.Path:
    """Writes one split's gzipped TFRecord file and returns its path."""
    split_dir = pathlib.Path(uri) / SPLIT_DIR_TEMPLATE.format(split=split)
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / DATA_FILENAME
    with tf.io.TFRecordWriter(str(path), options=tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for patch in patches:
            writer.write(make_example(patch).SerializeToString())
    return path


def write_examples_artifact(
    uri: str | pathlib.Path,
    accents: Sequence[str] = ("Midlands", "Northern", "Scottish", "Southern"),
    train_clips_per_accent: int = 6,
    eval_clips_per_accent: int = 3,
    patches_per_clip: int = 4,
    noise: float = 1.0,
    class_names: Sequence[str] = features.DEFAULT_CLASS_NAMES,
) -> dict[str, list[Patch]]:
    """Writes a small Examples artifact with a train and an eval split.

    Args:
        uri: The artifact's directory.
        accents: Accents present in the corpus (the others are absent classes).
        train_clips_per_accent: Clips per accent in the train split.
        eval_clips_per_accent: Clips per accent in the eval split.
        patches_per_clip: Speech patches per clip (each clip also has one "Not a speech" patch).
        noise: Standard deviation of the embeddings around their class center.
        class_names: The label vocabulary.

    Returns:
        The patches written, keyed by split name.
    """
    splits = {
        features.TRAIN_SPLIT: synthetic_patches(
            accents, train_clips_per_accent, patches_per_clip, seed=1, class_names=class_names, noise=noise
        ),
        features.EVAL_SPLIT: synthetic_patches(
            accents, eval_clips_per_accent, patches_per_clip, seed=2, class_names=class_names, noise=noise
        ),
    }
    for split, patches in splits.items():
        write_split(uri, split, patches)
    return splits


def split_pattern(uri: str | pathlib.Path, split: str) -> str:
    """Returns the file pattern of one split, as TFX puts in ``FnArgs.train_files``."""
    return str(pathlib.Path(uri) / SPLIT_DIR_TEMPLATE.format(split=split) / "*")
