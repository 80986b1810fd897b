"""The Beam job of EmbeddingGen: clips in, one tf.Example per YAMNet patch out.

Errors are caught clip by clip inside the DoFn, so a bad clip costs only
itself, on the DirectRunner and on Dataflow, Flink or Spark alike. Clips are
gathered into batches so that the front end runs once per batch and YAMNet
sees patches from many clips in one call. The threads of one worker process
share one loaded YAMNet. Each split's examples leave the DoFn on their own
output and the counts for the summary are per clip, so that the per-patch
work outside the DoFn is only the write.

The TFRecords are written uncompressed: gzip shrinks float32 embeddings
little (see README, Benchmarks), and costs CPU time here and again in every
step that reads them, on every training epoch. Readers pick the compression
from the file name (``.gz`` or not), so gzipped Examples still read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.utils import shared

from components import artifact_files, audio, corpus, features
from components.embedding import patch_examples, speech
from components.errors import AccentPipelineError, UnusableClipError, first_line

logger = logging.getLogger(__name__)

# Tags of the DoFn's outputs; each split's examples have their own (see ``examples_tag``).
QUARANTINE_TAG = "quarantine"
COUNTS_TAG = "counts"
EXAMPLES_TAG_PREFIX = "examples-"

# Prefix of the TFRecord files under each ``Split-<name>/`` of the Examples artifact. The
# QuarantineReport's files are laid out by ``artifact_files.QuarantineReportFiles``.
EXAMPLES_FILE_PREFIX = "data_tfrecord"

# Clips gathered into one DoFn call, so that the front end runs once per batch and YAMNet batches
# patches across clips. Beam's adaptive batching starts at the minimum and, since a batch's time
# grows in proportion to its clips, stays near it; so the minimum is set high enough that a batch
# fills YAMNet's calls (see README, Benchmarks, for the measurements behind it). At the maximum,
# OpenSLR-83's clips (about 6 s, 11 patches) fill about one network call of EMBEDDING_BATCH_PATCHES.
MIN_CLIPS_PER_BATCH = 16
MAX_CLIPS_PER_BATCH = 48

# Beam metric namespace, shown by the runner's monitoring.
METRICS_NAMESPACE = "accent_embedding"


def examples_tag(split_name: str) -> str:
    """Returns the tag of the DoFn output that carries one split's serialized examples."""
    return EXAMPLES_TAG_PREFIX + split_name


