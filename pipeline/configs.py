"""Every setting of the accent pipeline, in one place.

The command line (``pipeline/cli.py``) takes its defaults from here and is the
only place that overrides them. Components never read these constants
directly: the runners pass them in as component parameters, so that a
compiled Kubeflow pipeline carries the values it was compiled with.
"""

from __future__ import annotations

import dataclasses
import os

from components import features

# Name of the pipeline in ML Metadata and in Kubeflow.
PIPELINE_NAME = "accent-recognition"

# YAMNet handle: a TF Hub or Kaggle URL, a local SavedModel directory, or "offline".
YAMNET_HANDLE = "https://tfhub.dev/google/yamnet/1"

# Seed of the offline (untrained, calibrated) YAMNet weights.
OFFLINE_YAMNET_SEED = 0

# Label vocabulary, in label-id order; the last class is for non-speech patches.
CLASS_NAMES: tuple[str, ...] = features.DEFAULT_CLASS_NAMES

# Filename prefix of each accent, mapped to its class name.
ACCENT_CODES: dict[str, str] = dict(features.ACCENT_CODE_TO_NAME)

# How clips are split into train and eval: "speaker" (disjoint) or "utterance" (the reference's).
SPLIT_STRATEGY = "speaker"

# Fraction of speakers (or utterances) that go to the eval split.
EVAL_FRACTION = 0.1

# Seed of the random utterance split; 1337 is the reference example's.
UTTERANCE_SPLIT_SEED = 1337

# Non-speech rule: "auto", "yamnet", "energy" or "none". "auto" picks "yamnet"
# for real YAMNet and "energy" for offline weights, whose top class means nothing.
NON_SPEECH_RULE = "auto"

# Patches quieter than this RMS level (dB relative to full scale) are not speech under "energy".
ENERGY_THRESHOLD_DBFS = -45.0

# Patches sent to YAMNet in one call, gathered across clips.
EMBEDDING_BATCH_PATCHES = 512

# A run stops when more than this fraction of the corpus entries is quarantined.
MAX_BAD_FRACTION = 0.05

# Clips longer than this many seconds are quarantined: OpenSLR-83's clips last a few seconds, and one
# hour-long file would otherwise outweigh the whole corpus in training patches.
MAX_CLIP_SECONDS = 30.0

# Training: the reference example's hyperparameters.
EPOCHS = 100
BATCH_SIZE = 64
LEARNING_RATE = 1.9644e-5

# Epochs without improvement of validation AUC before training stops.
EARLY_STOPPING_PATIENCE = 10

# Lower bound on macro one-vs-rest AUC for a model to be blessed (0.85 suits
# OpenSLR-83 with real YAMNet).
MIN_AUC = 0.85

# A new model is blessed only if its macro AUC is no more than this below the
# latest blessed model's.
MAX_AUC_REGRESSION = 0.0

# Name under which TF Serving serves the model, and its gRPC port.
SERVING_MODEL_NAME = "accent"
SERVING_PORT = 8500

# Address `serve` listens on: this machine only. Pass --host 0.0.0.0 to expose it.
SERVING_HOST = "127.0.0.1"

# Longest audio a Predict may send to `serve`, in seconds of 16 kHz samples.
SERVING_MAX_AUDIO_SECONDS = 600.0

# Most model calls `serve` runs at once; more get RESOURCE_EXHAUSTED. One call already uses every
# core, so more in parallel only add memory; 8 bounds the worst case at 8 ten-minute clips and
# serves the 8 concurrent clients of the serving benchmark.
SERVING_MAX_IN_FLIGHT = 8

# Default Beam arguments for the local DirectRunner: one process, one thread per core. Measured on
# 2 cores (README, Benchmarks), it embeds faster than multi_processing, which pays for every worker
# importing TensorFlow and loading YAMNet, and needs less than half the memory; TensorFlow releases
# the GIL while YAMNet runs. Pass --beam-arg=--direct_running_mode=multi_processing to compare.
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
            raise ValueError(f"CPU and memory requests must be positive, not {self}")
        if self.cpu_request > self.cpu_limit or self.memory_request_gb > self.memory_limit_gb:
            raise ValueError(f"a request cannot exceed its limit: {self}")


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
    "StatisticsGen": StepResources(cpu_request=2, cpu_limit=2, memory_request_gb=4, memory_limit_gb=4),
    "Evaluator": StepResources(cpu_request=2, cpu_limit=2, memory_request_gb=4, memory_limit_gb=4),
}


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """The settings of one pipeline run, with this module's constants as defaults.

    The command line builds one from its flags; ``create_pipeline`` reads it.
    """

    yamnet_handle: str = YAMNET_HANDLE
    class_names: tuple[str, ...] = CLASS_NAMES
    accent_codes: dict[str, str] = dataclasses.field(default_factory=lambda: dict(ACCENT_CODES))
    split_strategy: str = SPLIT_STRATEGY
    eval_fraction: float = EVAL_FRACTION
    split_seed: int = UTTERANCE_SPLIT_SEED
    non_speech_rule: str = NON_SPEECH_RULE
    energy_threshold_dbfs: float = ENERGY_THRESHOLD_DBFS
    embedding_batch_patches: int = EMBEDDING_BATCH_PATCHES
    max_bad_fraction: float = MAX_BAD_FRACTION
    max_clip_seconds: float = MAX_CLIP_SECONDS
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    learning_rate: float = LEARNING_RATE
    early_stopping_patience: int = EARLY_STOPPING_PATIENCE
    min_auc: float = MIN_AUC
    max_auc_regression: float = MAX_AUC_REGRESSION
    beam_pipeline_args: tuple[str, ...] = LOCAL_BEAM_PIPELINE_ARGS

    def __post_init__(self) -> None:
        """Checks the values that a typo could make meaningless."""
        if self.split_strategy not in ("speaker", "utterance"):
            raise ValueError(f"split_strategy must be 'speaker' or 'utterance', not {self.split_strategy!r}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be between 0 and 1, not {self.eval_fraction}")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be between 0 and 1, not {self.max_bad_fraction}")
        if not self.max_clip_seconds > 0.0:
            raise ValueError(f"max_clip_seconds must be positive, not {self.max_clip_seconds}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs and batch_size must be positive, not {self.epochs} and {self.batch_size}"
            )
        if not 0.0 <= self.min_auc <= 1.0:
            raise ValueError(f"min_auc must be between 0 and 1, not {self.min_auc}")
        if features.NOT_SPEECH_CLASS_NAME not in self.class_names:
            raise ValueError(f"class_names must include {features.NOT_SPEECH_CLASS_NAME!r}")
        missing = sorted(set(self.accent_codes.values()) - set(self.class_names))
        if missing:
            raise ValueError(f"accent codes map to classes missing from class_names: {missing}")
