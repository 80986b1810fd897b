"""The Trainer's hyperparameters: one frozen dataclass, carried in the Trainer's ``custom_config``.

``pipeline/pipeline.py`` passes ``TrainerConfig(...).to_custom_config()`` to
TFX's Trainer, and ``run_fn`` reads it back with ``from_custom_config``; the
field names are the keys, so no key is spelled out twice.

``ClassifierArchitecture`` is the dense network's shape and learning rate:
the reference's by default, or the Tuner's best hyperparameters, named by the
``*_HYPERPARAMETER`` constants below, which the Tuner's search space
(``components/tuner/search_space.py``) and the Trainer share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from components import custom_config, features
from components.errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """The hyperparameters of the accent classifier; the defaults are the keras-io reference example's.

    Attributes:
        class_names: Label vocabulary, in label-id order.
        epochs: Most epochs to train for.
        batch_size: Patches per training batch.
        learning_rate: Adam's learning rate.
        early_stopping_patience: Epochs without improvement of validation AUC before training stops.
        seed: Seed of weight initialisation, dropout and shuffling.
    """

    class_names: tuple[str, ...] = features.DEFAULT_CLASS_NAMES
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1.9644e-5
    early_stopping_patience: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        """Checks every value.

        Raises:
            InvalidArgumentError: A ``ValueError`` naming the field that is wrong.
        """
        object.__setattr__(self, "class_names", custom_config.check_class_names(self.class_names))
        custom_config.check_integers(
            self, (("epochs", 1), ("batch_size", 1), ("early_stopping_patience", 0), ("seed", 0))
        )
        learning_rate = self.learning_rate
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float))
            or not learning_rate > 0
        ):
            raise InvalidArgumentError(f"learning_rate must be a positive number, got {learning_rate!r}")
        object.__setattr__(self, "learning_rate", float(learning_rate))

    def to_custom_config(self) -> dict[str, Any]:
        """The Trainer's ``custom_config``: every field under its own name, in JSON types."""
        return custom_config.to_custom_config(self)

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any] | None) -> TrainerConfig:
        """Reads and checks the Trainer's ``custom_config``.

        Args:
            config: ``FnArgs.custom_config``, as ``to_custom_config`` wrote it. Every field
                but ``seed`` is required: a Trainer that silently fell back on a default would
                train another model than the pipeline asked for.

        Returns:
            The config.

        Raises:
            InvalidArgumentError: If the config is missing, lacks a key, has an unknown key or a bad value.
        """
        return custom_config.from_custom_config(cls, config, "Trainer", optional_keys=("seed",))


# The reference model's hidden layers: (units, dropout rate) of each dense block.
REFERENCE_HIDDEN_BLOCKS: tuple[tuple[int, float], ...] = ((256, 0.15), (384, 0.2), (192, 0.25), (384, 0.2))

# Names of the Tuner's hyperparameters (KerasTuner ``HyperParameters.values`` keys).
NUM_HIDDEN_LAYERS_HYPERPARAMETER = "num_hidden_layers"
LEARNING_RATE_HYPERPARAMETER = "learning_rate"


def units_hyperparameter(layer_number: int) -> str:
    """The name of the units hyperparameter of hidden layer ``layer_number`` (from 1)."""
    return f"units_{layer_number}"


def dropout_hyperparameter(layer_number: int) -> str:
    """The name of the dropout-rate hyperparameter of hidden layer ``layer_number`` (from 1)."""
    return f"dropout_{layer_number}"


