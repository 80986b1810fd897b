"""CorpusIndexGen: the TFX component that indexes, labels and splits a corpus."""

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
from tfx import v1 as tfx

from components import features
from components.artifacts import ClipIndex
from components.corpus.quarantine import QuarantineWriter, TooManyBadEntriesError
from components.corpus.reader import read_corpus
from components.corpus.records import write_clip_index
from components.corpus.split import SPEAKER_STRATEGY

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
    max_bad_fraction: tfx.dsl.components.Parameter[float] = 1.0,
    quarantine_copy_path: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Reads an OpenSLR-83 style corpus into a labelled, split clip index.

    Index rows that cannot become clips (missing files, unknown accent codes,
    empty or oversized files, malformed rows) are quarantined with their
    reason; duplicate rows are kept once and counted. The run stops here,
    before any audio is decoded, once more than ``max_bad_fraction`` of the
    entries are bad.

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
        max_bad_fraction: Indexing stops once more than this fraction of the entries is bad.
        quarantine_copy_path: If set, the quarantine report is also copied here
            when indexing stops, so that it outlives the failed execution.

    Raises:
        TooManyBadEntriesError: If more than ``max_bad_fraction`` of the entries are bad.
    """
    del corpus_fingerprint
    summary = index_corpus(
        corpus_dir,
        clip_index.uri,
        accent_codes=json.loads(accent_codes_json),
        class_names=tuple(json.loads(class_names_json)),
        split_strategy=split_strategy,
        eval_fraction=eval_fraction,
        split_seed=split_seed,
        max_bad_fraction=max_bad_fraction,
        quarantine_copy_path=quarantine_copy_path,
    )
    clip_index.set_int_custom_property("num_clips", summary["clips"])
    clip_index.set_int_custom_property("num_quarantined", summary["quarantined"])
    clip_index.set_int_custom_property("num_duplicate_rows", summary["duplicate_rows"])


def index_corpus(
    corpus_dir: str,
    output_dir: str,
    accent_codes: Mapping[str, str] = features.ACCENT_CODE_TO_NAME,
    class_names: tuple[str, ...] = features.DEFAULT_CLASS_NAMES,
    split_strategy: str = SPEAKER_STRATEGY,
    eval_fraction: float = 0.1,
    split_seed: int = 1337,
    max_bad_fraction: float = 1.0,
    quarantine_copy_path: str = "",
) -> dict[str, Any]:
    """Indexes a corpus into ``output_dir``: the clip index, the quarantine report and a summary.

    The quarantine report is written entry by entry as indexing finds them.

    Args:
        corpus_dir: Folder (or bucket URI) holding the index and the wavs or zips.
        output_dir: Where ``clips.csv``, ``quarantine.csv`` and ``summary.json`` go (created).
        accent_codes: Accent code to class name.
        class_names: The class names, in label-id order.
        split_strategy: ``speaker`` (speaker-disjoint) or ``utterance``.
        eval_fraction: Fraction of speakers or utterances in the eval split.
        split_seed: Seed of the utterance split.
        max_bad_fraction: Indexing stops once more than this fraction of the entries is bad.
        quarantine_copy_path: If set, where the report is copied when indexing stops.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        TooManyBadEntriesError: If more than ``max_bad_fraction`` of the entries are bad; the
            message points at the report of the entries found so far.
    """
    logger.info(
        "Indexing corpus %s (split by %s, eval fraction %.2f)", corpus_dir, split_strategy, eval_fraction
    )
    tf.io.gfile.makedirs(output_dir)
    report_path = os.path.join(output_dir, QUARANTINE_FILE)
    try:
        with QuarantineWriter(report_path) as writer:
            index = read_corpus(
                corpus_dir,
                accent_codes=accent_codes,
                class_names=tuple(class_names),
                split_strategy=split_strategy,
                eval_fraction=eval_fraction,
                seed=split_seed,
                max_bad_fraction=max_bad_fraction,
                quarantine_sink=writer.write,
            )
    except TooManyBadEntriesError as error:
        if quarantine_copy_path:
            tf.io.gfile.makedirs(os.path.dirname(quarantine_copy_path) or ".")
            tf.io.gfile.copy(report_path, quarantine_copy_path, overwrite=True)
            report_path = quarantine_copy_path
        raise TooManyBadEntriesError(f"{error} See the reasons found so far in {report_path}") from None
    write_clip_index(os.path.join(output_dir, CLIPS_FILE), index.records)
    summary = {
        "index_rows": index.total_rows,
        "duplicate_rows": index.duplicate_rows,
        "clips": len(index.records),
        "quarantined": index.num_quarantined,
        "clips_per_split": _count_by(index.records, "split"),
        "clips_per_accent": _count_by(index.records, "accent"),
        "speakers_per_split": {
            split: len({record.speaker_id for record in index.records if record.split == split})
            for split in sorted({record.split for record in index.records})
        },
    }
    with tf.io.gfile.GFile(os.path.join(output_dir, SUMMARY_FILE), "w") as summary_file:
        json.dump(summary, summary_file, indent=2, sort_keys=True)
    logger.info(
        "Indexed %d clips from %d entries: %d quarantined, %d duplicate rows; clips per split %s",
        len(index.records),
        index.total_rows,
        index.num_quarantined,
        index.duplicate_rows,
        summary["clips_per_split"],
    )
    return summary


def _count_by(records: list, field: str) -> dict[str, int]:
    """Counts records by the value of one of their fields."""
    counts: dict[str, int] = {}
    for record in records:
        value = getattr(record, field)
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