class EmbedClipsDoFn(beam.DoFn):
    """Decodes a batch of clips, embeds them with YAMNet, and emits per-patch examples.

    Outputs: ``examples_tag(split)`` with the serialized tf.Examples of the
    split's patches; ``QUARANTINE_TAG`` with a ``QuarantineEntry`` per clip
    that could not be decoded or embedded (named by its index filename, the
    clip id, as the indexing step names its entries); and ``COUNTS_TAG`` with
    ``((kind, split, class_name), count)`` pairs (kind
    ``artifact_files.CLIPS_KIND`` or ``PATCHES_KIND``), one per clip and
    class, for the run's ``EmbeddingSummary``.
    """

    def __init__(
        self,
        yamnet_dir: str,
        class_names: Sequence[str],
        non_speech_rule: str,
        energy_threshold_dbfs: float,
        batch_patches: int,
        max_clip_seconds: float | None = None,
    ):
        """Initialises the DoFn.

        Args:
            yamnet_dir: Local or bucket path of the YAMNet SavedModel.
            class_names: The label vocabulary; its last entry is "Not a speech".
            non_speech_rule: A resolved rule: ``yamnet``, ``energy`` or ``none``.
            energy_threshold_dbfs: Threshold of the ``energy`` rule.
            batch_patches: Patches per YAMNet call.
            max_clip_seconds: Clips longer than this are quarantined (``too long: ...``);
                None accepts any length.

        Raises:
            ValueError: If ``max_clip_seconds`` is not positive.
        """
        if max_clip_seconds is not None and not max_clip_seconds > 0:
            raise ValueError(f"max_clip_seconds must be positive or None, got {max_clip_seconds!r}")
        super().__init__()
        self._yamnet_dir = yamnet_dir
        self._class_names = tuple(class_names)
        self._not_speech_label = features.class_id(features.NOT_SPEECH_CLASS_NAME, self._class_names)
        self._non_speech_rule = non_speech_rule
        self._energy_threshold_dbfs = energy_threshold_dbfs
        self._batch_patches = batch_patches
        self._max_clip_seconds = max_clip_seconds
        self._embedder = None
        self._shared_embedder = shared.Shared()
        self._clips_embedded = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "clips_embedded")
        self._clips_quarantined = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "clips_quarantined")
        self._patches_written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "patches_written")

    def setup(self) -> None:
        """Loads YAMNet once per worker process; the process's threads share it."""
        self._embedder = self._shared_embedder.acquire(
            self._load_embedder, tag=f"{self._yamnet_dir}:{self._batch_patches}"
        )
        self._clips_done_in_worker = 0

    def _load_embedder(self) -> Any:
        from components.yamnet.embedder import YamnetEmbedder

        return YamnetEmbedder(self._yamnet_dir, batch_patches=self._batch_patches)

    def process(self, records: Sequence[corpus.ClipRecord]) -> Iterator[Any]:
        """Embeds one batch of clips; bad clips go to the quarantine output."""
        decoded_records: list[corpus.ClipRecord] = []
        waveforms: list[np.ndarray] = []
        for record in records:
            try:
                waveforms.append(decode_clip(record, self._max_clip_seconds))
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
                    yield self._quarantine(record, f"embedding failed: {first_line(clip_error)}")
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
        labels = np.where(is_speech, record.label, self._not_speech_label)
        encoder = patch_examples.PatchExampleEncoder(record)
        tag = examples_tag(record.split)
        for patch_index, embedding in enumerate(clip.embeddings):
            yield beam.pvalue.TaggedOutput(
                tag,
                encoder.encode(
                    patch_index, embedding, int(labels[patch_index]), bool(is_speech[patch_index])
                ),
            )
        self._clips_embedded.inc()
        self._patches_written.inc(clip.num_patches)
        yield beam.pvalue.TaggedOutput(
            COUNTS_TAG, ((artifact_files.CLIPS_KIND, record.split, record.accent), 1)
        )
        for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
            yield beam.pvalue.TaggedOutput(
                COUNTS_TAG,
                ((artifact_files.PATCHES_KIND, record.split, self._class_names[int(label)]), int(count)),
            )


