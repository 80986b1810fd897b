"""Once-per-session objects of the trainer and evaluation tests.

``trained_run`` writes a small Examples artifact (4 accents out of 7 classes,
noisy but learnable Gaussian embeddings), trains it for 2 epochs with
``run_fn`` on the real offline YAMNet export, and keeps the result for every
test of the session.
"""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
from tfx import v1 as tfx

from components import features
from components.trainer import model
from components.trainer.config import TrainerConfig
from tests import example_builders
from tests.unit import yamnet_testing

PRESENT_ACCENTS = ("Midlands", "Northern", "Scottish", "Southern")
# Noise of the synthetic embeddings: the classes overlap, so the AUC is well inside (0.5, 1).
EMBEDDING_NOISE = 2.0
TRAINING_CONFIG = TrainerConfig(
    class_names=features.DEFAULT_CLASS_NAMES,
    epochs=2,
    batch_size=16,
    learning_rate=1e-3,
    early_stopping_patience=2,
).to_custom_config()


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """What one ``run_fn`` call read and wrote."""

    examples_uri: pathlib.Path
    patches: dict[str, list[example_builders.Patch]]
    yamnet_dir: pathlib.Path
    serving_model_dir: pathlib.Path
    model_run_dir: pathlib.Path


_trained_run: dict[str, TrainedRun] = {}


def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """Returns the session's trained and exported model, training it on first use."""
    if "run" not in _trained_run:
        yamnet_dir = yamnet_testing.offline_export_dir(tmp_path_factory)
        root = tmp_path_factory.mktemp("trainer-run")
        examples_uri = root / "examples"
        patches = example_builders.write_examples_artifact(
            examples_uri, accents=PRESENT_ACCENTS, noise=EMBEDDING_NOISE
        )
        fn_args = tfx.components.FnArgs(
            train_files=[example_builders.split_pattern(examples_uri, features.TRAIN_SPLIT)],
            eval_files=[example_builders.split_pattern(examples_uri, features.EVAL_SPLIT)],
            serving_model_dir=str(root / "model" / "Format-Serving"),
            model_run_dir=str(root / "model_run"),
            base_model=str(yamnet_dir),
            custom_config=dict(TRAINING_CONFIG),
        )
        model.run_fn(fn_args)
        _trained_run["run"] = TrainedRun(
            examples_uri=examples_uri,
            patches=patches,
            yamnet_dir=yamnet_dir,
            serving_model_dir=pathlib.Path(fn_args.serving_model_dir),
            model_run_dir=pathlib.Path(fn_args.model_run_dir),
        )
    return _trained_run["run"]
