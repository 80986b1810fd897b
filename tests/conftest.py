"""Shared test settings (CPU only, quiet TensorFlow) and session-wide fixtures."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def offline_yamnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline (untrained, seeded, calibrated) YAMNet SavedModel, exported once per session."""
    from components.yamnet import handle

    return handle.resolve_yamnet_handle("offline", offline_cache_dir=tmp_path_factory.mktemp("yamnet_cache"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``tests/serving_models.py`` caches the small served test models, once per session."""
    return tmp_path_factory.getbasetemp() / "serving_models"