@dataclasses.dataclass(frozen=True)
class ClassifierArchitecture:
    """The dense classifier's hidden layers and Adam's learning rate.

    Attributes:
        hidden_blocks: (units, dropout rate) of each ReLU dense layer and the dropout after it.
        learning_rate: Adam's learning rate.
    """

    hidden_blocks: tuple[tuple[int, float], ...] = REFERENCE_HIDDEN_BLOCKS
    learning_rate: float = TrainerConfig.learning_rate

    def __post_init__(self) -> None:
        """Checks the layers and the learning rate.

        Raises:
            InvalidArgumentError: If there is no hidden layer, a layer has no unit, a dropout
                rate is outside [0, 1) or the learning rate is not positive.
        """
        blocks = tuple((units, dropout_rate) for units, dropout_rate in self.hidden_blocks)
        if not blocks:
            raise InvalidArgumentError("the classifier needs at least one hidden layer")
        for units, dropout_rate in blocks:
            if isinstance(units, bool) or not isinstance(units, int) or units < 1:
                raise InvalidArgumentError(f"hidden layer units must be positive integers, got {units!r}")
            if not 0.0 <= float(dropout_rate) < 1.0:
                raise InvalidArgumentError(f"dropout rates must be in [0, 1), got {dropout_rate!r}")
        object.__setattr__(
            self, "hidden_blocks", tuple((units, float(dropout_rate)) for units, dropout_rate in blocks)
        )
        if isinstance(self.learning_rate, bool) or not self.learning_rate > 0:
            raise InvalidArgumentError(f"learning_rate must be positive, got {self.learning_rate!r}")
        object.__setattr__(self, "learning_rate", float(self.learning_rate))

    @property
    def units(self) -> tuple[int, ...]:
        """The units of each hidden layer."""
        return tuple(units for units, _ in self.hidden_blocks)

    @property
    def dropout_rates(self) -> tuple[float, ...]:
        """The dropout rate after each hidden layer."""
        return tuple(dropout_rate for _, dropout_rate in self.hidden_blocks)

    def to_hyperparameter_values(self) -> dict[str, int | float]:
        """The architecture as hyperparameter values, the form ``from_hyperparameter_values`` reads."""
        values: dict[str, int | float] = {
            NUM_HIDDEN_LAYERS_HYPERPARAMETER: len(self.hidden_blocks),
            LEARNING_RATE_HYPERPARAMETER: self.learning_rate,
        }
        for layer_number, (units, dropout_rate) in enumerate(self.hidden_blocks, start=1):
            values[units_hyperparameter(layer_number)] = units
            values[dropout_hyperparameter(layer_number)] = dropout_rate
        return values

    @classmethod
    def from_hyperparameter_values(cls, values: Mapping[str, Any]) -> ClassifierArchitecture:
        """Reads the architecture from the Tuner's hyperparameter values.

        Args:
            values: ``HyperParameters.values``: ``num_hidden_layers``, ``learning_rate`` and
                ``units_<n>``, ``dropout_<n>`` for n from 1 to ``num_hidden_layers``; values of
                deeper layers, which KerasTuner may keep, are ignored.

        Returns:
            The architecture.

        Raises:
            InvalidArgumentError: If a value is missing or invalid.
        """
        required = [NUM_HIDDEN_LAYERS_HYPERPARAMETER, LEARNING_RATE_HYPERPARAMETER]
        missing = [name for name in required if name not in values]
        if missing:
            raise InvalidArgumentError(f"the hyperparameters lack {missing}; got {sorted(values)}")
        num_hidden_layers = values[NUM_HIDDEN_LAYERS_HYPERPARAMETER]
        if isinstance(num_hidden_layers, bool) or not isinstance(num_hidden_layers, int):
            raise InvalidArgumentError(f"num_hidden_layers must be an integer, got {num_hidden_layers!r}")
        layer_names = [
            (units_hyperparameter(number), dropout_hyperparameter(number))
            for number in range(1, num_hidden_layers + 1)
        ]
        missing = [name for pair in layer_names for name in pair if name not in values]
        if missing:
            raise InvalidArgumentError(f"the hyperparameters lack {missing}; got {sorted(values)}")
        return cls(
            hidden_blocks=tuple(
                (values[units_name], values[dropout_name]) for units_name, dropout_name in layer_names
            ),
            learning_rate=values[LEARNING_RATE_HYPERPARAMETER],
        )

    @classmethod
    def from_tuner_hyperparameters(cls, hyperparameters: Mapping[str, Any]) -> ClassifierArchitecture:
        """Reads the architecture from ``FnArgs.hyperparameters``, the Tuner's ``best_hyperparameters``.

        Args:
            hyperparameters: ``HyperParameters.get_config()`` (whose ``values`` are read), as TFX
                passes it, or the values themselves.

        Returns:
            The architecture.

        Raises:
            InvalidArgumentError: If a value is missing or invalid.
        """
        values = hyperparameters.get("values", hyperparameters)
        if not isinstance(values, Mapping):
            raise InvalidArgumentError(f"the hyperparameters' values must be a mapping, got {values!r}")
        return cls.from_hyperparameter_values(values)


def describe_blocks(hidden_blocks: Sequence[tuple[int, float]]) -> str:
    """Says the hidden layers in one line, e.g. ``Dense 256 + dropout 0.15, Dense 384 + dropout 0.2``."""
    return ", ".join(f"Dense {units} + dropout {dropout_rate:g}" for units, dropout_rate in hidden_blocks)
