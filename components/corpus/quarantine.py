"""Quarantine list: corpus entries left out of a run, each with a short reason.

The list is a CSV file with the header ``filename,reason``.
"""

from __future__ import annotations

import dataclasses

from components.corpus import csv_files

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
    csv_files.write_csv(path, QUARANTINE_COLUMNS, ((entry.filename, entry.reason) for entry in entries))


def read_quarantine_csv(path: str) -> list[QuarantineEntry]:
    """Reads a quarantine list written by ``write_quarantine_csv``.

    Args:
        path: Local path or filesystem URI of the file.

    Returns:
        The entries, in file order.

    Raises:
        ValueError: If the header is not ``filename,reason``.
    """
    return [
        QuarantineEntry(filename=row["filename"], reason=row["reason"])
        for row in csv_files.read_csv(path, QUARANTINE_COLUMNS)
    ]
