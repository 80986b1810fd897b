"""The search's results, read back from the TFX Tuner's output artifacts.

TFX 1.16's Tuner writes (``tfx/components/tuner/executor.py``):

* output ``tuner_results`` (a ``TunerResults`` artifact): ``tuner_results.json``,
  a list of ``{"trial_id", "score", <hyperparameter>: value, ...}``, one per
  COMPLETED trial (failed trials are not written), best first;
* output ``best_hyperparameters`` (a ``HyperParameters`` artifact):
  ``best_hyperparameters.txt``, the best trial's ``HyperParameters.get_config()``
  as JSON, whose ``values`` the Trainer builds its model from.

``read_trials_table(tuner_results_uri)`` gives the table (trial id,
hyperparameter values, objective, status) for the run summary and the model
card; ``format_trials_lines`` says it in text.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from components.errors import InvalidArgumentError
from components.trainer.config import ClassifierArchitecture, describe_blocks
from components.tuner.config import OBJECTIVE_NAME

# The Tuner's output keys and the file each holds.
TUNER_RESULTS_KEY = "tuner_results"
TUNER_RESULTS_FILENAME = "tuner_results.json"
BEST_HYPERPARAMETERS_KEY = "best_hyperparameters"
BEST_HYPERPARAMETERS_FILENAME = "best_hyperparameters.txt"

# The status of every trial in tuner_results.json: TFX writes completed trials only.
COMPLETED_STATUS = "COMPLETED"

# Keys of a tuner_results.json row that are not hyperparameters.
_TRIAL_ID_KEY = "trial_id"
_SCORE_KEY = "score"


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial of the search.

    Attributes:
        trial_id: KerasTuner's trial id ("00", "01", ...).
        hyperparameters: The trial's hyperparameter values, by name.
        objective: Its objective (validation AUC on the tuning validation), or None if not finite.
        status: Its KerasTuner status (``COMPLETED``).
    """

    trial_id: str
    hyperparameters: dict[str, Any]
    objective: float | None
    status: str = COMPLETED_STATUS

    def architecture(self) -> ClassifierArchitecture:
        """The classifier this trial trained."""
        return ClassifierArchitecture.from_hyperparameter_values(self.hyperparameters)

    def to_json_dict(self) -> dict[str, Any]:
        """The row in JSON types."""
        return dataclasses.asdict(self)


def _read_json(uri: str, filename: str, output_key: str) -> Any:
    path = f"{uri.rstrip('/')}/{filename}"
    if not tf.io.gfile.exists(path):
        raise InvalidArgumentError(f"The Tuner's {output_key} output {uri} has no {filename}")
    with tf.io.gfile.GFile(path) as json_file:
        try:
            return json.loads(json_file.read())
        except json.JSONDecodeError as error:
            raise InvalidArgumentError(f"{path} is not JSON: {error}") from None


def read_trials_table(tuner_results_uri: str) -> list[TrialRow]:
    """Reads the trials of a search from the Tuner's ``tuner_results`` artifact.

    Args:
        tuner_results_uri: The URI of the Tuner's ``tuner_results`` output artifact (a directory
            holding ``tuner_results.json``).

    Returns:
        The completed trials, by trial id.

    Raises:
        InvalidArgumentError: If the file is missing or not a list of trials.
    """
    rows = _read_json(tuner_results_uri, TUNER_RESULTS_FILENAME, TUNER_RESULTS_KEY)
    if not isinstance(rows, list) or not all(
        isinstance(row, Mapping) and _TRIAL_ID_KEY in row for row in rows
    ):
        raise InvalidArgumentError(f"{tuner_results_uri}/{TUNER_RESULTS_FILENAME} is not a list of trials")
    table = []
    for row in rows:
        score = row.get(_SCORE_KEY)
        objective = float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None
        table.append(
            TrialRow(
                trial_id=str(row[_TRIAL_ID_KEY]),
                hyperparameters={
                    key: value for key, value in row.items() if key not in (_TRIAL_ID_KEY, _SCORE_KEY)
                },
                objective=objective,
            )
        )
    return sorted(table, key=lambda trial: trial.trial_id)


def read_best_hyperparameters(best_hyperparameters_uri: str) -> dict[str, Any]:
    """Reads the best trial's hyperparameter values from the Tuner's ``best_hyperparameters`` artifact.

    Args:
        best_hyperparameters_uri: The URI of the artifact (a directory holding ``best_hyperparameters.txt``).

    Returns:
        The values, by name.

    Raises:
        InvalidArgumentError: If the file is missing or has no values.
    """
    config = _read_json(best_hyperparameters_uri, BEST_HYPERPARAMETERS_FILENAME, BEST_HYPERPARAMETERS_KEY)
    values = config.get("values") if isinstance(config, Mapping) else None
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(
            f"{best_hyperparameters_uri}/{BEST_HYPERPARAMETERS_FILENAME} has no values"
        )
    return dict(values)


def describe_hyperparameters(values: Mapping[str, Any]) -> str:
    """Says a trial's classifier in one line: its layers and learning rate."""
    architecture = ClassifierArchitecture.from_hyperparameter_values(values)
    return f"{describe_blocks(architecture.hidden_blocks)}; learning rate {architecture.learning_rate:.4g}"


def format_trials_lines(
    trials: Sequence[TrialRow], best_values: Mapping[str, Any] | None = None
) -> list[str]:
    """The trials table and the chosen hyperparameters, as lines of text.

    Args:
        trials: The trials (``read_trials_table``).
        best_values: The chosen hyperparameters (``read_best_hyperparameters``), or None.

    Returns:
        A header, one line per trial (best objective marked) and a line with the chosen values.
    """
    lines = [f"Tuner trials ({len(trials)} completed; objective {OBJECTIVE_NAME} on the tuning validation):"]
    for trial in trials:
        objective = f"{trial.objective:.4f}" if trial.objective is not None else "n/a"
        chosen = " (chosen)" if best_values is not None and trial.hyperparameters == dict(best_values) else ""
        lines.append(
            f"  trial {trial.trial_id}: {OBJECTIVE_NAME} {objective}, {trial.status.lower()}{chosen}: "
            f"{describe_hyperparameters(trial.hyperparameters)}"
        )
    if best_values is not None:
        lines.append(f"Chosen hyperparameters: {describe_hyperparameters(best_values)}")
    return lines
