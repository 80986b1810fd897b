import numpy as np
import pytest
import tensorflow as tf

from components import features
from components.corpus.records import ClipRecord
from components.embedding import patch_examples
from tests import example_builders


def _record(speaker_id: str = "scf_00001", clip_id: str = "scf_00001_0001") -> ClipRecord:
    return ClipRecord(
        clip_id=clip_id,
        source=f"/corpus/{clip_id}.wav",
        accent_code="sc",
        accent="Scottish",
        label=features.class_id("Scottish"),
        gender="female",
        speaker_id=speaker_id,
        split=features.TRAIN_SPLIT,
        transcript="",
    )


@pytest.mark.parametrize(
    ("record", "patch_index", "label", "is_speech"),
    [
        (_record(), 0, 3, True),
        (_record(), 127, 6, False),
        (_record(), 300_000, 0, True),
        (_record(speaker_id="séan_ó_01", clip_id="irm_séan_0001"), 5, 1, True),
    ],
)
def test_encoder_bytes_parse_to_the_message_patch_example_builds(record, patch_index, label, is_speech):
    embedding = np.random.default_rng(patch_index).normal(size=features.EMBEDDING_SIZE).astype(np.float32)
    serialized = patch_examples.PatchExampleEncoder(record).encode(patch_index, embedding, label, is_speech)
    expected = patch_examples.patch_example(record, patch_index, embedding, label, is_speech)
    assert tf.train.Example.FromString(serialized) == expected


def test_encoder_stores_other_float_types_as_float32():
    embedding = np.linspace(-1.0, 1.0, 2 * features.EMBEDDING_SIZE)[::2]
    serialized = patch_examples.PatchExampleEncoder(_record()).encode(2, embedding, 3, True)
    parsed = tf.io.parse_single_example(
        serialized, {features.EMBEDDING_KEY: tf.io.FixedLenFeature([features.EMBEDDING_SIZE], tf.float32)}
    )
    np.testing.assert_array_equal(parsed[features.EMBEDDING_KEY].numpy(), embedding.astype(np.float32))


def test_tensorflow_parses_a_batch_of_encoded_examples():
    encoder = patch_examples.PatchExampleEncoder(_record())
    embeddings = np.random.default_rng(0).normal(size=(3, features.EMBEDDING_SIZE)).astype(np.float32)
    serialized = [encoder.encode(index, embeddings[index], index, index % 2 == 0) for index in range(3)]
    parsed = tf.io.parse_example(serialized, example_builders.patch_feature_spec())
    np.testing.assert_array_equal(parsed[features.EMBEDDING_KEY].numpy(), embeddings)
    assert parsed[features.LABEL_KEY].numpy().tolist() == [0, 1, 2]
    assert parsed[features.IS_SPEECH_KEY].numpy().tolist() == [1, 0, 1]
    assert parsed[features.CLIP_ID_KEY].numpy().tolist() == [b"scf_00001_0001"] * 3


def test_encoder_rejects_a_matrix():
    with pytest.raises(ValueError, match="1-D"):
        patch_examples.PatchExampleEncoder(_record()).encode(0, np.zeros((2, 3)), 0, True)


@pytest.mark.parametrize("num_floats", [0, 1, 31, 32, 4096])
def test_encoder_matches_the_message_for_every_embedding_length(num_floats):
    # The header before the floats is cached per byte length; 32 floats (128 bytes) is the first
    # length whose varint takes two bytes.
    encoder = patch_examples.PatchExampleEncoder(_record())
    for patch_index in (0, 1):
        embedding = np.random.default_rng(num_floats + patch_index).normal(size=num_floats).astype(np.float32)
        serialized = encoder.encode(patch_index, embedding, 6 - patch_index, bool(patch_index))
        expected = patch_examples.patch_example(
            _record(), patch_index, embedding, 6 - patch_index, bool(patch_index)
        )
        assert tf.train.Example.FromString(serialized) == expected
