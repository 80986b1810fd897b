"""The TFMA evaluation config of the Evaluator: metrics, slices and the blessing gate.

The Evaluator scores the eval split's per-patch tf.Examples through the served
model's ``from_examples`` signature. The gate is ``present_class_macro_auc``
(``GATING_METRIC_NAME``): the one-vs-rest ROC AUC averaged over the classes
present in the data, which must reach ``min_macro_auc`` and must not fall more
than ``max_auc_regression`` below the latest blessed model's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import tensorflow_model_analysis as tfma

from components import evaluation_metrics, features

# The metric that decides the blessing.
GATING_METRIC_NAME = evaluation_metrics.PRESENT_CLASS_MACRO_AUC_NAME

# Clip-level accuracy (the rule of components/clip_metrics.py, which the Trainer's report shares).
CLIP_ACCURACY_METRIC_NAME = evaluation_metrics.CLIP_ACCURACY_NAME

# Patch-level multi-class accuracy.
ACCURACY_METRIC_NAME = "accuracy"

# Per-class one-vs-rest AUC (one value per class id sub-key).
PER_CLASS_AUC_METRIC_NAME = "auc"

# Per-class one-vs-rest ROC points (a binary confusion matrix plot per class id sub-key), for the model card.
PER_CLASS_ROC_PLOT_NAME = "roc_curve"
ROC_PLOT_NUM_THRESHOLDS = 200

# Slices: the whole eval split, each accent, each gender.
SLICE_FEATURE_KEYS: tuple[tuple[str, ...], ...] = ((), (features.ACCENT_KEY,), (features.GENDER_KEY,))

# Slack on the regression bound so that an identical AUC passes despite float rounding.
_CHANGE_THRESHOLD_EPSILON = 1e-10


def gating_threshold(min_macro_auc: float, max_auc_regression: float) -> tfma.MetricThreshold:
    """Returns the blessing threshold of the gating metric.

    Args:
        min_macro_auc: Lowest acceptable macro AUC, in [0, 1].
        max_auc_regression: Largest acceptable drop of macro AUC below the baseline, >= 0.

    Returns:
        A value threshold (lower bound) and a change threshold against the baseline.

    Raises:
        ValueError: If an argument is out of range.
    """
    if not 0.0 <= min_macro_auc <= 1.0:
        raise ValueError(f"min_macro_auc must be in [0, 1], got {min_macro_auc}")
    if not max_auc_regression >= 0.0:
        raise ValueError(f"max_auc_regression must be >= 0, got {max_auc_regression}")
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_macro_auc}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_auc_regression - _CHANGE_THRESHOLD_EPSILON},
        ),
    )


def build_eval_config(
    class_names: Sequence[str], min_macro_auc: float, max_auc_regression: float
) -> tfma.EvalConfig:
    """Builds the Evaluator's TFMA config.

    Metrics, on every slice (overall, by accent, by gender):

    * ``example_count``, patch-level ``accuracy`` and the multi-class confusion matrix plot;
    * ``present_class_macro_auc`` and ``present_class_count``; on the overall slice,
      ``present_class_macro_auc`` is the gate (the per-accent and per-gender slices are
      reported, not gated);
    * ``clip_accuracy`` and ``clip_count``;
    * ``auc`` per class id (one-vs-rest), undefined (NaN) for a class absent from the slice;
    * ``roc_curve`` per class id: the one-vs-rest confusion matrices at ``ROC_PLOT_NUM_THRESHOLDS``
      thresholds, whose points the model card draws as ROC curves.

    Args:
        class_names: The label vocabulary, in id order.
        min_macro_auc: Lowest macro AUC for a blessing.
        max_auc_regression: Largest drop of macro AUC below the latest blessed model.

    Returns:
        The EvalConfig (its change threshold applies only when the Evaluator has a baseline model).

    Raises:
        ValueError: If there are fewer than two class names or a threshold is out of range.
    """
    if len(class_names) < 2:
        raise ValueError(f"class_names needs at least two names, got {list(class_names)}")
    class_ids = list(range(len(class_names)))
    multi_class_metrics = [
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy", config=json.dumps({"name": ACCURACY_METRIC_NAME})
        ),
        tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        tfma.MetricConfig(
            class_name=evaluation_metrics.PresentClassMacroAUC.__name__,
            module=evaluation_metrics.__name__,
            config=json.dumps({"name": GATING_METRIC_NAME, "num_classes": len(class_names)}),
            per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=gating_threshold(min_macro_auc, max_auc_regression),
                )
            ],
        ),
        tfma.MetricConfig(
            class_name=evaluation_metrics.ClipLevelMetrics.__name__,
            module=evaluation_metrics.__name__,
            config=json.dumps({"name": CLIP_ACCURACY_METRIC_NAME, "class_names": list(class_names)}),
        ),
    ]
    per_class_metrics = [
        tfma.MetricConfig(class_name="AUC", config=json.dumps({"name": PER_CLASS_AUC_METRIC_NAME})),
        tfma.MetricConfig(
            class_name="ConfusionMatrixPlot",
            config=json.dumps({"name": PER_CLASS_ROC_PLOT_NAME, "num_thresholds": ROC_PLOT_NUM_THRESHOLDS}),
        ),
    ]
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=features.EXAMPLES_SIGNATURE,
                label_key=features.LABEL_KEY,
                prediction_key=features.PROBABILITIES_OUTPUT_KEY,
            )
        ],
        slicing_specs=[tfma.SlicingSpec(feature_keys=list(keys)) for keys in SLICE_FEATURE_KEYS],
        metrics_specs=[
            tfma.MetricsSpec(metrics=multi_class_metrics),
            tfma.MetricsSpec(
                metrics=per_class_metrics,
                binarize=tfma.BinarizationOptions(class_ids={"values": class_ids}),
            ),
        ],
    )
