"""The tf.Example of one YAMNet patch: its features, and a fast serializer.

Every patch of a clip shares the clip's accent, speaker, gender and clip id,
and differs in its embedding, label, patch index and speech flag. Building a
``tf.train.Example`` message per patch costs more Python time than the network
takes for the patch, so ``PatchExampleEncoder`` writes the protocol buffer wire
format directly: the clip's features are encoded once, the embedding is the
float32 bytes of the array (a packed ``FloatList``), and each patch costs a
few byte concatenations. The bytes parse to the same ``tf.train.Example`` that
``patch_example`` builds (the tests check it); map entries are written in key
order, which parsers do not depend on.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from components import corpus, features

# Protocol buffer wire types and the field numbers of tf.train.Example and its messages.
_LENGTH_DELIMITED = 2
_EXAMPLE_FEATURES_FIELD = 1
_FEATURES_MAP_FIELD = 1
_MAP_KEY_FIELD = 1
_MAP_VALUE_FIELD = 2
_FEATURE_BYTES_LIST_FIELD = 1
_FEATURE_FLOAT_LIST_FIELD = 2
_FEATURE_INT64_LIST_FIELD = 3
_LIST_VALUE_FIELD = 1

_UINT64_MASK = (1 << 64) - 1


def _varint(value: int) -> bytes:
    """Encodes an integer as a protocol buffer varint (negative int64 as ten bytes)."""
    value &= _UINT64_MASK
    encoded = bytearray()
    while True:
        low_bits = value & 0x7F
        value >>= 7
        if value:
            encoded.append(low_bits | 0x80)
        else:
            encoded.append(low_bits)
            return bytes(encoded)


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    return _varint(field_number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _map_entry(key: str, feature: bytes) -> bytes:
    entry = _length_delimited(_MAP_KEY_FIELD, key.encode("utf-8")) + _length_delimited(
        _MAP_VALUE_FIELD, feature
    )
    return _length_delimited(_FEATURES_MAP_FIELD, entry)


def _bytes_feature(value: str) -> bytes:
    return _length_delimited(
        _FEATURE_BYTES_LIST_FIELD, _length_delimited(_LIST_VALUE_FIELD, value.encode("utf-8"))
    )


def _int64_feature(value: int) -> bytes:
    return _length_delimited(
        _FEATURE_INT64_LIST_FIELD, _length_delimited(_LIST_VALUE_FIELD, _varint(int(value)))
    )


def _float_feature(values: np.ndarray) -> bytes:
    packed = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return _length_delimited(_FEATURE_FLOAT_LIST_FIELD, _length_delimited(_LIST_VALUE_FIELD, packed))


@functools.lru_cache(maxsize=8192)
def _int64_entry(key: str, value: int) -> bytes:
    """The map entry of an int64 feature; labels, flags and patch indexes repeat, so it is cached."""
    return _map_entry(key, _int64_feature(value))


@functools.lru_cache(maxsize=16)
def _float_entry_prefix(key: str, num_bytes: int) -> bytes:
    """Everything of a packed float feature's map entry before its ``num_bytes`` of floats."""
    entry = _map_entry(key, _float_feature(np.zeros(num_bytes // 4, dtype="<f4")))
    return entry[: len(entry) - num_bytes]


class PatchExampleEncoder:
    """Serializes the tf.Examples of one clip's patches.

    Args:
        record: The clip the patches come from.
    """

    def __init__(self, record: corpus.ClipRecord):
        self._clip_entries = {
            features.ACCENT_KEY: _map_entry(features.ACCENT_KEY, _bytes_feature(record.accent)),
            features.SPEAKER_ID_KEY: _map_entry(features.SPEAKER_ID_KEY, _bytes_feature(record.speaker_id)),
            features.GENDER_KEY: _map_entry(features.GENDER_KEY, _bytes_feature(record.gender)),
            features.CLIP_ID_KEY: _map_entry(features.CLIP_ID_KEY, _bytes_feature(record.clip_id)),
        }

    def encode(self, patch_index: int, embedding: np.ndarray, label: int, is_speech: bool) -> bytes:
        """Returns the serialized tf.Example of one patch.

        Args:
            patch_index: Position of the patch in the clip.
            embedding: The patch's YAMNet embedding (1-D; stored as float32).
            label: Class id: the clip's accent, or "Not a speech".
            is_speech: Whether the non-speech rule judged the patch speech.

        Returns:
            The bytes of a ``tf.train.Example`` with the features named in ``components.features``.

        Raises:
            ValueError: If the embedding is not 1-D.
        """
        embedding = np.asarray(embedding)
        if embedding.ndim != 1:
            raise ValueError(f"embedding must be 1-D, got shape {embedding.shape}")
        packed = np.ascontiguousarray(embedding, dtype="<f4").tobytes()
        entries = dict(self._clip_entries)
        entries[features.EMBEDDING_KEY] = _float_entry_prefix(features.EMBEDDING_KEY, len(packed)) + packed
        entries[features.LABEL_KEY] = _int64_entry(features.LABEL_KEY, int(label))
        entries[features.PATCH_INDEX_KEY] = _int64_entry(features.PATCH_INDEX_KEY, int(patch_index))
        entries[features.IS_SPEECH_KEY] = _int64_entry(features.IS_SPEECH_KEY, int(is_speech))
        serialized_features = b"".join(entries[key] for key in sorted(entries))
        return _length_delimited(_EXAMPLE_FEATURES_FIELD, serialized_features)


def patch_example(
    record: corpus.ClipRecord,
    patch_index: int,
    embedding: np.ndarray,
    label: int,
    is_speech: bool,
) -> tf.train.Example:
    """Builds the tf.Example of one patch as a message (see ``PatchExampleEncoder`` for the fast path).

    Args:
        record: The clip the patch comes from.
        patch_index: Position of the patch in the clip.
        embedding: The patch's 1024-d YAMNet embedding.
        label: Class id: the clip's accent, or "Not a speech".
        is_speech: Whether the non-speech rule judged the patch speech.

    Returns:
        The example, with the features named in ``components.features``.
    """

    def bytes_feature(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))

    def int_feature(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.EMBEDDING_KEY: tf.train.Feature(
                    float_list=tf.train.FloatList(value=np.asarray(embedding, dtype=np.float32).tolist())
                ),
                features.LABEL_KEY: int_feature(label),
                features.ACCENT_KEY: bytes_feature(record.accent),
                features.SPEAKER_ID_KEY: bytes_feature(record.speaker_id),
                features.GENDER_KEY: bytes_feature(record.gender),
                features.CLIP_ID_KEY: bytes_feature(record.clip_id),
                features.PATCH_INDEX_KEY: int_feature(patch_index),
                features.IS_SPEECH_KEY: int_feature(int(is_speech)),
            }
        )
    )
