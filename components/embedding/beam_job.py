"""The Beam job of EmbeddingGen: clips in, one tf.Example per YAMNet patch out.

Errors are caught clip by clip inside the DoFn, so a bad clip costs only
itself, on the DirectRunner and on Dataflow, Flink or Spark alike. Clips are
gathered into small batches so that YAMNet sees patches from many clips in
one call.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components import audio, corpus, features
from components.embedding import speech

logger = logging.getLogger(__name__)

# Tags of the DoFn's side outputs.
QUARANTINE_TAG = "quarantine"
COUNTS_TAG = "counts"

# Files written by the job under the output artifacts.
EXAMPLES_FILE_PREFIX = "data_tfrecord"
QUARANTINE_FILE = "quarantine.csv"
SUMMARY_FILE = "summary.json"

# Clips gathered into one DoFn call, so that YAMNet batches patches across clips. Beam's
# adaptive batching starts at the minimum, so the minimum must already batch several clips.
MIN_CLIPS_PER_BATCH = 8
MAX_CLIPS_PER_BATCH = 32

# Beam metric namespace, shown by the runner's monitoring.
METRICS_NAMESPACE = "accent_embedding"


def patch_example(
    record: corpus.ClipRecord,
    patch_index: int,
    embedding: np.ndarray,
    label: int,
    is_speech: bool,
) -> tf.train.Example:
    """Builds the tf.Example of one patch.

    Args:
        record: The clip the patch comes from.
        patch_index: Position of the patch in the clip.
        embedding: The patch's 1024-d YAMNet embedding.
        label: Class id: the clip's accent, or "Not a speech".
        is_speech: Whether the non-speech rule judged the patch speech.

    Returns:
        The example, with the features named in ``components.features``.
    """

    def bytes_feature(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))

    def int_feature(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.EMBEDDING_KEY: tf.train.Feature(
                    float_list=tf.train.FloatList(value=np.asarray(embedding, dtype=np.float32).tolist())
                ),
                features.LABEL_KEY: int_feature(label),
                features.ACCENT_KEY: bytes_feature(record.accent),
                features.SPEAKER_ID_KEY: bytes_feature(record.speaker_id),
                features.GENDER_KEY: bytes_feature(record.gender),
                features.CLIP_ID_KEY: bytes_feature(record.clip_id),
                features.PATCH_INDEX_KEY: int_feature(patch_index),
                features.IS_SPEECH_KEY: int_feature(int(is_speech)),
            }
        )
    )


class EmbedClipsDoFn(beam.DoFn):
    """Decodes a batch of clips, embeds them with YAMNet, and emits per-patch examples.

    Main output: ``(split, serialized tf.Example)``. Side outputs:
    ``QUARANTINE_TAG`` with a ``QuarantineEntry`` per clip that could not be
    decoded or embedded (named by its index filename, the clip id, as the
    indexing step names its entries), and ``COUNTS_TAG`` with ``(kind, split, class_name)``
    keys (kind ``clips`` or ``patches``) for the run's summary.
    """

    def __init__(
        self,
        yamnet_dir: str,
        class_names: Sequence[str],
        non_speech_rule: str,
        energy_threshold_dbfs: float,
        batch_patches: int,
    ):
        """Initialises the DoFn.

        Args:
            yamnet_dir: Local or bucket path of the YAMNet SavedModel.
            class_names: The label vocabulary; its last entry is "Not a speech".
            non_speech_rule: A resolved rule: ``yamnet``, ``energy`` or ``none``.
            energy_threshold_dbfs: Threshold of the ``energy`` rule.
            batch_patches: Patches per YAMNet call.
        """
        super().__init__()
        self._yamnet_dir = yamnet_dir
        self._class_names = tuple(class_names)
        self._not_speech_label = features.class_id(features.NOT_SPEECH_CLASS_NAME, self._class_names)
        self._non_speech_rule = non_speech_rule
        self._energy_threshold_dbfs = energy_threshold_dbfs
        self._batch_patches = batch_patches
        self._embedder = None
        self._clips_embedded = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "clips_embedded")
        self._clips_quarantined = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "clips_quarantined")
        self._patches_written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "patches_written")

    def setup(self) -> None:
        """Loads YAMNet once per worker."""
        from components.yamnet.embedder import YamnetEmbedder

        self._embedder = YamnetEmbedder(self._yamnet_dir, batch_patches=self._batch_patches)
        self._clips_done_in_worker = 0

    def process(self, records: Sequence[corpus.ClipRecord]) -> Iterator[Any]:
        """Embeds one batch of clips; bad clips go to the quarantine output."""
        decoded_records: list[corpus.ClipRecord] = []
        waveforms: list[np.ndarray] = []
        for record in records:
            try:
                waveforms.append(_decode_clip(record))
                decoded_records.append(record)
            except ClipError as error:
                yield self._quarantine(record, error.reason)
        if not decoded_records:
            return
        try:
            clip_embeddings = self._embedder.embed_waveforms(waveforms)
        except (tf.errors.OpError, ValueError) as error:
            logger.warning(
                "Embedding a batch of %d clips failed (%s); retrying clip by clip", len(waveforms), error
            )
            clip_embeddings = []
            kept_records = []
            for record, waveform in zip(decoded_records, waveforms, strict=True):
                try:
                    clip_embeddings.extend(self._embedder.embed_waveforms([waveform]))
                    kept_records.append(record)
                except (tf.errors.OpError, ValueError) as clip_error:
                    yield self._quarantine(record, f"embedding failed: {_first_line(clip_error)}")
            decoded_records = kept_records
        for record, clip in zip(decoded_records, clip_embeddings, strict=True):
            yield from self._clip_outputs(record, clip)
        self._clips_done_in_worker += len(records)
        logger.info(
            "Embedded a batch of %d clips (%d patches); %d clips done in this worker",
            len(decoded_records),
            sum(clip.num_patches for clip in clip_embeddings),
            self._clips_done_in_worker,
        )

    def _quarantine(self, record: corpus.ClipRecord, reason: str) -> beam.pvalue.TaggedOutput:
        self._clips_quarantined.inc()
        logger.warning("Quarantined %s: %s", record.source, reason)
        return beam.pvalue.TaggedOutput(
            QUARANTINE_TAG, corpus.QuarantineEntry(filename=record.clip_id, reason=reason)
        )

    def _clip_outputs(self, record: corpus.ClipRecord, clip: Any) -> Iterator[Any]:
        is_speech = speech.speech_patches(
            self._non_speech_rule, clip.scores, clip.patch_levels_dbfs, self._energy_threshold_dbfs
        )
        self._clips_embedded.inc()
        yield beam.pvalue.TaggedOutput(COUNTS_TAG, ("clips", record.split, record.accent))
        for patch_index, embedding in enumerate(clip.embeddings):
            label = record.label if is_speech[patch_index] else self._not_speech_label
            example = patch_example(record, patch_index, embedding, label, bool(is_speech[patch_index]))
            self._patches_written.inc()
            yield beam.pvalue.TaggedOutput(COUNTS_TAG, ("patches", record.split, self._class_names[label]))
            yield record.split, example.SerializeToString()


class ClipError(Exception):
    """A clip that cannot be used, with the short reason the quarantine report gives."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _decode_clip(record: corpus.ClipRecord) -> np.ndarray:
    """Reads and decodes one clip to a 16 kHz mono waveform.

    Raises:
        ClipError: With a specific reason, for any clip that cannot be read or decoded.
    """
    try:
        encoded = corpus.read_clip_bytes(record.source)
    except audio.AudioDecodeError as error:
        raise ClipError(error.reason) from error
    except (OSError, tf.errors.OpError) as error:
        raise ClipError(f"unreadable: {_first_line(error)}") from error
    try:
        waveform = audio.load_waveform(encoded, record.source)
    except audio.AudioDecodeError as error:
        raise ClipError(error.reason) from error
    if waveform.size == 0:
        raise ClipError("no samples")
    return waveform


