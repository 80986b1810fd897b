"""The benchmark machinery: child-process measurement, corpus planning, and a smoke run of ``run_all``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import (
    bench_corpus,
    child,
    embedding_throughput,
    run_all,
    scale,
    serving_latency,
    trainer_throughput,
)
from components import demo_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]
FINAL_LINE = re.compile(
    r"^embedding_speedup_vs_reference=(\d+\.\d{2}) limit_fraction=(\d+\.\d{2}) "
    r"marginal_speedup=(\d+\.\d{2}|nan) marginal_limit_fraction=(\d+\.\d{2}|nan) "
    r"memory_growth=(\d+\.\d{2}) serving_limit_fraction_8=(\d+\.\d{2}) trainer_limit_fraction=(\d+\.\d{2})$"
)
MEGABYTE = 2**20


def _allocate_and_hold(megabytes: int) -> int:
    block = bytearray(megabytes * MEGABYTE)
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(0.3)
    return len(block)


def _run_allocating_grandchild(megabytes: int) -> int:
    script = (
        "import time\n"
        f"block = bytearray({megabytes} * {MEGABYTE})\n"
        "block[::4096] = b'x' * len(block[::4096])\n"
        "time.sleep(0.6)\n"
    )
    return subprocess.run([sys.executable, "-c", script], check=True).returncode


def _fail() -> None:
    raise KeyError("no such clip")


def test_child_reports_its_own_peak_rss() -> None:
    outcome = child.run_in_child(_allocate_and_hold, 150, timeout_seconds=60)
    assert outcome.value == 150 * MEGABYTE
    assert outcome.peak_rss_self_bytes >= 150 * MEGABYTE
    assert outcome.total_peak_rss_bytes >= outcome.peak_rss_self_bytes
    assert outcome.wall_seconds > 0.3 and outcome.cpu_seconds > 0


def test_child_counts_its_descendants_memory() -> None:
    outcome = child.run_in_child(_run_allocating_grandchild, 300, timeout_seconds=60)
    assert outcome.peak_rss_children_bytes >= 300 * MEGABYTE
    assert outcome.peak_rss_self_bytes < 300 * MEGABYTE
    assert any(process.peak_rss_bytes >= 300 * MEGABYTE for process in outcome.descendants)
    assert outcome.total_peak_rss_bytes >= outcome.peak_rss_self_bytes + 300 * MEGABYTE
    assert outcome.num_processes >= 2


def test_child_failure_carries_the_traceback() -> None:
    with pytest.raises(child.BenchmarkStepError, match="no such clip"):
        child.run_in_child(_fail, timeout_seconds=60)


def test_descendants_of_finds_a_started_process() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert sleeper.pid in child.descendants_of(os.getpid())
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sleeper.pid not in child.descendants_of(os.getpid())


@pytest.mark.parametrize("seconds", [5.0, 20.0, 600.0, 3600.0, 7200.0])
def test_planned_corpus_is_valid_and_expected_long_enough(seconds: float) -> None:
    shape = bench_corpus.plan_corpus(seconds)
    assert set(shape.accent_codes) <= set(demo_corpus.DEMO_ACCENT_VOICES)
    assert shape.speakers_per_accent >= 2
    assert shape.clips_per_speaker >= 1
    assert shape.clips_per_speaker <= len(demo_corpus.DEMO_SENTENCES)
    # Demo clips last at least 3.4 s (speech plus 1.3 s of framing silence).
    assert shape.num_clips * 3.4 >= seconds


def test_plan_corpus_rejects_a_non_positive_length() -> None:
    with pytest.raises(ValueError, match="positive"):
        bench_corpus.plan_corpus(0.0)


def _figures(**overrides: float) -> run_all.FinalFigures:
    values = dict(
        speedup=3.0,
        fraction=0.75,
        marginal_speedup=2.5,
        marginal_fraction=0.9,
        memory_growth=1.04,
        serving_fraction=0.8,
        trainer_fraction=0.95,
    )
    return run_all.FinalFigures(**{**values, **overrides})


def test_final_line_gives_every_figure_with_two_decimals() -> None:
    assert run_all.final_line(_figures()) == (
        "embedding_speedup_vs_reference=3.00 limit_fraction=0.75 marginal_speedup=2.50 "
        "marginal_limit_fraction=0.90 memory_growth=1.04 serving_limit_fraction_8=0.80 "
        "trainer_limit_fraction=0.95"
    )
    assert FINAL_LINE.match(run_all.final_line(_figures(speedup=1 / 3, marginal_speedup=float("nan"))))


def _outcome(
    wall_seconds: float, audio_seconds: float = 10.0, peak_rss_bytes: int = 1, num_embeddings: int = 10
) -> child.ChildOutcome:
    run = embedding_throughput.ThroughputRun(
        approach=embedding_throughput.OURS,
        num_clips=1,
        audio_seconds=audio_seconds,
        num_embeddings=num_embeddings,
        wall_seconds=wall_seconds,
        detail="",
    )
    return child.ChildOutcome(
        value=run,
        peak_rss_self_bytes=peak_rss_bytes,
        peak_rss_children_bytes=0,
        descendants=(),
        peak_tree_rss_bytes=peak_rss_bytes,
        cpu_seconds=1.0,
        wall_seconds=wall_seconds,
    )


def test_median_run_is_the_middle_wall_time() -> None:
    assert run_all.median_run([_outcome(3.0), _outcome(1.0), _outcome(2.0)]).value.wall_seconds == 2.0
    assert run_all.median_run([_outcome(4.0), _outcome(1.0)]).value.wall_seconds == 1.0
    assert run_all.median_run([_outcome(5.0)]).value.wall_seconds == 5.0
    with pytest.raises(ValueError, match="No runs"):
        run_all.median_run([])


def test_marginal_rate_and_fixed_cost_come_from_the_line_through_both_sizes() -> None:
    # 2 s fixed, then 100 audio s per wall s: 1,000 s of audio in 12 s, 4,000 s in 42 s.
    scaled = run_all.ScaledRuns(
        small=_outcome(12.0, audio_seconds=1000.0, peak_rss_bytes=1000),
        large=_outcome(42.0, audio_seconds=4000.0, peak_rss_bytes=1100),
    )
    assert scaled.marginal_rate == pytest.approx(100.0)
    assert scaled.fixed_seconds == pytest.approx(2.0)
    assert scaled.memory_growth == pytest.approx(1.1)


def test_memory_growth_is_the_ratio_of_median_peaks_over_the_rounds() -> None:
    # The median-wall runs' own peaks (1,600 and 1,200) would give 0.75; the rounds' medians give 1.2.
    scaled = run_all.ScaledRuns(
        small=_outcome(12.0, audio_seconds=1000.0, peak_rss_bytes=1600),
        large=_outcome(42.0, audio_seconds=4000.0, peak_rss_bytes=1200),
        small_peaks_bytes=(1600, 1000, 900),
        large_peaks_bytes=(1200, 1100, 1500),
    )
    assert scaled.small_peak_bytes == 1000
    assert scaled.large_peak_bytes == 1200
    assert scaled.memory_growth == pytest.approx(1.2)
    even = run_all.ScaledRuns(
        small=scaled.small, large=scaled.large, small_peaks_bytes=(1000, 1200), large_peaks_bytes=(1100, 1300)
    )
    assert even.memory_growth == pytest.approx(1200 / 1100)


def test_marginal_rate_is_nan_when_noise_hides_the_difference() -> None:
    small, large = _outcome(12.0, audio_seconds=1000.0).value, _outcome(11.0, audio_seconds=4000.0).value
    assert run_all.marginal_rate(small, large) != run_all.marginal_rate(small, large)
    with pytest.raises(ValueError, match="more audio"):
        run_all.marginal_rate(large, small)


def test_trainer_run_compares_median_rates_and_extrapolates_an_epoch() -> None:
    run = trainer_throughput.TrainerRun(
        num_examples=1000,
        epochs=2,
        batch_size=64,
        pipeline_seconds=(2.5, 2.0, 9.0),
        memory_seconds=(1.6, 1.5, 1.7),
    )
    assert run.pipeline_examples_per_second == pytest.approx(800.0)
    assert run.memory_examples_per_second == pytest.approx(2000 / 1.6)
    assert run.limit_fraction == pytest.approx(0.64)
    assert run.epoch_seconds_at(233_000) == pytest.approx(233_000 / 800.0)


def test_repeated_clip_ids_keep_the_speaker_and_stay_distinct() -> None:
    assert bench_corpus.repeated_clip_id("mim_00006_00000000001", 0) == "mim_00006_00000000001"
    assert bench_corpus.repeated_clip_id("mim_00006_00000000001", 3) == "mim_00006_03000000001"
    with pytest.raises(ValueError, match="utterance"):
        bench_corpus.repeated_clip_id("mim", 1)


def _write_wav(path: Path, seconds: float) -> None:
    import wave

    with wave.open(str(path), "wb") as wav_file:
        wav_file.setnchannels(1)
        wav_file.setsampwidth(2)
        wav_file.setframerate(16000)
        wav_file.writeframes(b"\x00\x01" * int(seconds * 16000))


def test_repeat_corpus_holds_every_clip_under_new_names_and_reads_as_a_corpus(tmp_path: Path) -> None:
    from components import corpus

    source_dir = tmp_path / "source"
    source_dir.mkdir()
    clip_ids = ["mim_00006_00000000001", "nof_00003_00000000002"]
    for clip_id in clip_ids:
        _write_wav(source_dir / f"{clip_id}.wav", 1.5)
    (source_dir / bench_corpus.INDEX_FILENAME).write_text(
        "".join(
            f"EN{number:04d}, {clip_id}, A sentence, with a comma.\n"
            for number, clip_id in enumerate(clip_ids)
        )
    )
    source = bench_corpus.BenchmarkCorpus(str(source_dir), num_clips=2, audio_seconds=3.0, sample_rate=16000)

    repeated = bench_corpus.repeat_corpus(source, str(tmp_path / "repeated"), 3)

    assert repeated.num_clips == 6 and repeated.audio_seconds == pytest.approx(9.0)
    index = corpus.read_corpus(repeated.corpus_dir, split_strategy="utterance", eval_fraction=0.25)
    assert not index.quarantine
    assert sorted(record.clip_id for record in index.records) == sorted(
        bench_corpus.repeated_clip_id(clip_id, copy_index) for clip_id in clip_ids for copy_index in range(3)
    )
    for record in index.records:
        assert bench_corpus.wav_seconds(record.source) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="times"):
        bench_corpus.repeat_corpus(source, str(tmp_path / "none"), 0)


def test_scale_extrapolates_each_component_and_names_the_dominant_one() -> None:
    assert scale.extrapolate(10.0, 30.0, 1.0, 3.0) == pytest.approx(10.0 + 10.0 * 30.0)

    def run(hours: float, embedding_seconds: float, trainer_seconds: float) -> scale.PipelineRun:
        return scale.PipelineRun(
            audio_hours=hours,
            wall_seconds=embedding_seconds + trainer_seconds,
            peak_rss_bytes=2 * MEGABYTE,
            components=(
                scale.ComponentCost("EmbeddingGen", embedding_seconds, MEGABYTE),
                scale.ComponentCost("Trainer", trainer_seconds, MEGABYTE),
            ),
        )

    lines = scale.report_lines(run(1.0, 20.0, 30.0), run(3.0, 60.0, 40.0))
    rows = {line.split()[0]: line.split() for line in lines[2:4]}
    assert rows["EmbeddingGen"][4] == "620" and rows["Trainer"][4] == "180"
    assert "EmbeddingGen dominates" in lines[-1]


def test_command_line_rejects_bad_sizes() -> None:
    with pytest.raises(SystemExit):
        run_all.parse_args(["--minutes", "0"])
    with pytest.raises(SystemExit):
        run_all.parse_args(["--requests", "0"])
    with pytest.raises(SystemExit):
        run_all.parse_args(["--rounds", "0"])
    with pytest.raises(SystemExit):
        run_all.parse_args(["--scale", "1"])
    with pytest.raises(SystemExit):
        run_all.parse_args(["--trainer-epochs", "0"])
    with pytest.raises(SystemExit):
        scale.parse_args(["--hours", "0"])


def test_minutes_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(run_all.MINUTES_ENVIRONMENT_VARIABLE, "12.5")
    assert run_all.parse_args([]).minutes == 12.5
    monkeypatch.delenv(run_all.MINUTES_ENVIRONMENT_VARIABLE)
    assert run_all.parse_args([]).minutes == run_all.DEFAULT_MINUTES >= 10


def _table_rows(lines: list[str], title_prefix: str) -> list[list[str]]:
    """Returns the rows of the table after the line starting with ``title_prefix``, split on 2+ spaces."""
    start = next(index for index, line in enumerate(lines) if line.startswith(title_prefix))
    assert set(lines[start + 2].replace(" ", "")) == {"-"}
    rows = []
    for line in lines[start + 3 :]:
        if not line.strip() or (line.startswith("  ") and not line.startswith("  ours on")):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def _serving_cell(
    clients: int, latencies_ms: tuple[float, ...], wall_seconds: float
) -> serving_latency.LatencyCell:
    return serving_latency.LatencyCell(
        clip_seconds=5.0,
        clients=clients,
        latencies_ms=latencies_ms,
        wall_seconds=wall_seconds,
        patches_per_request=10,
    )


def test_serving_throughput_is_patches_per_wall_second_and_its_fraction_of_the_limit() -> None:
    result = serving_latency.ServingResult(
        cells=(
            _serving_cell(1, (30.0, 32.0), wall_seconds=0.1),
            _serving_cell(8, (100.0,) * 16, wall_seconds=0.5),
        ),
        server_peak_rss_bytes=1,
        model_load_seconds=1.0,
        limit_patches_per_second=400.0,
    )

    assert result.cell(8).patches_per_second == pytest.approx(320.0)
    assert result.limit_fraction(1) == pytest.approx(0.5)
    assert result.serving_limit_fraction_8 == pytest.approx(0.8)
    with pytest.raises(KeyError):
        result.limit_fraction(32)


def test_serving_limit_fraction_is_zero_without_a_limit() -> None:
    result = serving_latency.ServingResult(
        cells=(_serving_cell(8, (100.0,), wall_seconds=1.0),), server_peak_rss_bytes=1, model_load_seconds=1.0
    )
    assert result.serving_limit_fraction_8 == 0.0


def test_serving_limit_is_patches_per_second_of_the_timed_calls() -> None:
    measurement = serving_latency.LimitMeasurement(
        batch_clips=8, patches_per_call=80, call_seconds=(0.2, 0.3)
    )
    assert measurement.patches_per_second == pytest.approx(320.0)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    work_dir = tmp_path_factory.mktemp("bench")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run_all",
            "--minutes",
            "0.34",
            "--requests",
            "4",
            "--rounds",
            "2",
            "--scale",
            "2",
            "--trainer-epochs",
            "1",
            "--no-startup-run",
            "--work-dir",
            str(work_dir),
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stdout.splitlines(), work_dir


@pytest.mark.slow
def test_smoke_final_line_parses_and_matches_the_table(smoke_run) -> None:
    lines, _ = smoke_run
    match = FINAL_LINE.match(lines[-1])
    assert match, lines[-1]
    speedup, fraction = float(match.group(1)), float(match.group(2))
    # On this tiny corpus Beam's start-up dominates, so ours / limit can round to 0.00.
    assert speedup >= 0 and fraction >= 0
    rows = {row[0]: row for row in _table_rows(lines, "Embedding throughput:")}
    throughput = {name.split(" ")[0]: float(row[5]) for name, row in rows.items()}
    assert speedup == pytest.approx(throughput["ours"] / throughput["reference"], abs=0.02)
    assert fraction == pytest.approx(throughput["ours"] / throughput["limit"], abs=0.02)


@pytest.mark.slow
def test_smoke_throughput_table_has_every_approach_with_positive_numbers(smoke_run) -> None:
    lines, _ = smoke_run
    corpus_line = next(line for line in lines if line.startswith("Embedding throughput:"))
    clips, audio_seconds = re.search(r"(\d+) clips, ([\d.]+) s of 48000 Hz", corpus_line).groups()
    assert float(audio_seconds) >= 0.34 * 60
    rows = _table_rows(lines, "Embedding throughput:")
    assert [row[0].split(" ")[0] for row in rows] == ["reference", "ours", "limit"]
    embeddings = {}
    for row in rows:
        assert row[1] == clips and row[2] == audio_seconds
        numbers = [float(value) for value in row[3:]]
        assert all(number > 0 for number in numbers), row
        embeddings[row[0].split(" ")[0]] = int(row[3])
    # Ours and the limit embed the same waveforms; the reference resamples with tensorflow-io.
    assert embeddings["ours"] == embeddings["limit"]
    assert abs(embeddings["reference"] - embeddings["ours"]) <= int(clips)


@pytest.mark.slow
def test_smoke_latency_table_has_each_clip_length_and_client_count(smoke_run) -> None:
    lines, _ = smoke_run
    rows = _table_rows(lines, "Serving latency:")
    assert [(row[0], row[1]) for row in rows] == [("5", "1"), ("5", "8"), ("5", "32")]
    for row in rows:
        requests, p50, p99, maximum, rate = int(row[2]), *map(float, row[3:])
        assert requests >= 4
        assert 0 < p50 <= p99 <= maximum and rate > 0


@pytest.mark.slow
def test_smoke_ours_wrote_tfrecords_in_each_round(smoke_run) -> None:
    _, work_dir = smoke_run
    for round_name in ("round-1", "round-2"):
        written = list((work_dir / "ours" / round_name / "examples").glob("Split-*/data_tfrecord-*"))
        assert written and all(path.stat().st_size > 0 for path in written)


@pytest.mark.slow
def test_smoke_rows_are_the_median_of_the_rounds(smoke_run) -> None:
    lines, _ = smoke_run
    rounds_line = next(line for line in lines if line.startswith("  rounds: 2, interleaved"))
    walls = {
        approach: [float(value) for value in values.split()]
        for approach, values in re.findall(r"(reference|ours|limit) ([\d. ]+\d)", rounds_line)
    }
    assert sorted(walls) == ["limit", "ours", "reference"]
    rows = {row[0].split(" ")[0]: row for row in _table_rows(lines, "Embedding throughput:")}
    for approach, approach_walls in walls.items():
        assert len(approach_walls) == 2
        assert float(rows[approach][4]) == pytest.approx(min(approach_walls), abs=0.006)


def _final_figures(lines: list[str]) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(r"(\w+)=([\d.]+|nan)", lines[-1])}


@pytest.mark.slow
def test_smoke_marginal_table_matches_the_final_line(smoke_run) -> None:
    lines, work_dir = smoke_run
    figures = _final_figures(lines)
    rows = {row[0]: row for row in _table_rows(lines, "Fixed cost and marginal rate")}
    assert sorted(rows) == ["limit", "ours", "reference"]
    rates = {approach: float(row[2]) for approach, row in rows.items() if row[2] != "n/a"}
    if {"ours", "reference", "limit"} <= set(rates):
        assert figures["marginal_speedup"] == pytest.approx(rates["ours"] / rates["reference"], rel=0.02)
        assert figures["marginal_limit_fraction"] == pytest.approx(rates["ours"] / rates["limit"], rel=0.02)
    small_peak, large_peak, growth = (float(value) for value in rows["ours"][5:8])
    assert small_peak > 0 and large_peak > 0
    assert figures["memory_growth"] == pytest.approx(growth, abs=0.01)
    # The larger corpus holds each clip twice, so ours wrote twice the examples in each of its rounds.
    for round_name in ("round-1", "round-2"):
        small = list((work_dir / "ours" / round_name / "examples").glob("Split-*/data_tfrecord-*"))
        large = list((work_dir / "ours-2x" / round_name / "examples").glob("Split-*/data_tfrecord-*"))
        assert large and sum(path.stat().st_size for path in large) == 2 * sum(
            path.stat().st_size for path in small
        )


@pytest.mark.slow
def test_smoke_trainer_table_gives_both_rates_and_their_ratio(smoke_run) -> None:
    lines, _ = smoke_run
    rows = _table_rows(lines, "Trainer:")
    assert [row[0] for row in rows] == ["input pipeline (make_training_dataset)", "in memory (the limit)"]
    rates = [float(row[4]) for row in rows]
    assert all(rate > 0 for rate in rates)
    assert _final_figures(lines)["trainer_limit_fraction"] == pytest.approx(rates[0] / rates[1], abs=0.02)
    assert any(
        line.startswith("  input pipeline / in memory:") and "233,000 patches" in line for line in lines
    )
