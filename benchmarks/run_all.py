"""Runs every benchmark and prints the tables (``make bench``).

Usage::

    python -m benchmarks.run_all [--minutes 60] [--rounds 3] [--requests 120] [--work-dir DIR]
        [--keep-work-dir] [--no-startup-run]

``--minutes`` (or ``ACCENT_BENCH_MINUTES``) sets the least length of the
generated corpus; the default, an hour, keeps Beam's fixed start-up (about ten
seconds) from dominating a measurement meant for the 31 hours of OpenSLR-83.
``--rounds`` (or ``ACCENT_BENCH_ROUNDS``) sets how many times the three
embedding approaches run, interleaved (reference, ours, limit, then again), so
that a slow spell of a shared machine hits all three alike; each table row is
the approach's median run by wall time, and the final line compares medians.
``--requests`` (or ``ACCENT_BENCH_REQUESTS``) sets the timed requests of each
serving configuration. Every step runs in its own spawned child process (see
``benchmarks/child.py`` for what the memory figures count), one after the
other; this process only orchestrates and prints. Progress goes to stderr; the
tables go to stdout, whose last line is::

    embedding_speedup_vs_reference=R limit_fraction=F

with R = ours / reference and F = ours / limit (end-to-end throughputs, audio
seconds per wall second).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from benchmarks import bench_corpus, child, embedding_throughput, machine, serving_latency

logger = logging.getLogger(__name__)

# Default corpus length, in minutes of 48 kHz audio, and timed requests per serving configuration.
DEFAULT_MINUTES = 60.0
DEFAULT_REQUESTS = serving_latency.DEFAULT_REQUESTS_PER_CELL
DEFAULT_ROUNDS = 3
MINUTES_ENVIRONMENT_VARIABLE = "ACCENT_BENCH_MINUTES"
ROUNDS_ENVIRONMENT_VARIABLE = "ACCENT_BENCH_ROUNDS"
REQUESTS_ENVIRONMENT_VARIABLE = "ACCENT_BENCH_REQUESTS"

# Longest time any one step may take.
DEFAULT_STEP_TIMEOUT_SECONDS = 1800.0

FINAL_LINE_FORMAT = "embedding_speedup_vs_reference={speedup:.2f} limit_fraction={fraction:.2f}"

_MEGABYTE = 2**20


def prepare_models(model_base_path: str) -> tuple[str, float]:
    """Resolves the offline YAMNet and exports the served model under ``model_base_path`` (runs in a child).

    Args:
        model_base_path: TF Serving base path for the served model.

    Returns:
        The YAMNet SavedModel directory and the seconds the served model's export took.
    """
    child.configure_step_logging()
    from components.yamnet import handle, weights

    yamnet_dir = str(handle.resolve_yamnet_handle(weights.OFFLINE_WEIGHTS))
    started = time.perf_counter()
    serving_latency.export_served_model(yamnet_dir, model_base_path)
    return yamnet_dir, time.perf_counter() - started


def _environment_default(name: str, default: float, kind: type) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not a valid {kind.__name__}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line (defaults from the environment, see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes",
        type=float,
        default=_environment_default(MINUTES_ENVIRONMENT_VARIABLE, DEFAULT_MINUTES, float),
        help=f"least minutes of 48 kHz audio in the corpus (default {DEFAULT_MINUTES:g}, "
        f"or ${MINUTES_ENVIRONMENT_VARIABLE})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=int(_environment_default(ROUNDS_ENVIRONMENT_VARIABLE, DEFAULT_ROUNDS, int)),
        help=f"interleaved runs of each embedding approach; the median is reported (default "
        f"{DEFAULT_ROUNDS}, or ${ROUNDS_ENVIRONMENT_VARIABLE})",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=int(_environment_default(REQUESTS_ENVIRONMENT_VARIABLE, DEFAULT_REQUESTS, int)),
        help=f"timed Predict requests per (clip length, clients) (default {DEFAULT_REQUESTS}, "
        f"or ${REQUESTS_ENVIRONMENT_VARIABLE})",
    )
    parser.add_argument(
        "--work-dir", help="directory for the corpus, outputs and model (default: a new temp dir)"
    )
    parser.add_argument(
        "--keep-work-dir", action="store_true", help="keep the work directory (a --work-dir is always kept)"
    )
    parser.add_argument(
        "--no-startup-run",
        action="store_true",
        help="skip the 1-clip run of the Beam job that measures its fixed start-up",
    )
    parser.add_argument(
        "--step-timeout",
        type=float,
        default=DEFAULT_STEP_TIMEOUT_SECONDS,
        help="longest seconds any one step may take",
    )
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    if args.requests < 1:
        parser.error(f"--requests must be positive, got {args.requests}")
    if args.rounds < 1:
        parser.error(f"--rounds must be positive, got {args.rounds}")
    return args


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / _MEGABYTE:.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Formats a plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[column])) for row in [header, *rows]) for column in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(widths[column]) if column == 0 else str(cell).rjust(widths[column])
            for column, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return [line(header), line(["-" * width for width in widths]), *(line(row) for row in rows)]


def throughput_table(
    outcomes: Sequence[tuple[str, child.ChildOutcome[embedding_throughput.ThroughputRun]]],
) -> list[str]:
    """Formats the embedding throughput table, one row per (label, outcome)."""
    header = [
        "approach",
        "clips",
        "audio s",
        "embeddings",
        "wall s",
        "audio s / wall s",
        "CPU s",
        "processes",
        "peak RSS MB",
        "largest process MB",
    ]
    rows = []
    for label, outcome in outcomes:
        run = outcome.value
        largest = max(
            [outcome.peak_rss_self_bytes, *(process.peak_rss_bytes for process in outcome.descendants)]
        )
        rows.append(
            [
                label,
                str(run.num_clips),
                f"{run.audio_seconds:.1f}",
                str(run.num_embeddings),
                f"{run.wall_seconds:.2f}",
                f"{run.throughput:.1f}",
                f"{outcome.cpu_seconds:.1f}",
                str(outcome.num_processes),
                _megabytes(outcome.total_peak_rss_bytes),
                _megabytes(largest),
            ]
        )
    return _table(header, rows)


def latency_table(result: serving_latency.ServingResult) -> list[str]:
    """Formats the serving latency table, one row per (clip length, clients)."""
    header = ["clip s", "clients", "requests", "p50 ms", "p99 ms", "max ms", "requests / s"]
    rows = [
        [
            f"{cell.clip_seconds:g}",
            str(cell.clients),
            str(cell.num_requests),
            f"{cell.percentile_ms(50):.1f}",
            f"{cell.percentile_ms(99):.1f}",
            f"{max(cell.latencies_ms):.1f}",
            f"{cell.requests_per_second:.1f}",
        ]
        for cell in result.cells
    ]
    return _table(header, rows)


def median_run(
    outcomes: Sequence[child.ChildOutcome[embedding_throughput.ThroughputRun]],
) -> child.ChildOutcome[embedding_throughput.ThroughputRun]:
    """Returns the run with the median wall time (the lower middle one of an even number).

    Raises:
        ValueError: If there is no run.
    """
    if not outcomes:
        raise ValueError("No runs to choose from")
    ordered = sorted(outcomes, key=lambda outcome: outcome.value.wall_seconds)
    return ordered[(len(ordered) - 1) // 2]


def final_line(ours: float, reference: float, limit: float) -> str:
    """Returns the last line: ours / reference and ours / limit throughputs, two decimals."""
    return FINAL_LINE_FORMAT.format(speedup=ours / reference, fraction=ours / limit)


@dataclasses.dataclass(frozen=True)
class BenchmarkResults:
    """Everything one ``run_all`` measured.

    Attributes:
        machine_before: The machine, with its load average when the run started.
        load_after: Load averages when the run ended.
        corpus: The generated corpus.
        beam_args: Beam arguments of ``ours``.
        reference: The keras-io tf.data run with the median wall time.
        ours: The Beam embedding job on the whole corpus, the run with the median wall time.
        startup: The Beam embedding job on one clip (its fixed start-up), unless skipped.
        limit: YAMNet's network alone, the run with the median wall time.
        round_walls: Wall seconds of every round, per approach (``reference``, ``ours``, ``limit``).
        export_seconds: Time the served model's export took.
        serving: The serving latencies.
    """

    machine_before: machine.MachineInfo
    load_after: tuple[float, float, float]
    corpus: bench_corpus.BenchmarkCorpus
    beam_args: tuple[str, ...]
    reference: child.ChildOutcome[embedding_throughput.ThroughputRun]
    ours: child.ChildOutcome[embedding_throughput.ThroughputRun]
    startup: child.ChildOutcome[embedding_throughput.ThroughputRun] | None
    limit: child.ChildOutcome[embedding_throughput.ThroughputRun]
    round_walls: dict[str, list[float]]
    export_seconds: float
    serving: child.ChildOutcome[serving_latency.ServingResult]


def run(args: argparse.Namespace) -> BenchmarkResults:
    """Runs every benchmark, each step in its own child process, one after the other.

    Args:
        args: The parsed command line.

    Returns:
        The measurements.

    Raises:
        child.BenchmarkStepError: If a step fails or times out.
    """
    from pipeline import configs

    before = machine.describe_machine()
    logger.info("Machine: %s", machine.format_machine(before))
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="accent-bench-")
    os.makedirs(work_dir, exist_ok=True)
    timeout = args.step_timeout
    beam_args = tuple(configs.LOCAL_BEAM_PIPELINE_ARGS)
    try:
        corpus = bench_corpus.write_benchmark_corpus(os.path.join(work_dir, "corpus"), args.minutes)
        logger.info("Corpus: %d clips, %.1f s of audio", corpus.num_clips, corpus.audio_seconds)
        logger.info("Resolving the offline YAMNet and exporting the served model (classifier + YAMNet)")
        model_base_path = os.path.join(work_dir, "served-model")
        yamnet_dir, export_seconds = child.run_in_child(
            prepare_models, model_base_path, timeout_seconds=timeout
        ).value
        logger.info("YAMNet (offline weights): %s", yamnet_dir)

        startup = None
        if not args.no_startup_run:
            logger.info("Embedding: ours on one clip (Beam's fixed start-up)")
            startup = child.run_in_child(
                embedding_throughput.run_ours,
                corpus.corpus_dir,
                yamnet_dir,
                os.path.join(work_dir, "ours-one-clip"),
                beam_args,
                max_clips=1,
                timeout_seconds=timeout,
            )
        runs: dict[str, list[child.ChildOutcome[embedding_throughput.ThroughputRun]]] = {
            embedding_throughput.REFERENCE: [],
            embedding_throughput.OURS: [],
            embedding_throughput.LIMIT: [],
        }
        for round_index in range(args.rounds):
            logger.info(
                "Embedding round %d of %d: reference (keras-io tf.data)", round_index + 1, args.rounds
            )
            runs[embedding_throughput.REFERENCE].append(
                child.run_in_child(
                    embedding_throughput.run_reference,
                    corpus.corpus_dir,
                    yamnet_dir,
                    corpus.audio_seconds,
                    timeout_seconds=timeout,
                )
            )
            logger.info(
                "Embedding round %d of %d: ours (Beam embedding job, %s)",
                round_index + 1,
                args.rounds,
                " ".join(beam_args),
            )
            runs[embedding_throughput.OURS].append(
                child.run_in_child(
                    embedding_throughput.run_ours,
                    corpus.corpus_dir,
                    yamnet_dir,
                    os.path.join(work_dir, "ours", f"round-{round_index + 1}"),
                    beam_args,
                    timeout_seconds=timeout,
                )
            )
            logger.info(
                "Embedding round %d of %d: limit (YAMNet network alone)", round_index + 1, args.rounds
            )
            runs[embedding_throughput.LIMIT].append(
                child.run_in_child(
                    embedding_throughput.run_limit,
                    corpus.corpus_dir,
                    yamnet_dir,
                    corpus.audio_seconds,
                    configs.PipelineSettings().embedding_batch_patches,
                    timeout_seconds=timeout,
                )
            )
        logger.info("Serving: measuring Predict latency")
        serving = child.run_in_child(
            serving_latency.measure_serving_latency,
            model_base_path,
            corpus.corpus_dir,
            requests_per_cell=args.requests,
            timeout_seconds=timeout,
        )
    finally:
        if args.keep_work_dir or args.work_dir:
            logger.info("Work directory kept: %s", work_dir)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return BenchmarkResults(
        machine_before=before,
        load_after=machine.load_average(),
        corpus=corpus,
        beam_args=beam_args,
        reference=median_run(runs[embedding_throughput.REFERENCE]),
        ours=median_run(runs[embedding_throughput.OURS]),
        startup=startup,
        limit=median_run(runs[embedding_throughput.LIMIT]),
        round_walls={
            approach: [outcome.value.wall_seconds for outcome in outcomes]
            for approach, outcomes in runs.items()
        },
        export_seconds=export_seconds,
        serving=serving,
    )


def report_lines(results: BenchmarkResults) -> list[str]:
    """Formats the report: machine, throughput table, latency table; the last line is ``final_line``.

    Args:
        results: What ``run`` measured.

    Returns:
        The lines, without line ends.
    """
    reference, ours, limit, startup = results.reference, results.ours, results.limit, results.startup
    corpus = results.corpus
    rows = [("reference (keras-io tf.data)", reference), ("ours (Beam embedding job)", ours)]
    if startup is not None:
        rows.append(("  ours on 1 clip (start-up)", startup))
    rows.append(("limit (YAMNet network only)", limit))
    lines = [
        f"Machine: {machine.format_machine(results.machine_before)}",
        f"Load average at the end: {machine.format_load(results.load_after)}",
        "",
        f"Embedding throughput: {corpus.num_clips} clips, {corpus.audio_seconds:.1f} s of "
        f"{corpus.sample_rate} Hz 16-bit mono WAV (eSpeak NG, OpenSLR-83 layout), offline YAMNet weights",
        *throughput_table(rows),
        f"  rounds: {len(results.round_walls[embedding_throughput.OURS])}, interleaved; each row is the "
        "approach's median run. Wall s per round: "
        + "; ".join(
            f"{approach} " + " ".join(f"{seconds:.2f}" for seconds in walls)
            for approach, walls in results.round_walls.items()
        ),
        f"  ours: {' '.join(results.beam_args)}; wall s runs from read_corpus to the written TFRecords, "
        "Beam's worker start-up included.",
        "  peak RSS MB: each process's own peak RSS, summed over the step's process and all its descendants "
        "(an upper bound of the joint peak). Sampled joint peak MB: "
        + ", ".join(
            f"{name} {_megabytes(outcome.peak_tree_rss_bytes)}"
            for name, outcome in (("reference", reference), ("ours", ours), ("limit", limit))
        )
        + f"; ours' RUSAGE_CHILDREN maxrss (largest worker) {_megabytes(ours.peak_rss_children_bytes)}.",
        "  limit: log-mel patches are computed before the timed part, and its RSS includes them.",
    ]
    if startup is not None:
        marginal_seconds = ours.value.wall_seconds - startup.value.wall_seconds
        marginal_audio = ours.value.audio_seconds - startup.value.audio_seconds
        if marginal_seconds > 0 and marginal_audio > 0:
            marginal = marginal_audio / marginal_seconds
            lines.append(
                f"  ours without its fixed start-up ({startup.value.wall_seconds:.1f} s, the 1-clip run): "
                f"{marginal:.1f} audio s / wall s = {marginal / reference.value.throughput:.2f} x reference, "
                f"{marginal / limit.value.throughput:.2f} of the limit (estimate for long corpora)"
            )
    lines += [
        "",
        "Serving latency: Predict (serving_default) over gRPC to the local server on 127.0.0.1; "
        "project classifier (untrained weights) + offline YAMNet",
        *latency_table(results.serving.value),
        f"  server: model loaded in {results.serving.value.model_load_seconds:.1f} s, peak RSS "
        f"{_megabytes(results.serving.value.server_peak_rss_bytes)} MB; "
        f"export took {results.export_seconds:.1f} s",
        "",
        final_line(ours.value.throughput, reference.value.throughput, limit.value.throughput),
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmarks and prints the report to stdout; returns the exit code."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        lines = report_lines(run(args))
    except child.BenchmarkStepError as error:
        logger.error("%s", error)
        return 1
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
