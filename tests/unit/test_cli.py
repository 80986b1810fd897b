import argparse
import dataclasses
import re
from pathlib import Path

import pytest

import components
from components.errors import AccentPipelineError, InvalidArgumentError
from pipeline import cli, configs
from pipeline.output_lock import OutputLockedError


def _parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_run_flags_become_settings() -> None:
    args = _parse(
        "run",
        "--corpus",
        "c",
        "--output",
        "o",
        "--yamnet",
        "offline",
        "--epochs",
        "3",
        "--split",
        "utterance",
        "--min-auc",
        "0.5",
        "--beam-arg=--runner=DataflowRunner",
        "--beam-arg=--region=europe-west2",
    )
    settings = cli.settings_from_args(args)
    assert settings.yamnet_handle == "offline"
    assert settings.epochs == 3 and settings.split_strategy == "utterance" and settings.min_auc == 0.5
    assert settings.beam_pipeline_args == ("--runner=DataflowRunner", "--region=europe-west2")
    assert settings.batch_size == configs.PipelineSettings().batch_size


@pytest.mark.parametrize(
    "command",
    [
        ("run", "--corpus", "c", "--output", "o"),
        ("compile-kubeflow", "--output", "p.yaml", "--image", "i", "--pipeline-root", "gs://b/r"),
    ],
)
def test_every_setting_has_one_flag_whose_default_is_the_fields(command: tuple[str, ...]) -> None:
    defaults = configs.PipelineSettings()
    parsed = vars(_parse(*command))
    for field in dataclasses.fields(configs.PipelineSettings):
        assert field.name in parsed, f"PipelineSettings.{field.name} has no flag"
        assert parsed[field.name] == getattr(defaults, field.name), field.name
    assert cli.settings_from_args(_parse(*command)) == defaults


def test_every_settings_flag_is_a_setting() -> None:
    parser = argparse.ArgumentParser()
    cli.add_settings_arguments(parser)
    field_names = {field.name for field in dataclasses.fields(configs.PipelineSettings)}
    assert set(vars(parser.parse_args([]))) == field_names


def test_list_and_mapping_settings_have_flags() -> None:
    settings = cli.settings_from_args(
        _parse(
            "run",
            "--corpus",
            "c",
            "--output",
            "o",
            "--class-names",
            "Welsh,Irish,Not a speech",
            "--accent-codes",
            "we=Welsh,ir=Irish",
            "--split-seed",
            "7",
        )
    )
    assert settings.class_names == ("Welsh", "Irish", "Not a speech")
    assert settings.accent_codes == {"we": "Welsh", "ir": "Irish"}
    assert settings.split_seed == 7


def test_local_runs_default_to_the_local_beam_arguments() -> None:
    assert configs.PipelineSettings().beam_pipeline_args == ()
    assert configs.LOCAL_BEAM_PIPELINE_ARGS[0] == "--direct_running_mode=multi_threading"


def test_bad_settings_fail_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="eval_fraction"):
        cli.settings_from_args(_parse("run", "--corpus", "c", "--output", "o", "--eval-fraction", "2"))
    exit_code = cli.main(
        ["run", "--corpus", str(tmp_path), "--output", str(tmp_path / "o"), "--eval-fraction", "2"]
    )
    assert exit_code == 2
    assert not (tmp_path / "o").exists()
    _assert_one_error_line(capsys, "run", "eval_fraction")


def _assert_one_error_line(capsys: pytest.CaptureFixture[str], command: str, text: str) -> None:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("accent-pipeline")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"accent-pipeline {command}: error: ") and text in lines[0], lines[0]


def _fail_every_handler_with(error: BaseException, monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes every subcommand's handler raise ``error`` once its arguments are parsed."""
    parser = cli.build_parser()
    real_parse_args = parser.parse_args

    def handler(args: argparse.Namespace) -> None:
        raise error

    def parse_args(argv: list[str]) -> argparse.Namespace:
        args = real_parse_args(argv)
        args.handler = handler
        return args

    monkeypatch.setattr(parser, "parse_args", parse_args)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)


# One argument line per subcommand that main accepts.
_COMMANDS: dict[str, list[str]] = {
    "demo-corpus": ["demo-corpus", "d"],
    "run": ["run", "--corpus", "c", "--output", "o"],
    "export-yamnet": ["export-yamnet", "--output", "o"],
    "serve": ["serve", "--model-base-path", "m"],
    "predict": ["predict", "f.wav"],
    "compile-kubeflow": [
        "compile-kubeflow",
        "--output",
        "p.yaml",
        "--image",
        "i",
        "--pipeline-root",
        "gs://b/r",
    ],
    "submit-kubeflow": ["submit-kubeflow", "p.yaml", "--host", "http://h"],
}


@pytest.mark.parametrize("command", sorted(_COMMANDS))
@pytest.mark.parametrize(
    ("error", "exit_code"),
    [
        (InvalidArgumentError("bad flag value\nsecond line"), 2),
        (AccentPipelineError("the run stopped"), 1),
        (OutputLockedError(Path("/out"), None), 75),
        (RuntimeError("an unexpected failure"), 1),
    ],
)
def test_main_maps_each_error_to_its_exit_code_and_one_line(
    command: str,
    error: Exception,
    exit_code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _fail_every_handler_with(error, monkeypatch)
    assert cli.main(_COMMANDS[command]) == exit_code
    error_text = capsys.readouterr().err
    assert "Traceback" not in error_text
    first_line = " ".join(str(error).split()).split(" (")[0][:20]
    lines = [line for line in error_text.splitlines() if line.startswith("accent-pipeline")]
    assert len(lines) == 1 and lines[0].startswith(f"accent-pipeline {command}: error: ")
    assert first_line in lines[0]
    if not isinstance(error, AccentPipelineError):
        assert "run with --verbose for the traceback" in error_text


def test_verbose_shows_the_traceback_of_an_unexpected_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_every_handler_with(RuntimeError("boom"), monkeypatch)
    assert cli.main(["--verbose", "demo-corpus", "d"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_real_errors_of_subcommands_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo-corpus", str(tmp_path / "d"), "--clips-per-speaker", "0"]) == 2
    _assert_one_error_line(capsys, "demo-corpus", "clips_per_speaker")
    assert (
        cli.main(["export-yamnet", "--output", str(tmp_path / "y"), "--weights", str(tmp_path / "w.h5")]) == 2
    )
    _assert_one_error_line(capsys, "export-yamnet", "--class-map")
    assert cli.main(["serve", "--model-base-path", str(tmp_path / "absent")]) == 2
    _assert_one_error_line(capsys, "serve", "not a directory")


def test_no_component_imports_the_pipeline_package() -> None:
    components_dir = Path(components.__file__).parent
    importers = [
        str(path.relative_to(components_dir))
        for path in components_dir.rglob("*.py")
        if re.search(r"^\s*(from pipeline\b|import pipeline\b)", path.read_text(), re.MULTILINE)
    ]
    assert importers == []
