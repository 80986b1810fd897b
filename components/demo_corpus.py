"""A synthetic accent corpus in the OpenSLR-83 layout, spoken by eSpeak NG, for demos and tests.

Four accents have an eSpeak NG voice: Midlands (``en-GB-x-gbcwmd``), Northern
(``en-GB-x-gbclan``), Scottish (``en-GB-scotland``) and Southern
(``en-GB-x-rp``). Irish and Welsh have none, so those classes are absent.
Each accent gets several speakers, alternately male and female, made from an
eSpeak voice variant (``+m1``, ``+f2``, ...) with its own pitch, pitch range
and speaking rate. Every speaker reads a fixed list of English sentences.

The library comes from the ``espeakng-loader`` wheel (which bundles
libespeak-ng and its data) and is driven with ctypes in synchronous mode,
collecting its 22,050 Hz 16-bit output through the synth callback. Clips are
resampled to 48 kHz with ``audio.resample``, framed by silence (0.3 s before,
1 s after, so every clip has at least one patch with no speech) over a faint
noise floor, and written as 16-bit mono WAV files with ``line_index_all.csv``.

eSpeak NG keeps synthesis state from one utterance to the next in process-wide
variables that ``espeak_Terminate`` does not reset, so the same request gives
slightly different samples depending on what was spoken before. Synthesis
therefore runs in a freshly spawned process that speaks the clips in a fixed
order, which makes the corpus byte-identical from run to run.

Speaker numbers are chosen so that, with the speaker split at
``eval_fraction``, the first speaker of every accent falls in the eval split
and the others in train: every class is then present in both splits.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import wave

import numpy as np

from components import audio
from components.corpus import split
from components.errors import AccentPipelineError, InvalidArgumentError

logger = logging.getLogger(__name__)

# Accent code to the eSpeak NG voice that speaks it.
DEMO_ACCENT_VOICES: dict[str, str] = {
    "mi": "en-GB-x-gbcwmd",
    "no": "en-GB-x-gbclan",
    "sc": "en-GB-scotland",
    "so": "en-GB-x-rp",
}

# Sentences the speakers read (written for this corpus in the style of the Harvard sentences).
DEMO_SENTENCES: tuple[str, ...] = (
    "The old barn stood empty at the edge of the field.",
    "She left her red umbrella on the morning train.",
    "A cold wind blew across the harbour all night.",
    "The baker sold the last loaf before noon.",
    "We walked along the river until the path ran out.",
    "His letter arrived three days after the party.",
    "The children painted a boat on the garden wall.",
    "Put the heavy books on the bottom shelf.",
    "The kettle whistled while the toast was burning.",
    "Rain fell softly on the roof of the chapel.",
    "The farmer counted forty sheep in the upper meadow.",
    "A small dog barked at every passing bicycle.",
    "They found an old coin buried under the oak tree.",
    "The market opens early on a Saturday morning.",
    "Turn left at the church and follow the lane.",
    "The teacher read a story about a brave sailor.",
    "Our neighbour grows tomatoes in a glass house.",
    "The clock in the hall stopped at half past four.",
    "Bring a warm coat because the evening will be cold.",
    "The bus was late, so we shared a taxi home.",
    "Fresh fish is sold from the van by the pier.",
    "The choir sang loudly in the crowded hall.",
    "He fixed the broken gate with a length of rope.",
    "A bright moon rose slowly over the hills.",
    "The shop on the corner sells newspapers and milk.",
    "Please close the window before the storm arrives.",
    "The football match ended in a draw last night.",
    "My grandmother kept bees behind the cottage.",
    "The road to the village was covered in snow.",
    "Three boats sailed out of the bay at dawn.",
)

# eSpeak NG voice variants used for the speakers.
_MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
_FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")

# Sample rate of the written corpus (16-bit mono WAV).
DEMO_SAMPLE_RATE = 48000

# Output sample rate of libespeak-ng.
ESPEAK_SAMPLE_RATE = 22050

# Silence framing every clip, in seconds; the trailing second leaves at least one non-speech patch.
LEADING_SILENCE_SECONDS = 0.3
TRAILING_SILENCE_SECONDS = 1.0

# RMS level of the noise floor under the whole clip (about -60 dBFS).
_NOISE_FLOOR_RMS = 1e-3

# libespeak-ng constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
_EE_OK = 0

# Log progress every this many clips.
_PROGRESS_INTERVAL = 32


class EspeakUnavailableError(AccentPipelineError, RuntimeError):
    """libespeak-ng (from the espeakng-loader package) cannot be loaded or cannot speak."""


@dataclasses.dataclass(frozen=True)
class DemoSpeaker:
    """One synthetic speaker.

    Attributes:
        speaker_id: ``<accent code><gender letter>_<speaker number>``, as in OpenSLR-83.
        accent_code: Two-letter accent code.
        gender_code: ``m`` or ``f``.
        voice: eSpeak NG voice name with its variant, e.g. ``en-GB-scotland+f2``.
        pitch: eSpeak pitch, 0-100.
        pitch_range: eSpeak pitch range, 0-100.
        words_per_minute: eSpeak speaking rate.
    """

    speaker_id: str
    accent_code: str
    gender_code: str
    voice: str
    pitch: int
    pitch_range: int
    words_per_minute: int


@dataclasses.dataclass(frozen=True)
class DemoCorpusSummary:
    """What ``write_demo_corpus`` wrote.

    Attributes:
        output_dir: The corpus directory.
        index_path: Path of ``line_index_all.csv``.
        clip_ids: Clip ids, in index order.
        accent_codes: Accent codes present, sorted.
        speakers: The speakers.
        total_seconds: Total audio duration.
    """

    output_dir: str
    index_path: str
    clip_ids: tuple[str, ...]
    accent_codes: tuple[str, ...]
    speakers: tuple[DemoSpeaker, ...]
    total_seconds: float

    @property
    def num_clips(self) -> int:
        """Number of clips written."""
        return len(self.clip_ids)


@dataclasses.dataclass(frozen=True)
class _SynthesisRequest:
    """One utterance for the synthesis process."""

    voice: str
    text: str
    pitch: int
    pitch_range: int
    words_per_minute: int
    random_seed: int


def write_demo_corpus(
    output_dir: str,
    clips_per_speaker: int = 8,
    seed: int = 0,
    speakers_per_accent: int = 4,
    accent_codes: tuple[str, ...] = tuple(DEMO_ACCENT_VOICES),
    eval_fraction: float = 0.1,
) -> DemoCorpusSummary:
    """Writes a deterministic synthetic accent corpus in the OpenSLR-83 layout.

    The defaults give 4 accents x 4 speakers x 8 clips = 128 clips of about
    3.5 s (2-2.5 s of speech) at 48 kHz.

    Args:
        output_dir: Directory to write ``line_index_all.csv`` and the wavs into (created).
        clips_per_speaker: Utterances per speaker (at most ``len(DEMO_SENTENCES)``).
        seed: Chooses the speakers' voice variants, pitches and rates, and the noise floor.
        speakers_per_accent: Speakers per accent, alternately male and female (at least 2).
        accent_codes: Accents to include, from ``DEMO_ACCENT_VOICES``.
        eval_fraction: The speaker split's eval fraction that speaker numbers are chosen for.

    Returns:
        A summary of what was written.

    Raises:
        InvalidArgumentError: If an argument is out of range.
        EspeakUnavailableError: If libespeak-ng cannot be loaded or fails to speak.
    """
    if not 1 <= clips_per_speaker <= len(DEMO_SENTENCES):
        raise InvalidArgumentError(
            f"clips_per_speaker must be in [1, {len(DEMO_SENTENCES)}], got {clips_per_speaker}"
        )
    if speakers_per_accent < 2:
        raise InvalidArgumentError(f"speakers_per_accent must be at least 2, got {speakers_per_accent}")
    unknown = sorted(set(accent_codes) - set(DEMO_ACCENT_VOICES))
    if not accent_codes or unknown:
        raise InvalidArgumentError(
            f"accent_codes must be a non-empty subset of {sorted(DEMO_ACCENT_VOICES)}, got {accent_codes}"
        )
    split.validate_split_settings(split.SPEAKER_STRATEGY, eval_fraction)
    library_path, data_path = _espeak_paths()

    speakers = make_demo_speakers(sorted(accent_codes), speakers_per_accent, seed, eval_fraction)
    clip_ids: list[str] = []
    transcripts: list[str] = []
    requests: list[_SynthesisRequest] = []
    for speaker_number, speaker in enumerate(speakers):
        for clip_number in range(clips_per_speaker):
            sentence_number = (speaker_number % speakers_per_accent * clips_per_speaker + clip_number) % len(
                DEMO_SENTENCES
            )
            utterance_number = len(clip_ids) + 1
            clip_ids.append(f"{speaker.speaker_id}_{utterance_number:011d}")
            transcripts.append(DEMO_SENTENCES[sentence_number])
            requests.append(
                _SynthesisRequest(
                    voice=speaker.voice,
                    text=DEMO_SENTENCES[sentence_number],
                    pitch=speaker.pitch,
                    pitch_range=speaker.pitch_range,
                    words_per_minute=speaker.words_per_minute,
                    random_seed=seed * 100003 + utterance_number,
                )
            )
    logger.info(
        "Synthesising %d clips: %d accents x %d speakers x %d clips",
        len(requests),
        len(accent_codes),
        speakers_per_accent,
        clips_per_speaker,
    )
    speech = _synthesize_in_fresh_process(library_path, data_path, requests)

    os.makedirs(output_dir, exist_ok=True)
    total_seconds = 0.0
    for clip_number, (clip_id, samples) in enumerate(zip(clip_ids, speech, strict=True), start=1):
        waveform = _frame_clip(samples, noise_seed=seed * 100003 + clip_number)
        _write_pcm16_wav(os.path.join(output_dir, f"{clip_id}.wav"), waveform, DEMO_SAMPLE_RATE)
        total_seconds += len(waveform) / DEMO_SAMPLE_RATE
        if clip_number % _PROGRESS_INTERVAL == 0 or clip_number == len(clip_ids):
            logger.info("Wrote %d of %d demo clips", clip_number, len(clip_ids))
    index_path = os.path.join(output_dir, "line_index_all.csv")
    with open(index_path, "w", encoding="utf-8", newline="\n") as index_file:
        for row_number, (clip_id, transcript) in enumerate(zip(clip_ids, transcripts, strict=True), start=1):
            index_file.write(f"EN{row_number:04d}, {clip_id}, {transcript}\n")
    logger.info("Demo corpus in %s: %d clips, %.0f s of audio", output_dir, len(clip_ids), total_seconds)
    return DemoCorpusSummary(
        output_dir=output_dir,
        index_path=index_path,
        clip_ids=tuple(clip_ids),
        accent_codes=tuple(sorted(accent_codes)),
        speakers=tuple(speakers),
        total_seconds=total_seconds,
    )


def make_demo_speakers(
    accent_codes: list[str], speakers_per_accent: int, seed: int, eval_fraction: float
) -> list[DemoSpeaker]:
    """Chooses the speakers: variants, pitches, rates and speaker numbers.

    Speaker numbers count up from 1 within each accent, skipping numbers
    whose speaker id would land in the wrong split: the first speaker of an
    accent is given an id that the speaker split puts in eval, the others ids
    it puts in train.

    Args:
        accent_codes: Accent codes, each in ``DEMO_ACCENT_VOICES``.
        speakers_per_accent: Speakers per accent, alternately male and female.
        seed: Seed of the voice choices.
        eval_fraction: Eval fraction of the speaker split.

    Returns:
        The speakers, accent by accent.
    """
    random_state = np.random.RandomState(seed)
    speakers = []
    for accent_code in accent_codes:
        next_number = 1
        for speaker_index in range(speakers_per_accent):
            gender_code = "m" if speaker_index % 2 == 0 else "f"
            variants = _MALE_VARIANTS if gender_code == "m" else _FEMALE_VARIANTS
            variant = variants[random_state.randint(len(variants))]
            pitch = int(random_state.randint(30, 55) if gender_code == "m" else random_state.randint(50, 80))
            pitch_range = int(random_state.randint(35, 80))
            words_per_minute = int(random_state.randint(145, 186))
            wants_eval = speaker_index == 0
            while True:
                speaker_id = f"{accent_code}{gender_code}_{next_number:05d}"
                next_number += 1
                if (split.speaker_fraction(speaker_id) < eval_fraction) == wants_eval:
                    break
            speakers.append(
                DemoSpeaker(
                    speaker_id=speaker_id,
                    accent_code=accent_code,
                    gender_code=gender_code,
                    voice=f"{DEMO_ACCENT_VOICES[accent_code]}+{variant}",
                    pitch=pitch,
                    pitch_range=pitch_range,
                    words_per_minute=words_per_minute,
                )
            )
    return speakers


def _espeak_paths() -> tuple[str, str]:
    """Returns the library and data paths of espeakng-loader, checking that the library loads."""
    try:
        import espeakng_loader

        library_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        ctypes.CDLL(library_path)
    except (ImportError, OSError, RuntimeError) as error:
        raise EspeakUnavailableError(
            f"Cannot load libespeak-ng from the espeakng-loader package ({error}); "
            "install the demo extra with `pip install -e '.[demo]'` (`make demo` does)"
        ) from error
    return library_path, data_path


def _synthesize_in_fresh_process(
    library_path: str, data_path: str, requests: list[_SynthesisRequest]
) -> list[np.ndarray]:
    """Speaks the requests, in order, in a newly spawned process (see the module docstring)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        encoded = executor.submit(_synthesize_all, library_path, data_path, requests).result()
    return [np.frombuffer(samples, dtype=np.int16) for samples in encoded]


