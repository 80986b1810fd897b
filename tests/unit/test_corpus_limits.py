"""Reading a corpus stays within bounds: huge indexes, huge members, odd names and symbolic links."""

from __future__ import annotations

import logging
import os
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from components import audio
from components.artifact_files import ClipIndexFiles
from components.corpus import component as corpus_component
from components.corpus import quarantine, read_corpus, sources
from components.embedding import beam_job
from tests import corpus_builders
from tests.corpus_builders import ClipSpec

# Rows of the huge index: every one names a missing file.
HUGE_INDEX_ROWS = 200_000

# Peak memory that indexing HUGE_INDEX_ROWS bad rows may take: 40 bytes a row. Holding each row or
# each quarantine entry as a Python object takes several hundred bytes a row.
HUGE_INDEX_PEAK_BYTES = 40 * HUGE_INDEX_ROWS


def _write_huge_index(root: Path, num_rows: int = HUGE_INDEX_ROWS) -> None:
    corpus_builders.build_openslr_corpus(str(root), [ClipSpec("som_00001_00000001", seconds=0.2)])
    with open(root / "line_index_all.csv", "a", encoding="utf-8") as index_file:
        for number in range(num_rows):
            index_file.write(f"EN{number:07d}, nom_{number % 997:05d}_{number:08d}, Text number {number}\n")


def _peak_bytes(function: Callable[[], object]) -> tuple[object, int]:
    """Runs ``function`` and returns its result (or the exception it raised) and its peak allocation."""
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            result = function()
        except Exception as error:  # The caller asserts on it.
            result = error
        return result, tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


# A huge index of bad rows.


