"""Labels of an OpenSLR-83 clip, read from its filename.

A filename such as ``irm_02484_00388340153`` holds the accent code (``ir``),
the gender letter (``m``), the speaker number (``02484``) and the utterance
number. OpenSLR-83 numbers speakers within each accent and gender archive
only, so the stored speaker id keeps the prefix: ``irm_02484``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from components import features
from components.errors import AccentPipelineError

# <accent code><gender letter>_<speaker number>_<utterance number>
_CLIP_NAME_PATTERN = re.compile(
    r"^(?P<prefix>(?P<accent>[a-z]{2})(?P<gender>[a-z]))_(?P<speaker>[0-9a-z]+)_[0-9a-z]+$"
)


class LabelError(AccentPipelineError, ValueError):
    """A clip whose filename gives no valid labels.

    Attributes:
        reason: A short reason for the quarantine list.
    """

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclasses.dataclass(frozen=True)
class ClipLabels:
    """The labels an OpenSLR-83 filename carries.

    Attributes:
        accent_code: Two-letter accent code, e.g. ``ir``.
        accent: Class name of the accent, e.g. ``Irish``.
        label: Label id: the position of ``accent`` in the class names.
        gender: ``male`` or ``female``.
        speaker_id: ``<accent code><gender letter>_<speaker number>``, e.g. ``irm_02484``.
    """

    accent_code: str
    accent: str
    label: int
    gender: str
    speaker_id: str


def validate_label_vocabulary(accent_codes: Mapping[str, str], class_names: tuple[str, ...]) -> None:
    """Checks that every accent code maps to a class of the vocabulary.

    Args:
        accent_codes: Accent code to class name.
        class_names: The label vocabulary, in id order.

    Raises:
        ValueError: If the mapping is empty, a code is not two lowercase letters,
            or a class name is not in ``class_names``.
    """
    if not accent_codes:
        raise ValueError("accent_codes is empty")
    for code, class_name in accent_codes.items():
        if not re.fullmatch(r"[a-z]{2}", code):
            raise ValueError(f"Accent code {code!r} is not two lowercase letters")
        if class_name not in class_names:
            raise ValueError(
                f"Accent code {code!r} maps to {class_name!r}, which is not a class name: {list(class_names)}"
            )


def parse_clip_name(
    clip_id: str,
    accent_codes: Mapping[str, str] = features.ACCENT_CODE_TO_NAME,
    class_names: tuple[str, ...] = features.DEFAULT_CLASS_NAMES,
) -> ClipLabels:
    """Reads the labels from an OpenSLR-83 filename stem.

    Args:
        clip_id: Filename without extension, e.g. ``irm_02484_00388340153``.
        accent_codes: Accent code to class name.
        class_names: The label vocabulary, in id order.

    Returns:
        The clip's labels.

    Raises:
        LabelError: With reason ``malformed filename: ...`` if the name does not
            follow the pattern, or ``unknown accent code 'xx'`` if the code is not in ``accent_codes``.
    """
    match = _CLIP_NAME_PATTERN.match(clip_id)
    if match is None:
        raise LabelError(f"malformed filename: {clip_id!r} is not <accent><gender>_<speaker>_<utterance>")
    accent_code = match.group("accent")
    if accent_code not in accent_codes:
        raise LabelError(f"unknown accent code {accent_code!r}")
    gender_code = match.group("gender")
    if gender_code not in features.GENDER_CODE_TO_NAME:
        raise LabelError(f"malformed filename: unknown gender letter {gender_code!r}")
    accent = accent_codes[accent_code]
    return ClipLabels(
        accent_code=accent_code,
        accent=accent,
        label=features.class_id(accent, class_names),
        gender=features.GENDER_CODE_TO_NAME[gender_code],
        speaker_id=f"{match.group('prefix')}_{match.group('speaker')}",
    )
