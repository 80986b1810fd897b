"""Tests of the TFMA eval config and the custom metrics, including real TFMA runs."""

from __future__ import annotations

import itertools
import json
import math
import pathlib

import apache_beam as beam
import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_model_analysis.metrics import metric_types
from tfx_bsl.public import tfxio
from tfx_bsl.tfxio import tensor_adapter

from components import clip_metrics, evaluation, evaluation_metrics, features
from components.trainer import model
from schemas import SCHEMA_PATH
from tests.unit import trainer_testing

CLASS_NAMES = features.DEFAULT_CLASS_NAMES
NOT_SPEECH_ID = features.not_speech_class_id(CLASS_NAMES)


# build_eval_config


def test_eval_config_scores_the_examples_signature() -> None:
    eval_config = evaluation.build_eval_config(CLASS_NAMES, 0.85, 0.0)

    (model_spec,) = eval_config.model_specs
    assert model_spec.signature_name == features.EXAMPLES_SIGNATURE
    assert model_spec.label_key == features.LABEL_KEY
    assert model_spec.prediction_key == features.PROBABILITIES_OUTPUT_KEY
    assert [list(spec.feature_keys) for spec in eval_config.slicing_specs] == [[], ["accent"], ["gender"]]


def test_eval_config_has_the_metrics_and_per_class_auc() -> None:
    eval_config = evaluation.build_eval_config(CLASS_NAMES, 0.85, 0.0)

    class_names_by_spec = [
        [metric.class_name for metric in spec.metrics] for spec in eval_config.metrics_specs
    ]
    assert class_names_by_spec == [
        [
            "ExampleCount",
            "SparseCategoricalAccuracy",
            "MultiClassConfusionMatrixPlot",
            "PresentClassMacroAUC",
            "ClipLevelMetrics",
        ],
        ["AUC", "ConfusionMatrixPlot"],
    ]
    assert list(eval_config.metrics_specs[1].binarize.class_ids.values) == list(range(7))
    assert not eval_config.metrics_specs[0].HasField("binarize")


def test_gating_metric_has_value_and_change_thresholds() -> None:
    eval_config = evaluation.build_eval_config(CLASS_NAMES, 0.8, 0.02)

    gating_metrics = [
        metric
        for metric in eval_config.metrics_specs[0].metrics
        if json.loads(metric.config or "{}").get("name") == evaluation.GATING_METRIC_NAME
    ]
    assert len(gating_metrics) == 1
    (per_slice_threshold,) = gating_metrics[0].per_slice_thresholds
    assert [spec.feature_keys for spec in per_slice_threshold.slicing_specs] == [[]]
    threshold = per_slice_threshold.threshold
    assert threshold.value_threshold.lower_bound.value == pytest.approx(0.8)
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(-0.02 - 1e-10, abs=1e-12)
    assert threshold.change_threshold.absolute.value < -0.02


def test_eval_config_thresholds_are_found_by_tfma() -> None:
    eval_config = evaluation.build_eval_config(CLASS_NAMES, 0.85, 0.0)

    thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
        eval_config.metrics_specs, eval_config=eval_config
    )

    gated_names = {key.name for key in thresholds}
    assert gated_names == {evaluation.GATING_METRIC_NAME}


@pytest.mark.parametrize(
    ("class_names", "min_macro_auc", "max_auc_regression"),
    [(["Irish"], 0.5, 0.0), (CLASS_NAMES, 1.5, 0.0), (CLASS_NAMES, -0.1, 0.0), (CLASS_NAMES, 0.5, -0.01)],
)
def test_eval_config_rejects_bad_arguments(
    class_names: tuple[str, ...], min_macro_auc: float, max_auc_regression: float
) -> None:
    with pytest.raises(ValueError):
        evaluation.build_eval_config(class_names, min_macro_auc, max_auc_regression)


# The AUC arithmetic


def _pairwise_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    wins = sum(
        1.0 if positive > negative else 0.5 if positive == negative else 0.0
        for positive, negative in itertools.product(positive_scores, negative_scores)
    )
    return wins / (len(positive_scores) * len(negative_scores))


def test_histogram_auc_equals_the_pairwise_auc_of_bucketed_scores() -> None:
    rng = np.random.default_rng(0)
    num_buckets = 20
    positive_scores = np.clip(rng.normal(0.6, 0.2, 40), 0, 1)
    negative_scores = np.clip(rng.normal(0.4, 0.2, 55), 0, 1)

    def bucket(scores: np.ndarray) -> np.ndarray:
        return np.clip((scores * num_buckets).astype(int), 0, num_buckets - 1)

    positive_histogram = np.bincount(bucket(positive_scores), minlength=num_buckets)
    negative_histogram = np.bincount(bucket(negative_scores), minlength=num_buckets)

    auc = evaluation_metrics.histogram_auc(positive_histogram, negative_histogram)

    assert auc == pytest.approx(_pairwise_auc(bucket(positive_scores), bucket(negative_scores)))
    assert 0.5 < auc < 1.0


