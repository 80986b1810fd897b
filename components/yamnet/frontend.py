"""YAMNet's front end: waveform -> log-mel spectrogram -> 96 x 64 patches.

A TensorFlow port of ``features.py`` of the published model (the non-TFLite
path): the waveform is zero-padded at the end to at least 15,600 samples and
then to a whole number of 7,680-sample hops, so that N samples give
``1 + ceil(max(0, N - 15600) / 7680)`` patches.
"""

from __future__ import annotations

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
