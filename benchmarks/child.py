"""Runs one benchmark step in a freshly spawned process and measures its memory and CPU time.

Each approach runs in its own child process (``multiprocessing`` with the
``spawn`` start method, so the child starts clean, imports only what the step
needs and shares no memory with the parent). What is counted:

* ``peak_rss_self_bytes``: the child's own peak resident set size
  (``VmHWM`` in ``/proc/self/status``, read by the child when the step ends);
* ``peak_rss_children_bytes``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in the
  child, i.e. the peak RSS of its *largest* descendant that it waited for (the
  Beam SDK worker processes, for example);
* ``descendants``: every descendant process (children, grandchildren, ...) the
  parent saw while sampling the child's process tree every ``sample_interval``
  seconds, each with its own peak RSS (``VmHWM`` in ``/proc/<pid>/status``,
  last value seen before it exited);
* ``peak_tree_rss_bytes``: the largest sampled *simultaneous* RSS sum over the
  child and its descendants (a lower bound of the true simultaneous peak);
* ``total_peak_rss_bytes``: the child's own peak plus each descendant's own
  peak, an upper bound of the simultaneous peak (pages of shared libraries are
  counted once per process).

Sampling happens in the parent, so the measured process pays nothing for it.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

ResultType = TypeVar("ResultType")

# Seconds between two samples of the child's process tree.
DEFAULT_SAMPLE_INTERVAL_SECONDS = 0.1

# Seconds a child is given to exit after it has sent its result.
_EXIT_GRACE_SECONDS = 30.0

_PROC = Path("/proc")


class BenchmarkStepError(RuntimeError):
    """A benchmark step failed, timed out or died in its child process."""


@dataclasses.dataclass(frozen=True)
class ProcessPeak:
    """The peak memory of one descendant process.

    Attributes:
        pid: Its process id.
        name: Its command name (``/proc/<pid>/comm``).
        peak_rss_bytes: Its own peak resident set size, as last sampled.
    """

    pid: int
    name: str
    peak_rss_bytes: int


@dataclasses.dataclass(frozen=True)
class ChildOutcome(Generic[ResultType]):
    """What a step returned and what it cost (see the module docstring for what is counted).

    Attributes:
        value: The step's return value.
        peak_rss_self_bytes: The child's own peak RSS.
        peak_rss_children_bytes: Peak RSS of the child's largest waited-for descendant (0 if none).
        descendants: Each descendant seen while sampling, with its own peak RSS.
        peak_tree_rss_bytes: Largest sampled simultaneous RSS of the child and its descendants.
        cpu_seconds: User plus system CPU time of the child and its waited-for descendants.
        wall_seconds: Wall time from starting the child to receiving its result.
    """

    value: ResultType
    peak_rss_self_bytes: int
    peak_rss_children_bytes: int
    descendants: tuple[ProcessPeak, ...]
    peak_tree_rss_bytes: int
    cpu_seconds: float
    wall_seconds: float

    @property
    def total_peak_rss_bytes(self) -> int:
        """The child's own peak plus each descendant's own peak (an upper bound of the joint peak)."""
        return self.peak_rss_self_bytes + sum(process.peak_rss_bytes for process in self.descendants)

    @property
    def num_processes(self) -> int:
        """The child plus the descendants seen while sampling."""
        return 1 + len(self.descendants)


def configure_step_logging() -> None:
    """Keeps a child's stderr readable: warnings only, but the benchmarks' own progress at INFO.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless set) before TensorFlow is imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam", "components", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("benchmarks").setLevel(logging.INFO)


