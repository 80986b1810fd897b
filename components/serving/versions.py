"""What a model version directory is: the one rule the Pusher, the baseline and the local server share.

TF Serving serves ``<model_base_path>/<version>/`` and takes a child of the
base path for a version when its name parses as an int64
(``ParseVersionNumber`` in TF Serving's ``file_system_storage_path_source.cc``).
This project's rule, used by ``components.pusher``, ``components.baseline`` and
``components.serving.model_manager``:

* The name is ASCII digits only, ``[0-9]+``. A Unicode digit such as
  ``"١٢٣"`` (which Python's ``int`` and ``str.isdigit`` accept) makes no
  version, nor do ``v1``, ``1.tmp``, ``-1``, the empty name or a push's
  temporary directory. TF Serving's parser also takes a leading ``-`` and
  surrounding whitespace; no pusher writes such names, and this project does
  not count them as versions.
* Leading zeros are allowed, as TF Serving allows them: ``007`` is version 7,
  served from the directory ``007``.
* The number fits in int64, at most ``MAX_VERSION``: TF Serving's versions and
  ``ModelSpec.version`` are int64, and TF Serving skips a larger number. Such a
  name looks like a version, so the callers warn that it is ignored.
* When two names stand for one number (``7`` and ``007``), the one that sorts
  last byte-wise is the version and the other is ignored with a warning, as
  TF Serving does.

Whether a version directory holds a complete model is not part of this rule:
the Pusher checks a copy on any file system (``pusher.incomplete_reason``:
shards and ``fingerprint.pb``), while the local server checks cheap local file
stats twice per poll; merging them would change what either one accepts.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping

# Largest version number: TF Serving's versions are int64, and so is ModelSpec.version.
MAX_VERSION = 2**63 - 1

_ASCII_DIGITS = re.compile(r"[0-9]+")


def parse_version(name: str) -> int:
    """Returns the version number a directory name stands for.

    Args:
        name: A directory name under a model base path (no path separators).

    Returns:
        The number, leading zeros allowed.

    Raises:
        ValueError: If the name is not ASCII digits, or its number does not fit in int64.
    """
    if _ASCII_DIGITS.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a version: its name is not ASCII digits")
    number = int(name)
    if number > MAX_VERSION:
        raise ValueError(
            f"{name!r} is not a version: its number does not fit in int64 (at most {MAX_VERSION}), "
            "so TF Serving ignores it"
        )
    return number


def is_version_directory_name(name: str) -> bool:
    """Returns whether a directory name is a model version (see ``parse_version``)."""
    try:
        parse_version(name)
    except ValueError:
        return False
    return True


def version_number(version_dir: str | os.PathLike[str]) -> int:
    """Returns the version number of a version directory, from its last path component.

    Args:
        version_dir: A directory under a model base path, local or e.g. ``gs://``.

    Returns:
        The version number.

    Raises:
        ValueError: If the directory's name is not a version; the message names the directory.
    """
    path = os.fspath(version_dir).rstrip("/")
    try:
        return parse_version(os.path.basename(path))
    except ValueError as error:
        raise ValueError(f"{path!r} is not a model version directory: {error}") from None


@dataclasses.dataclass(frozen=True)
class VersionIndex:
    """The versions among the names under a model base path.

    Attributes:
        names: Version number to the directory name it is served from.
        ignored: Name to why it is no version although it is ASCII digits (beyond
            int64, or another name of a version). Other names are not listed:
            they are plainly not versions.
    """

    names: Mapping[int, str]
    ignored: Mapping[str, str]

    def newest_first(self) -> list[tuple[int, str]]:
        """Returns (version, directory name) pairs, highest version first."""
        return sorted(self.names.items(), reverse=True)


def index_versions(names: Iterable[str]) -> VersionIndex:
    """Finds the versions among the names under a model base path.

    Args:
        names: Names of the base path's children (a trailing "/" is ignored).

    Returns:
        The versions, and the digit names that are ignored, with the reason.
    """
    names_by_version: dict[int, list[str]] = {}
    ignored: dict[str, str] = {}
    for name in sorted({name.rstrip("/") for name in names}):
        if _ASCII_DIGITS.fullmatch(name) is None:
            continue
        try:
            names_by_version.setdefault(parse_version(name), []).append(name)
        except ValueError as error:
            ignored[name] = str(error)
    served_names = {}
    for version, version_names in names_by_version.items():
        served_name = version_names[-1]
        served_names[version] = served_name
        for other_name in version_names[:-1]:
            ignored[other_name] = (
                f"{other_name!r} is not a version: {served_name!r} stands for the same version {version} "
                "and is the one TF Serving serves"
            )
    return VersionIndex(names=served_names, ignored=ignored)
