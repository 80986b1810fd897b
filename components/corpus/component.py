"""CorpusIndexGen: the TFX component that indexes, labels and splits a corpus."""

import json
import logging
from collections.abc import Mapping

import tensorflow as tf
from tfx import v1 as tfx

from components import features
from components.artifact_files import ClipIndexFiles, ClipIndexSummary
from components.artifacts import ClipIndex
from components.corpus.quarantine import QuarantineWriter, TooManyBadEntriesError, copy_quarantine_report
from components.corpus.reader import read_corpus
from components.corpus.records import write_clip_index
from components.corpus.split import SPEAKER_STRATEGY

logger = logging.getLogger(__name__)


@tfx.dsl.components.component
def CorpusIndexGen(  # noqa: N802 - TFX components are named like classes.
    clip_index: tfx.dsl.components.OutputArtifact[ClipIndex],
    corpus_dir: tfx.dsl.components.Parameter[str],
    corpus_fingerprint: tfx.dsl.components.Parameter[str],
    # JSON strings, not List/Dict parameters: on Kubeflow, TFX 1.16 hands those over as JSON text.
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
    clip_index.set_int_custom_property("num_clips", summary.clips)
    clip_index.set_int_custom_property("num_quarantined", summary.quarantined)
    clip_index.set_int_custom_property("num_duplicate_rows", summary.duplicate_rows)


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
) -> ClipIndexSummary:
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
        The summary written beside the clip index.

    Raises:
        TooManyBadEntriesError: If more than ``max_bad_fraction`` of the entries are bad; the
            message points at the report of the entries found so far.
    """
    logger.info(
        "Indexing corpus %s (split by %s, eval fraction %.2f)", corpus_dir, split_strategy, eval_fraction
    )
    files = ClipIndexFiles(output_dir)
    tf.io.gfile.makedirs(output_dir)
    report_path = files.quarantine_path
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
        report_path = copy_quarantine_report(report_path, quarantine_copy_path)
        raise TooManyBadEntriesError(f"{error} See the reasons found so far in {report_path}") from None
    write_clip_index(files.clips_path, index.records)
    summary = ClipIndexSummary(
        index_rows=index.total_rows,
        duplicate_rows=index.duplicate_rows,
        clips=len(index.records),
        quarantined=index.num_quarantined,
        clips_per_split=_count_by(index.records, "split"),
        clips_per_accent=_count_by(index.records, "accent"),
        speakers_per_split={
            split: len({record.speaker_id for record in index.records if record.split == split})
            for split in sorted({record.split for record in index.records})
        },
    )
    summary.write(output_dir)
    logger.info(
        "Indexed %d clips from %d entries: %d quarantined, %d duplicate rows; clips per split %s",
        summary.clips,
        summary.index_rows,
        summary.quarantined,
        summary.duplicate_rows,
        summary.clips_per_split,
    )
    return summary


def _count_by(records: list, field: str) -> dict[str, int]:
    """Counts records by the value of one of their fields."""
    counts: dict[str, int] = {}
    for record in records:
        value = getattr(record, field)
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