def test_histogram_auc_of_separated_reversed_and_one_sided_scores() -> None:
    low = np.array([3, 0, 0, 0])
    high = np.array([0, 0, 0, 2])

    assert evaluation_metrics.histogram_auc(high, low) == 1.0
    assert evaluation_metrics.histogram_auc(low, high) == 0.0
    assert evaluation_metrics.histogram_auc(high, high) == 0.5
    assert math.isnan(evaluation_metrics.histogram_auc(np.zeros(4), high))
    assert math.isnan(evaluation_metrics.histogram_auc(high, np.zeros(4)))


def test_macro_auc_leaves_out_classes_without_positives_or_negatives() -> None:
    positive_histograms = np.array([[0, 0, 0, 2], [0, 0, 0, 0], [1, 0, 0, 1]])
    negative_histograms = np.array([[3, 0, 0, 0], [5, 0, 0, 0], [0, 0, 0, 0]])

    macro_auc, present_count = evaluation_metrics.present_class_macro_auc(
        positive_histograms, negative_histograms
    )

    assert macro_auc == 1.0
    assert present_count == 1


# The combiners, fed StandardMetricInputs directly


def _inputs(
    label: int, probabilities: list[float], clip_id: str = "", accent: str = ""
) -> metric_types.StandardMetricInputs:
    return metric_types.StandardMetricInputs(
        labels=np.array([label]),
        predictions=np.array(probabilities, dtype=np.float32),
        example_weights=np.array([1.0]),
        features={
            features.CLIP_ID_KEY: np.array([clip_id.encode()], dtype=object),
            features.ACCENT_KEY: np.array([accent.encode()], dtype=object),
        },
    )


def _run_combiner(computation: metric_types.MetricComputation, elements: list, split: int) -> dict:
    combiner = computation.combiner
    first = combiner.create_accumulator()
    for element in elements[:split]:
        first = combiner.add_input(first, element)
    second = combiner.create_accumulator()
    for element in elements[split:]:
        second = combiner.add_input(second, element)
    merged = combiner.merge_accumulators([first, second])
    return {key.name: value for key, value in combiner.extract_output(merged).items()}


