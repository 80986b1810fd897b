"""The rules of KFP's driver that the Kubeflow emulation applies, checked on their own."""

from __future__ import annotations

import pytest

from tests import kfp_emulator

CONDITION = "(inputs.artifacts['{key}'].artifacts[0].metadata['blessed'] == 1.0)"


def _executor_input(blessed: float) -> dict:
    artifact = {"name": "12", "uri": "minio://b/blessing", "metadata": {"blessed": blessed}}
    return {"inputs": {"artifacts": {"model_blessing": {"artifacts": [artifact]}}}}


@pytest.mark.parametrize(("blessed", "expected"), [(1.0, True), (0.0, False)])
def test_a_condition_on_an_input_is_evaluated(blessed: float, expected: bool) -> None:
    condition = CONDITION.format(key="model_blessing")
    assert kfp_emulator.evaluate_condition(condition, _executor_input(blessed)) is expected
    assert kfp_emulator.evaluate_condition(f"!{condition} || false", _executor_input(blessed)) is not expected


def test_a_condition_naming_a_missing_key_fails_the_task() -> None:
    with pytest.raises(kfp_emulator.TaskFailedError, match=r"no such key: _Evaluator\.blessing"):
        kfp_emulator.evaluate_condition(CONDITION.format(key="_Evaluator.blessing"), _executor_input(1.0))


def test_parameters_come_from_constant_only() -> None:
    assert kfp_emulator.resolve_parameter("epochs", {"runtimeValue": {"constant": 8.0}}) == 8.0
    with pytest.raises(kfp_emulator.TaskFailedError, match="constantValue not implemented"):
        kfp_emulator.resolve_parameter("epochs", {"runtimeValue": {"constantValue": {"intValue": 8}}})


def test_a_resolver_executor_refuses_the_run() -> None:
    spec = {"deploymentSpec": {"executors": {"a": {"container": {}}, "r": {"resolver": {}}}}}
    with pytest.raises(kfp_emulator.RunRefusedError, match="non-container and non-importer"):
        kfp_emulator.check_executors(spec)


def test_metadata_is_stored_as_mlmd_stores_it() -> None:
    assert kfp_emulator._mlmd_value(True) == 1.0
    assert kfp_emulator._mlmd_value(3) == 3.0
    assert kfp_emulator._mlmd_value({"train": 1}) == {"struct": {"train": 1}}
    assert kfp_emulator._mlmd_value("x") == "x"
