"""Batching of concurrent Predict requests: the batched signature, the batcher, and the server using them.

The served model is the real one (the project's classifier, seeded, with the
offline YAMNet), exported by ``components.trainer.export``: only it has the
``serving_batch`` signature the batcher calls.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from components import features
from components.errors import InvalidArgumentError
from components.serving import batching, client, model_manager, rpc, server
from components.serving.grpc_options import grpc_message_options
from components.trainer import export, model
from pipeline import cli
from tests import serving_models

MODEL_NAME = "accent"
VERSION = 1
CLASSIFIER_SEED = 7
RPC_TIMEOUT_SECONDS = 60.0
THREAD_TIMEOUT_SECONDS = 120.0
# Long enough that a batch which waits for requests that never come would stall the test.
LONG_TIMEOUT_SECONDS = 600.0
TOLERANCE = 1e-5

# Clip lengths around YAMNet's patch boundaries (15,600 samples, then hops of 7,680) and longer.
CLIP_LENGTHS = (400, 15_600, 15_601, 23_280, 23_281, 48_000, 80_000, 100_000)


@pytest.fixture(scope="module")
def model_base_path(tmp_path_factory: pytest.TempPathFactory, offline_yamnet_dir: Path) -> Path:
    keras.utils.set_random_seed(CLASSIFIER_SEED)
    classifier = model.build_model(num_classes=len(features.DEFAULT_CLASS_NAMES))
    base_path = tmp_path_factory.mktemp("batched") / MODEL_NAME
    export.export_serving_model(
        classifier, offline_yamnet_dir, features.DEFAULT_CLASS_NAMES, base_path / str(VERSION)
    )
    return base_path


@pytest.fixture(scope="module")
def loaded_model(model_base_path: Path) -> model_manager.LoadedModel:
    return model_manager.load_model_version(MODEL_NAME, VERSION, model_base_path / str(VERSION))


@pytest.fixture(scope="module")
def waveforms() -> list[np.ndarray]:
    return [
        serving_models.make_waveform(length / features.SAMPLE_RATE, seed=index)[:length]
        for index, length in enumerate(CLIP_LENGTHS)
    ]


def _unbatched(loaded_model: model_manager.LoadedModel, waveform: np.ndarray) -> dict[str, np.ndarray]:
    outputs = loaded_model.signatures[features.SERVING_SIGNATURE](
        **{features.WAVEFORM_INPUT_KEY: tf.constant(waveform)}
    )
    return {name: tensor.numpy() for name, tensor in outputs.items()}


def _assert_same_outputs(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(actual) == set(expected)
    assert actual[features.ACCENT_OUTPUT_KEY] == expected[features.ACCENT_OUTPUT_KEY]
    for name in (features.CLASS_PROBABILITIES_OUTPUT_KEY, features.PATCH_PROBABILITIES_OUTPUT_KEY):
        assert actual[name].shape == expected[name].shape, name
        np.testing.assert_allclose(actual[name], expected[name], atol=TOLERANCE, err_msg=name)


class _Context:
    """Stands in for a grpc.ServicerContext: only ``is_active`` is used by the batcher."""

    def __init__(self, active: bool = True) -> None:
        self.active = active

    def is_active(self) -> bool:
        return self.active


def _predict_concurrently(
    batcher: batching.RequestBatcher,
    loaded_model: model_manager.LoadedModel,
    waveforms: list[np.ndarray],
    contexts: list[_Context] | None = None,
) -> list[concurrent.futures.Future]:
    contexts = contexts or [_Context() for _ in waveforms]
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=len(waveforms))
    futures = [
        executor.submit(batcher.predict, loaded_model, waveform, context)
        for waveform, context in zip(waveforms, contexts, strict=True)
    ]
    concurrent.futures.wait(futures, timeout=THREAD_TIMEOUT_SECONDS)
    executor.shutdown(wait=False)
    assert all(future.done() for future in futures), "a request was never answered"
    return futures


def test_the_export_has_a_batched_signature_with_a_batch_dimension_everywhere(loaded_model) -> None:
    signature = loaded_model.signatures[export.BATCH_SIGNATURE]
    _, input_specs = signature.structured_input_signature
    assert {name: spec.shape.as_list() for name, spec in input_specs.items()} == {
        export.WAVEFORMS_INPUT_KEY: [None, None],
        export.NUM_SAMPLES_INPUT_KEY: [None],
    }
    output_ranks = {name: spec.shape.rank for name, spec in signature.structured_outputs.items()}
    assert output_ranks == {
        features.CLASS_PROBABILITIES_OUTPUT_KEY: 2,
        features.ACCENT_OUTPUT_KEY: 1,
        features.PATCH_PROBABILITIES_OUTPUT_KEY: 3,
        export.NUM_PATCHES_OUTPUT_KEY: 1,
    }
    assert features.SERVING_SIGNATURE in loaded_model.signatures


def test_batched_signature_equals_serving_default_clip_by_clip(loaded_model, waveforms) -> None:
    answers = batching.call_batched_signature(loaded_model, waveforms)

    assert len(answers) == len(waveforms)
    for waveform, answer in zip(waveforms, answers, strict=True):
        _assert_same_outputs(answer, _unbatched(loaded_model, waveform))


def test_batched_signature_ignores_whatever_pads_the_rows(loaded_model, waveforms) -> None:
    lengths = np.array([waveform.shape[0] for waveform in waveforms], dtype=np.int32)
    padded = np.full((len(waveforms), int(lengths.max()) + 1000), 0.7, dtype=np.float32)
    for row, waveform in enumerate(waveforms):
        padded[row, : waveform.shape[0]] = waveform
    outputs = loaded_model.signatures[export.BATCH_SIGNATURE](
        waveforms=tf.constant(padded), num_samples=tf.constant(lengths)
    )
    for row, waveform in enumerate(waveforms):
        expected = _unbatched(loaded_model, waveform)
        num_patches = int(outputs[export.NUM_PATCHES_OUTPUT_KEY][row])
        np.testing.assert_allclose(
            outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY][row, :num_patches],
            expected[features.PATCH_PROBABILITIES_OUTPUT_KEY],
            atol=TOLERANCE,
        )
        assert not np.any(outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY][row, num_patches:])


def test_concurrent_requests_share_one_model_call_and_get_their_own_answers(loaded_model, waveforms) -> None:
    batcher = batching.RequestBatcher(
        max_batch_size=len(waveforms),
        batch_timeout_seconds=LONG_TIMEOUT_SECONDS,
        admitted_requests=lambda: len(waveforms),
    )

    futures = _predict_concurrently(batcher, loaded_model, waveforms)

    for waveform, future in zip(waveforms, futures, strict=True):
        _assert_same_outputs(future.result(), _unbatched(loaded_model, waveform))
    assert batcher.stats() == batching.BatchingStats(
        batched_calls=1, batched_requests=len(waveforms), largest_batch=len(waveforms), single_calls=0
    )


def test_a_batch_never_exceeds_max_batch_size(loaded_model, waveforms) -> None:
    batcher = batching.RequestBatcher(
        max_batch_size=3, batch_timeout_seconds=0.05, admitted_requests=lambda: len(waveforms)
    )

    futures = _predict_concurrently(batcher, loaded_model, waveforms)

    for waveform, future in zip(waveforms, futures, strict=True):
        _assert_same_outputs(future.result(), _unbatched(loaded_model, waveform))
    stats = batcher.stats()
    assert stats.largest_batch <= 3
    assert stats.batched_requests + stats.single_calls == len(waveforms)


def test_a_bad_waveform_fails_alone_while_the_others_are_answered(loaded_model, waveforms) -> None:
    bad = waveforms[0].copy()
    bad[10] = np.nan
    too_loud = waveforms[1] * 3.0
    requests = [waveforms[2], bad, waveforms[3], too_loud, waveforms[4]]
    batcher = batching.RequestBatcher(
        max_batch_size=8, batch_timeout_seconds=LONG_TIMEOUT_SECONDS, admitted_requests=lambda: 3
    )

    futures = _predict_concurrently(batcher, loaded_model, requests)

    for index in (1, 3):
        with pytest.raises(tf.errors.InvalidArgumentError):
            futures[index].result()
    for index in (0, 2, 4):
        _assert_same_outputs(futures[index].result(), _unbatched(loaded_model, requests[index]))
    stats = batcher.stats()
    assert (stats.batched_calls, stats.batched_requests, stats.single_calls) == (1, 3, 2)


def test_a_failed_batched_call_falls_back_to_one_call_per_request(
    loaded_model, waveforms, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise tf.errors.InvalidArgumentError(None, None, "the batch is refused")

    monkeypatch.setattr(batching, "call_batched_signature", refuse)
    requests = waveforms[:3]
    batcher = batching.RequestBatcher(
        max_batch_size=8, batch_timeout_seconds=LONG_TIMEOUT_SECONDS, admitted_requests=lambda: 3
    )

    futures = _predict_concurrently(batcher, loaded_model, requests)

    for waveform, future in zip(requests, futures, strict=True):
        _assert_same_outputs(future.result(), _unbatched(loaded_model, waveform))
    assert batcher.stats().single_calls == 3
    assert batcher.stats().batched_calls == 0


def test_a_request_cancelled_while_queued_is_left_out_of_the_batch(loaded_model, waveforms) -> None:
    contexts = [_Context(), _Context(active=False), _Context()]
    batcher = batching.RequestBatcher(
        max_batch_size=8, batch_timeout_seconds=LONG_TIMEOUT_SECONDS, admitted_requests=lambda: 3
    )

    futures = _predict_concurrently(batcher, loaded_model, waveforms[:3], contexts)

    with pytest.raises(rpc.ServingError) as raised:
        futures[1].result()
    assert raised.value.code == grpc.StatusCode.CANCELLED
    for index in (0, 2):
        _assert_same_outputs(futures[index].result(), _unbatched(loaded_model, waveforms[index]))
    assert batcher.stats().batched_requests == 2


class _ManualClock:
    """A clock that moves only when the batcher waits, by the time it asked to wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, timeout_seconds: float) -> None:
        self.waits.append(timeout_seconds)
        self.now += timeout_seconds