def test_present_class_macro_auc_combiner_matches_per_class_pairwise_auc() -> None:
    rng = np.random.default_rng(1)
    num_classes = 4
    labels = rng.choice([0, 2, 3], size=60)
    logits = rng.normal(0, 1, (60, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    (computation,) = evaluation_metrics.PresentClassMacroAUC(num_classes=num_classes).computations()

    result = _run_combiner(
        computation,
        [_inputs(int(label), row.tolist()) for label, row in zip(labels, probabilities, strict=True)],
        25,
    )

    def bucket(scores: np.ndarray) -> np.ndarray:
        return np.clip((scores * evaluation_metrics.DEFAULT_NUM_BUCKETS).astype(int), 0, 999)

    expected = np.mean(
        [
            _pairwise_auc(bucket(probabilities[labels == c, c]), bucket(probabilities[labels != c, c]))
            for c in (0, 2, 3)
        ]
    )
    assert result[evaluation.GATING_METRIC_NAME] == pytest.approx(expected)
    assert result[evaluation_metrics.PRESENT_CLASS_COUNT_NAME] == 3


def test_clip_accuracy_combiner_groups_speech_patches_by_clip() -> None:
    class_names = ("Irish", "Welsh", features.NOT_SPEECH_CLASS_NAME)
    (computation,) = evaluation_metrics.ClipLevelMetrics(class_names=class_names).computations()
    elements = [
        _inputs(0, [0.6, 0.4, 0.0], "a", "Irish"),
        _inputs(0, [0.3, 0.7, 0.0], "b", "Welsh"),  # clip b is Welsh; its first patch is labelled so.
        _inputs(2, [0.0, 0.0, 1.0], "a", "Irish"),
        _inputs(0, [0.8, 0.2, 0.0], "a", "Irish"),
        _inputs(1, [0.9, 0.1, 0.0], "b", "Welsh"),
        _inputs(2, [0.0, 0.0, 1.0], "c", "Welsh"),  # no speech patch: not scored
    ]

    result = _run_combiner(computation, elements, 3)

    # Clip a: mean of speech patches is Irish (right). Clip b: sum [1.2, 0.8] -> Irish (wrong).
    assert result[evaluation_metrics.CLIP_ACCURACY_NAME] == 0.5
    assert result[evaluation_metrics.CLIP_COUNT_NAME] == 2
    np.testing.assert_array_equal(
        result[evaluation_metrics.CLIP_CONFUSION_MATRIX_NAME], [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    )
    # Clip a scores Irish 0.7 (mean of 0.6 and 0.8), clip b 0.6: the Irish clip ranks first.
    assert result[evaluation_metrics.CLIP_MACRO_AUC_NAME] == pytest.approx(1.0)
    assert result[evaluation_metrics.CLIP_PRESENT_CLASS_COUNT_NAME] == 2


def test_clip_accuracy_combiner_and_the_trainer_share_one_rule() -> None:
    rng = np.random.default_rng(7)
    class_names = ("Irish", "Welsh", "Scottish", features.NOT_SPEECH_CLASS_NAME)
    clip_ids = [f"clip{index // 5}" for index in range(60)]
    accents = [class_names[int(clip_id[4:]) % 3] for clip_id in clip_ids]
    labels = [3 if rng.random() < 0.3 else class_names.index(accent) for accent in accents]
    probabilities = rng.dirichlet(np.ones(4), size=60)
    (computation,) = evaluation_metrics.ClipLevelMetrics(class_names=class_names).computations()

    result = _run_combiner(
        computation,
        [
            _inputs(label, row.tolist(), clip_id, accent)
            for label, row, clip_id, accent in zip(labels, probabilities, clip_ids, accents, strict=True)
        ],
        25,
    )

    expected = clip_metrics.clip_metrics(probabilities, np.array(labels), clip_ids, accents, class_names)
    assert result[evaluation_metrics.CLIP_ACCURACY_NAME] == pytest.approx(expected.accuracy)
    assert result[evaluation_metrics.CLIP_COUNT_NAME] == expected.num_clips
    assert result[evaluation_metrics.CLIP_MACRO_AUC_NAME] == pytest.approx(expected.macro_auc)
    np.testing.assert_allclose(result[evaluation_metrics.CLIP_CLASS_AUCS_NAME], expected.class_aucs)
    np.testing.assert_array_equal(
        result[evaluation_metrics.CLIP_CONFUSION_MATRIX_NAME], np.array(expected.confusion_matrix)
    )


def test_clip_accuracy_uses_a_feature_preprocessor() -> None:
    (computation,) = evaluation_metrics.ClipLevelMetrics().computations()

    (preprocessor,) = computation.preprocessors
    assert set(preprocessor.include_filter[tfma.constants.FEATURES_KEY]) == {
        features.CLIP_ID_KEY,
        features.ACCENT_KEY,
    }


# Real TFMA runs on the model that run_fn trained and exported


def _run_tfma(
    eval_config: tfma.EvalConfig,
    trained_run: trainer_testing.TrainedRun,
    output_path: pathlib.Path,
    with_baseline: bool,
) -> None:
    """Runs TFMA like the TFX Evaluator does (schema-based TFXIO, rubber stamp without baseline)."""
    eval_config = tfma.utils.update_eval_config_with_defaults(
        eval_config, has_baseline=with_baseline, rubber_stamp=True
    )
    models = [
        tfma.default_eval_shared_model(
            str(trained_run.serving_model_dir), model_name=model_spec.name, eval_config=eval_config
        )
        for model_spec in eval_config.model_specs
    ]
    schema = text_format.Parse(SCHEMA_PATH.read_text(), schema_pb2.Schema())
    examples = tfxio.TFExampleRecord(
        file_pattern=str(trained_run.examples_uri / f"Split-{features.EVAL_SPLIT}" / "*"),
        schema=schema,
        raw_record_column_name=tfma.ARROW_INPUT_COLUMN,
    )
    adapter_config = tensor_adapter.TensorAdapterConfig(
        arrow_schema=examples.ArrowSchema(), tensor_representations=examples.TensorRepresentations()
    )
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | "ReadExamples" >> examples.BeamSource()
            | "Evaluate"
            >> tfma.ExtractEvaluateAndWriteResults(
                eval_shared_model=models[0] if len(models) == 1 else models,
                eval_config=eval_config,
                output_path=str(output_path),
                tensor_adapter_config=adapter_config,
            )
        )


def _metrics_by_slice(output_path: pathlib.Path, model_name: str = "") -> dict[tuple, dict[str, dict]]:
    """Returns {slice key: {sub key: {metric name: value}}} of one model's results."""
    result = tfma.load_eval_result(str(output_path), model_name=model_name or None)
    by_slice: dict[tuple, dict[str, dict]] = {}
    for slice_key, metrics in result.slicing_metrics:
        by_slice[slice_key] = {
            sub_key: {name: value.get("doubleValue", value) for name, value in values.items()}
            for sub_key, values in metrics[""].items()
        }
    return by_slice


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> trainer_testing.TrainedRun:
    return trainer_testing.trained_run(tmp_path_factory)


@pytest.mark.slow
def test_tfma_blesses_against_a_baseline_and_reports_per_class_metrics(
    trained_run: trainer_testing.TrainedRun, tmp_path: pathlib.Path
) -> None:
    eval_config = evaluation.build_eval_config(CLASS_NAMES, min_macro_auc=0.5, max_auc_regression=0.0)

    _run_tfma(eval_config, trained_run, tmp_path, with_baseline=True)

    validation = tfma.load_validation_result(str(tmp_path))
    assert validation.validation_ok, validation
    metrics = _metrics_by_slice(tmp_path, model_name="candidate")
    overall = metrics[()][""]
    macro_auc = overall[evaluation.GATING_METRIC_NAME]
    assert math.isfinite(macro_auc)
    assert 0.5 < macro_auc < 0.999
    assert overall[evaluation_metrics.PRESENT_CLASS_COUNT_NAME] == 5
    num_eval_patches = len(trained_run.patches[features.EVAL_SPLIT])
    assert overall["example_count"] == num_eval_patches
    assert 0.0 <= overall[evaluation.ACCURACY_METRIC_NAME] <= 1.0
    present_ids = sorted({patch.label for patch in trained_run.patches[features.EVAL_SPLIT]})
    for class_id in present_ids:
        per_class_auc = metrics[()][f"classId:{class_id}"][evaluation.PER_CLASS_AUC_METRIC_NAME]
        assert 0.0 <= per_class_auc <= 1.0
    # The two independent clip-level implementations agree: TFMA's metric and run_fn's clip_metrics.json.
    trainer_clip_metrics = json.loads((trained_run.model_run_dir / model.CLIP_METRICS_FILENAME).read_text())
    assert overall[evaluation.CLIP_ACCURACY_METRIC_NAME] == pytest.approx(
        trainer_clip_metrics["clip_accuracy"]
    )
    assert overall[evaluation_metrics.CLIP_COUNT_NAME] == trainer_clip_metrics["num_clips"]
    for accent in trainer_testing.PRESENT_ACCENTS:
        accent_slice = metrics[(("accent", accent),)][""]
        assert accent_slice[evaluation_metrics.PRESENT_CLASS_COUNT_NAME] == 2
        assert accent_slice[evaluation_metrics.CLIP_COUNT_NAME] == 3
    assert {(("gender", "female"),), (("gender", "male"),)} <= set(metrics)


@pytest.mark.slow
def test_tfma_refuses_a_model_below_the_auc_bound(
    trained_run: trainer_testing.TrainedRun, tmp_path: pathlib.Path
) -> None:
    eval_config = evaluation.build_eval_config(CLASS_NAMES, min_macro_auc=0.999, max_auc_regression=0.0)
    # TFMA's own macro average of the binarized AUCs, computed beside ours for comparison.
    eval_config.metrics_specs.append(
        tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="AUC", config=json.dumps({"name": "builtin_auc"}))],
            binarize=tfma.BinarizationOptions(class_ids={"values": list(range(7))}),
            aggregate=tfma.AggregationOptions(
                macro_average=True, class_weights={index: 1.0 for index in range(7)}
            ),
        )
    )

    _run_tfma(eval_config, trained_run, tmp_path, with_baseline=False)

    validation = tfma.load_validation_result(str(tmp_path))
    assert not validation.validation_ok
    failing_names = {
        failure.metric_key.name
        for failing_slice in validation.metric_validations_per_slice
        for failure in failing_slice.failures
    }
    assert failing_names == {evaluation.GATING_METRIC_NAME}
    overall = _metrics_by_slice(tmp_path)[()]
    # TFMA scores an absent class's AUC as 0.0, so its macro average over all 7
    # classes is dragged down by Irish and Welsh; the present-class macro AUC is not.
    assert overall["classId:0"]["builtin_auc"] == 0.0
    assert overall["classId:5"]["builtin_auc"] == 0.0
    (builtin_macro,) = [
        value
        for name, value in overall[""].items()
        if "macro_average" in name and name.endswith("builtin_auc")
    ]
    per_class_builtin = [overall[f"classId:{class_id}"]["builtin_auc"] for class_id in range(7)]
    assert builtin_macro == pytest.approx(sum(per_class_builtin) / 7)
    assert builtin_macro < overall[""][evaluation.GATING_METRIC_NAME] - 0.1
