"""The benchmark machinery: child-process measurement, corpus planning, and a smoke run of ``run_all``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import bench_corpus, child, embedding_throughput, run_all
from components import demo_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]
FINAL_LINE = re.compile(r"^embedding_speedup_vs_reference=(\d+\.\d{2}) limit_fraction=(\d+\.\d{2})$")
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


def test_final_line_is_the_ratio_of_throughputs() -> None:
    assert run_all.final_line(ours=300.0, reference=100.0, limit=400.0) == (
        "embedding_speedup_vs_reference=3.00 limit_fraction=0.75"
    )
    assert FINAL_LINE.match(run_all.final_line(ours=1.0, reference=3.0, limit=7.0))


def _outcome(wall_seconds: float) -> child.ChildOutcome:
    run = embedding_throughput.ThroughputRun(
        approach=embedding_throughput.OURS,
        num_clips=1,
        audio_seconds=10.0,
        num_embeddings=10,
        wall_seconds=wall_seconds,
        detail="",
    )
    return child.ChildOutcome(
        value=run,
        peak_rss_self_bytes=1,
        peak_rss_children_bytes=0,
        descendants=(),
        peak_tree_rss_bytes=1,
        cpu_seconds=1.0,
        wall_seconds=wall_seconds,
    )


def test_median_run_is_the_middle_wall_time() -> None:
    assert run_all.median_run([_outcome(3.0), _outcome(1.0), _outcome(2.0)]).value.wall_seconds == 2.0
    assert run_all.median_run([_outcome(4.0), _outcome(1.0)]).value.wall_seconds == 1.0
    assert run_all.median_run([_outcome(5.0)]).value.wall_seconds == 5.0
    with pytest.raises(ValueError, match="No runs"):
        run_all.median_run([])


def test_command_line_rejects_bad_sizes() -> None:
    with pytest.raises(SystemExit):
        run_all.parse_args(["--minutes", "0"])
    with pytest.raises(SystemExit):
        run_all.parse_args(["--requests", "0"])
    with pytest.raises(SystemExit):
        run_all.parse_args(["--rounds", "0"])


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
            "--no-startup-run",
            "--work-dir",
            str(work_dir),
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
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
    assert [(row[0], row[1]) for row in rows] == [("5", "1"), ("5", "8"), ("30", "1"), ("30", "8")]
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
