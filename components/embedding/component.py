"""EmbeddingGen: the custom TFX component that turns clips into per-patch YAMNet examples.

It runs an Apache Beam job (``beam_job.py``) with the pipeline's
``beam_pipeline_args``, so the same component runs on the DirectRunner
locally and on Dataflow, Flink or Spark.
"""

import dataclasses
import json
import logging

import apache_beam as beam
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import corpus, features
from components.artifact_files import (
    ClipIndexFiles,
    ClipIndexSummary,
    EmbeddingSummary,
    QuarantineReportFiles,
)
from components.artifacts import ClipIndex, QuarantineReport
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
    # A JSON string, not a List parameter: on Kubeflow, TFX 1.16 hands a list parameter over as its JSON text.
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
    index_summary = _read_index_summary(clip_index.uri)
    _log_start(index_summary, yamnet_dir, pretrained, rule, max_clip_seconds)
    _declare_examples(examples)
    embed_clips = beam_job.EmbedClipsDoFn(
        yamnet_dir=yamnet_dir,
        class_names=class_names,
        non_speech_rule=rule,
        energy_threshold_dbfs=energy_threshold_dbfs,
        batch_patches=batch_patches,
        max_clip_seconds=max_clip_seconds if max_clip_seconds > 0 else None,
    )
    _run_job(beam_pipeline, embed_clips, clip_index.uri, examples.uri, quarantine_report.uri)
    outcome = EmbeddingOutcome.read(quarantine_report.uri, entries=index_summary.index_rows)
    _record_outcome(outcome, examples, quarantine_report)
    report_path = corpus.copy_quarantine_report(outcome.report_path, quarantine_copy_path)
    check_bad_fraction(
        outcome.good_clips, outcome.quarantined, outcome.entries, max_bad_fraction, report_path
    )


@dataclasses.dataclass(frozen=True)
class EmbeddingOutcome:
    """What the embedding job made of the corpus, read back from its QuarantineReport.

    Attributes:
        good_clips: Clips that reached the Examples.
        quarantined: Entries set aside, from indexing and decoding.
        entries: Distinct corpus entries (duplicate index rows counted once).
        report_path: The quarantine report inside the artifact.
    """

    good_clips: int
    quarantined: int
    entries: int
    report_path: str

    @property
    def bad_fraction(self) -> float:
        """Quarantined entries over all entries; 1.0 for a corpus without entries."""
        return self.quarantined / self.entries if self.entries else 1.0

    @classmethod
    def read(cls, report_uri: str, entries: int) -> "EmbeddingOutcome":
        """Reads the counts the embedding job wrote into a QuarantineReport artifact.

        Args:
            report_uri: The artifact's URI.
            entries: Distinct corpus entries, from the clip index's summary.

        Returns:
            The outcome.
        """
        report_path = QuarantineReportFiles(report_uri).quarantine_path
        return cls(
            good_clips=EmbeddingSummary.read(report_uri).good_clips,
            quarantined=corpus.count_quarantine_csv(report_path),
            entries=entries,
            report_path=report_path,
        )


def _read_index_summary(clip_index_uri: str) -> ClipIndexSummary:
    """Reads the clip index's summary and checks that its clips go to the splits written here.

    Raises:
        ValueError: If some clips are assigned to a split not among ``SPLIT_NAMES``.
    """
    index_summary = ClipIndexSummary.read(clip_index_uri)
    unknown_splits = sorted(set(index_summary.clips_per_split) - set(SPLIT_NAMES))
    if unknown_splits:
        raise ValueError(f"Clips are assigned to splits {unknown_splits}, which are not among {SPLIT_NAMES}")
    return index_summary


def _log_start(
    index_summary: ClipIndexSummary, yamnet_dir: str, pretrained: bool, rule: str, max_clip_seconds: float
) -> None:
    """Logs what the job is about to embed, and how."""
    logger.info(
        "Embedding %d clips with YAMNet from %s (%s weights, non-speech rule %r, clips up to %s)",
        index_summary.clips,
        yamnet_dir,
        "pretrained" if pretrained else "OFFLINE untrained",
        rule,
        f"{max_clip_seconds:g} s" if max_clip_seconds > 0 else "any length",
    )


def _declare_examples(examples: standard_artifacts.Examples) -> None:
    """Declares the Examples artifact's splits and payload format, as TFX's ExampleGen does."""
    examples.split_names = artifact_utils.encode_split_names(list(SPLIT_NAMES))
    examples.set_string_custom_property(
        "payload_format", example_gen_pb2.PayloadFormat.Name(example_gen_pb2.FORMAT_TF_EXAMPLE)
    )


def _run_job(
    beam_pipeline: beam.Pipeline,
    embed_clips: beam_job.EmbedClipsDoFn,
    clip_index_uri: str,
    examples_uri: str,
    report_uri: str,
) -> None:
    """Runs the Beam job from the clip index's files to the Examples and the QuarantineReport."""
    clip_index_files = ClipIndexFiles(clip_index_uri)
    with beam_pipeline as pipeline:
        beam_job.build_embedding_pipeline(
            pipeline,
            clips_path=clip_index_files.clips_path,
            index_quarantine_path=clip_index_files.quarantine_path,
            embed_clips=embed_clips,
            examples_uri=examples_uri,
            report_uri=report_uri,
            split_names=SPLIT_NAMES,
        )


def _record_outcome(
    outcome: EmbeddingOutcome, examples: standard_artifacts.Examples, quarantine_report: QuarantineReport
) -> None:
    """Sets the outcome's counts as custom properties of the output artifacts, and logs them."""
    quarantine_report.set_int_custom_property("num_quarantined", outcome.quarantined)
    quarantine_report.set_int_custom_property("num_good_clips", outcome.good_clips)
    quarantine_report.set_float_custom_property("bad_fraction", outcome.bad_fraction)
    examples.set_int_custom_property("num_clips", outcome.good_clips)
    logger.info(
        "Embedded %d good clips; %d of %d entries quarantined (%.1f%%), report at %s",
        outcome.good_clips,
        outcome.quarantined,
        outcome.entries,
        100.0 * outcome.bad_fraction,
        outcome.report_path,
    )


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
