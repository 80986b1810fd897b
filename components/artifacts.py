"""Artifact types of the project's own components.

Type names have the `<namespace>.<Title>` form that Kubeflow Pipelines v2 requires.
"""

from __future__ import annotations

from tfx import types


class ClipIndex(types.Artifact):
    """The labelled, split list of corpus clips, with the entries set aside while indexing.

    Files under the artifact URI: ``clips.csv`` (one row per good clip),
    ``quarantine.csv`` (``filename,reason``) and ``summary.json``.
    """

    TYPE_NAME = "accent.ClipIndex"


class QuarantineReport(types.Artifact):
    """Every corpus entry set aside by a run, with its reason.

    Files under the artifact URI: ``quarantine.csv`` (``filename,reason``) and
    ``summary.json`` (counts of clips and patches per split and class).
    """

    TYPE_NAME = "accent.QuarantineReport"
