"""Clip-level metrics: the one rule that the Trainer's report and the Evaluator's metric share.

A clip's scores are the mean of its speech patches' probabilities, a speech
patch being one whose label is not "Not a speech"
(``features.not_speech_class_id``). A clip's class is the argmax of its
scores, and the clip is correct when that class is its accent. Clips without a
speech patch, or whose accent is not in the vocabulary, are not scored and are
counted as skipped.

Besides accuracy, the result holds the clip-level confusion matrix (accent
rows, predicted class columns) and each class's one-vs-rest ROC AUC over the
scored clips (exact, ties counting one half), averaged over the classes that
have both positive and negative clips: the clip-level counterparts of the
patch-level metrics the Evaluator reports.

``ClipVotes`` accumulates patches and merges with other ``ClipVotes``, so the
same object serves the Trainer (all patches in memory) and TFMA (a Beam
CombineFn's accumulator).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from components import features


@dataclasses.dataclass(frozen=True)
class ClipMetrics:
    """Clip-level metrics and how many clips they cover.

    Attributes:
        accuracy: Fraction of the scored clips whose class is their accent; NaN when none is scored.
        num_clips: Clips scored.
        num_skipped_clips: Clips seen but not scored (no speech patch, or an accent outside the vocabulary).
        confusion_matrix: ``[num_classes][num_classes]`` clip counts, accent rows, predicted class columns.
        class_aucs: Each class's one-vs-rest AUC over the scored clips, in class id order; NaN for a
            class without positive or without negative clips.
        macro_auc: Mean of the defined ``class_aucs``; NaN when none is defined.
        present_class_count: Classes averaged in ``macro_auc``.
    """

    accuracy: float
    num_clips: int
    num_skipped_clips: int
    confusion_matrix: tuple[tuple[int, ...], ...] = ()
    class_aucs: tuple[float, ...] = dataclasses.field(default=(), compare=False)
    macro_auc: float = dataclasses.field(default=float("nan"), compare=False)
    present_class_count: int = 0

    def to_json_dict(self) -> dict[str, float | int]:
        """Returns ``{"clip_accuracy", "num_clips", "num_skipped_clips"}``, as the Trainer writes them."""
        return {
            "clip_accuracy": self.accuracy,
            "num_clips": self.num_clips,
            "num_skipped_clips": self.num_skipped_clips,
        }


def rank_auc(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Exact ROC AUC: the probability that a positive scores above a negative, a tie counting one half.

    Args:
        scores: ``[num_items]`` scores.
        is_positive: ``[num_items]`` booleans.

    Returns:
        The AUC (Mann-Whitney U over positives and negatives), or NaN without a positive or a negative.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_positive = np.asarray(is_positive, dtype=bool).reshape(-1)
    num_positive = int(is_positive.sum())
    num_negative = is_positive.size - num_positive
    if num_positive == 0 or num_negative == 0:
        return float("nan")
    ranks = stats.rankdata(scores)
    rank_sum = float(ranks[is_positive].sum())
    return (rank_sum - num_positive * (num_positive + 1) / 2.0) / (num_positive * num_negative)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClipVotes:
    """Per clip, the sum and count of its speech patches' probabilities, and its accent.

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
        self.speech_patch_counts: dict[str, int] = {}
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
        self.speech_patch_counts[clip_key] = self.speech_patch_counts.get(clip_key, 0) + 1
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
            self.speech_patch_counts[clip_key] = (
                self.speech_patch_counts.get(clip_key, 0) + other.speech_patch_counts[clip_key]
            )
            self.accents[clip_key] = other.accents[clip_key]

    def result(self) -> ClipMetrics:
        """Scores every clip with a speech patch and an accent in the vocabulary."""
        num_classes = len(self.class_names)
        class_ids = {name: class_id for class_id, name in enumerate(self.class_names)}
        scored = sorted(clip_key for clip_key in self.probability_sums if self.accents[clip_key] in class_ids)
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        clip_scores = np.zeros((len(scored), num_classes), dtype=np.float64)
        accent_ids = np.zeros(len(scored), dtype=np.int64)
        for row, clip_key in enumerate(scored):
            clip_scores[row] = self.probability_sums[clip_key] / self.speech_patch_counts[clip_key]
            accent_ids[row] = class_ids[self.accents[clip_key]]
            confusion[accent_ids[row], int(np.argmax(clip_scores[row]))] += 1
        class_aucs = tuple(
            rank_auc(clip_scores[:, class_id], accent_ids == class_id) for class_id in range(num_classes)
        )
        defined = [auc for auc in class_aucs if not math.isnan(auc)]
        correct = int(np.trace(confusion))
        return ClipMetrics(
            accuracy=correct / len(scored) if scored else float("nan"),
            num_clips=len(scored),
            num_skipped_clips=len(self.clip_ids) - len(scored),
            confusion_matrix=tuple(tuple(int(count) for count in row) for row in confusion),
            class_aucs=class_aucs,
            macro_auc=float(np.mean(defined)) if defined else float("nan"),
            present_class_count=len(defined),
        )


def clip_metrics(
    patch_probabilities: np.ndarray,
    labels: np.ndarray,
    clip_ids: Sequence[bytes | str] | np.ndarray,
    accents: Sequence[bytes | str] | np.ndarray,
    class_names: Sequence[str],
) -> ClipMetrics:
    """Computes the clip-level metrics from per-patch predictions held in memory.

    Args:
        patch_probabilities: float ``[num_patches, num_classes]``.
        labels: int ``[num_patches]`` label ids.
        clip_ids: ``[num_patches]`` clip id of each patch.
        accents: ``[num_patches]`` accent name of each patch's clip.
        class_names: The label vocabulary, in id order.

    Returns:
        The clip-level metrics (see the module's docstring for the rule).

    Raises:
        ValueError: If the arrays differ in length or a row does not hold one probability per class.
    """
    votes = ClipVotes(class_names)
    for probabilities, label, clip_id, accent in zip(
        patch_probabilities, labels, clip_ids, accents, strict=True
    ):
        votes.add_patch(clip_id, accent, int(label), probabilities)
    return votes.result()
