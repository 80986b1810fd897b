"""Reading an OpenSLR-83 corpus directory into labelled, split clip records and a quarantine list."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from components import features
from components.corpus import index, labels, sources, split
from components.corpus.quarantine import QuarantineEntry
from components.corpus.records import ClipRecord

logger = logging.getLogger(__name__)

# Log progress every this many index rows.
_PROGRESS_INTERVAL = 5000


@dataclasses.dataclass
class CorpusIndex:
    """The result of reading a corpus directory.

    Attributes:
        records: Usable clips, sorted by clip id.
        quarantine: Entries left out at index time, sorted by filename. Reading and
            decoding the clips later may quarantine more.
        duplicate_rows: Index rows repeating a filename already listed by the same index file
            (kept once). Rows listed by several index files, e.g. by ``line_index_all.csv`` and by
            an archive's ``line_index.csv``, are merged without being counted.
        total_rows: Distinct corpus entries: each distinct filename once, each malformed
            row and each unreadable archive; it equals ``len(records) + len(quarantine)``.
        unindexed_files: Audio files in the corpus that no index lists (ignored).
        archives_scanned: Zip archives opened.
    """

    records: list[ClipRecord]
    quarantine: list[QuarantineEntry]
    duplicate_rows: int
    total_rows: int
    unindexed_files: int = 0
    archives_scanned: int = 0


def read_corpus(
    corpus_dir: str,
    accent_codes: Mapping[str, str] = features.ACCENT_CODE_TO_NAME,
    class_names: tuple[str, ...] = features.DEFAULT_CLASS_NAMES,
    split_strategy: str = split.SPEAKER_STRATEGY,
    eval_fraction: float = 0.1,
    seed: int = 1337,
) -> CorpusIndex:
    """Reads the index files of an OpenSLR-83 corpus and labels and splits its clips.

    The corpus directory may hold ``line_index_all.csv`` and/or ``line_index.csv``
    files with the wavs beside them (in any subdirectory), the distributed zip
    archives (each with its own ``line_index.csv``), or a mix. Index-level
    quarantine reasons are ``missing file``, ``empty file``, ``unknown accent
    code 'xx'``, ``malformed filename: ...``, ``malformed index row: ...`` and
    ``unreadable archive: ...``; corrupt archive members are found when read
    (``sources.read_clip_bytes``).

    Args:
        corpus_dir: Local directory or URI of the corpus.
        accent_codes: Accent code (filename prefix) to class name.
        class_names: The label vocabulary, in id order.
        split_strategy: ``speaker`` (disjoint speakers, by hash) or ``utterance`` (the reference's).
        eval_fraction: Fraction of speakers (or clips) in the eval split.
        seed: Seed of the utterance split.

    Returns:
        The clip records, the quarantine list and row counts.

    Raises:
        ValueError: If the settings are invalid, the directory does not exist, or it holds no index file.
    """
    labels.validate_label_vocabulary(accent_codes, tuple(class_names))
    split.validate_split_settings(split_strategy, eval_fraction)
    found = sources.scan_corpus(corpus_dir)
    if not found.index_files:
        raise ValueError(
            f"No index file in {corpus_dir!r}: expected {' or '.join(index.INDEX_FILENAMES)} "
            "in the directory, a subdirectory or a zip archive"
        )
    quarantine: dict[str, QuarantineEntry] = {}
    for archive_name, reason in found.broken_archives:
        quarantine[archive_name] = QuarantineEntry(archive_name, reason)

    rows, duplicate_rows = _merge_index_rows(found, quarantine)
    clip_labels: dict[str, labels.ClipLabels] = {}
    clip_sources: dict[str, str] = {}
    for row_number, row in enumerate(rows, start=1):
        reason = None
        try:
            clip_labels[row.clip_id] = labels.parse_clip_name(row.clip_id, accent_codes, tuple(class_names))
        except labels.LabelError as error:
            reason = error.reason
        audio_file = found.audio_files.get(row.clip_id)
        if reason is None and audio_file is None:
            reason = "missing file"
        if reason is None:
            size = audio_file.size if audio_file.size is not None else sources.source_size(audio_file.source)
            if size is None:
                reason = "missing file"
            elif size == 0:
                reason = "empty file"
        if reason is None:
            clip_sources[row.clip_id] = audio_file.source
        else:
            clip_labels.pop(row.clip_id, None)
            quarantine[row.clip_id] = QuarantineEntry(row.clip_id, reason)
        if row_number % _PROGRESS_INTERVAL == 0:
            logger.info("Checked %d of %d index entries", row_number, len(rows))

    clip_splits = split.assign_splits(
        {clip_id: clip_labels[clip_id].speaker_id for clip_id in clip_sources},
        split_strategy=split_strategy,
        eval_fraction=eval_fraction,
        seed=seed,
    )
    transcripts = {row.clip_id: row.transcript for row in rows}
    records = [
        ClipRecord(
            clip_id=clip_id,
            source=clip_sources[clip_id],
            accent_code=clip_labels[clip_id].accent_code,
            accent=clip_labels[clip_id].accent,
            label=clip_labels[clip_id].label,
            gender=clip_labels[clip_id].gender,
            speaker_id=clip_labels[clip_id].speaker_id,
            split=clip_splits[clip_id],
            transcript=transcripts[clip_id],
        )
        for clip_id in sorted(clip_sources)
    ]
    indexed = {row.clip_id for row in rows}
    unindexed_files = sum(clip_id not in indexed for clip_id in found.audio_files)
    corpus_index = CorpusIndex(
        records=records,
        quarantine=sorted(quarantine.values(), key=lambda entry: entry.filename),
        duplicate_rows=duplicate_rows,
        total_rows=len(records) + len(quarantine),
        unindexed_files=unindexed_files,
        archives_scanned=found.archives_scanned,
    )
    _log_summary(corpus_dir, corpus_index, split_strategy)
    return corpus_index


def _merge_index_rows(
    found: sources.CorpusFiles, quarantine: dict[str, QuarantineEntry]
) -> tuple[list[index.IndexRow], int]:
    """Parses every index file; returns the distinct rows (first wins) and the in-file duplicate count."""
    rows: dict[str, index.IndexRow] = {}
    duplicate_rows = 0
    shared_rows = 0
    total_lines = 0
    for index_file in found.index_files:
        parsed, malformed = index.parse_index_text(
            index.decode_index_text(index_file.content), index_file.name
        )
        total_lines += len(parsed) + len(malformed)
        for bad_row in malformed:
            quarantine[bad_row.location] = QuarantineEntry(bad_row.location, bad_row.reason)
        seen_in_file: set[str] = set()
        for row in parsed:
            if row.clip_id in seen_in_file:
                duplicate_rows += 1
                continue
            seen_in_file.add(row.clip_id)
            if row.clip_id in rows:
                shared_rows += 1
                if rows[row.clip_id].transcript != row.transcript:
                    logger.warning(
                        "%s is listed by %s and %s with different transcripts; keeping the first",
                        row.clip_id,
                        rows[row.clip_id].index_name,
                        row.index_name,
                    )
                continue
            rows[row.clip_id] = row
        logger.info(
            "Read %d rows from %s (%d distinct clips so far)", len(parsed), index_file.name, len(rows)
        )
    if duplicate_rows:
        logger.warning("%d duplicate index rows (same filename in one index) kept once", duplicate_rows)
    if shared_rows:
        logger.info("%d rows are listed by more than one index file", shared_rows)
    logger.info("Read %d index rows from %d index files", total_lines, len(found.index_files))
    return [rows[clip_id] for clip_id in sorted(rows)], duplicate_rows


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
        len(corpus_index.quarantine),
        corpus_index.unindexed_files,
    )
