"""The --tune, --tuner-trials and --tuner-epochs settings: defaults, flags, checks, the Tuner's config."""

from __future__ import annotations

import pytest

from components.errors import InvalidArgumentError
from components.tuner.config import TunerConfig
from pipeline import cli, configs


def test_tuning_is_off_by_default_with_a_budget_of_20_trials() -> None:
    settings = configs.PipelineSettings()
    assert settings.tune is False
    assert settings.tuner_trials == 20
    assert settings.tuner_epochs == TunerConfig().epochs_per_trial


def test_the_flags_of_run_and_compile_kubeflow_set_the_search() -> None:
    parser = cli.build_parser()
    for command in (
        ["run", "--corpus", "c", "--output", "o"],
        ["compile-kubeflow", "--output", "p.yaml", "--image", "i", "--pipeline-root", "gs://b"],
    ):
        arguments = parser.parse_args([*command, "--tune", "--tuner-trials", "3", "--tuner-epochs", "2"])
        settings = cli.settings_from_args(arguments)
        assert (settings.tune, settings.tuner_trials, settings.tuner_epochs) == (True, 3, 2)
        untuned = cli.settings_from_args(parser.parse_args(command))
        assert untuned.tune is False


def test_the_tuner_config_carries_the_budget_vocabulary_and_batch_size() -> None:
    settings = configs.PipelineSettings(tuner_trials=4, tuner_epochs=3, batch_size=32)
    assert settings.tuner_config() == TunerConfig(
        class_names=settings.class_names, batch_size=32, max_trials=4, epochs_per_trial=3
    )


@pytest.mark.parametrize(
    ("field", "value"), [("tuner_trials", 0), ("tuner_epochs", -1), ("tuner_trials", 2.5), ("tune", "yes")]
)
def test_bad_search_settings_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        configs.PipelineSettings(**{field: value})


def test_a_bad_budget_on_the_command_line_exits_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = cli.main(["run", "--corpus", "c", "--output", "o", "--tune", "--tuner-trials", "0"])
    assert exit_code == 2
    assert "tuner_trials" in capsys.readouterr().err


def test_the_tuner_has_its_own_kubeflow_resources() -> None:
    resources = configs.KUBEFLOW_STEP_RESOURCES["Tuner"]
    assert resources.cpu_request > configs.KUBEFLOW_DEFAULT_RESOURCES.cpu_request
    assert resources.memory_request_gb > configs.KUBEFLOW_DEFAULT_RESOURCES.memory_request_gb
