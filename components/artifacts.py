"""Artifact types of the project's own components.

A type name is both the `<namespace>.<Title>` that Kubeflow Pipelines takes as the
schema title (TFX checks it against ``^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$``)
and the class path that TFX's step entrypoint imports to rebuild the artifact:
``components/__init__.py`` makes ``components.<Title>`` importable.
"""

from __future__ import annotations

from tfx import types
from tfx.types import value_artifact

# KFP's own artifact types that the project's steps write, and the class that stands for each when
# TFX's step entrypoint rebuilds an artifact from its schema title (``pipeline/kubeflow_step.py``
# registers them). A ``system.*`` title is what the KFP UI and Vertex AI render.
KFP_SYSTEM_TITLE_CLASS_PATHS: dict[str, str] = {"system.HTML": "components.artifacts.ModelCardPage"}


class ClipIndex(types.Artifact):
    """The labelled, split list of corpus clips, with the entries set aside while indexing.

    Files under the artifact URI: ``clips.csv`` (one row per good clip),
    ``quarantine.csv`` (``filename,reason``) and ``summary.json``; their layout,
    reader and writer are ``artifact_files.ClipIndexFiles`` and ``ClipIndexSummary``.
    """

    TYPE_NAME = "components.ClipIndex"


class QuarantineReport(types.Artifact):
    """Every corpus entry set aside by a run, with its reason.

    Files under the artifact URI: ``quarantine.csv`` (``filename,reason``) and
    ``summary.json`` (counts of clips and patches per split and class); their
    layout, reader and writer are ``artifact_files.QuarantineReportFiles`` and
    ``EmbeddingSummary``.
    """

    TYPE_NAME = "components.QuarantineReport"


class ModelCard(types.Artifact):
    """The model card of one evaluated model, blessed or not.

    Files under the artifact URI: ``model_card.html`` (self-contained, images
    embedded), the Hugging Face ``README.md`` with its PNG figures beside it,
    and ``model_card.json`` (model-card-toolkit's schema); their writer is
    ``components.model_card.generate.write_model_card``. The headline (blessed,
    why, metrics, YAMNet's provenance) is also in the artifact's custom
    properties, which ``accent-pipeline report`` reads from ML Metadata.
    """

    TYPE_NAME = "components.ModelCard"


class ModelCardPage(value_artifact.ValueArtifact):
    """The model card's self-contained HTML page, as one file: what the Kubeflow Pipelines UI shows.

    Its type name is KFP's ``system.HTML``: the KFP UI (Visualizations tab) and Vertex AI Pipelines
    render an artifact of that type inline, reading its URI as one file. A value artifact's URI
    is a file, in a local run and on Kubeflow alike. The content is ``model_card.html`` of the
    step's ``ModelCard``, whose directory also holds the Hugging Face card and the JSON.
    """

    TYPE_NAME = "system.HTML"

    def encode(self, value: str) -> bytes:
        """The page's HTML as UTF-8 bytes."""
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        """The page's HTML from its UTF-8 bytes."""
        return serialized_value.decode("utf-8")
