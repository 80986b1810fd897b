"""The corpus limits flow from the command line through the settings to the components."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import cli, configs
from pipeline.pipeline import create_pipeline


def _components(tmp_path: Path, settings: configs.PipelineSettings, quarantine_copy_path: str = "") -> dict:
    pipeline = create_pipeline(
        pipeline_name="test",
        pipeline_root=str(tmp_path / "root"),
        corpus_dir=str(tmp_path / "corpus"),
        corpus_fingerprint="abc",
        serving_model_dir=str(tmp_path / "serving"),
        settings=settings,
        quarantine_copy_path=quarantine_copy_path,
    )
    return {component.id: component for component in pipeline.components}


def test_max_clip_seconds_defaults_to_a_limit_that_fits_openslr_83() -> None:
    assert configs.PipelineSettings().max_clip_seconds == 30.0


def test_max_clip_seconds_flag_reaches_the_embedding_step(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(
        ["run", "--corpus", "c", "--output", "o", "--max-clip-seconds", "12.5", "--max-bad-fraction", "0.2"]
    )
    settings = cli.settings_from_args(args)

    components = _components(tmp_path, settings, quarantine_copy_path="/out/quarantine.csv")

    assert settings.max_clip_seconds == 12.5
    assert components["EmbeddingGen"].exec_properties["max_clip_seconds"] == 12.5
    assert components["CorpusIndexGen"].exec_properties["max_bad_fraction"] == 0.2
    assert components["CorpusIndexGen"].exec_properties["quarantine_copy_path"] == "/out/quarantine.csv"


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_max_clip_seconds_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match="max_clip_seconds"):
        configs.PipelineSettings(max_clip_seconds=value)
