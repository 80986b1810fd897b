"""The page's views of one prediction: per-patch timeline and log-mel spectrogram (matplotlib).

The served model's ``serving_default`` returns ``patch_probabilities`` (one
row per 0.96 s YAMNet patch, 0.48 s apart), which the timeline draws. It does
not return the log-mel spectrogram it computes inside, so the page computes it
with the same front end (``components/yamnet/frontend.py``, signal processing
with no weights): the page still never loads the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from components import features
from components.yamnet import params

# Seconds between the starts of two patches, and the length of one patch.
PATCH_HOP_SECONDS = params.PATCH_HOP_SAMPLES / params.SAMPLE_RATE
PATCH_WINDOW_SECONDS = params.PATCH_WINDOW_SAMPLES / params.SAMPLE_RATE
# Seconds between two log-mel frames.
FRAME_HOP_SECONDS = params.STFT_HOP_SAMPLES / params.SAMPLE_RATE


def patch_centre_seconds(num_patches: int) -> np.ndarray:
    """Returns the time of each patch's centre along the clip, in seconds."""
    return np.arange(num_patches) * PATCH_HOP_SECONDS + PATCH_WINDOW_SECONDS / 2


def patch_timeline(patch_probabilities: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Draws each class's probability along the clip, one point per patch.

    Args:
        patch_probabilities: [num_patches, num_classes] probabilities from the served model.
        class_names: The class names, in the columns' order.

    Returns:
        The figure (not registered with pyplot, so nothing to close).
    """
    figure = Figure(figsize=(9, 3.2), layout="tight")
    axis = figure.subplots()
    probabilities = np.asarray(patch_probabilities, dtype=float).reshape(-1, len(class_names))
    centres = patch_centre_seconds(probabilities.shape[0])
    for class_index, class_name in enumerate(class_names):
        style = ":" if class_name == features.NOT_SPEECH_CLASS_NAME else "-"
        axis.plot(centres, probabilities[:, class_index], style, marker="o", markersize=3, label=class_name)
    axis.set_ylim(0, 1)
    axis.set_xlabel("seconds (patch centre; patches of 0.96 s every 0.48 s)")
    axis.set_ylabel("probability")
    axis.set_title(f"Per-patch accent probabilities ({probabilities.shape[0]} patches)")
    axis.grid(alpha=0.3)
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    return figure


def log_mel_spectrogram(waveform: np.ndarray) -> np.ndarray:
    """Computes YAMNet's log-mel spectrogram of a 16 kHz waveform, as the served model does inside.

    Args:
        waveform: 1-D float32 samples at 16 kHz.

    Returns:
        A [frames, 64] array, one row per 10 ms frame.
    """
    import tensorflow as tf

    from components.yamnet import frontend

    log_mel, _ = frontend.waveform_to_log_mel_and_patches(tf.constant(waveform, dtype=tf.float32))
    return log_mel.numpy()


def log_mel_view(log_mel: np.ndarray) -> Figure:
    """Draws a log-mel spectrogram with time in seconds.

    Args:
        log_mel: [frames, mel bands] log-mel values.

    Returns:
        The figure (not registered with pyplot, so nothing to close).
    """
    figure = Figure(figsize=(9, 3.2), layout="tight")
    axis = figure.subplots()
    duration = max(log_mel.shape[0] * FRAME_HOP_SECONDS, FRAME_HOP_SECONDS)
    image = axis.imshow(
        log_mel.T,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        cmap="magma",
        extent=(0.0, duration, 0, log_mel.shape[1]),
    )
    axis.set_xlabel("seconds")
    axis.set_ylabel(f"mel bin ({params.MEL_MIN_HZ:g} to {params.MEL_MAX_HZ:g} Hz)")
    axis.set_title("Log-mel spectrogram (YAMNet front end, as the served model computes it)")
    figure.colorbar(image, ax=axis, label="log(mel + 0.001)")
    return figure
