"""Reading the per-patch tf.Examples of an Examples artifact with tf.data.

Every split of the artifact is a set of TFRecord files of serialized
tf.Examples, one per 0.96 s YAMNet patch (see ``components/features.py``):
plain files from EmbeddingGen, gzipped ones (``.gz``, the ExampleGen
convention) read as well.
The Trainer only needs the embedding and the label of each patch; clip-level
evaluation also needs the clip id and the clip's accent.

The Trainer reads with this module, not ``fn_args.data_accessor``: TFX's TFXIO reader gave markedly
fewer batches per second on the same files, plain or gzipped, with or without a dense schema (issue #13).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from components import features

logger = logging.getLogger(__name__)

# Records read in one parsing batch when counting labels or gathering clips.
_COUNTING_BATCH_SIZE = 4096

# Records parsed in one call when the parsed patches are kept in memory.
_CACHING_PARSE_BATCH_SIZE = 1024

# A split whose TFRecord files total at most this many bytes is parsed once and its patches kept in
# memory (a patch is 4 KiB: OpenSLR-83's 233k patches are about 1 GiB, within the Trainer's 8 GB), so
# that every epoch after the first shuffles and batches tensors in memory instead of reading and parsing
# the files again. A larger split is streamed from its files every epoch. See README, Benchmarks.
DEFAULT_CACHE_BUDGET_BYTES = 2 * 2**30


def embedding_feature_spec() -> dict[str, tf.io.FixedLenFeature]:
    """Returns the parsing spec of the model input alone.

    Returns:
        A ``tf.io.parse_example`` spec with the 1024-d ``embedding`` feature.
    """
    return {features.EMBEDDING_KEY: tf.io.FixedLenFeature([features.EMBEDDING_SIZE], tf.float32)}


def training_feature_spec() -> dict[str, tf.io.FixedLenFeature]:
    """Returns the parsing spec of what training reads: embedding and label.

    Returns:
        A ``tf.io.parse_example`` spec with the ``embedding`` and ``label`` features.
    """
    return {
        **embedding_feature_spec(),
        features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }


def clip_feature_spec() -> dict[str, tf.io.FixedLenFeature]:
    """Returns the parsing spec of clip-level evaluation.

    Returns:
        A ``tf.io.parse_example`` spec with the embedding, the label, the clip id
        and the clip's accent name.
    """
    return {
        **training_feature_spec(),
        features.CLIP_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        features.ACCENT_KEY: tf.io.FixedLenFeature([], tf.string),
    }


def resolve_files(file_patterns: str | Iterable[str]) -> list[str]:
    """Expands file patterns (as in ``FnArgs.train_files``) into sorted file paths.

    Args:
        file_patterns: One glob pattern or several.

    Returns:
        The sorted, de-duplicated list of matching files.

    Raises:
        ValueError: If no file matches.
    """
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise ValueError(f"No TFRecord file matches {patterns}")
    return files


def _compression_type(path: str) -> str:
    """Returns the TFRecord compression of a file, from its name: ``GZIP`` for ``.gz``, else none.

    The rule of tfx_bsl's ``detect_compression_type``, applied per file, because that one refuses a
    split that mixes plain and gzipped files, which this reader accepts.
    """
    return "GZIP" if path.endswith(".gz") else ""


def _record_dataset(files: Sequence[str]) -> tf.data.Dataset:
    """Returns the serialized records of TFRecord files (plain or gzipped), in file order."""
    compressions = {_compression_type(path) for path in files}
    if len(compressions) == 1:
        return tf.data.TFRecordDataset(list(files), compression_type=compressions.pop())
    datasets = [tf.data.TFRecordDataset(path, compression_type=_compression_type(path)) for path in files]
    dataset = datasets[0]
    for next_dataset in datasets[1:]:
        dataset = dataset.concatenate(next_dataset)
    return dataset


def make_training_dataset(
    file_patterns: str | Iterable[str],
    num_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    shuffle_buffer_size: int = 10_000,
    num_records: int | None = None,
    cache_budget_bytes: int = DEFAULT_CACHE_BUDGET_BYTES,
) -> tf.data.Dataset:
    """Builds a dataset of ``(embedding batch, one-hot label batch)`` pairs.

    A split whose files total at most ``cache_budget_bytes`` is read and parsed
    once, in large batches, during the first epoch, and its parsed patches are
    kept in memory for the later ones; a larger split is read, shuffled as
    serialized records and parsed batch by batch on every epoch. Both give the
    same patches; with ``shuffle`` both use a buffer of ``shuffle_buffer_size``.

    Args:
        file_patterns: Glob pattern(s) of TFRecord files (plain or ``.gz``) of per-patch tf.Examples.
        num_classes: Size of the label vocabulary (depth of the one-hot labels).
        batch_size: Patches per batch.
        shuffle: Whether to shuffle the patches (each epoch anew, from ``seed``).
        seed: Seed of the shuffling.
        shuffle_buffer_size: Records held by the shuffle buffer.
        num_records: The number of records, if known (e.g. from ``count_labels``): it
            lets Keras know the number of steps per epoch.
        cache_budget_bytes: Largest total size of the files whose parsed patches are kept
            in memory; 0 streams every split from its files.

    Returns:
        A dataset of ``(embeddings float32 [batch, 1024], one-hot labels float32 [batch, num_classes])``.

    Raises:
        ValueError: If ``batch_size`` is not positive or no file matches.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    files = resolve_files(file_patterns)
    dataset = _record_dataset(files)
    if num_records is not None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_records))
    feature_spec = training_feature_spec()

    def _parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, feature_spec)
        one_hot_labels = tf.one_hot(parsed[features.LABEL_KEY], depth=num_classes, dtype=tf.float32)
        return parsed[features.EMBEDDING_KEY], one_hot_labels

    files_bytes = sum(tf.io.gfile.stat(path).length for path in files)
    if files_bytes <= cache_budget_bytes:
        logger.info(
            "Keeping the parsed patches of %d files (%d bytes) in memory after the first epoch",
            len(files),
            files_bytes,
        )
        dataset = (
            dataset.batch(_CACHING_PARSE_BATCH_SIZE)
            .map(_parse, num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch()
            .cache()
        )
        if num_records is not None:
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_records))
        if shuffle:
            dataset = dataset.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    return (
        dataset.batch(batch_size).map(_parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    )


def count_labels(file_patterns: str | Iterable[str], num_classes: int) -> np.ndarray:
    """Counts the patches of each class.

    Args:
        file_patterns: Glob pattern(s) of TFRecord files (plain or ``.gz``) of per-patch tf.Examples.
        num_classes: Size of the label vocabulary.

    Returns:
        An int64 array of shape ``[num_classes]``: the number of patches of each class id.

    Raises:
        ValueError: If a label is outside ``[0, num_classes)`` or no file matches.
    """
    label_spec = {features.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    counts = np.zeros(num_classes, dtype=np.int64)
    dataset = _record_dataset(resolve_files(file_patterns)).batch(_COUNTING_BATCH_SIZE)
    dataset = dataset.map(lambda serialized: tf.io.parse_example(serialized, label_spec)[features.LABEL_KEY])
    for labels in dataset.as_numpy_iterator():
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"Label ids must be in [0, {num_classes}); found {labels.min()}..{labels.max()}")
        counts += np.bincount(labels, minlength=num_classes)
    return counts


def read_clip_patches(file_patterns: str | Iterable[str]) -> dict[str, np.ndarray]:
    """Reads every patch's embedding, label, clip id and accent into memory.

    Args:
        file_patterns: Glob pattern(s) of TFRecord files (plain or ``.gz``) of per-patch tf.Examples.

    Returns:
        A dict of numpy arrays keyed by feature name: ``embedding`` [N, 1024],
        ``label`` [N], ``clip_id`` [N] (bytes) and ``accent`` [N] (bytes).
    """
    feature_spec = clip_feature_spec()
    dataset = _record_dataset(resolve_files(file_patterns)).batch(_COUNTING_BATCH_SIZE)
    dataset = dataset.map(lambda serialized: tf.io.parse_example(serialized, feature_spec))
    columns: dict[str, list[np.ndarray]] = {key: [] for key in feature_spec}
    for batch in dataset.as_numpy_iterator():
        for key, values in batch.items():
            columns[key].append(values)
    empty_shapes = {features.EMBEDDING_KEY: (0, features.EMBEDDING_SIZE)}
    return {
        key: np.concatenate(values) if values else np.zeros(empty_shapes.get(key, (0,)))
        for key, values in columns.items()
    }
