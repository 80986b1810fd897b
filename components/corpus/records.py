"""The clip record, one per usable corpus clip, and its CSV form (the clip index)."""

from __future__ import annotations

import dataclasses

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


def write_clip_index(path: str, records: list[ClipRecord]) -> None:
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
    records = []
    for row in csv_files.read_csv(path, CLIP_INDEX_COLUMNS):
        try:
            label = int(row["label"])
        except ValueError:
            raise ValueError(
                f"{path}: label {row['label']!r} of {row['clip_id']} is not an integer"
            ) from None
        records.append(ClipRecord(**{**row, "label": label}))
    return records
