"""The files inside the project's artifacts: their layout and typed readers and writers.

Each artifact type of ``components/artifacts.py`` has its layout here, and
every component that writes or reads one goes through it, never through
another component's file names:

- ``ClipIndex`` (CorpusIndexGen's output): ``ClipIndexFiles`` names
  ``clips.csv`` (``corpus.write_clip_index``), ``quarantine.csv``
  (``corpus.QuarantineWriter``) and ``summary.json`` (``ClipIndexSummary``).
- ``QuarantineReport`` (EmbeddingGen's output): ``QuarantineReportFiles`` names
  ``quarantine.csv`` and ``summary.json`` (``EmbeddingSummary``: clips and
  patches per split and class of the Examples written beside it).

This module imports neither TFX nor, until a file is read or written,
TensorFlow, so Beam workers and the run summary use it cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from typing_extensions import Self

QUARANTINE_FILE = "quarantine.csv"
SUMMARY_FILE = "summary.json"
CLIPS_FILE = "clips.csv"

# The kinds of count an EmbeddingSummary holds.
CLIPS_KIND = "clips"
PATCHES_KIND = "patches"


@dataclasses.dataclass(frozen=True)
class _QuarantineArtifactFiles:
    """The files both quarantine-carrying artifacts hold: a quarantine list and a summary.

    Attributes:
        uri: The artifact's URI (a local directory or a bucket URI).
    """

    uri: str

    @property
    def quarantine_path(self) -> str:
        """The entries set aside (``corpus.QuarantineWriter``), ``filename,reason``."""
        return os.path.join(self.uri, QUARANTINE_FILE)

    @property
    def summary_path(self) -> str:
        """The artifact's summary as JSON."""
        return os.path.join(self.uri, SUMMARY_FILE)


@dataclasses.dataclass(frozen=True)
class ClipIndexFiles(_QuarantineArtifactFiles):
    """Where the files of a ``ClipIndex`` artifact are.

    ``quarantine_path`` holds the entries set aside while indexing; ``summary_path``
    the ``ClipIndexSummary``.

    Attributes:
        uri: The artifact's URI (a local directory or a bucket URI).
    """

    @property
    def clips_path(self) -> str:
        """The clip index CSV, one row per good clip (``corpus.write_clip_index``)."""
        return os.path.join(self.uri, CLIPS_FILE)


class _ArtifactSummary:
    """A summary dataclass, written as JSON at its artifact's ``summary_path``."""

    _files_type: ClassVar[type[_QuarantineArtifactFiles]]

    def write(self, uri: str) -> None:
        """Writes the summary into its artifact.

        Args:
            uri: The artifact's URI.
        """
        _write_json(self._files_type(uri).summary_path, dataclasses.asdict(self))

    @classmethod
    def read(cls, uri: str) -> Self:
        """Reads the summary of an artifact.

        Args:
            uri: The artifact's URI.

        Returns:
            The summary.

        Raises:
            ValueError: If the file does not hold the summary's fields.
        """
        path = cls._files_type(uri).summary_path
        fields = _read_json(path)
        expected = {field.name for field in dataclasses.fields(cls)}
        if not isinstance(fields, dict) or set(fields) != expected:
            raise ValueError(
                f"{path} does not hold a {cls.__name__}: it has {sorted(fields)}, "
                f"expected the fields {sorted(expected)}"
            )
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class ClipIndexSummary(_ArtifactSummary):
    """The counts of an indexed corpus, written beside its clip index.

    Attributes:
        index_rows: Distinct corpus entries (duplicate index rows counted once).
        duplicate_rows: Index rows repeating a filename of the same index file.
        clips: Good clips, the rows of ``clips.csv``.
        quarantined: Entries set aside while indexing.
        clips_per_split: Split name to its clips.
        clips_per_accent: Accent (class name) to its clips.
        speakers_per_split: Split name to its distinct speakers.
    """

    index_rows: int
    duplicate_rows: int
    clips: int
    quarantined: int
    clips_per_split: Mapping[str, int]
    clips_per_accent: Mapping[str, int]
    speakers_per_split: Mapping[str, int]

    _files_type: ClassVar[type[_QuarantineArtifactFiles]] = ClipIndexFiles


@dataclasses.dataclass(frozen=True)
class QuarantineReportFiles(_QuarantineArtifactFiles):
    """Where the files of a ``QuarantineReport`` artifact are.

    ``quarantine_path`` holds every entry set aside by the run, from indexing and
    decoding; ``summary_path`` the ``EmbeddingSummary``.

    Attributes:
        uri: The artifact's URI (a local directory or a bucket URI).
    """


@dataclasses.dataclass(frozen=True)
class EmbeddingSummary(_ArtifactSummary):
    """The clips and patches the embedding job wrote, per split and class.

    Attributes:
        clips: Split name to class name (the clip's accent) to clips.
        patches: Split name to class name (the patch's label) to patches.
    """

    clips: Mapping[str, Mapping[str, int]]
    patches: Mapping[str, Mapping[str, int]]

    _files_type: ClassVar[type[_QuarantineArtifactFiles]] = QuarantineReportFiles

    @classmethod
    def from_counts(cls, counts: Iterable[tuple[tuple[str, str, str], int]]) -> EmbeddingSummary:
        """Builds the summary from counts keyed by ``(kind, split, class name)``.

        Args:
            counts: Pairs of a key, whose kind is ``CLIPS_KIND`` or ``PATCHES_KIND``, and a count;
                one pair per key.

        Returns:
            The summary.

        Raises:
            ValueError: If a kind is neither.
        """
        by_kind: dict[str, dict[str, dict[str, int]]] = {CLIPS_KIND: {}, PATCHES_KIND: {}}
        for (kind, split, class_name), count in counts:
            if kind not in by_kind:
                raise ValueError(f"Unknown kind of count {kind!r}; expected {CLIPS_KIND} or {PATCHES_KIND}")
            by_kind[kind].setdefault(split, {})[class_name] = count
        return cls(clips=by_kind[CLIPS_KIND], patches=by_kind[PATCHES_KIND])

    @property
    def good_clips(self) -> int:
        """Clips that reached the Examples, over every split and class."""
        return sum(sum(per_class.values()) for per_class in self.clips.values())

    @classmethod
    def exists(cls, uri: str) -> bool:
        """Whether a ``QuarantineReport`` artifact holds a summary (an interrupted run's may not).

        Args:
            uri: The artifact's URI.
        """
        return _gfile().exists(QuarantineReportFiles(uri).summary_path)


def _write_json(path: str, content: dict[str, Any]) -> None:
    """Writes a JSON file, creating its directory."""
    gfile = _gfile()
    gfile.makedirs(os.path.dirname(path))
    with gfile.GFile(path, "w") as json_file:
        json.dump(content, json_file, indent=2, sort_keys=True)


def _read_json(path: str) -> dict[str, Any]:
    """Reads a JSON file."""
    with _gfile().GFile(path) as json_file:
        return json.load(json_file)


def _gfile() -> Any:
    """tf.io.gfile, imported when first needed (TensorFlow is slow to import)."""
    import tensorflow as tf

    return tf.io.gfile
