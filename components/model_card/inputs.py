"""Typed inputs of the model card, and the small readers that build them from artifact URIs.

Every number of the card comes from one of these readers: TFMA's evaluation output
(``tfma.load_eval_result`` and ``tfma.load_validation_result``), the Trainer's
``training_history.json``, the clip index and the quarantine report. Precision,
recall and F1 are read off TFMA's multi-class confusion matrix (the argmax
prediction); d' is √2·Φ⁻¹(AUC) of TFMA's AUC.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from components import artifact_files, evaluation, evaluation_metrics, features
from components.model_card.history import TrainingHistory, read_training_history

if TYPE_CHECKING:
    from components.tuner.trials import TrialRow

logger = logging.getLogger(__name__)

# Slice names of the card: the overall slice, then ``feature=value``.
OVERALL_SLICE = "Overall"

# Names the Evaluator gives the two models when there is a baseline.
CANDIDATE_MODEL_NAME = "candidate"
BASELINE_MODEL_NAME = "baseline"

# File of the blessing artifact when the model was blessed.
BLESSED_FILE = "BLESSED"


def d_prime(auc: float) -> float:
    """Returns d' = √2·Φ⁻¹(AUC), the reference's sensitivity index; NaN if AUC is NaN, ±inf at 0 or 1."""
    if auc is None or not math.isfinite(auc):
        return float("nan")
    return float(math.sqrt(2.0) * stats.norm.ppf(auc))


@dataclasses.dataclass(frozen=True)
class RocCurve:
    """One-vs-rest ROC points of one class (TFMA's ConfusionMatrixPlot), in threshold order."""

    false_positive_rate: tuple[float, ...]
    true_positive_rate: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class ClassMetrics:
    """One class's one-vs-rest metrics on one slice.

    Attributes:
        class_name: The class.
        support: Patches labelled with the class (row sum of TFMA's confusion matrix).
        predicted: Patches predicted as the class (column sum).
        precision: ``tp / predicted``; NaN when nothing is predicted as the class.
        recall: ``tp / support``; NaN when the class is absent.
        f1: Harmonic mean of precision and recall; NaN when either is undefined or both are 0.
        auc: TFMA's one-vs-rest AUC; NaN when the class is absent or always present (TFMA reports 0.0).
        d_prime: √2·Φ⁻¹(auc).
    """

    class_name: str
    support: int
    predicted: int
    precision: float
    recall: float
    f1: float
    auc: float
    d_prime: float


@dataclasses.dataclass(frozen=True)
class SliceMetrics:
    """TFMA's metrics of one slice of one model.

    Attributes:
        name: ``Overall`` or ``feature=value``.
        example_count: Patches in the slice.
        accuracy: Patch-level accuracy.
        macro_auc: ``present_class_macro_auc``, the gate's metric.
        macro_d_prime: √2·Φ⁻¹(macro_auc).
        present_class_count: Classes averaged in ``macro_auc``.
        clip_accuracy: Clip-level accuracy.
        clip_count: Clips scored.
        confusion_matrix: ``[num_classes, num_classes]`` patch counts, actual rows, predicted columns.
        classes: Per-class metrics, in class id order.
        roc_curves: ROC points per class name (classes present with both positives and negatives).
        clip_macro_auc: Clip-level macro AUC over the classes with positive and negative clips.
        clip_macro_d_prime: √2·Φ⁻¹(clip_macro_auc).
        clip_present_class_count: Classes averaged in ``clip_macro_auc``.
        clip_confusion_matrix: ``[num_classes, num_classes]`` clip counts, accent rows, predicted columns.
        clip_classes: Per-class clip-level metrics, in class id order.
    """

    name: str
    example_count: int
    accuracy: float
    macro_auc: float
    macro_d_prime: float
    present_class_count: int
    clip_accuracy: float
    clip_count: int
    confusion_matrix: np.ndarray
    classes: tuple[ClassMetrics, ...]
    roc_curves: Mapping[str, RocCurve]
    clip_macro_auc: float = float("nan")
    clip_macro_d_prime: float = float("nan")
    clip_present_class_count: int = 0
    clip_confusion_matrix: np.ndarray | None = None
    clip_classes: tuple[ClassMetrics, ...] = ()

    def present_classes(self) -> tuple[ClassMetrics, ...]:
        """The classes with at least one patch in the slice."""
        return tuple(metrics for metrics in self.classes if metrics.support > 0)

    def present_clip_classes(self) -> tuple[ClassMetrics, ...]:
        """The classes with at least one scored clip in the slice."""
        return tuple(metrics for metrics in self.clip_classes if metrics.support > 0)


@dataclasses.dataclass(frozen=True)
class Threshold:
    """One threshold of the blessing and whether the candidate met it."""

    metric: str
    kind: str
    bound: float
    value: float
    passed: bool


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """TFMA's evaluation of the candidate (and the baseline, when there was one).

    Attributes:
        slices: The candidate's metrics per slice name, the overall slice first.
        baseline: The baseline's overall metrics, or None on a first run.
        validation_ok: TFMA's verdict on the thresholds.
        thresholds: Each threshold of the gate, with the candidate's value.
    """

    slices: Mapping[str, SliceMetrics]
    baseline: SliceMetrics | None
    validation_ok: bool
    thresholds: tuple[Threshold, ...]

    @property
    def overall(self) -> SliceMetrics:
        """The overall slice."""
        return self.slices[OVERALL_SLICE]


@dataclasses.dataclass(frozen=True)
class GroupCounts:
    """Clips, speakers and (when known) patches of one group."""

    clips: int
    speakers: int
    patches: int | None = None


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """The data the model saw.

    Attributes:
        by_split_accent: ``(split, accent)`` to counts (clips reaching the Examples, their speakers,
            patches labelled with the accent).
        by_split_gender: ``(split, gender)`` to clip, speaker and (from StatisticsGen) patch counts.
        not_speech_patches: Split to patches labelled "Not a speech".
        quarantine_by_reason: Reason (the text before its first colon) to entries set aside.
        quarantine_total: Entries set aside.
        split_strategy: ``speaker`` or ``utterance``, or ``unknown``.
    """

    by_split_accent: Mapping[tuple[str, str], GroupCounts]
    by_split_gender: Mapping[tuple[str, str], GroupCounts]
    not_speech_patches: Mapping[str, int]
    quarantine_by_reason: Mapping[str, int]
    quarantine_total: int
    split_strategy: str

    def speakers(self, split: str | None = None) -> int:
        """Speakers over every accent of a split (or of both)."""
        return sum(
            counts.speakers
            for (group_split, _), counts in self.by_split_gender.items()
            if split is None or group_split == split
        )

    def accents(self) -> tuple[str, ...]:
        """The accents with at least one clip, sorted."""
        return tuple(sorted({accent for (_, accent), counts in self.by_split_accent.items() if counts.clips}))


@dataclasses.dataclass(frozen=True)
class HyperparameterSearch:
    """The Tuner's search, when the run had one: every completed trial and the chosen values.

    Attributes:
        trials: The trials (``components.tuner.trials.TrialRow``), by trial id.
        chosen: The best trial's hyperparameter values, which the Trainer built its model from.
    """

    trials: tuple[TrialRow, ...]
    chosen: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class LayerSummary:
    """One layer of the trained classifier: its name, Keras class, output shape and parameter count."""

    name: str
    kind: str
    output_shape: str
    parameters: int


@dataclasses.dataclass(frozen=True)
class SchemaFeature:
    """One feature of the curated schema the examples were validated against.

    Attributes:
        name: The feature's name.
        type: ``FLOAT``, ``INT`` or ``BYTES``.
        values: Values per example, e.g. ``1024`` or ``1`` (``min-max`` when they differ).
        presence: Least fraction of examples that must have it, e.g. ``1``.
        domain: The value domain, e.g. ``0 to 6, categorical`` or the named string domain.
    """

    name: str
    type: str
    values: str
    presence: str
    domain: str


@dataclasses.dataclass(frozen=True)
class ExampleClip:
    """One eval clip for the 3-panel figure: waveform, log-mel spectrogram, per-patch probabilities."""

    clip_id: str
    accent: str
    waveform: np.ndarray
    sample_rate: int
    log_mel: np.ndarray
    patch_probabilities: np.ndarray


@dataclasses.dataclass(frozen=True)
class YamnetProvenance:
    """Where YAMNet came from: its handle, and whether its weights are the pretrained ones."""

    handle: str
    pretrained: bool


@dataclasses.dataclass(frozen=True)
class ModelCardInputs:
    """Everything the card shows. Build it with ``read_model_card_inputs`` or by hand in tests.

    Attributes:
        model_name: The model's name.
        version: Which model this is, e.g. ``candidate of Trainer run 20, card written <date>``.
        class_names: The label vocabulary, in id order.
        yamnet: YAMNet's provenance.
        history: The Trainer's history and hyperparameters.
        evaluation: TFMA's evaluation.
        blessed: The blessing.
        data: The data summary.
        example_clips: Clips for the 3-panel figure (may be empty).
        search: The Tuner's hyperparameter search, or None when the run had no Tuner.
        layers: The trained classifier's layers, in order (may be empty: the card then builds the
            reference model to show its architecture).
        schema_features: The features of the schema the examples were validated against (may be empty).
        dataset_name: Name of the corpus, for the Hugging Face card.
    """

    model_name: str
    version: str
    class_names: tuple[str, ...]
    yamnet: YamnetProvenance
    history: TrainingHistory
    evaluation: Evaluation
    blessed: bool
    data: DataSummary
    example_clips: tuple[ExampleClip, ...] = ()
    search: HyperparameterSearch | None = None
    layers: tuple[LayerSummary, ...] = ()
    schema_features: tuple[SchemaFeature, ...] = ()
    dataset_name: str = "OpenSLR-83 (Crowdsourced UK and Ireland English Dialect speech)"


# TFMA's evaluation


def _slice_name(slice_key: Sequence[tuple[str, Any]]) -> str:
    if not slice_key:
        return OVERALL_SLICE
    return ", ".join(
        f"{key}={value.decode() if isinstance(value, bytes) else value}" for key, value in slice_key
    )


def _double(values: Mapping[str, Any], name: str) -> float:
    value = values.get(name)
    if value is None:
        return float("nan")
    if isinstance(value, Mapping):
        value = value.get("doubleValue", float("nan"))
    return float(value)


def metric_array(value: Mapping[str, Any] | None) -> np.ndarray | None:
    """Reads an array-valued TFMA metric as ``load_eval_result`` gives it (``{"arrayValue": ...}``).

    Args:
        value: The metric's value, or None when TFMA did not report it.

    Returns:
        The array in its shape, or None when the value is missing or not an array.
    """
    array = (value or {}).get("arrayValue") if isinstance(value, Mapping) else None
    if not array:
        return None
    shape = [int(size) for size in array.get("shape", [])]
    for field, dtype in (
        ("int64Values", np.int64),
        ("int32Values", np.int32),
        ("float64Values", np.float64),
        ("float32Values", np.float32),
    ):
        if field in array:
            return np.asarray([float(item) for item in array[field]], dtype=dtype).reshape(shape)
    return np.zeros(shape, dtype=np.float64) if 0 in shape else None


def _count(values: Mapping[str, Any], name: str) -> int:
    """A count metric; 0 when TFMA did not report it."""
    value = _double(values, name)
    return int(value) if math.isfinite(value) else 0


def _confusion_matrix(plot: Mapping[str, Any], num_classes: int) -> np.ndarray:
    """Reads TFMA's MultiClassConfusionMatrixPlot (its single threshold: argmax) as counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    matrices = plot.get("multiClassConfusionMatrixAtThresholds", {}).get("matrices", [])
    if not matrices:
        return matrix
    for entry in matrices[0].get("entries", []):
        actual = int(entry.get("actualClassId", 0))
        predicted = int(entry.get("predictedClassId", 0))
        if 0 <= actual < num_classes and 0 <= predicted < num_classes:
            matrix[actual, predicted] += round(float(entry.get("numWeightedExamples", 0.0)))
    return matrix


def _roc_curve(plot: Mapping[str, Any]) -> RocCurve | None:
    """Reads TFMA's ConfusionMatrixPlot of one class as ROC points, or None without positives/negatives."""
    matrices = plot.get("confusionMatrixAtThresholds", {}).get("matrices", [])
    points = []
    for matrix in matrices:
        tp, fn = float(matrix.get("truePositives", 0)), float(matrix.get("falseNegatives", 0))
        fp, tn = float(matrix.get("falsePositives", 0)), float(matrix.get("trueNegatives", 0))
        if tp + fn == 0 or fp + tn == 0:
            return None
        points.append((fp / (fp + tn), tp / (tp + fn)))
    if not points:
        return None
    points.sort()
    return RocCurve(tuple(point[0] for point in points), tuple(point[1] for point in points))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def _class_metrics(
    class_names: Sequence[str], matrix: np.ndarray, aucs: Sequence[float]
) -> tuple[ClassMetrics, ...]:
    """Per-class metrics from a confusion matrix (actual rows, predicted columns) and one AUC per class."""
    total = int(matrix.sum())
    result = []
    for class_id, class_name in enumerate(class_names):
        tp = int(matrix[class_id, class_id])
        support = int(matrix[class_id].sum())
        predicted = int(matrix[:, class_id].sum())
        precision = _ratio(tp, predicted)
        recall = _ratio(tp, support)
        if math.isnan(precision) or math.isnan(recall) or precision + recall == 0:
            f1 = float("nan")
        else:
            f1 = 2 * precision * recall / (precision + recall)
        auc = float(aucs[class_id]) if class_id < len(aucs) else float("nan")
        if support == 0 or support == total:
            auc = float("nan")  # TFMA reports 0.0 for an AUC that is undefined.
        result.append(ClassMetrics(class_name, support, predicted, precision, recall, f1, auc, d_prime(auc)))
    return tuple(result)


def slice_metrics_from_tfma(
    slice_key: Sequence[tuple[str, Any]],
    metrics: Mapping[str, Mapping[str, Any]],
    plots: Mapping[str, Mapping[str, Any]],
    class_names: Sequence[str],
) -> SliceMetrics:
    """Builds one slice's metrics from TFMA's ``{sub key: {name: value}}`` metrics and plots.

    Args:
        slice_key: TFMA's slice key, ``()`` for the overall slice.
        metrics: ``EvalResult.slicing_metrics``' value for the output ``""``.
        plots: ``EvalResult.plots``' value for the output ``""``.
        class_names: The label vocabulary.

    Returns:
        The slice's metrics.
    """
    overall = metrics.get("", {})
    matrix = _confusion_matrix(plots.get("", {}), len(class_names))
    roc_curves = {}
    for class_id, class_name in enumerate(class_names):
        curve = _roc_curve(plots.get(f"classId:{class_id}", {}))
        if curve is not None:
            roc_curves[class_name] = curve
    macro_auc = _double(overall, evaluation.GATING_METRIC_NAME)
    patch_aucs = [
        _double(metrics.get(f"classId:{class_id}", {}), evaluation.PER_CLASS_AUC_METRIC_NAME)
        for class_id in range(len(class_names))
    ]
    num_classes = len(class_names)
    clip_matrix = metric_array(overall.get(evaluation_metrics.CLIP_CONFUSION_MATRIX_NAME))
    if clip_matrix is not None and clip_matrix.shape != (num_classes, num_classes):
        clip_matrix = None
    clip_aucs = metric_array(overall.get(evaluation_metrics.CLIP_CLASS_AUCS_NAME))
    clip_macro_auc = _double(overall, evaluation_metrics.CLIP_MACRO_AUC_NAME)
    return SliceMetrics(
        name=_slice_name(slice_key),
        example_count=_count(overall, "example_count"),
        accuracy=_double(overall, evaluation.ACCURACY_METRIC_NAME),
        macro_auc=macro_auc,
        macro_d_prime=d_prime(macro_auc),
        present_class_count=_count(overall, evaluation_metrics.PRESENT_CLASS_COUNT_NAME),
        clip_accuracy=_double(overall, evaluation.CLIP_ACCURACY_METRIC_NAME),
        clip_count=_count(overall, evaluation_metrics.CLIP_COUNT_NAME),
        confusion_matrix=matrix,
        classes=_class_metrics(class_names, matrix, patch_aucs),
        roc_curves=roc_curves,
        clip_macro_auc=clip_macro_auc,
        clip_macro_d_prime=d_prime(clip_macro_auc),
        clip_present_class_count=_count(overall, evaluation_metrics.CLIP_PRESENT_CLASS_COUNT_NAME),
        clip_confusion_matrix=clip_matrix,
        clip_classes=(
            _class_metrics(class_names, clip_matrix, [] if clip_aucs is None else clip_aucs.reshape(-1))
            if clip_matrix is not None
            else ()
        ),
    )


def _model_names(evaluation_uri: str) -> list[str]:
    with open(os.path.join(evaluation_uri, "eval_config.json")) as config_file:
        config = json.load(config_file)
    return [spec.get("name", "") for spec in config.get("evalConfig", {}).get("modelSpecs", [])]


def _load_slices(evaluation_uri: str, model_name: str, class_names: Sequence[str]) -> dict[str, SliceMetrics]:
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri, model_name=model_name or None)
    plots = {tuple(slice_key): by_output.get("", {}) for slice_key, by_output in result.plots or []}
    slices = {}
    for slice_key, by_output in result.slicing_metrics:
        key = tuple(slice_key)
        slices[_slice_name(key)] = slice_metrics_from_tfma(
            key, by_output.get("", {}), plots.get(key, {}), class_names
        )
    ordered = {OVERALL_SLICE: slices.pop(OVERALL_SLICE)} if OVERALL_SLICE in slices else {}
    ordered.update(sorted(slices.items()))
    return ordered


