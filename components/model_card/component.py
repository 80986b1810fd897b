"""ModelCardGenerator: the TFX component that writes the model card of every evaluated model.

It runs after the Evaluator, blessed or not: a model that is not blessed still
gets a card, which says so and shows each threshold of the blessing with its
value and pass or fail. Its output ``ModelCard`` artifact holds
``model_card.html``, the Hugging Face ``README.md`` with its PNG figures and
``model_card.json``; the card's headline is also in the artifact's custom
properties (``card_properties``), where ``accent-pipeline report`` reads it.
Its second output, ``model_card_page``, is the same HTML as one file of KFP's
``system.HTML`` type, which the Kubeflow Pipelines UI and Vertex AI show inline.
The Pusher copies the card of a blessed model into the pushed version.
"""

import datetime
import json
import logging
import math
import os
import shutil

from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.artifacts import ClipIndex, ModelCard, ModelCardPage, QuarantineReport
from components.model_card import generate
from components.model_card.inputs import ModelCardInputs, read_model_card_inputs

logger = logging.getLogger(__name__)

# Custom properties of the ModelCard artifact.
MODEL_NAME_PROPERTY = "model_name"
BLESSED_PROPERTY = "blessed"
BLESSING_REASON_PROPERTY = "blessing_reason"
YAMNET_HANDLE_PROPERTY = "yamnet_handle"
YAMNET_PRETRAINED_PROPERTY = "yamnet_pretrained"
# Headline metrics of the overall slice, as TFMA computed them (missing when not finite).
METRIC_PROPERTIES: tuple[str, ...] = (
    "accuracy",
    "macro_auc",
    "macro_d_prime",
    "clip_accuracy",
    "clip_macro_auc",
    "clip_macro_d_prime",
)

# Custom properties of the YamnetModelGen model artifact.
_YAMNET_HANDLE_PROPERTY = "yamnet_handle"
_YAMNET_PRETRAINED_PROPERTY = "pretrained"


def blessing_reason(inputs: ModelCardInputs) -> str:
    """Why the model was blessed or not: each threshold of the blessing, its value and pass or fail.

    Args:
        inputs: The card's inputs.

    Returns:
        One line, e.g. ``present_class_macro_auc 0.5012 at least 0.6: failed``.
    """
    thresholds = inputs.evaluation.thresholds
    if not thresholds:
        return "no threshold recorded" + ("" if inputs.evaluation.validation_ok else "; validation failed")
    return "; ".join(
        f"{threshold.metric} {threshold.value:.4f} {threshold.kind} {threshold.bound:g}: "
        f"{'passed' if threshold.passed else 'failed'}"
        for threshold in thresholds
    )


def card_properties(inputs: ModelCardInputs) -> dict[str, str | int | float]:
    """The card's headline, as the ModelCard artifact's custom properties.

    Args:
        inputs: The card's inputs.

    Returns:
        Property name to value; a metric that is not finite is left out.
    """
    overall = inputs.evaluation.overall
    properties: dict[str, str | int | float] = {
        MODEL_NAME_PROPERTY: inputs.model_name,
        BLESSED_PROPERTY: int(inputs.blessed),
        BLESSING_REASON_PROPERTY: blessing_reason(inputs),
        YAMNET_HANDLE_PROPERTY: inputs.yamnet.handle,
        YAMNET_PRETRAINED_PROPERTY: int(inputs.yamnet.pretrained),
    }
    for name in METRIC_PROPERTIES:
        value = getattr(overall, name)
        if value is not None and math.isfinite(value):
            properties[name] = float(value)
    return properties