def test_huge_index_of_missing_files_is_indexed_in_bounded_memory(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _write_huge_index(root)
    report_path = tmp_path / "quarantine.csv"

    def index() -> object:
        with quarantine.QuarantineWriter(str(report_path)) as writer:
            return read_corpus(str(root), max_bad_fraction=1.0, quarantine_sink=writer.write)

    corpus, peak = _peak_bytes(index)

    assert not isinstance(corpus, Exception), corpus
    assert peak < HUGE_INDEX_PEAK_BYTES, f"indexing took {peak} bytes at its peak"
    assert [record.clip_id for record in corpus.records] == ["som_00001_00000001"]
    assert corpus.num_quarantined == HUGE_INDEX_ROWS
    assert corpus.total_rows == HUGE_INDEX_ROWS + 1
    assert sum(1 for _ in quarantine.iterate_quarantine_csv(str(report_path))) == HUGE_INDEX_ROWS


def test_huge_bad_index_stops_early_once_over_the_limit(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    _write_huge_index(root)
    received: list[quarantine.QuarantineEntry] = []

    error, peak = _peak_bytes(
        lambda: read_corpus(str(root), max_bad_fraction=0.05, quarantine_sink=received.append)
    )

    assert isinstance(error, quarantine.TooManyBadEntriesError)
    entries = HUGE_INDEX_ROWS + 1
    assert len(received) == int(0.05 * entries) + 1
    assert all(entry.reason == "missing file" for entry in received)
    assert f"{len(received)} of {entries} corpus entries" in str(error)
    assert "--max-bad-fraction" in str(error)
    assert peak < HUGE_INDEX_PEAK_BYTES


def test_quarantine_writer_streams_rows_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.csv"
    num_rows = 100_000

    def write() -> int:
        with quarantine.QuarantineWriter(str(path)) as writer:
            for number in range(num_rows):
                writer.write(quarantine.QuarantineEntry(f"som_00001_{number:08d}", "missing file"))
            return writer.count

    count, peak = _peak_bytes(write)

    assert count == num_rows
    assert peak < 1_000_000, f"writing took {peak} bytes at its peak"
    lines = path.read_text().splitlines()
    assert lines[0] == "filename,reason" and len(lines) == num_rows + 1
    assert quarantine.read_quarantine_csv(str(path))[-1].filename == f"som_00001_{num_rows - 1:08d}"


def test_index_step_stops_before_beam_and_leaves_the_report(tmp_path: Path) -> None:
    clips = [ClipSpec(f"som_00001_{number:08d}", seconds=0.1, write_file=number < 2) for number in range(10)]
    corpus_builders.build_openslr_corpus(str(tmp_path / "corpus"), clips)
    copy_path = tmp_path / "out" / "quarantine.csv"

    with pytest.raises(quarantine.TooManyBadEntriesError) as raised:
        corpus_component.index_corpus(
            str(tmp_path / "corpus"),
            str(tmp_path / "artifact"),
            max_bad_fraction=0.2,
            quarantine_copy_path=str(copy_path),
        )

    message = str(raised.value)
    assert "3 of 10 corpus entries" in message and str(copy_path) in message
    assert [entry.reason for entry in quarantine.read_quarantine_csv(str(copy_path))] == ["missing file"] * 3


def test_bad_fraction_under_the_limit_indexes_every_entry(tmp_path: Path) -> None:
    clips = [ClipSpec(f"som_00001_{number:08d}", seconds=0.1, write_file=number < 8) for number in range(10)]
    corpus_builders.build_openslr_corpus(str(tmp_path / "corpus"), clips)

    summary = corpus_component.index_corpus(
        str(tmp_path / "corpus"), str(tmp_path / "artifact"), max_bad_fraction=0.2
    )

    assert (summary.clips, summary.quarantined, summary.index_rows) == (8, 2, 10)
    report = quarantine.read_quarantine_csv(ClipIndexFiles(str(tmp_path / "artifact")).quarantine_path)
    assert sorted(entry.filename for entry in report) == ["som_00001_00000008", "som_00001_00000009"]


# Oversized files and archive members.


def test_zip_member_declaring_gigabytes_is_quarantined_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    corpus_builders.build_openslr_corpus(str(root), [ClipSpec("som_00001_00000001", seconds=0.2)])
    with open(root / "line_index_all.csv", "a", encoding="utf-8") as index_file:
        index_file.write(corpus_builders.index_line(2, "scm_00002_00000002", "huge") + "\n")
    corpus_builders.write_zip_with_declared_size(
        str(root / "scottish_english_male.zip"), "scm_00002_00000002.wav", b"\0" * 1000, 2 << 30
    )

    corpus = read_corpus(str(root), max_bad_fraction=1.0)

    assert [(entry.filename, entry.reason.split(":")[0]) for entry in corpus.quarantine] == [
        ("scm_00002_00000002", "too large")
    ]
    assert "declares 2147483648 bytes" in corpus.quarantine[0].reason

    def no_reading(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the member was read")

    monkeypatch.setattr(zipfile.ZipFile, "read", no_reading)
    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)
    with pytest.raises(sources.ClipReadError) as raised:
        sources.read_clip_bytes(f"{root}/scottish_english_male.zip!scm_00002_00000002.wav")
    assert raised.value.reason.startswith("too large: archive member declares 2147483648 bytes")


def test_zip_member_with_an_absurd_compression_ratio_is_refused(tmp_path: Path) -> None:
    archive_path = tmp_path / "southern_english_male.zip"
    declared = sources.MAX_CLIP_BYTES // 2
    corpus_builders.write_zip_with_declared_size(
        str(archive_path), "som_00001_00000001.wav", b"\0" * 10, declared
    )

    with pytest.raises(sources.ClipReadError) as raised:
        sources.read_clip_bytes(f"{archive_path}!som_00001_00000001.wav")

    assert raised.value.reason.startswith("too large: suspicious compression ratio")


def test_silent_clip_compresses_well_and_still_reads(tmp_path: Path) -> None:
    clip = ClipSpec("som_00001_00000001", seconds=20.0, silent=True)
    corpus_builders.build_openslr_corpus(str(tmp_path), [clip], as_zip=True)

    corpus = read_corpus(str(tmp_path))

    assert sources.read_clip_bytes(corpus.records[0].source) == clip.file_bytes()


def test_loose_file_over_the_size_limit_is_quarantined(tmp_path: Path) -> None:
    corpus_builders.build_openslr_corpus(
        str(tmp_path), [ClipSpec("som_00001_00000001", seconds=0.2), ClipSpec("som_00001_00000002")]
    )
    with open(tmp_path / "som_00001_00000002.wav", "r+b") as huge:
        huge.truncate(sources.MAX_CLIP_BYTES + 1)  # Sparse: no disk space used.

    corpus = read_corpus(str(tmp_path), max_bad_fraction=1.0)

    assert [entry.filename for entry in corpus.quarantine] == ["som_00001_00000002"]
    assert corpus.quarantine[0].reason.startswith(f"too large: {sources.MAX_CLIP_BYTES + 1} bytes")
    with pytest.raises(sources.ClipReadError, match="too large"):
        sources.read_clip_bytes(str(tmp_path / "som_00001_00000002.wav"))


def test_running_out_of_memory_reading_a_member_is_a_reason(tmp_path: Path, monkeypatch) -> None:
    corpus_builders.build_openslr_corpus(str(tmp_path), [ClipSpec("som_00001_00000001")], as_zip=True)
    source = read_corpus(str(tmp_path)).records[0].source

    def exhausted(*args: object, **kwargs: object) -> bytes:
        raise MemoryError()

    monkeypatch.setattr(zipfile.ZipFile, "read", exhausted)
    with pytest.raises(sources.ClipReadError) as raised:
        sources.read_clip_bytes(source)
    assert raised.value.reason.startswith("out of memory")


@pytest.mark.parametrize("failure", [MemoryError(), ValueError("source_rate must be a positive integer")])
def test_any_decode_failure_becomes_a_quarantine_reason(
    failure: Exception, tmp_path: Path, monkeypatch
) -> None:
    corpus_builders.build_openslr_corpus(str(tmp_path), [ClipSpec("som_00001_00000001")])
    record = read_corpus(str(tmp_path)).records[0]

    def failing(*args: object, **kwargs: object) -> np.ndarray:
        raise failure

    monkeypatch.setattr(audio, "decode_audio", failing)
    with pytest.raises(beam_job.ClipError) as raised:
        beam_job.decode_clip(record, max_clip_seconds=30.0)
    expected = (
        "out of memory" if isinstance(failure, MemoryError) else "decoder error: ValueError: source_rate"
    )
    assert raised.value.reason.startswith(expected)


def test_long_clip_is_a_quarantine_reason(tmp_path: Path) -> None:
    corpus_builders.build_openslr_corpus(str(tmp_path), [ClipSpec("som_00001_00000001", seconds=2.0)])
    record = read_corpus(str(tmp_path)).records[0]

    with pytest.raises(beam_job.ClipError) as raised:
        beam_job.decode_clip(record, max_clip_seconds=1.5)

    assert raised.value.reason == "too long: 2.0 s, over the limit of 1.5 s (--max-clip-seconds)"
    assert len(beam_job.decode_clip(record, max_clip_seconds=2.0)) == 32000


# Names that are not UTF-8.


def test_names_that_are_not_utf8_are_skipped_and_reported(tmp_path: Path, caplog) -> None:
    root = tmp_path / "corpus"
    corpus_builders.build_openslr_corpus(
        str(root),
        [ClipSpec("som_00001_00000001", seconds=0.2), ClipSpec("som_00001_00000002", write_file=False)],
    )
    with open(os.path.join(os.fsencode(root), b"notes-\xff.txt"), "wb") as notes:
        notes.write(b"not indexed")
    odd_directory = os.path.join(os.fsencode(root), b"caf\xe9")
    os.mkdir(odd_directory)
    with open(os.path.join(odd_directory, b"som_00001_00000002.wav"), "wb") as wav_file:
        wav_file.write(corpus_builders.encode_wav(np.zeros(1600), 16000))

    with caplog.at_level(logging.WARNING):
        corpus = read_corpus(str(root), max_bad_fraction=1.0)
        fingerprint = sources.corpus_fingerprint(str(root))

    assert [record.clip_id for record in corpus.records] == ["som_00001_00000001"]
    assert [entry.filename for entry in corpus.quarantine] == ["som_00001_00000002"]
    assert corpus.quarantine[0].reason == r"path is not UTF-8: b'caf\xe9/som_00001_00000002.wav'"
    assert "not UTF-8" in caplog.text and r"notes-\xff.txt" in caplog.text
    os.rename(odd_directory, os.path.join(os.fsencode(root), b"caf\xe8"))
    assert sources.corpus_fingerprint(str(root)) != fingerprint


# Symbolic links.


def test_directory_links_never_leave_the_corpus(tmp_path: Path, caplog) -> None:
    root = tmp_path / "corpus"
    outside = tmp_path / "outside"
    corpus_builders.build_openslr_corpus(
        str(root),
        [ClipSpec("som_00001_00000001", seconds=0.2), ClipSpec("som_00001_00000002", write_file=False)],
    )
    corpus_builders.write_wav(str(outside / "som_00001_00000002.wav"), np.zeros(1600), 16000)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "filesystem").symlink_to("/", target_is_directory=True)

    with caplog.at_level(logging.WARNING):
        corpus = read_corpus(str(root), max_bad_fraction=1.0)
        sources.corpus_fingerprint(str(root))

    assert [record.clip_id for record in corpus.records] == ["som_00001_00000001"]
    assert [(entry.filename, entry.reason) for entry in corpus.quarantine] == [
        ("som_00001_00000002", "missing file")
    ]
    assert "escape" in caplog.text and "outside the corpus" in caplog.text


def test_directory_links_inside_the_corpus_are_walked_once_and_loops_end(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    clips = [ClipSpec("som_00001_00000001", seconds=0.2), ClipSpec("som_00001_00000002", seconds=0.2)]
    corpus_builders.build_openslr_corpus(str(root), clips, subdirectory="wavs")
    (root / "alias").symlink_to(root / "wavs", target_is_directory=True)
    (root / "wavs" / "loop").symlink_to(root, target_is_directory=True)
    (root / "wavs" / "self").symlink_to(".", target_is_directory=True)

    corpus = read_corpus(str(root))
    fingerprint = sources.corpus_fingerprint(str(root))

    assert [record.clip_id for record in corpus.records] == ["som_00001_00000001", "som_00001_00000002"]
    assert corpus.quarantine == []
    found = sources.scan_corpus(str(root))
    assert found.shadowed_audio_files == 0
    assert sources.corpus_fingerprint(str(root)) == fingerprint


def test_file_links_may_point_outside_the_corpus(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    clip = ClipSpec("som_00001_00000001", seconds=0.2)
    corpus_builders.build_openslr_corpus(str(root), [clip, ClipSpec("som_00001_00000002", write_file=False)])
    target = tmp_path / "storage" / "real.wav"
    target.parent.mkdir()
    target.write_bytes(ClipSpec("som_00001_00000002", seconds=0.3).file_bytes())
    (root / "som_00001_00000002.wav").symlink_to(target)
    (root / "som_00001_00000003.wav").symlink_to(tmp_path / "nowhere.wav")

    corpus = read_corpus(str(root))
    sources.corpus_fingerprint(str(root))

    assert [record.clip_id for record in corpus.records] == ["som_00001_00000001", "som_00001_00000002"]
    assert sources.read_clip_bytes(corpus.records[1].source) == target.read_bytes()