def _thresholds(
    evaluation_uri: str, candidate: SliceMetrics, baseline: SliceMetrics | None
) -> tuple[Threshold, ...]:
    with open(os.path.join(evaluation_uri, "eval_config.json")) as config_file:
        config = json.load(config_file)["evalConfig"]
    thresholds = []
    for spec in config.get("metricsSpecs", []):
        for metric in spec.get("metrics", []):
            name = json.loads(metric.get("config") or "{}").get("name", metric.get("className", ""))
            for per_slice in metric.get("perSliceThresholds", []):
                if any(slicing_spec for slicing_spec in per_slice.get("slicingSpecs", [])):
                    continue  # Only overall-slice thresholds gate this pipeline.
                threshold = per_slice.get("threshold", {})
                value = _double({"value": getattr(candidate, "macro_auc", float("nan"))}, "value")
                lower = threshold.get("valueThreshold", {}).get("lowerBound")
                if lower is not None:
                    thresholds.append(Threshold(name, "at least", float(lower), value, value >= float(lower)))
                change = threshold.get("changeThreshold", {}).get("absolute")
                if change is not None and baseline is not None:
                    difference = value - baseline.macro_auc
                    thresholds.append(
                        Threshold(
                            name,
                            "change vs baseline at least",
                            float(change),
                            difference,
                            difference >= float(change),
                        )
                    )
    return tuple(thresholds)