@tfx.dsl.components.component
def ModelCardGenerator(  # noqa: N802 - TFX components are named like classes.
    model_run: tfx.dsl.components.InputArtifact[standard_artifacts.ModelRun],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    yamnet_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    evaluation: tfx.dsl.components.InputArtifact[standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.InputArtifact[standard_artifacts.ModelBlessing],
    clip_index: tfx.dsl.components.InputArtifact[ClipIndex],
    quarantine_report: tfx.dsl.components.InputArtifact[QuarantineReport],
    statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    model_card: tfx.dsl.components.OutputArtifact[ModelCard],
    model_card_page: tfx.dsl.components.OutputArtifact[ModelCardPage],
    model_name: tfx.dsl.components.Parameter[str],
    # A JSON string, not a List parameter: on Kubeflow, TFX 1.16 hands those over as JSON text.
    class_names_json: tfx.dsl.components.Parameter[str],
    split_strategy: tfx.dsl.components.Parameter[str],
    tuner_results: tfx.dsl.components.InputArtifact[standard_artifacts.TunerResults] = None,
    best_hyperparameters: tfx.dsl.components.InputArtifact[standard_artifacts.HyperParameters] = None,
) -> None:
    """Writes the model card of the Trainer's model as the Evaluator judged it.

    Args:
        model_run: The Trainer's ModelRun (``training_history.json``).
        model: The Trainer's model; its serving SavedModel scores the clips of the 3-panel figures.
        yamnet_model: YamnetModelGen's model, whose custom properties give YAMNet's handle and
            whether its weights are pretrained.
        evaluation: The Evaluator's TFMA output.
        blessing: The Evaluator's blessing, blessed or not.
        clip_index: CorpusIndexGen's clip index.
        quarantine_report: EmbeddingGen's quarantine report, with its clip and patch counts.
        statistics: StatisticsGen's statistics of the examples (patches per split and gender).
        schema: The curated schema the examples were validated against (the card's feature table).
        model_card: Output: ``model_card.html``, ``README.md``, ``model_card.json`` and the PNGs.
        model_card_page: Output: ``model_card.html`` alone, as one file of KFP's ``system.HTML`` type.
        model_name: The name the model is served under.
        class_names_json: JSON list of the class names, in label-id order.
        split_strategy: ``speaker`` (speaker-disjoint) or ``utterance``.
        tuner_results: The Tuner's trials, when the run searched hyperparameters; else None.
        best_hyperparameters: The Tuner's chosen hyperparameters, with ``tuner_results``; else None.
    """
    yamnet_handle = yamnet_model.get_string_custom_property(_YAMNET_HANDLE_PROPERTY) or "unknown"
    # A missing property (a YAMNet artifact written before it existed) counts as pretrained: no false warning.
    yamnet_pretrained = (
        not yamnet_model.has_custom_property(_YAMNET_PRETRAINED_PROPERTY)
        or yamnet_model.get_int_custom_property(_YAMNET_PRETRAINED_PROPERTY) != 0
    )
    logger.info("Reading the model card's inputs: the evaluation, the training history and the data")
    written = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    inputs = read_model_card_inputs(
        model_name=model_name,
        version=f"candidate of Trainer run {os.path.basename(model.uri.rstrip('/'))}, card written {written}",
        class_names=json.loads(class_names_json),
        yamnet_handle=yamnet_handle,
        yamnet_pretrained=yamnet_pretrained,
        model_run_uri=model_run.uri,
        evaluation_uri=evaluation.uri,
        blessing_uri=blessing.uri,
        clip_index_uri=clip_index.uri,
        quarantine_report_uri=quarantine_report.uri,
        statistics_uri=statistics.uri,
        schema_uri=schema.uri,
        tuner_results_uri=tuner_results.uri if tuner_results else None,
        best_hyperparameters_uri=best_hyperparameters.uri if best_hyperparameters else None,
        serving_model_dir=path_utils.serving_model_path(model.uri),
        split_strategy=split_strategy,
    )
    logger.info("Rendering the model card (figures, HTML, Hugging Face README, JSON) into %s", model_card.uri)
    paths = generate.write_model_card(inputs, model_card.uri)
    shutil.copyfile(paths.html, model_card_page.uri)
    for name, value in card_properties(inputs).items():
        if isinstance(value, str):
            model_card.set_string_custom_property(name, value)
        elif isinstance(value, int):
            model_card.set_int_custom_property(name, value)
        else:
            model_card.set_float_custom_property(name, value)
    logger.info(
        "Model card written: %s (%s; %d figures)",
        paths.html,
        "blessed" if inputs.blessed else "not blessed",
        len(paths.images),
    )
