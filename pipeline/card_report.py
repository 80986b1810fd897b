"""``accent-pipeline report OUT``: the model card of the latest run recorded in OUT's ML Metadata.

The summary comes from the ModelCard artifact's custom properties
(``components.model_card.component.card_properties``), which hold the card's
headline as TFMA and the blessing gave it; the paths are the artifact's files.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from components.errors import AccentPipelineError, InvalidArgumentError

# What the local runner calls its ML Metadata store inside OUT.
METADATA_FILENAME = "metadata.sqlite"


class ModelCardNotFoundError(AccentPipelineError):
    """OUT holds no pipeline run, or its latest run wrote no model card."""


@dataclasses.dataclass(frozen=True)
class CardReport:
    """The model card of one run, as ML Metadata records it.

    Attributes:
        directory: The ModelCard artifact's directory.
        properties: The artifact's custom properties (the card's headline), by name.
    """

    directory: str
    properties: dict[str, str | int | float]

    def path(self, filename: str) -> str:
        """The path of one of the card's files."""
        return os.path.join(self.directory, filename)

    def images(self) -> list[str]:
        """The card's PNG figures, sorted."""
        return sorted(str(path) for path in Path(self.directory).glob("*.png"))


def _property_value(value: object) -> str | int | float:
    """The Python value of an ML Metadata Value proto."""
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind in ("int_value", "double_value", "string_value") else ""


def latest_card(output_dir: str) -> CardReport:
    """Finds the model card of the latest run in ``OUT/metadata.sqlite``.

    Args:
        output_dir: The run's output directory OUT.

    Returns:
        The card.

    Raises:
        InvalidArgumentError: If OUT does not exist.
        ModelCardNotFoundError: If OUT records no run, or the latest run wrote no card.
    """
    from pipeline import pipeline as pipeline_definition
    from pipeline import run_summary

    if not os.path.isdir(output_dir):
        raise InvalidArgumentError(f"{output_dir} is no directory: give the OUT of a run")
    metadata_path = os.path.join(output_dir, METADATA_FILENAME)
    if not os.path.isfile(metadata_path):
        raise ModelCardNotFoundError(f"{output_dir} holds no pipeline run ({METADATA_FILENAME} is missing)")
    runs = run_summary.latest_run(run_summary.open_store(metadata_path))
    if not runs:
        raise ModelCardNotFoundError(f"{metadata_path} records no pipeline run")
    card_run = runs.get(pipeline_definition.MODEL_CARD_GENERATOR_ID)
    cards = card_run.outputs.get("model_card", []) if card_run else []
    if not cards:
        state = (
            f"its {card_run.component_id} is {card_run.state}" if card_run else "it stopped before the card"
        )
        raise ModelCardNotFoundError(f"the latest run in {output_dir} wrote no model card: {state}")
    card = cards[0]
    properties = {name: _property_value(value) for name, value in card.custom_properties.items()}
    return CardReport(directory=card.uri, properties=properties)


def _metric(properties: dict[str, str | int | float], name: str) -> str:
    value = properties.get(name)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{value:.4f}"


def format_report(report: CardReport) -> str:
    """The card's summary and paths, one item per line.

    Args:
        report: The card.

    Returns:
        Model, blessed or not and why, headline metrics, YAMNet's provenance, the files.
    """
    from components.model_card import component, generate

    properties = report.properties
    blessed = properties.get(component.BLESSED_PROPERTY) == 1
    reason = properties.get(component.BLESSING_REASON_PROPERTY, "")
    pretrained = properties.get(component.YAMNET_PRETRAINED_PROPERTY, 1) != 0
    handle = properties.get(component.YAMNET_HANDLE_PROPERTY, "unknown")
    lines = [
        f"Model card of {properties.get(component.MODEL_NAME_PROPERTY, 'the model')}",
        f"Blessed: {'yes' if blessed else 'no'} ({reason})"
        if reason
        else f"Blessed: {'yes' if blessed else 'no'}",
        "Patches (eval split): "
        f"accuracy {_metric(properties, 'accuracy')}, "
        f"macro AUC {_metric(properties, 'macro_auc')}, "
        f"d' {_metric(properties, 'macro_d_prime')}",
        "Clips (eval split): "
        f"accuracy {_metric(properties, 'clip_accuracy')}, "
        f"macro AUC {_metric(properties, 'clip_macro_auc')}, "
        f"d' {_metric(properties, 'clip_macro_d_prime')}",
        f"YAMNet: {handle!r}, " + ("pretrained weights" if pretrained else "OFFLINE (untrained) weights"),
    ]
    if not pretrained:
        lines.append("WARNING: offline YAMNet weights: these numbers say nothing about real accents")
    images = report.images()
    lines += [
        f"HTML: {report.path(generate.HTML_FILENAME)}",
        f"Hugging Face README: {report.path(generate.README_FILENAME)}",
        f"JSON: {report.path(generate.JSON_FILENAME)}",
        f"Figures: {len(images)} PNG files in {report.directory}",
    ]
    return "\n".join(lines)
