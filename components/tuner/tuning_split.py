"""The tuning split: a speaker-disjoint tuning train and tuning validation, both from the train split.

The Tuner never scores a trial on the eval split, which the Evaluator gates on.
It holds out part of the TRAIN split's speakers instead: within each accent, the
speakers are ordered by a SHA-256 hash of ``<seed>:<speaker_id>`` and the first
``round(validation_fraction * speakers)`` of them (at least one, and never all:
one speaker always stays to train on) become the tuning validation. The choice
depends on the speaker ids and the seed only, so it is the same on every run.

A speaker that also appears in the eval split (only possible with the
utterance split, which shares speakers by design) is never put in the tuning
validation. Only the eval split's speaker ids are read for that, never its
examples' embeddings or labels. If that leaves no speaker to hold out (with the
utterance split every speaker usually has clips in both splits), the speakers
are held out regardless, with a warning: that split leaks speakers anyway.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from components import features
from components.errors import InvalidArgumentError
from components.trainer import data

logger = logging.getLogger(__name__)

# Records parsed in one batch when reading speakers or filtering them.
_READING_BATCH_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class TuningSplit:
    """Which train-split speakers tune and which validate, and their patch counts per class.

    Attributes:
        train_speakers: Speakers whose patches train the trials.
        validation_speakers: Speakers whose patches score the trials.
        train_counts: Patches per class id of the tuning train part.
        validation_counts: Patches per class id of the tuning validation part.
    """

    train_speakers: frozenset[str]
    validation_speakers: frozenset[str]
    train_counts: np.ndarray
    validation_counts: np.ndarray


def speaker_rank(speaker_id: str, seed: int) -> int:
    """The position key of a speaker in the hold-out order: the first 64 bits of SHA-256 of ``seed:id``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{speaker_id}".encode()).digest()[:8], "big")


def choose_validation_speakers(
    speaker_accents: Mapping[str, str],
    validation_fraction: float,
    seed: int,
    excluded_speakers: Collection[str] = (),
) -> frozenset[str]:
    """Chooses the tuning validation speakers, accent by accent.

    Args:
        speaker_accents: Every train-split speaker id and its accent.
        validation_fraction: Fraction of each accent's speakers to hold out, in (0, 1).
        seed: Seed of the order.
        excluded_speakers: Speakers that must not be held out (those of the eval split).

    Returns:
        The held-out speakers: of each accent with at least two speakers,
        ``max(1, round(fraction * speakers))`` but at most all but one, taken
        from those not excluded. An accent with one speaker keeps it for training.

    Raises:
        InvalidArgumentError: If ``validation_fraction`` is not in (0, 1).
    """
    if not 0.0 < validation_fraction < 1.0:
        raise InvalidArgumentError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    excluded = set(excluded_speakers)
    by_accent: dict[str, list[str]] = collections.defaultdict(list)
    for speaker_id, accent in speaker_accents.items():
        by_accent[accent].append(speaker_id)
    chosen: set[str] = set()
    for accent in sorted(by_accent):
        speakers = by_accent[accent]
        wanted = min(len(speakers) - 1, max(1, round(validation_fraction * len(speakers))))
        candidates = sorted(
            (speaker for speaker in speakers if speaker not in excluded),
            key=lambda speaker: (speaker_rank(speaker, seed), speaker),
        )
        chosen.update(candidates[:wanted])
    return frozenset(chosen)


def _record_batches(file_patterns: str | Iterable[str], feature_spec: dict) -> tf.data.Dataset:
    """Parsed batches of the TFRecord files (plain, or gzipped with ``.gz``) of per-patch tf.Examples."""
    files = data.resolve_files(file_patterns)
    datasets = [
        tf.data.TFRecordDataset(path, compression_type="GZIP" if path.endswith(".gz") else "")
        for path in files
    ]
    records = datasets[0]
    for dataset in datasets[1:]:
        records = records.concatenate(dataset)
    return records.batch(_READING_BATCH_SIZE).map(
        lambda serialized: tf.io.parse_example(serialized, feature_spec)
    )


