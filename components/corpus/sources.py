"""Where the corpus's bytes are: loose files, zip archives, their discovery and fingerprint.

A clip's ``source`` string is either the absolute path (or URI) of an audio
file, or ``<absolute zip path>!<member name>`` for a member of one of the
distributed archives (``irish_english_male.zip``, ...), read in place with no
unzip step. File access goes through ``tf.io.gfile``, so corpora on GCS work too.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import posixpath
import zipfile
import zlib

from components.audio import AudioDecodeError
from components.corpus import index

logger = logging.getLogger(__name__)

# Separates an archive path from a member name in a source string.
ARCHIVE_SEPARATOR = "!"

# Extensions of the audio files picked up from the corpus directory and archives.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# Archive members that are never corpus content (macOS resource forks).
_IGNORED_MEMBER_PREFIXES = ("__MACOSX/",)

# Errors zipfile raises for broken archives and members.
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    KeyError,
    NotImplementedError,
    ValueError,
)

# Open archives kept per process, so reading many members does not re-read the central directory.
_OPEN_ARCHIVE_CACHE_SIZE = 16


class ClipReadError(AudioDecodeError):
    """A clip whose bytes cannot be read (missing file, unreadable archive member).

    Its ``reason`` goes to the quarantine list, like a decoding error's.
    """


@dataclasses.dataclass(frozen=True)
class AudioFile:
    """An audio file found in the corpus.

    Attributes:
        source: Path or ``zip!member`` source string.
        size: Size in bytes if known without a stat call (archive members), else None.
    """

    source: str
    size: int | None


@dataclasses.dataclass(frozen=True)
class IndexFile:
    """An index file found in the corpus.

    Attributes:
        name: Path or ``zip!member`` of the index.
        content: Its raw bytes.
    """

    name: str
    content: bytes


@dataclasses.dataclass
class CorpusFiles:
    """What a scan of a corpus directory found.

    Attributes:
        audio_files: Clip id (filename stem) to its file; loose files win over archive members,
            then the first in sorted order.
        index_files: Index files, loose ones first, each group in sorted order.
        broken_archives: (archive name, reason) of archives or archive indexes that cannot be read.
        archives_scanned: Number of zip archives opened.
        shadowed_audio_files: Audio files ignored because another file has the same stem.
    """

    audio_files: dict[str, AudioFile] = dataclasses.field(default_factory=dict)
    index_files: list[IndexFile] = dataclasses.field(default_factory=list)
    broken_archives: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    archives_scanned: int = 0
    shadowed_audio_files: int = 0


def make_archive_source(archive_path: str, member_name: str) -> str:
    """Builds the source string of an archive member.

    Args:
        archive_path: Absolute path or URI of the zip file.
        member_name: Member name inside the zip.

    Returns:
        ``<archive_path>!<member_name>``.
    """
    return f"{archive_path}{ARCHIVE_SEPARATOR}{member_name}"


def split_source(source: str) -> tuple[str, str | None]:
    """Splits a source string into a file path and an archive member name.

    Args:
        source: A path, or ``<zip path>!<member>``.

    Returns:
        (path, member name), the member being None for a plain file.
    """
    marker = ".zip" + ARCHIVE_SEPARATOR
    position = source.lower().find(marker)
    if position < 0:
        return source, None
    return source[: position + 4], source[position + len(marker) :]


def read_clip_bytes(source: str) -> bytes:
    """Reads the bytes of a clip, from a file or from a zip archive member.

    Args:
        source: A path or URI, or ``<zip path>!<member>``.

    Returns:
        The file's bytes.

    Raises:
        ClipReadError: With reason ``missing file`` or ``unreadable archive member: <error>``.
    """
    path, member_name = split_source(source)
    if member_name is None:
        try:
            with _tf().io.gfile.GFile(path, "rb") as clip_file:
                return clip_file.read()
        except _tf().errors.NotFoundError:
            raise ClipReadError("missing file", source) from None
        except _tf().errors.OpError as error:
            raise ClipReadError(f"unreadable file: {error.message.splitlines()[0]}", source) from None
    try:
        stat = _tf().io.gfile.stat(path)
    except _tf().errors.NotFoundError:
        raise ClipReadError("missing file", source) from None
    try:
        archive = _open_archive(path, stat.length, stat.mtime_nsec, os.getpid())
        return archive.read(member_name)
    except _ARCHIVE_ERRORS as error:
        raise ClipReadError(f"unreadable archive member: {_error_text(error)}", source) from None


def source_size(source: str) -> int | None:
    """Returns the size of a plain file source, or None if it does not exist.

    Args:
        source: A path or URI (not an archive member).

    Returns:
        Size in bytes, or None.
    """
    try:
        return _tf().io.gfile.stat(source).length
    except _tf().errors.NotFoundError:
        return None


def scan_corpus(corpus_dir: str) -> CorpusFiles:
    """Finds the audio files and index files of a corpus directory, recursively, inside zips too.

    Args:
        corpus_dir: Local directory or URI.

    Returns:
        What was found.

    Raises:
        ValueError: If ``corpus_dir`` is not a directory.
    """
    root = _absolute(corpus_dir)
    if not _tf().io.gfile.isdir(root):
        raise ValueError(f"Corpus directory {corpus_dir!r} does not exist or is not a directory")
    found = CorpusFiles()
    loose_files = list(_walk_files(root))
    for path in loose_files:
        name = _basename(path)
        if index.is_index_filename(name):
            with _tf().io.gfile.GFile(path, "rb") as index_file:
                found.index_files.append(IndexFile(name=path, content=index_file.read()))
        elif _is_audio_name(name):
            _add_audio_file(found, _stem(name), AudioFile(source=path, size=None))
    logger.info("Corpus %s: %d loose files", root, len(loose_files))
    for path in loose_files:
        if path.lower().endswith(".zip"):
            _scan_archive(path, found)
    logger.info(
        "Corpus %s: %d archives scanned, %d audio files, %d index files",
        root,
        found.archives_scanned,
        len(found.audio_files),
        len(found.index_files),
    )
    return found


def corpus_fingerprint(corpus_dir: str) -> str:
    """Hashes the relative path, size and modification time of every file of a corpus.

    Only metadata is read (no file content), so it is cheap even for the
    17,877 files of OpenSLR-83. Any added, removed, resized or touched file
    changes it, which makes it a suitable cache key for ingestion.

    Args:
        corpus_dir: Local directory or URI.

    Returns:
        A SHA-256 hex digest.

    Raises:
        ValueError: If ``corpus_dir`` is not a directory.
    """
    root = _absolute(corpus_dir)
    if not _tf().io.gfile.isdir(root):
        raise ValueError(f"Corpus directory {corpus_dir!r} does not exist or is not a directory")
    digest = hashlib.sha256()
    num_files = 0
    for path in _walk_files(root):
        relative_path = posixpath.relpath(path.replace(os.sep, "/"), root.replace(os.sep, "/"))
        size, mtime_nsec = _file_metadata(path)
        digest.update(f"{relative_path}\0{size}\0{mtime_nsec}\n".encode())
        num_files += 1
    logger.info("Fingerprinted %d files of %s", num_files, root)
    return digest.hexdigest()


def _scan_archive(archive_path: str, found: CorpusFiles) -> None:
    """Adds the audio members and index files of one zip archive to ``found``."""
    archive_name = _basename(archive_path)
    try:
        stat = _tf().io.gfile.stat(archive_path)
        archive = _open_archive(archive_path, stat.length, stat.mtime_nsec, os.getpid())
        members = archive.infolist()
    except _ARCHIVE_ERRORS as error:
        logger.warning("Cannot open archive %s: %s", archive_path, error)
        found.broken_archives.append((archive_name, f"unreadable archive: {_error_text(error)}"))
        return
    found.archives_scanned += 1
    num_audio = 0
    for member in sorted(members, key=lambda info: info.filename):
        name = member.filename
        if member.is_dir() or name.startswith(_IGNORED_MEMBER_PREFIXES) or _basename(name).startswith("._"):
            continue
        source = make_archive_source(archive_path, name)
        if index.is_index_filename(name):
            try:
                found.index_files.append(IndexFile(name=source, content=archive.read(member)))
            except _ARCHIVE_ERRORS as error:
                logger.warning("Cannot read index %s: %s", source, error)
                found.broken_archives.append(
                    (f"{archive_name}!{name}", f"unreadable archive member: {_error_text(error)}")
                )
        elif _is_audio_name(name):
            _add_audio_file(found, _stem(_basename(name)), AudioFile(source=source, size=member.file_size))
            num_audio += 1
    logger.info("Archive %s: %d audio members", archive_name, num_audio)


def _add_audio_file(found: CorpusFiles, clip_id: str, audio_file: AudioFile) -> None:
    """Records an audio file unless one with the same stem was found first."""
    if clip_id in found.audio_files:
        found.shadowed_audio_files += 1
        logger.debug("Ignoring %s: %s already found", audio_file.source, found.audio_files[clip_id].source)
        return
    found.audio_files[clip_id] = audio_file


@functools.lru_cache(maxsize=_OPEN_ARCHIVE_CACHE_SIZE)
def _open_archive(path: str, size: int, mtime_nsec: int, process_id: int) -> zipfile.ZipFile:
    """Opens a zip archive, cached per (path, size, mtime, process).

    A changed archive is reopened, and a forked process opens its own file
    handle rather than sharing its parent's file offset.
    """
    del size, mtime_nsec, process_id
    return zipfile.ZipFile(_tf().io.gfile.GFile(path, "rb"))


def _walk_files(root: str):
    """Yields the path of every file under ``root``, in sorted order."""
    paths = []
    for directory, _, filenames in _tf().io.gfile.walk(root):
        paths.extend(_join(directory, filename) for filename in filenames)
    yield from sorted(paths)


def _file_metadata(path: str) -> tuple[int, int]:
    """Returns (size, mtime in ns); local files use os.stat for full mtime precision."""
    if "://" not in path:
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns
    stat = _tf().io.gfile.stat(path)
    return stat.length, stat.mtime_nsec


def _absolute(path: str) -> str:
    """Makes a local path absolute; URIs are returned without a trailing slash."""
    if "://" in path:
        return path.rstrip("/")
    return os.path.abspath(path)


def _join(directory: str, filename: str) -> str:
    """Joins a directory and a filename, for local paths and URIs."""
    if "://" in directory:
        return directory.rstrip("/") + "/" + filename
    return os.path.join(directory, filename)


def _basename(path: str) -> str:
    """Last component of a path, archive member name or URI."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _stem(filename: str) -> str:
    """Filename without its extension."""
    return filename.rsplit(".", 1)[0]


def _is_audio_name(name: str) -> bool:
    """Tells whether a name has one of the audio extensions."""
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _error_text(error: BaseException) -> str:
    """A one-line description of an error."""
    text = str(error).splitlines()[0] if str(error) else ""
    return text[:200] or type(error).__name__


def _tf():
    """The tensorflow module, imported when first needed (it is slow to import)."""
    import tensorflow as tf

    return tf