class ClipError(AccentPipelineError):
    """A clip that cannot be used, with the short reason the quarantine report gives."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode_clip(record: corpus.ClipRecord, max_clip_seconds: float | None = None) -> np.ndarray:
    """Reads and decodes one clip to a 16 kHz mono waveform.

    Every failure is the clip's own: whatever reading or decoding raises,
    running out of memory included, becomes a ``ClipError`` with a reason.

    Args:
        record: The clip.
        max_clip_seconds: Clips longer than this are refused; None accepts any length.

    Returns:
        The waveform.

    Raises:
        ClipError: With a specific reason, for any clip that cannot be read or decoded.
    """
    try:
        encoded = corpus.read_clip_bytes(record.source)
        waveform = audio.load_waveform(encoded, record.source, max_seconds=max_clip_seconds)
    except UnusableClipError as error:  # A read error or a decode error: both are quarantine reasons.
        raise ClipError(error.reason) from error
    except MemoryError as error:
        raise ClipError("out of memory: reading or decoding the clip") from error
    except (OSError, tf.errors.OpError) as error:
        raise ClipError(f"unreadable: {first_line(error)}") from error
    except Exception as error:  # A decoder bug on one file must not sink the run: quarantine the clip.
        logger.warning("Unexpected error decoding %s", record.source, exc_info=True)
        raise ClipError(f"decoder error: {type(error).__name__}: {first_line(error)}") from error
    if waveform.size == 0:
        raise ClipError("no samples")
    return waveform


def _write_summary(counts: Iterable[tuple[tuple[str, str, str], int]], report_uri: str) -> None:
    """Writes the clip and patch counts per split and class into the QuarantineReport artifact."""
    artifact_files.EmbeddingSummary.from_counts(counts).write(report_uri)


def _parse_clip_line(line: str, split_names: Sequence[str]) -> corpus.ClipRecord:
    """Parses one line of the clip index, checking its split."""
    record = corpus.parse_clip_line(line)
    if record.split not in split_names:
        raise ValueError(
            f"Clip {record.clip_id} is assigned to split {record.split!r}, not one of {split_names}"
        )
    return record


def build_embedding_pipeline(
    pipeline: beam.Pipeline,
    clips_path: str,
    index_quarantine_path: str,
    embed_clips: EmbedClipsDoFn,
    examples_uri: str,
    report_uri: str,
    split_names: Sequence[str],
) -> None:
    """Adds the embedding job to a Beam pipeline.

    The clip index and the indexing step's quarantine are read from their
    files by Beam sources, and the report is written by a Beam sink, so no
    list of clips or of bad entries is ever held whole in memory, however
    large the corpus. The report's rows come in no particular order.

    Args:
        pipeline: The Beam pipeline to add to.
        clips_path: The clip index CSV (``write_clip_index``) of the clips to embed.
        index_quarantine_path: The quarantine CSV of the indexing step, carried into the report.
        embed_clips: The configured DoFn.
        examples_uri: URI of the Examples artifact; each split goes to ``Split-<name>/``.
        report_uri: URI of the QuarantineReport artifact.
        split_names: Names of the splits to write.

    Raises:
        ValueError: If the clip index's header is not the expected one. A clip assigned to a
            split not among ``split_names`` fails the job.
    """
    split_names = tuple(split_names)
    corpus.check_clip_index_header(clips_path)
    outputs = (
        pipeline
        | "ReadClips" >> beam.io.ReadFromText(clips_path, skip_header_lines=1)
        | "ParseClips" >> beam.Map(_parse_clip_line, split_names)
        | "SpreadClips" >> beam.Reshuffle()
        | "BatchClips"
        >> beam.BatchElements(min_batch_size=MIN_CLIPS_PER_BATCH, max_batch_size=MAX_CLIPS_PER_BATCH)
        | "EmbedClips"
        >> beam.ParDo(embed_clips).with_outputs(
            QUARANTINE_TAG, COUNTS_TAG, *(examples_tag(split_name) for split_name in split_names)
        )
    )
    for split_name in split_names:
        _ = outputs[examples_tag(split_name)] | f"Write{split_name.title()}" >> beam.io.WriteToTFRecord(
            os.path.join(examples_uri, f"Split-{split_name}", EXAMPLES_FILE_PREFIX),
            compression_type=beam.io.filesystem.CompressionTypes.UNCOMPRESSED,
        )
    index_lines = pipeline | "ReadIndexQuarantine" >> beam.io.ReadFromText(
        index_quarantine_path, skip_header_lines=1
    )
    decode_lines = outputs[QUARANTINE_TAG] | "FormatQuarantine" >> beam.Map(corpus.format_quarantine_line)
    _ = (
        (index_lines, decode_lines)
        | "AllQuarantine" >> beam.Flatten()
        | "WriteQuarantine"
        >> beam.io.WriteToText(
            artifact_files.QuarantineReportFiles(report_uri).quarantine_path,
            num_shards=1,
            shard_name_template="",
            header=",".join(corpus.QUARANTINE_COLUMNS),
        )
    )
    _ = (
        outputs[COUNTS_TAG]
        | "SumPerKey" >> beam.CombinePerKey(sum)
        | "CountList" >> beam.combiners.ToList()
        | "WriteSummary" >> beam.Map(_write_summary, report_uri)
    )
