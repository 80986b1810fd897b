"""EmbeddingGen: the custom TFX component that turns clips into per-patch YAMNet examples.

It runs an Apache Beam job (``beam_job.py``) with the pipeline's
``beam_pipeline_args``, so the same component runs on the DirectRunner
locally and on Dataflow, Flink or Spark.
"""

import json
import logging
import os

import apache_beam as beam
import tensorflow as tf
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import corpus, features
from components.artifacts import ClipIndex, QuarantineReport
from components.corpus import component as corpus_component
from components.embedding import beam_job, speech
from components.yamnet import component as yamnet_component
from components.yamnet import export

logger = logging.getLogger(__name__)

SPLIT_NAMES = (features.TRAIN_SPLIT, features.EVAL_SPLIT)


# Raised when the quarantined fraction of a corpus is over the run's limit; indexing raises it too.
TooManyBadClipsError = corpus.TooManyBadEntriesError


@tfx.dsl.components.component(use_beam=True)
def EmbeddingGen(  # noqa: N802 - TFX components are named like classes.
    clip_index: tfx.dsl.components.InputArtifact[ClipIndex],
    yamnet_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    examples: tfx.dsl.components.OutputArtifact[standard_artifacts.Examples],
    quarantine_report: tfx.dsl.components.OutputArtifact[QuarantineReport],
    class_names_json: tfx.dsl.components.Parameter[str],
    non_speech_rule: tfx.dsl.components.Parameter[str],
    energy_threshold_dbfs: tfx.dsl.components.Parameter[float],
    batch_patches: tfx.dsl.components.Parameter[int],
    max_bad_fraction: tfx.dsl.components.Parameter[float],
    quarantine_copy_path: tfx.dsl.components.Parameter[str] = "",
    max_clip_seconds: tfx.dsl.components.Parameter[float] = 0.0,
    beam_pipeline: tfx.dsl.components.BeamComponentParameter[beam.Pipeline] = None,
) -> None:
    """Decodes every clip, embeds it with YAMNet and writes one tf.Example per patch.

    Args:
        clip_index: The labelled, split clips from CorpusIndexGen.
        yamnet_model: The YAMNet SavedModel from YamnetModelGen.
        examples: Output: TFRecords (uncompressed) under ``Split-train`` and ``Split-eval``.
        quarantine_report: Output: ``quarantine.csv`` (every bad entry of the
            run, from indexing and decoding) and ``summary.json`` (clips and
            patches per split and class).
        class_names_json: JSON list of the class names, in label-id order.
        non_speech_rule: ``auto``, ``yamnet``, ``energy`` or ``none``.
        energy_threshold_dbfs: Level at or below which a patch is not speech under ``energy``.
        batch_patches: Patches per YAMNet call, gathered across clips.
        max_bad_fraction: The run stops when more than this fraction of the
            corpus entries is quarantined.
        quarantine_copy_path: If set, the quarantine report is also copied
            here (``OUT/quarantine.csv`` locally), so that it outlives a run
            that stops: TFX removes a failed execution's outputs.
        max_clip_seconds: Clips longer than this are quarantined (``too long: ...``);
            0 accepts any length.
        beam_pipeline: The Beam pipeline TFX builds from ``beam_pipeline_args``.

    Raises:
        TooManyBadClipsError: If no good clip remains or the bad fraction is over the limit.
    """
    class_names = tuple(json.loads(class_names_json))
    yamnet_dir = yamnet_component.yamnet_saved_model_dir(yamnet_model.uri)
    pretrained = export.describe_weights(yamnet_dir).pretrained
    rule = speech.resolve_rule(non_speech_rule, yamnet_is_pretrained=pretrained)
    clips_path = os.path.join(clip_index.uri, corpus_component.CLIPS_FILE)
    index_quarantine_path = os.path.join(clip_index.uri, corpus_component.QUARANTINE_FILE)
    with tf.io.gfile.GFile(os.path.join(clip_index.uri, corpus_component.SUMMARY_FILE)) as summary_file:
        index_summary = json.load(summary_file)
    unknown_splits = sorted(set(index_summary["clips_per_split"]) - set(SPLIT_NAMES))
    if unknown_splits:
        raise ValueError(f"Clips are assigned to splits {unknown_splits}, which are not among {SPLIT_NAMES}")
    logger.info(
        "Embedding %d clips with YAMNet from %s (%s weights, non-speech rule %r, clips up to %s)",
        index_summary["clips"],
        yamnet_dir,
        "pretrained" if pretrained else "OFFLINE untrained",
        rule,
        f"{max_clip_seconds:g} s" if max_clip_seconds > 0 else "any length",
    )
    examples.split_names = artifact_utils.encode_split_names(list(SPLIT_NAMES))
    examples.set_string_custom_property(
        "payload_format", example_gen_pb2.PayloadFormat.Name(example_gen_pb2.FORMAT_TF_EXAMPLE)
    )
    embed_clips = beam_job.EmbedClipsDoFn(
        yamnet_dir=yamnet_dir,
        class_names=class_names,
        non_speech_rule=rule,
        energy_threshold_dbfs=energy_threshold_dbfs,
        batch_patches=batch_patches,
        max_clip_seconds=max_clip_seconds if max_clip_seconds > 0 else None,
    )
    with beam_pipeline as pipeline:
        beam_job.build_embedding_pipeline(
            pipeline,
            clips_path=clips_path,
            index_quarantine_path=index_quarantine_path,
            embed_clips=embed_clips,
            examples_uri=examples.uri,
            report_uri=quarantine_report.uri,
            split_names=SPLIT_NAMES,
        )
    report_path = os.path.join(quarantine_report.uri, beam_job.QUARANTINE_FILE)
    quarantined = corpus.count_quarantine_csv(report_path)
    with tf.io.gfile.GFile(os.path.join(quarantine_report.uri, beam_job.SUMMARY_FILE)) as summary_file:
        embedding_summary = json.load(summary_file)
    good_clips = sum(sum(per_class.values()) for per_class in embedding_summary["clips"].values())
    entries = index_summary["index_rows"]
    bad_fraction = quarantined / entries if entries else 1.0
    quarantine_report.set_int_custom_property("num_quarantined", quarantined)
    quarantine_report.set_int_custom_property("num_good_clips", good_clips)
    quarantine_report.set_float_custom_property("bad_fraction", bad_fraction)
    examples.set_int_custom_property("num_clips", good_clips)
    logger.info(
        "Embedded %d good clips; %d of %d entries quarantined (%.1f%%), report at %s",
        good_clips,
        quarantined,
        entries,
        100.0 * bad_fraction,
        report_path,
    )
    if quarantine_copy_path:
        tf.io.gfile.makedirs(os.path.dirname(quarantine_copy_path) or ".")
        tf.io.gfile.copy(report_path, quarantine_copy_path, overwrite=True)
        report_path = quarantine_copy_path
    check_bad_fraction(good_clips, quarantined, entries, max_bad_fraction, report_path)


def check_bad_fraction(
    good_clips: int, quarantined: int, entries: int, max_bad_fraction: float, report_path: str
) -> None:
    """Stops the run when no good clip remains or too much of the corpus is bad.

    Args:
        good_clips: Clips that reached the embeddings.
        quarantined: Entries set aside, from indexing and decoding.
        entries: Distinct corpus entries (duplicate index rows counted once).
        max_bad_fraction: The largest fraction of bad entries a run accepts.
        report_path: Where the quarantine report is, for the message.

    Raises:
        TooManyBadClipsError: As described above.
    """
    if good_clips == 0:
        raise TooManyBadClipsError(
            f"No good clip remains: all {entries} corpus entries were quarantined. See {report_path}"
        )
    bad_fraction = quarantined / entries if entries else 1.0
    if bad_fraction > max_bad_fraction:
        raise TooManyBadClipsError(
            f"{corpus.too_many_bad_entries_message(quarantined, entries, max_bad_fraction)} "
            f"See the reasons in {report_path}"
        )
