"""Version discovery, readiness, hot swap and load failures of the serving ModelManager.

The manager is driven one poll at a time with ``poll_once()``, so these tests
need no sleeping.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2

from components import features
from components.serving import model_manager, versions
from components.serving.model_manager import ModelManager
from tests import serving_models

MODEL_NAME = "accent"
State = get_model_status_pb2.ModelVersionStatus


def _served_version(manager: ModelManager) -> int | None:
    current = manager.current()
    return None if current is None else current.version


def _poll(manager: ModelManager, times: int) -> None:
    for _ in range(times):
        manager.poll_once()


def _accent(loaded_model: model_manager.LoadedModel, waveform: np.ndarray) -> str:
    outputs = loaded_model.signatures[features.SERVING_SIGNATURE](waveform=tf.constant(waveform))
    return outputs[features.ACCENT_OUTPUT_KEY].numpy().decode("utf-8")


def test_version_directory_names() -> None:
    assert versions.is_version_directory_name("1")
    assert versions.is_version_directory_name("1700000000")
    for name in ("v1", "1.tmp", "-1", "", "\uff11", ".pushing-2"):
        assert not versions.is_version_directory_name(name), name


def test_the_highest_version_is_served_after_two_identical_polls(tmp_path: Path, model_cache: Path) -> None:
    for version in (1, 2):
        serving_models.push_cached_version(model_cache, tmp_path, version)
    shutil.copytree(serving_models.cached_saved_model(model_cache, 3), tmp_path / "latest")
    manager = ModelManager(tmp_path, MODEL_NAME)

    manager.poll_once()
    assert manager.current() is None

    manager.poll_once()
    current = manager.current()
    assert current is not None
    assert current.version == 2
    assert current.name == MODEL_NAME
    assert _accent(current, serving_models.make_waveform(1.0)) == serving_models.expected_accent(2)
    assert set(current.signature_def_map.signature_def) >= {features.SERVING_SIGNATURE}
    assert [(status.version, status.state) for status in manager.version_statuses()] == [(2, State.AVAILABLE)]


def test_a_half_written_version_without_variables_is_not_loaded(tmp_path: Path, model_cache: Path) -> None:
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    manager = ModelManager(tmp_path, MODEL_NAME)
    _poll(manager, 2)
    assert _served_version(manager) == 1

    half_written = tmp_path / "2"
    half_written.mkdir()
    shutil.copy(serving_models.cached_saved_model(model_cache, 2) / "saved_model.pb", half_written)
    _poll(manager, 5)
    assert _served_version(manager) == 1
    assert [status.version for status in manager.version_statuses()] == [1]

    shutil.copytree(
        serving_models.cached_saved_model(model_cache, 2) / "variables", half_written / "variables"
    )
    manager.poll_once()
    assert _served_version(manager) == 1
    manager.poll_once()
    assert _served_version(manager) == 2


def test_a_version_whose_files_change_between_polls_waits(tmp_path: Path, model_cache: Path) -> None:
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    manager = ModelManager(tmp_path, MODEL_NAME)
    _poll(manager, 2)

    source = serving_models.cached_saved_model(model_cache, 2)
    growing = tmp_path / "2"
    shutil.copytree(source, growing)
    data_file = growing / "variables" / "variables.data-00000-of-00001"
    full_data = data_file.read_bytes()
    data_file.write_bytes(full_data[: len(full_data) // 2])
    manager.poll_once()
    data_file.write_bytes(full_data)
    manager.poll_once()
    assert _served_version(manager) == 1

    manager.poll_once()
    assert _served_version(manager) == 2


def test_the_old_version_keeps_answering_requests_that_hold_it(tmp_path: Path, model_cache: Path) -> None:
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    manager = ModelManager(tmp_path, MODEL_NAME)
    _poll(manager, 2)
    in_flight = manager.current()
    assert in_flight is not None

    serving_models.push_cached_version(model_cache, tmp_path, 2)
    _poll(manager, 2)
    shutil.rmtree(tmp_path / "1")

    assert _served_version(manager) == 2
    waveform = serving_models.make_waveform(1.5)
    assert _accent(in_flight, waveform) == serving_models.expected_accent(1)
    assert _accent(manager.current(), waveform) == serving_models.expected_accent(2)
    statuses = {status.version: status.state for status in manager.version_statuses()}
    assert statuses == {2: State.AVAILABLE, 1: State.END}


def _load_attempts(caplog: pytest.LogCaptureFixture, version: int) -> int:
    prefix = f"Loading version {version} of model"
    return sum(
        record.levelno == logging.INFO and record.getMessage().startswith(prefix) for record in caplog.records
    )


def test_a_version_that_fails_to_load_is_retried_when_fixed(
    tmp_path: Path, model_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=model_manager.__name__)
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    manager = ModelManager(tmp_path, MODEL_NAME)
    _poll(manager, 2)

    broken = tmp_path / "2"
    shutil.copytree(serving_models.cached_saved_model(model_cache, 2), broken)
    saved_model_bytes = (broken / "saved_model.pb").read_bytes()
    (broken / "saved_model.pb").write_bytes(saved_model_bytes[: len(saved_model_bytes) // 3])
    _poll(manager, 2)

    assert _served_version(manager) == 1
    statuses = {status.version: status for status in manager.version_statuses()}
    assert statuses[1].state == State.AVAILABLE
    assert statuses[2].state == State.END
    assert statuses[2].error_code != 0
    assert statuses[2].error_message

    # Unchanged files are not loaded again at every poll.
    assert _load_attempts(caplog, 2) == 1
    _poll(manager, 3)
    assert _load_attempts(caplog, 2) == 1
    assert _served_version(manager) == 1

    shutil.copy(
        serving_models.cached_saved_model(model_cache, 2) / "saved_model.pb", broken / "saved_model.pb"
    )
    _poll(manager, 2)
    assert _served_version(manager) == 2
    statuses = {status.version: status for status in manager.version_statuses()}
    assert statuses[2].state == State.AVAILABLE
    assert statuses[2].error_message == ""


def test_a_failed_version_is_retried_after_the_back_off(
    tmp_path: Path, model_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=model_manager.__name__)
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    broken = tmp_path / "2"
    shutil.copytree(serving_models.cached_saved_model(model_cache, 2), broken)
    (broken / "variables" / "variables.data-00000-of-00001").write_bytes(b"truncated")
    manager = ModelManager(tmp_path, MODEL_NAME, load_retry_seconds=0.0)

    _poll(manager, 2)
    assert _served_version(manager) == 1
    assert {status.version: status.state for status in manager.version_statuses()}[2] == State.END

    assert _load_attempts(caplog, 2) == 1

    # With no back-off, every poll retries; each attempt fails while the files stay broken.
    _poll(manager, 2)
    assert _load_attempts(caplog, 2) == 3
    assert _served_version(manager) == 1
    assert {status.version: status.state for status in manager.version_statuses()}[2] == State.END


def test_removing_the_served_version_rolls_back_to_the_previous_one(
    tmp_path: Path, model_cache: Path
) -> None:
    for version in (1, 2):
        serving_models.push_cached_version(model_cache, tmp_path, version)
    manager = ModelManager(tmp_path, MODEL_NAME)
    _poll(manager, 2)
    assert _served_version(manager) == 2

    shutil.rmtree(tmp_path / "2")
    _poll(manager, 1)
    assert _served_version(manager) == 1


def test_the_served_version_stays_when_the_base_path_empties(tmp_path: Path, model_cache: Path) -> None:
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    manager = ModelManager(tmp_path, MODEL_NAME)
    _poll(manager, 2)
    shutil.rmtree(tmp_path / "1")
    _poll(manager, 2)
    assert _served_version(manager) == 1


def test_a_missing_base_path_serves_nothing_until_it_appears(tmp_path: Path, model_cache: Path) -> None:
    base_path = tmp_path / "not-yet"
    manager = ModelManager(base_path, MODEL_NAME)
    _poll(manager, 2)
    assert manager.current() is None
    serving_models.push_cached_version(model_cache, base_path, 4)
    _poll(manager, 2)
    assert _served_version(manager) == 4


def test_the_polling_thread_picks_up_a_pushed_version(tmp_path: Path, model_cache: Path) -> None:
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    manager = ModelManager(tmp_path, MODEL_NAME, poll_wait_seconds=0.05)
    manager.start()
    try:
        assert manager.wait_for_version(1, timeout_seconds=20.0) is not None
        serving_models.push_cached_version(model_cache, tmp_path, 2)
        assert manager.wait_for_version(2, timeout_seconds=20.0) is not None
    finally:
        manager.stop()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model_name": ""}, "model_name"),
        ({"poll_wait_seconds": 0.0}, "poll_wait_seconds"),
        ({"load_retry_seconds": -1.0}, "load_retry_seconds"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelManager(tmp_path, **{"model_name": MODEL_NAME, **arguments})


def test_a_version_number_beyond_int64_is_ignored_with_one_warning(
    tmp_path: Path, model_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    serving_models.push_cached_version(model_cache, tmp_path, 1)
    out_of_range_name = str(2**63)
    shutil.copytree(serving_models.cached_saved_model(model_cache, 2), tmp_path / out_of_range_name)
    shutil.copytree(serving_models.cached_saved_model(model_cache, 3), tmp_path / str(2**63 - 1))
    manager = ModelManager(tmp_path, MODEL_NAME)
    caplog.set_level(logging.WARNING, logger=model_manager.__name__)

    _poll(manager, 4)

    assert _served_version(manager) == 2**63 - 1
    assert [status.version for status in manager.version_statuses()] == [2**63 - 1]
    warnings = [record.getMessage() for record in caplog.records if out_of_range_name in record.getMessage()]
    assert len(warnings) == 1
    assert "int64" in warnings[0]


def test_a_version_is_loaded_from_the_directory_its_name_stands_for(
    tmp_path: Path, model_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As in TF Serving: "002" is version 2; of "03" and "3", "3" (the name sorting last) is version 3.
    shutil.copytree(serving_models.cached_saved_model(model_cache, 2), tmp_path / "002")
    shutil.copytree(serving_models.cached_saved_model(model_cache, 1), tmp_path / "03")
    shutil.copytree(serving_models.cached_saved_model(model_cache, 3), tmp_path / "3")
    manager = ModelManager(tmp_path, MODEL_NAME)
    caplog.set_level(logging.WARNING, logger=model_manager.__name__)

    _poll(manager, 3)

    current = manager.current()
    assert current is not None
    assert (current.version, current.path) == (3, tmp_path / "3")
    assert _accent(current, serving_models.make_waveform(1.0)) == serving_models.expected_accent(3)
    assert len([record for record in caplog.records if "'03' is not a version" in record.getMessage()]) == 1

    shutil.rmtree(tmp_path / "3")
    shutil.rmtree(tmp_path / "03")
    _poll(manager, 2)
    current = manager.current()
    assert current is not None
    assert (current.version, current.path) == (2, tmp_path / "002")
