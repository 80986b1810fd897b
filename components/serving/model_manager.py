"""Keeps the latest version of a served model loaded, the way TF Serving does.

A served model lives in TF Serving's layout, ``<model_base_path>/<version>/``
holding ``saved_model.pb`` and ``variables/``. ``ModelManager`` polls the base
path and serves the highest integer version (TF Serving's default "latest"
policy); which directory names are versions is ``components.serving.versions``'s
rule (a name that looks like a version but is not one is ignored with one
warning), and a version is loaded from the directory whose name stands for it.
A version directory is loaded only once it is complete
(``saved_model.pb`` and ``variables/variables.index`` exist) and its files
have not changed between two polls, so a directory still being written is
never loaded. The new version is loaded before the old one is dropped, and a
request that already holds the old ``LoadedModel`` keeps using it until it
finishes: Python's reference counting keeps the old model alive. A version
that fails to load is logged and retried once its files change or after a
back-off, while the previous version keeps serving.

Complete here is a cheaper test than ``components.pusher.incomplete_reason``
(file stats only, every poll, local files only), so the two are not shared.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from components.serving import versions

logger = logging.getLogger(__name__)

SAVED_MODEL_FILENAME = "saved_model.pb"
VARIABLES_INDEX_PATH = os.path.join("variables", "variables.index")
SERVING_TAG = "serve"

# Seconds before a version whose files have not changed is loaded again after a failure.
DEFAULT_LOAD_RETRY_SECONDS = 30.0

ModelVersionState = get_model_status_pb2.ModelVersionStatus.State

# What the files of a version directory looked like at one poll: (relative path, size, mtime) per file.
DirectoryFingerprint = tuple[tuple[str, int, int], ...]


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """One loaded version of the served model.

    Attributes:
        name: The model name clients ask for.
        version: The version number (the directory name).
        path: The version directory.
        saved_model: The object ``tf.saved_model.load`` returned; it owns the signatures' variables.
        signatures: Signature name to the concrete function that runs it.
        signature_def_map: The SavedModel's signature defs, as GetModelMetadata returns them.
    """

    name: str
    version: int
    path: Path
    saved_model: Any
    signatures: Mapping[str, Callable[..., Mapping[str, tf.Tensor]]]
    signature_def_map: get_model_metadata_pb2.SignatureDefMap


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """The state of one version, as GetModelStatus reports it.

    Attributes:
        version: The version number.
        state: A ``ModelVersionStatus.State`` value (LOADING, AVAILABLE or END).
        error_code: A ``tensorflow.error.Code`` value; OK unless the last load failed.
        error_message: Why the last load failed, or "".
    """

    version: int
    state: int
    error_code: int = error_codes_pb2.OK
    error_message: str = ""


@dataclasses.dataclass
class _LoadFailure:
    """A failed load, remembered so that it is not retried at every poll."""

    fingerprint: DirectoryFingerprint
    failed_at: float


@dataclasses.dataclass(frozen=True)
class _ScannedVersion:
    """A version directory as one poll saw it.

    Attributes:
        path: The directory the version is loaded from.
        fingerprint: Its files, or None while it is not complete.
    """

    path: Path
    fingerprint: DirectoryFingerprint | None


def fingerprint_version_directory(version_dir: Path) -> DirectoryFingerprint | None:
    """Describes a version directory's files, or returns None if it is not complete.

    Args:
        version_dir: A ``<model_base_path>/<version>`` directory.

    Returns:
        The sorted (relative path, size, modification time in ns) of every file,
        or None when ``saved_model.pb`` or ``variables/variables.index`` is
        missing or the directory changes while it is read.
    """
    if (
        not (version_dir / SAVED_MODEL_FILENAME).is_file()
        or not (version_dir / VARIABLES_INDEX_PATH).is_file()
    ):
        return None
    entries = []
    try:
        for directory, _, filenames in os.walk(version_dir):
            for filename in filenames:
                file_path = os.path.join(directory, filename)
                file_stat = os.stat(file_path)
                entries.append(
                    (os.path.relpath(file_path, version_dir), file_stat.st_size, file_stat.st_mtime_ns)
                )
    except OSError:
        return None
    return tuple(sorted(entries))


def read_signature_def_map(version_dir: Path) -> get_model_metadata_pb2.SignatureDefMap:
    """Reads the signature defs of a SavedModel's "serve" meta graph.

    Args:
        version_dir: A SavedModel directory.

    Returns:
        Every signature def of the meta graph tagged "serve", as GetModelMetadata returns them.

    Raises:
        ValueError: If the SavedModel has no meta graph tagged "serve".
    """
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / SAVED_MODEL_FILENAME).read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            signature_def_map = get_model_metadata_pb2.SignatureDefMap()
            for signature_name, signature_def in meta_graph.signature_def.items():
                signature_def_map.signature_def[signature_name].CopyFrom(signature_def)
            return signature_def_map
    raise ValueError(f"{version_dir} has no meta graph tagged {SERVING_TAG!r}")


def load_model_version(model_name: str, version: int, version_dir: Path) -> LoadedModel:
    """Loads one version directory.

    Args:
        model_name: The name the model is served under.
        version: The version number.
        version_dir: The SavedModel directory.

    Returns:
        The loaded model.
    """
    signature_def_map = read_signature_def_map(version_dir)
    saved_model = tf.saved_model.load(str(version_dir), tags=[SERVING_TAG])
    return LoadedModel(
        name=model_name,
        version=version,
        path=version_dir,
        saved_model=saved_model,
        signatures=dict(saved_model.signatures),
        signature_def_map=signature_def_map,
    )


class ModelManager:
    """Polls a model base path and keeps its latest complete version loaded.

    Call ``start()`` to poll in a background thread, ``current()`` once per
    request to get the model that answers it, and ``stop()`` at shutdown.
    """

    def __init__(
        self,
        model_base_path: str | os.PathLike[str],
        model_name: str,
        poll_wait_seconds: float = 1.0,
        load_retry_seconds: float = DEFAULT_LOAD_RETRY_SECONDS,
    ) -> None:
        """Creates a manager; nothing is loaded before ``start()`` or ``poll_once()``.

        Args:
            model_base_path: Directory holding one subdirectory per integer version.
            model_name: The name clients ask for.
            poll_wait_seconds: Seconds between two polls of the base path.
            load_retry_seconds: Seconds before a failed version whose files did
                not change is loaded again.

        Raises:
            ValueError: If a name or duration is invalid.
        """
        if not model_name:
            raise ValueError("model_name must not be empty")
        if poll_wait_seconds <= 0:
            raise ValueError(f"poll_wait_seconds must be positive, got {poll_wait_seconds}")
        if load_retry_seconds < 0:
            raise ValueError(f"load_retry_seconds must not be negative, got {load_retry_seconds}")
        self.model_base_path = Path(model_base_path).absolute()
        self.model_name = model_name
        self.poll_wait_seconds = poll_wait_seconds
        self.load_retry_seconds = load_retry_seconds
        self._current: LoadedModel | None = None
        self._statuses: dict[int, VersionStatus] = {}
        self._condition = threading.Condition()
        self._previous_scan: dict[int, _ScannedVersion] = {}
        self._load_failures: dict[int, _LoadFailure] = {}
        self._warned_missing_base_path = False
        self._warned_missing_current = False
        self._warned_no_versions = False
        self._warned_ignored_names: set[str] = set()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> LoadedModel | None:
        """Returns the model that answers a request now, or None before the first load."""
        with self._condition:
            return self._current

    def version_statuses(self) -> list[VersionStatus]:
        """Returns the state of every version this manager has loaded or tried to load, newest first."""
        with self._condition:
            return sorted(self._statuses.values(), key=lambda status: status.version, reverse=True)

    def wait_for_version(
        self, version: int | None = None, timeout_seconds: float = 10.0
    ) -> LoadedModel | None:
        """Waits until a model (or the given version) is served.

        Args:
            version: The version to wait for; None waits for any version.
            timeout_seconds: Longest wait.

        Returns:
            The served model, or None if it did not appear in time.
        """

        def is_ready() -> bool:
            return self._current is not None and (version is None or self._current.version == version)

        with self._condition:
            self._condition.wait_for(is_ready, timeout=timeout_seconds)
            return self._current if is_ready() else None

    def start(self) -> None:
        """Starts polling in a daemon thread; the first poll happens at once.

        Raises:
            RuntimeError: If the manager was already started.
        """
        if self._thread is not None:
            raise RuntimeError("ModelManager.start() was already called")
        logger.info(
            "Watching %s for versions of model %r every %.2f s",
            self.model_base_path,
            self.model_name,
            self.poll_wait_seconds,
        )
        self._thread = threading.Thread(
            target=self._poll_forever, name=f"model-poller-{self.model_name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Stops polling; a load in progress finishes first.

        Args:
            timeout_seconds: Longest wait for the polling thread.
        """
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_seconds)
            if self._thread.is_alive():
                logger.warning("The model polling thread did not stop within %.1f s", timeout_seconds)

    def _poll_forever(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("Polling %s failed; trying again at the next poll", self.model_base_path)
            self._stop_event.wait(self.poll_wait_seconds)

    def _scan(self) -> dict[int, _ScannedVersion]:
        """Returns each version's directory and fingerprint (None if incomplete)."""
        try:
            entries = list(os.scandir(self.model_base_path))
        except OSError as error:
            if not self._warned_missing_base_path:
                logger.warning("Cannot list model base path %s: %s", self.model_base_path, error)
                self._warned_missing_base_path = True
            return {}
        self._warned_missing_base_path = False
        index = versions.index_versions(entry.name for entry in entries if entry.is_dir())
        for name, reason in index.ignored.items():
            if name not in self._warned_ignored_names:
                logger.warning(
                    "Ignoring directory %s under %s, no version of model %r: %s",
                    name,
                    self.model_base_path,
                    self.model_name,
                    reason,
                )
                self._warned_ignored_names.add(name)
        scanned = {}
        for version, name in index.names.items():
            version_dir = self.model_base_path / name
            scanned[version] = _ScannedVersion(version_dir, fingerprint_version_directory(version_dir))
        return scanned

    def _is_backing_off(self, version: int, fingerprint: DirectoryFingerprint) -> bool:
        failure = self._load_failures.get(version)
        if failure is None or failure.fingerprint != fingerprint:
            return False
        return time.monotonic() - failure.failed_at < self.load_retry_seconds

    def poll_once(self) -> None:
        """Looks at the base path once and loads a newer complete version if there is one.

        A version is a candidate when its directory is complete and unchanged
        since the previous poll. The highest candidate replaces the served
        version if it is newer, or if the served version's directory was
        removed (a rollback). If it fails to load, the next lower candidate is
        tried, down to the served version.
        """
        scanned = self._scan()
        previous_scan = self._previous_scan
        self._previous_scan = scanned
        stable_versions = sorted(
            (
                version
                for version, seen in scanned.items()
                if seen.fingerprint is not None
                and previous_scan.get(version) == seen
                and not self._is_backing_off(version, seen.fingerprint)
            ),
            reverse=True,
        )
        current = self.current()
        if current is None and all(seen.fingerprint is None for seen in scanned.values()):
            if not self._warned_no_versions:
                logger.warning(
                    "No complete version of model %r under %s yet (expected <version>/saved_model.pb and "
                    "<version>/variables/); waiting for one",
                    self.model_name,
                    self.model_base_path,
                )
                self._warned_no_versions = True
        else:
            self._warned_no_versions = False
        current_present = current is not None and current.version in scanned
        if current is not None and not current_present and not self._warned_missing_current:
            logger.warning(
                "The directory of served version %d of %r was removed; it keeps serving until another "
                "version loads",
                current.version,
                self.model_name,
            )
            self._warned_missing_current = True
        for version in stable_versions:
            if current is not None and (
                version == current.version or (version < current.version and current_present)
            ):
                return
            seen = scanned[version]
            if seen.fingerprint is not None and self._load(version, seen.path, seen.fingerprint):
                return

    def _set_status(self, status: VersionStatus) -> None:
        with self._condition:
            self._statuses[status.version] = status

    def _load(self, version: int, version_dir: Path, fingerprint: DirectoryFingerprint) -> bool:
        """Loads a version and makes it the served one; returns whether it loaded."""
        logger.info("Loading version %d of model %r from %s", version, self.model_name, version_dir)
        self._set_status(VersionStatus(version, ModelVersionState.LOADING))
        started = time.perf_counter()
        try:
            loaded_model = load_model_version(self.model_name, version, version_dir)
        except Exception as error:
            error_code = error.error_code if isinstance(error, tf.errors.OpError) else error_codes_pb2.UNKNOWN
            message = f"{type(error).__name__}: {error}"
            logger.error(
                "Loading version %d of model %r failed (the served version is unchanged; retrying when its "
                "files change or in %.0f s): %s",
                version,
                self.model_name,
                self.load_retry_seconds,
                message,
            )
            self._load_failures[version] = _LoadFailure(fingerprint, time.monotonic())
            self._set_status(VersionStatus(version, ModelVersionState.END, error_code, message))
            return False
        self._load_failures.pop(version, None)
        with self._condition:
            previous = self._current
            self._current = loaded_model
            self._statuses[version] = VersionStatus(version, ModelVersionState.AVAILABLE)
            if previous is not None:
                self._statuses[previous.version] = VersionStatus(previous.version, ModelVersionState.END)
            self._condition.notify_all()
        self._warned_missing_current = False
        load_seconds = time.perf_counter() - started
        if previous is None:
            logger.info(
                "Serving version %d of model %r (loaded in %.2f s)", version, self.model_name, load_seconds
            )
        else:
            logger.info(
                "Serving version %d of model %r (loaded in %.2f s); unloaded version %d",
                version,
                self.model_name,
                load_seconds,
                previous.version,
            )
        return True
