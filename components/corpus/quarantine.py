"""Quarantine list: corpus entries left out of a run, each with a short reason.

The list is a CSV file with the header ``filename,reason``, written row by row
(``QuarantineWriter``) and read row by row (``iterate_quarantine_csv``), so a
corpus with a million bad entries never holds them in memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

from components.corpus import csv_files
from components.errors import AccentPipelineError

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


class TooManyBadEntriesError(AccentPipelineError, RuntimeError):
    """Raised when the quarantined fraction of a corpus is over the run's limit (``--max-bad-fraction``)."""


def too_many_bad_entries_message(quarantined: int, entries: int, max_bad_fraction: float) -> str:
    """Words the stop of a run over ``--max-bad-fraction``.

    Args:
        quarantined: Entries set aside.
        entries: Distinct corpus entries.
        max_bad_fraction: The largest fraction of bad entries a run accepts.

    Returns:
        ``<quarantined> of <entries> corpus entries (<percent>) were quarantined, over the limit ...``.
    """
    bad_fraction = quarantined / entries if entries else 1.0
    return (
        f"{quarantined} of {entries} corpus entries ({100.0 * bad_fraction:.1f}%) were quarantined, "
        f"over the limit of {100.0 * max_bad_fraction:.1f}% (--max-bad-fraction)."
    )


def format_quarantine_line(entry: QuarantineEntry) -> str:
    """Formats one entry as a line of the quarantine CSV, without the line terminator.

    Args:
        entry: The entry.

    Returns:
        The CSV line.
    """
    return csv_files.format_csv_line((entry.filename, entry.reason))


def parse_quarantine_line(line: str) -> QuarantineEntry:
    """Parses one data line of the quarantine CSV.

    Args:
        line: The line.

    Returns:
        The entry.

    Raises:
        ValueError: If the line does not hold two fields.
    """
    filename, reason = csv_files.parse_csv_line(line, len(QUARANTINE_COLUMNS))
    return QuarantineEntry(filename=filename, reason=reason)


class QuarantineWriter(csv_files.ClosingWriter):
    """Writes quarantine entries to the CSV as they come, keeping none of them.

    Use it as a context manager; ``write`` suits ``read_corpus``'s ``quarantine_sink``.

    Attributes:
        count: Entries written so far.
    """

    def __init__(self, path: str):
        """Opens the file and writes the header.

        Args:
            path: Local path or filesystem URI (e.g. ``gs://``) of the file to write.
        """
        self._writer = csv_files.CsvWriter(path, QUARANTINE_COLUMNS)

    @property
    def count(self) -> int:
        """Entries written so far."""
        return self._writer.count

    def write(self, entry: QuarantineEntry) -> None:
        """Writes one entry.

        Args:
            entry: The entry.
        """
        self._writer.write_row((entry.filename, entry.reason))

    def close(self) -> None:
        """Completes and closes the file."""
        self._writer.close()


def write_quarantine_csv(path: str, entries: Iterable[QuarantineEntry]) -> None:
    """Writes a quarantine list as CSV with the header ``filename,reason``.

    Args:
        path: Local path or filesystem URI (e.g. ``gs://``) of the file to write.
        entries: The entries, written in the given order.
    """
    with QuarantineWriter(path) as writer:
        for entry in entries:
            writer.write(entry)


def iterate_quarantine_csv(path: str) -> Iterator[QuarantineEntry]:
    """Reads a quarantine list written by ``write_quarantine_csv`` entry by entry.

    Args:
        path: Local path or filesystem URI of the file.

    Yields:
        The entries, in file order.

    Raises:
        ValueError: If the header is not ``filename,reason``.
    """
    for row in csv_files.iterate_csv(path, QUARANTINE_COLUMNS):
        yield QuarantineEntry(filename=row["filename"], reason=row["reason"])


def read_quarantine_csv(path: str) -> list[QuarantineEntry]:
    """Reads a quarantine list written by ``write_quarantine_csv``.

    Args:
        path: Local path or filesystem URI of the file.

    Returns:
        The entries, in file order.

    Raises:
        ValueError: If the header is not ``filename,reason``.
    """
    return list(iterate_quarantine_csv(path))


def count_quarantine_csv(path: str) -> int:
    """Counts the entries of a quarantine list without holding them.

    Args:
        path: Local path or filesystem URI of the file.

    Returns:
        The number of entries.

    Raises:
        ValueError: If the header is not ``filename,reason``.
    """
    return sum(1 for _ in iterate_quarantine_csv(path))


def copy_quarantine_report(report_path: str, copy_path: str) -> str:
    """Copies a quarantine report where it outlives the run, if a place is given.

    TFX removes a failed execution's outputs, so a run that stops on its bad
    entries copies the report first (``OUT/quarantine.csv`` locally).

    Args:
        report_path: The report inside an artifact.
        copy_path: Where to copy it (its directory is created), or "" not to.

    Returns:
        The path to point readers at: the copy when one was made, else ``report_path``.
    """
    if not copy_path:
        return report_path
    import tensorflow as tf  # Imported when first needed: it is slow to import.

    tf.io.gfile.makedirs(os.path.dirname(copy_path) or ".")
    tf.io.gfile.copy(report_path, copy_path, overwrite=True)
    return copy_path
