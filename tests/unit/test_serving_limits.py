"""The local server's limits: in-flight model calls, dead requests, and the address it listens on."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from components import features
from components.serving import defaults as serving_defaults
from components.serving import model_manager, server, servicers
from pipeline import cli
from tests import serving_models

MODEL_NAME = "accent"
NUM_CLIENTS = 50
MAX_IN_FLIGHT = 2
RPC_TIMEOUT_SECONDS = 60.0
# Longest wait for an outcome that should come at once; a bound on a hang, not a speed target.
OUTCOME_TIMEOUT_SECONDS = 60.0
# Longest wait for admitted requests to reach the model, and how often to look; a bound, not a target.
MODEL_CALLS_TIMEOUT_SECONDS = 30.0
MODEL_CALLS_POLL_SECONDS = 0.02
# How long a client tries to connect to an address that should not answer.
CONNECT_TIMEOUT_SECONDS = 3.0


def _waveform_request(seconds: float = 0.5) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.inputs[features.WAVEFORM_INPUT_KEY].CopyFrom(
        tf.make_tensor_proto(serving_models.make_waveform(seconds))
    )
    return request


def _status_request() -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL_NAME
    return request


@pytest.fixture(scope="module")
def blocking_base_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base_path = tmp_path_factory.mktemp("blocking") / MODEL_NAME
    base_path.mkdir()
    serving_models.build_blocking_saved_model(base_path / "1")
    return base_path


@pytest.fixture
def blocking_server(blocking_base_path: Path) -> Iterator[server.RunningServer]:
    running = server.start_server(
        blocking_base_path,
        MODEL_NAME,
        host="127.0.0.1",
        port=0,
        poll_wait_seconds=0.2,
        max_in_flight=MAX_IN_FLIGHT,
    )
    try:
        assert running.manager.wait_for_version(1, timeout_seconds=30.0) is not None
        yield running
    finally:
        serving_models.release_blocking_model(running)
        running.stop(grace_seconds=5.0)


def _predict_code(address: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(_waveform_request(), timeout=RPC_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def _wait_until_done(outcomes: list[futures.Future], count: int) -> None:
    """Waits until ``count`` of ``outcomes`` are done, or OUTCOME_TIMEOUT_SECONDS have passed."""
    pending = set(outcomes)
    for _ in range(len(outcomes)):
        if len(outcomes) - len(pending) >= count:
            return
        done, pending = futures.wait(
            pending, timeout=OUTCOME_TIMEOUT_SECONDS, return_when=futures.FIRST_COMPLETED
        )
        if not done:
            return


def _wait_for_blocking_model_calls(running: server.RunningServer, count: int) -> int:
    """Polls the blocking model's call count until it reaches ``count`` or MODEL_CALLS_TIMEOUT_SECONDS pass.

    Returns:
        The last count seen.
    """
    deadline = time.monotonic() + MODEL_CALLS_TIMEOUT_SECONDS
    calls = serving_models.blocking_model_calls(running)
    while calls < count and time.monotonic() < deadline:
        time.sleep(MODEL_CALLS_POLL_SECONDS)
        calls = serving_models.blocking_model_calls(running)
    return calls


def test_requests_beyond_the_in_flight_cap_are_refused_at_once(blocking_server: server.RunningServer) -> None:
    with futures.ThreadPoolExecutor(max_workers=NUM_CLIENTS) as pool:
        outcomes = [pool.submit(_predict_code, blocking_server.address) for _ in range(NUM_CLIENTS)]
        try:
            # The blocking model holds MAX_IN_FLIGHT requests; every other one is answered meanwhile.
            _wait_until_done(outcomes, NUM_CLIENTS - MAX_IN_FLIGHT)
            refused = [outcome.result() for outcome in outcomes if outcome.done()]
            assert len(refused) == NUM_CLIENTS - MAX_IN_FLIGHT
            assert set(refused) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            # The admitted requests hold their slots at once but reach the model a little later.
            assert _wait_for_blocking_model_calls(blocking_server, MAX_IN_FLIGHT) == MAX_IN_FLIGHT
            assert blocking_server.in_flight_model_calls() == MAX_IN_FLIGHT
            # Cheap RPCs are still answered while the model calls wait.
            with grpc.insecure_channel(blocking_server.address) as channel:
                status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                    _status_request(), timeout=RPC_TIMEOUT_SECONDS
                )
            assert status.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        finally:
            serving_models.release_blocking_model(blocking_server)
        served = [outcome.result(timeout=OUTCOME_TIMEOUT_SECONDS) for outcome in outcomes]
    assert served.count(grpc.StatusCode.OK) == MAX_IN_FLIGHT
    assert blocking_server.in_flight_model_calls() == 0
    # Once the slots are free again, requests are served.
    assert _predict_code(blocking_server.address) == grpc.StatusCode.OK


class _RecordingContext:
    """Stands in for a grpc.ServicerContext whose client may already be gone."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.code: grpc.StatusCode | None = None

    def is_active(self) -> bool:
        return self.active

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        raise grpc.RpcError(details)


def test_a_request_whose_client_is_gone_does_not_start_the_model(blocking_base_path: Path) -> None:
    manager = model_manager.ModelManager(blocking_base_path, MODEL_NAME)
    manager.poll_once()
    manager.poll_once()
    assert manager.current() is not None
    servicer = servicers.PredictionServicer(manager, max_in_flight=MAX_IN_FLIGHT)
    context = _RecordingContext(active=False)

    with pytest.raises(grpc.RpcError):
        servicer.Predict(_waveform_request(), context)

    assert context.code == grpc.StatusCode.CANCELLED
    assert int(manager.current().saved_model.calls.numpy()) == 0
    assert servicer.in_flight_model_calls == 0


