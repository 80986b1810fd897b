"""Constants of YAMNet, as in the published model's ``params.py``.

Every value here reproduces ``tensorflow/models/research/audioset/yamnet/params.py``:
the front end works on 16 kHz mono audio, cuts 25 ms Hann windows every 10 ms,
maps them to 64 log-mel bands between 125 Hz and 7.5 kHz, and groups the frames
into 0.96 s patches with a 0.48 s hop; the network is MobileNet v1.
"""

from __future__ import annotations

from components import features

# Sample rate of the waveforms YAMNet expects.
SAMPLE_RATE = features.SAMPLE_RATE

# Short-time Fourier transform: a 25 ms periodic Hann window every 10 ms.
STFT_WINDOW_SAMPLES = 400
STFT_HOP_SAMPLES = 160
FFT_LENGTH = 512
NUM_SPECTROGRAM_BINS = FFT_LENGTH // 2 + 1

# Mel filter bank and the offset added before the logarithm.
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001

# Patches of 96 spectrogram frames (0.96 s) every 48 frames (0.48 s).
PATCH_FRAMES = 96
PATCH_BANDS = MEL_BANDS
PATCH_HOP_FRAMES = 48

# Waveform samples covered by one patch (0.975 s), and between two patches (0.48 s).
PATCH_WINDOW_SAMPLES = (PATCH_FRAMES - 1) * STFT_HOP_SAMPLES + STFT_WINDOW_SAMPLES
PATCH_HOP_SAMPLES = PATCH_HOP_FRAMES * STFT_HOP_SAMPLES

# Network.
NUM_CLASSES = 521
EMBEDDING_SIZE = features.EMBEDDING_SIZE
BATCHNORM_CENTER = True
BATCHNORM_SCALE = False
BATCHNORM_EPSILON = 1e-4

# MobileNet v1 body: (kind, kernel size, stride, filters) of layers 1 to 14.
LAYER_DEFINITIONS: tuple[tuple[str, int, int, int], ...] = (
    ("conv", 3, 2, 32),
    ("separable", 3, 1, 64),
    ("separable", 3, 2, 128),
    ("separable", 3, 1, 128),
    ("separable", 3, 2, 256),
    ("separable", 3, 1, 256),
    ("separable", 3, 2, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 1, 512),
    ("separable", 3, 2, 1024),
    ("separable", 3, 1, 1024),
)

# Position and AudioSet id of the "Speech" class in YAMNet's class map.
SPEECH_CLASS_INDEX = 0
SPEECH_CLASS_MID = "/m/09x0r"
SPEECH_CLASS_DISPLAY_NAME = "Speech"


def num_patches(num_samples: int) -> int:
    """Returns how many patches YAMNet produces for a waveform.

    Args:
        num_samples: Length of the waveform, in samples.

    Returns:
        ``1 + ceil(max(0, num_samples - 15600) / 7680)``.

    Raises:
        ValueError: If ``num_samples`` is negative.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    samples_after_first_patch = max(0, num_samples - PATCH_WINDOW_SAMPLES)
    return 1 + -(-samples_after_first_patch // PATCH_HOP_SAMPLES)


def padded_length(num_samples: int) -> int:
    """Returns the length of a waveform after YAMNet's zero padding.

    Args:
        num_samples: Length of the waveform, in samples.

    Returns:
        At least 15,600 samples, plus a whole number of 7,680-sample hops.
    """
    return PATCH_WINDOW_SAMPLES + (num_patches(num_samples) - 1) * PATCH_HOP_SAMPLES
