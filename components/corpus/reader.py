"""Reading an OpenSLR-83 corpus directory into labelled, split clip records and a quarantine list."""

from __future__ import annotations

import array
import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from components import features
from components.corpus import index, labels, sources, split
from components.corpus.quarantine import QuarantineEntry, TooManyBadEntriesError, too_many_bad_entries_message
from components.corpus.records import ClipRecord

logger = logging.getLogger(__name__)

# Log progress every this many index rows.
_PROGRESS_INTERVAL = 50000


@dataclasses.dataclass
class CorpusIndex:
    """The result of reading a corpus directory.

    Attributes:
        records: Usable clips, sorted by clip id.
        quarantine: Entries left out at index time, sorted by filename, when ``read_corpus``
            collected them (no ``quarantine_sink``); empty when they went to a sink. Reading
            and decoding the clips later may quarantine more.
        duplicate_rows: Index rows repeating a filename already listed by the same index file
            (kept once). Rows listed by several index files, e.g. by ``line_index_all.csv`` and by
            an archive's ``line_index.csv``, are merged without being counted.
        total_rows: Distinct corpus entries: each distinct filename once, each malformed
            row and each unreadable archive; it equals ``len(records) + num_quarantined``.
        unindexed_files: Audio files in the corpus that no index lists (ignored).
        archives_scanned: Zip archives opened.
        num_quarantined: Entries left out at index time.
    """

    records: list[ClipRecord]
    quarantine: list[QuarantineEntry]
    duplicate_rows: int
    total_rows: int
    unindexed_files: int = 0
    archives_scanned: int = 0
    num_quarantined: int = 0


@dataclasses.dataclass
class _RowPlan:
    """What a first pass over the index files learns, in a few bytes per row.

    Attributes:
        first_occurrence: Per parsed row, in reading order: whether it is the first row of its filename.
        distinct_clips: Distinct filenames.
        malformed_rows: Rows that cannot be parsed.
        duplicate_rows: Rows repeating a filename within the same index file.
        shared_rows: Rows repeating a filename of another index file.
    """

    first_occurrence: np.ndarray
    distinct_clips: int
    malformed_rows: int
    duplicate_rows: int
    shared_rows: int


@dataclasses.dataclass(frozen=True, slots=True)
class _GoodClip:
    """An index row that can become a clip, before the split is known.

    Attributes:
        clip_labels: The labels read from its filename.
        source: Where its audio is (``ClipRecord.source``).
        transcript: The index's transcript.
    """

    clip_labels: labels.ClipLabels
    source: str
    transcript: str


@dataclasses.dataclass
class _CheckedRows:
    """What the second pass over the index files finds.

    Attributes:
        good: Clip id to its good clip.
        indexed_audio_files: Distinct indexed filenames that have an audio file in the corpus.
    """

    good: dict[str, _GoodClip]
    indexed_audio_files: int


class _BadEntryCounter:
    """Passes quarantine entries on as they come, and stops once too many are bad."""

    def __init__(
        self, entries: int, max_bad_fraction: float, sink: Callable[[QuarantineEntry], None]
    ) -> None:
        self._entries = entries
        self._max_bad_fraction = max_bad_fraction
        self._sink = sink
        self.count = 0

    def add(self, entry: QuarantineEntry) -> None:
        """Hands one entry to the sink.

        Args:
            entry: The quarantined entry.

        Raises:
            TooManyBadEntriesError: If the bad entries so far are already over the limit.
        """
        self._sink(entry)
        self.count += 1
        if self.count / self._entries > self._max_bad_fraction:
            raise TooManyBadEntriesError(
                "Indexing stopped early: "
                + too_many_bad_entries_message(self.count, self._entries, self._max_bad_fraction)
            )