def _write_summary(counts: Iterable[tuple[tuple[str, str, str], int]], path: str) -> None:
    """Writes the clip and patch counts per split and class as JSON."""
    tf.io.gfile.makedirs(os.path.dirname(path))
    summary: dict[str, dict[str, dict[str, int]]] = {"clips": {}, "patches": {}}
    for (kind, split, class_name), count in counts:
        summary[kind].setdefault(split, {})[class_name] = count
    with tf.io.gfile.GFile(path, "w") as summary_file:
        json.dump(summary, summary_file, indent=2, sort_keys=True)


def _write_quarantine(entries: Iterable[corpus.QuarantineEntry], path: str) -> None:
    """Writes every quarantined entry, sorted by filename."""
    tf.io.gfile.makedirs(os.path.dirname(path))
    corpus.write_quarantine_csv(path, sorted(entries, key=lambda entry: entry.filename))


def build_embedding_pipeline(
    pipeline: beam.Pipeline,
    records: Sequence[corpus.ClipRecord],
    index_quarantine: Sequence[corpus.QuarantineEntry],
    embed_clips: EmbedClipsDoFn,
    examples_uri: str,
    report_uri: str,
    split_names: Sequence[str],
) -> None:
    """Adds the embedding job to a Beam pipeline.

    Args:
        pipeline: The Beam pipeline to add to.
        records: The clips to embed.
        index_quarantine: Entries quarantined while indexing, carried into the report.
        embed_clips: The configured DoFn.
        examples_uri: URI of the Examples artifact; each split goes to ``Split-<name>/``.
        report_uri: URI of the QuarantineReport artifact.
        split_names: Names of the splits to write.
    """
    outputs = (
        pipeline
        | "CreateClips" >> beam.Create(list(records))
        | "SpreadClips" >> beam.Reshuffle()
        | "BatchClips"
        >> beam.BatchElements(min_batch_size=MIN_CLIPS_PER_BATCH, max_batch_size=MAX_CLIPS_PER_BATCH)
        | "EmbedClips" >> beam.ParDo(embed_clips).with_outputs(QUARANTINE_TAG, COUNTS_TAG, main="examples")
    )
    for split_name in split_names:
        _ = (
            outputs.examples
            | f"Select{split_name.title()}" >> beam.Filter(lambda keyed, name=split_name: keyed[0] == name)
            | f"Serialized{split_name.title()}" >> beam.Values()
            | f"Write{split_name.title()}"
            >> beam.io.WriteToTFRecord(
                os.path.join(examples_uri, f"Split-{split_name}", EXAMPLES_FILE_PREFIX),
                file_name_suffix=".gz",
                compression_type=beam.io.filesystem.CompressionTypes.GZIP,
            )
        )
    index_entries = pipeline | "IndexQuarantine" >> beam.Create(list(index_quarantine))
    _ = (
        (index_entries, outputs[QUARANTINE_TAG])
        | "AllQuarantine" >> beam.Flatten()
        | "QuarantineList" >> beam.combiners.ToList()
        | "WriteQuarantine" >> beam.Map(_write_quarantine, os.path.join(report_uri, QUARANTINE_FILE))
    )
    _ = (
        outputs[COUNTS_TAG]
        | "CountPerKey" >> beam.combiners.Count.PerElement()
        | "CountList" >> beam.combiners.ToList()
        | "WriteSummary" >> beam.Map(_write_summary, os.path.join(report_uri, SUMMARY_FILE))
    )
