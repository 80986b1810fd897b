"""The card's content, and its three renderings: model_card.html, the Hugging Face README.md, model_card.json.

``card_content`` turns ``ModelCardInputs`` into plain values and figures once; the
jinja2 templates in ``templates/`` and the JSON writer only lay those out, so the
three files say the same thing. The JSON follows model-card-toolkit's schema
(v0.0.2) and is validated against it when the toolkit is installed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
import yaml

from components import features
from components.model_card import figures
from components.model_card.inputs import OVERALL_SLICE, ModelCardInputs, SliceMetrics, summarize_layers

TEMPLATES_DIR = pathlib.Path(__file__).parent / "templates"
HTML_TEMPLATE = "model_card.html.jinja"
README_TEMPLATE = "README.md.jinja"
MCT_SCHEMA_VERSION = "0.0.2"

# Gender slices whose accuracy or macro AUC differ by more than this are called out in the limitations.
FAIRNESS_GAP = 0.05


@dataclasses.dataclass(frozen=True)
class Figure:
    """One PNG figure: its file name beside the README, its caption and its bytes."""

    filename: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:`` URI, for the self-contained HTML."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def fmt(value: Any, digits: int = 4) -> str:
    """Formats a number for the card: ``n/a`` when undefined."""
    if value is None:
        return "n/a"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    number = float(value)
    if not math.isfinite(number):
        return "n/a" if math.isnan(number) else ("+inf" if number > 0 else "-inf")
    return f"{number:.{digits}g}" if abs(number) < 1e-3 and number else f"{number:.{digits}f}"


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _model_layers(inputs: ModelCardInputs) -> list[tuple[str, str, str, int]]:
    """The trained classifier's layers, or the reference model's when the card has none."""
    layers = inputs.layers
    if not layers:
        from components.trainer import model as trainer_model

        layers = summarize_layers(trainer_model.build_model(num_classes=len(inputs.class_names)))
    return [(layer.name, layer.kind, layer.output_shape, layer.parameters) for layer in layers]


def architecture_text(layers: Sequence[tuple[str, str, str, int]]) -> str:
    """One line: ``YAMNet embedding (1024) -> Dense 256/384/... ReLU with dropout -> softmax (N)``."""
    hidden = [
        shape.strip("()").split(",")[-1].strip() for _, kind, shape, _ in layers[1:-1] if kind == "Dense"
    ]
    outputs = layers[-1][2].strip("()").split(",")[-1].strip() if layers else "?"
    return f"YAMNet embedding (1024) -> Dense {'/'.join(hidden)} ReLU with dropout -> softmax ({outputs})"


def _search_rows(inputs: ModelCardInputs) -> dict[str, Any] | None:
    """The Tuner's search for the templates: algorithm, objective, one row per trial, the chosen values."""
    if inputs.search is None:
        return None
    from components.tuner import config as tuner_config
    from components.tuner import trials

    chosen = dict(inputs.search.chosen)
    return {
        "algorithm": tuner_config.ALGORITHM,
        "objective": f"{tuner_config.OBJECTIVE_NAME} ({tuner_config.OBJECTIVE_DIRECTION})",
        "rows": [
            {
                "trial_id": trial.trial_id,
                "classifier": trials.describe_hyperparameters(trial.hyperparameters),
                "objective": trial.objective,
                "status": trial.status,
                "chosen": trial.hyperparameters == chosen,
            }
            for trial in inputs.search.trials
        ],
        "chosen": trials.describe_hyperparameters(chosen),
    }


def _slice_row(metrics: SliceMetrics) -> dict[str, Any]:
    return {
        "name": metrics.name,
        "examples": metrics.example_count,
        "accuracy": metrics.accuracy,
        "macro_auc": metrics.macro_auc,
        "macro_d_prime": metrics.macro_d_prime,
        "present_classes": metrics.present_class_count,
        "clip_accuracy": metrics.clip_accuracy,
        "clips": metrics.clip_count,
        "clip_macro_auc": metrics.clip_macro_auc,
        "clip_macro_d_prime": metrics.clip_macro_d_prime,
        "clip_present_classes": metrics.clip_present_class_count,
    }


