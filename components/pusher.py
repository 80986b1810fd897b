"""A Pusher executor that pushes atomically and does not push the model it already serves a second time.

Atomic pushes. TFX's stock Pusher copies straight into ``<base>/<version>/``; a
crash or a full disk mid-copy leaves a version directory that holds part of a
SavedModel, which TF Serving tries to load and a rerun may take for the served
model. This executor copies into a temporary directory of the same base path,
``.tmp-<version>-<random>`` (TF Serving ignores names that are not numbers),
checks that the copy is a complete SavedModel, and only then renames it to
``<base>/<version>``. On a local file system the rename is atomic: a version
directory either holds the whole model or does not exist. On an object store
such as ``gs://`` a directory rename is a copy of every object followed by a
delete, so it is not atomic; copying to the temporary name first is still the
best available (the slow, failure-prone copy happens under a name that TF
Serving ignores, and the complete copy is checked before the rename starts).

Complete versions. A version directory counts as a served model only when it
is a complete SavedModel (``incomplete_reason``): ``saved_model.pb`` is there,
the variables' index and every data shard are there when the model has
variables, and ``fingerprint.pb``, when present, matches the files it
fingerprints. Anything else is reported with a warning naming it and passed
over, both here and by ``components.baseline``. Which names are versions at all
is ``components.serving.versions``'s rule (ASCII digits, within int64, one name
per number); a digit name that is no version is reported and passed over.

Already served. On a rerun whose Trainer output comes from TFX's cache, the
Evaluator still runs again (its baseline is now the blessed model, which is the
same model), blesses it, and the stock Pusher would write an identical new
version. This executor compares the candidate with the latest complete pushed
version and, when they are the same SavedModel, records that version instead of
adding another.

The model card. When the Pusher gets the ModelCardGenerator's card (the
optional ``model_card`` input), a push copies it into the temporary directory,
under ``assets.extra/model_card/``, before the rename: the version appears with
its card or not at all. TF Serving ignores ``assets.extra``, and the checks
above read only ``saved_model.pb``, the variables and ``fingerprint.pb``, so the
card changes neither what a complete version is nor what the same model is. A
model already served keeps the card of the push that wrote it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import uuid
from typing import Any

from google.protobuf import message
from tensorflow.core.protobuf import fingerprint_pb2, saved_model_pb2
from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting
from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, json_utils, proto_utils

from components.artifacts import ModelCard
from components.serving import versions

logger = logging.getLogger(__name__)

# Files that identify a SavedModel: its fingerprint (TF 2.12+) or, failing
# that, its graph and its variables' index.
_IDENTITY_FILES = (("fingerprint.pb",), ("saved_model.pb", os.path.join("variables", "variables.index")))

# The prefix of the temporary directory a push copies into before renaming it to its version.
TEMPORARY_PREFIX = ".tmp-"

_SAVED_MODEL_FILE = "saved_model.pb"
_FINGERPRINT_FILE = "fingerprint.pb"
_VARIABLES_DIR = "variables"
_VARIABLES_INDEX = "variables.index"
_VARIABLES_SHARD = re.compile(r"variables\.data-([0-9]{5})-of-([0-9]{5})")

# The Pusher's input holding the model card, and where a pushed version carries it (TF Serving ignores it).
MODEL_CARD_KEY = "model_card"
MODEL_CARD_DIR = os.path.join("assets.extra", "model_card")

# How many higher version numbers a push tries when another push took the one it chose.
_RENAME_ATTEMPTS = 5


@dataclasses.dataclass(frozen=True)
class _BaseListing:
    """What a model base path holds: versions (highest first) and temporary directories of pushes."""

    versions: list[tuple[int, str]]
    temporary_dirs: list[str]


def _list_base(base_directory: str) -> _BaseListing:
    """Lists a model base path; a digit name that is no version is reported and left out."""
    if not fileio.exists(base_directory):
        return _BaseListing(versions=[], temporary_dirs=[])
    names = sorted(name.rstrip("/") for name in fileio.listdir(base_directory))
    index = versions.index_versions(names)
    for name, reason in index.ignored.items():
        logger.warning("Ignored %s: %s", os.path.join(base_directory, name), reason)
    return _BaseListing(
        versions=[(version, os.path.join(base_directory, name)) for version, name in index.newest_first()],
        temporary_dirs=[
            os.path.join(base_directory, name) for name in names if name.startswith(TEMPORARY_PREFIX)
        ],
    )


def stale_temporary_dirs(base_directory: str) -> list[str]:
    """The temporary directories of pushes under a model base path.

    When no push is under way they are stale: left by a push that crashed
    before renaming its copy into place.

    Args:
        base_directory: TF Serving's model base path.

    Returns:
        Their paths, sorted.
    """
    return _list_base(base_directory).temporary_dirs


def remove_stale_temporary_dirs(base_directory: str) -> list[str]:
    """Removes the temporary directories that crashed pushes left under a model base path.

    Call it only when no push into this base path can be under way (the local
    runner does, holding the output directory's lock).

    Args:
        base_directory: TF Serving's model base path.

    Returns:
        The paths removed.
    """
    removed = []
    for path in stale_temporary_dirs(base_directory):
        logger.warning("Removing %s, left by a push that did not finish", path)
        fileio.rmtree(path)
        removed.append(path)
    return removed


def _read(path: str) -> bytes | None:
    if not fileio.exists(path):
        return None
    with fileio.open(path, "rb") as file:
        return file.read()


def _variables_reason(model_dir: str) -> str | None:
    """Why the variables of a SavedModel directory are incomplete, or None if they are not."""
    variables_dir = os.path.join(model_dir, _VARIABLES_DIR)
    if not fileio.isdir(variables_dir):
        return None
    names = {name.rstrip("/") for name in fileio.listdir(variables_dir)}
    shards = [_VARIABLES_SHARD.fullmatch(name) for name in names]
    shard_counts = {int(match.group(2)) for match in shards if match}
    if not shard_counts and _VARIABLES_INDEX not in names:
        return None  # A model without variables.
    if _VARIABLES_INDEX not in names:
        return f"{_VARIABLES_DIR}/{_VARIABLES_INDEX} is missing"
    if not shard_counts:
        return f"{_VARIABLES_DIR}/ has an index but no data shard"
    if len(shard_counts) > 1:
        return f"{_VARIABLES_DIR}/ mixes data shards of different checkpoints"
    count = shard_counts.pop()
    for shard in range(count):
        name = f"variables.data-{shard:05d}-of-{count:05d}"
        if name not in names:
            return f"{_VARIABLES_DIR}/{name} is missing"
    return None


def _fingerprint_reason(model_dir: str, recorded: bytes) -> str | None:
    """Why ``fingerprint.pb`` does not match the files it fingerprints, or None if it does."""
    try:
        expected = fingerprint_pb2.FingerprintDef.FromString(recorded)
        # TensorFlow's own fingerprinting (what tf.saved_model.save writes), on the files as they are now.
        actual = fingerprint_pb2.FingerprintDef.FromString(fingerprinting.CreateFingerprintDef(model_dir))
    except (message.DecodeError, fingerprinting.FingerprintException, RuntimeError, ValueError) as error:
        return f"its fingerprint cannot be checked: {error}"
    if actual.saved_model_checksum != expected.saved_model_checksum:
        return f"{_SAVED_MODEL_FILE} does not match {_FINGERPRINT_FILE} (truncated or replaced)"
    if actual.checkpoint_hash != expected.checkpoint_hash:
        return f"{_VARIABLES_DIR}/{_VARIABLES_INDEX} does not match {_FINGERPRINT_FILE}"
    return None


def incomplete_reason(model_dir: str) -> str | None:
    """Why a directory is not a complete SavedModel, or None if it is one.

    Complete means: ``saved_model.pb`` is present; when the model has
    variables, ``variables/variables.index`` and every data shard it names
    (``variables.data-<i>-of-<n>``) are present; and ``fingerprint.pb``, when
    present, matches ``saved_model.pb`` and the variables' index. Without a
    fingerprint (models of TensorFlow before 2.12), ``saved_model.pb`` must parse.

    Args:
        model_dir: The directory, e.g. a version directory under a model base path.

    Returns:
        A short reason, or None for a complete SavedModel.
    """
    graph = _read(os.path.join(model_dir, _SAVED_MODEL_FILE))
    if graph is None:
        return f"no {_SAVED_MODEL_FILE}"
    if not graph:
        return f"{_SAVED_MODEL_FILE} is empty"
    variables_reason = _variables_reason(model_dir)
    if variables_reason is not None:
        return variables_reason
    recorded = _read(os.path.join(model_dir, _FINGERPRINT_FILE))
    if recorded is not None:
        return _fingerprint_reason(model_dir, recorded)
    try:
        saved_model_pb2.SavedModel.FromString(graph)
    except message.DecodeError as error:
        return f"{_SAVED_MODEL_FILE} does not parse: {error}"
    return None


def latest_complete_version_dir(base_directory: str) -> str | None:
    """Returns the highest version under a model base path that holds a complete SavedModel, if any.

    Every incomplete version directory above it, every numeric name beyond
    int64 and every temporary directory of a push is reported with a warning
    and passed over.

    Args:
        base_directory: TF Serving's model base path.

    Returns:
        The version directory, or None if there is no complete version.
    """
    listing = _list_base(base_directory)
    for path in listing.temporary_dirs:
        logger.warning("Ignored: %s is the temporary copy of a push that did not finish", path)
    for _, version_dir in listing.versions:
        reason = incomplete_reason(version_dir)
        if reason is None:
            return version_dir
        logger.warning(
            "%s is not a complete model (%s): never counted as served, passed over", version_dir, reason
        )
    return None


def same_saved_model(first_dir: str, second_dir: str) -> bool:
    """Whether two directories hold the same complete SavedModel.

    Both must be complete (``incomplete_reason``); then their fingerprints
    decide or, without fingerprints, their graphs and variables' indexes.

    Args:
        first_dir: A SavedModel directory.
        second_dir: Another SavedModel directory.
    """
    if incomplete_reason(first_dir) is not None or incomplete_reason(second_dir) is not None:
        return False
    for names in _IDENTITY_FILES:
        first = [_read(os.path.join(first_dir, name)) for name in names]
        second = [_read(os.path.join(second_dir, name)) for name in names]
        if all(content is not None for content in first + second):
            return first == second
    return False


def _is_local(path: str) -> bool:
    return "://" not in path


def _rename_directory(source: str, destination: str) -> None:
    """Renames a directory; fails if the destination exists (and is not an empty directory, locally).

    Raises:
        OSError: If the destination exists. The file system's own error otherwise.
    """
    if _is_local(source):
        os.rename(source, destination)  # Atomic on a POSIX file system.
    else:
        fileio.rename(source, destination, overwrite=False)  # A copy and a delete on object stores.


def push_atomically(model_dir: str, base_directory: str, model_card_dir: str | None = None) -> str:
    """Pushes a SavedModel to a new version under a model base path, all at once or not at all.

    The version is the current Unix time, or one more than the highest version
    there if that is not lower, so the new model is the one TF Serving serves.
    The model, and its card if given (under ``assets.extra/model_card/``), is
    copied to ``.tmp-<version>-<random>`` in the base path (``saved_model.pb``
    last), checked, then renamed to ``<version>``. If the copy fails, the
    temporary directory is removed and the error raised.

    Args:
        model_dir: The SavedModel to push.
        base_directory: TF Serving's model base path.
        model_card_dir: The ModelCard artifact's directory, or None to push the model alone.

    Returns:
        The new version directory.

    Raises:
        ValueError: If ``model_dir`` is not a complete SavedModel.
        RuntimeError: If the copy is not complete, or no free version was found.
    """
    reason = incomplete_reason(model_dir)
    if reason is not None:
        raise ValueError(f"Refusing to push {model_dir}: not a complete SavedModel ({reason})")
    fileio.makedirs(base_directory)
    listing = _list_base(base_directory)
    highest = listing.versions[0][0] if listing.versions else 0
    version = max(int(time.time()), highest + 1)
    temporary_dir = os.path.join(base_directory, f"{TEMPORARY_PREFIX}{version}-{uuid.uuid4().hex[:12]}")
    logger.info("Pushing %s: copying it to %s", model_dir, temporary_dir)
    try:
        # As TFX's Pusher does: saved_model.pb last, the file that marks a SavedModel as written.
        io_utils.copy_dir(model_dir, temporary_dir, deny_regex_patterns=[r"(^|/)saved_model\.pb$"])
        if model_card_dir:
            card_destination = os.path.join(temporary_dir, MODEL_CARD_DIR)
            logger.info("Adding the model card %s as %s", model_card_dir, card_destination)
            io_utils.copy_dir(model_card_dir, card_destination)
        io_utils.copy_file(
            os.path.join(model_dir, _SAVED_MODEL_FILE), os.path.join(temporary_dir, _SAVED_MODEL_FILE)
        )
        reason = incomplete_reason(temporary_dir)
        if reason is not None:
            raise RuntimeError(f"The copy of {model_dir} in {temporary_dir} is incomplete: {reason}")
    except BaseException:
        logger.warning("The push did not finish; removing %s", temporary_dir)
        try:
            fileio.rmtree(temporary_dir)
        except Exception:  # The push's own error matters more than this one.
            logger.warning("Could not remove %s", temporary_dir, exc_info=True)
        raise
    for _ in range(_RENAME_ATTEMPTS):
        version_dir = os.path.join(base_directory, str(version))
        if not fileio.exists(version_dir):
            try:
                _rename_directory(temporary_dir, version_dir)
            except OSError:
                if not fileio.exists(version_dir):
                    raise
            else:
                logger.info("Pushed: renamed %s to %s", temporary_dir, version_dir)
                return version_dir
        logger.warning("Version %s was taken meanwhile by another push; trying %s", version, version + 1)
        version += 1
    raise RuntimeError(f"No free version under {base_directory} after {_RENAME_ATTEMPTS} attempts")


class Executor(pusher_executor.Executor):
    """TFX's Pusher for file system destinations, except atomic, and no second push of a served model."""

    def Do(  # noqa: N802 - the TFX executor interface.
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Pushes a blessed model atomically, unless the latest complete version is the same model.

        Args:
            input_dict: TFX's Pusher inputs, ``model`` and ``model_blessing``, and the optional
                ``model_card``.
            output_dict: TFX's Pusher output ``pushed_model``.
            exec_properties: TFX's Pusher properties, with ``push_destination``.

        Raises:
            NotImplementedError: For a versioning other than TFX's Unix timestamp.
        """
        push_destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], push_destination
        )
        if push_destination.WhichOneof("destination") != "filesystem":
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        filesystem = push_destination.filesystem
        versioning = pusher_pb2.Versioning
        if filesystem.versioning not in (versioning.AUTO, versioning.UNIX_TIMESTAMP):
            raise NotImplementedError(f"Versioning {filesystem.versioning} is not supported")
        model_path = self.GetModelPath(input_dict)
        latest = latest_complete_version_dir(filesystem.base_directory)
        if latest and same_saved_model(model_path, latest):
            logger.info("This model is already served as %s; not pushing it again.", latest)
            self._MarkPushed(model_push, pushed_destination=latest, pushed_version=os.path.basename(latest))
            model_push.set_int_custom_property("already_served", 1)
            return
        model_cards = input_dict.get(MODEL_CARD_KEY) or []
        model_card_dir = artifact_utils.get_single_uri(model_cards) if model_cards else None
        version_dir = push_atomically(model_path, filesystem.base_directory, model_card_dir)
        logger.info("Archiving the pushed model in %s", model_push.uri)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(
            model_push, pushed_destination=version_dir, pushed_version=os.path.basename(version_dir)
        )


class PusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher spec with one more optional input, the model card to push with the model."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        MODEL_CARD_KEY: component_spec.ChannelParameter(type=ModelCard, optional=True),
    }


class Pusher(pusher_component.Pusher):
    """TFX's Pusher component, run by the executor above, with the model card as an optional input."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        push_destination: pusher_pb2.PushDestination,
        model_card: types.BaseChannel | None = None,
    ) -> None:
        """Builds the Pusher of a file system destination.

        Args:
            model: The Trainer's model.
            model_blessing: The Evaluator's blessing.
            push_destination: Where to push: TF Serving's model base path.
            model_card: The ModelCardGenerator's card, copied into the pushed version; None for none.
        """
        spec = PusherSpec(
            model=model,
            model_blessing=model_blessing,
            model_card=model_card,
            push_destination=push_destination,
            custom_config=json_utils.dumps(None),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
