"""Where the corpus's bytes are: loose files, zip archives, their discovery and fingerprint.

A clip's ``source`` string is either the absolute path (or URI) of an audio
file, or ``<absolute zip path>!<member name>`` for a member of one of the
distributed archives (``irish_english_male.zip``, ...), read in place with no
unzip step. File access goes through ``tf.io.gfile``, so corpora on GCS work too.

Walking a local corpus (``scan_corpus``, ``corpus_fingerprint``):

- A directory reached through a symbolic link is walked only if its real
  path is inside the corpus and was not walked already; links leading out of
  the corpus (``ln -s / corpus/x``) are skipped with a warning, and link loops
  end there.
- A file link is followed wherever it points: a corpus of links to wavs kept
  elsewhere is a common data setup. A broken link, or a link to something
  that is not a regular file (a device, a FIFO), is never read.
- A path that is not UTF-8, or holds a line break, is skipped with a warning;
  an index row naming such a file is quarantined with the reason.

A clip is read whole, so no file or archive member larger than
``MAX_CLIP_BYTES`` is read (nor a member whose compression ratio is over
``MAX_COMPRESSION_RATIO``): the size is checked from the file system or the
zip's directory before reading.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import posixpath
import stat as stat_module
import zipfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from components.audio import AUDIO_EXTENSIONS
from components.corpus import index
from components.errors import UnusableClipError, first_line

logger = logging.getLogger(__name__)

# Separates an archive path from a member name in a source string.
ARCHIVE_SEPARATOR = "!"

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

# The largest clip file or archive member read, in bytes. A clip is read whole into memory; 256 MiB
# holds over 20 minutes of 96 kHz 16-bit stereo, far beyond any clip of OpenSLR-83 (a few seconds).
MAX_CLIP_BYTES = 256 * 1024 * 1024

# The largest ratio of a member's declared size to its compressed size. Deflate cannot exceed about
# 1032:1 (digital silence comes close), so only other methods (bzip2, lzma) or a forged header go beyond.
MAX_COMPRESSION_RATIO = 2000

# Members smaller than this are never refused for their compression ratio.
_RATIO_CHECK_MIN_BYTES = 1 << 20


class ClipReadError(UnusableClipError):
    """A clip whose bytes cannot be read (missing file, unreadable archive member): no decoding error.

    Its ``reason`` goes to the quarantine list, like a decoding error's.
    """


@dataclasses.dataclass(frozen=True)
class AudioFile:
    """An audio file found in the corpus.

    Attributes:
        source: Path or ``zip!member`` source string.
        size: Size in bytes if known without another stat call, else None.
        compressed_size: An archive member's compressed size; None for a file.
    """

    source: str
    size: int | None
    compressed_size: int | None = None


@dataclasses.dataclass(frozen=True)
class IndexFile:
    """An index file found in the corpus; read it with ``open_index_file``.

    Attributes:
        name: Path or ``zip!member`` of the index.
    """

    name: str


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
        unusable_audio_files: Clip id to the reason its audio file was skipped (a path that is
            not UTF-8, a broken link, not a regular file), for the quarantine of rows naming it.
    """

    audio_files: dict[str, AudioFile] = dataclasses.field(default_factory=dict)
    index_files: list[IndexFile] = dataclasses.field(default_factory=list)
    broken_archives: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    archives_scanned: int = 0
    shadowed_audio_files: int = 0
    unusable_audio_files: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _WalkedFile:
    """A file met while walking a corpus.

    Attributes:
        path: Its path (for a local name that is not UTF-8, with surrogate escapes).
        relative_path: Its path relative to the corpus root, as bytes, for fingerprints and messages.
        size: Its size, when the walk stat-ed it.
        mtime_nsec: Its modification time in ns, when the walk stat-ed it.
        problem: Why it cannot be used, or None.
    """

    path: str
    relative_path: bytes
    size: int | None = None
    mtime_nsec: int | None = None
    problem: str | None = None


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


def clip_size_problem(size: int, compressed_size: int | None = None) -> str | None:
    """Tells why a clip file or archive member is too large to read, if it is.

    Args:
        size: Its size in bytes (an archive member's declared uncompressed size).
        compressed_size: An archive member's compressed size; None for a plain file.

    Returns:
        A ``too large: ...`` quarantine reason, or None if it may be read.
    """
    if compressed_size is None:
        if size > MAX_CLIP_BYTES:
            return f"too large: {size} bytes, over the limit of {MAX_CLIP_BYTES} bytes"
        return None
    if size > MAX_CLIP_BYTES:
        return f"too large: archive member declares {size} bytes, over the limit of {MAX_CLIP_BYTES} bytes"
    ratio = size / max(compressed_size, 1)
    if size >= _RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
        return (
            f"too large: suspicious compression ratio {ratio:.0f}:1 ({size} bytes from {compressed_size}), "
            f"over the limit of {MAX_COMPRESSION_RATIO}:1"
        )
    return None


