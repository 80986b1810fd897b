"""The Beam embedding job keeps every good clip, quarantines every bad one, and counts both."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf

from components import corpus, features
from components.artifact_files import EmbeddingSummary, QuarantineReportFiles
from components.embedding import beam_job
from components.yamnet import params
from tests import corpus_builders

pytestmark = pytest.mark.slow


def _read_examples(examples_uri: Path, split: str) -> list[tf.train.Example]:
    files = sorted(
        str(path) for path in (examples_uri / f"Split-{split}").glob(f"{beam_job.EXAMPLES_FILE_PREFIX}-*")
    )
    assert files and not any(path.endswith(".gz") for path in files)
    dataset = tf.data.TFRecordDataset(files)
    return [tf.train.Example.FromString(record.numpy()) for record in dataset]


def _feature(example: tf.train.Example, key: str):
    feature = example.features.feature[key]
    values = getattr(feature, feature.WhichOneof("kind")).value
    return values[0] if len(values) == 1 else list(values)


def _run_embedding_job(
    root: Path, index: corpus.CorpusIndex, yamnet_dir: Path, max_clip_seconds: float | None = None
) -> tuple[Path, Path]:
    """Writes an index's clips and quarantine under ``root`` and runs the embedding job on them.

    Returns:
        The URIs of the Examples and of the quarantine report, under ``root``.
    """
    examples_uri, report_uri = root / "examples", root / "report"
    clips_path, index_quarantine_path = str(root / "clips.csv"), str(root / "index_quarantine.csv")
    corpus.write_clip_index(clips_path, index.records)
    corpus.write_quarantine_csv(index_quarantine_path, index.quarantine)
    with beam.Pipeline() as pipeline:
        beam_job.build_embedding_pipeline(
            pipeline,
            clips_path=clips_path,
            index_quarantine_path=index_quarantine_path,
            embed_clips=beam_job.EmbedClipsDoFn(
                yamnet_dir=str(yamnet_dir),
                class_names=features.DEFAULT_CLASS_NAMES,
                non_speech_rule="energy",
                energy_threshold_dbfs=-45.0,
                batch_patches=16,
                max_clip_seconds=max_clip_seconds,
            ),
            examples_uri=str(examples_uri),
            report_uri=str(report_uri),
            split_names=(features.TRAIN_SPLIT, features.EVAL_SPLIT),
        )
    return examples_uri, report_uri


@pytest.fixture(scope="module")
def bad_corpus_run(tmp_path_factory: pytest.TempPathFactory, offline_yamnet_dir: Path):
    root = tmp_path_factory.mktemp("bad_corpus")
    built = corpus_builders.build_bad_corpus(str(root / "corpus"))
    index = corpus.read_corpus(built.root, split_strategy="utterance", eval_fraction=0.25)
    examples_uri, report_uri = _run_embedding_job(
        root, index, offline_yamnet_dir, max_clip_seconds=corpus_builders.BAD_CORPUS_MAX_CLIP_SECONDS
    )
    examples = {
        split: _read_examples(examples_uri, split) for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT)
    }
    return built, index, examples, report_uri


def test_every_good_clip_reaches_the_embeddings(bad_corpus_run) -> None:
    built, _, examples, _ = bad_corpus_run
    clip_ids = {
        _feature(example, features.CLIP_ID_KEY).decode() for split in examples.values() for example in split
    }
    assert clip_ids == set(built.good_clip_ids)


def test_each_clip_has_yamnet_patch_count_and_valid_features(bad_corpus_run) -> None:
    built, index, examples, _ = bad_corpus_run
    records = {record.clip_id: record for record in index.records}
    patches: dict[str, list[int]] = {}
    for split, split_examples in examples.items():
        for example in split_examples:
            clip_id = _feature(example, features.CLIP_ID_KEY).decode()
            assert records[clip_id].split == split
            embedding = np.array(_feature(example, features.EMBEDDING_KEY), dtype=np.float32)
            assert embedding.shape == (features.EMBEDDING_SIZE,) and np.isfinite(embedding).all()
            patches.setdefault(clip_id, []).append(_feature(example, features.PATCH_INDEX_KEY))
    for clip_id, spec in built.good_clips.items():
        expected = params.num_patches(round(spec.seconds * features.SAMPLE_RATE))
        assert sorted(patches[clip_id]) == list(range(expected)), clip_id


def test_silence_is_not_speech_and_speech_keeps_its_accent(bad_corpus_run) -> None:
    _, index, examples, _ = bad_corpus_run
    records = {record.clip_id: record for record in index.records}
    not_speech = features.class_id(features.NOT_SPEECH_CLASS_NAME)
    for example in (example for split in examples.values() for example in split):
        clip_id = _feature(example, features.CLIP_ID_KEY).decode()
        label, is_speech = _feature(example, features.LABEL_KEY), _feature(example, features.IS_SPEECH_KEY)
        assert label == (records[clip_id].label if is_speech else not_speech)
        if clip_id == "scf_00008_00000008":  # digital silence
            assert is_speech == 0


def test_every_bad_entry_is_reported_with_its_reason(bad_corpus_run) -> None:
    built, _, _, report_uri = bad_corpus_run
    report_path = QuarantineReportFiles(str(report_uri)).quarantine_path
    entries = corpus.read_quarantine_csv(report_path)
    assert len(entries) == len(built.expected_quarantine)
    for (filename, reason_prefix), entry in zip(
        built.expected_quarantine, sorted(entries, key=lambda e: e.filename), strict=False
    ):
        assert entry.filename == filename
        assert entry.reason.startswith(reason_prefix), (entry, reason_prefix)
    with open(report_path) as report:
        assert report.readline().strip() == "filename,reason"


def test_summary_counts_clips_and_patches(bad_corpus_run) -> None:
    built, _, examples, report_uri = bad_corpus_run
    summary = EmbeddingSummary.read(str(report_uri))
    assert summary.good_clips == len(built.good_clips)
    for split, split_examples in examples.items():
        assert sum(summary.patches.get(split, {}).values()) == len(split_examples)


def test_a_corpus_without_bad_entries_gets_an_empty_report(tmp_path: Path, offline_yamnet_dir: Path) -> None:
    clips = [corpus_builders.ClipSpec(f"som_0000{number}_0000000{number}", seconds=0.5) for number in (1, 2)]
    corpus_builders.build_openslr_corpus(str(tmp_path / "corpus"), clips)
    index = corpus.read_corpus(str(tmp_path / "corpus"), split_strategy="utterance", eval_fraction=0.5)
    _run_embedding_job(tmp_path, index, offline_yamnet_dir)

    report_path = Path(QuarantineReportFiles(str(tmp_path / "report")).quarantine_path)
    assert report_path.read_text() == "filename,reason\n"
    assert corpus.count_quarantine_csv(str(report_path)) == 0
