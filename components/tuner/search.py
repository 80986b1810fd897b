"""``tuner_fn``, the function TFX's Tuner calls: a seeded KerasTuner Bayesian optimisation.

The first trial is the reference model (the space's defaults), so the search
always measures the reference; the next ones are random until the Gaussian
process has enough points, then its choices. Each trial builds the classifier
of its hyperparameters (``search_space``) and trains it for
``epochs_per_trial`` epochs on the tuning train part of the train split, with
class weights from that part's patch counts as the Trainer computes them. Its
score is its best validation AUC (``val_auc``, to maximise) on the tuning
validation part, whose speakers are disjoint from the tuning train's and from
the eval split's (``tuning_split``).

TFX's Tuner then writes the best trial's hyperparameters
(``best_hyperparameters``), which the Trainer builds its model from, and the
completed trials (``tuner_results``), which ``trials`` reads back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import keras
import keras_tuner
from tfx import v1 as tfx

from components.trainer import model
from components.trainer.config import describe_blocks
from components.tuner import search_space, tuning_split
from components.tuner.config import ALGORITHM, OBJECTIVE_DIRECTION, OBJECTIVE_NAME, TunerConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger(__name__)

# KerasTuner's project directory, inside the Tuner's working directory.
PROJECT_NAME = "accent_tuning"


class ReferenceFirstBayesianOracle(keras_tuner.oracles.BayesianOptimizationOracle):
    """KerasTuner's Bayesian optimisation oracle, whose first trial takes every default: the reference."""

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        """The values of the next trial: the defaults for the first, then the Bayesian oracle's."""
        if self.trials:
            return super().populate_space(trial_id)
        defaults = keras_tuner.HyperParameters()
        for hyperparameter in self.hyperparameters.space:
            defaults.merge([hyperparameter])
            if defaults.is_active(hyperparameter):
                defaults.values[hyperparameter.name] = hyperparameter.default
        return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": defaults.values}


def build_tuner(config: TunerConfig, working_dir: str) -> keras_tuner.Tuner:
    """The seeded Bayesian optimisation over ``search_space``, starting from the reference.

    Args:
        config: The search's budget and seed.
        working_dir: Where KerasTuner keeps its trials (``FnArgs.working_dir``).

    Returns:
        The tuner, which starts afresh (any earlier project there is overwritten).
    """
    oracle = ReferenceFirstBayesianOracle(
        objective=keras_tuner.Objective(OBJECTIVE_NAME, direction=OBJECTIVE_DIRECTION),
        max_trials=config.max_trials,
        seed=config.seed,
    )
    return keras_tuner.Tuner(
        oracle=oracle,
        hypermodel=search_space.AccentHyperModel(len(config.class_names)),
        directory=working_dir,
        project_name=PROJECT_NAME,
        overwrite=True,
    )


def _class_count_text(counts: Mapping[int, int] | list[int], class_names: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {int(count)}" for name, count in zip(class_names, counts, strict=True))


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """Builds the search the TFX Tuner runs.

    Args:
        fn_args: The Tuner's arguments. Uses ``train_files`` (both tuning parts come from them),
            ``eval_files`` (their speaker ids only, kept out of the tuning validation),
            ``working_dir`` and ``custom_config`` (``TunerConfig.to_custom_config``).

    Returns:
        The tuner and the arguments of its ``search``: the tuning datasets, epochs and class weights.

    Raises:
        InvalidArgumentError: If the custom_config is invalid or no speaker can be held out.
    """
    config = TunerConfig.from_custom_config(fn_args.custom_config)
    class_names = config.class_names
    num_classes = len(class_names)
    keras.utils.set_random_seed(config.seed)
    split = tuning_split.make_tuning_split(
        fn_args.train_files, fn_args.eval_files, num_classes, config.validation_fraction, config.seed
    )
    logger.info(
        "Tuning train patches per class: %s", _class_count_text(split.train_counts.tolist(), class_names)
    )
    logger.info(
        "Tuning validation patches per class: %s",
        _class_count_text(split.validation_counts.tolist(), class_names),
    )
    class_weights = model.class_weights_from_counts(split.train_counts, num_classes, class_names)
    train_dataset = tuning_split.make_speaker_dataset(
        fn_args.train_files,
        split.train_speakers,
        num_classes,
        config.batch_size,
        num_records=int(split.train_counts.sum()),
        shuffle=True,
        seed=config.seed,
    )
    validation_dataset = tuning_split.make_speaker_dataset(
        fn_args.train_files,
        split.validation_speakers,
        num_classes,
        config.batch_size,
        num_records=int(split.validation_counts.sum()),
        shuffle=False,
    )
    tuner = build_tuner(config, fn_args.working_dir)
    reference = search_space.architecture_from_hyperparameters(keras_tuner.HyperParameters())
    logger.info(
        "Searching with Bayesian optimisation (KerasTuner, %r): %d trials of %d epochs, objective %s (%s); "
        "the first trial is the reference: %s, learning rate %g",
        ALGORITHM,
        config.max_trials,
        config.epochs_per_trial,
        OBJECTIVE_NAME,
        OBJECTIVE_DIRECTION,
        describe_blocks(reference.hidden_blocks),
        reference.learning_rate,
    )
    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train_dataset,
            "validation_data": validation_dataset,
            "epochs": config.epochs_per_trial,
            "class_weight": class_weights,
            "verbose": 2,
        },
    )