def read_corpus(
    corpus_dir: str,
    accent_codes: Mapping[str, str] = features.ACCENT_CODE_TO_NAME,
    class_names: tuple[str, ...] = features.DEFAULT_CLASS_NAMES,
    split_strategy: str = split.SPEAKER_STRATEGY,
    eval_fraction: float = 0.1,
    seed: int = 1337,
    max_bad_fraction: float = 1.0,
    quarantine_sink: Callable[[QuarantineEntry], None] | None = None,
) -> CorpusIndex:
    """Reads the index files of an OpenSLR-83 corpus and labels and splits its clips.

    The corpus directory may hold ``line_index_all.csv`` and/or ``line_index.csv``
    files with the wavs beside them (in any subdirectory), the distributed zip
    archives (each with its own ``line_index.csv``), or a mix. Index-level
    quarantine reasons are ``missing file``, ``empty file``, ``too large: ...``,
    ``unknown accent code 'xx'``, ``malformed filename: ...``, ``malformed index
    row: ...``, ``unreadable archive: ...`` and the reasons of files the walk
    skipped (``path is not UTF-8: ...``, ``broken symbolic link``, ...);
    corrupt archive members are found when read (``sources.read_clip_bytes``).

    The index files are streamed twice: a first pass counts the distinct
    entries and finds duplicate rows (keeping 8 bytes per row), the second
    checks each entry. Bad entries go to ``quarantine_sink`` as they are found
    and only their count is kept, so memory does not grow with the number of
    bad rows; and as soon as the bad entries are more than ``max_bad_fraction``
    of all entries, reading stops.

    Args:
        corpus_dir: Local directory or URI of the corpus.
        accent_codes: Accent code (filename prefix) to class name.
        class_names: The label vocabulary, in id order.
        split_strategy: ``speaker`` (disjoint speakers, by hash) or ``utterance`` (the reference's).
        eval_fraction: Fraction of speakers (or clips) in the eval split.
        seed: Seed of the utterance split.
        max_bad_fraction: Reading stops once more than this fraction of the entries is bad.
        quarantine_sink: Called with each quarantined entry; None collects them into
            ``CorpusIndex.quarantine`` (for small corpora and tests).

    Returns:
        The clip records, the quarantine list (when collected) and row counts.

    Raises:
        ValueError: If the settings are invalid, the directory does not exist, or it holds no index file.
        TooManyBadEntriesError: If more than ``max_bad_fraction`` of the entries are bad; the
            entries found so far have reached ``quarantine_sink``.
    """
    class_names = tuple(class_names)
    _validate_settings(accent_codes, class_names, split_strategy, eval_fraction, max_bad_fraction)
    found = sources.scan_corpus(corpus_dir)
    if not found.index_files:
        raise ValueError(
            f"No index file in {corpus_dir!r}: expected {' or '.join(index.INDEX_FILENAMES)} "
            "in the directory, a subdirectory or a zip archive"
        )
    plan = _plan_rows(found)
    entries = len(found.broken_archives) + plan.malformed_rows + plan.distinct_clips
    collected: list[QuarantineEntry] = []
    counter = _BadEntryCounter(
        max(entries, 1), max_bad_fraction, collected.append if quarantine_sink is None else quarantine_sink
    )
    for archive_name, reason in found.broken_archives:
        counter.add(QuarantineEntry(archive_name, reason))
    checked = _check_rows(found, plan, accent_codes, class_names, counter)
    clip_splits = split.assign_splits(
        {clip_id: clip.clip_labels.speaker_id for clip_id, clip in checked.good.items()},
        split_strategy=split_strategy,
        eval_fraction=eval_fraction,
        seed=seed,
    )
    corpus_index = CorpusIndex(
        records=[
            _clip_record(clip_id, checked.good[clip_id], clip_splits[clip_id])
            for clip_id in sorted(checked.good)
        ],
        quarantine=sorted(collected, key=lambda entry: entry.filename),
        duplicate_rows=plan.duplicate_rows,
        total_rows=entries,
        unindexed_files=len(found.audio_files) - checked.indexed_audio_files,
        archives_scanned=found.archives_scanned,
        num_quarantined=counter.count,
    )
    _log_summary(corpus_dir, corpus_index, split_strategy)
    return corpus_index


def _validate_settings(
    accent_codes: Mapping[str, str],
    class_names: tuple[str, ...],
    split_strategy: str,
    eval_fraction: float,
    max_bad_fraction: float,
) -> None:
    """Checks the label vocabulary, the split settings and the bad-entry limit.

    Raises:
        ValueError: If any of them is invalid.
    """
    labels.validate_label_vocabulary(accent_codes, class_names)
    split.validate_split_settings(split_strategy, eval_fraction)
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be between 0 and 1, got {max_bad_fraction!r}")


