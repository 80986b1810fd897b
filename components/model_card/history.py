"""The Trainer's per-epoch history and hyperparameters: ``training_history.json`` in the model run dir.

``run_fn`` writes it right after ``model.fit``; the model card reads it. Writer and
reader live here together, so the file's layout is defined once. This module
imports nothing heavy (no Keras, no matplotlib): the Trainer imports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

# File, in FnArgs.model_run_dir, of the per-epoch history and the hyperparameters.
TRAINING_HISTORY_FILENAME = "training_history.json"


@dataclasses.dataclass(frozen=True)
class TrainingHistory:
    """What one ``model.fit`` did, and with which settings.

    Attributes:
        metrics: Keras history, metric name (``loss``, ``accuracy``, ``auc``, ``val_loss``, ...) to one
            value per epoch run.
        optimizer: The optimizer's Keras config (``name``, ``learning_rate``, ``beta_1``, ``beta_2``,
            ``epsilon``, ...), JSON-compatible values only.
        epochs: Most epochs asked for.
        batch_size: Patches per batch.
        class_names: The label vocabulary, in id order.
        class_weights: Class weight of each class name.
        early_stopping_monitor: Metric watched by early stopping.
        early_stopping_patience: Epochs without improvement before stopping.
        seed: Random seed of the run.
    """

    metrics: Mapping[str, Sequence[float]]
    optimizer: Mapping[str, Any]
    epochs: int
    batch_size: int
    class_names: Sequence[str]
    class_weights: Mapping[str, float]
    early_stopping_monitor: str
    early_stopping_patience: int
    seed: int

    @property
    def epochs_run(self) -> int:
        """Epochs actually run (early stopping may end training before ``epochs``)."""
        return max((len(values) for values in self.metrics.values()), default=0)

    def to_json_dict(self) -> dict[str, Any]:
        """Returns the JSON form (non-finite numbers as None)."""
        content = dataclasses.asdict(self)
        content["metrics"] = {
            name: [_finite_or_none(value) for value in values] for name, values in self.metrics.items()
        }
        content["class_names"] = list(self.class_names)
        content["optimizer"] = {key: _jsonable(value) for key, value in self.optimizer.items()}
        return content

    @classmethod
    def from_json_dict(cls, content: Mapping[str, Any]) -> TrainingHistory:
        """Builds the history from ``to_json_dict``'s form.

        Raises:
            ValueError: If a field is missing or the metric lists are not lists of numbers.
        """
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in content]
        if missing:
            raise ValueError(f"Training history lacks {missing}")
        metrics = {
            str(name): [float("nan") if value is None else float(value) for value in values]
            for name, values in content["metrics"].items()
        }
        return cls(
            metrics=metrics,
            optimizer=dict(content["optimizer"]),
            epochs=int(content["epochs"]),
            batch_size=int(content["batch_size"]),
            class_names=tuple(content["class_names"]),
            class_weights={str(key): float(value) for key, value in content["class_weights"].items()},
            early_stopping_monitor=str(content["early_stopping_monitor"]),
            early_stopping_patience=int(content["early_stopping_patience"]),
            seed=int(content["seed"]),
        )


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _jsonable(value: Any) -> Any:
    """Returns a JSON-compatible form of an optimizer config value (numbers, strings, bools, None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def history_path(model_run_dir: str) -> str:
    """Returns the path of the history file in a model run dir (local path or URI)."""
    return f"{model_run_dir.rstrip('/')}/{TRAINING_HISTORY_FILENAME}"


def write_training_history(
    model_run_dir: str,
    metrics: Mapping[str, Sequence[float]],
    optimizer_config: Mapping[str, Any],
    *,
    epochs: int,
    batch_size: int,
    class_names: Sequence[str],
    class_weights: Mapping[int, float],
    early_stopping_monitor: str,
    early_stopping_patience: int,
    seed: int,
) -> TrainingHistory:
    """Writes ``training_history.json`` into the model run dir.

    Args:
        model_run_dir: ``FnArgs.model_run_dir`` (local path or filesystem URI).
        metrics: ``keras.callbacks.History.history``.
        optimizer_config: ``model.optimizer.get_config()``.
        epochs: Most epochs asked for.
        batch_size: Patches per batch.
        class_names: The label vocabulary, in id order.
        class_weights: Class weight by class id, as passed to ``fit``.
        early_stopping_monitor: Metric watched by early stopping.
        early_stopping_patience: Patience of early stopping.
        seed: Random seed of the run.

    Returns:
        The history written.
    """
    history = TrainingHistory(
        metrics={name: [float(value) for value in values] for name, values in metrics.items()},
        optimizer=dict(optimizer_config),
        epochs=int(epochs),
        batch_size=int(batch_size),
        class_names=tuple(class_names),
        class_weights={class_names[index]: float(weight) for index, weight in class_weights.items()},
        early_stopping_monitor=early_stopping_monitor,
        early_stopping_patience=int(early_stopping_patience),
        seed=int(seed),
    )
    import tensorflow as tf

    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(history_path(model_run_dir), "w") as history_file:
        history_file.write(json.dumps(history.to_json_dict(), indent=2, allow_nan=False) + "\n")
    return history


def read_training_history(model_run_dir: str) -> TrainingHistory:
    """Reads ``training_history.json`` of a model run dir.

    Raises:
        FileNotFoundError: If the run dir has no history (a Trainer run before the file existed).
        ValueError: If the file is malformed.
    """
    import tensorflow as tf

    path = history_path(model_run_dir)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"No training history at {path}")
    with tf.io.gfile.GFile(path) as history_file:
        return TrainingHistory.from_json_dict(json.loads(history_file.read()))
