"""The clip record, one per usable corpus clip, and its CSV form (the clip index)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from components.corpus import csv_files


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One usable clip of the corpus, with its labels and split.

    Attributes:
        clip_id: The filename stem, e.g. ``irm_02484_00388340153``.
        source: Where its bytes are: an absolute path (or URI) of a file, or
            ``<absolute zip path>!<member name>``; read it with ``read_clip_bytes``.
        accent_code: Two-letter accent code, e.g. ``ir``.
        accent: Class name of the accent, e.g. ``Irish``.
        label: Label id (position of ``accent`` in the class names).
        gender: ``male`` or ``female``.
        speaker_id: ``<accent code><gender letter>_<speaker number>``, e.g. ``irm_02484``.
        split: ``features.TRAIN_SPLIT`` or ``features.EVAL_SPLIT``.
        transcript: The index's transcript.
    """

    clip_id: str
    source: str
    accent_code: str
    accent: str
    label: int
    gender: str
    speaker_id: str
    split: str
    transcript: str


# Columns of the clip index CSV: the ClipRecord fields, in order.
CLIP_INDEX_COLUMNS = tuple(field.name for field in dataclasses.fields(ClipRecord))


def write_clip_index(path: str, records: Iterable[ClipRecord]) -> None:
    """Writes clip records as CSV with a header row of the ``ClipRecord`` field names.

    Args:
        path: Local path or filesystem URI (e.g. ``gs://``) of the file to write.
        records: The records, written in the given order.
    """
    csv_files.write_csv(path, CLIP_INDEX_COLUMNS, (dataclasses.astuple(record) for record in records))


def read_clip_index(path: str) -> list[ClipRecord]:
    """Reads clip records written by ``write_clip_index``.

    Args:
        path: Local path or filesystem URI of the file.

    Returns:
        The records, in file order.

    Raises:
        ValueError: If the header does not match the ``ClipRecord`` fields or a label is not an integer.
    """
    return [_record_from_fields(row, path) for row in csv_files.iterate_csv(path, CLIP_INDEX_COLUMNS)]


def check_clip_index_header(path: str) -> None:
    """Checks that a file starts with the clip index header, reading its first line only.

    Args:
        path: Local path or filesystem URI of the file.

    Raises:
        ValueError: If the header does not match the ``ClipRecord`` fields.
    """
    next(iter(csv_files.iterate_csv(path, CLIP_INDEX_COLUMNS)), None)


def parse_clip_line(line: str) -> ClipRecord:
    """Parses one data line of the clip index, as ``beam.io.ReadFromText`` yields it.

    Args:
        line: The line.

    Returns:
        The record.

    Raises:
        ValueError: If the line does not hold every field or its label is not an integer.
    """
    fields = csv_files.parse_csv_line(line, len(CLIP_INDEX_COLUMNS))
    return _record_from_fields(dict(zip(CLIP_INDEX_COLUMNS, fields, strict=True)), "clip index")


def _record_from_fields(row: dict[str, str], where: str) -> ClipRecord:
    """Builds a record from its fields by name, converting the label."""
    try:
        label = int(row["label"])
    except ValueError:
        raise ValueError(f"{where}: label {row['label']!r} of {row['clip_id']} is not an integer") from None
    return ClipRecord(**{**row, "label": label})
