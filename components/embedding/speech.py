"""Rules that decide which YAMNet patches are speech.

Patches that are not speech get the "Not a speech" label, as in the reference
example, whatever the clip's accent.
"""

from __future__ import annotations

import numpy as np

from components.yamnet import params

# Rules a run can choose from; "auto" is resolved by ``resolve_rule``.
RULES = ("auto", "yamnet", "energy", "none")


def resolve_rule(rule: str, yamnet_is_pretrained: bool) -> str:
    """Turns ``auto`` into the rule that suits the YAMNet weights.

    Args:
        rule: One of ``RULES``.
        yamnet_is_pretrained: Whether the YAMNet weights are the published,
            trained ones. Offline weights are untrained, so their top class
            says nothing about speech and ``auto`` picks ``energy`` for them.

    Returns:
        ``yamnet``, ``energy`` or ``none``.

    Raises:
        ValueError: If the rule is unknown.
    """
    if rule not in RULES:
        raise ValueError(f"Unknown non-speech rule {rule!r}; choose one of {list(RULES)}")
    if rule == "auto":
        return "yamnet" if yamnet_is_pretrained else "energy"
    return rule


def speech_patches(
    rule: str,
    scores: np.ndarray,
    patch_levels_dbfs: np.ndarray,
    energy_threshold_dbfs: float,
) -> np.ndarray:
    """Marks each patch of one clip as speech or not.

    Args:
        rule: ``yamnet`` (the reference rule: the top YAMNet class is Speech),
            ``energy`` (the patch's RMS level is above the threshold) or
            ``none`` (every patch is speech).
        scores: YAMNet class scores, shape [num_patches, 521].
        patch_levels_dbfs: RMS level of each patch's audio in dBFS, shape [num_patches].
        energy_threshold_dbfs: Level at or below which a patch is not speech under ``energy``.

    Returns:
        A boolean array of shape [num_patches].

    Raises:
        ValueError: If the rule is not a resolved rule or the shapes disagree.
    """
    num_patches = scores.shape[0]
    if patch_levels_dbfs.shape[0] != num_patches:
        raise ValueError(f"{num_patches} patches of scores but {patch_levels_dbfs.shape[0]} patch levels")
    if rule == "yamnet":
        return np.argmax(scores, axis=1) == params.SPEECH_CLASS_INDEX
    if rule == "energy":
        return patch_levels_dbfs > energy_threshold_dbfs
    if rule == "none":
        return np.ones(num_patches, dtype=bool)
    raise ValueError(f"Unresolved or unknown non-speech rule {rule!r}; use resolve_rule first")