def test_the_wait_for_more_requests_is_bounded_by_the_timeout(
    loaded_model, waveforms, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _ManualClock()
    # Seven more requests hold slots but never arrive: the batch must go without them.
    batcher = batching.RequestBatcher(
        max_batch_size=8, batch_timeout_seconds=0.25, admitted_requests=lambda: 8, clock=clock
    )
    monkeypatch.setattr(batcher, "_wait_for_more", clock.wait)

    answer = batcher.predict(loaded_model, waveforms[5], _Context())

    _assert_same_outputs(answer, _unbatched(loaded_model, waveforms[5]))
    assert clock.waits, "the batch did not wait for the requests it expected"
    assert sum(clock.waits) == pytest.approx(0.25)
    assert all(0 < wait <= 0.25 for wait in clock.waits)


def test_a_lone_request_does_not_wait(loaded_model, waveforms, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _ManualClock()
    batcher = batching.RequestBatcher(
        max_batch_size=8,
        batch_timeout_seconds=LONG_TIMEOUT_SECONDS,
        admitted_requests=lambda: 1,
        clock=clock,
    )
    monkeypatch.setattr(batcher, "_wait_for_more", clock.wait)

    for waveform in waveforms[:2]:
        _assert_same_outputs(
            batcher.predict(loaded_model, waveform, _Context()), _unbatched(loaded_model, waveform)
        )

    assert clock.waits == []
    assert batcher.stats().single_calls == 2


@pytest.mark.parametrize(
    ("max_batch_size", "timeout_seconds"), [(0, 0.005), (8, -1.0), (8, float("inf")), (8, float("nan"))]
)
def test_bad_batching_settings_are_refused(max_batch_size: int, timeout_seconds: float) -> None:
    with pytest.raises(InvalidArgumentError):
        batching.RequestBatcher(max_batch_size=max_batch_size, batch_timeout_seconds=timeout_seconds)


def test_a_batcher_without_batch_threads_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        batching.RequestBatcher(batch_threads=0)


def test_serving_default_and_one_row_serving_batch_requests_are_batched(loaded_model, waveforms) -> None:
    batcher = batching.RequestBatcher(max_batch_size=8)
    waveform = waveforms[0]
    single = {features.WAVEFORM_INPUT_KEY: tf.constant(waveform)}
    np.testing.assert_array_equal(
        batcher.batchable_waveform(loaded_model, features.SERVING_SIGNATURE, single), waveform
    )
    padded = np.concatenate([waveform, np.full(1000, 0.5, dtype=np.float32)])[np.newaxis]
    one_row = {
        export.WAVEFORMS_INPUT_KEY: tf.constant(padded),
        export.NUM_SAMPLES_INPUT_KEY: tf.constant([waveform.shape[0]], dtype=tf.int32),
    }
    np.testing.assert_array_equal(
        batcher.batchable_waveform(loaded_model, export.BATCH_SIGNATURE, one_row), waveform
    )
    two_rows = {
        export.WAVEFORMS_INPUT_KEY: tf.constant(np.concatenate([padded, padded])),
        export.NUM_SAMPLES_INPUT_KEY: tf.constant([waveform.shape[0]] * 2, dtype=tf.int32),
    }
    assert batcher.batchable_waveform(loaded_model, export.BATCH_SIGNATURE, two_rows) is None
    assert batcher.batchable_waveform(loaded_model, features.EXAMPLES_SIGNATURE, single) is None
    assert (
        batching.RequestBatcher(max_batch_size=1).batchable_waveform(
            loaded_model, features.SERVING_SIGNATURE, single
        )
        is None
    )


def test_a_one_row_batch_answer_equals_the_batched_signature_on_that_row(loaded_model, waveforms) -> None:
    waveform = waveforms[2]
    expected = loaded_model.signatures[export.BATCH_SIGNATURE](
        **{
            export.WAVEFORMS_INPUT_KEY: tf.constant(waveform[np.newaxis]),
            export.NUM_SAMPLES_INPUT_KEY: tf.constant([waveform.shape[0]], dtype=tf.int32),
        }
    )

    answer = batching.as_one_row_batch(_unbatched(loaded_model, waveform))

    assert set(answer) == set(expected)
    for name, tensor in expected.items():
        assert answer[name].shape == tuple(tensor.shape), name
        if tensor.dtype == tf.string:
            assert answer[name].tolist() == tensor.numpy().tolist()
        else:
            np.testing.assert_allclose(answer[name], tensor.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def batching_server(model_base_path: Path) -> Iterator[server.RunningServer]:
    running = server.start_server(
        model_base_path,
        MODEL_NAME,
        host="127.0.0.1",
        port=0,
        poll_wait_seconds=0.2,
        max_in_flight=8,
        max_batch_size=8,
        batch_timeout_ms=1000.0,
    )
    try:
        assert running.manager.wait_for_version(VERSION, timeout_seconds=60.0) is not None
        yield running
    finally:
        running.stop(grace_seconds=1.0)


def _send_concurrently(address: str, requests: list[predict_pb2.PredictRequest]) -> list[object]:
    """Sends the requests at once, one channel each; returns each response or RpcError."""
    barrier = threading.Barrier(len(requests))

    def send(request: predict_pb2.PredictRequest) -> object:
        with grpc.insecure_channel(address, options=grpc_message_options()) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            barrier.wait()
            try:
                return stub.Predict(request, timeout=RPC_TIMEOUT_SECONDS)
            except grpc.RpcError as error:
                return error

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(requests)) as executor:
        return list(executor.map(send, requests))


def _response_outputs(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}


def test_concurrent_grpc_clients_are_batched_and_a_bad_one_fails_alone(
    batching_server, loaded_model, waveforms
) -> None:
    bad = waveforms[0].copy()
    bad[3] = np.inf
    sent = [*waveforms[1:6], bad, waveforms[6]]
    before = batching_server.prediction_servicer.batcher.stats()

    responses = _send_concurrently(
        batching_server.address, [client.build_predict_request(waveform, MODEL_NAME) for waveform in sent]
    )

    for index, (waveform, response) in enumerate(zip(sent, responses, strict=True)):
        if index == 5:
            assert isinstance(response, grpc.RpcError)
            assert response.code() == grpc.StatusCode.INVALID_ARGUMENT
            continue
        assert isinstance(response, predict_pb2.PredictResponse), response
        assert response.model_spec.version.value == VERSION
        _assert_same_outputs(_response_outputs(response), _unbatched(loaded_model, waveform))
    after = batching_server.prediction_servicer.batcher.stats()
    model_calls = (after.batched_calls - before.batched_calls) + (after.single_calls - before.single_calls)
    assert after.batched_requests > before.batched_requests
    assert model_calls < len(sent)


def test_concurrent_one_row_serving_batch_requests_share_model_calls(
    batching_server, loaded_model, waveforms
) -> None:
    sent = waveforms[:6]
    before = batching_server.prediction_servicer.batcher.stats()

    responses = _send_concurrently(
        batching_server.address,
        [
            client.build_predict_request(waveform, MODEL_NAME, signature_name=export.BATCH_SIGNATURE)
            for waveform in sent
        ],
    )

    for waveform, response in zip(sent, responses, strict=True):
        assert isinstance(response, predict_pb2.PredictResponse), response
        prediction = client.parse_predict_response(response)
        expected = _unbatched(loaded_model, waveform)
        np.testing.assert_allclose(
            list(prediction.class_probabilities.values()),
            expected[features.CLASS_PROBABILITIES_OUTPUT_KEY],
            atol=1e-5,
        )
        np.testing.assert_allclose(
            prediction.patch_probabilities, expected[features.PATCH_PROBABILITIES_OUTPUT_KEY], atol=1e-5
        )
    after = batching_server.prediction_servicer.batcher.stats()
    model_calls = (after.batched_calls - before.batched_calls) + (after.single_calls - before.single_calls)
    assert after.batched_requests > before.batched_requests
    assert model_calls < len(sent)


def test_the_in_flight_cap_still_refuses_requests_while_a_batch_waits(
    model_base_path: Path, waveforms, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server.start_server(
        model_base_path,
        MODEL_NAME,
        host="127.0.0.1",
        port=0,
        poll_wait_seconds=0.2,
        max_in_flight=2,
        max_batch_size=8,
        batch_timeout_ms=LONG_TIMEOUT_SECONDS * 1000.0,
    ) as running:
        assert running.manager.wait_for_version(VERSION, timeout_seconds=60.0) is not None
        batcher = running.prediction_servicer.batcher
        # The batch's leader expects a third request, which the cap will refuse.
        monkeypatch.setattr(batcher, "_batch_target", lambda: 3)
        request = client.build_predict_request(waveforms[6], MODEL_NAME)
        with grpc.insecure_channel(running.address, options=grpc_message_options()) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            queued = [stub.Predict.future(request, timeout=RPC_TIMEOUT_SECONDS) for _ in range(2)]
            for _ in range(600):
                if running.in_flight_model_calls() == 2:
                    break
                threading.Event().wait(0.05)
            assert running.in_flight_model_calls() == 2

            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(request, timeout=RPC_TIMEOUT_SECONDS)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

            monkeypatch.setattr(batcher, "_batch_target", lambda: 1)
            with batcher._condition:
                batcher._condition.notify_all()
            for future in queued:
                assert future.result(timeout=RPC_TIMEOUT_SECONDS).model_spec.version.value == VERSION
        assert batcher.stats().batched_requests == 2


def test_the_client_can_call_the_batched_signature_as_tf_serving_with_batching_needs(
    batching_server, loaded_model, waveforms
) -> None:
    with grpc.insecure_channel(batching_server.address, options=grpc_message_options()) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for waveform in waveforms[:3]:
            batched = client.predict_waveform(
                stub, waveform, MODEL_NAME, RPC_TIMEOUT_SECONDS, signature_name=export.BATCH_SIGNATURE
            )
            default = client.predict_waveform(stub, waveform, MODEL_NAME, RPC_TIMEOUT_SECONDS)
            expected = _unbatched(loaded_model, waveform)

            assert batched.accent == default.accent == expected[features.ACCENT_OUTPUT_KEY].decode()
            np.testing.assert_allclose(
                batched.patch_probabilities, default.patch_probabilities, atol=TOLERANCE
            )
            assert batched.class_probabilities == pytest.approx(default.class_probabilities, abs=TOLERANCE)
            assert batched.model_version == VERSION


def test_the_batched_request_carries_one_row_and_its_length() -> None:
    request = client.build_predict_request(
        np.zeros(1234, dtype=np.float32), MODEL_NAME, signature_name=export.BATCH_SIGNATURE
    )

    assert request.model_spec.signature_name == export.BATCH_SIGNATURE
    assert tf.make_ndarray(request.inputs[export.WAVEFORMS_INPUT_KEY]).shape == (1, 1234)
    assert tf.make_ndarray(request.inputs[export.NUM_SAMPLES_INPUT_KEY]).tolist() == [1234]


@pytest.fixture
def recorded_rpcs(batching_server, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Records the signature of each Predict and the model of each GetModelMetadata the server answers."""
    return serving_models.record_rpcs(batching_server, monkeypatch)


@pytest.fixture
def two_wavs(waveforms, tmp_path: Path) -> list[Path]:
    # A clip shorter than one patch and a clip of several patches.
    return [
        serving_models.write_wav(tmp_path / "short.wav", waveforms[0]),
        serving_models.write_wav(tmp_path / "long.wav", waveforms[5]),
    ]


def _predict_json(address: str, paths: list[Path], argv_signature: list[str], capsys) -> list[dict]:
    exit_code = cli.main(
        [
            "predict",
            *map(str, paths),
            "--server",
            address,
            "--model-name",
            MODEL_NAME,
            "--json",
            *argv_signature,
        ]
    )
    captured = capsys.readouterr()
    assert exit_code == 0, captured.err
    return [json.loads(line) for line in captured.out.splitlines()]


def test_predict_calls_serving_batch_when_the_model_lists_it_asking_once(
    batching_server, recorded_rpcs, two_wavs, capsys
) -> None:
    results = _predict_json(batching_server.address, two_wavs, [], capsys)

    assert [result["file"] for result in results] == [str(path) for path in two_wavs]
    assert recorded_rpcs["metadata_models"] == [MODEL_NAME]
    assert recorded_rpcs["predict_signatures"] == [export.BATCH_SIGNATURE] * len(two_wavs)


def test_predict_signature_flag_forces_serving_default_without_asking(
    batching_server, recorded_rpcs, two_wavs, capsys
) -> None:
    _predict_json(batching_server.address, two_wavs, ["--signature", features.SERVING_SIGNATURE], capsys)

    assert recorded_rpcs["metadata_models"] == []
    assert recorded_rpcs["predict_signatures"] == [features.SERVING_SIGNATURE] * len(two_wavs)


def test_a_file_gets_the_same_prediction_through_both_signatures(batching_server, two_wavs, capsys) -> None:
    through_default = _predict_json(
        batching_server.address, two_wavs, ["--signature", features.SERVING_SIGNATURE], capsys
    )
    through_batch = _predict_json(
        batching_server.address, two_wavs, ["--signature", export.BATCH_SIGNATURE], capsys
    )

    for default, batched in zip(through_default, through_batch, strict=True):
        assert batched["accent"] == default["accent"]
        assert list(batched["class_probabilities"]) == list(default["class_probabilities"])
        np.testing.assert_allclose(
            list(batched["class_probabilities"].values()),
            list(default["class_probabilities"].values()),
            atol=TOLERANCE,
        )
        np.testing.assert_allclose(
            batched["patch_probabilities"], default["patch_probabilities"], atol=TOLERANCE
        )
        assert batched["model_version"] == default["model_version"] == VERSION


def test_choose_signature_picks_serving_batch_of_the_exported_model(batching_server) -> None:
    with grpc.insecure_channel(batching_server.address, options=grpc_message_options()) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert client.choose_signature(stub, MODEL_NAME, RPC_TIMEOUT_SECONDS) == export.BATCH_SIGNATURE