def _check_rows(
    found: sources.CorpusFiles,
    plan: _RowPlan,
    accent_codes: Mapping[str, str],
    class_names: tuple[str, ...],
    counter: _BadEntryCounter,
) -> _CheckedRows:
    """Second pass over the index files: checks the first row of each filename.

    Malformed rows and rows that cannot become clips go to ``counter``; later
    rows of a filename are skipped, with a warning if their transcript differs.

    Raises:
        TooManyBadEntriesError: As soon as too many entries are bad.
    """
    checked = _CheckedRows(good={}, indexed_audio_files=0)
    row_position = -1
    for parsed in _iterate_index_rows(found):
        if isinstance(parsed, index.MalformedRow):
            counter.add(QuarantineEntry(parsed.location, parsed.reason))
            continue
        row_position += 1
        if not plan.first_occurrence[row_position]:
            _warn_if_transcripts_differ(checked.good.get(parsed.clip_id), parsed)
            continue
        checked.indexed_audio_files += parsed.clip_id in found.audio_files
        clip = _check_row(found, parsed, accent_codes, class_names)
        if isinstance(clip, QuarantineEntry):
            counter.add(clip)
        else:
            checked.good[parsed.clip_id] = clip
        if (row_position + 1) % _PROGRESS_INTERVAL == 0:
            logger.info(
                "Checked %d of %d index rows: %d good, %d quarantined",
                row_position + 1,
                len(plan.first_occurrence),
                len(checked.good),
                counter.count,
            )
    return checked


def _check_row(
    found: sources.CorpusFiles,
    row: index.IndexRow,
    accent_codes: Mapping[str, str],
    class_names: tuple[str, ...],
) -> _GoodClip | QuarantineEntry:
    """Checks one index row: the labels in its filename and its audio file.

    Returns:
        The good clip, or the entry to quarantine with its reason.
    """
    try:
        clip_labels = labels.parse_clip_name(row.clip_id, accent_codes, class_names)
        source = _clip_source(found, row.clip_id)
    except labels.LabelError as error:
        return QuarantineEntry(row.clip_id, error.reason)
    return _GoodClip(clip_labels=clip_labels, source=source, transcript=row.transcript)


def _warn_if_transcripts_differ(kept: _GoodClip | None, row: index.IndexRow) -> None:
    """Warns when a repeated row of a kept clip has another transcript than the row kept."""
    if kept is not None and kept.transcript != row.transcript:
        logger.warning(
            "%s is listed more than once with different transcripts; keeping the first", row.clip_id
        )


def _clip_record(clip_id: str, clip: _GoodClip, clip_split: str) -> ClipRecord:
    """The record of a good clip in its split."""
    return ClipRecord(
        clip_id=clip_id,
        source=clip.source,
        accent_code=clip.clip_labels.accent_code,
        accent=clip.clip_labels.accent,
        label=clip.clip_labels.label,
        gender=clip.clip_labels.gender,
        speaker_id=clip.clip_labels.speaker_id,
        split=clip_split,
        transcript=clip.transcript,
    )


def _clip_source(found: sources.CorpusFiles, clip_id: str) -> str:
    """The source of an indexed clip's audio file.

    Raises:
        labels.LabelError: With the quarantine reason if the file is missing, empty, too large or unusable.
    """
    audio_file = found.audio_files.get(clip_id)
    if audio_file is None:
        raise labels.LabelError(found.unusable_audio_files.get(clip_id, "missing file"))
    size = audio_file.size if audio_file.size is not None else sources.source_size(audio_file.source)
    if size is None:
        raise labels.LabelError("missing file")
    if size == 0:
        raise labels.LabelError("empty file")
    problem = sources.clip_size_problem(size, audio_file.compressed_size)
    if problem is not None:
        raise labels.LabelError(problem)
    return audio_file.source


def _iterate_index_rows(found: sources.CorpusFiles) -> Iterator[index.IndexRow | index.MalformedRow]:
    """Streams the rows of every index file the first pass could read, in order."""
    for index_file in found.index_files:
        with sources.open_index_file(index_file) as stream:
            yield from index.parse_index_lines(index.iterate_text_lines(stream), index_file.name)


