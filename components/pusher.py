"""A Pusher executor that does not push the model it already serves a second time.

On a rerun whose Trainer output comes from TFX's cache, the Evaluator still
runs again (its baseline is now the blessed model, which is the same model),
blesses it, and the stock Pusher would write an identical new version. This
executor compares the candidate with the latest pushed version and, when they
are the same SavedModel, records that version instead of adding another.
"""

from __future__ import annotations

import os
import re
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

# Files that identify a SavedModel: its fingerprint (TF 2.12+) or, failing
# that, its graph and its variables' index.
_IDENTITY_FILES = (("fingerprint.pb",), ("saved_model.pb", os.path.join("variables", "variables.index")))


# A version directory's name: TF Serving's integer version, in ASCII digits.
_VERSION_NAME = re.compile(r"[0-9]+")

# The file without which a version directory is no SavedModel (an interrupted copy, say).
_SAVED_MODEL_FILE = "saved_model.pb"


def version_number(version_dir: str) -> int:
    """The version number of a version directory, from its name."""
    return int(os.path.basename(version_dir.rstrip("/")))


def _version_dirs(base_directory: str) -> list[str]:
    """The version directories under a model base path, highest version first."""
    if not fileio.exists(base_directory):
        return []
    names = [name.rstrip("/") for name in fileio.listdir(base_directory)]
    versions = sorted((name for name in names if _VERSION_NAME.fullmatch(name)), key=int, reverse=True)
    return [os.path.join(base_directory, name) for name in versions]


def latest_complete_version_dir(base_directory: str) -> str | None:
    """Returns the highest version under a model base path that holds a SavedModel, if any.

    A version directory without ``saved_model.pb`` is reported and passed over.
    """
    for version_dir in _version_dirs(base_directory):
        if fileio.exists(os.path.join(version_dir, _SAVED_MODEL_FILE)):
            return version_dir
        logging.warning("%s has no %s: not a complete model, passed over", version_dir, _SAVED_MODEL_FILE)
    return None


def _read(path: str) -> bytes | None:
    if not fileio.exists(path):
        return None
    with fileio.open(path, "rb") as file:
        return file.read()


def same_saved_model(first_dir: str, second_dir: str) -> bool:
    """Whether two directories hold the same SavedModel, by its identifying files."""
    for names in _IDENTITY_FILES:
        first = [_read(os.path.join(first_dir, name)) for name in names]
        second = [_read(os.path.join(second_dir, name)) for name in names]
        if all(content is not None for content in first + second):
            return first == second
    return False


class Executor(pusher_executor.Executor):
    """TFX's Pusher, except that a model already served is not pushed again."""

    def Do(  # noqa: N802 - the TFX executor interface.
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Pushes a blessed model unless the latest pushed version is the same model."""
        if self.CheckBlessing(input_dict):
            push_destination = pusher_pb2.PushDestination()
            proto_utils.json_to_proto(
                exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], push_destination
            )
            if push_destination.WhichOneof("destination") == "filesystem":
                latest = latest_complete_version_dir(push_destination.filesystem.base_directory)
                if latest and same_saved_model(self.GetModelPath(input_dict), latest):
                    logging.info("This model is already served as %s; not pushing it again.", latest)
                    model_push = artifact_utils.get_single_instance(
                        output_dict[standard_component_specs.PUSHED_MODEL_KEY]
                    )
                    self._MarkPushed(
                        model_push, pushed_destination=latest, pushed_version=os.path.basename(latest)
                    )
                    model_push.set_int_custom_property("already_served", 1)
                    return
        super().Do(input_dict, output_dict, exec_properties)


class Pusher(pusher_component.Pusher):
    """TFX's Pusher component, run by the executor above."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
