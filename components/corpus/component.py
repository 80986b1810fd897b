"""CorpusIndexGen: the TFX component that indexes, labels and splits a corpus."""

import json
import logging
import os

import tensorflow as tf
from tfx import v1 as tfx

from components.artifacts import ClipIndex
from components.corpus.quarantine import write_quarantine_csv
from components.corpus.reader import read_corpus
from components.corpus.records import write_clip_index

logger = logging.getLogger(__name__)

# File names inside a ClipIndex artifact.
CLIPS_FILE = "clips.csv"
QUARANTINE_FILE = "quarantine.csv"
SUMMARY_FILE = "summary.json"


@tfx.dsl.components.component
def CorpusIndexGen(  # noqa: N802 - TFX components are named like classes.
    clip_index: tfx.dsl.components.OutputArtifact[ClipIndex],
    corpus_dir: tfx.dsl.components.Parameter[str],
    corpus_fingerprint: tfx.dsl.components.Parameter[str],
    accent_codes_json: tfx.dsl.components.Parameter[str],
    class_names_json: tfx.dsl.components.Parameter[str],
    split_strategy: tfx.dsl.components.Parameter[str],
    eval_fraction: tfx.dsl.components.Parameter[float],
    split_seed: tfx.dsl.components.Parameter[int],
) -> None:
    """Reads an OpenSLR-83 style corpus into a labelled, split clip index.

    Index rows that cannot become clips (missing files, unknown accent codes,
    empty files, malformed rows) are quarantined with their reason; duplicate
    rows are kept once and counted.

    Args:
        clip_index: Output: ``clips.csv``, ``quarantine.csv`` and ``summary.json``.
        corpus_dir: Folder (or bucket URI) holding the index and the wavs or zips.
        corpus_fingerprint: Hash of the corpus files. It is not read here: it
            is part of the cache key, so a changed corpus is indexed again.
        accent_codes_json: JSON object mapping filename accent codes to class names.
        class_names_json: JSON list of the class names, in label-id order.
        split_strategy: ``speaker`` (speaker-disjoint) or ``utterance``.
        eval_fraction: Fraction of speakers or utterances in the eval split.
        split_seed: Seed of the utterance split.
    """
    del corpus_fingerprint
    logger.info(
        "Indexing corpus %s (split by %s, eval fraction %.2f)", corpus_dir, split_strategy, eval_fraction
    )
    index = read_corpus(
        corpus_dir,
        accent_codes=json.loads(accent_codes_json),
        class_names=tuple(json.loads(class_names_json)),
        split_strategy=split_strategy,
        eval_fraction=eval_fraction,
        seed=split_seed,
    )
    write_clip_index(os.path.join(clip_index.uri, CLIPS_FILE), index.records)
    write_quarantine_csv(os.path.join(clip_index.uri, QUARANTINE_FILE), index.quarantine)
    summary = {
        "index_rows": index.total_rows,
        "duplicate_rows": index.duplicate_rows,
        "clips": len(index.records),
        "quarantined": len(index.quarantine),
        "clips_per_split": _count_by(index.records, "split"),
        "clips_per_accent": _count_by(index.records, "accent"),
        "speakers_per_split": {
            split: len({record.speaker_id for record in index.records if record.split == split})
            for split in sorted({record.split for record in index.records})
        },
    }
    with tf.io.gfile.GFile(os.path.join(clip_index.uri, SUMMARY_FILE), "w") as summary_file:
        json.dump(summary, summary_file, indent=2, sort_keys=True)
    clip_index.set_int_custom_property("num_clips", len(index.records))
    clip_index.set_int_custom_property("num_quarantined", len(index.quarantine))
    clip_index.set_int_custom_property("num_duplicate_rows", index.duplicate_rows)
    logger.info(
        "Indexed %d clips from %d rows: %d quarantined, %d duplicate rows; clips per split %s",
        len(index.records),
        index.total_rows,
        len(index.quarantine),
        index.duplicate_rows,
        summary["clips_per_split"],
    )


def _count_by(records: list, field: str) -> dict[str, int]:
    """Counts records by the value of one of their fields."""
    counts: dict[str, int] = {}
    for record in records:
        value = getattr(record, field)
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
