"""Each artifact's files are written and read back through one typed contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components import artifact_files
from components.artifact_files import (
    ClipIndexFiles,
    ClipIndexSummary,
    EmbeddingSummary,
    QuarantineReportFiles,
)


def test_clip_index_summary_round_trips(tmp_path: Path) -> None:
    summary = ClipIndexSummary(
        index_rows=10,
        duplicate_rows=1,
        clips=8,
        quarantined=2,
        clips_per_split={"eval": 2, "train": 6},
        clips_per_accent={"Irish": 3, "Welsh": 5},
        speakers_per_split={"eval": 1, "train": 3},
    )
    summary.write(str(tmp_path / "clip_index"))
    assert ClipIndexSummary.read(str(tmp_path / "clip_index")) == summary
    assert Path(ClipIndexFiles(str(tmp_path / "clip_index")).summary_path).is_file()


def test_embedding_summary_round_trips_and_counts_good_clips(tmp_path: Path) -> None:
    summary = EmbeddingSummary.from_counts(
        [
            ((artifact_files.CLIPS_KIND, "train", "Irish"), 3),
            ((artifact_files.CLIPS_KIND, "eval", "Welsh"), 2),
            ((artifact_files.PATCHES_KIND, "train", "Irish"), 30),
            ((artifact_files.PATCHES_KIND, "train", "Not a speech"), 4),
        ]
    )
    assert summary.good_clips == 5
    assert summary.patches == {"train": {"Irish": 30, "Not a speech": 4}}
    report_uri = str(tmp_path / "report")
    assert not EmbeddingSummary.exists(report_uri)
    summary.write(report_uri)
    assert EmbeddingSummary.exists(report_uri)
    assert EmbeddingSummary.read(report_uri) == summary


def test_an_embedding_summary_of_no_clips_is_empty() -> None:
    summary = EmbeddingSummary.from_counts([])
    assert (summary.clips, summary.patches, summary.good_clips) == ({}, {}, 0)


def test_an_unknown_kind_of_count_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown kind"):
        EmbeddingSummary.from_counts([(("frames", "train", "Irish"), 1)])


def test_a_summary_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    files = QuarantineReportFiles(str(tmp_path))
    Path(files.summary_path).write_text(json.dumps({"clips": {}}))
    with pytest.raises(ValueError, match="does not hold a EmbeddingSummary"):
        EmbeddingSummary.read(str(tmp_path))


def test_the_layouts_name_the_files_inside_the_artifact() -> None:
    clip_index = ClipIndexFiles("gs://bucket/CorpusIndexGen/clip_index/1")
    assert clip_index.clips_path == "gs://bucket/CorpusIndexGen/clip_index/1/clips.csv"
    assert clip_index.quarantine_path.endswith("/1/quarantine.csv")
    report = QuarantineReportFiles("/root/EmbeddingGen/quarantine_report/2")
    assert (report.quarantine_path, report.summary_path) == (
        "/root/EmbeddingGen/quarantine_report/2/quarantine.csv",
        "/root/EmbeddingGen/quarantine_report/2/summary.json",
    )
