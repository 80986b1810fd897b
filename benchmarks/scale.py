"""The whole pipeline at two corpus sizes, per component, extrapolated to OpenSLR-83 (``make bench-scale``).

Usage::

    python -m benchmarks.scale [--hours 1] [--factor 3] [--work-dir DIR] [--keep-work-dir]

Writes a benchmark corpus of ``--hours`` hours (eSpeak NG speech, 48 kHz WAV,
OpenSLR-83 layout) and one ``--factor`` times as long (the same clips repeated
under new names), runs ``accent-pipeline run`` on each with offline YAMNet
weights and otherwise the pipeline's defaults (``--min-auc 0`` so that every
step, the Pusher included, runs), and prints each component's wall time
(from ML Metadata: its execution's creation to its last update) and the peak
resident memory of the run's process tree while the component ran (sampled
every ``SAMPLE_INTERVAL_SECONDS``), with its growth from the smaller corpus to
the larger. Each component's time is then extrapolated linearly, through the
two sizes, to OpenSLR-83's 31 hours, and the component that dominates there
is named. Not part of CI: with the default sizes it took 7 min 5 s and 7
min 18 s on 2 cores (see README, Benchmarks).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from benchmarks import bench_corpus, child, machine

logger = logging.getLogger(__name__)

# OpenSLR-83's length, in hours of audio.
OPENSLR83_HOURS = 31.0

DEFAULT_HOURS = 1.0
DEFAULT_FACTOR = 3

# Seconds between two samples of the pipeline's process tree.
SAMPLE_INTERVAL_SECONDS = 0.2

# Longest time one pipeline run may take.
RUN_TIMEOUT_SECONDS = 3600.0

_MEGABYTE = 2**20


@dataclasses.dataclass(frozen=True)
class ComponentCost:
    """What one component cost in one run.

    Attributes:
        component_id: The component's id in the pipeline.
        wall_seconds: From its execution's creation to its last update in ML Metadata.
        peak_rss_bytes: Largest sampled RSS of the run's process tree while it ran (0 if no sample fell
            inside it).
    """

    component_id: str
    wall_seconds: float
    peak_rss_bytes: int


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    """One whole-pipeline run on one corpus.

    Attributes:
        audio_hours: Hours of audio in the corpus.
        wall_seconds: The whole command's wall time.
        peak_rss_bytes: Largest sampled RSS of the run's process tree.
        components: Each component's cost, in execution order.
    """

    audio_hours: float
    wall_seconds: float
    peak_rss_bytes: int
    components: tuple[ComponentCost, ...]


def _tree_rss_bytes(pid: int) -> int:
    """Returns the current RSS of a process and all its descendants (0 for those gone)."""
    total = 0
    for process_id in (pid, *child.descendants_of(pid)):
        try:
            with open(f"/proc/{process_id}/status", encoding="utf-8") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def _component_windows(metadata_path: str) -> list[tuple[str, float, float]]:
    """Returns ``(component id, start, end)`` of each execution of the latest run, in epoch seconds."""
    from pipeline import run_summary

    store = run_summary.open_store(metadata_path)
    runs = run_summary.latest_run(store)
    executions = store.get_executions_by_id([component.execution_id for component in runs.values()])
    by_id = {execution.id: execution for execution in executions}
    windows = []
    for component_id, component in runs.items():
        execution = by_id[component.execution_id]
        windows.append(
            (
                component_id,
                execution.create_time_since_epoch / 1000.0,
                execution.last_update_time_since_epoch / 1000.0,
            )
        )
    return sorted(windows, key=lambda window: window[1])


def run_pipeline(corpus: bench_corpus.BenchmarkCorpus, output_dir: str) -> PipelineRun:
    """Runs ``accent-pipeline run`` on a corpus in a subprocess, sampling its memory.

    Args:
        corpus: The corpus.
        output_dir: The run's ``OUT`` (a new directory).

    Returns:
        The run, per component.

    Raises:
        RuntimeError: If the run fails or times out.
    """
    command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "run",
        "--corpus",
        corpus.corpus_dir,
        "--output",
        output_dir,
        "--yamnet",
        "offline",
        "--min-auc",
        "0",
    ]
    log_path = output_dir + ".log"
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            while process.poll() is None:
                samples.append((time.time(), _tree_rss_bytes(process.pid)))
                if time.perf_counter() - started > RUN_TIMEOUT_SECONDS:
                    raise RuntimeError(f"The pipeline run did not finish in {RUN_TIMEOUT_SECONDS:.0f} s")
                time.sleep(SAMPLE_INTERVAL_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    wall_seconds = time.perf_counter() - started
    if process.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log_file:
            tail = log_file.read()[-3000:]
        raise RuntimeError(f"The pipeline run exited with {process.returncode} (log {log_path}):\n{tail}")
    components = []
    for component_id, start, end in _component_windows(os.path.join(output_dir, "metadata.sqlite")):
        inside = [rss for sampled_at, rss in samples if start <= sampled_at <= end]
        components.append(
            ComponentCost(
                component_id=component_id, wall_seconds=end - start, peak_rss_bytes=max(inside, default=0)
            )
        )
    return PipelineRun(
        audio_hours=corpus.audio_seconds / 3600.0,
        wall_seconds=wall_seconds,
        peak_rss_bytes=max((rss for _, rss in samples), default=0),
        components=tuple(components),
    )


def extrapolate(small_value: float, large_value: float, small_hours: float, large_hours: float) -> float:
    """Returns the value at OpenSLR-83's hours on the line through two (hours, value) points.

    Raises:
        ValueError: If the two sizes are equal.
    """
    if large_hours == small_hours:
        raise ValueError("The two corpora have the same length")
    slope = (large_value - small_value) / (large_hours - small_hours)
    return small_value + slope * (OPENSLR83_HOURS - small_hours)


def report_lines(small: PipelineRun, large: PipelineRun) -> list[str]:
    """Formats the per-component table, the totals and the dominant component at 31 hours."""
    large_costs = {cost.component_id: cost for cost in large.components}
    header = [
        "component",
        f"wall s {small.audio_hours:.2f} h",
        f"wall s {large.audio_hours:.2f} h",
        "s per audio h",
        f"wall s {OPENSLR83_HOURS:g} h",
        f"peak MB {small.audio_hours:.2f} h",
        f"peak MB {large.audio_hours:.2f} h",
        "memory growth",
    ]
    rows = []
    extrapolated_seconds: dict[str, float] = {}
    for cost in small.components:
        large_cost = large_costs.get(cost.component_id)
        if large_cost is None:
            continue
        seconds = max(
            0.0,
            extrapolate(cost.wall_seconds, large_cost.wall_seconds, small.audio_hours, large.audio_hours),
        )
        extrapolated_seconds[cost.component_id] = seconds
        extra_hours = large.audio_hours - small.audio_hours
        rows.append(
            [
                cost.component_id,
                f"{cost.wall_seconds:.1f}",
                f"{large_cost.wall_seconds:.1f}",
                f"{(large_cost.wall_seconds - cost.wall_seconds) / extra_hours:.1f}",
                f"{seconds:.0f}",
                f"{cost.peak_rss_bytes / _MEGABYTE:.0f}",
                f"{large_cost.peak_rss_bytes / _MEGABYTE:.0f}",
                f"{large_cost.peak_rss_bytes / cost.peak_rss_bytes:.2f}" if cost.peak_rss_bytes else "-",
            ]
        )
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    table = [
        "  ".join(
            cell.ljust(widths[column]) if column == 0 else cell.rjust(widths[column])
            for column, cell in enumerate(row)
        ).rstrip()
        for row in [header, ["-" * width for width in widths], *rows]
    ]
    total = sum(extrapolated_seconds.values())
    dominant = max(extrapolated_seconds, key=extrapolated_seconds.get)
    return [
        *table,
        f"  whole run: {small.wall_seconds:.0f} s at {small.audio_hours:.2f} h, "
        f"{large.wall_seconds:.0f} s at {large.audio_hours:.2f} h; peak RSS of the process tree "
        f"{small.peak_rss_bytes / _MEGABYTE:.0f} MB and {large.peak_rss_bytes / _MEGABYTE:.0f} MB",
        "  peak MB: the largest sampled RSS of the run's process tree while the component ran; the "
        "components share one process, so it includes what earlier components left allocated. Memory "
        "is not extrapolated: a streaming step's does not grow with the corpus (see memory growth).",
        f"At {OPENSLR83_HOURS:g} h (linear): the components take {total / 60:.0f} min; "
        f"{dominant} dominates with {extrapolated_seconds[dominant] / 60:.0f} min "
        f"({100 * extrapolated_seconds[dominant] / total:.0f}%).",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hours",
        type=float,
        default=DEFAULT_HOURS,
        help=f"hours of audio of the smaller corpus (default {DEFAULT_HOURS:g})",
    )
    parser.add_argument(
        "--factor",
        type=int,
        default=DEFAULT_FACTOR,
        help=f"the larger corpus holds each clip this many times (default {DEFAULT_FACTOR})",
    )
    parser.add_argument("--work-dir", help="directory for the corpora and runs (default: a new temp dir)")
    parser.add_argument(
        "--keep-work-dir", action="store_true", help="keep the work directory (a --work-dir is always kept)"
    )
    args = parser.parse_args(argv)
    if not args.hours > 0:
        parser.error(f"--hours must be positive, got {args.hours}")
    if not 2 <= args.factor < 100:
        parser.error(f"--factor must be in [2, 100), got {args.factor}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs both sizes and prints the report to stdout; returns the exit code."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    before = machine.describe_machine()
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="accent-bench-scale-")
    os.makedirs(work_dir, exist_ok=True)
    try:
        corpus = bench_corpus.write_benchmark_corpus(os.path.join(work_dir, "corpus-1x"), args.hours * 60.0)
        large_corpus = bench_corpus.repeat_corpus(
            corpus, os.path.join(work_dir, f"corpus-{args.factor}x"), args.factor
        )
        runs = []
        for name, each_corpus in (("1x", corpus), (f"{args.factor}x", large_corpus)):
            logger.info(
                "Running the whole pipeline on the %s corpus (%d clips, %.2f h)",
                name,
                each_corpus.num_clips,
                each_corpus.audio_seconds / 3600.0,
            )
            runs.append(run_pipeline(each_corpus, os.path.join(work_dir, f"run-{name}")))
            logger.info("The %s run took %.0f s", name, runs[-1].wall_seconds)
    except RuntimeError as error:
        logger.error("%s", error)
        return 1
    finally:
        if args.keep_work_dir or args.work_dir:
            logger.info("Work directory kept: %s", work_dir)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    lines = [
        f"Machine: {machine.format_machine(before)}",
        f"Load average at the end: {machine.format_load(machine.load_average())}",
        "",
        "Whole pipeline (accent-pipeline run, offline YAMNet, default settings, --min-auc 0) per component:",
        *report_lines(*runs),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
