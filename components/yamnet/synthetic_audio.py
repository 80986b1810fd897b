"""Deterministic speech-like audio, generated in NumPy, for calibration and tests.

The clips are not speech: they are harmonic tones with a wandering pitch,
shaped by moving formant-like resonances, cut into syllable-like bursts, with
fricative-like noise bursts, pauses and a little background noise. They give
YAMNet's front end spectrograms with speech-like structure, which is what the
offline weights' batch-norm calibration needs.
"""

from __future__ import annotations

import numpy as np

from components.yamnet import params

# Harmonics synthesised per voiced segment, and the highest harmonic frequency kept.
_NUM_HARMONICS = 48
_MAX_HARMONIC_HZ = 6000.0
# Formant bandwidths (Hz) and relative gains of the three resonances.
_FORMANT_BANDWIDTHS_HZ = np.array([90.0, 140.0, 220.0])
_FORMANT_GAINS = np.array([1.0, 0.6, 0.3])
# Harmonic amplitudes are computed every this many samples (4 ms) and held in between.
_AMPLITUDE_STEP_SAMPLES = 64


def speech_like_waveform(
    rng: np.random.Generator, num_samples: int, sample_rate: int = params.SAMPLE_RATE
) -> np.ndarray:
    """Generates one speech-like clip.

    Args:
        rng: Source of randomness; the clip is a deterministic function of its state.
        num_samples: Length of the clip.
        sample_rate: Sample rate in Hz.

    Returns:
        A float32 waveform of ``num_samples`` samples, peak amplitude between 0.3 and 0.8.

    Raises:
        ValueError: If ``num_samples`` is not positive.
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    times = np.arange(num_samples) / sample_rate
    duration = num_samples / sample_rate

    # Syllable boundaries, and per-syllable targets interpolated at syllable centres.
    syllable_lengths = rng.uniform(0.12, 0.35, size=int(np.ceil(duration / 0.12)) + 1)
    boundaries = np.concatenate([[0.0], np.cumsum(syllable_lengths)])
    num_syllables = int(np.searchsorted(boundaries, duration)) + 1
    boundaries = boundaries[: num_syllables + 1]
    centres = 0.5 * (boundaries[:-1] + boundaries[1:])
    speaker_pitch = rng.uniform(90.0, 240.0)
    pitch_targets = speaker_pitch * rng.uniform(0.8, 1.25, size=num_syllables)
    formant_targets = np.stack(
        [
            rng.uniform(300.0, 850.0, size=num_syllables),
            rng.uniform(850.0, 2400.0, size=num_syllables),
            rng.uniform(2300.0, 3300.0, size=num_syllables),
        ]
    )
    kinds = rng.choice(3, size=num_syllables, p=[0.7, 0.15, 0.15])  # 0 voiced, 1 fricative, 2 pause
    loudness = rng.uniform(0.4, 1.0, size=num_syllables)

    pitch = np.interp(times, centres, pitch_targets)
    pitch *= 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(4.0, 7.0) * times)
    formants = np.stack([np.interp(times, centres, targets) for targets in formant_targets])

    syllable_index = np.clip(np.searchsorted(boundaries, times, side="right") - 1, 0, num_syllables - 1)
    position = (times - boundaries[syllable_index]) / syllable_lengths[syllable_index]
    envelope = np.sqrt(np.clip(np.sin(np.pi * np.clip(position, 0.0, 1.0)), 0.0, None))
    envelope *= loudness[syllable_index]
    voiced = (kinds[syllable_index] == 0).astype(np.float64)
    fricative = (kinds[syllable_index] == 1).astype(np.float64)

    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    harmonic_numbers = np.arange(1, _NUM_HARMONICS + 1)[:, np.newaxis]
    # Harmonic amplitudes change slowly: compute them every few samples, then hold them.
    coarse = slice(None, None, _AMPLITUDE_STEP_SAMPLES)
    harmonic_frequencies = harmonic_numbers * pitch[np.newaxis, coarse]
    resonance = np.zeros_like(harmonic_frequencies)
    for formant, bandwidth, gain in zip(formants, _FORMANT_BANDWIDTHS_HZ, _FORMANT_GAINS, strict=True):
        resonance += gain * np.exp(
            -0.5 * ((harmonic_frequencies - formant[np.newaxis, coarse]) / bandwidth) ** 2
        )
    resonance += 0.02 / np.sqrt(harmonic_numbers)
    resonance *= harmonic_frequencies < _MAX_HARMONIC_HZ
    resonance = np.repeat(resonance, _AMPLITUDE_STEP_SAMPLES, axis=1)[:, :num_samples]
    harmonic_phases = rng.uniform(0.0, 2 * np.pi, size=(_NUM_HARMONICS, 1))
    voice = np.sum(resonance * np.sin(harmonic_numbers * phase[np.newaxis, :] + harmonic_phases), axis=0)
    voice /= max(float(np.max(np.abs(voice))), 1e-9)

    noise = rng.standard_normal(num_samples + 1)
    hiss = np.diff(noise)
    hiss /= max(float(np.max(np.abs(hiss))), 1e-9)

    background_level = 10.0 ** (rng.uniform(-55.0, -35.0) / 20.0)
    waveform = envelope * (voiced * voice + 0.5 * fricative * hiss) + background_level * noise[:num_samples]
    waveform *= rng.uniform(0.3, 0.8) / max(float(np.max(np.abs(waveform))), 1e-9)
    return waveform.astype(np.float32)


def background_noise_waveform(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Generates a quiet non-speech clip: low-level noise with a slow hum.

    Args:
        rng: Source of randomness.
        num_samples: Length of the clip.

    Returns:
        A float32 waveform of ``num_samples`` samples, around -50 to -30 dBFS.
    """
    times = np.arange(num_samples) / params.SAMPLE_RATE
    level = 10.0 ** (rng.uniform(-50.0, -30.0) / 20.0)
    hum = 0.3 * np.sin(2 * np.pi * rng.uniform(50.0, 120.0) * times)
    waveform = level * (rng.standard_normal(num_samples) + hum)
    return waveform.astype(np.float32)


def synthetic_clips(
    seed: int, num_clips: int, duration_seconds: float, num_background_clips: int = 0
) -> list[np.ndarray]:
    """Generates a deterministic set of speech-like (and optionally background-noise) clips.

    Args:
        seed: Seed of the generator; the same seed gives the same clips.
        num_clips: Number of speech-like clips.
        duration_seconds: Length of every clip.
        num_background_clips: Number of extra quiet noise clips appended at the end.

    Returns:
        ``num_clips + num_background_clips`` float32 waveforms at 16 kHz.

    Raises:
        ValueError: If a count is negative or the duration is not positive.
    """
    if num_clips < 0 or num_background_clips < 0:
        raise ValueError("Clip counts must be >= 0")
    if duration_seconds <= 0:
        raise ValueError(f"duration_seconds must be positive, got {duration_seconds}")
    num_samples = round(duration_seconds * params.SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    clips = [speech_like_waveform(rng, num_samples) for _ in range(num_clips)]
    clips += [background_noise_waveform(rng, num_samples) for _ in range(num_background_clips)]
    return clips
