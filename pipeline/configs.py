"""The pipeline-level settings of the accent pipeline, in one place.

``PipelineSettings`` holds every setting of a run and is the only source of
their defaults; its ``__post_init__`` is the only place they are checked. The
command line (``pipeline/cli.py``) gives each field one flag, whose default is
the field's. Adding a setting is one field here plus its flag.

Knobs that a component owns live next to it, and the fields here take their
defaults from there: the Trainer's hyperparameters (``components/trainer/config.py``,
``TrainerConfig``), YAMNet's (``components/yamnet/defaults.py``) and serving's
(``components/serving/defaults.py``). Components never import this package:
the runners pass settings in as component parameters, so a compiled Kubeflow
pipeline carries the values it was compiled with.
"""

from __future__ import annotations

import dataclasses
import os

from components import features
from components.corpus.split import SPLIT_STRATEGIES
from components.embedding.speech import RULES as NON_SPEECH_RULES
from components.errors import InvalidArgumentError
from components.trainer.config import TrainerConfig
from components.tuner.config import TunerConfig
from components.yamnet import defaults as yamnet_defaults

# Name of the pipeline in ML Metadata and in Kubeflow.
PIPELINE_NAME = "accent-recognition"

# Name under which the Pusher writes the model (OUT/serving/<name>/) and TF Serving serves it.
SERVING_MODEL_NAME = "accent"

# Beam arguments of a local run that passes none: the DirectRunner in one process with one thread per
# core. TensorFlow releases the GIL while YAMNet runs, so threads embed in parallel, without the cost of
# every multi-processing worker importing TensorFlow and loading YAMNet (README, Benchmarks).
LOCAL_BEAM_PIPELINE_ARGS: tuple[str, ...] = (
    "--direct_running_mode=multi_threading",
    f"--direct_num_workers={os.cpu_count() or 1}",
)


@dataclasses.dataclass(frozen=True)
class StepResources:
    """CPU and memory of one Kubeflow step's pod: Kubernetes requests and limits.

    Memory is in gigabytes (10^9 bytes), the unit of KFP's PipelineSpec.
    """

    cpu_request: float
    cpu_limit: float
    memory_request_gb: float
    memory_limit_gb: float

    def __post_init__(self) -> None:
        """Checks that every amount is positive and no request exceeds its limit."""
        if min(self.cpu_request, self.memory_request_gb) <= 0:
            raise InvalidArgumentError(f"CPU and memory requests must be positive, not {self}")
        if self.cpu_request > self.cpu_limit or self.memory_request_gb > self.memory_limit_gb:
            raise InvalidArgumentError(f"a request cannot exceed its limit: {self}")


# Kubeflow: where a compiled pipeline can run, a self-hosted Kubeflow Pipelines 2.x ("kfp") or
# Vertex AI Pipelines ("vertex"), and the default.
KUBEFLOW_TARGETS = ("kfp", "vertex")
KUBEFLOW_TARGET = "kfp"

# Kubeflow: the pod resources of a step not named in KUBEFLOW_STEP_RESOURCES.
KUBEFLOW_DEFAULT_RESOURCES = StepResources(cpu_request=1, cpu_limit=2, memory_request_gb=2, memory_limit_gb=4)

# Kubeflow: the heavy steps. EmbeddingGen runs YAMNet over the corpus and the Trainer fits and
# exports the model; both use every CPU they get (Beam workers, TensorFlow threads), so their
# requests equal their limits (Guaranteed QoS).
KUBEFLOW_STEP_RESOURCES: dict[str, StepResources] = {
    "EmbeddingGen": StepResources(cpu_request=4, cpu_limit=4, memory_request_gb=8, memory_limit_gb=8),
    "Trainer": StepResources(cpu_request=4, cpu_limit=4, memory_request_gb=8, memory_limit_gb=8),
    # The Tuner trains one model per trial, like the Trainer, many times over.
    "Tuner": StepResources(cpu_request=4, cpu_limit=4, memory_request_gb=8, memory_limit_gb=8),
    "StatisticsGen": StepResources(cpu_request=2, cpu_limit=2, memory_request_gb=4, memory_limit_gb=4),
    "Evaluator": StepResources(cpu_request=2, cpu_limit=2, memory_request_gb=4, memory_limit_gb=4),
}


# The defaults of the Trainer's hyperparameters.
_TRAINER_DEFAULTS = TrainerConfig()

