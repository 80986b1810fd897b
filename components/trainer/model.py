"""The accent classifier and the TFX Trainer's ``run_fn``.

The classifier is the keras-io example's ("English speaker accent recognition
using Transfer Learning"): a dense network over one 1024-d YAMNet embedding per
patch, trained with class weights that balance the patch counts of the classes
and early stopping on validation AUC. ``run_fn`` exports it together with
YAMNet (see ``components/trainer/export.py``), so the served model takes raw audio.

When the Tuner ran (``FnArgs.hyperparameters`` set), its best hyperparameters
choose the hidden layers, their dropouts and the learning rate
(``config.ClassifierArchitecture``); otherwise the network is the reference's.
The trained classifier alone is also saved as ``classifier.keras`` in the
model run directory, so its architecture can be read back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from components import clip_metrics, features
from components.errors import InvalidArgumentError
from components.trainer import data, export
from components.trainer.config import (
    REFERENCE_HIDDEN_BLOCKS,
    ClassifierArchitecture,
    TrainerConfig,
    describe_blocks,
)

if TYPE_CHECKING:
    from tfx import v1 as tfx

logger = logging.getLogger(__name__)

# Name of the classifier's output layer.
OUTPUT_LAYER_NAME = "accent_probabilities"

# Metric that early stopping watches.
EARLY_STOPPING_MONITOR = "val_auc"

# File, in FnArgs.model_run_dir, of clip-level metrics on the eval split.
CLIP_METRICS_FILENAME = "clip_metrics.json"

# File, in FnArgs.model_run_dir, of the trained classifier alone (Keras format: architecture and weights).
CLASSIFIER_FILENAME = "classifier.keras"


def build_model(
    num_classes: int = len(features.DEFAULT_CLASS_NAMES),
    learning_rate: float = TrainerConfig.learning_rate,
    hidden_blocks: Sequence[tuple[int, float]] = REFERENCE_HIDDEN_BLOCKS,
) -> keras.Model:
    """Builds and compiles the dense classifier, by default the keras-io reference.

    Input ``embedding`` (1024) -> ReLU dense layers ``dense_<n>``, each followed
    by dropout ``dropout_<n>`` (the reference: 256, 384, 192, 384 units with
    dropout 0.15, 0.2, 0.25, 0.2) -> softmax over the classes. Adam,
    categorical cross-entropy on one-hot labels, metrics accuracy and AUC.

    Args:
        num_classes: Number of classes (size of the softmax).
        learning_rate: Adam's learning rate.
        hidden_blocks: (units, dropout rate) of each hidden layer.

    Returns:
        The compiled functional Keras model.

    Raises:
        InvalidArgumentError: If ``num_classes`` < 2, ``learning_rate`` is not positive or
            ``hidden_blocks`` is empty or invalid.
    """
    if num_classes < 2:
        raise InvalidArgumentError(f"num_classes must be at least 2, got {num_classes}")
    architecture = ClassifierArchitecture(hidden_blocks=tuple(hidden_blocks), learning_rate=learning_rate)
    inputs = keras.Input(shape=(features.EMBEDDING_SIZE,), name=features.EMBEDDING_KEY)
    hidden = inputs
    for block_number, (units, dropout_rate) in enumerate(architecture.hidden_blocks, start=1):
        hidden = keras.layers.Dense(units, activation="relu", name=f"dense_{block_number}")(hidden)
        hidden = keras.layers.Dropout(dropout_rate, name=f"dropout_{block_number}")(hidden)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_LAYER_NAME)(hidden)
    model = keras.Model(inputs=inputs, outputs=outputs, name="accent_recognition")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=architecture.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def class_weights_from_counts(
    counts: Mapping[int, int] | Sequence[int] | np.ndarray,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> dict[int, float]:
    """Computes balancing class weights from patch counts.

    A present class ``c`` gets ``total / (num_present_classes * count_c)``, so
    that every present class carries the same total weight and the mean weight
    per patch is 1. A class without examples gets 0.0 and a warning: no patch
    carries its label, so its weight never multiplies a loss term, and 0.0
    states that plainly (it cannot produce an inf or a NaN).

    Args:
        counts: Patch count of each class id, as a mapping or an array of length ``num_classes``.
        num_classes: Size of the label vocabulary.
        class_names: Optional names of the classes, for the warning.

    Returns:
        A weight for every class id in ``range(num_classes)``.

    Raises:
        ValueError: If a count is negative, a class id is out of range, or no class has examples.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if isinstance(counts, Mapping):
        unknown_ids = [class_index for class_index in counts if not 0 <= class_index < num_classes]
        if unknown_ids:
            raise ValueError(f"Class ids {unknown_ids} are outside [0, {num_classes})")
        count_array = np.array(
            [counts.get(class_index, 0) for class_index in range(num_classes)], dtype=np.int64
        )
    else:
        count_array = np.asarray(counts, dtype=np.int64)
        if count_array.shape != (num_classes,):
            raise ValueError(f"Expected {num_classes} counts, got an array of shape {count_array.shape}")
    if (count_array < 0).any():
        raise ValueError(f"Counts must not be negative: {count_array.tolist()}")
    present = count_array > 0
    if not present.any():
        raise ValueError("No class has any example: cannot compute class weights")
    total = int(count_array.sum())
    num_present = int(present.sum())
    weights: dict[int, float] = {}
    for class_index in range(num_classes):
        if present[class_index]:
            weights[class_index] = total / (num_present * int(count_array[class_index]))
        else:
            name = class_names[class_index] if class_names is not None else str(class_index)
            logger.warning(
                "Class %d (%s) has no training example; its class weight is 0.0", class_index, name
            )
            weights[class_index] = 0.0
    return weights


