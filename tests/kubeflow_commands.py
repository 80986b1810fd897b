"""The ``compile-kubeflow`` command lines of the tests: the README's runbook and its parts."""

from __future__ import annotations

from pathlib import Path

IMAGE = "example/accent:1"

# The claims of kubernetes/overlays/local and where every step mounts them.
PVC_MOUNTS = {"accent-pipeline-root": "/pipeline-root", "accent-model-store": "/models"}
MOUNT_FLAGS = [f"--pvc-mount={claim}:{path}" for claim, path in PVC_MOUNTS.items()]

# The paths of the runbook (and of issue 11's "done when" command), each on one of the claims.
STEP_PATH_FLAGS = [
    "--corpus",
    "/pipeline-root/corpus",
    "--serving-base-path",
    "/models/accent",
    "--quarantine-copy",
    "/pipeline-root/quarantine.csv",
]


def compile_command(output: str | Path, pipeline_root: str, *flags: str) -> list[str]:
    """Returns ``compile-kubeflow`` arguments with the test image and the given flags."""
    return [
        "compile-kubeflow",
        "--output",
        str(output),
        "--image",
        IMAGE,
        "--pipeline-root",
        pipeline_root,
        *flags,
    ]
