"""Tests of the shared clip-level accuracy rule and of the "Not a speech" id."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from components import clip_accuracy, features

CLASS_NAMES = ("Irish", "Welsh", features.NOT_SPEECH_CLASS_NAME)


def test_not_speech_class_id_is_its_position_or_minus_one() -> None:
    assert features.not_speech_class_id() == len(features.DEFAULT_CLASS_NAMES) - 1
    assert features.not_speech_class_id(CLASS_NAMES) == 2
    assert features.not_speech_class_id(list(CLASS_NAMES)) == 2
    assert features.not_speech_class_id(("Irish", "Welsh")) == features.NO_CLASS_ID == -1


def test_clip_class_is_the_argmax_of_the_mean_of_speech_patches() -> None:
    votes = clip_accuracy.ClipVotes(CLASS_NAMES)
    # Clip a (Irish): patch argmaxes vote Welsh 2 to 1, but the mean is Irish: the mean decides.
    votes.add_patch(b"a", b"Irish", 0, [0.98, 0.02, 0.0])
    votes.add_patch(b"a", b"Irish", 0, [0.45, 0.55, 0.0])
    votes.add_patch(b"a", b"Irish", 0, [0.45, 0.55, 0.0])
    # Its "Not a speech" patch is left out, however it scores.
    votes.add_patch(b"a", b"Irish", 2, [0.0, 1.0, 0.0])

    assert votes.result() == clip_accuracy.ClipAccuracyResult(accuracy=1.0, num_clips=1, num_skipped_clips=0)


def test_clips_without_speech_or_with_an_unknown_accent_are_skipped() -> None:
    votes = clip_accuracy.ClipVotes(CLASS_NAMES)
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
    whole = clip_accuracy.ClipVotes(CLASS_NAMES)
    first = clip_accuracy.ClipVotes(CLASS_NAMES)
    second = clip_accuracy.ClipVotes(CLASS_NAMES)
    for index, patch in enumerate(patches):
        whole.add_patch(*patch)
        (first if index % 3 else second).add_patch(*patch)
    first.merge(pickle.loads(pickle.dumps(second)))

    assert first.result() == whole.result()
    assert whole.result() == clip_accuracy.clip_accuracy(
        np.array([patch[3] for patch in patches]),
        np.array([patch[2] for patch in patches]),
        [patch[0] for patch in patches],
        [patch[1] for patch in patches],
        CLASS_NAMES,
    )


def test_votes_refuse_mismatched_inputs() -> None:
    votes = clip_accuracy.ClipVotes(CLASS_NAMES)
    with pytest.raises(ValueError, match="3 class probabilities"):
        votes.add_patch("a", "Irish", 0, [1.0, 0.0])
    with pytest.raises(ValueError, match="merge"):
        votes.merge(clip_accuracy.ClipVotes(("Irish", "Welsh")))
    with pytest.raises(ValueError, match="at least two"):
        clip_accuracy.ClipVotes(("Irish",))
    with pytest.raises(ValueError):
        clip_accuracy.clip_accuracy(
            np.zeros((2, 3)), np.zeros(1), ["a", "b"], ["Irish", "Irish"], CLASS_NAMES
        )
