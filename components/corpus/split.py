"""Train/eval split of the corpus: speaker-disjoint by default, or the reference's utterance split.

``speaker``: every speaker goes wholly to one split. A speaker id is hashed
with SHA-256 to a fraction in [0, 1); speakers below ``eval_fraction`` go to
eval. The split depends on the speaker ids only, so adding clips or speakers
never moves an existing speaker. With two or more speakers both splits are
non-empty: if the hash puts everyone on one side, the speaker with the
smallest fraction moves to eval (or the one with the largest moves to train).

``utterance``: the reference example's random split. The clips, sorted by id,
are permuted with ``numpy.random.RandomState(seed).permutation`` (seed 1337 in
the reference); the first ``int(n * (1 - eval_fraction))`` are train and the
rest eval. Speakers then appear in both splits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

import numpy as np

from components import features

logger = logging.getLogger(__name__)

# Accepted values of the split strategy setting.
SPEAKER_STRATEGY = "speaker"
UTTERANCE_STRATEGY = "utterance"
SPLIT_STRATEGIES = (SPEAKER_STRATEGY, UTTERANCE_STRATEGY)


def speaker_fraction(speaker_id: str) -> float:
    """Hashes a speaker id to a fraction in [0, 1), stable across runs and machines.

    Args:
        speaker_id: The speaker id.

    Returns:
        The first 64 bits of the SHA-256 of the UTF-8 id, divided by 2**64.
    """
    digest = hashlib.sha256(speaker_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / float(1 << 64)


def validate_split_settings(split_strategy: str, eval_fraction: float) -> None:
    """Checks the split settings.

    Args:
        split_strategy: ``speaker`` or ``utterance``.
        eval_fraction: Fraction of speakers or clips for eval.

    Raises:
        ValueError: If the strategy is unknown or the fraction is not in (0, 1).
    """
    if split_strategy not in SPLIT_STRATEGIES:
        raise ValueError(f"split_strategy must be one of {SPLIT_STRATEGIES}, got {split_strategy!r}")
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}")


def assign_splits(
    clip_speakers: Mapping[str, str],
    split_strategy: str = SPEAKER_STRATEGY,
    eval_fraction: float = 0.1,
    seed: int = 1337,
) -> dict[str, str]:
    """Assigns every clip to the train or eval split.

    Args:
        clip_speakers: Clip id to speaker id.
        split_strategy: ``speaker`` (disjoint speakers) or ``utterance`` (the reference's random split).
        eval_fraction: Fraction of speakers (or clips) for eval.
        seed: Seed of the utterance split; the speaker split does not use it.

    Returns:
        Clip id to ``features.TRAIN_SPLIT`` or ``features.EVAL_SPLIT``.

    Raises:
        ValueError: If the settings are invalid.
    """
    validate_split_settings(split_strategy, eval_fraction)
    if split_strategy == SPEAKER_STRATEGY:
        speaker_splits = split_speakers(sorted(set(clip_speakers.values())), eval_fraction)
        return {clip_id: speaker_splits[speaker_id] for clip_id, speaker_id in clip_speakers.items()}
    return split_utterances(sorted(clip_speakers), eval_fraction, seed)


def split_speakers(speaker_ids: list[str], eval_fraction: float) -> dict[str, str]:
    """Assigns speakers to splits by hash, keeping both splits non-empty when possible.

    Args:
        speaker_ids: Distinct speaker ids.
        eval_fraction: Fraction of speakers for eval.

    Returns:
        Speaker id to split name.
    """
    fractions = {speaker_id: speaker_fraction(speaker_id) for speaker_id in speaker_ids}
    splits = {
        speaker_id: features.EVAL_SPLIT if fraction < eval_fraction else features.TRAIN_SPLIT
        for speaker_id, fraction in fractions.items()
    }
    if len(splits) >= 2:
        num_train = sum(split == features.TRAIN_SPLIT for split in splits.values())
        if num_train == len(splits):
            moved = min(fractions, key=lambda speaker_id: (fractions[speaker_id], speaker_id))
            splits[moved] = features.EVAL_SPLIT
            logger.warning("The speaker hash put every speaker in train; moved %s to eval", moved)
        elif num_train == 0:
            moved = max(fractions, key=lambda speaker_id: (fractions[speaker_id], speaker_id))
            splits[moved] = features.TRAIN_SPLIT
            logger.warning("The speaker hash put every speaker in eval; moved %s to train", moved)
    return splits


def split_utterances(clip_ids: list[str], eval_fraction: float, seed: int) -> dict[str, str]:
    """The reference's random utterance split.

    Args:
        clip_ids: Clip ids, sorted.
        eval_fraction: Fraction of clips for eval.
        seed: Seed of ``numpy.random.RandomState``.

    Returns:
        Clip id to split name.
    """
    num_clips = len(clip_ids)
    permutation = np.random.RandomState(seed).permutation(num_clips)
    num_train = int(num_clips * (1.0 - eval_fraction))
    if num_clips >= 2:
        num_train = min(max(num_train, 1), num_clips - 1)
    train_positions = set(permutation[:num_train].tolist())
    return {
        clip_id: features.TRAIN_SPLIT if position in train_positions else features.EVAL_SPLIT
        for position, clip_id in enumerate(clip_ids)
    }
