import numpy as np
import pytest

from components.embedding import speech


def test_auto_rule_follows_the_weights() -> None:
    assert speech.resolve_rule("auto", yamnet_is_pretrained=True) == "yamnet"
    assert speech.resolve_rule("auto", yamnet_is_pretrained=False) == "energy"
    assert speech.resolve_rule("none", yamnet_is_pretrained=False) == "none"


def test_unknown_rule_is_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown non-speech rule"):
        speech.resolve_rule("loudness", yamnet_is_pretrained=True)


def test_yamnet_rule_marks_patches_whose_top_class_is_speech() -> None:
    scores = np.zeros((3, 521), dtype=np.float32)
    scores[0, 0] = 0.9  # Speech on top.
    scores[1, 0], scores[1, 137] = 0.2, 0.8  # Music on top.
    scores[2, 0], scores[2, 500] = 0.5, 0.4
    levels = np.full(3, -20.0)
    assert speech.speech_patches("yamnet", scores, levels, -45.0).tolist() == [True, False, True]


def test_energy_rule_uses_the_threshold() -> None:
    scores = np.zeros((3, 521), dtype=np.float32)
    levels = np.array([-80.0, -45.0, -12.0])
    assert speech.speech_patches("energy", scores, levels, -45.0).tolist() == [False, False, True]
    assert speech.speech_patches("none", scores, levels, -45.0).tolist() == [True, True, True]


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="patch levels"):
        speech.speech_patches("energy", np.zeros((2, 521)), np.zeros(3), -45.0)
