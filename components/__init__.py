"""The pipeline's components and the modules they are built from.

The project's artifact types are reachable here as ``components.ClipIndex``,
``components.ModelCard`` and ``components.QuarantineReport``: that is their type name, which Kubeflow uses
as the schema title and TFX's step entrypoint imports as a class path. They
are loaded on first use, so importing a submodule does not import TFX.
"""

from __future__ import annotations

from typing import Any

_ARTIFACT_TYPES = ("ClipIndex", "ModelCard", "QuarantineReport")


def __getattr__(name: str) -> Any:
    """Loads the artifact types on first use (PEP 562)."""
    if name in _ARTIFACT_TYPES:
        from components import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
