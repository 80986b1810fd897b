"""Runs every benchmark and prints the tables (``make bench``).

Usage::

    python -m benchmarks.run_all [--minutes 60] [--scale 4] [--rounds 3] [--requests 120]
        [--trainer-epochs 5] [--work-dir DIR] [--keep-work-dir] [--no-startup-run]

``--minutes`` (or ``ACCENT_BENCH_MINUTES``) sets the least length of the
generated corpus (1x); ``--scale`` the size of the second corpus, the same
clips repeated under new names (4x by default). Each embedding approach runs
on both, so that the fixed cost and the marginal rate (audio seconds per wall
second between the two sizes) of each are measured in the same run.
``--rounds`` (or ``ACCENT_BENCH_ROUNDS``) sets how many times the three
embedding approaches run, interleaved (reference, ours, limit at 1x, then at
4x, then again), so that a slow spell of a shared machine hits all of them
alike; each table row is the approach's median run by wall time, and the final
line compares medians. ``--requests`` (or ``ACCENT_BENCH_REQUESTS``) sets the
timed requests of each serving configuration. The Trainer's input pipeline is
timed on the examples of ours at the larger size. Every step runs in its own
spawned child process (see ``benchmarks/child.py`` for what the memory
figures count), one after the other; this process only orchestrates and
prints. Progress goes to stderr; the tables go to stdout, whose last line is::

    embedding_speedup_vs_reference=R limit_fraction=F marginal_speedup=RM marginal_limit_fraction=FM \
    memory_growth=G serving_limit_fraction_8=S trainer_limit_fraction=T

(one line, split here for width), with R = ours / reference and F = ours /
limit (end-to-end throughputs on the 1x corpus, audio seconds per wall
second); RM and FM the same ratios of the marginal rates; G = the median
over the rounds of ours' joint peak RSS at the larger size / the same at 1x;
S = the served patches per second with
8 clients on 5 s clips / the served model's own limit
(``serving_latency.ServingResult.serving_limit_fraction_8``); T = the
Trainer's examples per second through its input pipeline / with the examples
in memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence

from benchmarks import (
    bench_corpus,
    child,
    embedding_throughput,
    machine,
    serving_latency,
    trainer_throughput,
)

logger = logging.getLogger(__name__)

# Default corpus length, in minutes of 48 kHz audio, and timed requests per serving configuration.
DEFAULT_MINUTES = 60.0
DEFAULT_REQUESTS = serving_latency.DEFAULT_REQUESTS_PER_CELL
DEFAULT_ROUNDS = 3
DEFAULT_SCALE = 4
DEFAULT_TRAINER_EPOCHS = 5
MINUTES_ENVIRONMENT_VARIABLE = "ACCENT_BENCH_MINUTES"
ROUNDS_ENVIRONMENT_VARIABLE = "ACCENT_BENCH_ROUNDS"
REQUESTS_ENVIRONMENT_VARIABLE = "ACCENT_BENCH_REQUESTS"

# Longest time any one step may take.
DEFAULT_STEP_TIMEOUT_SECONDS = 1800.0

FINAL_LINE_FORMAT = (
    "embedding_speedup_vs_reference={speedup:.2f} limit_fraction={fraction:.2f} "
    "marginal_speedup={marginal_speedup:.2f} marginal_limit_fraction={marginal_fraction:.2f} "
    "memory_growth={memory_growth:.2f} serving_limit_fraction_8={serving_fraction:.2f} "
    "trainer_limit_fraction={trainer_fraction:.2f}"
)


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
        "--scale",
        type=int,
        default=DEFAULT_SCALE,
        help=f"the larger corpus holds each clip this many times (default {DEFAULT_SCALE})",
    )
    parser.add_argument(
        "--trainer-epochs",
        type=int,
        default=DEFAULT_TRAINER_EPOCHS,
        help=f"timed epochs of each Trainer measurement (default {DEFAULT_TRAINER_EPOCHS})",
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
    if not 2 <= args.scale < 100:
        parser.error(f"--scale must be in [2, 100), got {args.scale}")
    if args.trainer_epochs < 1:
        parser.error(f"--trainer-epochs must be positive, got {args.trainer_epochs}")
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
    header = [
        "clip s",
        "clients",
        "requests",
        "p50 ms",
        "p99 ms",
        "max ms",
        "requests / s",
    ]
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


@dataclasses.dataclass(frozen=True)
class ScaledRuns:
    """One approach's median runs at both corpus sizes, and what their difference says.

    The wall time is modelled as ``fixed_seconds + audio_seconds / marginal_rate``
    through the two points.

    Memory is taken from every round, not from the median-wall run: a run's peak RSS moves by
    hundreds of MB from one run to the next at the same size (native memory: TensorFlow's
    allocator, the threads' malloc arenas), independently of its wall time.

    Attributes:
        small: The median run on the 1x corpus.
        large: The median run on the larger corpus.
        small_peaks_bytes: The joint peak RSS of every round on the 1x corpus; empty to use ``small``'s.
        large_peaks_bytes: The same on the larger corpus; empty to use ``large``'s.
    """

    small: child.ChildOutcome[embedding_throughput.ThroughputRun]
    large: child.ChildOutcome[embedding_throughput.ThroughputRun]
    small_peaks_bytes: tuple[int, ...] = ()
    large_peaks_bytes: tuple[int, ...] = ()

    @property
    def small_peak_bytes(self) -> float:
        """The median over the rounds of the joint peak RSS on the 1x corpus."""
        return statistics.median(self.small_peaks_bytes or (self.small.peak_tree_rss_bytes,))

    @property
    def large_peak_bytes(self) -> float:
        """The median over the rounds of the joint peak RSS on the larger corpus."""
        return statistics.median(self.large_peaks_bytes or (self.large.peak_tree_rss_bytes,))

    @property
    def marginal_rate(self) -> float:
        """Audio seconds per wall second between the two sizes; NaN if the larger run was not slower."""
        return marginal_rate(self.small.value, self.large.value)

    @property
    def fixed_seconds(self) -> float:
        """The wall time the line through both runs gives for no audio (the fixed cost)."""
        rate = self.marginal_rate
        if math.isnan(rate):
            return math.nan
        return self.small.value.wall_seconds - self.small.value.audio_seconds / rate

    @property
    def memory_growth(self) -> float:
        """Median joint peak RSS of the step's process tree at the larger size over that at 1x.

        The joint peak (``ChildOutcome.peak_tree_rss_bytes``: the child's own peak, or the largest
        sampled sum over it and its descendants) is what the machine must hold; the sum of each
        process's own peak would count a short-lived helper process as if it lived throughout.
        """
        return self.large_peak_bytes / self.small_peak_bytes


def marginal_rate(
    small: embedding_throughput.ThroughputRun, large: embedding_throughput.ThroughputRun
) -> float:
    """Returns the extra audio seconds over the extra wall seconds from ``small`` to ``large``.

    Args:
        small: A run on the smaller corpus.
        large: A run on the larger corpus.

    Returns:
        The marginal rate; NaN when the larger run took no longer (noise swamped the difference).

    Raises:
        ValueError: If ``large`` holds no more audio than ``small``.
    """
    extra_audio = large.audio_seconds - small.audio_seconds
    if not extra_audio > 0:
        raise ValueError(f"The larger run has {extra_audio:.1f} s more audio; it must have more")
    extra_wall = large.wall_seconds - small.wall_seconds
    return extra_audio / extra_wall if extra_wall > 0 else math.nan


def network_patches_per_second(limit: embedding_throughput.ThroughputRun) -> float:
    """Patches per wall second of YAMNet's network alone (the ``limit`` approach)."""
    return limit.num_embeddings / limit.wall_seconds


@dataclasses.dataclass(frozen=True)
class FinalFigures:
    """The figures of the final line (see the module docstring)."""

    speedup: float
    fraction: float
    marginal_speedup: float
    marginal_fraction: float
    memory_growth: float
    serving_fraction: float
    trainer_fraction: float


def final_line(figures: FinalFigures) -> str:
    """Returns the last line of the report, each figure with two decimals."""
    return FINAL_LINE_FORMAT.format(**dataclasses.asdict(figures))


@dataclasses.dataclass(frozen=True)
class BenchmarkResults:
    """Everything one ``run_all`` measured.

    Attributes:
        machine_before: The machine, with its load average when the run started.
        load_after: Load averages when the run ended.
        corpus: The generated corpus (1x).
        large_corpus: The same clips repeated ``scale`` times under new names.
        scale: How many times the larger corpus holds each clip.
        beam_args: Beam arguments of ``ours``.
        embedding: Per approach (``reference``, ``ours``, ``limit``), its median runs at both sizes.
        startup: The Beam embedding job on one clip (its fixed start-up), unless skipped.
        round_walls: Wall seconds of every round, per approach and size (``1`` or ``scale``).
        export_seconds: Time the served model's export took.
        trainer: The Trainer's input pipeline against in-memory examples.
        serving: The serving latencies.
    """

    machine_before: machine.MachineInfo
    load_after: tuple[float, float, float]
    corpus: bench_corpus.BenchmarkCorpus
    large_corpus: bench_corpus.BenchmarkCorpus
    scale: int
    beam_args: tuple[str, ...]
    embedding: dict[str, ScaledRuns]
    startup: child.ChildOutcome[embedding_throughput.ThroughputRun] | None
    round_walls: dict[tuple[str, int], list[float]]
    export_seconds: float
    trainer: child.ChildOutcome[trainer_throughput.TrainerRun]
    serving: child.ChildOutcome[serving_latency.ServingResult]

    @property
    def reference(self) -> child.ChildOutcome[embedding_throughput.ThroughputRun]:
        """The reference's median run at 1x."""
        return self.embedding[embedding_throughput.REFERENCE].small

    @property
    def ours(self) -> child.ChildOutcome[embedding_throughput.ThroughputRun]:
        """Ours' median run at 1x."""
        return self.embedding[embedding_throughput.OURS].small

    @property
    def limit(self) -> child.ChildOutcome[embedding_throughput.ThroughputRun]:
        """The limit's median run at 1x."""
        return self.embedding[embedding_throughput.LIMIT].small

    def final_figures(self) -> FinalFigures:
        """The figures of the final line."""
        reference, ours, limit = (
            self.embedding[approach]
            for approach in (
                embedding_throughput.REFERENCE,
                embedding_throughput.OURS,
                embedding_throughput.LIMIT,
            )
        )
        return FinalFigures(
            speedup=ours.small.value.throughput / reference.small.value.throughput,
            fraction=ours.small.value.throughput / limit.small.value.throughput,
            marginal_speedup=ours.marginal_rate / reference.marginal_rate,
            marginal_fraction=ours.marginal_rate / limit.marginal_rate,
            memory_growth=ours.memory_growth,
            serving_fraction=self.serving.value.serving_limit_fraction_8,
            trainer_fraction=self.trainer.value.limit_fraction,
        )


def _embedding_round(
    corpus: bench_corpus.BenchmarkCorpus,
    yamnet_dir: str,
    output_dir: str,
    beam_args: tuple[str, ...],
    timeout: float,
) -> dict[str, child.ChildOutcome[embedding_throughput.ThroughputRun]]:
    """Runs reference, ours and limit once on one corpus, each in its own child."""
    from pipeline import configs

    outcomes = {
        embedding_throughput.REFERENCE: child.run_in_child(
            embedding_throughput.run_reference,
            corpus.corpus_dir,
            yamnet_dir,
            corpus.audio_seconds,
            timeout_seconds=timeout,
        )
    }
    outcomes[embedding_throughput.OURS] = child.run_in_child(
        embedding_throughput.run_ours,
        corpus.corpus_dir,
        yamnet_dir,
        output_dir,
        beam_args,
        timeout_seconds=timeout,
    )
    outcomes[embedding_throughput.LIMIT] = child.run_in_child(
        embedding_throughput.run_limit,
        corpus.corpus_dir,
        yamnet_dir,
        corpus.audio_seconds,
        configs.PipelineSettings().embedding_batch_patches,
        timeout_seconds=timeout,
    )
    for approach, outcome in outcomes.items():
        logger.info(
            "  %s: %.2f s, %.1f audio s / wall s",
            approach,
            outcome.value.wall_seconds,
            outcome.value.throughput,
        )
    return outcomes


def ours_output_dir(work_dir: str, times: int, round_index: int) -> str:
    """Where ours writes its Examples in one round at one size (``times`` 1 for the 1x corpus)."""
    size_dir = "ours" if times == 1 else f"ours-{times}x"
    return os.path.join(work_dir, size_dir, f"round-{round_index + 1}")


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
    sizes = (1, args.scale)
    try:
        corpus = bench_corpus.write_benchmark_corpus(os.path.join(work_dir, "corpus"), args.minutes)
        logger.info("Corpus: %d clips, %.1f s of audio", corpus.num_clips, corpus.audio_seconds)
        large_corpus = bench_corpus.repeat_corpus(
            corpus, os.path.join(work_dir, f"corpus-{args.scale}x"), args.scale
        )
        corpora = {1: corpus, args.scale: large_corpus}
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
        runs: dict[tuple[str, int], list[child.ChildOutcome[embedding_throughput.ThroughputRun]]] = {
            (approach, times): []
            for times in sizes
            for approach in (
                embedding_throughput.REFERENCE,
                embedding_throughput.OURS,
                embedding_throughput.LIMIT,
            )
        }
        for round_index in range(args.rounds):
            for times in sizes:
                logger.info(
                    "Embedding round %d of %d, %dx corpus (%d clips): reference, ours (%s), limit",
                    round_index + 1,
                    args.rounds,
                    times,
                    corpora[times].num_clips,
                    " ".join(beam_args),
                )
                outcomes = _embedding_round(
                    corpora[times],
                    yamnet_dir,
                    ours_output_dir(work_dir, times, round_index),
                    beam_args,
                    timeout,
                )
                for approach, outcome in outcomes.items():
                    runs[(approach, times)].append(outcome)
        logger.info("Trainer: input pipeline + fit against fit on in-memory examples")
        trainer = child.run_in_child(
            trainer_throughput.run_trainer_benchmark,
            os.path.join(ours_output_dir(work_dir, args.scale, 0), "examples"),
            args.trainer_epochs,
            args.rounds,
            configs.PipelineSettings().batch_size,
            timeout_seconds=timeout,
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
        large_corpus=large_corpus,
        scale=args.scale,
        beam_args=beam_args,
        embedding={
            approach: ScaledRuns(
                small=median_run(runs[(approach, 1)]),
                large=median_run(runs[(approach, args.scale)]),
                small_peaks_bytes=tuple(outcome.peak_tree_rss_bytes for outcome in runs[(approach, 1)]),
                large_peaks_bytes=tuple(
                    outcome.peak_tree_rss_bytes for outcome in runs[(approach, args.scale)]
                ),
            )
            for approach in (
                embedding_throughput.REFERENCE,
                embedding_throughput.OURS,
                embedding_throughput.LIMIT,
            )
        },
        startup=startup,
        round_walls={
            key: [outcome.value.wall_seconds for outcome in outcomes] for key, outcomes in runs.items()
        },
        export_seconds=export_seconds,
        trainer=trainer,
        serving=serving,
    )


def _format_rate(value: float, decimals: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{decimals}f}"


def marginal_table(results: BenchmarkResults) -> list[str]:
    """Formats the fixed cost, marginal rate and memory of each approach between the two sizes."""
    reference_rate = results.embedding[embedding_throughput.REFERENCE].marginal_rate
    limit_rate = results.embedding[embedding_throughput.LIMIT].marginal_rate
    header = [
        "approach",
        "fixed s",
        "marginal audio s / wall s",
        "x reference",
        "of limit",
        "joint peak MB 1x (median)",
        f"joint peak MB {results.scale}x (median)",
        "growth",
    ]
    rows = []
    for approach, scaled in results.embedding.items():
        rate = scaled.marginal_rate
        rows.append(
            [
                approach,
                _format_rate(scaled.fixed_seconds, 2),
                _format_rate(rate),
                _format_rate(rate / reference_rate, 2),
                _format_rate(rate / limit_rate, 2),
                _megabytes(scaled.small_peak_bytes),
                _megabytes(scaled.large_peak_bytes),
                f"{scaled.memory_growth:.2f}",
            ]
        )
    return _table(header, rows)


def trainer_table(run: trainer_throughput.TrainerRun) -> list[str]:
    """Formats the Trainer's two ways of feeding ``fit``."""
    header = ["feeding fit", "examples", "epochs", "wall s (median; rounds)", "examples / s"]
    rows = []
    for label, seconds, rate in (
        ("input pipeline (make_training_dataset)", run.pipeline_seconds, run.pipeline_examples_per_second),
        ("in memory (the limit)", run.memory_seconds, run.memory_examples_per_second),
    ):
        rows.append(
            [
                label,
                str(run.num_examples),
                str(run.epochs),
                f"{statistics.median(seconds):.2f} ({', '.join(f'{value:.2f}' for value in seconds)})",
                f"{rate:.0f}",
            ]
        )
    return _table(header, rows)


def report_lines(results: BenchmarkResults) -> list[str]:
    """Formats the report: machine, throughput, Trainer and latency tables; the last line is ``final_line``.

    Args:
        results: What ``run`` measured.

    Returns:
        The lines, without line ends.
    """
    reference, ours, limit, startup = results.reference, results.ours, results.limit, results.startup
    corpus, scale = results.corpus, results.scale
    rows = [("reference (keras-io tf.data)", reference), ("ours (Beam embedding job)", ours)]
    if startup is not None:
        rows.append(("  ours on 1 clip (start-up)", startup))
    rows.append(("limit (YAMNet network only)", limit))
    large_rows = [
        (f"{label} {scale}x", results.embedding[approach].large)
        for label, approach in (
            ("reference", embedding_throughput.REFERENCE),
            ("ours", embedding_throughput.OURS),
            ("limit", embedding_throughput.LIMIT),
        )
    ]
    lines = [
        f"Machine: {machine.format_machine(results.machine_before)}",
        f"Load average at the end: {machine.format_load(results.load_after)}",
        "",
        f"Embedding throughput: {corpus.num_clips} clips, {corpus.audio_seconds:.1f} s of "
        f"{corpus.sample_rate} Hz 16-bit mono WAV (eSpeak NG, OpenSLR-83 layout), offline YAMNet weights",
        *throughput_table(rows),
        f"  rounds: {len(results.round_walls[(embedding_throughput.OURS, 1)])}, interleaved; each row is the "
        "approach's median run. Wall s per round: "
        + "; ".join(
            f"{approach} " + " ".join(f"{seconds:.2f}" for seconds in walls)
            for (approach, times), walls in results.round_walls.items()
            if times == 1
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
        "",
        f"Embedding throughput at {scale}x: {results.large_corpus.num_clips} clips, "
        f"{results.large_corpus.audio_seconds:.1f} s (the same clips {scale} times, under new names)",
        *throughput_table(large_rows),
        f"  {scale}x wall s per round: "
        + "; ".join(
            f"{approach} " + " ".join(f"{seconds:.2f}" for seconds in walls)
            for (approach, times), walls in results.round_walls.items()
            if times == scale
        ),
        "",
        f"Fixed cost and marginal rate (the line through the 1x and {scale}x medians):",
        *marginal_table(results),
        "  joint peak MB per round, 1x | "
        + f"{scale}x: "
        + "; ".join(
            f"{approach} "
            + " ".join(_megabytes(peak) for peak in scaled.small_peaks_bytes)
            + " | "
            + " ".join(_megabytes(peak) for peak in scaled.large_peaks_bytes)
            for approach, scaled in results.embedding.items()
        ),
    ]
    if startup is not None:
        lines.append(
            f"  ours on 1 clip (Beam's fixed start-up measured directly): {startup.value.wall_seconds:.2f} s"
        )
    trainer = results.trainer.value
    lines += [
        "",
        f"Trainer: fit of build_model on {trainer.num_examples} train examples (ours at {scale}x), "
        f"batch {trainer.batch_size}, class weights; one untimed warm-up epoch each",
        *trainer_table(trainer),
        f"  input pipeline / in memory: {trainer.limit_fraction:.2f}; one epoch at OpenSLR-83's "
        f"{trainer_throughput.OPENSLR83_PATCHES:,} patches: {trainer.epoch_seconds_at():.1f} s "
        f"(in memory {trainer_throughput.OPENSLR83_PATCHES / trainer.memory_examples_per_second:.1f} s)",
    ]
    serving = results.serving.value
    lines += [
        "",
        "Serving latency: Predict (serving_default) over gRPC to the local server on 127.0.0.1; "
        "project classifier (untrained weights) + offline YAMNet",
        *latency_table(results.serving.value),
        f"  server: model loaded in {results.serving.value.model_load_seconds:.1f} s, peak RSS "
        f"{_megabytes(results.serving.value.server_peak_rss_bytes)} MB; "
        f"export took {results.export_seconds:.1f} s",
        "  limit: the served model's batched signature called in-process, patches / s at "
        + ", ".join(f"{each.batch_clips} clips {each.patches_per_second:.0f}" for each in serving.limits)
        + f"; best {serving.limit_patches_per_second:.0f} (the embedding limit's network alone: "
        f"{network_patches_per_second(limit.value):.0f}); with {serving_latency.HEADLINE_CLIENTS} clients "
        f"on 5 s clips: {serving.serving_limit_fraction_8:.2f} of it",
        "  patches / s (of the limit): "
        + "; ".join(
            f"{cell.clip_seconds:g} s x {cell.clients} clients {cell.patches_per_second:.0f} "
            f"({serving.limit_fraction(cell.clients, cell.clip_seconds):.2f})"
            for cell in serving.cells
        ),
        "",
        final_line(results.final_figures()),
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