def read_clip_bytes(source: str) -> bytes:
    """Reads the bytes of a clip, from a file or from a zip archive member.

    The size (a member's declared size) is checked before anything is read.

    Args:
        source: A path or URI, or ``<zip path>!<member>``.

    Returns:
        The file's bytes.

    Raises:
        ClipReadError: With reason ``missing file``, ``too large: ...``, ``out of memory: ...``,
            ``unreadable file: ...`` or ``unreadable archive member: <error>``.
    """
    path, member_name = split_source(source)
    if member_name is None:
        size = source_size(path)
        if size is None:
            raise ClipReadError("missing file", source)
        problem = clip_size_problem(size)
        if problem is not None:
            raise ClipReadError(problem, source)
        try:
            with _tf().io.gfile.GFile(path, "rb") as clip_file:
                return clip_file.read()
        except _tf().errors.NotFoundError:
            raise ClipReadError("missing file", source) from None
        except _tf().errors.OpError as error:
            raise ClipReadError(f"unreadable file: {first_line(error)}", source) from None
        except MemoryError:
            raise ClipReadError(f"out of memory: reading {size} bytes", source) from None
    try:
        stat = _tf().io.gfile.stat(path)
    except _tf().errors.NotFoundError:
        raise ClipReadError("missing file", source) from None
    try:
        archive = _open_archive(path, stat.length, stat.mtime_nsec, os.getpid())
        member = archive.getinfo(member_name)
    except _ARCHIVE_ERRORS as error:
        raise ClipReadError(f"unreadable archive member: {first_line(error)}", source) from None
    problem = clip_size_problem(member.file_size, member.compress_size)
    if problem is not None:
        raise ClipReadError(problem, source)
    try:
        return archive.read(member)
    except _ARCHIVE_ERRORS as error:
        raise ClipReadError(f"unreadable archive member: {first_line(error)}", source) from None
    except MemoryError:
        raise ClipReadError(f"out of memory: reading a member of {member.file_size} bytes", source) from None


def index_read_errors() -> tuple[type[BaseException], ...]:
    """The errors opening or reading an index file may raise (file system, archive and TensorFlow's)."""
    return (*_ARCHIVE_ERRORS, _tf().errors.OpError)


def describe_unreadable_index(index_file: IndexFile, error: BaseException) -> tuple[str, str]:
    """Names an index that cannot be read, and why, for the quarantine list.

    Args:
        index_file: The index.
        error: What reading it raised.

    Returns:
        (``<archive name>!<member>`` or the index's file name, ``unreadable ...: <error>``).
    """
    path, member_name = split_source(index_file.name)
    if member_name is None:
        return _basename(path), f"unreadable index: {first_line(error)}"
    return f"{_basename(path)}!{member_name}", f"unreadable archive member: {first_line(error)}"


def open_index_file(index_file: IndexFile) -> BinaryIO:
    """Opens an index file, loose or in an archive, for reading its bytes.

    Args:
        index_file: The index.

    Returns:
        A binary file object; close it (or use it in a ``with``) when done.

    Raises:
        OSError, tf.errors.OpError or a zipfile error: If it cannot be opened.
    """
    path, member_name = split_source(index_file.name)
    if member_name is None:
        return _tf().io.gfile.GFile(path, "rb")
    stat = _tf().io.gfile.stat(path)
    return _open_archive(path, stat.length, stat.mtime_nsec, os.getpid()).open(member_name)


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

    Index files are listed, not read. See the module docstring for the walking rules.

    Args:
        corpus_dir: Local directory or URI.

    Returns:
        What was found.

    Raises:
        ValueError: If ``corpus_dir`` is not a directory.
    """
    root = _checked_root(corpus_dir)
    found = CorpusFiles()
    archives = []
    num_files = 0
    for walked in _walk_files(root):
        num_files += 1
        name = _basename(walked.path)
        if walked.problem is not None:
            if _is_audio_name(name):
                clip_id = os.fsencode(_stem(name)).decode("utf-8", errors="replace")
                found.unusable_audio_files.setdefault(clip_id, walked.problem)
            continue
        if index.is_index_filename(name):
            found.index_files.append(IndexFile(name=walked.path))
        elif _is_audio_name(name):
            _add_audio_file(found, _stem(name), AudioFile(source=walked.path, size=walked.size))
        elif name.lower().endswith(".zip"):
            archives.append(walked.path)
    logger.info("Corpus %s: %d loose files", root, num_files)
    for path in archives:
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
    root = _checked_root(corpus_dir)
    digest = hashlib.sha256()
    num_files = 0
    for walked in _walk_files(root):
        if walked.size is not None and walked.mtime_nsec is not None:
            size, mtime_nsec = walked.size, walked.mtime_nsec
        else:
            size, mtime_nsec = _file_metadata(walked.path)
        digest.update(walked.relative_path + f"\0{size}\0{mtime_nsec}\n".encode())
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
        found.broken_archives.append((archive_name, f"unreadable archive: {first_line(error)}"))
        return
    found.archives_scanned += 1
    num_audio = 0
    for member in sorted(members, key=lambda info: info.filename):
        name = member.filename
        if member.is_dir() or name.startswith(_IGNORED_MEMBER_PREFIXES) or _basename(name).startswith("._"):
            continue
        source = make_archive_source(archive_path, name)
        if index.is_index_filename(name):
            found.index_files.append(IndexFile(name=source))
        elif _is_audio_name(name):
            _add_audio_file(
                found,
                _stem(_basename(name)),
                AudioFile(source=source, size=member.file_size, compressed_size=member.compress_size),
            )
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


def _checked_root(corpus_dir: str) -> str:
    """The absolute corpus directory (or URI), checked to be a directory."""
    root = _absolute(corpus_dir)
    is_directory = os.path.isdir(root) if "://" not in root else _tf().io.gfile.isdir(root)
    if not is_directory:
        raise ValueError(f"Corpus directory {corpus_dir!r} does not exist or is not a directory")
    return root


def _walk_files(root: str) -> list[_WalkedFile]:
    """Every file under ``root``, sorted by path; local roots follow the module's link rules."""
    if "://" in root:
        return [
            _WalkedFile(path=path, relative_path=posixpath.relpath(path, root).encode("utf-8"))
            for directory, _, filenames in _tf().io.gfile.walk(root)
            for path in (_join(directory, filename) for filename in filenames)
        ]
    walked = list(_walk_local_files(root))
    walked.sort(key=lambda walked_file: os.fsencode(walked_file.path))
    return walked