def read_evaluation(evaluation_uri: str, class_names: Sequence[str]) -> Evaluation:
    """Reads the Evaluator's ModelEvaluation artifact with TFMA.

    Args:
        evaluation_uri: The artifact's URI (the TFMA output path).
        class_names: The label vocabulary.

    Returns:
        The candidate's slices, the baseline's overall slice (if any) and the thresholds.
    """
    import tensorflow_model_analysis as tfma

    names = _model_names(evaluation_uri)
    has_baseline = BASELINE_MODEL_NAME in names
    candidate_name = CANDIDATE_MODEL_NAME if has_baseline else (names[0] if names else "")
    slices = _load_slices(evaluation_uri, candidate_name, class_names)
    baseline = None
    if has_baseline:
        baseline = _load_slices(evaluation_uri, BASELINE_MODEL_NAME, class_names).get(OVERALL_SLICE)
    validation = tfma.load_validation_result(evaluation_uri)
    return Evaluation(
        slices=slices,
        baseline=baseline,
        validation_ok=bool(validation.validation_ok),
        thresholds=_thresholds(evaluation_uri, slices[OVERALL_SLICE], baseline),
    )


def read_blessing(blessing_uri: str) -> bool:
    """Returns whether a ModelBlessing artifact says BLESSED."""
    return os.path.exists(os.path.join(blessing_uri, BLESSED_FILE))


