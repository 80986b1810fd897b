"""The prediction client against the local server, over loopback gRPC."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

from components import audio, features
from components.serving import batch_signature, client, rpc, server
from tests import serving_models

MODEL_NAME = "accent"
SERVED_VERSION = 2


@pytest.fixture(scope="module")
def model_base_path(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    base_path = tmp_path_factory.mktemp("served") / MODEL_NAME
    serving_models.push_cached_version(model_cache, base_path, SERVED_VERSION)
    return base_path


@pytest.fixture(scope="module")
def running_server(model_base_path: Path) -> Iterator[server.RunningServer]:
    with serving_models.loopback_server(model_base_path, MODEL_NAME, SERVED_VERSION) as running:
        yield running


@pytest.fixture(scope="module")
def in_process_signature(model_base_path: Path):
    return tf.saved_model.load(str(model_base_path / str(SERVED_VERSION))).signatures[
        features.SERVING_SIGNATURE
    ]


@pytest.fixture
def good_wav(tmp_path: Path) -> Path:
    return serving_models.write_wav(tmp_path / "speaker one.wav", serving_models.make_waveform(2.5, seed=11))


def _closed_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _expected_outputs(in_process_signature, wav_path: Path) -> dict[str, np.ndarray]:
    waveform = audio.load_waveform(wav_path.read_bytes(), wav_path.name)
    outputs = in_process_signature(waveform=tf.constant(waveform))
    return {name: value.numpy() for name, value in outputs.items()}


def _predict_files(
    paths: list[Path],
    address: str,
    output_json: bool = False,
    model_name: str = MODEL_NAME,
    timeout_seconds: float = client.DEFAULT_TIMEOUT_SECONDS,
) -> tuple[int, str]:
    """Runs ``client.predict_files`` on the files, returning the number that failed and what it printed."""
    output = io.StringIO()
    num_failed = client.predict_files(
        [str(path) for path in paths],
        address,
        model_name,
        output_json,
        timeout_seconds=timeout_seconds,
        stream=output,
    )
    return num_failed, output.getvalue()


def test_predict_files_prints_the_accent_and_a_sorted_probability_table(
    running_server, in_process_signature, good_wav: Path, capsys
) -> None:
    num_failed, printed = _predict_files([good_wav], running_server.address)

    assert num_failed == 0
    expected = _expected_outputs(in_process_signature, good_wav)
    expected_accent = expected[features.ACCENT_OUTPUT_KEY].decode("utf-8")
    lines = printed.splitlines()
    assert lines[0].startswith(f"{good_wav}: {expected_accent} (model {MODEL_NAME} version {SERVED_VERSION}")
    table = [line.split() for line in lines[1:]]
    probabilities = {" ".join(row[:-1]): float(row[-1].rstrip("%")) / 100.0 for row in table}
    assert set(probabilities) == set(features.DEFAULT_CLASS_NAMES)
    expected_probabilities = dict(
        zip(features.DEFAULT_CLASS_NAMES, expected[features.CLASS_PROBABILITIES_OUTPUT_KEY], strict=True)
    )
    for name, probability in probabilities.items():
        assert probability == pytest.approx(expected_probabilities[name], abs=6e-5)
    printed_order = [value for value in probabilities.values()]
    assert printed_order == sorted(printed_order, reverse=True)
    assert capsys.readouterr().err == ""


def test_predict_files_reports_bad_files_and_carries_on(
    running_server, good_wav: Path, tmp_path: Path, capsys
):
    missing = tmp_path / "missing.wav"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are meeting notes, not audio")

    num_failed, printed = _predict_files([missing, not_audio, good_wav], running_server.address)

    assert num_failed == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"error: cannot read {missing}")
    assert errors[1].startswith(f"error: cannot decode {not_audio}")
    assert printed.startswith(f"{good_wav}: {serving_models.expected_accent(SERVED_VERSION)} ")


def test_predict_files_reports_a_down_server_clearly(good_wav: Path, tmp_path: Path, capsys) -> None:
    address = f"127.0.0.1:{_closed_loopback_port()}"
    second_wav = serving_models.write_wav(tmp_path / "second.wav", serving_models.make_waveform(1.0, seed=2))

    num_failed, printed = _predict_files([good_wav, second_wav], address, timeout_seconds=10.0)

    assert num_failed == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    for line in errors:
        assert line.startswith(f"error: cannot reach TF Serving at {address}: ")
    assert printed == ""


def test_predict_files_json_output_parses(
    running_server, in_process_signature, good_wav: Path, tmp_path: Path
):
    missing = tmp_path / "missing.flac"

    num_failed, printed = _predict_files([good_wav, missing], running_server.address, output_json=True)

    assert num_failed == 1
    results = [json.loads(line) for line in printed.splitlines()]
    assert [result["file"] for result in results] == [str(good_wav), str(missing)]
    expected = _expected_outputs(in_process_signature, good_wav)
    good = results[0]
    assert good["accent"] == expected[features.ACCENT_OUTPUT_KEY].decode("utf-8")
    assert good["model_name"] == MODEL_NAME
    assert good["model_version"] == SERVED_VERSION
    assert list(good["class_probabilities"]) == list(features.DEFAULT_CLASS_NAMES)
    np.testing.assert_allclose(
        list(good["class_probabilities"].values()),
        expected[features.CLASS_PROBABILITIES_OUTPUT_KEY],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        good["patch_probabilities"], expected[features.PATCH_PROBABILITIES_OUTPUT_KEY], rtol=1e-6
    )
    assert "cannot read" in results[1]["error"]


def test_predict_files_resamples_other_rates(running_server, in_process_signature, tmp_path: Path) -> None:
    wav_path = serving_models.write_wav(
        tmp_path / "phone.wav", serving_models.make_waveform(2.0, seed=5)[::2], sample_rate=8000
    )
    num_failed, printed = _predict_files([wav_path], running_server.address, output_json=True)
    assert num_failed == 0
    result = json.loads(printed)
    expected = _expected_outputs(in_process_signature, wav_path)
    assert len(result["patch_probabilities"]) == len(expected[features.PATCH_PROBABILITIES_OUTPUT_KEY])
    np.testing.assert_allclose(
        list(result["class_probabilities"].values()),
        expected[features.CLASS_PROBABILITIES_OUTPUT_KEY],
        rtol=1e-6,
    )


def test_predict_files_names_the_server_error(running_server, good_wav: Path, capsys) -> None:
    num_failed, _ = _predict_files([good_wav], running_server.address, model_name="dialect")
    assert num_failed == 1
    error = capsys.readouterr().err
    assert "NOT_FOUND" in error
    assert "dialect" in error


def test_build_predict_request_rejects_bad_waveforms() -> None:
    with pytest.raises(ValueError, match="1-D"):
        client.build_predict_request(np.zeros((2, 100), dtype=np.float32), MODEL_NAME)
    with pytest.raises(ValueError, match="empty"):
        client.build_predict_request(np.zeros(0, dtype=np.float32), MODEL_NAME)


def test_predict_files_rejects_a_non_positive_timeout(good_wav: Path) -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        client.predict_files([str(good_wav)], "127.0.0.1:1", MODEL_NAME, False, timeout_seconds=0.0)


def test_predict_files_reports_every_decode_failure_and_scores_the_files_after_it(
    running_server, good_wav: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from tests import corpus_builders

    zero_rate_flac = tmp_path / "zero-rate.flac"
    zero_rate_flac.write_bytes(
        corpus_builders.encode_flac(serving_models.make_waveform(1.0, seed=3), 16000, declared_rate=0)
    )
    exhausting = tmp_path / "exhausting.wav"
    exhausting.write_bytes(good_wav.read_bytes())
    real_load_waveform = audio.load_waveform

    def load_waveform(encoded: bytes, filename: str, *args, **kwargs) -> np.ndarray:
        if filename == exhausting.name:
            raise MemoryError()
        return real_load_waveform(encoded, filename, *args, **kwargs)

    monkeypatch.setattr(audio, "load_waveform", load_waveform)

    num_failed, printed = _predict_files([zero_rate_flac, exhausting, good_wav], running_server.address)

    assert num_failed == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"error: cannot decode {zero_rate_flac}: unsupported sample rate: 0 Hz (supported: 8000 to 96000 Hz)",
        f"error: cannot decode {exhausting}: out of memory",
    ]
    assert printed.startswith(f"{good_wav}: {serving_models.expected_accent(SERVED_VERSION)} ")


@pytest.fixture
def metadata_calls(running_server, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the model name of each GetModelMetadata the server answers."""
    servicer = running_server.prediction_servicer
    calls: list[str] = []
    real_get_model_metadata = servicer._get_model_metadata

    def get_model_metadata(request: get_model_metadata_pb2.GetModelMetadataRequest, *args: object):
        calls.append(request.model_spec.name)
        return real_get_model_metadata(request, *args)

    monkeypatch.setattr(servicer, "_get_model_metadata", get_model_metadata)
    return calls


