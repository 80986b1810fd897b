"""The Trainer's hyperparameters: one frozen dataclass, carried in the Trainer's ``custom_config``.

``pipeline/pipeline.py`` passes ``TrainerConfig(...).to_custom_config()`` to
TFX's Trainer, and ``run_fn`` reads it back with ``from_custom_config``; the
field names are the keys, so no key is spelled out twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from components import features
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
        class_names = self.class_names
        if (
            isinstance(class_names, str)
            or not isinstance(class_names, (tuple, list))
            or len(class_names) < 2
            or not all(isinstance(name, str) and name for name in class_names)
        ):
            raise InvalidArgumentError(
                f"class_names must be at least two non-empty strings, got {class_names!r}"
            )
        if len(set(class_names)) != len(class_names):
            raise InvalidArgumentError(f"class_names must be unique, got {class_names!r}")
        object.__setattr__(self, "class_names", tuple(class_names))
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("early_stopping_patience", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
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
        config = dataclasses.asdict(self)
        config["class_names"] = list(self.class_names)
        return config

    @classmethod
    def from_custom_config(cls, custom_config: Mapping[str, Any] | None) -> TrainerConfig:
        """Reads and checks the Trainer's ``custom_config``.

        Args:
            custom_config: ``FnArgs.custom_config``, as ``to_custom_config`` wrote it. Every field
                but ``seed`` is required: a Trainer that silently fell back on a default would
                train another model than the pipeline asked for.

        Returns:
            The config.

        Raises:
            InvalidArgumentError: If the config is missing, lacks a key, has an unknown key or a bad value.
        """
        if custom_config is None:
            raise InvalidArgumentError("The Trainer needs a custom_config; got None")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(custom_config) - names)
        if unknown:
            raise InvalidArgumentError(f"The Trainer's custom_config has unknown keys {unknown}")
        missing = sorted(names - set(custom_config) - {"seed"})
        if missing:
            raise InvalidArgumentError(f"The Trainer's custom_config lacks the required keys {missing}")
        return cls(**custom_config)