def _limitations(inputs: ModelCardInputs) -> list[str]:
    data = inputs.data
    accents = data.accents()
    missing = [
        name for name in inputs.class_names if name not in accents and name != features.NOT_SPEECH_CLASS_NAME
    ]
    notes = [
        f"Trained and evaluated on {len(accents)} accent(s): {', '.join(accents) or 'none'}"
        + (
            f"; it was never shown {', '.join(missing)}, and its scores for them mean nothing."
            if missing
            else "."
        ),
        f"{data.speakers('train')} training speaker(s) and {data.speakers('eval')} evaluation speaker(s): "
        "a model trained on few speakers learns their voices as much as their accents.",
    ]
    if data.split_strategy == "utterance":
        notes.append(
            "The utterance split puts the same speakers in train and eval: its numbers are optimistic."
        )
    genders = {
        name: metrics
        for name, metrics in inputs.evaluation.slices.items()
        if name.startswith(f"{features.GENDER_KEY}=")
    }
    if len(genders) >= 2:
        accuracy = {name: metrics.accuracy for name, metrics in genders.items()}
        auc = {name: metrics.macro_auc for name, metrics in genders.items()}
        accuracy_gap = max(accuracy.values()) - min(accuracy.values())
        auc_gap = max(auc.values()) - min(auc.values())
        detail = "; ".join(
            f"{name}: accuracy {fmt(accuracy[name], 3)}, macro AUC {fmt(auc[name], 3)}"
            for name in sorted(genders)
        )
        if accuracy_gap > FAIRNESS_GAP or auc_gap > FAIRNESS_GAP:
            notes.append(
                f"Fairness: the gender slices differ by more than {FAIRNESS_GAP} ({detail}); "
                "expect unequal quality for speakers of different genders."
            )
        else:
            notes.append(f"The gender slices are within {FAIRNESS_GAP} of each other ({detail}).")
    elif genders:
        notes.append(
            f"Only one gender is in the evaluation data ({', '.join(genders)}): "
            "fairness across genders is untested."
        )
    if not inputs.yamnet.pretrained:
        notes.append(
            "YAMNet ran with OFFLINE, untrained weights: "
            "every number of this card says nothing about real accents."
        )
    return notes


