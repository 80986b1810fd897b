"""An exclusive lock on a local run's output directory ``OUT``, held for the whole run.

Two runs on the same ``OUT`` would train two models and record both pushes in
one ML Metadata store as they interleave. So ``accent-pipeline run`` takes
``fcntl.flock`` on ``OUT/.lock`` before anything else and holds it until it
ends. A second run fails at once (no waiting) with ``OutputLockedError``, whose
message names the holder's PID, host and start time, written into the lock
file once the lock is taken.

The kernel releases the lock when its process dies, however it dies, so a
killed run never blocks the next. A run that ends normally empties the lock
file as it releases the lock; a run that finds the file not empty when it
takes the lock knows the previous run ended abnormally (SIGKILL, out of
memory, power loss) and reports it (``OutputLock.previous_owner``).

The lock file is never deleted: deleting it would let two runs lock two
different files of the same name. ``flock`` works between processes of one
machine; on NFS, Linux emulates it with POSIX record locks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from components.errors import AccentPipelineError

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = ".lock"

# The output directories this process holds locks on, by real path; hold() is re-entrant through it.
_held_locks: dict[str, OutputLock] = {}
_held_locks_guard = threading.Lock()


@dataclasses.dataclass(frozen=True)
class LockOwner:
    """The run that holds, or held, an output directory's lock."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        """The owner in words, e.g. ``PID 1234 on host, started 2025-01-01T10:00:00+00:00``."""
        return f"PID {self.pid} on {self.host}, started {self.started}"

    def to_text(self) -> str:
        """The lock file's content: one ``key=value`` line per field."""
        return f"pid={self.pid}\nhost={self.host}\nstarted={self.started}\n"

    @classmethod
    def from_text(cls, text: str) -> LockOwner | None:
        """Parses a lock file's content; None if it is empty or not a lock record."""
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        try:
            return cls(
                pid=int(fields["pid"]), host=fields.get("host", "?"), started=fields.get("started", "?")
            )
        except (KeyError, ValueError):
            return None

    @classmethod
    def this_process(cls) -> LockOwner:
        """This process, starting now."""
        started = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")
        return cls(pid=os.getpid(), host=socket.gethostname(), started=started)


class OutputLockedError(AccentPipelineError, RuntimeError):
    """Another run holds the output directory's lock."""

    def __init__(self, output_dir: Path, owner: LockOwner | None) -> None:
        self.output_dir = output_dir
        self.owner = owner
        holder = owner.describe() if owner else "a process that has not yet written its PID"
        super().__init__(
            f"another run ({holder}) is writing to {output_dir}; wait for it to end or use another --output"
        )


def lock_path(output_dir: str | Path) -> Path:
    """The lock file of an output directory."""
    return Path(output_dir) / LOCK_FILE_NAME


def _read_text(descriptor: int) -> str:
    os.lseek(descriptor, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(descriptor, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def read_owner(output_dir: str | Path) -> LockOwner | None:
    """The run recorded in an output directory's lock file: the holder, or a run that died holding it.

    Args:
        output_dir: The output directory ``OUT``.

    Returns:
        The recorded owner; None if there is no lock file or it is empty (released cleanly).
    """
    try:
        return LockOwner.from_text(lock_path(output_dir).read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return None


def is_held_by_another_process(output_dir: str | Path) -> bool:
    """Whether a process other than this one holds an output directory's lock now.

    Args:
        output_dir: The output directory ``OUT``.
    """
    with _held_locks_guard:
        if os.path.realpath(output_dir) in _held_locks:
            return False
    try:
        descriptor = os.open(lock_path(output_dir), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(descriptor)  # Closing it also drops the probing lock.
    return False


class OutputLock:
    """The exclusive lock on one output directory.

    Attributes:
        output_dir: The output directory ``OUT``.
        owner: This process, as written into the lock file.
        previous_owner: After ``acquire``, the run that held the lock before
            and died without releasing it, if the lock file recorded one.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir).resolve()
        self.owner = LockOwner.this_process()
        self.previous_owner: LockOwner | None = None
        self._descriptor: int | None = None

    @property
    def path(self) -> Path:
        """The lock file."""
        return lock_path(self.output_dir)

    def acquire(self) -> None:
        """Takes the lock without waiting, and records this process in the lock file.

        Raises:
            OutputLockedError: If another run holds the lock.
            RuntimeError: If this object holds it already.
        """
        if self._descriptor is not None:
            raise RuntimeError(f"The lock on {self.output_dir} is already held by this object")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = LockOwner.from_text(_read_text(descriptor))
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OutputLockedError(self.output_dir, holder) from None
            raise
        self._descriptor = descriptor
        self.previous_owner = LockOwner.from_text(_read_text(descriptor))
        if self.previous_owner is not None:
            logger.warning(
                "The previous run on %s (%s) ended abnormally: it was killed or stopped before it "
                "released its lock",
                self.output_dir,
                self.previous_owner.describe(),
            )
        os.ftruncate(descriptor, 0)
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, self.owner.to_text().encode("utf-8"))
        os.fsync(descriptor)
        with _held_locks_guard:
            _held_locks[os.path.realpath(self.output_dir)] = self
        logger.info("Locked %s for this run (%s)", self.output_dir, self.owner.describe())

    def release(self) -> None:
        """Empties the lock file (the mark of a run that ended normally) and releases the lock."""
        if self._descriptor is None:
            return
        with _held_locks_guard:
            _held_locks.pop(os.path.realpath(self.output_dir), None)
        try:
            os.ftruncate(self._descriptor, 0)
        finally:
            os.close(self._descriptor)  # Closing the last descriptor releases the flock.
            self._descriptor = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@contextlib.contextmanager
def hold(output_dir: str | Path) -> Iterator[OutputLock]:
    """Holds the lock on an output directory for a block; re-entrant within one process.

    If this process already holds the lock (a caller up the stack took it),
    the block runs under that lock and leaves it held.

    Args:
        output_dir: The output directory ``OUT``.

    Yields:
        The lock.

    Raises:
        OutputLockedError: If another run holds the lock.
    """
    with _held_locks_guard:
        held = _held_locks.get(os.path.realpath(output_dir))
    if held is not None:
        yield held
        return
    with OutputLock(output_dir) as lock:
        yield lock
