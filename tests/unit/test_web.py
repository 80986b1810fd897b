"""The web page's logic without a browser: uploads, limits, messages, gRPC calls, figures, examples, CLI."""

from __future__ import annotations

import html
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import keras
import numpy as np
import pytest
from ml_metadata.proto import metadata_store_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from components import features
from components.errors import InvalidArgumentError
from components.serving import batch_signature, client, server
from components.serving.grpc_options import grpc_message_options
from components.trainer import export, model
from components.web import app, examples, figures, local_serving, uploads
from components.web import serving as web_serving
from pipeline import cli, run_summary
from pipeline.pipeline import PUSHER_ID
from tests import serving_models

MODEL_NAME = "accent"
SERVED_VERSION = 3


@pytest.fixture(scope="module")
def running_server(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[server.RunningServer]:
    base_path = tmp_path_factory.mktemp("served") / MODEL_NAME
    serving_models.push_cached_version(model_cache, base_path, SERVED_VERSION)
    with serving_models.loopback_server(base_path, MODEL_NAME, SERVED_VERSION) as running:
        yield running


@pytest.fixture
def accent_page(running_server: server.RunningServer) -> Iterator[app.AccentPage]:
    page = app.AccentPage(app.PageSettings(server=running_server.address, model_name=MODEL_NAME))
    try:
        yield page
    finally:
        page.close()


def _closed_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def _upload(tmp_path: Path, name: str, seconds: float = 2.0) -> Path:
    folder = tmp_path / "uploads" / "0123abcd"
    folder.mkdir(parents=True, exist_ok=True)
    return serving_models.write_wav(folder / name, serving_models.make_waveform(seconds, seed=5))


def test_a_served_clip_gets_its_accent_probabilities_and_figures_and_the_upload_is_deleted(
    accent_page: app.AccentPage, tmp_path: Path
) -> None:
    upload = _upload(tmp_path, "speech.wav", seconds=2.0)

    answer = accent_page.answer(str(upload))

    expected_accent = serving_models.expected_accent(SERVED_VERSION)
    assert 'data-state="ok"' in answer.result_html
    assert f'<strong id="{app.PREDICTED_ACCENT_ID}">{expected_accent}</strong>' in answer.result_html
    assert f"version {SERVED_VERSION}" in answer.result_html
    assert set(answer.class_probabilities) == set(features.DEFAULT_CLASS_NAMES)
    assert max(answer.class_probabilities, key=answer.class_probabilities.get) == expected_accent
    assert sum(answer.class_probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    shown = dict(re.findall(r'data-class="([^"]+)" data-probability="([0-9.]+)"', answer.result_html))
    assert {name: float(value) for name, value in shown.items()} == pytest.approx(
        answer.class_probabilities, abs=1e-6
    )
    [timeline_axis] = answer.patch_timeline.axes
    assert len(timeline_axis.lines) == len(features.DEFAULT_CLASS_NAMES)
    assert (
        len(timeline_axis.lines[0].get_xdata()) == 4
    )  # 2 s of audio: 1 + ceil((32000 - 15600) / 7680) patches.
    assert answer.log_mel.axes[0].images[0].get_array().shape[0] == 64
    assert f"version {SERVED_VERSION} (AVAILABLE)" in answer.model_info
    assert not upload.exists() and not upload.parent.exists()


def test_model_info_comes_from_get_model_metadata_and_get_model_status(accent_page: app.AccentPage) -> None:
    info = accent_page.connection.model_info()
    assert info.model_name == MODEL_NAME
    assert info.version == SERVED_VERSION
    assert info.version_states == {SERVED_VERSION: "AVAILABLE"}
    assert set(info.signature_outputs) >= {
        features.ACCENT_OUTPUT_KEY,
        features.CLASS_PROBABILITIES_OUTPUT_KEY,
        features.PATCH_PROBABILITIES_OUTPUT_KEY,
    }
    assert info.describe() == f"Model {MODEL_NAME}, version {SERVED_VERSION} (AVAILABLE)"


def test_a_text_file_named_wav_is_not_audio_and_is_deleted(
    accent_page: app.AccentPage, tmp_path: Path
) -> None:
    fake = tmp_path / "notes.wav"
    fake.write_text("meeting notes\n")

    answer = accent_page.answer(str(fake))

    assert 'data-kind="not-audio"' in answer.result_html
    assert "Not audio: notes.wav cannot be decoded as WAV, FLAC, Ogg Vorbis or MP3" in answer.result_html
    assert answer.class_probabilities is None and answer.patch_timeline is None and answer.log_mel is None
    assert not fake.exists()


def test_audio_over_the_limit_is_refused_before_it_is_sent(
    running_server: server.RunningServer, tmp_path: Path
) -> None:
    page = app.AccentPage(app.PageSettings(server=running_server.address, max_audio_seconds=1.5))
    try:
        answer = page.answer(str(_upload(tmp_path, "long.wav", seconds=2.0)))
    finally:
        page.close()
    assert 'data-kind="too-long"' in answer.result_html
    assert "Audio too long: long.wav is 2.0 s; the server accepts at most 1.5 s." in answer.result_html


def test_a_file_over_the_size_limit_is_refused_unread_and_deleted(tmp_path: Path) -> None:
    upload = _upload(tmp_path, "big.wav", seconds=1.0)
    with pytest.raises(web_serving.PageError, match=r"File too large: big.wav has .* the limit is") as raised:
        uploads.read_upload(upload, max_file_bytes=1000)
    assert raised.value.kind == web_serving.TOO_LARGE
    assert not upload.exists()


def test_an_example_clips_copy_is_kept_for_the_next_click(tmp_path: Path) -> None:
    example = serving_models.write_wav(tmp_path / "mim_00001_00000001.wav", serving_models.make_waveform(1.0))
    copy = _upload(tmp_path, example.name)
    shutil.copyfile(example, copy)
    encoded, name = uploads.read_upload(copy, 10**6, keep_digests={uploads.file_digest(example)})
    assert name == example.name and encoded == example.read_bytes()
    assert copy.exists()


def test_no_file_and_an_empty_file_get_messages(accent_page: app.AccentPage, tmp_path: Path) -> None:
    assert 'data-kind="no-file"' in accent_page.answer(None).result_html
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert 'data-kind="not-audio"' in accent_page.answer(str(empty)).result_html


def test_a_server_that_is_down_gets_server_unavailable_and_the_page_still_answers(tmp_path: Path) -> None:
    address = _closed_loopback_address()
    page = app.AccentPage(app.PageSettings(server=address))
    try:
        answer = page.answer(str(_upload(tmp_path, "speech.wav")))
        info = page.model_info_markdown()
        second = page.answer(None)
    finally:
        page.close()
    assert 'data-kind="server-unavailable"' in answer.result_html
    assert f"Server unavailable: the model server at {address} does not answer" in answer.result_html
    assert "Served model:** unknown. Server unavailable" in info
    assert 'data-kind="no-file"' in second.result_html


def test_a_server_without_the_model_gets_no_model(
    running_server: server.RunningServer, tmp_path: Path
) -> None:
    page = app.AccentPage(app.PageSettings(server=running_server.address, model_name="not-served"))
    try:
        answer = page.answer(str(_upload(tmp_path, "speech.wav")))
    finally:
        page.close()
    assert 'data-kind="no-model"' in answer.result_html
    message = html.unescape(answer.result_html)
    assert "No model: the server at" in message and "serves no model named 'not-served' yet" in message


def test_examples_are_one_clip_per_accent_first(tmp_path: Path) -> None:
    for name in ("sof_00002_0002.wav", "sof_00002_0001.wav", "mim_00001_0001.wav", "readme.wav", "notes.txt"):
        (tmp_path / name).write_bytes(b"RIFF")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "irm_00003_0001.flac").write_bytes(b"fLaC")

    chosen = [path.name for path in examples.find_example_clips(tmp_path, max_examples=4)]

    assert chosen == ["mim_00001_0001.wav", "irm_00003_0001.flac", "sof_00002_0001.wav", "readme.wav"]
    with pytest.raises(FileNotFoundError):
        examples.find_example_clips(tmp_path / "missing")


def test_the_timeline_puts_each_patch_at_its_centre() -> None:
    centres = figures.patch_centre_seconds(3)
    assert centres == pytest.approx([0.4875, 0.9675, 1.4475])
    log_mel = figures.log_mel_spectrogram(serving_models.make_waveform(1.0))
    assert log_mel.shape[1] == 64 and log_mel.shape[0] > 90
    assert np.isfinite(log_mel).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"server": "localhost"}, "--server must be HOST:PORT"),
        ({"server": "localhost:port"}, "--server must be HOST:PORT"),
        ({"server": "localhost:8500", "max_audio_seconds": 0.0}, "max_audio_seconds must be positive"),
        ({"server": "localhost:8500", "examples_dir": "/nonexistent/examples"}, "is not a folder"),
    ],
)
def test_bad_page_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        app.PageSettings(**settings)