def _non_loopback_ipv4_address() -> str | None:
    """Returns an IPv4 address of this machine that is not loopback, or None."""
    candidates = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            # Connecting a UDP socket sends nothing; it only picks the outgoing interface.
            probe.connect(("192.0.2.1", 9))
            candidates.append(probe.getsockname()[0])
    except OSError:
        pass
    with contextlib.suppress(OSError):
        candidates.extend(socket.gethostbyname_ex(socket.gethostname())[2])
    for address in candidates:
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None


def _listening_addresses(port: int) -> set[str]:
    """The local addresses the kernel has a TCP socket listening on for ``port`` (/proc/net/tcp, tcp6)."""
    addresses = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        if not os.path.exists(table):
            continue
        with open(table) as rows:
            next(rows)
            for row in rows:
                local, state = row.split()[1], row.split()[3]
                hex_address, hex_port = local.split(":")
                if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                    continue
                # The kernel prints each 32-bit word of the address in host (little-endian) byte order.
                packed = b"".join(
                    bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)
                )
                address = socket.inet_ntop(socket.AF_INET if width == 4 else socket.AF_INET6, packed)
                # gRPC may listen on an IPv6 socket with an IPv4-mapped address (::ffff:127.0.0.1).
                addresses.add(address.removeprefix("::ffff:"))
    return addresses


def _answers_on(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_SECONDS)
        except grpc.FutureTimeoutError:
            return False
        model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            _status_request(), timeout=RPC_TIMEOUT_SECONDS
        )
    return True


@pytest.fixture(scope="module")
def fixture_base_path(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    base_path = tmp_path_factory.mktemp("served") / MODEL_NAME
    serving_models.push_cached_version(model_cache, base_path, 1)
    return base_path


def test_by_default_the_server_listens_on_loopback_only(fixture_base_path: Path) -> None:
    other_address = _non_loopback_ipv4_address()
    with server.start_server(fixture_base_path, MODEL_NAME, port=0, poll_wait_seconds=0.2) as running:
        assert running.manager.wait_for_version(1, timeout_seconds=30.0) is not None
        assert running.host == "127.0.0.1"
        assert _listening_addresses(running.port) == {"127.0.0.1"}
        assert _answers_on(f"127.0.0.1:{running.port}")
        if other_address is not None:  # where the machine has another address, try it too
            assert not _answers_on(f"{other_address}:{running.port}")


def test_host_0_0_0_0_listens_on_every_interface(fixture_base_path: Path) -> None:
    other_address = _non_loopback_ipv4_address()
    with server.start_server(
        fixture_base_path, MODEL_NAME, host="0.0.0.0", port=0, poll_wait_seconds=0.2
    ) as running:
        assert running.manager.wait_for_version(1, timeout_seconds=30.0) is not None
        assert _listening_addresses(running.port) & {"0.0.0.0", "::"}
        assert _answers_on(f"127.0.0.1:{running.port}")
        if other_address is not None:  # where the machine has another address, try it too
            assert _answers_on(f"{other_address}:{running.port}")


@pytest.fixture
def recorded_start_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, object]]:
    """Makes ``serve`` call a stand-in ``start_server`` that records its arguments and fails to bind."""
    calls: list[dict[str, object]] = []

    def record(*args: object, **kwargs: object) -> server.RunningServer:
        calls.append(kwargs)
        raise OSError("recorded, not started")

    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setattr(server, "start_server", record)
    return calls


def test_serve_on_the_command_line_defaults_to_loopback_and_the_configured_limits(
    recorded_start_server: list[dict[str, object]], tmp_path: Path
) -> None:
    assert cli.main(["serve", "--model-base-path", str(tmp_path)]) == 1
    [arguments] = recorded_start_server
    assert arguments["host"] == "127.0.0.1"
    assert arguments["max_audio_seconds"] == 600.0
    assert arguments["max_in_flight"] == servicers.DEFAULT_MAX_IN_FLIGHT
    # The command line, the server and serve share one source of defaults.
    assert (arguments["host"], arguments["max_audio_seconds"], arguments["max_in_flight"]) == (
        serving_defaults.DEFAULT_HOST,
        serving_defaults.DEFAULT_MAX_AUDIO_SECONDS,
        serving_defaults.DEFAULT_MAX_IN_FLIGHT,
    )


def test_serve_on_the_command_line_passes_host_and_limits_on(
    recorded_start_server: list[dict[str, object]], tmp_path: Path
) -> None:
    argv = [
        "serve",
        "--model-base-path",
        str(tmp_path),
        "--host",
        "0.0.0.0",
        "--max-audio-seconds",
        "30",
        "--max-in-flight",
        "3",
    ]
    assert cli.main(argv) == 1
    [arguments] = recorded_start_server
    assert (arguments["host"], arguments["max_audio_seconds"], arguments["max_in_flight"]) == (
        "0.0.0.0",
        30.0,
        3,
    )


@pytest.mark.parametrize("flag", ["--max-audio-seconds=0", "--max-in-flight=0", "--max-in-flight=-1"])
def test_serve_refuses_non_positive_limits(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["serve", "--model-base-path", str(tmp_path), flag])
    assert raised.value.code == 2
    assert "must be positive" in capsys.readouterr().err