def _walk_local_files(root: str) -> Iterator[_WalkedFile]:
    """Walks a local directory without leaving it through a directory link, and without loops."""
    root_real = os.path.realpath(root)
    visited = {root_real}
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as scanned:
                entries = sorted(scanned, key=lambda entry: entry.name)
        except OSError as error:
            logger.warning("Cannot list %r: %s", directory, error.strerror or error)
            continue
        for entry in entries:
            relative_path = os.fsencode(os.path.relpath(entry.path, root))
            if _is_walkable_directory(entry, root_real, visited, relative_path):
                pending.append(entry.path)
            elif not _is_directory(entry):
                yield _walked_file(entry, relative_path)


def _is_directory(entry: os.DirEntry) -> bool:
    """Whether an entry is a directory, or a link to one."""
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _is_walkable_directory(
    entry: os.DirEntry, root_real: str, visited: set[str], relative_path: bytes
) -> bool:
    """Whether to walk into an entry: a directory not yet walked, reached without leaving the corpus."""
    if not _is_directory(entry):
        return False
    real_path = os.path.realpath(entry.path)
    if entry.is_symlink() and not (real_path == root_real or real_path.startswith(root_real + os.sep)):
        logger.warning(
            "Not following the directory link %r: it leads outside the corpus, to %r",
            relative_path.decode("utf-8", errors="replace"),
            real_path,
        )
        return False
    if real_path in visited:
        logger.info("Not walking %r again: it is %r, walked already", relative_path, real_path)
        return False
    visited.add(real_path)
    return True


def _walked_file(entry: os.DirEntry, relative_path: bytes) -> _WalkedFile:
    """Describes a non-directory entry of a local walk, with the reason it cannot be used, if any."""
    problem = None
    size = mtime_nsec = None
    try:
        file_stat = entry.stat(follow_symlinks=True)
        size, mtime_nsec = file_stat.st_size, file_stat.st_mtime_ns
        if not stat_module.S_ISREG(file_stat.st_mode):
            problem = "not a regular file"
    except OSError:
        problem = "broken symbolic link" if entry.is_symlink() else "cannot stat the file"
        link_stat = entry.stat(follow_symlinks=False)
        size, mtime_nsec = link_stat.st_size, link_stat.st_mtime_ns
    try:
        entry.path.encode("utf-8")
    except UnicodeEncodeError:
        problem = f"path is not UTF-8: {relative_path!r}"
    if problem is None and any(character in entry.path for character in "\r\n"):
        problem = f"path holds a line break: {relative_path!r}"
    if problem is not None:
        logger.warning("Skipping %r: %s", relative_path, problem)
    return _WalkedFile(
        path=entry.path, relative_path=relative_path, size=size, mtime_nsec=mtime_nsec, problem=problem
    )


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
    """Tells whether a name has one of the audio extensions: such files are picked up from the corpus."""
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _tf():
    """The tensorflow module, imported when first needed (it is slow to import)."""
    import tensorflow as tf

    return tf