def test_web_needs_a_server_or_a_model_base_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as neither:
        cli.build_parser().parse_args(["web"])
    assert neither.value.code == cli.EXIT_USAGE
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["web", "--server", "localhost:8500", "--model-base-path", "models"])
    assert "not allowed with argument" in capsys.readouterr().err
    args = cli.build_parser().parse_args(["web", "--server", "localhost:8500", "--examples", "demo/corpus"])
    assert (args.host, args.port, args.model_name, args.examples) == (
        "127.0.0.1",
        8080,
        "accent",
        "demo/corpus",
    )
    assert (
        cli.main(["web", "--server", "localhost:8500", "--examples", "/nonexistent/examples"])
        == cli.EXIT_USAGE
    )


def test_a_serving_process_that_exits_at_once_is_an_error() -> None:
    address = _closed_loopback_address()
    with (
        pytest.raises(local_serving.ServingProcessError, match="exited with code 3 before serving"),
        local_serving.child_server(
            [sys.executable, "-c", "raise SystemExit(3)"], address, timeout_seconds=30
        ),
    ):
        pytest.fail("the block ran without a server")


def test_a_serving_process_that_never_listens_times_out_and_is_stopped() -> None:
    address = _closed_loopback_address()
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    with (
        pytest.raises(local_serving.ServingProcessError, match="did not listen"),
        local_serving.child_server(command, address, timeout_seconds=1.5),
    ):
        pytest.fail("the block ran without a server")