# The data


def _reason_kind(reason: str) -> str:
    """The reason's kind: its text before the first colon (``truncated: data chunk ...`` -> ``truncated``)."""
    return reason.split(":", 1)[0].strip() or reason


def read_data_summary(
    clip_index_uri: str,
    quarantine_report_uri: str,
    split_strategy: str = "unknown",
    patches_by_split_gender: Mapping[tuple[str, str], int] | None = None,
) -> DataSummary:
    """Counts clips, speakers and patches per split, accent and gender, and the quarantine by reason.

    Clips and speakers come from the clip index restricted to the clips that reached the Examples
    (the quarantine report lists the others); patches per accent from the embedding job's summary,
    and per gender from StatisticsGen (``read_patches_by_split_gender``).

    Args:
        clip_index_uri: The CorpusIndexGen's ClipIndex artifact URI.
        quarantine_report_uri: The EmbeddingGen's QuarantineReport artifact URI.
        split_strategy: ``speaker`` or ``utterance``.
        patches_by_split_gender: ``(split, gender)`` to patches, or None when unknown.

    Returns:
        The summary.
    """
    from components.corpus import quarantine, records

    entries = quarantine.read_quarantine_csv(
        artifact_files.QuarantineReportFiles(quarantine_report_uri).quarantine_path
    )
    set_aside = {entry.filename for entry in entries}
    clips = [
        record
        for record in records.read_clip_index(artifact_files.ClipIndexFiles(clip_index_uri).clips_path)
        if record.clip_id not in set_aside
    ]
    summary = artifact_files.EmbeddingSummary.read(quarantine_report_uri)
    clip_counts: dict[tuple[str, str], int] = collections.Counter()
    speakers: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    gender_clips: dict[tuple[str, str], int] = collections.Counter()
    gender_speakers: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for record in clips:
        clip_counts[(record.split, record.accent)] += 1
        speakers[(record.split, record.accent)].add(record.speaker_id)
        gender_clips[(record.split, record.gender)] += 1
        gender_speakers[(record.split, record.gender)].add(record.speaker_id)
    by_split_accent = {
        key: GroupCounts(count, len(speakers[key]), summary.patches.get(key[0], {}).get(key[1], 0))
        for key, count in sorted(clip_counts.items())
    }
    by_split_gender = {
        key: GroupCounts(
            count,
            len(gender_speakers[key]),
            None if patches_by_split_gender is None else patches_by_split_gender.get(key, 0),
        )
        for key, count in sorted(gender_clips.items())
    }
    reasons = collections.Counter(_reason_kind(entry.reason) for entry in entries)
    return DataSummary(
        by_split_accent=by_split_accent,
        by_split_gender=by_split_gender,
        not_speech_patches={
            split: per_class.get(features.NOT_SPEECH_CLASS_NAME, 0)
            for split, per_class in summary.patches.items()
        },
        quarantine_by_reason=dict(reasons.most_common()),
        quarantine_total=len(entries),
        split_strategy=split_strategy,
    )


