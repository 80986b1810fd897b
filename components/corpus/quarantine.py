"""Quarantine list: corpus entries left out of a run, each with a short reason.

The list is a CSV file with the header ``filename,reason``.
"""

from __future__ import annotations

import csv
import dataclasses
import io

# Columns of the quarantine CSV, in order.
QUARANTINE_COLUMNS = ("filename", "reason")


@dataclasses.dataclass(frozen=True)
class QuarantineEntry:
    """One corpus entry left out of a run.

    Attributes:
        filename: The clip id (filename stem), an archive name, or ``<index>:<line>`` for a malformed row.
        reason: A short, specific reason, e.g. ``missing file`` or ``truncated: ...``.
    """

    filename: str
    reason: str


def write_quarantine_csv(path: str, entries: list[QuarantineEntry]) -> None:
    """Writes a quarantine list as CSV with the header ``filename,reason``.

    Args:
        path: Local path or filesystem URI (e.g. ``gs://``) of the file to write.
        entries: The entries, written in the given order.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(QUARANTINE_COLUMNS)
    for entry in entries:
        writer.writerow((entry.filename, entry.reason))
    with _gfile().GFile(path, "w") as output_file:
        output_file.write(buffer.getvalue())


def read_quarantine_csv(path: str) -> list[QuarantineEntry]:
    """Reads a quarantine list written by ``write_quarantine_csv``.

    Args:
        path: Local path or filesystem URI of the file.

    Returns:
        The entries, in file order.

    Raises:
        ValueError: If the header is not ``filename,reason``.
    """
    with _gfile().GFile(path, "r") as input_file:
        reader = csv.reader(io.StringIO(input_file.read()))
        header = next(reader, None)
        if header is None or tuple(header) != QUARANTINE_COLUMNS:
            raise ValueError(f"{path}: expected header {','.join(QUARANTINE_COLUMNS)}, got {header}")
        return [QuarantineEntry(filename=row[0], reason=row[1]) for row in reader if row]


def _gfile():
    """tf.io.gfile, imported when first needed (TensorFlow is slow to import)."""
    import tensorflow as tf

    return tf.io.gfile
