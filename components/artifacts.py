"""Artifact types of the project's own components.

A type name is both the `<namespace>.<Title>` that Kubeflow Pipelines takes as the
schema title (TFX checks it against ``^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$``)
and the class path that TFX's step entrypoint imports to rebuild the artifact:
``components/__init__.py`` makes ``components.<Title>`` importable.
"""

from __future__ import annotations

from tfx import types


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