# The trained classifier


def summarize_layers(classifier: Any) -> tuple[LayerSummary, ...]:
    """The layers of a Keras model, for the card's architecture table."""
    return tuple(
        LayerSummary(
            layer.name, type(layer).__name__, str(tuple(layer.output.shape)), int(layer.count_params())
        )
        for layer in classifier.layers
    )


def read_classifier_layers(model_run_uri: str) -> tuple[LayerSummary, ...]:
    """Reads the layers of the classifier the Trainer saved in its model run dir.

    Args:
        model_run_uri: The Trainer's ModelRun artifact URI.

    Returns:
        The layers, or ``()`` when the run holds no saved classifier (a Trainer of an older version).
    """
    import keras
    import tensorflow as tf

    from components.trainer import model as trainer_model

    path = f"{model_run_uri.rstrip('/')}/{trainer_model.CLASSIFIER_FILENAME}"
    if not tf.io.gfile.exists(path):
        logger.warning("No saved classifier at %s: the card shows the reference architecture", path)
        return ()
    return summarize_layers(keras.models.load_model(path, compile=False))


def read_hyperparameter_search(tuner_results_uri: str, best_hyperparameters_uri: str) -> HyperparameterSearch:
    """Reads the Tuner's trials and chosen hyperparameters (``components.tuner.trials``).

    Args:
        tuner_results_uri: The Tuner's ``tuner_results`` artifact URI.
        best_hyperparameters_uri: The Tuner's ``best_hyperparameters`` artifact URI.

    Returns:
        The search.
    """
    from components.tuner import trials

    return HyperparameterSearch(
        trials=tuple(trials.read_trials_table(tuner_results_uri)),
        chosen=trials.read_best_hyperparameters(best_hyperparameters_uri),
    )


