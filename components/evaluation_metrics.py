"""Custom TFMA metrics of the accent classifier.

* ``PresentClassMacroAUC``: the macro average of one-vs-rest ROC AUCs over the
  classes that have both positive and negative examples in the slice. A class
  absent from the evaluation data has an undefined AUC; TFMA's built-in macro
  average would carry it into the mean, so this metric leaves it out.
* ``ClipLevelMetrics``: clip-level accuracy, macro AUC, per-class AUCs and the
  confusion matrix, by the rule of ``components/clip_metrics.py`` (which the
  Trainer's report uses too), from the ``clip_id`` and ``accent`` features. The
  per-class AUCs and the confusion matrix are array-valued metrics, which TFMA
  writes as ``ArrayValue``s.

Both are beam CombineFns over per-example ``StandardMetricInputs``, configured
through ``tfma.MetricConfig(class_name=..., module=__name__, config=json)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types, metric_util

from components import clip_metrics, features

PRESENT_CLASS_MACRO_AUC_NAME = "present_class_macro_auc"
PRESENT_CLASS_COUNT_NAME = "present_class_count"
CLIP_ACCURACY_NAME = "clip_accuracy"
CLIP_COUNT_NAME = "clip_count"
CLIP_MACRO_AUC_NAME = "clip_macro_auc"
CLIP_PRESENT_CLASS_COUNT_NAME = "clip_present_class_count"
CLIP_CLASS_AUCS_NAME = "clip_class_aucs"
CLIP_CONFUSION_MATRIX_NAME = "clip_confusion_matrix"
# Every metric ClipLevelMetrics reports, in the order of its metric keys; the first is the configured name.
CLIP_METRIC_NAMES: tuple[str, ...] = (
    CLIP_ACCURACY_NAME,
    CLIP_COUNT_NAME,
    CLIP_MACRO_AUC_NAME,
    CLIP_PRESENT_CLASS_COUNT_NAME,
    CLIP_CLASS_AUCS_NAME,
    CLIP_CONFUSION_MATRIX_NAME,
)

# Score buckets of the per-class histograms: AUC is exact up to ties within 1/1000.
DEFAULT_NUM_BUCKETS = 1000


def histogram_auc(positive_histogram: np.ndarray, negative_histogram: np.ndarray) -> float:
    """Computes ROC AUC from score histograms of positives and negatives.

    The AUC is the probability that a random positive scores above a random
    negative, a tie within one bucket counting one half (Mann-Whitney).

    Args:
        positive_histogram: Weight of positive examples in each score bucket, ascending scores.
        negative_histogram: Weight of negative examples in the same buckets.

    Returns:
        The AUC, or NaN when there is no positive or no negative weight.
    """
    positive_total = float(np.sum(positive_histogram))
    negative_total = float(np.sum(negative_histogram))
    if positive_total <= 0 or negative_total <= 0:
        return float("nan")
    negatives_below = np.cumsum(negative_histogram) - negative_histogram
    pairs_won = np.sum(positive_histogram * (negatives_below + 0.5 * negative_histogram))
    return float(pairs_won / (positive_total * negative_total))


def present_class_macro_auc(
    positive_histograms: np.ndarray, negative_histograms: np.ndarray
) -> tuple[float, int]:
    """Averages one-vs-rest AUC over the classes that have positives and negatives.

    Args:
        positive_histograms: ``[num_classes, num_buckets]`` weights of each class's positives.
        negative_histograms: ``[num_classes, num_buckets]`` weights of each class's negatives.

    Returns:
        The macro AUC (NaN if no class has both) and the number of classes averaged.
    """
    aucs = [
        histogram_auc(positive_histogram, negative_histogram)
        for positive_histogram, negative_histogram in zip(
            positive_histograms, negative_histograms, strict=True
        )
    ]
    defined = [auc for auc in aucs if not np.isnan(auc)]
    return (float(np.mean(defined)) if defined else float("nan")), len(defined)


def _one_computation_per_model_and_output(
    names: Sequence[str],
    model_names: Sequence[str] | None,
    output_names: Sequence[str] | None,
    example_weighted: bool,
    preprocessors: list[metric_types.Preprocessor] | None,
    make_combiner: Callable[[str, str, list[metric_types.MetricKey]], beam.CombineFn],
) -> metric_types.MetricComputations:
    """Returns, for every model and output, one computation of the metrics ``names``.

    Args:
        names: The metrics' names; their keys are passed to ``make_combiner`` in this order.
        model_names: The models (one unnamed model when None).
        output_names: The outputs (one unnamed output when None).
        example_weighted: Whether the metrics weigh examples.
        preprocessors: What the combiner needs beyond labels and predictions, or None.
        make_combiner: Builds the combiner of a model name, an output name and the metric keys.

    Returns:
        The computations.
    """
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = [
                metric_types.MetricKey(
                    name=name,
                    model_name=model_name,
                    output_name=output_name,
                    example_weighted=example_weighted,
                )
                for name in names
            ]
            computations.append(
                metric_types.MetricComputation(
                    keys=keys,
                    preprocessors=preprocessors,
                    combiner=make_combiner(model_name, output_name, keys),
                )
            )
    return computations


@dataclasses.dataclass(frozen=True)
class _SparseExampleReader:
    """Reads one example's sparse class id label, class probabilities and weight for a combiner.

    Attributes:
        eval_config: The evaluation's config.
        model_name: The model whose predictions are read.
        output_name: The model output holding the ``[num_classes]`` probabilities.
        example_weighted: Whether to read the example weights (else each weighs 1).
        num_classes: How many class probabilities an example must have.
    """

    eval_config: tfma.EvalConfig | None
    model_name: str
    output_name: str
    example_weighted: bool
    num_classes: int

    def read(self, element: metric_types.StandardMetricInputs) -> tuple[int, np.ndarray, float]:
        """Returns the class id label, the ``[num_classes]`` probabilities and the weight of one example.

        Raises:
            ValueError: If the example has not one label or not ``num_classes`` probabilities.
        """
        label, prediction, example_weight = next(
            metric_util.to_label_prediction_example_weight(
                element,
                eval_config=self.eval_config,
                model_name=self.model_name,
                output_name=self.output_name,
                example_weighted=self.example_weighted,
                flatten=False,
                require_single_example_weight=True,
            )
        )
        prediction = np.asarray(prediction, dtype=np.float64).reshape(-1)
        if prediction.size != self.num_classes:
            raise ValueError(f"Expected {self.num_classes} class probabilities, got {prediction.size}")
        label = np.asarray(label).reshape(-1)
        if label.size != 1:
            raise ValueError(f"Expected one sparse class id label per example, got {label.tolist()}")
        return int(label[0]), prediction, float(np.asarray(example_weight).reshape(-1)[0])


class PresentClassMacroAUC(metric_types.Metric):
    """Macro-averaged one-vs-rest ROC AUC over the classes present in the slice.

    Labels are sparse class ids, predictions the ``[num_classes]`` probabilities.
    Each class's AUC is computed from fixed-width score histograms; classes
    without positives or without negatives in the slice are left out. The metric
    also reports ``present_class_count``, the number of classes averaged.
    """

    def __init__(
        self,
        name: str = PRESENT_CLASS_MACRO_AUC_NAME,
        num_classes: int = len(features.DEFAULT_CLASS_NAMES),
        num_buckets: int = DEFAULT_NUM_BUCKETS,
    ) -> None:
        """Initialises the metric.

        Args:
            name: Metric name (thresholds refer to it).
            num_classes: Size of the prediction vector.
            num_buckets: Score buckets in [0, 1] of each class's histograms.

        Raises:
            ValueError: If ``num_classes`` < 2 or ``num_buckets`` < 2.
        """
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if num_buckets < 2:
            raise ValueError(f"num_buckets must be at least 2, got {num_buckets}")
        super().__init__(
            _present_class_macro_auc_computations, name=name, num_classes=num_classes, num_buckets=num_buckets
        )


def _present_class_macro_auc_computations(
    name: str = PRESENT_CLASS_MACRO_AUC_NAME,
    num_classes: int = len(features.DEFAULT_CLASS_NAMES),
    num_buckets: int = DEFAULT_NUM_BUCKETS,
    eval_config: tfma.EvalConfig | None = None,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """Returns one computation per model and output of the present-class macro AUC."""

    def make_combiner(
        model_name: str, output_name: str, keys: list[metric_types.MetricKey]
    ) -> beam.CombineFn:
        auc_key, count_key = keys
        reader = _SparseExampleReader(eval_config, model_name, output_name, example_weighted, num_classes)
        return _PresentClassMacroAUCCombiner(auc_key, count_key, reader, num_buckets)

    return _one_computation_per_model_and_output(
        [name, PRESENT_CLASS_COUNT_NAME], model_names, output_names, example_weighted, None, make_combiner
    )


class _PresentClassMacroAUCCombiner(beam.CombineFn):
    """Accumulates per-class score histograms: ``[2, num_classes, num_buckets]`` (negatives, positives)."""

    def __init__(
        self,
        auc_key: metric_types.MetricKey,
        count_key: metric_types.MetricKey,
        reader: _SparseExampleReader,
        num_buckets: int,
    ) -> None:
        self._auc_key = auc_key
        self._count_key = count_key
        self._reader = reader
        self._num_classes = reader.num_classes
        self._num_buckets = num_buckets

    def create_accumulator(self) -> np.ndarray:
        return np.zeros((2, self._num_classes, self._num_buckets), dtype=np.float64)

    def add_input(self, accumulator: np.ndarray, element: metric_types.StandardMetricInputs) -> np.ndarray:
        label, prediction, example_weight = self._reader.read(element)
        buckets = np.clip((prediction * self._num_buckets).astype(np.int64), 0, self._num_buckets - 1)
        is_positive = (np.arange(self._num_classes) == label).astype(np.int64)
        accumulator[is_positive, np.arange(self._num_classes), buckets] += example_weight
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[np.ndarray]) -> np.ndarray:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result += accumulator
        return result

    def extract_output(self, accumulator: np.ndarray) -> dict[metric_types.MetricKey, Any]:
        macro_auc, present_count = present_class_macro_auc(accumulator[1], accumulator[0])
        return {self._auc_key: macro_auc, self._count_key: present_count}


class ClipLevelMetrics(metric_types.Metric):
    """Clip-level metrics from per-patch predictions (``clip_metrics.ClipVotes``).

    Patches are grouped by their ``clip_id`` feature and compared with their
    ``accent`` feature. Reports ``clip_accuracy`` (under the configured name),
    ``clip_count`` (clips scored), ``clip_macro_auc`` and
    ``clip_present_class_count`` (classes averaged), ``clip_class_aucs``
    (``[num_classes]`` float64, NaN where undefined) and
    ``clip_confusion_matrix`` (``[num_classes, num_classes]`` int64 clip
    counts, accent rows, predicted columns).
    """

    def __init__(
        self,
        name: str = CLIP_ACCURACY_NAME,
        class_names: Sequence[str] = features.DEFAULT_CLASS_NAMES,
    ) -> None:
        """Initialises the metric.

        Args:
            name: Metric name.
            class_names: The label vocabulary, in id order.

        Raises:
            ValueError: If there are fewer than two class names.
        """
        if len(class_names) < 2:
            raise ValueError(f"class_names needs at least two names, got {list(class_names)}")
        super().__init__(_clip_accuracy_computations, name=name, class_names=list(class_names))


def _clip_accuracy_computations(
    name: str = CLIP_ACCURACY_NAME,
    class_names: Sequence[str] = features.DEFAULT_CLASS_NAMES,
    eval_config: tfma.EvalConfig | None = None,
    model_names: list[str] | None = None,
    output_names: list[str] | None = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """Returns one computation per model and output of the clip-level metrics."""
    preprocessors = [
        metric_types.FeaturePreprocessor(feature_keys=[features.CLIP_ID_KEY, features.ACCENT_KEY]),
    ]

    def make_combiner(
        model_name: str, output_name: str, keys: list[metric_types.MetricKey]
    ) -> beam.CombineFn:
        reader = _SparseExampleReader(
            eval_config, model_name, output_name, example_weighted=False, num_classes=len(class_names)
        )
        return _ClipMetricsCombiner(keys, reader, list(class_names))

    return _one_computation_per_model_and_output(
        [name, *CLIP_METRIC_NAMES[1:]],
        model_names,
        output_names,
        example_weighted,
        preprocessors,
        make_combiner,
    )


def _feature_string(element: metric_types.StandardMetricInputs, key: str) -> str:
    """Returns the single string value of a feature of one example."""
    value = np.asarray(element.features[key]).reshape(-1)
    if value.size != 1:
        raise ValueError(f"Feature {key!r} must have exactly one value, got {value.tolist()}")
    item = value[0]
    return item.decode() if isinstance(item, bytes) else str(item)


class _ClipMetricsCombiner(beam.CombineFn):
    """Accumulates the clips' votes (``clip_metrics.ClipVotes``) of the patches of a slice."""

    def __init__(
        self,
        keys: Sequence[metric_types.MetricKey],
        reader: _SparseExampleReader,
        class_names: list[str],
    ) -> None:
        if len(keys) != len(CLIP_METRIC_NAMES):
            raise ValueError(f"Expected {len(CLIP_METRIC_NAMES)} metric keys, got {len(keys)}")
        self._keys = tuple(keys)
        self._reader = reader
        self._class_names = class_names

    def create_accumulator(self) -> clip_metrics.ClipVotes:
        return clip_metrics.ClipVotes(self._class_names)

    def add_input(
        self, accumulator: clip_metrics.ClipVotes, element: metric_types.StandardMetricInputs
    ) -> clip_metrics.ClipVotes:
        label, prediction, _ = self._reader.read(element)
        accumulator.add_patch(
            _feature_string(element, features.CLIP_ID_KEY),
            _feature_string(element, features.ACCENT_KEY),
            label,
            prediction,
        )
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[clip_metrics.ClipVotes]) -> clip_metrics.ClipVotes:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result.merge(accumulator)
        return result

    def extract_output(self, accumulator: clip_metrics.ClipVotes) -> dict[metric_types.MetricKey, Any]:
        result = accumulator.result()
        values = (
            result.accuracy,
            result.num_clips,
            result.macro_auc,
            result.present_class_count,
            np.asarray(result.class_aucs, dtype=np.float64),
            np.asarray(result.confusion_matrix, dtype=np.int64).reshape(
                len(self._class_names), len(self._class_names)
            ),
        )
        return dict(zip(self._keys, values, strict=True))