def test_choose_signature_is_serving_default_for_a_model_without_serving_batch(running_server) -> None:
    with grpc.insecure_channel(running_server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert client.choose_signature(stub, MODEL_NAME) == features.SERVING_SIGNATURE


def test_choose_signature_falls_back_to_serving_default_without_get_model_metadata(
    running_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unimplemented(*args: object) -> None:
        raise rpc.ServingError(grpc.StatusCode.UNIMPLEMENTED, "no metadata here")

    monkeypatch.setattr(running_server.prediction_servicer, "_get_model_metadata", unimplemented)
    with grpc.insecure_channel(running_server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert client.choose_signature(stub, MODEL_NAME) == features.SERVING_SIGNATURE


def test_choose_signature_raises_when_the_model_is_not_served(running_server) -> None:
    with grpc.insecure_channel(running_server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            client.choose_signature(stub, "dialect")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("signature_names", "expected"),
    [
        ([features.SERVING_SIGNATURE, features.EXAMPLES_SIGNATURE], features.SERVING_SIGNATURE),
        ([features.SERVING_SIGNATURE, batch_signature.BATCH_SIGNATURE], batch_signature.BATCH_SIGNATURE),
        ([], features.SERVING_SIGNATURE),
    ],
)
def test_signature_for_prefers_the_batched_signature(signature_names: list[str], expected: str) -> None:
    assert client.signature_for(signature_names) == expected


def test_predict_files_asks_for_the_signatures_once_per_call(
    running_server, metadata_calls: list[str], good_wav: Path, tmp_path: Path
) -> None:
    second_wav = serving_models.write_wav(tmp_path / "second.wav", serving_models.make_waveform(1.0, seed=2))

    num_failed, printed = _predict_files([good_wav, second_wav, good_wav], running_server.address)

    assert num_failed == 0
    assert printed.count(f": {serving_models.expected_accent(SERVED_VERSION)} ") == 3
    assert metadata_calls == [MODEL_NAME]


def test_predict_files_asks_again_after_a_failed_metadata_call(
    running_server, good_wav: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    servicer = running_server.prediction_servicer
    real_get_model_metadata = servicer._get_model_metadata
    outcomes = iter([rpc.ServingError(grpc.StatusCode.UNAVAILABLE, "restarting"), None])

    def flaky_get_model_metadata(*args: object):
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return real_get_model_metadata(*args)

    monkeypatch.setattr(servicer, "_get_model_metadata", flaky_get_model_metadata)

    num_failed, printed = _predict_files([good_wav, good_wav], running_server.address)

    assert num_failed == 1
    assert capsys.readouterr().err.startswith(
        f"error: cannot reach TF Serving at {running_server.address}: restarting"
    )
    assert printed.startswith(f"{good_wav}: {serving_models.expected_accent(SERVED_VERSION)} ")
