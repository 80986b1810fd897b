"""YAMNet's front end: waveform -> log-mel spectrogram -> 96 x 64 patches.

A TensorFlow port of ``features.py`` of the published model (the non-TFLite
path): the waveform is zero-padded at the end to at least 15,600 samples and
then to a whole number of 7,680-sample hops, so that N samples give
``1 + ceil(max(0, N - 15600) / 7680)`` patches.

``batch_log_mel_patches`` computes the patches of many clips in one graph
call, from the clips laid end to end by ``concatenate_clips``; the result
equals each clip's own front end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from components.yamnet import params


def pad_waveform(waveform: tf.Tensor) -> tf.Tensor:
    """Zero-pads a waveform at its end the way YAMNet does.

    Args:
        waveform: 1-D float32 tensor of 16 kHz samples in [-1, 1].

    Returns:
        The waveform followed by zeros, ``params.padded_length(N)`` samples long.
    """
    waveform = tf.convert_to_tensor(waveform, dtype=tf.float32)
    num_samples = tf.shape(waveform)[0]
    min_num_samples = tf.constant(params.PATCH_WINDOW_SAMPLES, dtype=tf.int32)
    hop_samples = tf.constant(params.PATCH_HOP_SAMPLES, dtype=tf.int32)
    samples_after_first_patch = tf.maximum(0, num_samples - min_num_samples)
    hops_after_first_patch = (samples_after_first_patch + hop_samples - 1) // hop_samples
    target_length = min_num_samples + hops_after_first_patch * hop_samples
    return tf.pad(waveform, [[0, target_length - num_samples]], mode="CONSTANT", constant_values=0.0)


def mel_weight_matrix() -> tf.Tensor:
    """Returns YAMNet's [257, 64] linear-to-mel weight matrix (HTK mel scale)."""
    return tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=params.MEL_BANDS,
        num_spectrogram_bins=params.NUM_SPECTROGRAM_BINS,
        sample_rate=params.SAMPLE_RATE,
        lower_edge_hertz=params.MEL_MIN_HZ,
        upper_edge_hertz=params.MEL_MAX_HZ,
    )


def log_mel_spectrogram(padded_waveform: tf.Tensor) -> tf.Tensor:
    """Computes the log-mel spectrogram of an (already padded) waveform.

    Args:
        padded_waveform: 1-D float32 tensor.

    Returns:
        A [M, 64] float32 tensor: log(mel magnitude + 0.001), one row per 10 ms frame.
    """
    magnitude_spectrogram = tf.abs(
        tf.signal.stft(
            signals=padded_waveform,
            frame_length=params.STFT_WINDOW_SAMPLES,
            frame_step=params.STFT_HOP_SAMPLES,
            fft_length=params.FFT_LENGTH,
            window_fn=tf.signal.hann_window,
        )
    )
    mel_spectrogram = tf.matmul(magnitude_spectrogram, mel_weight_matrix())
    return tf.math.log(mel_spectrogram + params.LOG_OFFSET)


def waveform_to_log_mel_and_patches(waveform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs the whole front end on one waveform.

    Args:
        waveform: 1-D float32 tensor of 16 kHz samples in [-1, 1], any length.

    Returns:
        ``(log_mel_spectrogram [M, 64], patches [N, 96, 64])``, where the
        spectrogram is that of the padded waveform, as the Hub model returns it.
    """
    spectrogram = log_mel_spectrogram(pad_waveform(waveform))
    patches = tf.signal.frame(
        spectrogram, frame_length=params.PATCH_FRAMES, frame_step=params.PATCH_HOP_FRAMES, axis=0
    )
    return spectrogram, patches


def batch_layout(clip_lengths: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lays out clips end to end so that one STFT serves them all.

    Clip ``i`` starts at an offset that is a multiple of the STFT hop and gets
    its own YAMNet zero padding before the next clip starts, so every STFT
    frame of the padded clip is also a frame of the concatenated signal, with
    the same samples: patch ``k`` of clip ``i`` is log-mel frames
    ``[offset_i / 160 + 48 k, offset_i / 160 + 48 k + 96)`` of the whole.

    Args:
        clip_lengths: Length of each clip, in samples.

    Returns:
        ``(offsets [C], patch_frame_starts [N], patch_counts [C])``: where each
        clip starts in the concatenated signal (whose length is
        ``offsets[-1] + padded_length(clip_lengths[-1])``), the first log-mel
        frame of each of the ``N`` patches, clip by clip, and each clip's patch count.

    Raises:
        ValueError: If a length is negative.
    """
    if not clip_lengths:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    patch_counts = np.array([params.num_patches(int(length)) for length in clip_lengths], dtype=np.int64)
    padded_lengths = np.array([params.padded_length(int(length)) for length in clip_lengths], dtype=np.int64)
    hop = params.STFT_HOP_SAMPLES
    strides = -(-padded_lengths // hop) * hop
    offsets = np.concatenate([[0], np.cumsum(strides)[:-1]]).astype(np.int64)
    patch_frame_starts = np.concatenate(
        [
            offset // hop + np.arange(count, dtype=np.int64) * params.PATCH_HOP_FRAMES
            for offset, count in zip(offsets, patch_counts, strict=True)
        ]
    )
    return offsets, patch_frame_starts, patch_counts


def concatenate_clips(waveforms: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Places clips end to end as ``batch_layout`` says, with zeros as each clip's padding.

    Args:
        waveforms: 1-D float32 16 kHz waveforms, any lengths.

    Returns:
        ``(signal, patch_frame_starts, patch_counts)`` for ``batch_log_mel_patches``.
    """
    lengths = [int(waveform.shape[0]) for waveform in waveforms]
    offsets, patch_frame_starts, patch_counts = batch_layout(lengths)
    if not lengths:
        return np.zeros(0, dtype=np.float32), patch_frame_starts, patch_counts
    total_length = int(offsets[-1]) + params.padded_length(lengths[-1])
    signal = np.zeros(total_length, dtype=np.float32)
    for offset, waveform in zip(offsets, waveforms, strict=True):
        signal[offset : offset + waveform.shape[0]] = waveform
    return signal, patch_frame_starts, patch_counts


# Input signature of ``batch_log_mel_patches`` as a ``tf.function`` (see ``YamnetEmbedder``).
BATCH_LOG_MEL_PATCHES_SIGNATURE = (
    tf.TensorSpec([None], tf.float32, name="signal"),
    tf.TensorSpec([None], tf.int64, name="patch_frame_starts"),
)


def batch_log_mel_patches(signal: tf.Tensor, patch_frame_starts: tf.Tensor) -> tf.Tensor:
    """Computes the patches of many clips in one call (see ``concatenate_clips``).

    Runs eagerly, or as one graph when wrapped in ``tf.function`` with
    ``BATCH_LOG_MEL_PATCHES_SIGNATURE`` (it needs no autograph).

    Args:
        signal: The clips end to end, from ``concatenate_clips``.
        patch_frame_starts: First log-mel frame of every patch, from ``concatenate_clips``.

    Returns:
        A [N, 96, 64] float32 tensor: the patches of every clip, clip by clip,
        equal to each clip's own ``waveform_to_log_mel_and_patches`` patches.
    """
    spectrogram = log_mel_spectrogram(signal)
    frame_indices = patch_frame_starts[:, tf.newaxis] + tf.range(params.PATCH_FRAMES, dtype=tf.int64)
    return tf.gather(spectrogram, frame_indices)
