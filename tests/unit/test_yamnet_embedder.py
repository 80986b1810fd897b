import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components.yamnet import embedder, export, handle, weights
from tests.unit import yamnet_testing


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return yamnet_testing.offline_export_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def clips():
    speech = list(yamnet_testing.speech_like_clips()[:5])
    return [*speech, np.zeros(1, np.float32), np.zeros(48000, np.float32), speech[0][:23281]]


class HubLikeModule(tf.Module):
    """A model with only the Hub contract (no embed_patches), like the real Hub YAMNet."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, waveform):
        return self.model(waveform)


def test_batched_embedding_equals_per_clip_calls(export_dir, clips):
    yamnet_embedder = embedder.YamnetEmbedder(export_dir, batch_patches=5)
    assert yamnet_embedder.batched
    assert not yamnet_embedder.pretrained
    results = yamnet_embedder.embed_waveforms(clips)
    model = tf.saved_model.load(str(export_dir))
    assert [result.num_patches for result in results] == [4, 1, 2, 3, 1, 1, 6, 3]
    for clip, result in zip(clips, results, strict=True):
        scores, embeddings, _ = model(clip)
        assert result.embeddings.dtype == np.float32
        assert result.patch_levels_dbfs.shape == (result.num_patches,)
        np.testing.assert_allclose(result.embeddings, embeddings.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(result.scores, scores.numpy(), atol=1e-4, rtol=0)


def test_hub_like_model_is_called_per_clip(export_dir, clips, tmp_path):
    hub_like_dir = tmp_path / "hub_like"
    tf.saved_model.save(HubLikeModule(tf.saved_model.load(str(export_dir))), str(hub_like_dir))
    per_clip = embedder.YamnetEmbedder(hub_like_dir)
    assert not per_clip.batched
    # Re-saving the loaded model carries its assets along, so the weights are still known as offline.
    assert per_clip.weights_info.source == export.SOURCE_OFFLINE
    batched = embedder.YamnetEmbedder(export_dir, batch_patches=512)
    for per_clip_result, batched_result in zip(
        per_clip.embed_waveforms(clips[:4]), batched.embed_waveforms(clips[:4]), strict=True
    ):
        np.testing.assert_allclose(per_clip_result.embeddings, batched_result.embeddings, atol=1e-4, rtol=0)


def test_dict_form_model_embeds_like_the_tuple_form(export_dir, clips, tmp_path):
    dict_form_dir = yamnet_testing.write_dict_form_yamnet(export_dir, tmp_path / "dict_form")
    dict_form = embedder.YamnetEmbedder(dict_form_dir)
    assert not dict_form.batched
    tuple_form = embedder.YamnetEmbedder(export_dir, batch_patches=512)
    for dict_form_result, tuple_form_result in zip(
        dict_form.embed_waveforms(clips[:4]), tuple_form.embed_waveforms(clips[:4]), strict=True
    ):
        np.testing.assert_allclose(
            dict_form_result.embeddings, tuple_form_result.embeddings, atol=1e-4, rtol=0
        )
        np.testing.assert_allclose(dict_form_result.scores, tuple_form_result.scores, atol=1e-4, rtol=0)


def test_patch_levels():
    half_scale = np.full(15600 + 7680, 0.5, np.float32)
    np.testing.assert_allclose(embedder.patch_levels_dbfs(half_scale), [20 * np.log10(0.5)] * 2, atol=1e-4)
    sine = 0.1 * np.sin(2 * np.pi * 1000.0 * np.arange(15600) / 16000)
    np.testing.assert_allclose(embedder.patch_levels_dbfs(sine), [20 * np.log10(0.1 / np.sqrt(2))], atol=1e-3)
    silent_tail = np.concatenate([np.full(7680, 0.5), np.zeros(7680 + 15600)])
    levels = embedder.patch_levels_dbfs(silent_tail)
    assert levels.shape == (3,)
    np.testing.assert_allclose(levels[0], 20 * np.log10(0.5 * np.sqrt(7680 / 15600)), atol=1e-4)
    assert levels[2] == pytest.approx(embedder.SILENCE_LEVEL_DBFS)


def test_top_class_is_speech():
    scores = np.full((3, 521), 0.1, np.float32)
    scores[0, 0] = 0.9
    scores[1, 7] = 0.9
    scores[2, 0] = 0.5
    scores[2, 500] = 0.6
    np.testing.assert_array_equal(embedder.top_class_is_speech(scores), [True, False, False])
    with pytest.raises(ValueError, match="521"):
        embedder.top_class_is_speech(np.zeros((2, 3)))


def test_bad_arguments(export_dir):
    with pytest.raises(ValueError, match="batch_patches"):
        embedder.YamnetEmbedder(export_dir, batch_patches=0)
    yamnet_embedder = embedder.YamnetEmbedder(export_dir)
    with pytest.raises(ValueError, match="1-D"):
        yamnet_embedder.embed_waveforms([np.zeros((2, 16000), np.float32)])
    assert yamnet_embedder.embed_waveforms([]) == []


def test_released_embedder_refuses_to_embed(export_dir):
    yamnet_embedder = embedder.YamnetEmbedder(export_dir)
    yamnet_embedder.release()
    with pytest.raises(RuntimeError, match="released"):
        yamnet_embedder.embed_waveforms([np.zeros(16000, np.float32)])


def test_an_embedder_alive_at_exit_is_released_quietly(export_dir):
    # Beam's shared cache keeps the last embedder until the interpreter exits; its TensorFlow
    # functions must be freed before teardown, or each prints an ignored TypeError.
    script = (
        "import numpy as np\n"
        "from apache_beam.utils import shared\n"
        "from components.yamnet import embedder\n"
        f"kept = shared.Shared().acquire(lambda: embedder.YamnetEmbedder({str(export_dir)!r}))\n"
        "print(kept.embed_waveforms([np.zeros(20000, np.float32)])[0].num_patches)\n"
        "del kept\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "2"
    assert "Exception ignored" not in completed.stderr


def test_offline_weights_warn_once_across_the_resolver_and_embedders(export_dir, monkeypatch, caplog):
    monkeypatch.setattr(weights, "_offline_warning_logged", False)
    with caplog.at_level(logging.WARNING):
        resolved = handle.resolve_yamnet_handle(
            weights.OFFLINE_WEIGHTS, export_dir.parent, seed=yamnet_testing.SEED
        )
        embedder.YamnetEmbedder(resolved)
        embedder.YamnetEmbedder(export_dir)
    assert sum("UNTRAINED" in record.getMessage() for record in caplog.records) == 1
