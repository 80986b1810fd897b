"""The hyperparameters the Tuner searches, around the reference classifier, and the model of a trial.

The space (the issue's): 2 to 5 hidden layers; 128 to 512 units per layer, in
steps of 32; a dropout rate per layer from 0.0 to 0.5, in steps of 0.05; a
learning rate from 1e-5 to 1e-3, sampled log-uniformly. The defaults are the
reference's (4 layers of 256, 384, 192, 384 units, dropout 0.15, 0.2, 0.25, 0.2,
learning rate 1.9644e-5); the 5th layer defaults to 256 units and dropout 0.2.
The units and dropout of layer n > 2 are active only when there are at least
n layers (KerasTuner conditional scopes), so inactive layers never count.

The names are ``components.trainer.config``'s, so the Trainer rebuilds the best
trial's model from the Tuner's ``best_hyperparameters`` with the same
``build_model``.
"""

from __future__ import annotations

import contextlib

import keras
import keras_tuner

from components.trainer import model
from components.trainer.config import (
    LEARNING_RATE_HYPERPARAMETER,
    NUM_HIDDEN_LAYERS_HYPERPARAMETER,
    REFERENCE_HIDDEN_BLOCKS,
    ClassifierArchitecture,
    TrainerConfig,
    dropout_hyperparameter,
    units_hyperparameter,
)

MIN_HIDDEN_LAYERS = 2
MAX_HIDDEN_LAYERS = 5
MIN_UNITS = 128
MAX_UNITS = 512
UNITS_STEP = 32
MIN_DROPOUT = 0.0
MAX_DROPOUT = 0.5
DROPOUT_STEP = 0.05
MIN_LEARNING_RATE = 1e-5
MAX_LEARNING_RATE = 1e-3

# Defaults of the layers beyond the reference's four.
_EXTRA_LAYER_DEFAULT: tuple[int, float] = (256, 0.2)


def _layer_default(layer_number: int) -> tuple[int, float]:
    """The default (units, dropout rate) of hidden layer ``layer_number``: the reference's if it has one."""
    if layer_number <= len(REFERENCE_HIDDEN_BLOCKS):
        return REFERENCE_HIDDEN_BLOCKS[layer_number - 1]
    return _EXTRA_LAYER_DEFAULT


def architecture_from_hyperparameters(hyperparameters: keras_tuner.HyperParameters) -> ClassifierArchitecture:
    """Declares the search space on ``hyperparameters`` (first call) and returns the trial's architecture.

    Args:
        hyperparameters: The trial's KerasTuner hyperparameters.

    Returns:
        The hidden layers and learning rate of the trial.
    """
    num_hidden_layers = hyperparameters.Int(
        NUM_HIDDEN_LAYERS_HYPERPARAMETER,
        MIN_HIDDEN_LAYERS,
        MAX_HIDDEN_LAYERS,
        default=len(REFERENCE_HIDDEN_BLOCKS),
    )
    hidden_blocks = []
    for layer_number in range(1, MAX_HIDDEN_LAYERS + 1):
        scope = (
            hyperparameters.conditional_scope(
                NUM_HIDDEN_LAYERS_HYPERPARAMETER, list(range(layer_number, MAX_HIDDEN_LAYERS + 1))
            )
            if layer_number > MIN_HIDDEN_LAYERS
            else contextlib.nullcontext()
        )
        default_units, default_dropout = _layer_default(layer_number)
        with scope:
            units = hyperparameters.Int(
                units_hyperparameter(layer_number),
                MIN_UNITS,
                MAX_UNITS,
                step=UNITS_STEP,
                default=default_units,
            )
            dropout_rate = hyperparameters.Float(
                dropout_hyperparameter(layer_number),
                MIN_DROPOUT,
                MAX_DROPOUT,
                step=DROPOUT_STEP,
                default=default_dropout,
            )
        if layer_number <= num_hidden_layers:
            hidden_blocks.append((units, dropout_rate))
    learning_rate = hyperparameters.Float(
        LEARNING_RATE_HYPERPARAMETER,
        MIN_LEARNING_RATE,
        MAX_LEARNING_RATE,
        sampling="log",
        default=TrainerConfig.learning_rate,
    )
    return ClassifierArchitecture(hidden_blocks=tuple(hidden_blocks), learning_rate=learning_rate)


class AccentHyperModel(keras_tuner.HyperModel):
    """Builds the classifier of one trial, with ``model.build_model`` as the Trainer does."""

    def __init__(self, num_classes: int) -> None:
        """Remembers the number of classes.

        Args:
            num_classes: Size of the softmax.
        """
        super().__init__(name="accent_classifier")
        self.num_classes = num_classes

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds and compiles the trial's classifier (``hp`` is KerasTuner's name for the argument)."""
        architecture = architecture_from_hyperparameters(hp)
        return model.build_model(self.num_classes, architecture.learning_rate, architecture.hidden_blocks)
