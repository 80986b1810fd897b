"""Tests of the shared clip-level accuracy rule and of the "Not a speech" id."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from components import clip_metrics, features

CLASS_NAMES = ("Irish", "Welsh", features.NOT_SPEECH_CLASS_NAME)


def test_not_speech_class_id_is_its_position_or_minus_one() -> None:
    assert features.not_speech_class_id() == len(features.DEFAULT_CLASS_NAMES) - 1
    assert features.not_speech_class_id(CLASS_NAMES) == 2
    assert features.not_speech_class_id(list(CLASS_NAMES)) == 2
    assert features.not_speech_class_id(("Irish", "Welsh")) == features.NO_CLASS_ID == -1


def test_clip_class_is_the_argmax_of_the_mean_of_speech_patches() -> None:
    votes = clip_metrics.ClipVotes(CLASS_NAMES)
    # Clip a (Irish): patch argmaxes vote Welsh 2 to 1, but the mean is Irish: the mean decides.
    votes.add_patch(b"a", b"Irish", 0, [0.98, 0.02, 0.0])
    votes.add_patch(b"a", b"Irish", 0, [0.45, 0.55, 0.0])
    votes.add_patch(b"a", b"Irish", 0, [0.45, 0.55, 0.0])
    # Its "Not a speech" patch is left out, however it scores.
    votes.add_patch(b"a", b"Irish", 2, [0.0, 1.0, 0.0])

    result = votes.result()
    assert (result.accuracy, result.num_clips, result.num_skipped_clips) == (1.0, 1, 0)
    assert result.confusion_matrix == ((1, 0, 0), (0, 0, 0), (0, 0, 0))
    # One clip: no class has both a positive and a negative clip, so no AUC is defined.
    assert result.present_class_count == 0
    assert math.isnan(result.macro_auc)


def test_clips_without_speech_or_with_an_unknown_accent_are_skipped() -> None:
    votes = clip_metrics.ClipVotes(CLASS_NAMES)
    votes.add_patch("silent", "Irish", 2, [0.0, 0.0, 1.0])
    votes.add_patch("foreign", "Cornish", 0, [1.0, 0.0, 0.0])

    result = votes.result()

    assert math.isnan(result.accuracy)
    assert (result.num_clips, result.num_skipped_clips) == (0, 2)


def test_merged_votes_equal_votes_of_all_patches() -> None:
    rng = np.random.default_rng(3)
    patches = [
        (f"clip{clip}", CLASS_NAMES[clip % 2], int(rng.choice([clip % 2, 2])), rng.dirichlet(np.ones(3)))
        for clip in range(12)
        for _ in range(4)
    ]
    whole = clip_metrics.ClipVotes(CLASS_NAMES)
    first = clip_metrics.ClipVotes(CLASS_NAMES)
    second = clip_metrics.ClipVotes(CLASS_NAMES)
    for index, patch in enumerate(patches):
        whole.add_patch(*patch)
        (first if index % 3 else second).add_patch(*patch)
    first.merge(pickle.loads(pickle.dumps(second)))

    assert first.result() == whole.result()
    assert whole.result() == clip_metrics.clip_metrics(
        np.array([patch[3] for patch in patches]),
        np.array([patch[2] for patch in patches]),
        [patch[0] for patch in patches],
        [patch[1] for patch in patches],
        CLASS_NAMES,
    )


def test_votes_refuse_mismatched_inputs() -> None:
    votes = clip_metrics.ClipVotes(CLASS_NAMES)
    with pytest.raises(ValueError, match="3 class probabilities"):
        votes.add_patch("a", "Irish", 0, [1.0, 0.0])
    with pytest.raises(ValueError, match="merge"):
        votes.merge(clip_metrics.ClipVotes(("Irish", "Welsh")))
    with pytest.raises(ValueError, match="at least two"):
        clip_metrics.ClipVotes(("Irish",))
    with pytest.raises(ValueError):
        clip_metrics.clip_metrics(np.zeros((2, 3)), np.zeros(1), ["a", "b"], ["Irish", "Irish"], CLASS_NAMES)


def test_rank_auc_is_the_mann_whitney_probability_with_ties_counting_half() -> None:
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    is_positive = np.array([True, False, True, False, False])
    # Pairs (positive, negative): 0.9 beats all 3; 0.8 ties one 0.8 (1/2) and beats 0.3 and 0.1.
    assert clip_metrics.rank_auc(scores, is_positive) == pytest.approx((3 + 2.5) / 6)
    assert math.isnan(clip_metrics.rank_auc(scores, np.zeros(5, dtype=bool)))
    assert math.isnan(clip_metrics.rank_auc(scores, np.ones(5, dtype=bool)))


def test_clip_auc_and_confusion_use_each_clips_mean_speech_scores() -> None:
    votes = clip_metrics.ClipVotes(CLASS_NAMES)
    # Two Irish clips, two Welsh clips; clip "w2" has 3 patches whose sum would outrank "i1"
    # on Irish, but whose mean does not.
    votes.add_patch("i1", "Irish", 0, [0.7, 0.3, 0.0])
    votes.add_patch("i2", "Irish", 0, [0.4, 0.6, 0.0])
    votes.add_patch("w1", "Welsh", 1, [0.2, 0.8, 0.0])
    for _ in range(3):
        votes.add_patch("w2", "Welsh", 1, [0.3, 0.7, 0.0])
    votes.add_patch("w2", "Welsh", 2, [1.0, 0.0, 0.0])  # "Not a speech": ignored

    result = votes.result()

    # Means on Irish: i1 0.7, i2 0.4 against w1 0.2, w2 0.3: every Irish clip ranks above every Welsh one.
    assert result.class_aucs[0] == pytest.approx(1.0)
    assert result.class_aucs[1] == pytest.approx(1.0)
    assert math.isnan(result.class_aucs[2])  # no clip is labelled "Not a speech"
    assert (result.macro_auc, result.present_class_count) == (pytest.approx(1.0), 2)
    # i2's mean argmax is Welsh: one Irish clip is confused with Welsh.
    assert result.confusion_matrix == ((1, 1, 0), (0, 2, 0), (0, 0, 0))
    assert result.accuracy == pytest.approx(0.75)
