"""A corpus with broken entries: the run keeps every good clip and reports every bad one, or stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import corpus
from pipeline import run_summary
from tests import corpus_builders
from tests.e2e.conftest import run_pipeline

pytestmark = pytest.mark.e2e


def _run(corpus_root: str, output: Path, max_bad_fraction: float) -> int:
    return run_pipeline(
        corpus_root,
        output,
        "--eval-fraction",
        "0.3",
        "--epochs",
        "2",
        "--min-auc",
        "0",
        "--max-bad-fraction",
        str(max_bad_fraction),
        "--max-clip-seconds",
        str(corpus_builders.BAD_CORPUS_MAX_CLIP_SECONDS),
    )


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory) -> corpus_builders.BuiltCorpus:
    return corpus_builders.build_bad_corpus(str(tmp_path_factory.mktemp("bad") / "corpus"))


def test_run_over_a_tolerant_threshold_keeps_every_good_clip(
    bad_corpus: corpus_builders.BuiltCorpus, tmp_path: Path
) -> None:
    assert _run(bad_corpus.root, tmp_path, max_bad_fraction=0.5) == 0
    runs = run_summary.latest_run(run_summary.open_store(str(tmp_path / "metadata.sqlite")))
    assert runs["EmbeddingGen"].state == "complete"
    examples = runs["EmbeddingGen"].outputs["examples"][0]
    assert examples.custom_properties["num_clips"].int_value == len(bad_corpus.good_clips)
    report = sorted(
        corpus.read_quarantine_csv(str(tmp_path / "quarantine.csv")), key=lambda entry: entry.filename
    )
    assert [entry.filename for entry in report] == [
        filename for filename, _ in bad_corpus.expected_quarantine
    ]
    for entry, (_, reason_prefix) in zip(report, bad_corpus.expected_quarantine, strict=True):
        assert entry.reason.startswith(reason_prefix), entry


def test_mostly_bad_index_stops_the_run_before_beam_and_keeps_the_report(
    bad_corpus: corpus_builders.BuiltCorpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(bad_corpus.root, tmp_path, max_bad_fraction=0.05) == 1
    message = capsys.readouterr().err
    entries = len(bad_corpus.good_clips) + len(bad_corpus.expected_quarantine)
    assert f"Indexing stopped early: 2 of {entries} corpus entries" in message
    assert "--max-bad-fraction" in message
    assert str(tmp_path / "quarantine.csv") in message
    expected_reasons = dict(bad_corpus.index_quarantine)
    report = corpus.read_quarantine_csv(str(tmp_path / "quarantine.csv"))
    assert len(report) == 2
    for entry in report:
        assert entry.reason.startswith(expected_reasons[entry.filename]), entry
    assert not list(tmp_path.rglob("EmbeddingGen")), "the embedding step must not start"
    assert not (tmp_path / "serving").exists()


def test_bad_clips_found_while_decoding_stop_the_run_with_the_whole_report(
    bad_corpus: corpus_builders.BuiltCorpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = len(bad_corpus.good_clips) + len(bad_corpus.expected_quarantine)
    # Over the indexing step's share of bad entries, under the whole run's.
    limit = (len(bad_corpus.index_quarantine) + 1) / entries

    assert _run(bad_corpus.root, tmp_path, max_bad_fraction=limit) == 1

    message = capsys.readouterr().err
    assert f"{len(bad_corpus.expected_quarantine)} of {entries} corpus entries" in message
    assert str(tmp_path / "quarantine.csv") in message
    assert len(corpus.read_quarantine_csv(str(tmp_path / "quarantine.csv"))) == len(
        bad_corpus.expected_quarantine
    )
    assert not (tmp_path / "serving").exists()
