"""Turns the pipeline's YAMNet handle into a SavedModel directory.

The handle is one of:

* a TF Hub or Kaggle URL (default ``https://tfhub.dev/google/yamnet/1``),
  fetched with ``tensorflow_hub.resolve``, which caches under ``TFHUB_CACHE_DIR``;
  with ``TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED`` it resolves to the model's
  remote ``gs://`` directory instead, which is used in place;
* a local SavedModel directory (e.g. a copy of the Hub model, or the output of
  ``accent-pipeline export-yamnet --weights yamnet.h5 --class-map yamnet_class_map.csv``), or a remote one
  (``gs://``, ``s3://``, ...: any URI ``tf.io.gfile`` opens);
* ``"offline"``: seeded, calibrated, UNTRAINED weights exported on first use
  into a cache directory. They are for plumbing only.

A URL that cannot be reached fails within seconds with ``YamnetHandleError``,
which names the remedies; nothing ever falls back silently to other weights.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import shutil
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

import tensorflow as tf

from components.errors import AccentPipelineError
from components.yamnet import defaults, export
from components.yamnet import weights as yamnet_weights

logger = logging.getLogger(__name__)

URL_SCHEMES = ("http", "https")
LOCAL_SCHEMES = ("", "file")

# How long the reachability check of a URL handle may take.
REACHABILITY_TIMEOUT_SECONDS = 4.0

# Directory (under the system's temporary directory) that caches offline exports by default.
DEFAULT_OFFLINE_CACHE_DIRNAME = "accent-pipeline-yamnet"


# What a handle may be, for the messages of YamnetHandleError.
HANDLE_KINDS = (
    f"a TF Hub/Kaggle URL, a SavedModel directory, or {yamnet_weights.OFFLINE_WEIGHTS!r} (untrained weights)"
)


class YamnetHandleError(AccentPipelineError, RuntimeError):
    """Raised when a YAMNet handle cannot be turned into a SavedModel directory."""


def _remedies(handle: str) -> str:
    return (
        f"Remedies: (a) run with internet access, or populate TFHUB_CACHE_DIR with the model of {handle!r} "
        "(tensorflow_hub caches it there on a machine that can reach it); "
        "(b) download YAMNet elsewhere (the TF Hub / Kaggle SavedModel) and pass the local SavedModel "
        "directory as the handle, or run `accent-pipeline export-yamnet --output DIR --weights yamnet.h5 "
        "--class-map yamnet_class_map.csv` with both files from tensorflow/models (research/audioset/yamnet) "
        "and pass DIR; "
        f"(c) pass `{yamnet_weights.OFFLINE_WEIGHTS}` as the handle for plumbing only: seeded, UNTRAINED "
        "weights whose embeddings carry no accent information learned from audio."
    )


def is_url(handle: str) -> bool:
    """Returns whether a handle is an http(s) URL."""
    return urllib.parse.urlparse(handle).scheme in URL_SCHEMES


def is_remote_uri(handle: str | os.PathLike) -> bool:
    """Returns whether a handle is a remote file-system URI (``gs://``, ``s3://``, ...), not http(s).

    Such a URI is opened with ``tf.io.gfile``; ``pathlib`` would mangle it
    (``gs://bucket`` becomes ``gs:/bucket``).
    """
    text = os.fspath(handle)
    scheme = urllib.parse.urlparse(text).scheme
    return "://" in text and scheme not in LOCAL_SCHEMES and scheme not in URL_SCHEMES


def is_saved_model_dir(path: str | os.PathLike) -> bool:
    """Returns whether a path, local or a remote URI ``tf.io.gfile`` opens, is a SavedModel directory."""
    directory = os.fspath(path).rstrip("/") or "/"
    return tf.io.gfile.isdir(directory) and any(
        tf.io.gfile.exists(f"{directory}/{filename}") for filename in ("saved_model.pb", "saved_model.pbtxt")
    )


def hub_cache_dir_for(handle: str) -> pathlib.Path:
    """Returns where ``tensorflow_hub`` caches the model of a URL handle.

    Args:
        handle: A TF Hub or Kaggle URL.

    Returns:
        ``$TFHUB_CACHE_DIR/<sha1 of the handle>`` (or the system temporary
        directory's ``tfhub_modules`` when ``TFHUB_CACHE_DIR`` is unset).
    """
    cache_root = os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tfhub_modules")
    return pathlib.Path(cache_root) / hashlib.sha1(handle.encode("utf8")).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Makes urllib report redirects as HTTP errors instead of following them."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        """Returns None: a redirect already proves that the server answers."""
        return None


def check_reachable(url: str, timeout_seconds: float = REACHABILITY_TIMEOUT_SECONDS) -> None:
    """Checks, within a time limit, that a URL's server answers a HEAD request.

    Any HTTP response (even an error status or a redirect, which is not
    followed) counts as reachable; a failed name
    lookup, a refused or timed-out connection does not. Proxies from the
    environment are honoured.

    Args:
        url: The URL.
        timeout_seconds: Time limit of the whole check, name lookup included.

    Raises:
        YamnetHandleError: If the server cannot be reached in time.
    """
    outcome: dict[str, BaseException | None] = {}
    opener = urllib.request.build_opener(_NoRedirect())

    def probe() -> None:
        request = urllib.request.Request(url, method="HEAD")
        try:
            with opener.open(request, timeout=timeout_seconds):
                outcome["error"] = None
        except urllib.error.HTTPError:
            outcome["error"] = None
        except (urllib.error.URLError, OSError, ValueError) as error:
            outcome["error"] = error

    thread = threading.Thread(target=probe, name="yamnet-reachability", daemon=True)
    thread.start()
    thread.join(timeout_seconds)
    if "error" not in outcome:
        raise YamnetHandleError(
            f"Cannot reach YAMNet handle {url!r}: no answer within {timeout_seconds:g} s. {_remedies(url)}"
        )
    error = outcome["error"]
    if error is not None:
        raise YamnetHandleError(f"Cannot reach YAMNet handle {url!r}: {error}. {_remedies(url)}") from error


def _resolve_url(handle: str) -> pathlib.Path | str:
    cached = hub_cache_dir_for(handle)
    if is_saved_model_dir(cached):
        logger.info("YAMNet %s found in the TF Hub cache at %s", handle, cached)
    else:
        check_reachable(handle)
    import tensorflow_hub as hub  # Imported here: it is slow to import and only URL handles need it.

    logger.info("Resolving YAMNet handle %s with tensorflow_hub", handle)
    try:
        resolved_text = os.fspath(hub.resolve(handle))
    except Exception as error:
        raise YamnetHandleError(
            f"tensorflow_hub could not fetch YAMNet handle {handle!r}: {error}. {_remedies(handle)}"
        ) from error
    # TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED resolves to the model's gs:// directory, read in place.
    resolved = resolved_text if is_remote_uri(resolved_text) else pathlib.Path(resolved_text)
    if not is_saved_model_dir(resolved):
        raise YamnetHandleError(
            f"YAMNet handle {handle!r} resolved to {resolved}, which is not a SavedModel directory. "
            f"{_remedies(handle)}"
        )
    return resolved


def _resolve_remote(handle: str) -> str:
    if not tf.io.gfile.exists(handle):
        raise YamnetHandleError(
            f"YAMNet handle {handle!r} does not exist (checked with tf.io.gfile). Pass {HANDLE_KINDS}."
        )
    if not is_saved_model_dir(handle):
        raise YamnetHandleError(
            f"YAMNet handle {handle!r} is not a SavedModel directory (no saved_model.pb in it). "
            f"Pass the directory that holds saved_model.pb, or {HANDLE_KINDS}."
        )
    return handle


def _resolve_local(handle: str) -> pathlib.Path:
    path = pathlib.Path(handle.removeprefix("file://")).expanduser()
    if not path.exists():
        raise YamnetHandleError(
            f"YAMNet handle {handle!r} is neither a URL nor {yamnet_weights.OFFLINE_WEIGHTS!r}, "
            f"and no such local path exists. Pass {HANDLE_KINDS}."
        )
    if path.is_file() and path.suffix == ".h5":
        raise YamnetHandleError(
            f"YAMNet handle {handle!r} is an h5 weights file, not a SavedModel directory: run "
            f"`accent-pipeline export-yamnet --output DIR --weights {handle} "
            "--class-map yamnet_class_map.csv` (the class map from tensorflow/models, "
            "research/audioset/yamnet) and pass DIR as the handle."
        )
    if not is_saved_model_dir(path):
        raise YamnetHandleError(
            f"YAMNet handle {handle!r} is not a SavedModel directory (no saved_model.pb in it). "
            f"Pass the directory that holds saved_model.pb, or {HANDLE_KINDS}."
        )
    return path.resolve()


def offline_model_dir(offline_cache_dir: str | os.PathLike | None, seed: int) -> pathlib.Path:
    """Returns where the offline export of a seed is cached.

    Args:
        offline_cache_dir: Cache root; None means ``<system temp dir>/accent-pipeline-yamnet``.
        seed: Seed of the offline weights.

    Returns:
        ``<cache root>/offline-seed<seed>-v<offline weights version>``.
    """
    root = pathlib.Path(
        offline_cache_dir or os.path.join(tempfile.gettempdir(), DEFAULT_OFFLINE_CACHE_DIRNAME)
    )
    return root / f"offline-seed{seed}-v{yamnet_weights.OFFLINE_WEIGHTS_VERSION}"


def _is_offline_export(directory: pathlib.Path, seed: int) -> bool:
    if not is_saved_model_dir(directory):
        return False
    info = export.describe_weights(directory)
    return (
        info.source == export.SOURCE_OFFLINE
        and info.seed == seed
        and info.offline_weights_version == yamnet_weights.OFFLINE_WEIGHTS_VERSION
        and info.export_version == export.EXPORT_VERSION
    )


def _resolve_offline(offline_cache_dir: str | os.PathLike | None, seed: int) -> pathlib.Path:
    target = offline_model_dir(offline_cache_dir, seed)
    if not _is_offline_export(target, seed):
        if target.exists():
            logger.info("Replacing the incomplete or outdated offline YAMNet export at %s", target)
            shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=target.name + ".staging-", dir=target.parent))
        try:
            export.export_yamnet(staging, weights=yamnet_weights.OFFLINE_WEIGHTS, seed=seed)
            try:
                os.rename(staging, target)
            except OSError:
                if not _is_offline_export(target, seed):
                    raise
                logger.info("Another process exported offline YAMNet to %s first; using it", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    yamnet_weights.warn_offline_weights(f"seed {seed}, at {target}")
    return target


def resolve_yamnet_handle(
    handle: str,
    offline_cache_dir: str | os.PathLike | None = None,
    seed: int = defaults.OFFLINE_SEED,
) -> pathlib.Path | str:
    """Returns the SavedModel directory of a YAMNet handle.

    Args:
        handle: A TF Hub or Kaggle URL (e.g. ``https://tfhub.dev/google/yamnet/1``),
            a local SavedModel directory, a remote one (a URI ``tf.io.gfile``
            opens, such as ``gs://bucket/yamnet``), or ``"offline"`` for seeded, calibrated,
            UNTRAINED weights (plumbing only: their top class says nothing about
            speech and their embeddings were learned from nothing).
        offline_cache_dir: Where offline exports are cached (a subdirectory per
            seed and recipe version); None means the system temporary directory.
        seed: Seed of the offline weights.

    Returns:
        The SavedModel directory: a ``pathlib.Path`` when local, the URI string
        when remote (a remote handle, or a URL that ``tensorflow_hub.resolve``
        turns into a ``gs://`` directory under ``TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED``).

    Raises:
        YamnetHandleError: If a URL cannot be reached or fetched (within a few
            seconds when the model is not cached), or a path is missing or
            not a SavedModel. The message names the remedies.
    """
    if not handle:
        raise YamnetHandleError("The YAMNet handle is empty. " + _remedies(defaults.TFHUB_HANDLE))
    if handle == yamnet_weights.OFFLINE_WEIGHTS:
        return _resolve_offline(offline_cache_dir, seed)
    if is_url(handle):
        return _resolve_url(handle)
    if is_remote_uri(handle):
        return _resolve_remote(handle)
    return _resolve_local(handle)
