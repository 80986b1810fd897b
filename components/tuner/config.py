"""The Tuner's settings: one frozen dataclass, carried in the Tuner's ``custom_config``.

``pipeline/pipeline.py`` passes ``TunerConfig(...).to_custom_config()`` to TFX's
Tuner and ``search.tuner_fn`` reads it back with ``from_custom_config``; the
field names are the keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from components import custom_config, features
from components.errors import InvalidArgumentError
from components.trainer.config import TrainerConfig

# The search algorithm: KerasTuner's Bayesian optimisation (a Gaussian process over the trials' scores).
ALGORITHM = "bayesian"

# The objective of the search: validation AUC on the tuning validation part, higher is better.
OBJECTIVE_NAME = "val_auc"
OBJECTIVE_DIRECTION = "max"


@dataclasses.dataclass(frozen=True)
class TunerConfig:
    """The budget and settings of the hyperparameter search.

    Attributes:
        class_names: Label vocabulary, in label-id order.
        batch_size: Patches per training batch, as the Trainer's.
        max_trials: Trials of the search (models built and trained).
        epochs_per_trial: Training epochs of each trial.
        validation_fraction: Fraction of each accent's train speakers held out as the tuning validation.
        seed: Seed of the speaker choice, of KerasTuner's oracle, of weight initialisation and shuffling.
    """

    class_names: tuple[str, ...] = features.DEFAULT_CLASS_NAMES
    batch_size: int = TrainerConfig.batch_size
    max_trials: int = 20
    epochs_per_trial: int = 10
    validation_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        """Checks every value.

        Raises:
            InvalidArgumentError: A ``ValueError`` naming the field that is wrong.
        """
        object.__setattr__(self, "class_names", custom_config.check_class_names(self.class_names))
        custom_config.check_integers(
            self, (("batch_size", 1), ("max_trials", 1), ("epochs_per_trial", 1), ("seed", 0))
        )
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise InvalidArgumentError(f"validation_fraction must be between 0 and 1, got {fraction!r}")
        object.__setattr__(self, "validation_fraction", float(fraction))

    def to_custom_config(self) -> dict[str, Any]:
        """The Tuner's ``custom_config``: every field under its own name, in JSON types."""
        return custom_config.to_custom_config(self)

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any] | None) -> TunerConfig:
        """Reads and checks the Tuner's ``custom_config``.

        Args:
            config: ``FnArgs.custom_config``, as ``to_custom_config`` wrote it; every key is
                required, so that a search never silently runs on a default.

        Returns:
            The config.

        Raises:
            InvalidArgumentError: If the config is missing, lacks a key, has an unknown key or a bad value.
        """
        return custom_config.from_custom_config(cls, config, "Tuner")
