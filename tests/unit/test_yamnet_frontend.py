import numpy as np
import pytest
import tensorflow as tf

from components.yamnet import frontend, params, synthetic_audio

# Patch counts stated by the specification: 1 + ceil(max(0, N - 15600) / 7680).
EXPECTED_PATCHES = {1: 1, 15599: 1, 15600: 1, 15601: 2, 16000: 2, 23280: 2, 23281: 3, 48000: 6}


def reference_mel_matrix() -> np.ndarray:
    """HTK-mel triangular filters, built like tf.signal.linear_to_mel_weight_matrix (DC bin zeroed)."""

    def hertz_to_mel(frequency):
        return 1127.0 * np.log(1.0 + frequency / 700.0)

    num_bins = 512 // 2 + 1
    linear_frequencies = np.linspace(0.0, 8000.0, num_bins)[1:]
    bins_mel = hertz_to_mel(linear_frequencies)[:, np.newaxis]
    edges = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 64 + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.concatenate([np.zeros((1, 64)), weights], axis=0)


def reference_front_end(waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent NumPy front end: padding, periodic-Hann STFT, mel, log, framing into patches."""
    num_samples = len(waveform)
    num_patches = params.num_patches(num_samples)
    padded = np.zeros(params.padded_length(num_samples))
    padded[:num_samples] = waveform
    num_frames = 1 + (len(padded) - 400) // 160
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([padded[index * 160 : index * 160 + 400] * window for index in range(num_frames)])
    magnitude = np.abs(np.fft.rfft(frames, n=512, axis=1))
    log_mel = np.log(magnitude @ reference_mel_matrix() + 0.001)
    patches = np.stack([log_mel[index * 48 : index * 48 + 96] for index in range(num_patches)])
    return log_mel, patches


@pytest.mark.parametrize("num_samples", sorted(EXPECTED_PATCHES))
def test_patch_count_and_shapes(num_samples):
    waveform = np.random.default_rng(num_samples).uniform(-0.5, 0.5, num_samples).astype(np.float32)
    log_mel, patches = frontend.waveform_to_log_mel_and_patches(tf.constant(waveform))
    expected = EXPECTED_PATCHES[num_samples]
    assert params.num_patches(num_samples) == expected
    assert tuple(patches.shape) == (expected, 96, 64)
    assert tuple(log_mel.shape) == (96 + 48 * (expected - 1), 64)
    assert params.padded_length(num_samples) == 15600 + 7680 * (expected - 1)


def test_padding_is_trailing_zeros():
    waveform = np.arange(1, 16001, dtype=np.float32) / 16000
    padded = frontend.pad_waveform(tf.constant(waveform)).numpy()
    assert padded.shape == (15600 + 7680,)
    np.testing.assert_array_equal(padded[:16000], waveform)
    assert not padded[16000:].any()


@pytest.mark.parametrize("num_samples", [5000, 23281, 40000])
def test_front_end_matches_numpy_reference(num_samples):
    rng = np.random.default_rng(7)
    waveform = synthetic_audio.speech_like_waveform(rng, num_samples)
    waveform += 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(num_samples) / 16000).astype(np.float32)
    log_mel, patches = frontend.waveform_to_log_mel_and_patches(tf.constant(waveform))
    expected_log_mel, expected_patches = reference_front_end(waveform.astype(np.float64))
    assert log_mel.shape == expected_log_mel.shape
    np.testing.assert_allclose(log_mel.numpy(), expected_log_mel, atol=1e-3, rtol=0)
    np.testing.assert_allclose(patches.numpy(), expected_patches, atol=1e-3, rtol=0)


def test_mel_matrix_matches_reference():
    np.testing.assert_allclose(frontend.mel_weight_matrix().numpy(), reference_mel_matrix(), atol=1e-5)


def test_silence_gives_log_offset():
    log_mel, _ = frontend.waveform_to_log_mel_and_patches(tf.zeros([100]))
    np.testing.assert_allclose(log_mel.numpy(), np.log(0.001), rtol=1e-6)


def test_num_patches_rejects_negative_length():
    with pytest.raises(ValueError, match="num_samples"):
        params.num_patches(-1)


def test_batched_front_end_equals_each_clip_alone():
    rng = np.random.default_rng(11)
    lengths = [1, 15599, 15600, 15601, 23281, 48000, 5000, 40000]
    clips = [synthetic_audio.speech_like_waveform(rng, length) for length in lengths]
    signal, patch_frame_starts, patch_counts = frontend.concatenate_clips(clips)
    batched = frontend.batch_log_mel_patches(tf.constant(signal), tf.constant(patch_frame_starts)).numpy()
    assert patch_counts.tolist() == [
        EXPECTED_PATCHES.get(length, params.num_patches(length)) for length in lengths
    ]
    assert batched.shape == (sum(patch_counts), 96, 64)
    per_clip = np.concatenate(
        [frontend.waveform_to_log_mel_and_patches(tf.constant(clip))[1].numpy() for clip in clips]
    )
    np.testing.assert_allclose(batched, per_clip, atol=1e-5, rtol=0)


def test_batch_layout_keeps_each_clip_on_the_stft_grid_with_its_padding():
    offsets, patch_frame_starts, patch_counts = frontend.batch_layout([16000, 1, 30000])
    assert patch_counts.tolist() == [2, 1, 3]
    assert offsets.tolist() == [0, 23360, 39040]
    assert all(offset % 160 == 0 for offset in offsets)
    assert np.diff(offsets).tolist()[0] >= params.padded_length(16000)
    assert patch_frame_starts.tolist() == [0, 48, 146, 244, 292, 340]


def test_empty_batch_has_no_patches():
    signal, patch_frame_starts, patch_counts = frontend.concatenate_clips([])
    assert signal.size == 0 and patch_frame_starts.size == 0 and patch_counts.size == 0