def _write_clip_metrics(
    classifier: keras.Model,
    eval_files: Sequence[str],
    class_names: Sequence[str],
    batch_size: int,
    model_run_dir: str,
) -> dict[str, float | int]:
    """Computes clip-level accuracy (``clip_accuracy``) on the eval split and writes it to model_run_dir."""
    patches = data.read_clip_patches(eval_files)
    patch_probabilities = classifier.predict(
        patches[features.EMBEDDING_KEY], batch_size=batch_size, verbose=0
    )
    metrics = clip_metrics.clip_metrics(
        patch_probabilities,
        patches[features.LABEL_KEY],
        patches[features.CLIP_ID_KEY],
        patches[features.ACCENT_KEY],
        class_names,
    ).to_json_dict()
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(f"{model_run_dir.rstrip('/')}/{CLIP_METRICS_FILENAME}", "w") as metrics_file:
        metrics_file.write(json.dumps(metrics, indent=2) + "\n")
    logger.info("Clip-level metrics on the eval split: %s", metrics)
    return metrics


def classifier_architecture(
    hyperparameters: Mapping[str, object] | None, config: TrainerConfig
) -> ClassifierArchitecture:
    """The architecture to train: the Tuner's best hyperparameters if it ran, else the reference.

    Args:
        hyperparameters: ``FnArgs.hyperparameters`` (the Tuner's ``best_hyperparameters``), or None.
        config: The Trainer's config, whose learning rate the reference uses.

    Returns:
        The hidden layers and learning rate.

    Raises:
        InvalidArgumentError: If the hyperparameters lack a value or hold an invalid one.
    """
    if not hyperparameters:
        architecture = ClassifierArchitecture(REFERENCE_HIDDEN_BLOCKS, config.learning_rate)
        logger.info("No Tuner hyperparameters: building the reference model")
        return architecture
    architecture = ClassifierArchitecture.from_tuner_hyperparameters(hyperparameters)
    logger.info(
        "Building the Tuner's best model: %s; learning rate %g (the Tuner's, not --learning-rate)",
        describe_blocks(architecture.hidden_blocks),
        architecture.learning_rate,
    )
    return architecture


