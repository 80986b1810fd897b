"""A description of the machine a benchmark ran on: cores, CPU model, memory and load."""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class MachineInfo:
    """The machine and how busy it was.

    Attributes:
        cpu_count: Logical CPUs of the machine.
        usable_cores: Logical CPUs this process may run on.
        cpu_model: ``model name`` from ``/proc/cpuinfo``.
        memory_bytes: ``MemTotal`` from ``/proc/meminfo``.
        load_average: 1, 5 and 15 minute load averages.
        python_version: The interpreter's version.
    """

    cpu_count: int
    usable_cores: int
    cpu_model: str
    memory_bytes: int
    load_average: tuple[float, float, float]
    python_version: str


def _cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> tuple[float, float, float]:
    """Returns the 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen)


def describe_machine() -> MachineInfo:
    """Describes this machine now."""
    return MachineInfo(
        cpu_count=os.cpu_count() or 1,
        usable_cores=len(os.sched_getaffinity(0)),
        cpu_model=_cpu_model(),
        memory_bytes=_memory_bytes(),
        load_average=load_average(),
        python_version=platform.python_version(),
    )


def format_load(load: tuple[float, float, float]) -> str:
    """Formats load averages as ``1.23 0.98 0.75``."""
    return " ".join(f"{value:.2f}" for value in load)


def format_machine(info: MachineInfo) -> str:
    """Formats a machine description on one line."""
    return (
        f"{info.usable_cores} usable of {info.cpu_count} logical CPUs ({info.cpu_model}), "
        f"{info.memory_bytes / 2**30:.1f} GiB RAM, Python {info.python_version}, "
        f"load average {format_load(info.load_average)}"
    )