def read_speakers(
    file_patterns: str | Iterable[str], num_classes: int
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Reads each speaker's accent and patch count per class (no embedding is parsed).

    Args:
        file_patterns: Glob pattern(s) of TFRecord files of per-patch tf.Examples.
        num_classes: Size of the label vocabulary.

    Returns:
        Speaker id to accent, and speaker id to an int64 ``[num_classes]`` array of patch counts.

    Raises:
        InvalidArgumentError: If a label is outside ``[0, num_classes)``.
        ValueError: If no file matches.
    """
    feature_spec = {
        features.SPEAKER_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        features.ACCENT_KEY: tf.io.FixedLenFeature([], tf.string),
        features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    accents: dict[str, str] = {}
    counts: dict[str, np.ndarray] = {}
    for batch in _record_batches(file_patterns, feature_spec).as_numpy_iterator():
        labels = batch[features.LABEL_KEY]
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise InvalidArgumentError(
                f"Label ids must be in [0, {num_classes}); found {labels.min()}..{labels.max()}"
            )
        for speaker, accent, label in zip(
            batch[features.SPEAKER_ID_KEY], batch[features.ACCENT_KEY], labels, strict=True
        ):
            speaker_id = speaker.decode()
            accents.setdefault(speaker_id, accent.decode())
            counts.setdefault(speaker_id, np.zeros(num_classes, dtype=np.int64))[label] += 1
    return accents, counts


def read_speaker_ids(file_patterns: str | Iterable[str]) -> set[str]:
    """Reads the speaker ids of TFRecord files of per-patch tf.Examples, and nothing else."""
    feature_spec = {features.SPEAKER_ID_KEY: tf.io.FixedLenFeature([], tf.string)}
    speakers: set[str] = set()
    for batch in _record_batches(file_patterns, feature_spec).as_numpy_iterator():
        speakers.update(speaker.decode() for speaker in batch[features.SPEAKER_ID_KEY])
    return speakers


def make_tuning_split(
    train_files: str | Sequence[str],
    eval_files: str | Sequence[str] | None,
    num_classes: int,
    validation_fraction: float,
    seed: int,
) -> TuningSplit:
    """Splits the train split's speakers into tuning train and tuning validation.

    Args:
        train_files: The train split's file patterns (``FnArgs.train_files``).
        eval_files: The eval split's file patterns (``FnArgs.eval_files``), read for their speaker
            ids only, to keep those speakers out of the tuning validation; None or empty for none.
        num_classes: Size of the label vocabulary.
        validation_fraction: Fraction of each accent's speakers to hold out.
        seed: Seed of the choice.

    Returns:
        The split and its patch counts.

    Raises:
        InvalidArgumentError: If no accent of the train split has two speakers, so none can be held out.
    """
    speaker_accents, speaker_counts = read_speakers(train_files, num_classes)
    eval_speakers = read_speaker_ids(eval_files) if eval_files else set()
    validation_speakers = choose_validation_speakers(
        speaker_accents, validation_fraction, seed, excluded_speakers=eval_speakers
    )
    if not validation_speakers and eval_speakers & set(speaker_accents):
        logger.warning(
            "Every train speaker also has clips in the eval split (the utterance split shares speakers): "
            "the tuning validation holds out train speakers that the eval split also has"
        )
        validation_speakers = choose_validation_speakers(speaker_accents, validation_fraction, seed)
    if not validation_speakers:
        raise InvalidArgumentError(
            f"The train split has {len(speaker_accents)} speakers and no accent with two of them: "
            "the Tuner needs speakers to hold out for its validation"
        )
    train_speakers = frozenset(speaker_accents) - validation_speakers
    empty = np.zeros(num_classes, dtype=np.int64)
    split = TuningSplit(
        train_speakers=train_speakers,
        validation_speakers=validation_speakers,
        train_counts=sum((speaker_counts[speaker] for speaker in train_speakers), empty),
        validation_counts=sum((speaker_counts[speaker] for speaker in validation_speakers), empty),
    )
    logger.info(
        "Tuning split of the train split: %d speakers (%d patches) to train, %d (%d patches) to validate: %s",
        len(train_speakers),
        int(split.train_counts.sum()),
        len(validation_speakers),
        int(split.validation_counts.sum()),
        ", ".join(sorted(validation_speakers)),
    )
    return split


def make_speaker_dataset(
    file_patterns: str | Iterable[str],
    speakers: Collection[str],
    num_classes: int,
    batch_size: int,
    num_records: int,
    shuffle: bool,
    seed: int = 0,
    shuffle_buffer_size: int = 10_000,
) -> tf.data.Dataset:
    """The ``(embedding batch, one-hot label batch)`` pairs of the patches of some speakers.

    Args:
        file_patterns: Glob pattern(s) of TFRecord files of per-patch tf.Examples.
        speakers: The speakers whose patches to keep.
        num_classes: Depth of the one-hot labels.
        batch_size: Patches per batch.
        num_records: The number of patches these speakers have (from ``make_tuning_split``'s counts),
            so that Keras knows the steps per epoch.
        shuffle: Whether to shuffle the patches (each epoch anew, from ``seed``).
        seed: Seed of the shuffling.
        shuffle_buffer_size: Records held by the shuffle buffer.

    Returns:
        A dataset of ``(float32 [batch, 1024], float32 [batch, num_classes])``.

    Raises:
        InvalidArgumentError: If ``speakers`` is empty or ``batch_size`` is not positive.
    """
    if not speakers:
        raise InvalidArgumentError("make_speaker_dataset needs at least one speaker")
    if batch_size <= 0:
        raise InvalidArgumentError(f"batch_size must be positive, got {batch_size}")
    feature_spec = {
        **data.training_feature_spec(),
        features.SPEAKER_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    }
    kept_speakers = tf.constant(sorted(speakers))

    def _kept_patches(batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        is_kept = tf.reduce_any(
            tf.equal(tf.expand_dims(batch[features.SPEAKER_ID_KEY], 1), tf.expand_dims(kept_speakers, 0)),
            axis=1,
        )
        return (
            tf.boolean_mask(batch[features.EMBEDDING_KEY], is_kept),
            tf.boolean_mask(batch[features.LABEL_KEY], is_kept),
        )

    dataset = (
        _record_batches(file_patterns, feature_spec)
        .map(_kept_patches)
        .unbatch()
        .apply(tf.data.experimental.assert_cardinality(num_records))
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    return (
        dataset.batch(batch_size)
        .map(lambda embedding, label: (embedding, tf.one_hot(label, depth=num_classes, dtype=tf.float32)))
        .prefetch(tf.data.AUTOTUNE)
    )
