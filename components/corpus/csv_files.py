"""CSV files with a fixed header, on local disks or bucket URIs (through tf.io.gfile)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence


def write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Writes a header row and the rows.

    Args:
        path: Local path or filesystem URI (e.g. ``gs://``) of the file to write.
        header: The column names.
        rows: The rows, written in the given order.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with _gfile().GFile(path, "w") as output_file:
        output_file.write(buffer.getvalue())


def read_csv(path: str, header: Sequence[str]) -> list[dict[str, str]]:
    """Reads a file written by ``write_csv``, checking its header.

    Args:
        path: Local path or filesystem URI of the file.
        header: The column names the file must start with.

    Returns:
        One dict per non-empty row, keyed by column name, in file order.

    Raises:
        ValueError: If the header differs.
    """
    with _gfile().GFile(path, "r") as input_file:
        reader = csv.DictReader(io.StringIO(input_file.read()))
        if tuple(reader.fieldnames or ()) != tuple(header):
            raise ValueError(f"{path}: expected header {','.join(header)}, got {reader.fieldnames}")
        return [row for row in reader if any(row.values())]


def _gfile():
    """tf.io.gfile, imported when first needed (TensorFlow is slow to import)."""
    import tensorflow as tf

    return tf.io.gfile