# The defaults of the Tuner's search.
_TUNER_DEFAULTS = TunerConfig()


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """The settings of one pipeline run, each with its default.

    The command line builds one from its flags; ``create_pipeline`` reads it.

    Attributes:
        yamnet_handle: A TF Hub or Kaggle URL, a local or gs:// SavedModel directory, or
            ``components.yamnet.weights.OFFLINE_WEIGHTS`` for untrained weights.
        class_names: Label vocabulary, in label-id order; the last class is for non-speech patches.
        accent_codes: Filename prefix of each accent, mapped to its class name.
        split_strategy: How clips are split into train and eval: "speaker" (disjoint) or
            "utterance" (the reference example's).
        eval_fraction: Fraction of speakers (or utterances) that go to the eval split.
        split_seed: Seed of the utterance split; 1337 is the reference example's.
        non_speech_rule: "auto", "yamnet", "energy" or "none". "auto" picks "yamnet" for real
            YAMNet and "energy" for offline weights, whose top class means nothing.
        energy_threshold_dbfs: Under "energy", patches quieter than this RMS level (dB relative
            to full scale) are not speech.
        embedding_batch_patches: Patches sent to YAMNet in one call, gathered across clips.
        max_bad_fraction: A run stops when more than this fraction of the corpus is quarantined.
        max_clip_seconds: Longer clips are quarantined: OpenSLR-83's clips last a few seconds, and
            one hour-long file would otherwise outweigh the whole corpus in training patches.
        epochs: Most training epochs.
        batch_size: Patches per training batch.
        learning_rate: Adam's learning rate.
        early_stopping_patience: Epochs without improvement of validation AUC before training stops.
        min_auc: Lower bound on macro one-vs-rest AUC for a model to be blessed; 0.85 suits
            OpenSLR-83 with real YAMNet.
        max_auc_regression: A new model is blessed only if its macro AUC is no more than this
            below the latest blessed model's.
        beam_pipeline_args: Beam pipeline arguments; none means the orchestrator's default
            (``LOCAL_BEAM_PIPELINE_ARGS`` for a local run).
        tune: Whether a Tuner searches the classifier's hyperparameters (KerasTuner Bayesian
            optimisation on a speaker-disjoint part of the train split) before the Trainer, which
            then builds the best trial's model instead of the reference.
        tuner_trials: Trials of the search (models built and trained).
        tuner_epochs: Training epochs of each trial.
    """

    yamnet_handle: str = yamnet_defaults.TFHUB_HANDLE
    class_names: tuple[str, ...] = _TRAINER_DEFAULTS.class_names
    accent_codes: dict[str, str] = dataclasses.field(
        default_factory=lambda: dict(features.ACCENT_CODE_TO_NAME)
    )
    split_strategy: str = "speaker"
    eval_fraction: float = 0.1
    split_seed: int = 1337
    non_speech_rule: str = "auto"
    energy_threshold_dbfs: float = -45.0
    embedding_batch_patches: int = yamnet_defaults.EMBEDDING_BATCH_PATCHES
    max_bad_fraction: float = 0.05
    max_clip_seconds: float = 30.0
    epochs: int = _TRAINER_DEFAULTS.epochs
    batch_size: int = _TRAINER_DEFAULTS.batch_size
    learning_rate: float = _TRAINER_DEFAULTS.learning_rate
    early_stopping_patience: int = _TRAINER_DEFAULTS.early_stopping_patience
    min_auc: float = 0.85
    max_auc_regression: float = 0.0
    beam_pipeline_args: tuple[str, ...] = ()
    tune: bool = False
    tuner_trials: int = _TUNER_DEFAULTS.max_trials
    tuner_epochs: int = _TUNER_DEFAULTS.epochs_per_trial

    def __post_init__(self) -> None:
        """Checks every setting, before anything runs.

        Raises:
            InvalidArgumentError: A ``ValueError`` naming the setting that is wrong.
        """
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "beam_pipeline_args", tuple(self.beam_pipeline_args))
        if not self.yamnet_handle:
            raise InvalidArgumentError("yamnet_handle must not be empty")
        if self.split_strategy not in SPLIT_STRATEGIES:
            raise InvalidArgumentError(
                f"split_strategy must be one of {', '.join(SPLIT_STRATEGIES)}, not {self.split_strategy!r}"
            )
        if not 0.0 < self.eval_fraction < 1.0:
            raise InvalidArgumentError(f"eval_fraction must be between 0 and 1, not {self.eval_fraction}")
        if self.non_speech_rule not in NON_SPEECH_RULES:
            raise InvalidArgumentError(
                f"non_speech_rule must be one of {', '.join(NON_SPEECH_RULES)}, not {self.non_speech_rule!r}"
            )
        if self.embedding_batch_patches < 1:
            raise InvalidArgumentError(
                f"embedding_batch_patches must be positive, not {self.embedding_batch_patches}"
            )
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise InvalidArgumentError(
                f"max_bad_fraction must be between 0 and 1, not {self.max_bad_fraction}"
            )
        if not self.max_clip_seconds > 0.0:
            raise InvalidArgumentError(f"max_clip_seconds must be positive, not {self.max_clip_seconds}")
        if not 0.0 <= self.min_auc <= 1.0:
            raise InvalidArgumentError(f"min_auc must be between 0 and 1, not {self.min_auc}")
        if features.NOT_SPEECH_CLASS_NAME not in self.class_names:
            raise InvalidArgumentError(f"class_names must include {features.NOT_SPEECH_CLASS_NAME!r}")
        missing = sorted(set(self.accent_codes.values()) - set(self.class_names))
        if missing:
            raise InvalidArgumentError(f"accent codes map to classes missing from class_names: {missing}")
        if not isinstance(self.tune, bool):
            raise InvalidArgumentError(f"tune must be True or False, not {self.tune!r}")
        for name in ("tuner_trials", "tuner_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, not {value!r}")
        self.trainer_config()
        self.tuner_config()

    def trainer_config(self) -> TrainerConfig:
        """The Trainer's hyperparameters of this run.

        Raises:
            InvalidArgumentError: If one of them is invalid.
        """
        return TrainerConfig(
            class_names=self.class_names,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            early_stopping_patience=self.early_stopping_patience,
        )

    def tuner_config(self) -> TunerConfig:
        """The Tuner's search of this run (built, and checked, whether or not ``tune`` is set).

        Raises:
            InvalidArgumentError: If ``tuner_trials`` or ``tuner_epochs`` is not a positive integer.
        """
        return TunerConfig(
            class_names=self.class_names,
            batch_size=self.batch_size,
            max_trials=self.tuner_trials,
            epochs_per_trial=self.tuner_epochs,
        )