def _plan_rows(found: sources.CorpusFiles) -> _RowPlan:
    """First pass: finds the first row of each filename and the duplicate counts, 16 bytes per row.

    A filename is known by a 64-bit hash of it, and a (file, filename) pair by another; a collision
    among a corpus's rows is as likely as 1 in 10^7 for a million rows.
    """
    clip_hashes = array.array("Q")
    pair_hashes = array.array("Q")
    malformed_rows = 0
    readable = []
    for file_number, index_file in enumerate(found.index_files):
        rows_before, malformed_before = len(clip_hashes), malformed_rows
        try:
            with sources.open_index_file(index_file) as stream:
                for parsed in index.parse_index_lines(index.iterate_text_lines(stream), index_file.name):
                    if isinstance(parsed, index.MalformedRow):
                        malformed_rows += 1
                        continue
                    if (len(clip_hashes) + 1) % _PROGRESS_INTERVAL == 0:
                        logger.info("Counted %d index rows", len(clip_hashes) + 1)
                    clip_hash = _hash64(parsed.clip_id.encode("utf-8", errors="replace"))
                    clip_hashes.append(clip_hash)
                    pair_hashes.append(
                        _hash64(clip_hash.to_bytes(8, "little") + file_number.to_bytes(4, "little"))
                    )
        except sources.index_read_errors() as error:
            logger.warning("Cannot read the index %s: %s", index_file.name, error)
            found.broken_archives.append(sources.describe_unreadable_index(index_file, error))
            malformed_rows = malformed_before
            del clip_hashes[rows_before:]
            del pair_hashes[rows_before:]
            continue
        readable.append(index_file)
        logger.info("Read %d rows from %s", len(clip_hashes) - rows_before, index_file.name)
    found.index_files = readable
    num_rows = len(clip_hashes)
    distinct_pairs = _count_distinct(pair_hashes)
    del pair_hashes
    first_occurrence = np.zeros(num_rows, dtype=bool)
    if num_rows:
        hashes = np.frombuffer(clip_hashes, dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")
        sorted_hashes = hashes[order]
        del hashes, clip_hashes
        starts = np.ones(num_rows, dtype=bool)
        np.not_equal(sorted_hashes[1:], sorted_hashes[:-1], out=starts[1:])
        del sorted_hashes
        first_occurrence[order[starts]] = True
    distinct_clips = int(first_occurrence.sum())
    duplicate_rows = num_rows - distinct_pairs
    shared_rows = distinct_pairs - distinct_clips
    if duplicate_rows:
        logger.warning("%d duplicate index rows (same filename in one index) kept once", duplicate_rows)
    if shared_rows:
        logger.info("%d rows are listed by more than one index file", shared_rows)
    logger.info(
        "Read %d index rows from %d index files: %d distinct clips, %d malformed rows",
        num_rows + malformed_rows,
        len(found.index_files),
        distinct_clips,
        malformed_rows,
    )
    return _RowPlan(
        first_occurrence=first_occurrence,
        distinct_clips=distinct_clips,
        malformed_rows=malformed_rows,
        duplicate_rows=duplicate_rows,
        shared_rows=shared_rows,
    )


def _count_distinct(values: array.array) -> int:
    """Counts the distinct values of a 64-bit array, sorting one copy of it in place."""
    if not values:
        return 0
    sorted_values = np.array(values, dtype=np.uint64)
    sorted_values.sort()
    return 1 + int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1]))


def _hash64(data: bytes) -> int:
    """A 64-bit hash of some bytes, the same on every run and machine."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _log_summary(corpus_dir: str, corpus_index: CorpusIndex, split_strategy: str) -> None:
    """Logs the clip, speaker and quarantine counts of a read corpus."""
    split_counts = {
        name: sum(record.split == name for record in corpus_index.records)
        for name in (features.TRAIN_SPLIT, features.EVAL_SPLIT)
    }
    speakers = {record.speaker_id for record in corpus_index.records}
    logger.info(
        "Corpus %s: %d clips (%s), %d speakers, %s split; %d quarantined; %d unindexed audio files ignored",
        corpus_dir,
        len(corpus_index.records),
        ", ".join(f"{count} {name}" for name, count in split_counts.items()),
        len(speakers),
        split_strategy,
        corpus_index.num_quarantined,
        corpus_index.unindexed_files,
    )