def test_stop_process_ends_the_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    local_serving.stop_process(child, grace_seconds=10)
    assert child.poll() is not None


def _pusher_run(pushed: int, destination: str) -> run_summary.ComponentRun:
    artifact = metadata_store_pb2.Artifact()
    artifact.custom_properties["pushed"].int_value = pushed
    artifact.custom_properties["pushed_destination"].string_value = destination
    return run_summary.ComponentRun(PUSHER_ID, "complete", {"pushed_model": [artifact]})


def test_the_run_summary_names_the_one_command_that_starts_the_page_after_a_push() -> None:
    runs = {PUSHER_ID: _pusher_run(1, "out dir/serving/accent/1700000000")}

    [line] = run_summary._web_page_lines(runs, "demo/corpus")

    command = shlex.split(line.removeprefix("Web page: ").split("  (")[0])
    assert command[0].endswith("accent-pipeline")
    assert command[1:] == ["web", "--model-base-path", "out dir/serving/accent", "--examples", "demo/corpus"]
    assert cli.build_parser().parse_args(command[1:]).model_base_path == "out dir/serving/accent"
    assert run_summary._web_page_lines({PUSHER_ID: _pusher_run(0, "")}, None) == []
    assert run_summary._web_page_lines({}, None) == []


def test_the_page_calls_serving_default_on_a_model_without_serving_batch(
    accent_page: app.AccentPage, running_server: server.RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = serving_models.record_rpcs(running_server, monkeypatch)

    info = accent_page.connection.model_info()
    first = accent_page.connection.predict(serving_models.make_waveform(1.0, seed=1))
    second = accent_page.connection.predict(serving_models.make_waveform(1.5, seed=2))

    assert info.signature_name == features.SERVING_SIGNATURE
    assert f"Requests call `{features.SERVING_SIGNATURE}`" in accent_page.model_info_markdown()
    assert recorded["predict_signatures"] == [features.SERVING_SIGNATURE] * 2
    # The two predictions reuse the signatures model_info read.
    assert recorded["metadata_models"] == [MODEL_NAME, MODEL_NAME]
    assert first.model_version == second.model_version == SERVED_VERSION


def test_the_page_reads_the_signatures_again_when_the_served_version_changes(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_path = tmp_path_factory.mktemp("versions") / MODEL_NAME
    serving_models.push_cached_version(model_cache, base_path, 1)
    with serving_models.loopback_server(base_path, MODEL_NAME, 1) as running:
        recorded = serving_models.record_rpcs(running, monkeypatch)
        connection = web_serving.ServingConnection(running.address, MODEL_NAME, max_message_bytes=64 << 20)
        try:
            waveform = serving_models.make_waveform(1.0, seed=3)
            versions = [connection.predict(waveform).model_version for _ in range(2)]
            assert recorded["metadata_models"] == [MODEL_NAME]
            serving_models.push_cached_version(model_cache, base_path, 2)
            assert running.manager.wait_for_version(2, timeout_seconds=30.0) is not None
            versions += [connection.predict(waveform).model_version for _ in range(3)]
        finally:
            connection.close()

    assert versions == [1, 1, 2, 2, 2]
    # Once for version 1, and once more after version 2 answered.
    assert recorded["metadata_models"] == [MODEL_NAME, MODEL_NAME]
    assert recorded["predict_signatures"] == [features.SERVING_SIGNATURE] * 5


@pytest.fixture(scope="module")
def batched_server(
    tmp_path_factory: pytest.TempPathFactory, offline_yamnet_dir: Path
) -> Iterator[server.RunningServer]:
    """The project's exported model (seeded classifier, offline YAMNet), which lists serving_batch."""
    keras.utils.set_random_seed(7)
    base_path = tmp_path_factory.mktemp("batched") / MODEL_NAME
    export.export_serving_model(
        model.build_model(num_classes=len(features.DEFAULT_CLASS_NAMES)),
        offline_yamnet_dir,
        features.DEFAULT_CLASS_NAMES,
        base_path / "1",
    )
    with serving_models.loopback_server(base_path, MODEL_NAME, 1) as running:
        yield running


@pytest.mark.slow
def test_the_page_calls_serving_batch_when_the_model_lists_it_and_gets_serving_defaults_answer(
    batched_server: server.RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = serving_models.record_rpcs(batched_server, monkeypatch)
    page = app.AccentPage(app.PageSettings(server=batched_server.address, model_name=MODEL_NAME))
    try:
        answer = page.answer(str(_upload(tmp_path, "speech.wav", seconds=2.0)))
        second = page.answer(str(_upload(tmp_path, "again.wav", seconds=2.0)))
    finally:
        page.close()

    assert recorded["predict_signatures"] == [batch_signature.BATCH_SIGNATURE] * 2
    # One metadata call chose the signature; each answer's model line asks once more.
    assert len(recorded["metadata_models"]) == 3
    assert f"Requests call `{batch_signature.BATCH_SIGNATURE}`" in answer.model_info
    waveform = uploads.decode_upload(
        _upload(tmp_path, "reference.wav", seconds=2.0).read_bytes(), "reference.wav", 600.0
    )
    with grpc.insecure_channel(batched_server.address, options=grpc_message_options()) as channel:
        expected = client.predict_waveform(
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            waveform,
            MODEL_NAME,
            signature_name=features.SERVING_SIGNATURE,
        )
    for shown in (answer, second):
        assert max(shown.class_probabilities, key=shown.class_probabilities.get) == expected.accent
        assert shown.class_probabilities == pytest.approx(expected.class_probabilities, abs=1e-5)