# StatisticsGen's statistics and the schema

# Folder of one split's statistics in a StatisticsGen artifact, and its file.
_SPLIT_DIR_PREFIX = "Split-"
_STATISTICS_FILENAME = "FeatureStats.pb"


def read_patches_by_split_gender(statistics_uri: str) -> dict[tuple[str, str], int]:
    """Counts patches per split and gender from StatisticsGen's statistics of the ``gender`` feature.

    TFDV records each string value's frequency (``top_values``); with one gender per example, a
    value's frequency is its number of patches.

    Args:
        statistics_uri: The ExampleStatistics artifact URI (``Split-<name>/FeatureStats.pb``).

    Returns:
        ``(split, gender)`` to patches; empty when the statistics hold no ``gender`` feature.
    """
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    counts: dict[tuple[str, str], int] = {}
    for split_dir in sorted(tf.io.gfile.glob(os.path.join(statistics_uri, _SPLIT_DIR_PREFIX + "*"))):
        split = os.path.basename(split_dir.rstrip("/"))[len(_SPLIT_DIR_PREFIX) :]
        statistics_path = os.path.join(split_dir, _STATISTICS_FILENAME)
        if not tf.io.gfile.exists(statistics_path):
            continue
        for dataset in tfdv.load_stats_binary(statistics_path).datasets:
            for feature in dataset.features:
                name = feature.path.step[0] if feature.path.step else feature.name
                if name != features.GENDER_KEY or not feature.HasField("string_stats"):
                    continue
                for top_value in feature.string_stats.top_values:
                    key = (split, top_value.value)
                    counts[key] = counts.get(key, 0) + round(top_value.frequency)
    return dict(sorted(counts.items()))


