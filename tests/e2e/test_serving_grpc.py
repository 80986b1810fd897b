"""Hot swap and load on the local serving server, with real gRPC clients over loopback."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from components import features
from components.serving import client, server
from tests import serving_models

MODEL_NAME = "accent"
NUM_CLIENTS = 8
RPC_TIMEOUT_SECONDS = 20.0


@pytest.fixture
def model_base_path(tmp_path: Path, model_cache: Path) -> Path:
    base_path = tmp_path / MODEL_NAME
    serving_models.push_cached_version(model_cache, base_path, 1)
    return base_path


@pytest.fixture
def running_server(model_base_path: Path) -> Iterator[server.RunningServer]:
    # The default poll interval, as `accent-pipeline serve` uses it.
    running = server.start_server(model_base_path, MODEL_NAME, host="127.0.0.1", port=0)
    try:
        assert running.manager.wait_for_version(1, timeout_seconds=30.0) is not None
        yield running
    finally:
        running.stop(grace_seconds=2.0)


@pytest.mark.e2e
def test_a_pushed_version_is_swapped_in_without_failing_a_request(
    running_server: server.RunningServer, model_base_path: Path, model_cache: Path
) -> None:
    new_version_source = serving_models.cached_saved_model(model_cache, 2)
    waveform = serving_models.make_waveform(1.2, seed=3)
    stop_clients = threading.Event()
    first_new_version_seen = threading.Event()
    max_requests_per_client = 5000
    answers: list[list[tuple[float, int, str]]] = [[] for _ in range(NUM_CLIENTS)]
    failures: list[str] = []

    def keep_asking(client_index: int) -> None:
        with grpc.insecure_channel(running_server.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(max_requests_per_client):
                if stop_clients.is_set():
                    return
                try:
                    prediction = client.predict_waveform(
                        stub, waveform, MODEL_NAME, timeout=RPC_TIMEOUT_SECONDS
                    )
                except (grpc.RpcError, ValueError) as error:
                    failures.append(f"client {client_index}: {error!r}")
                    continue
                answers[client_index].append((time.monotonic(), prediction.model_version, prediction.accent))
                if prediction.model_version == 2:
                    first_new_version_seen.set()

    with futures.ThreadPoolExecutor(max_workers=NUM_CLIENTS) as pool:
        client_runs = [pool.submit(keep_asking, client_index) for client_index in range(NUM_CLIENTS)]
        try:
            time.sleep(0.5)
            pushed_at = time.monotonic()
            serving_models.push_model_version(new_version_source, model_base_path, 2)
            swapped = first_new_version_seen.wait(timeout=10.0)
            time.sleep(0.5)
        finally:
            stop_clients.set()
        for client_run in client_runs:
            client_run.result(timeout=30.0)

    assert failures == []
    assert swapped, "version 2 was not served within 10 s of the push"
    all_answers = [answer for client_answers in answers for answer in client_answers]
    first_new_answer_at = min(answered_at for answered_at, version, _ in all_answers if version == 2)
    assert first_new_answer_at - pushed_at < 5.0
    assert {version for _, version, _ in all_answers} == {1, 2}
    for _, version, accent in all_answers:
        assert accent == serving_models.expected_accent(version)
    for client_answers in answers:
        assert client_answers, "a client got no answer"
        assert client_answers[-1][1] == 2
        versions = [version for _, version, _ in client_answers]
        assert versions == sorted(versions), "a client went back to the old version"
    assert sum(len(client_answers) for client_answers in answers) > NUM_CLIENTS * 4

    with grpc.insecure_channel(running_server.address) as channel:
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = MODEL_NAME
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            status_request, timeout=RPC_TIMEOUT_SECONDS
        )
        states = {
            version_status.version: version_status.state for version_status in status.model_version_status
        }
        assert states == {
            2: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
            1: get_model_status_pb2.ModelVersionStatus.END,
        }
        old_version_request = client.build_predict_request(waveform, MODEL_NAME)
        old_version_request.model_spec.version.value = 1
        with pytest.raises(grpc.RpcError) as raised:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                old_version_request, timeout=RPC_TIMEOUT_SECONDS
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.e2e
def test_a_half_written_version_is_not_served(
    running_server: server.RunningServer, model_base_path: Path, model_cache: Path
) -> None:
    source = serving_models.cached_saved_model(model_cache, 2)
    half_written = model_base_path / "2"
    half_written.mkdir()
    (half_written / "saved_model.pb").write_bytes((source / "saved_model.pb").read_bytes())
    waveform = serving_models.make_waveform(1.0, seed=4)

    with grpc.insecure_channel(running_server.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        deadline = time.monotonic() + 4 * running_server.manager.poll_wait_seconds
        num_checks = 0
        while time.monotonic() < deadline:
            prediction = client.predict_waveform(stub, waveform, MODEL_NAME, timeout=RPC_TIMEOUT_SECONDS)
            assert prediction.model_version == 1
            assert prediction.accent == serving_models.expected_accent(1)
            num_checks += 1
            time.sleep(0.1)
        assert num_checks >= 10
        assert [status.version for status in running_server.manager.version_statuses()] == [1]

        # Once its variables are in place, the version is complete and gets served.
        shutil.copytree(source / "variables", half_written / "variables")
        assert running_server.manager.wait_for_version(2, timeout_seconds=10.0) is not None
        prediction = client.predict_waveform(stub, waveform, MODEL_NAME, timeout=RPC_TIMEOUT_SECONDS)
        assert (prediction.model_version, prediction.accent) == (2, serving_models.expected_accent(2))


@pytest.mark.e2e
def test_parallel_clients_are_all_answered_correctly(
    running_server: server.RunningServer, model_base_path: Path
):
    requests_per_client = 50
    waveforms = [serving_models.make_waveform(0.5 + 0.25 * (seed % 5), seed=seed) for seed in range(10)]
    signature = tf.saved_model.load(str(model_base_path / "1")).signatures[features.SERVING_SIGNATURE]
    expected = [
        signature(waveform=tf.constant(waveform))[features.CLASS_PROBABILITIES_OUTPUT_KEY]
        for waveform in waveforms
    ]

    def run_client(client_index: int) -> int:
        num_correct = 0
        with grpc.insecure_channel(running_server.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for request_index in range(requests_per_client):
                waveform_index = (client_index + request_index) % len(waveforms)
                prediction = client.predict_waveform(
                    stub, waveforms[waveform_index], MODEL_NAME, timeout=RPC_TIMEOUT_SECONDS
                )
                np.testing.assert_allclose(
                    list(prediction.class_probabilities.values()), expected[waveform_index].numpy(), rtol=1e-6
                )
                assert prediction.model_version == 1
                num_correct += 1
        return num_correct

    started = time.monotonic()
    with futures.ThreadPoolExecutor(max_workers=NUM_CLIENTS) as pool:
        client_runs = [pool.submit(run_client, client_index) for client_index in range(NUM_CLIENTS)]
        num_correct = [client_run.result(timeout=60.0) for client_run in client_runs]
    elapsed_seconds = time.monotonic() - started

    assert num_correct == [requests_per_client] * NUM_CLIENTS
    assert elapsed_seconds < 60.0