def save_classifier(classifier: keras.Model, model_run_dir: str) -> str:
    """Saves the classifier alone (``CLASSIFIER_FILENAME``) in the model run dir, for its architecture.

    Args:
        classifier: The trained classifier.
        model_run_dir: ``FnArgs.model_run_dir`` (a local path or a remote URI).

    Returns:
        The saved file's path.
    """
    tf.io.gfile.makedirs(model_run_dir)
    path = f"{model_run_dir.rstrip('/')}/{CLASSIFIER_FILENAME}"
    # Keras writes .keras files through its own file API, which takes remote URIs as well.
    classifier.save(path)
    logger.info("Saved the classifier to %s", path)
    return path


# TFX Trainer will call this function.
def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the accent classifier and exports it with YAMNet for serving.

    Args:
        fn_args: The Trainer's arguments. Uses ``train_files``, ``eval_files``,
            ``serving_model_dir``, ``model_run_dir``, ``base_model`` (the YAMNet
            SavedModel directory), ``custom_config`` (``TrainerConfig.to_custom_config``) and
            ``hyperparameters`` (the Tuner's best, or None to build the reference model).

    Raises:
        InvalidArgumentError: If the custom_config is invalid or the base model is missing.
        ValueError: If the train split has no example.
    """
    config = TrainerConfig.from_custom_config(fn_args.custom_config)
    if not fn_args.base_model:
        raise InvalidArgumentError("run_fn needs the YAMNet SavedModel as the Trainer's base_model")
    class_names = list(config.class_names)
    num_classes = len(class_names)
    seed = config.seed
    batch_size = config.batch_size
    keras.utils.set_random_seed(seed)

    counts = data.count_labels(fn_args.train_files, num_classes)
    logger.info("Train patches per class: %s", dict(zip(class_names, counts.tolist(), strict=True)))
    class_weights = class_weights_from_counts(counts, num_classes, class_names)
    logger.info("Class weights: %s", {class_names[index]: weight for index, weight in class_weights.items()})

    eval_counts = data.count_labels(fn_args.eval_files, num_classes)
    logger.info("Eval patches per class: %s", dict(zip(class_names, eval_counts.tolist(), strict=True)))
    train_dataset = data.make_training_dataset(
        fn_args.train_files, num_classes, batch_size, shuffle=True, seed=seed, num_records=int(counts.sum())
    )
    eval_dataset = data.make_training_dataset(
        fn_args.eval_files, num_classes, batch_size, shuffle=False, num_records=int(eval_counts.sum())
    )

    architecture = classifier_architecture(fn_args.hyperparameters, config)
    model = build_model(num_classes, architecture.learning_rate, architecture.hidden_blocks)
    model.summary(print_fn=logger.info)
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=EARLY_STOPPING_MONITOR,
            mode="max",
            patience=config.early_stopping_patience,
            restore_best_weights=True,
            verbose=1,
        ),
        keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
    ]
    logger.info("Training for at most %d epochs, batch size %d", config.epochs, batch_size)
    history = model.fit(
        train_dataset,
        validation_data=eval_dataset,
        epochs=config.epochs,
        class_weight=class_weights,
        callbacks=callbacks,
        verbose=2,
    )
    logger.info(
        "Trained %d epochs; last metrics %s",
        len(history.epoch),
        {name: values[-1] for name, values in history.history.items()},
    )
    # The per-epoch history and hyperparameters, for the model card (components/model_card/).
    from components.model_card import history as training_history

    training_history.write_training_history(
        fn_args.model_run_dir,
        history.history,
        model.optimizer.get_config(),
        epochs=config.epochs,
        batch_size=batch_size,
        class_names=class_names,
        class_weights=class_weights,
        early_stopping_monitor=EARLY_STOPPING_MONITOR,
        early_stopping_patience=config.early_stopping_patience,
        seed=seed,
    )

    save_classifier(model, fn_args.model_run_dir)
    _write_clip_metrics(model, fn_args.eval_files, class_names, batch_size, fn_args.model_run_dir)
    export.export_serving_model(model, fn_args.base_model, class_names, fn_args.serving_model_dir)
    logger.info("Exported the served model to %s", fn_args.serving_model_dir)
