"""The Trainer's input pipeline plus ``fit``, against ``fit`` on the same examples held in memory.

Both fit the Trainer's model (``components.trainer.model.build_model``, the
reference classifier) on the train split of the Examples the embedding job
wrote, with the Trainer's batch size and class weights, in one child process:

* ``pipeline``: ``components.trainer.data.make_training_dataset``, as
  ``run_fn`` builds it (TFRecords read, shuffled, batched, parsed, one-hot);
* ``memory``: the same examples parsed beforehand (untimed) into NumPy arrays
  and fitted from a ``tf.data`` dataset over those in-memory tensors, shuffled
  and batched alike: the limit of any input pipeline.

One warm-up epoch (tracing) is run untimed for each, on a dataset of its
own; the timed part is ``epochs`` epochs of ``fit`` on a new dataset, so the
input pipeline's first pass over the files (which fills its in-memory cache,
see ``make_training_dataset``) is timed. The two alternate ``rounds`` times, and each
reports its median, so that a slow spell of a shared machine hits both alike.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import time

from benchmarks import child

logger = logging.getLogger(__name__)

# OpenSLR-83's patches (31 hours of audio), for the extrapolated time per epoch.
OPENSLR83_PATCHES = 233_000

PIPELINE = "pipeline"
MEMORY = "memory"


@dataclasses.dataclass(frozen=True)
class TrainerRun:
    """Timed epochs of ``fit`` on the train split, both ways.

    Attributes:
        num_examples: Train examples per epoch.
        epochs: Timed epochs per measurement.
        batch_size: Examples per batch.
        pipeline_seconds: Wall seconds of each round's timed epochs with the Trainer's input pipeline.
        memory_seconds: The same with the examples held in memory.
    """

    num_examples: int
    epochs: int
    batch_size: int
    pipeline_seconds: tuple[float, ...]
    memory_seconds: tuple[float, ...]

    @property
    def pipeline_examples_per_second(self) -> float:
        """Examples per wall second through the input pipeline and ``fit`` (median round)."""
        return self.num_examples * self.epochs / statistics.median(self.pipeline_seconds)

    @property
    def memory_examples_per_second(self) -> float:
        """Examples per wall second of ``fit`` on in-memory examples (median round), the limit."""
        return self.num_examples * self.epochs / statistics.median(self.memory_seconds)

    @property
    def limit_fraction(self) -> float:
        """T: the input pipeline's rate over the limit's."""
        return self.pipeline_examples_per_second / self.memory_examples_per_second

    def epoch_seconds_at(self, num_examples: int = OPENSLR83_PATCHES) -> float:
        """Extrapolated wall seconds of one epoch over ``num_examples`` through the input pipeline."""
        return num_examples / self.pipeline_examples_per_second


def run_trainer_benchmark(examples_uri: str, epochs: int, rounds: int, batch_size: int) -> TrainerRun:
    """Times ``fit`` through the Trainer's input pipeline and on in-memory examples (runs in a child).

    Args:
        examples_uri: An Examples artifact's directory (``Split-train/`` with TFRecords).
        epochs: Timed epochs per measurement.
        rounds: Alternating measurements of each way.
        batch_size: Examples per batch (the Trainer's).

    Returns:
        The run.

    Raises:
        ValueError: If ``epochs`` or ``rounds`` is not positive, or the split holds no example.
    """
    if epochs < 1 or rounds < 1:
        raise ValueError(f"epochs and rounds must be positive, got {epochs} and {rounds}")
    child.configure_step_logging()
    import keras
    import numpy as np
    import tensorflow as tf

    from components import features
    from components.trainer import data, model

    train_files = os.path.join(examples_uri, f"Split-{features.TRAIN_SPLIT}", "*")
    class_names = features.DEFAULT_CLASS_NAMES
    num_classes = len(class_names)
    counts = data.count_labels(train_files, num_classes)
    num_examples = int(counts.sum())
    if num_examples == 0:
        raise ValueError(f"No train example in {examples_uri}")
    class_weights = model.class_weights_from_counts(counts, num_classes, class_names)
    columns = data.read_clip_patches(train_files)
    embeddings = columns[features.EMBEDDING_KEY].astype(np.float32)
    one_hot_labels = np.eye(num_classes, dtype=np.float32)[columns[features.LABEL_KEY].astype(np.int64)]

    def pipeline_dataset() -> tf.data.Dataset:
        return data.make_training_dataset(
            train_files, num_classes, batch_size, shuffle=True, seed=0, num_records=num_examples
        )

    def memory_dataset() -> tf.data.Dataset:
        return (
            tf.data.Dataset.from_tensor_slices((embeddings, one_hot_labels))
            .shuffle(num_examples, seed=0, reshuffle_each_iteration=True)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )

    def timed_fit(make_dataset) -> float:
        keras.utils.set_random_seed(0)
        classifier = model.build_model(num_classes)
        classifier.fit(make_dataset(), epochs=1, class_weight=class_weights, verbose=0)
        # A new dataset: the timed epochs include the input pipeline's first pass over the files.
        dataset = make_dataset()
        started = time.perf_counter()
        classifier.fit(dataset, epochs=epochs, class_weight=class_weights, verbose=0)
        return time.perf_counter() - started

    pipeline_seconds, memory_seconds = [], []
    for round_index in range(rounds):
        pipeline_seconds.append(timed_fit(pipeline_dataset))
        memory_seconds.append(timed_fit(memory_dataset))
        logger.info(
            "Trainer round %d of %d: %d examples x %d epochs, input pipeline %.2f s, in memory %.2f s",
            round_index + 1,
            rounds,
            num_examples,
            epochs,
            pipeline_seconds[-1],
            memory_seconds[-1],
        )
    return TrainerRun(
        num_examples=num_examples,
        epochs=epochs,
        batch_size=batch_size,
        pipeline_seconds=tuple(pipeline_seconds),
        memory_seconds=tuple(memory_seconds),
    )
