"""``accent-pipeline report OUT`` and the run summary's card line, on a small ML Metadata store."""

from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import features
from pipeline import card_report, cli, configs, run_summary
from pipeline.pipeline import EVALUATOR_ID, MODEL_CARD_GENERATOR_ID

_COMPLETE = metadata_store_pb2.Execution.COMPLETE


def _record_card_run(output_dir: Path, card_properties: dict[str, str | int | float] | None) -> Path:
    """Records a run as TFX does; with properties, its ModelCardGenerator wrote a card into OUT/card."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(output_dir / card_report.METADATA_FILENAME)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    context_types = {
        name: store.put_context_type(metadata_store_pb2.ContextType(name=name))
        for name in ("pipeline", "pipeline_run", "node")
    }
    run_context = metadata_store_pb2.Context(type_id=context_types["pipeline_run"], name="run-1")
    [run_context.id] = store.put_contexts([run_context])
    card_dir = output_dir / "card"
    steps = [EVALUATOR_ID] + ([MODEL_CARD_GENERATOR_ID] if card_properties is not None else [])
    for step in steps:
        node_context = metadata_store_pb2.Context(
            type_id=context_types["node"], name=f"{configs.PIPELINE_NAME}.{step}"
        )
        execution = metadata_store_pb2.Execution(
            type_id=store.put_execution_type(metadata_store_pb2.ExecutionType(name=step)),
            last_known_state=_COMPLETE,
        )
        artifact_and_events = []
        if step == MODEL_CARD_GENERATOR_ID:
            card = metadata_store_pb2.Artifact(
                type_id=store.put_artifact_type(metadata_store_pb2.ArtifactType(name="components.ModelCard")),
                uri=str(card_dir),
            )
            for name, value in card_properties.items():
                field = {str: "string_value", int: "int_value", float: "double_value"}[type(value)]
                setattr(card.custom_properties[name], field, value)
            event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
            event.path.steps.add().key = "model_card"
            artifact_and_events.append((card, event))
        store.put_execution(execution, artifact_and_events, contexts=[run_context, node_context])
    card_dir.mkdir(parents=True, exist_ok=True)
    (card_dir / "model_card.html").write_text("<html></html>")
    (card_dir / "training_curves.png").write_bytes(b"png")
    return card_dir


_NOT_BLESSED = {
    "model_name": "accent",
    "blessed": 0,
    "blessing_reason": "present_class_macro_auc 0.5012 at least 0.6: failed",
    "yamnet_handle": "offline",
    "yamnet_pretrained": 0,
    "accuracy": 0.25,
    "macro_auc": 0.5012,
    "macro_d_prime": 0.0042,
    "clip_accuracy": 0.3,
    "clip_macro_auc": 0.55,
}


def test_report_prints_the_cards_summary_and_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card_dir = _record_card_run(tmp_path, _NOT_BLESSED)
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert "Model card of accent" in lines
    assert "Blessed: no (present_class_macro_auc 0.5012 at least 0.6: failed)" in lines
    assert "Patches (eval split): accuracy 0.2500, macro AUC 0.5012, d' 0.0042" in lines
    # A metric the card did not record (here the clip d') reads n/a, never a made-up number.
    assert "Clips (eval split): accuracy 0.3000, macro AUC 0.5500, d' n/a" in lines
    assert "WARNING: offline YAMNet weights: these numbers say nothing about real accents" in lines
    assert f"HTML: {card_dir / 'model_card.html'}" in lines
    assert f"Hugging Face README: {card_dir / 'README.md'}" in lines
    assert f"Figures: 1 PNG files in {card_dir}" in lines


def test_the_run_summary_ends_with_the_cards_path(tmp_path: Path) -> None:
    card_dir = _record_card_run(tmp_path, _NOT_BLESSED)
    summary = run_summary.format_summary(
        str(tmp_path / card_report.METADATA_FILENAME), features.DEFAULT_CLASS_NAMES
    )
    assert summary.splitlines()[-1] == f"Model card: {card_dir / 'model_card.html'}"


def test_report_without_out_or_without_a_card_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tmp_path / "missing")]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_FAILED
    error = capsys.readouterr().err.strip()
    assert error.startswith("accent-pipeline report: error:") and "metadata.sqlite is missing" in error
    _record_card_run(tmp_path, None)
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_FAILED
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "wrote no model card: it stopped before the card" in error