def card_content(inputs: ModelCardInputs) -> tuple[dict[str, Any], list[Figure]]:
    """Builds the card's values and figures from its inputs.

    Args:
        inputs: The card's inputs.

    Returns:
        ``(context, figures)``: the template context (plain values) and the PNG figures.
    """
    class_names = list(inputs.class_names)
    evaluation = inputs.evaluation
    overall = evaluation.overall
    history = inputs.history
    layers = _model_layers(inputs)
    figure_list = [
        Figure(
            "architecture.png",
            "The dense classifier over YAMNet embeddings",
            figures.layer_table(layers, "Dense classifier (input: one 1024-d YAMNet embedding)"),
        ),
        Figure(
            "training_curves.png",
            "Training curves: train against validation",
            figures.training_curves(history),
        ),
        Figure(
            "confusion_matrix.png",
            "Patch-level confusion matrix (eval split) with per-class precision and recall",
            figures.confusion_matrix(
                overall.confusion_matrix,
                overall.classes,
                class_names,
                "Confusion matrix, eval split (patches)",
            ),
        ),
        Figure(
            "roc_curves.png",
            "One-vs-rest ROC curves (eval split, patches)",
            figures.roc_curves(overall, "ROC, one vs rest"),
        ),
    ]
    if overall.clip_confusion_matrix is not None:
        figure_list.append(
            Figure(
                "confusion_matrix_clips.png",
                "Clip-level confusion matrix (eval split): each clip's class is the argmax of the mean of "
                "its speech patches' probabilities",
                figures.confusion_matrix(
                    overall.clip_confusion_matrix,
                    overall.clip_classes,
                    class_names,
                    "Confusion matrix, eval split (clips)",
                ),
            )
        )
    for name, metrics in evaluation.slices.items():
        if name.startswith(f"{features.GENDER_KEY}="):
            value = name.split("=", 1)[1]
            figure_list.append(
                Figure(
                    f"confusion_matrix_{value}.png",
                    f"Patch-level confusion matrix of the slice {name}",
                    figures.confusion_matrix(
                        metrics.confusion_matrix, metrics.classes, class_names, f"Confusion matrix, {name}"
                    ),
                )
            )
    accent_names = [name for name in class_names if name != features.NOT_SPEECH_CLASS_NAME]
    for clip in inputs.example_clips:
        figure_list.append(
            Figure(
                f"clip_{clip.clip_id}.png",
                f"Eval clip {clip.clip_id} ({clip.accent}): "
                "waveform, log-mel spectrogram, per-patch probabilities",
                figures.clip_panels(clip, class_names, accent_names),
            )
        )
    optimizer = history.optimizer
    hyperparameters = [
        ("optimizer", optimizer.get("name", "n/a")),
        ("learning rate", fmt(optimizer.get("learning_rate"), 6)),
        ("beta_1", fmt(optimizer.get("beta_1"))),
        ("beta_2", fmt(optimizer.get("beta_2"))),
        ("epsilon", fmt(optimizer.get("epsilon"), 3)),
        ("epochs (most / run)", f"{history.epochs} / {history.epochs_run}"),
        ("batch size", str(history.batch_size)),
        (
            "early stopping",
            f"on {history.early_stopping_monitor}, patience {history.early_stopping_patience}",
        ),
        ("seed", str(history.seed)),
    ]
    metric_names = list(history.metrics)
    epoch_rows = [
        [str(epoch + 1)]
        + [
            fmt(history.metrics[name][epoch]) if epoch < len(history.metrics[name]) else ""
            for name in metric_names
        ]
        for epoch in range(history.epochs_run)
    ]
    data = inputs.data
    splits = sorted({split for split, _ in data.by_split_accent})
    context = {
        "model_name": inputs.model_name,
        "version": inputs.version,
        "architecture": architecture_text(layers),
        "class_names": class_names,
        "yamnet": inputs.yamnet,
        "offline": not inputs.yamnet.pretrained,
        "blessed": inputs.blessed,
        "validation_ok": evaluation.validation_ok,
        "thresholds": evaluation.thresholds,
        "baseline": _slice_row(evaluation.baseline) if evaluation.baseline else None,
        "hyperparameters": hyperparameters,
        "class_weights": list(history.class_weights.items()),
        "metric_names": metric_names,
        "epoch_rows": epoch_rows,
        "splits": splits,
        "by_split_accent": [
            (split, accent, counts) for (split, accent), counts in data.by_split_accent.items()
        ],
        "by_split_gender": [
            (split, gender, counts) for (split, gender), counts in data.by_split_gender.items()
        ],
        "not_speech_patches": data.not_speech_patches,
        "speakers": {split: data.speakers(split) for split in splits},
        "split_strategy": data.split_strategy,
        "quarantine_by_reason": list(data.quarantine_by_reason.items()),
        "quarantine_total": data.quarantine_total,
        "schema_features": inputs.schema_features,
        "search": _search_rows(inputs),
        "overall": _slice_row(overall),
        "slices": [_slice_row(metrics) for metrics in evaluation.slices.values()],
        "classes": list(overall.present_classes()),
        "clip_classes": list(overall.present_clip_classes()),
        "limitations": _limitations(inputs),
        "accents": data.accents(),
        "dataset_name": inputs.dataset_name,
        "fmt": fmt,
    }
    return context, figure_list


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(["html", "html.jinja"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["fmt"] = fmt
    return environment


def render_html(context: Mapping[str, Any], figure_list: Sequence[Figure]) -> str:
    """Renders the self-contained HTML card (images as data URIs, no external URL)."""
    return _environment().get_template(HTML_TEMPLATE).render(**context, figures=figure_list)


def hugging_face_front_matter(context: Mapping[str, Any]) -> dict[str, Any]:
    """The README's YAML front matter: library, tags, dataset, and model-index results."""
    overall = context["overall"]
    results = [
        {"type": "accuracy", "name": "Patch accuracy", "value": _number(overall["accuracy"])},
        {
            "type": "roc_auc",
            "name": "Present-class macro AUC (patches)",
            "value": _number(overall["macro_auc"]),
        },
        {"type": "d_prime", "name": "d' of the macro AUC", "value": _number(overall["macro_d_prime"])},
        {"type": "accuracy", "name": "Clip accuracy", "value": _number(overall["clip_accuracy"])},
        {
            "type": "roc_auc",
            "name": "Present-class macro AUC (clips)",
            "value": _number(overall["clip_macro_auc"]),
        },
        {
            "type": "d_prime",
            "name": "d' of the clip macro AUC",
            "value": _number(overall["clip_macro_d_prime"]),
        },
    ]
    return {
        "library_name": "keras",
        "license": "cc-by-sa-4.0",
        "language": ["en"],
        "tags": ["audio-classification", "accent-classification", "tfx", "yamnet"],
        "datasets": ["openslr-83"],
        "metrics": ["accuracy", "roc_auc"],
        "model-index": [
            {
                "name": context["model_name"],
                "results": [
                    {
                        "task": {"type": "audio-classification", "name": "Accent classification"},
                        "dataset": {"type": "openslr-83", "name": context["dataset_name"], "split": "eval"},
                        "metrics": [result for result in results if result["value"] is not None],
                    }
                ],
            }
        ],
    }


def render_readme(context: Mapping[str, Any], figure_list: Sequence[Figure]) -> str:
    """Renders the Hugging Face README.md: YAML front matter, then Markdown linking the PNGs beside it."""
    front_matter = yaml.safe_dump(hugging_face_front_matter(context), sort_keys=False, allow_unicode=True)
    body = _environment().get_template(README_TEMPLATE).render(**context, figures=figure_list)
    return f"---\n{front_matter}---\n\n{body}"


def _metric(type_: str, value: float, slice_: str = "") -> dict[str, str]:
    entry = {"type": type_, "value": repr(float(value)) if value is not None else "nan"}
    if slice_ and slice_ != OVERALL_SLICE:
        entry["slice"] = slice_
    return entry


def model_card_json(inputs: ModelCardInputs, context: Mapping[str, Any]) -> dict[str, Any]:
    """The card in model-card-toolkit's JSON schema (v0.0.2); values are strings there, at full precision."""
    performance = []
    for metrics in inputs.evaluation.slices.values():
        for type_, value in (
            ("accuracy", metrics.accuracy),
            ("present_class_macro_auc", metrics.macro_auc),
            ("macro_d_prime", metrics.macro_d_prime),
            ("clip_accuracy", metrics.clip_accuracy),
            ("clip_macro_auc", metrics.clip_macro_auc),
            ("clip_macro_d_prime", metrics.clip_macro_d_prime),
            ("example_count", metrics.example_count),
            ("clip_count", metrics.clip_count),
        ):
            performance.append(_metric(type_, value, metrics.name))
        for prefix, classes in (("", metrics.present_classes()), ("clip_", metrics.present_clip_classes())):
            for class_metrics in classes:
                for type_ in ("precision", "recall", "f1", "auc", "d_prime"):
                    performance.append(
                        _metric(
                            f"{prefix}{type_}/{class_metrics.class_name}",
                            getattr(class_metrics, type_),
                            metrics.name,
                        )
                    )
    if inputs.evaluation.baseline is not None:
        performance.append(_metric("baseline/present_class_macro_auc", inputs.evaluation.baseline.macro_auc))
    history = inputs.history
    return {
        "schema_version": MCT_SCHEMA_VERSION,
        "model_details": {
            "name": inputs.model_name,
            "overview": "Recognises English accents from speech: a dense classifier over YAMNet embeddings.",
            "version": {"name": inputs.version},
            "references": [],
        },
        "model_parameters": {
            "model_architecture": context["architecture"],
            "data": [
                {
                    "name": f"{inputs.dataset_name}, {split} split",
                    "description": "; ".join(
                        f"{accent}: {counts.clips} clips, {counts.speakers} speakers, "
                        f"{counts.patches} patches"
                        for (group_split, accent), counts in inputs.data.by_split_accent.items()
                        if group_split == split
                    ),
                }
                for split in context["splits"]
            ],
            "input_format": "waveform: float32 [num_samples], 16 kHz mono",
            "output_format": "class_probabilities [7], accent, patch_probabilities [num_patches, 7]",
            "output_format_map": [
                {"key": "yamnet_handle", "value": inputs.yamnet.handle},
                {"key": "yamnet_pretrained", "value": str(inputs.yamnet.pretrained).lower()},
                {"key": "blessed", "value": str(inputs.blessed).lower()},
                {"key": "epochs_run", "value": str(history.epochs_run)},
                {"key": "batch_size", "value": str(history.batch_size)},
                {"key": "learning_rate", "value": repr(history.optimizer.get("learning_rate"))},
            ],
        },
        "quantitative_analysis": {
            "performance_metrics": performance,
            "graphics": {"description": "Figures of the card, as PNG files beside it."},
        },
        "considerations": {
            "use_cases": [
                {
                    "description": "Research and demonstration of accent recognition "
                    "on UK and Irish English speech."
                }
            ],
            "limitations": [{"description": note} for note in context["limitations"]],
        },
    }


def validate_model_card_json(content: Mapping[str, Any]) -> bool:
    """Validates against model-card-toolkit's schema when the toolkit is installed.

    Returns:
        True if validated, False if the toolkit (or its schema) is not installed.

    Raises:
        jsonschema.ValidationError: If the content does not follow the schema.
    """
    import importlib.util

    spec = importlib.util.find_spec("model_card_toolkit")
    if spec is None or not spec.submodule_search_locations:
        return False
    schema_path = (
        pathlib.Path(next(iter(spec.submodule_search_locations)))
        / "schema"
        / f"v{MCT_SCHEMA_VERSION}"
        / "model_card.schema.json"
    )
    if not schema_path.exists():
        return False
    import jsonschema

    jsonschema.validate(content, json.loads(schema_path.read_text()))
    return True
