"""The entry point: ``write_model_card(inputs, output_dir)`` writes the HTML, Hugging Face and JSON cards."""

from __future__ import annotations

import dataclasses
import json
import pathlib

from components.model_card import render
from components.model_card.inputs import ModelCardInputs

HTML_FILENAME = "model_card.html"
README_FILENAME = "README.md"
JSON_FILENAME = "model_card.json"


@dataclasses.dataclass(frozen=True)
class ModelCardPaths:
    """What ``write_model_card`` wrote.

    Attributes:
        html: The self-contained ``model_card.html``.
        readme: The Hugging Face ``README.md``.
        json: ``model_card.json`` (model-card-toolkit's schema).
        images: The PNG files beside the README.
        schema_validated: Whether the JSON was validated against model-card-toolkit's schema.
    """

    html: pathlib.Path
    readme: pathlib.Path
    json: pathlib.Path
    images: tuple[pathlib.Path, ...]
    schema_validated: bool


def write_model_card(inputs: ModelCardInputs, output_dir: str | pathlib.Path) -> ModelCardPaths:
    """Writes the model card of one evaluated model into a local directory.

    Args:
        inputs: The card's inputs (``inputs.read_model_card_inputs`` reads them from artifact URIs).
        output_dir: Local directory, created if missing; files of the same names are replaced.

    Returns:
        The paths written.

    Raises:
        jsonschema.ValidationError: If the JSON does not follow model-card-toolkit's schema.
    """
    directory = pathlib.Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    context, figures = render.card_content(inputs)
    images = []
    for figure in figures:
        path = directory / figure.filename
        path.write_bytes(figure.png)
        images.append(path)
    html_path = directory / HTML_FILENAME
    html_path.write_text(render.render_html(context, figures), encoding="utf-8")
    readme_path = directory / README_FILENAME
    readme_path.write_text(render.render_readme(context, figures), encoding="utf-8")
    content = render.model_card_json(inputs, context)
    validated = render.validate_model_card_json(content)
    json_path = directory / JSON_FILENAME
    json_path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return ModelCardPaths(html_path, readme_path, json_path, tuple(images), validated)
