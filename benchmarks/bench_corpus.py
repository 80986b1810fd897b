"""The benchmarks' corpus: eSpeak NG speech in the OpenSLR-83 layout, 48 kHz 16-bit WAV, of any length."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import wave

from components import demo_corpus

logger = logging.getLogger(__name__)

# Seconds per demo clip when planning a corpus: below a typical clip's length (speech plus
# framing silence), so that the first corpus written is long enough almost always.
_PLANNING_SECONDS_PER_CLIP = 3.4

# Accents with an eSpeak NG voice, used when the corpus is big enough for all of them.
_ALL_ACCENTS = tuple(sorted(demo_corpus.DEMO_ACCENT_VOICES))

# Attempts at writing a long enough corpus (each adds speakers) before giving up.
_MAX_ATTEMPTS = 5

# Name of the corpus index (as in OpenSLR-83 and the demo corpus).
INDEX_FILENAME = "line_index_all.csv"

# A repeated corpus's copy ``k`` adds ``k * _COPY_UTTERANCE_OFFSET`` to each clip's utterance number,
# which keeps the 11-digit utterance field of OpenSLR-83's clip ids for up to 99 copies.
_COPY_UTTERANCE_OFFSET = 10**9


@dataclasses.dataclass(frozen=True)
class BenchmarkCorpus:
    """A written benchmark corpus.

    Attributes:
        corpus_dir: Directory with ``line_index_all.csv`` and the WAV files.
        num_clips: Number of clips.
        audio_seconds: Total duration of the clips.
        sample_rate: Sample rate of the WAV files.
    """

    corpus_dir: str
    num_clips: int
    audio_seconds: float
    sample_rate: int


@dataclasses.dataclass(frozen=True)
class CorpusShape:
    """How many accents, speakers and clips per speaker a corpus has.

    Attributes:
        accent_codes: The accents.
        speakers_per_accent: Speakers of each accent (at least 2).
        clips_per_speaker: Clips each speaker reads (at most the number of demo sentences).
    """

    accent_codes: tuple[str, ...]
    speakers_per_accent: int
    clips_per_speaker: int

    @property
    def num_clips(self) -> int:
        """Number of clips of the corpus."""
        return len(self.accent_codes) * self.speakers_per_accent * self.clips_per_speaker


def plan_corpus(audio_seconds: float) -> CorpusShape:
    """Chooses a corpus shape expected to give at least ``audio_seconds`` of audio.

    Small corpora use one accent and two speakers; larger ones all four eSpeak
    accents, with more speakers once every speaker reads every sentence.

    Args:
        audio_seconds: Wanted total duration.

    Returns:
        The shape.

    Raises:
        ValueError: If ``audio_seconds`` is not positive.
    """
    if not audio_seconds > 0:
        raise ValueError(f"audio_seconds must be positive, got {audio_seconds}")
    clips_needed = math.ceil(audio_seconds / _PLANNING_SECONDS_PER_CLIP)
    max_clips_per_speaker = len(demo_corpus.DEMO_SENTENCES)
    if clips_needed <= 8:
        return CorpusShape(_ALL_ACCENTS[:1], 2, math.ceil(clips_needed / 2))
    clips_per_speaker = min(max_clips_per_speaker, math.ceil(clips_needed / (4 * len(_ALL_ACCENTS))))
    speakers_per_accent = max(2, math.ceil(clips_needed / (len(_ALL_ACCENTS) * clips_per_speaker)))
    return CorpusShape(_ALL_ACCENTS, speakers_per_accent, clips_per_speaker)


def write_benchmark_corpus(output_dir: str, minutes: float) -> BenchmarkCorpus:
    """Writes a synthetic OpenSLR-83-style corpus of at least ``minutes`` of 48 kHz audio.

    Uses ``components.demo_corpus.write_demo_corpus`` (eSpeak NG speech,
    16-bit mono WAV at 48 kHz); if a corpus comes out short, it is written
    again with one more speaker per accent.

    Args:
        output_dir: Directory to write into (replaced if it exists).
        minutes: Least total duration, in minutes.

    Returns:
        What was written.

    Raises:
        ValueError: If ``minutes`` is not positive.
        RuntimeError: If no corpus long enough could be written.
    """
    if not minutes > 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    wanted_seconds = minutes * 60.0
    shape = plan_corpus(wanted_seconds)
    for _ in range(_MAX_ATTEMPTS):
        shutil.rmtree(output_dir, ignore_errors=True)
        logger.info(
            "Writing a benchmark corpus of %d clips (%d accents x %d speakers x %d clips) to %s",
            shape.num_clips,
            len(shape.accent_codes),
            shape.speakers_per_accent,
            shape.clips_per_speaker,
            output_dir,
        )
        summary = demo_corpus.write_demo_corpus(
            output_dir,
            clips_per_speaker=shape.clips_per_speaker,
            speakers_per_accent=shape.speakers_per_accent,
            accent_codes=shape.accent_codes,
        )
        if summary.total_seconds >= wanted_seconds:
            return BenchmarkCorpus(
                corpus_dir=output_dir,
                num_clips=summary.num_clips,
                audio_seconds=summary.total_seconds,
                sample_rate=demo_corpus.DEMO_SAMPLE_RATE,
            )
        logger.info(
            "The corpus holds %.0f s, short of %.0f s; adding a speaker",
            summary.total_seconds,
            wanted_seconds,
        )
        shape = dataclasses.replace(shape, speakers_per_accent=shape.speakers_per_accent + 1)
    raise RuntimeError(f"Could not write a corpus of {wanted_seconds:.0f} s in {_MAX_ATTEMPTS} attempts")


def repeated_clip_id(clip_id: str, copy_index: int) -> str:
    """Names copy ``copy_index`` of a clip: same speaker, the utterance number moved up by the copy.

    Args:
        clip_id: An OpenSLR-83 clip id, ``<speaker>_<utterance number>``.
        copy_index: 0 for the clip itself, 1 and up for its copies.

    Returns:
        The copy's clip id (``clip_id`` itself for copy 0).

    Raises:
        ValueError: If the clip id has no numeric utterance part or ``copy_index`` is out of range.
    """
    speaker_id, separator, utterance = clip_id.rpartition("_")
    if not separator or not utterance.isdigit():
        raise ValueError(f"Clip id {clip_id!r} does not end in _<utterance number>")
    if not 0 <= copy_index < 100:
        raise ValueError(f"copy_index must be in [0, 100), got {copy_index}")
    number = int(utterance) + copy_index * _COPY_UTTERANCE_OFFSET
    return f"{speaker_id}_{number:0{len(utterance)}d}"


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def repeat_corpus(source: BenchmarkCorpus, output_dir: str, times: int) -> BenchmarkCorpus:
    """Writes a corpus that holds every clip of ``source`` ``times`` times, each copy under a new name.

    The copies keep their speakers (so the speaker split puts them where the
    originals are) and get new utterance numbers (``repeated_clip_id``). WAV
    files are hard links where the file system allows, copies otherwise.

    Args:
        source: A corpus written by ``write_benchmark_corpus``.
        output_dir: Directory to write into (replaced if it exists).
        times: How many times each clip appears (1 or more).

    Returns:
        What was written.

    Raises:
        ValueError: If ``times`` is not in [1, 100).
    """
    if not 1 <= times < 100:
        raise ValueError(f"times must be in [1, 100), got {times}")
    shutil.rmtree(output_dir, ignore_errors=True)
    os.makedirs(output_dir)
    with open(os.path.join(source.corpus_dir, INDEX_FILENAME), encoding="utf-8") as index_file:
        rows = [line.rstrip("\n").split(",", 2) for line in index_file if line.strip()]
    index_lines = []
    for copy_index in range(times):
        for _, clip_id, transcript in rows:
            new_clip_id = repeated_clip_id(clip_id.strip(), copy_index)
            _link_or_copy(
                os.path.join(source.corpus_dir, clip_id.strip() + ".wav"),
                os.path.join(output_dir, new_clip_id + ".wav"),
            )
            index_lines.append(f"EN{len(index_lines) + 1:06d}, {new_clip_id},{transcript}\n")
    with open(os.path.join(output_dir, INDEX_FILENAME), "w", encoding="utf-8", newline="\n") as index_file:
        index_file.writelines(index_lines)
    logger.info("Wrote %d clips (%d x %d) to %s", len(index_lines), times, len(rows), output_dir)
    return BenchmarkCorpus(
        corpus_dir=output_dir,
        num_clips=len(index_lines),
        audio_seconds=source.audio_seconds * times,
        sample_rate=source.sample_rate,
    )


def wav_seconds(path: str) -> float:
    """Returns the duration of a WAV file, from its header."""
    with wave.open(path, "rb") as wav_file:
        return wav_file.getnframes() / wav_file.getframerate()
