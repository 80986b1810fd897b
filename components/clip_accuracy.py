"""Clip-level accuracy: the one rule that the Trainer's report and the Evaluator's metric share.

A clip's class is the argmax of the mean of its speech patches' probabilities,
a speech patch being one whose label is not "Not a speech"
(``features.not_speech_class_id``); the clip is correct when that class is its
accent. Clips without a speech patch, or whose accent is not in the
vocabulary, are not scored and are counted as skipped.

``ClipVotes`` accumulates patches and merges with other ``ClipVotes``, so the
same object serves the Trainer (all patches in memory) and TFMA (a Beam
CombineFn's accumulator).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from components import features


@dataclasses.dataclass(frozen=True)
class ClipAccuracyResult:
    """Clip-level accuracy and how many clips it covers.

    Attributes:
        accuracy: Fraction of the scored clips whose class is their accent; NaN when none is scored.
        num_clips: Clips scored.
        num_skipped_clips: Clips seen but not scored (no speech patch, or an accent outside the vocabulary).
    """

    accuracy: float
    num_clips: int
    num_skipped_clips: int

    def to_json_dict(self) -> dict[str, float | int]:
        """Returns ``{"clip_accuracy", "num_clips", "num_skipped_clips"}``, as the Trainer writes them."""
        return {
            "clip_accuracy": self.accuracy,
            "num_clips": self.num_clips,
            "num_skipped_clips": self.num_skipped_clips,
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClipVotes:
    """Per clip, the sum of its speech patches' probabilities and its accent.

    Args:
        class_names: The label vocabulary, in id order.

    Raises:
        ValueError: If there are fewer than two class names.
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        if len(class_names) < 2:
            raise ValueError(f"class_names needs at least two names, got {list(class_names)}")
        self.class_names = tuple(class_names)
        self.not_speech_id = features.not_speech_class_id(self.class_names)
        self.probability_sums: dict[str, np.ndarray] = {}
        self.accents: dict[str, str] = {}
        self.clip_ids: set[str] = set()

    def add_patch(
        self, clip_id: bytes | str, accent: bytes | str, label: int, probabilities: np.ndarray
    ) -> None:
        """Adds one patch.

        Args:
            clip_id: The patch's clip.
            accent: The accent of the patch's clip.
            label: The patch's label id; a "Not a speech" patch only marks its clip as seen.
            probabilities: The classifier's ``[num_classes]`` probabilities of the patch.

        Raises:
            ValueError: If ``probabilities`` does not hold one value per class.
        """
        probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if probabilities.size != len(self.class_names):
            raise ValueError(
                f"Expected {len(self.class_names)} class probabilities, got {probabilities.size}"
            )
        clip_key = _text(clip_id)
        self.clip_ids.add(clip_key)
        if int(label) == self.not_speech_id:
            return
        if clip_key in self.probability_sums:
            self.probability_sums[clip_key] = self.probability_sums[clip_key] + probabilities
        else:
            self.probability_sums[clip_key] = probabilities.copy()
        self.accents[clip_key] = _text(accent)

    def merge(self, other: ClipVotes) -> None:
        """Adds the patches another ``ClipVotes`` of the same vocabulary holds.

        Raises:
            ValueError: If the vocabularies differ.
        """
        if other.class_names != self.class_names:
            raise ValueError(f"Cannot merge clip votes over {other.class_names} into {self.class_names}")
        self.clip_ids |= other.clip_ids
        for clip_key, probability_sum in other.probability_sums.items():
            if clip_key in self.probability_sums:
                self.probability_sums[clip_key] = self.probability_sums[clip_key] + probability_sum
            else:
                self.probability_sums[clip_key] = probability_sum.copy()
            self.accents[clip_key] = other.accents[clip_key]

    def result(self) -> ClipAccuracyResult:
        """Scores every clip with a speech patch and an accent in the vocabulary."""
        class_ids = {name: class_id for class_id, name in enumerate(self.class_names)}
        scored = 0
        correct = 0
        for clip_key, probability_sum in self.probability_sums.items():
            accent_id = class_ids.get(self.accents[clip_key])
            if accent_id is None:
                continue
            scored += 1
            correct += int(int(np.argmax(probability_sum)) == accent_id)
        return ClipAccuracyResult(
            accuracy=correct / scored if scored else float("nan"),
            num_clips=scored,
            num_skipped_clips=len(self.clip_ids) - scored,
        )


def clip_accuracy(
    patch_probabilities: np.ndarray,
    labels: np.ndarray,
    clip_ids: Sequence[bytes | str] | np.ndarray,
    accents: Sequence[bytes | str] | np.ndarray,
    class_names: Sequence[str],
) -> ClipAccuracyResult:
    """Computes clip-level accuracy from per-patch predictions held in memory.

    Args:
        patch_probabilities: float ``[num_patches, num_classes]``.
        labels: int ``[num_patches]`` label ids.
        clip_ids: ``[num_patches]`` clip id of each patch.
        accents: ``[num_patches]`` accent name of each patch's clip.
        class_names: The label vocabulary, in id order.

    Returns:
        The clip-level accuracy (see the module's docstring for the rule).

    Raises:
        ValueError: If the arrays differ in length or a row does not hold one probability per class.
    """
    votes = ClipVotes(class_names)
    for probabilities, label, clip_id, accent in zip(
        patch_probabilities, labels, clip_ids, accents, strict=True
    ):
        votes.add_patch(clip_id, accent, int(label), probabilities)
    return votes.result()