def _synthesize_all(library_path: str, data_path: str, requests: list[_SynthesisRequest]) -> list[bytes]:
    """Speaks every request with libespeak-ng; returns 22,050 Hz int16 samples per request."""
    try:
        library = ctypes.CDLL(library_path)
    except OSError as error:
        raise EspeakUnavailableError(f"Cannot load libespeak-ng from {library_path}: {error}") from error
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_SetSynthCallback.argtypes = [callback_type]
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    library.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
    if sample_rate <= 0:
        raise EspeakUnavailableError(f"espeak_Initialize failed with data path {data_path}")
    if sample_rate != ESPEAK_SAMPLE_RATE:
        raise EspeakUnavailableError(f"libespeak-ng runs at {sample_rate} Hz, expected {ESPEAK_SAMPLE_RATE}")
    chunks: list[bytes] = []

    def collect(samples, num_samples, events):
        del events
        if num_samples > 0 and samples:
            chunks.append(ctypes.string_at(samples, num_samples * ctypes.sizeof(ctypes.c_short)))
        return 0

    callback = callback_type(collect)
    library.espeak_SetSynthCallback(callback)
    outputs = []
    try:
        for request in requests:
            if library.espeak_SetVoiceByName(request.voice.encode()) != _EE_OK:
                raise EspeakUnavailableError(f"eSpeak NG has no voice {request.voice!r}")
            library.espeak_SetParameter(_ESPEAK_RATE, request.words_per_minute, 0)
            library.espeak_SetParameter(_ESPEAK_PITCH, request.pitch, 0)
            library.espeak_SetParameter(_ESPEAK_RANGE, request.pitch_range, 0)
            library.espeak_ng_SetRandSeed(request.random_seed)
            chunks.clear()
            text = request.text.encode("utf-8") + b"\0"
            status = library.espeak_Synth(
                text, len(text), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            if status != _EE_OK or not chunks:
                raise EspeakUnavailableError(f"espeak_Synth failed (status {status}) for {request.text!r}")
            outputs.append(b"".join(chunks))
    finally:
        library.espeak_Terminate()
    return outputs


def _frame_clip(speech: np.ndarray, noise_seed: int) -> np.ndarray:
    """Resamples eSpeak output to 48 kHz, adds the silences and the noise floor; returns float samples."""
    waveform = audio.resample(speech.astype(np.float32) / 32768.0, ESPEAK_SAMPLE_RATE, DEMO_SAMPLE_RATE)
    leading = np.zeros(round(LEADING_SILENCE_SECONDS * DEMO_SAMPLE_RATE), dtype=np.float32)
    trailing = np.zeros(round(TRAILING_SILENCE_SECONDS * DEMO_SAMPLE_RATE), dtype=np.float32)
    framed = np.concatenate([leading, waveform, trailing])
    noise = np.random.RandomState(noise_seed).normal(0.0, _NOISE_FLOOR_RMS, size=framed.shape)
    return np.clip(framed + noise, -1.0, 1.0)


def _write_pcm16_wav(path: str, waveform: np.ndarray, sample_rate: int) -> None:
    """Writes mono float samples as a 16-bit PCM WAV file."""
    samples = np.clip(np.round(waveform * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as wav_file:
        wav_file.setnchannels(1)
        wav_file.setsampwidth(2)
        wav_file.setframerate(sample_rate)
        wav_file.writeframes(samples.tobytes())
