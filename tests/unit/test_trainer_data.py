"""The Trainer's input pipeline gives the same patches whether it keeps them in memory or streams them."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

from components import features
from components.trainer import data
from tests import example_builders

NUM_CLASSES = 7


def _epoch(dataset) -> tuple[np.ndarray, np.ndarray]:
    batches = list(dataset)
    embeddings = np.concatenate([batch_embeddings.numpy() for batch_embeddings, _ in batches])
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in batches]).argmax(axis=1)
    return embeddings, labels


def _sorted_rows(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    rows = np.concatenate([labels[:, None].astype(np.float32), embeddings], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


@pytest.fixture()
def train_pattern(tmp_path: Path) -> tuple[str, list[example_builders.Patch]]:
    patches = example_builders.write_examples_artifact(
        tmp_path, train_clips_per_accent=3, eval_clips_per_accent=1
    )
    return example_builders.split_pattern(tmp_path, features.TRAIN_SPLIT), patches[features.TRAIN_SPLIT]


@pytest.mark.parametrize("cache_budget_bytes", [0, data.DEFAULT_CACHE_BUDGET_BYTES])
def test_unshuffled_epochs_give_every_patch_in_file_order(train_pattern, cache_budget_bytes: int) -> None:
    pattern, patches = train_pattern
    dataset = data.make_training_dataset(
        pattern,
        NUM_CLASSES,
        batch_size=4,
        shuffle=False,
        num_records=len(patches),
        cache_budget_bytes=cache_budget_bytes,
    )
    assert int(dataset.cardinality()) == -(-len(patches) // 4)
    for _ in range(2):
        embeddings, labels = _epoch(dataset)
        np.testing.assert_allclose(embeddings, np.stack([patch.embedding for patch in patches]))
        assert labels.tolist() == [patch.label for patch in patches]


def test_kept_in_memory_and_streamed_shuffles_hold_the_same_patches_each_epoch(train_pattern) -> None:
    pattern, patches = train_pattern
    expected = _sorted_rows(
        np.stack([patch.embedding for patch in patches]), np.array([patch.label for patch in patches])
    )
    orders = collections.defaultdict(list)
    for cache_budget_bytes in (0, data.DEFAULT_CACHE_BUDGET_BYTES):
        dataset = data.make_training_dataset(
            pattern,
            NUM_CLASSES,
            batch_size=8,
            shuffle=True,
            seed=3,
            num_records=len(patches),
            cache_budget_bytes=cache_budget_bytes,
        )
        for _ in range(2):
            embeddings, labels = _epoch(dataset)
            np.testing.assert_allclose(_sorted_rows(embeddings, labels), expected)
            orders[cache_budget_bytes].append(labels.tolist())
    # Each epoch is shuffled anew, in memory as when streamed.
    for epochs in orders.values():
        assert epochs[0] != epochs[1]
