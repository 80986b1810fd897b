"""CSV files with a fixed header, on local disks or bucket URIs (through tf.io.gfile).

Files are read and written row by row, so a file of millions of rows never
sits in memory whole. Every row is one line: a line break inside a field is
escaped as a backslash and a letter (``n`` or ``r``), so that line-based readers
(``beam.io.ReadFromText``) can read the files too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

from typing_extensions import Self

# Rows gathered before one write to the file.
_ROWS_PER_WRITE = 1000


def format_csv_line(row: Sequence[object]) -> str:
    """Formats one row as a CSV line, without the line terminator.

    Args:
        row: The fields; each is turned into a string, line breaks escaped.

    Returns:
        The line.
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([_single_line(str(field)) for field in row])
    return buffer.getvalue()[:-1]


def parse_csv_line(line: str, num_fields: int) -> list[str]:
    """Parses one line written by ``format_csv_line``.

    Args:
        line: The line, with or without its terminator.
        num_fields: The number of fields the line must hold.

    Returns:
        The fields.

    Raises:
        ValueError: If the line does not hold ``num_fields`` fields.
    """
    fields = next(csv.reader([line.rstrip("\r\n")]), [])
    if len(fields) != num_fields:
        raise ValueError(f"expected {num_fields} CSV fields, got {len(fields)} in {line[:200]!r}")
    return fields


class ClosingWriter:
    """A writer that a ``with`` block closes at its end; a subclass defines ``close``."""

    def close(self) -> None:
        """Completes and closes the file."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class CsvWriter(ClosingWriter):
    """Writes a header row, then rows one at a time, holding at most a few of them in memory.

    Use it as a context manager; the file is complete once it is closed.
    """

    def __init__(self, path: str, header: Sequence[str]):
        """Opens the file and writes the header.

        Args:
            path: Local path or filesystem URI (e.g. ``gs://``) of the file to write.
            header: The column names.
        """
        self._file = _gfile().GFile(path, "w")
        self._pending: list[str] = []
        self.count = 0
        self._file.write(format_csv_line(header) + "\n")

    def write_row(self, row: Sequence[object]) -> None:
        """Writes one row.

        Args:
            row: The fields.
        """
        self._pending.append(format_csv_line(row))
        self.count += 1
        if len(self._pending) >= _ROWS_PER_WRITE:
            self._flush()

    def close(self) -> None:
        """Writes the rows not yet written and closes the file."""
        if self._file is None:
            return
        self._flush()
        self._file.close()
        self._file = None

    def _flush(self) -> None:
        if self._pending:
            self._file.write("\n".join(self._pending) + "\n")
            self._pending = []


def write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Writes a header row and the rows, streaming them to the file.

    Args:
        path: Local path or filesystem URI (e.g. ``gs://``) of the file to write.
        header: The column names.
        rows: The rows, written in the given order.
    """
    with CsvWriter(path, header) as writer:
        for row in rows:
            writer.write_row(row)


def iterate_csv(path: str, header: Sequence[str]) -> Iterator[dict[str, str]]:
    """Reads a file written by ``write_csv`` row by row, checking its header.

    Args:
        path: Local path or filesystem URI of the file.
        header: The column names the file must start with.

    Yields:
        One dict per non-empty row, keyed by column name, in file order.

    Raises:
        ValueError: If the header differs.
    """
    with _gfile().GFile(path, "r") as input_file:
        reader = csv.DictReader(input_file)
        if tuple(reader.fieldnames or ()) != tuple(header):
            raise ValueError(f"{path}: expected header {','.join(header)}, got {reader.fieldnames}")
        for row in reader:
            if any(row.values()):
                yield row


def _single_line(text: str) -> str:
    """Escapes the line breaks of a field."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _gfile() -> Any:
    """tf.io.gfile, imported when first needed (TensorFlow is slow to import)."""
    import tensorflow as tf

    return tf.io.gfile
