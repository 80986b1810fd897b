import csv
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from components.yamnet import export, frontend, network, weights
from tests.unit import yamnet_testing

LENGTHS_AND_PATCHES = [
    (1, 1),
    (15599, 1),
    (15600, 1),
    (15601, 2),
    (16000, 2),
    (23280, 2),
    (23281, 3),
    (48000, 6),
]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return yamnet_testing.offline_export_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def hub_model(export_dir):
    return hub.load(str(export_dir))


def test_hub_load_matches_direct_keras_call(hub_model):
    yamnet_network = yamnet_testing.offline_network()
    for clip in [*yamnet_testing.speech_like_clips()[:3], np.zeros(48000, np.float32)]:
        exported = hub_model(clip)
        direct = network.yamnet_frames(yamnet_network, tf.constant(clip))
        for exported_output, direct_output in zip(exported, direct, strict=True):
            np.testing.assert_allclose(exported_output.numpy(), direct_output.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("num_samples", "num_patches"), LENGTHS_AND_PATCHES)
def test_exported_output_shapes(hub_model, num_samples, num_patches):
    waveform = np.random.default_rng(num_samples).uniform(-0.3, 0.3, num_samples).astype(np.float32)
    scores, embeddings, log_mel = hub_model(waveform)
    assert tuple(scores.shape) == (num_patches, 521)
    assert tuple(embeddings.shape) == (num_patches, 1024)
    assert tuple(log_mel.shape) == (96 + 48 * (num_patches - 1), 64)
    assert np.all((scores.numpy() > 0) & (scores.numpy() < 1))


def test_batched_functions_agree_with_call(hub_model):
    clip = yamnet_testing.speech_like_clips()[0]
    scores, embeddings, log_mel = hub_model(clip)
    front_end = hub_model.log_mel_patches(clip)
    np.testing.assert_allclose(front_end["log_mel_spectrogram"].numpy(), log_mel.numpy(), atol=1e-6)
    _, expected_patches = frontend.waveform_to_log_mel_and_patches(tf.constant(clip))
    np.testing.assert_allclose(front_end["patches"].numpy(), expected_patches.numpy(), atol=1e-6)
    batched = hub_model.embed_patches(front_end["patches"])
    np.testing.assert_allclose(batched["embeddings"].numpy(), embeddings.numpy(), atol=1e-5)
    np.testing.assert_allclose(batched["scores"].numpy(), scores.numpy(), atol=1e-5)


def test_class_map_and_weights_description(hub_model, export_dir):
    with open(hub_model.class_map_path().numpy().decode(), newline="") as csv_file:
        rows = list(csv.reader(csv_file))
    assert rows[0] == ["index", "mid", "display_name"]
    assert rows[1] == ["0", "/m/09x0r", "Speech"]
    assert len(rows) == 1 + 521
    assert all(
        "placeholder_" in row[2] and row[0] == str(index) for index, row in enumerate(rows[1:]) if index
    )
    assert export.describe_weights(export_dir) == {
        "source": "offline",
        "seed": yamnet_testing.SEED,
        "pretrained": False,
        "h5_path": None,
        "offline_weights_version": weights.OFFLINE_WEIGHTS_VERSION,
    }


def test_describe_weights_of_a_foreign_saved_model(tmp_path):
    tf.saved_model.save(tf.Module(), str(tmp_path))
    assert export.describe_weights(tmp_path) == {"source": "hub", "pretrained": True}


def test_copied_export_keeps_its_assets(export_dir, tmp_path, hub_model):
    copy_dir = tmp_path / "copied"
    shutil.copytree(export_dir, copy_dir)
    copied = tf.saved_model.load(str(copy_dir))
    class_map_path = copied.class_map_path().numpy().decode()
    assert class_map_path.startswith(str(copy_dir))
    assert export.describe_weights(copy_dir)["source"] == "offline"
    clip = yamnet_testing.speech_like_clips()[1]
    np.testing.assert_array_equal(copied(clip)[1].numpy(), hub_model(clip)[1].numpy())


def test_two_offline_exports_are_identical(tmp_path, hub_model):
    second = tf.saved_model.load(
        str(export.export_yamnet(tmp_path / "second", "offline", seed=yamnet_testing.SEED))
    )
    for clip in yamnet_testing.speech_like_clips()[:4]:
        for first_output, second_output in zip(hub_model(clip), second(clip), strict=True):
            np.testing.assert_array_equal(first_output.numpy(), second_output.numpy())


def test_h5_export(tmp_path):
    groups = yamnet_testing.official_arrays(np.random.default_rng(11))
    h5_path = tmp_path / "yamnet.h5"
    yamnet_testing.write_keras2_h5(h5_path, groups)
    exported_dir = export.export_yamnet(tmp_path / "from_h5", weights=str(h5_path))
    description = export.describe_weights(exported_dir)
    assert description["source"] == "h5"
    assert description["pretrained"] is True
    assert description["h5_path"] == str(h5_path)
    direct = network.build_yamnet_network()
    weights.load_h5_weights(direct, h5_path)
    clip = yamnet_testing.speech_like_clips()[2]
    exported = tf.saved_model.load(str(exported_dir))(clip)
    expected = network.yamnet_frames(direct, tf.constant(clip))
    np.testing.assert_allclose(exported[0].numpy(), expected[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(exported[1].numpy(), expected[1].numpy(), atol=1e-5)