def _read_status_kilobytes(pid: int, field: str) -> int | None:
    """Returns a ``kB`` field of ``/proc/<pid>/status`` in bytes, or None if the process is gone."""
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def _read_name(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def _children_of(pid: int) -> list[int]:
    """Returns the direct children of a process (every thread's ``children`` file)."""
    children: list[int] = []
    try:
        task_dirs = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return children
    for task_dir in task_dirs:
        try:
            children.extend(int(child) for child in (task_dir / "children").read_text().split())
        except OSError:
            continue
    return children


def descendants_of(pid: int) -> list[int]:
    """Returns every living descendant of a process, parents before their children.

    Args:
        pid: The root process.

    Returns:
        Process ids of its children, grandchildren and so on.
    """
    found: list[int] = []
    pending = _children_of(pid)
    while pending:
        child = pending.pop(0)
        if child in found:
            continue
        found.append(child)
        pending.extend(_children_of(child))
    return found


class _TreeSampler:
    """Keeps, for a process tree, each descendant's latest peak RSS and the largest simultaneous RSS."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.peaks: dict[int, ProcessPeak] = {}
        self.peak_tree_rss_bytes = 0

    def sample(self) -> None:
        tree_rss = _read_status_kilobytes(self.root_pid, "VmRSS") or 0
        for pid in descendants_of(self.root_pid):
            peak = _read_status_kilobytes(pid, "VmHWM")
            current = _read_status_kilobytes(pid, "VmRSS")
            if peak is None or current is None:
                continue
            tree_rss += current
            known = self.peaks.get(pid)
            name = known.name if known is not None else _read_name(pid)
            self.peaks[pid] = ProcessPeak(pid=pid, name=name, peak_rss_bytes=peak)
        self.peak_tree_rss_bytes = max(self.peak_tree_rss_bytes, tree_rss)


def _child_main(
    connection: Connection,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Runs the step in the child and sends ``("ok", value, usage...)`` or ``("error", traceback)``."""
    try:
        value = function(*args, **kwargs)
    except BaseException:
        connection.send(("error", traceback.format_exc()))
        connection.close()
        return
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    # The process's own high-water mark: ru_maxrss would also count the parent's pages at fork time,
    # since Linux carries the old address space's peak across the fork and exec of a spawned child.
    own_peak_bytes = _read_status_kilobytes(os.getpid(), "VmHWM") or own.ru_maxrss * 1024
    # ru_maxrss is in kilobytes on Linux.
    connection.send(("ok", value, own_peak_bytes, children.ru_maxrss * 1024, cpu_seconds))
    connection.close()


def _kill_tree(pids: list[int]) -> None:
    """Kills processes this benchmark started, by pid, children first."""
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def run_in_child(
    function: Callable[..., ResultType],
    *args: Any,
    timeout_seconds: float,
    sample_interval_seconds: float = DEFAULT_SAMPLE_INTERVAL_SECONDS,
    **kwargs: Any,
) -> ChildOutcome[ResultType]:
    """Runs ``function(*args, **kwargs)`` in a spawned process and measures it.

    Args:
        function: A module-level function (it is pickled by reference); its
            return value must be picklable.
        *args: Its positional arguments (picklable).
        timeout_seconds: Longest time the step may take; the child and its
            descendants are then killed.
        sample_interval_seconds: Seconds between two samples of the process tree.
        **kwargs: Its keyword arguments (picklable).

    Returns:
        The return value with the memory and CPU figures.

    Raises:
        BenchmarkStepError: If the step raised (the message carries the child's
            traceback), timed out, or the child died without answering.
        ValueError: If ``timeout_seconds`` or ``sample_interval_seconds`` is not positive.
    """
    if timeout_seconds <= 0 or sample_interval_seconds <= 0:
        raise ValueError(
            f"timeout_seconds and sample_interval_seconds must be positive, "
            f"got {timeout_seconds} and {sample_interval_seconds}"
        )
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main,
        args=(sender, function, args, kwargs),
        name=f"bench-{getattr(function, '__name__', 'step')}",
    )
    started = time.perf_counter()
    process.start()
    sender.close()
    sampler = _TreeSampler(process.pid)
    message = None
    try:
        while message is None:
            sampler.sample()
            if receiver.poll(sample_interval_seconds):
                try:
                    message = receiver.recv()
                except EOFError:
                    raise BenchmarkStepError(
                        f"{process.name} died without a result (exit code {process.exitcode})"
                    ) from None
            elif not process.is_alive() and not receiver.poll(0):
                raise BenchmarkStepError(
                    f"{process.name} died without a result (exit code {process.exitcode})"
                )
            elif time.perf_counter() - started > timeout_seconds:
                raise BenchmarkStepError(f"{process.name} did not finish within {timeout_seconds:.0f} s")
    except BaseException:
        _kill_tree([process.pid, *descendants_of(process.pid)])
        process.join(_EXIT_GRACE_SECONDS)
        raise
    wall_seconds = time.perf_counter() - started
    process.join(_EXIT_GRACE_SECONDS)
    if process.is_alive():
        logger.warning("%s is still running after sending its result; killing it", process.name)
        _kill_tree([process.pid, *descendants_of(process.pid)])
        process.join(_EXIT_GRACE_SECONDS)
    if message[0] == "error":
        raise BenchmarkStepError(f"{process.name} failed:\n{message[1]}")
    _, value, peak_self, peak_children, cpu_seconds = message
    return ChildOutcome(
        value=value,
        peak_rss_self_bytes=int(peak_self),
        peak_rss_children_bytes=int(peak_children),
        descendants=tuple(sampler.peaks[pid] for pid in sorted(sampler.peaks)),
        peak_tree_rss_bytes=max(sampler.peak_tree_rss_bytes, int(peak_self)),
        cpu_seconds=float(cpu_seconds),
        wall_seconds=wall_seconds,
    )
