"""Parsing of OpenSLR-83 index files (``line_index_all.csv`` and ``line_index.csv``).

Each row is ``ID, filename, transcript`` with no header, e.g.
``EN0001, irm_02484_00388340153, Some transcript, with a comma``. The filename
has a leading space and no extension, and transcripts may hold commas, so a
row is split on its first two commas only.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from components.audio import AUDIO_EXTENSIONS

logger = logging.getLogger(__name__)

# Names of the index files in the corpus and in its archives.
INDEX_FILENAMES = ("line_index_all.csv", "line_index.csv")

# Bytes read from an index file at a time.
_READ_CHUNK_BYTES = 1 << 16


@dataclasses.dataclass(frozen=True)
class IndexRow:
    """One row of an index file.

    Attributes:
        row_id: The first field, e.g. ``EN0001``.
        clip_id: The filename field without spaces or extension.
        transcript: The rest of the row, stripped.
        index_name: Where the row comes from (an index path or ``zip!member``).
        line_number: 1-based line number in the index.
    """

    row_id: str
    clip_id: str
    transcript: str
    index_name: str
    line_number: int


@dataclasses.dataclass(frozen=True)
class MalformedRow:
    """A non-empty index row that cannot be parsed.

    Attributes:
        index_name: Where the row comes from.
        line_number: 1-based line number in the index.
        reason: Why it cannot be parsed.
    """

    index_name: str
    line_number: int
    reason: str

    @property
    def location(self) -> str:
        """``<index name>:<line number>``, used as the quarantine filename."""
        return f"{self.index_name}:{self.line_number}"


def is_index_filename(name: str) -> bool:
    """Tells whether a path's last component names an index file.

    Args:
        name: A path or archive member name.

    Returns:
        True for ``line_index_all.csv`` and ``line_index.csv``.
    """
    return name.replace("\\", "/").rsplit("/", 1)[-1].lower() in INDEX_FILENAMES


def decode_index_text(content: bytes) -> str:
    """Decodes an index file's bytes as UTF-8 (dropping a BOM); undecodable bytes become U+FFFD.

    Args:
        content: The raw bytes.

    Returns:
        The text.
    """
    return content.decode("utf-8-sig", errors="replace")


def iterate_text_lines(stream: BinaryIO) -> Iterator[str]:
    """Reads an index's lines from a binary stream, a chunk at a time.

    Lines are decoded as ``decode_index_text`` decodes a whole file and split
    as ``str.splitlines`` splits it, so the line numbers are the same.

    Args:
        stream: An open binary file (``open``, ``tf.io.gfile.GFile`` or a zip member).

    Yields:
        The lines, without their line breaks.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    pending = ""
    while True:
        chunk = stream.read(_READ_CHUNK_BYTES)
        text = pending + decoder.decode(chunk or b"", final=not chunk)
        if not chunk:
            yield from text.splitlines()
            return
        lines = text.splitlines(keepends=True)
        # The last piece may be an unfinished line, or a "\r" whose "\n" is in the next chunk.
        pending = lines.pop() if lines else ""
        for line in lines:
            yield line.splitlines()[0]


def parse_index_lines(lines: Iterable[str], index_name: str) -> Iterator[IndexRow | MalformedRow]:
    """Parses the rows of one index file as they are read; blank lines are skipped.

    Args:
        lines: The index's lines, without line breaks.
        index_name: Where it comes from, for messages and row locations.

    Yields:
        Each parsed row, or the reason a row could not be parsed, in file order.
    """
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",", 2)
        if len(fields) < 2:
            yield MalformedRow(index_name, line_number, f"malformed index row: no comma in {line[:80]!r}")
            continue
        clip_id = fields[1].strip()
        for extension in AUDIO_EXTENSIONS:  # An index's filename field may carry one by mistake.
            if clip_id.lower().endswith(extension):
                clip_id = clip_id[: -len(extension)]
                break
        if not clip_id or any(character in clip_id for character in "/\\ \t"):
            yield MalformedRow(
                index_name, line_number, f"malformed index row: bad filename field {fields[1]!r}"
            )
            continue
        transcript = fields[2].strip() if len(fields) > 2 else ""
        yield IndexRow(fields[0].strip(), clip_id, transcript, index_name, line_number)


def parse_index_text(text: str, index_name: str) -> tuple[list[IndexRow], list[MalformedRow]]:
    """Parses the rows of one index file held in memory; blank lines are skipped.

    Args:
        text: The index's content.
        index_name: Where it comes from, for messages and row locations.

    Returns:
        The parsed rows and the rows that could not be parsed, in file order.
    """
    rows: list[IndexRow] = []
    malformed: list[MalformedRow] = []
    for parsed in parse_index_lines(text.splitlines(), index_name):
        if isinstance(parsed, MalformedRow):
            malformed.append(parsed)
        else:
            rows.append(parsed)
    logger.debug("Index %s: %d rows, %d malformed", index_name, len(rows), len(malformed))
    return rows, malformed