def _value_range(minimum: int, maximum: int) -> str:
    return str(minimum) if minimum == maximum else f"{minimum}-{maximum or 'any'}"


def read_schema_features(schema_uri: str) -> tuple[SchemaFeature, ...]:
    """Reads the features of a Schema artifact (``schema.pbtxt``), for the card's data section.

    Args:
        schema_uri: The Schema artifact URI.

    Returns:
        One entry per feature, in the schema's order.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = tfdv.load_schema_text(os.path.join(schema_uri, "schema.pbtxt"))
    result = []
    for feature in schema.feature:
        domain = feature.domain
        numeric_domain = next(
            (getattr(feature, name) for name in ("int_domain", "float_domain") if feature.HasField(name)),
            None,
        )
        if numeric_domain is not None:
            has_min, has_max = numeric_domain.HasField("min"), numeric_domain.HasField("max")
            if has_min and has_max:
                domain = f"{numeric_domain.min:g} to {numeric_domain.max:g}"
            elif has_min or has_max:
                domain = f">= {numeric_domain.min:g}" if has_min else f"<= {numeric_domain.max:g}"
            if getattr(numeric_domain, "is_categorical", False):
                domain = ", ".join(part for part in (domain, "categorical") if part)
        result.append(
            SchemaFeature(
                name=feature.name,
                type=schema_pb2.FeatureType.Name(feature.type),
                values=_value_range(feature.value_count.min, feature.value_count.max)
                if feature.HasField("value_count")
                else "any",
                presence=f"{feature.presence.min_fraction:g}" if feature.HasField("presence") else "any",
                domain=domain,
            )
        )
    return tuple(result)


# The example clips of the 3-panel figure


def read_example_clips(
    clip_index_uri: str,
    serving_model_dir: str,
    quarantine_report_uri: str | None = None,
    max_clips: int = 4,
) -> tuple[ExampleClip, ...]:
    """Scores one eval clip per accent present with the served model, for the 3-panel figure.

    Args:
        clip_index_uri: The ClipIndex artifact URI.
        serving_model_dir: The exported SavedModel (``serving_default``: waveform to ``patch_probabilities``).
        quarantine_report_uri: The QuarantineReport URI, to skip clips set aside.
        max_clips: Most clips (one per accent, accents in sorted order).

    Returns:
        The clips; a clip that cannot be read is left out.
    """
    import tensorflow as tf

    from components import audio
    from components.corpus import quarantine, records, sources
    from components.yamnet import frontend

    set_aside: set[str] = set()
    if quarantine_report_uri:
        path = artifact_files.QuarantineReportFiles(quarantine_report_uri).quarantine_path
        set_aside = {entry.filename for entry in quarantine.read_quarantine_csv(path)}
    chosen: dict[str, records.ClipRecord] = {}
    for record in records.read_clip_index(artifact_files.ClipIndexFiles(clip_index_uri).clips_path):
        if record.split == features.EVAL_SPLIT and record.clip_id not in set_aside:
            chosen.setdefault(record.accent, record)
    serving = tf.saved_model.load(serving_model_dir).signatures["serving_default"]
    clips = []
    accents = sorted(chosen)[:max_clips]
    for position, accent in enumerate(accents, start=1):
        record = chosen[accent]
        logger.info(
            "Scoring example clip %d of %d for the 3-panel figure: %s (%s)",
            position,
            len(accents),
            record.clip_id,
            accent,
        )
        try:
            waveform = audio.load_waveform(sources.read_clip_bytes(record.source), record.clip_id)
        except (OSError, ValueError):
            continue
        outputs = serving(waveform=tf.constant(waveform))
        log_mel, _ = frontend.waveform_to_log_mel_and_patches(tf.constant(waveform))
        clips.append(
            ExampleClip(
                clip_id=record.clip_id,
                accent=accent,
                waveform=waveform,
                sample_rate=features.SAMPLE_RATE,
                log_mel=log_mel.numpy(),
                patch_probabilities=outputs["patch_probabilities"].numpy(),
            )
        )
    return tuple(clips)


def read_model_card_inputs(
    *,
    model_name: str,
    version: str,
    class_names: Sequence[str],
    yamnet_handle: str,
    yamnet_pretrained: bool,
    model_run_uri: str,
    evaluation_uri: str,
    blessing_uri: str,
    clip_index_uri: str,
    quarantine_report_uri: str,
    statistics_uri: str | None = None,
    schema_uri: str | None = None,
    tuner_results_uri: str | None = None,
    best_hyperparameters_uri: str | None = None,
    serving_model_dir: str | None = None,
    split_strategy: str = "unknown",
) -> ModelCardInputs:
    """Reads every input of the card from artifact URIs (what the pipeline step will call).

    Args:
        model_name: The model's name.
        version: The pushed version, or a run id.
        class_names: The label vocabulary.
        yamnet_handle: YAMNet's handle.
        yamnet_pretrained: False for the offline (untrained) weights.
        model_run_uri: The Trainer's ModelRun artifact URI (``training_history.json``).
        evaluation_uri: The Evaluator's ModelEvaluation URI.
        blessing_uri: The Evaluator's ModelBlessing URI.
        clip_index_uri: The ClipIndex URI.
        quarantine_report_uri: The QuarantineReport URI.
        statistics_uri: StatisticsGen's ExampleStatistics URI, for patches per gender; None leaves them out.
        schema_uri: The Schema URI, for the table of features; None leaves it out.
        tuner_results_uri: The Tuner's trials, when the run had a Tuner; else None.
        best_hyperparameters_uri: The Tuner's chosen hyperparameters, with ``tuner_results_uri``.
        serving_model_dir: The served SavedModel, for the 3-panel figures; None leaves them out.
        split_strategy: ``speaker`` or ``utterance``.

    Returns:
        The inputs.
    """
    class_names = tuple(class_names)
    example_clips: tuple[ExampleClip, ...] = ()
    if serving_model_dir:
        example_clips = read_example_clips(clip_index_uri, serving_model_dir, quarantine_report_uri)
    return ModelCardInputs(
        model_name=model_name,
        version=version,
        class_names=class_names,
        yamnet=YamnetProvenance(yamnet_handle, yamnet_pretrained),
        history=read_training_history(model_run_uri),
        evaluation=read_evaluation(evaluation_uri, class_names),
        blessed=read_blessing(blessing_uri),
        data=read_data_summary(
            clip_index_uri,
            quarantine_report_uri,
            split_strategy,
            read_patches_by_split_gender(statistics_uri) if statistics_uri else None,
        ),
        example_clips=example_clips,
        search=read_hyperparameter_search(tuner_results_uri, best_hyperparameters_uri)
        if tuner_results_uri and best_hyperparameters_uri
        else None,
        layers=read_classifier_layers(model_run_uri),
        schema_features=read_schema_features(schema_uri) if schema_uri else (),
    )
