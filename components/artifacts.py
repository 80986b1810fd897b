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
