"""The local TF-Serving-compatible server, over loopback gRPC with tensorflow-serving-api's client."""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from components import features
from components.serving import client, rpc, server
from tests import serving_models

MODEL_NAME = "accent"
SERVED_VERSION = 3
EXPECTED_INPUT_MESSAGE = "expected input 'waveform': float32 tensor of shape [num_samples]"
RPC_TIMEOUT_SECONDS = 20.0
OUT_OF_RANGE_VERSION_NAME = "99999999999999999999"


@pytest.fixture(scope="module")
def model_base_path(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    base_path = tmp_path_factory.mktemp("served") / MODEL_NAME
    serving_models.push_cached_version(model_cache, base_path, 1)
    serving_models.push_cached_version(model_cache, base_path, SERVED_VERSION)
    # Directories whose names are not integers are not versions, whatever they hold.
    shutil.copytree(serving_models.cached_saved_model(model_cache, 5), base_path / "v5")
    shutil.copytree(serving_models.cached_saved_model(model_cache, 6), base_path / "6.tmp")
    # Nor are directories whose number does not fit in int64; they must not hide the valid versions.
    shutil.copytree(serving_models.cached_saved_model(model_cache, 7), base_path / OUT_OF_RANGE_VERSION_NAME)
    return base_path


@pytest.fixture(scope="module")
def running_server(model_base_path: Path) -> Iterator[server.RunningServer]:
    with serving_models.loopback_server(model_base_path, MODEL_NAME, SERVED_VERSION) as running:
        yield running


@pytest.fixture(scope="module")
def channel(running_server: server.RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(running_server.address) as open_channel:
        yield open_channel


@pytest.fixture(scope="module")
def prediction_stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def in_process_signature(model_base_path: Path):
    loaded = tf.saved_model.load(str(model_base_path / str(SERVED_VERSION)))
    return loaded.signatures[features.SERVING_SIGNATURE]


def _waveform_request(
    waveform: np.ndarray, model_name: str = MODEL_NAME, input_name: str = features.WAVEFORM_INPUT_KEY
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(waveform))
    return request


def _assert_still_answers(prediction_stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    response = prediction_stub.Predict(
        _waveform_request(serving_models.make_waveform(0.5)), timeout=RPC_TIMEOUT_SECONDS
    )
    assert response.model_spec.version.value == SERVED_VERSION


@pytest.mark.parametrize("seconds", [0.2, 1.0, 3.3])
def test_predict_matches_the_in_process_model(prediction_stub, in_process_signature, seconds: float) -> None:
    waveform = serving_models.make_waveform(seconds, seed=int(seconds * 10))
    response = prediction_stub.Predict(
        client.build_predict_request(waveform, MODEL_NAME), timeout=RPC_TIMEOUT_SECONDS
    )
    expected = in_process_signature(waveform=tf.constant(waveform))

    assert response.model_spec.name == MODEL_NAME
    assert response.model_spec.version.value == SERVED_VERSION
    assert response.model_spec.signature_name == features.SERVING_SIGNATURE
    assert set(response.outputs) == {
        features.CLASS_PROBABILITIES_OUTPUT_KEY,
        features.ACCENT_OUTPUT_KEY,
        features.PATCH_PROBABILITIES_OUTPUT_KEY,
    }
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs[features.CLASS_PROBABILITIES_OUTPUT_KEY]),
        expected[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy(),
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY]),
        expected[features.PATCH_PROBABILITIES_OUTPUT_KEY].numpy(),
        rtol=1e-6,
        atol=1e-7,
    )
    accent = tf.make_ndarray(response.outputs[features.ACCENT_OUTPUT_KEY])
    assert accent.shape == ()
    assert accent.item() == expected[features.ACCENT_OUTPUT_KEY].numpy()


def test_predict_waveform_returns_named_probabilities(prediction_stub, in_process_signature) -> None:
    waveform = serving_models.make_waveform(2.0, seed=7)
    prediction = client.predict_waveform(prediction_stub, waveform, MODEL_NAME, timeout=RPC_TIMEOUT_SECONDS)
    expected = in_process_signature(waveform=tf.constant(waveform))

    assert prediction.model_version == SERVED_VERSION
    assert prediction.accent == serving_models.expected_accent(SERVED_VERSION)
    assert list(prediction.class_probabilities) == list(features.DEFAULT_CLASS_NAMES)
    np.testing.assert_allclose(
        list(prediction.class_probabilities.values()),
        expected[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy(),
        rtol=1e-6,
    )
    assert prediction.patch_probabilities.shape == (4, len(features.DEFAULT_CLASS_NAMES))


def test_a_request_naming_the_served_version_is_answered(prediction_stub) -> None:
    request = _waveform_request(serving_models.make_waveform(1.0))
    request.model_spec.version.value = SERVED_VERSION
    request.model_spec.signature_name = features.SERVING_SIGNATURE
    response = prediction_stub.Predict(request, timeout=RPC_TIMEOUT_SECONDS)
    assert response.model_spec.version.value == SERVED_VERSION


def test_output_filter_returns_only_the_named_outputs(prediction_stub) -> None:
    request = _waveform_request(serving_models.make_waveform(1.0))
    request.output_filter.append(features.ACCENT_OUTPUT_KEY)
    response = prediction_stub.Predict(request, timeout=RPC_TIMEOUT_SECONDS)
    assert list(response.outputs) == [features.ACCENT_OUTPUT_KEY]


def _float64_request() -> predict_pb2.PredictRequest:
    return _waveform_request(serving_models.make_waveform(1.0).astype(np.float64))


def _two_dimensional_request() -> predict_pb2.PredictRequest:
    return _waveform_request(serving_models.make_waveform(1.0).reshape(2, -1))


def _empty_request() -> predict_pb2.PredictRequest:
    return _waveform_request(np.zeros(0, dtype=np.float32))


def _wrong_input_name_request() -> predict_pb2.PredictRequest:
    return _waveform_request(serving_models.make_waveform(1.0), input_name="audio")


def _unknown_model_request() -> predict_pb2.PredictRequest:
    return _waveform_request(serving_models.make_waveform(1.0), model_name="dialect")


def _version_request(version: int) -> predict_pb2.PredictRequest:
    request = _waveform_request(serving_models.make_waveform(1.0))
    request.model_spec.version.value = version
    return request


def _unknown_signature_request() -> predict_pb2.PredictRequest:
    request = _waveform_request(serving_models.make_waveform(1.0))
    request.model_spec.signature_name = "classify_examples"
    return request


def _version_label_request() -> predict_pb2.PredictRequest:
    request = _waveform_request(serving_models.make_waveform(1.0))
    request.model_spec.version_label = "stable"
    return request


def _nan_waveform_request() -> predict_pb2.PredictRequest:
    waveform = serving_models.make_waveform(1.0)
    waveform[100] = np.nan
    return _waveform_request(waveform)


def _declared_shape_request(dimensions: list[int], values: list[float]) -> predict_pb2.PredictRequest:
    """A request whose waveform declares ``dimensions`` but carries only ``values`` (TensorProto fill)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    tensor_proto = request.inputs[features.WAVEFORM_INPUT_KEY]
    tensor_proto.dtype = types_pb2.DT_FLOAT
    for size in dimensions:
        tensor_proto.tensor_shape.dim.add().size = size
    tensor_proto.float_val.extend(values)
    return request


def _thirty_minutes_in_two_values_request() -> predict_pb2.PredictRequest:
    return _declared_shape_request([30 * 60 * features.SAMPLE_RATE], [0.25, -0.25])


def _negative_dimension_request() -> predict_pb2.PredictRequest:
    return _declared_shape_request([-5], [0.25])


def _huge_dimension_request() -> predict_pb2.PredictRequest:
    return _declared_shape_request([2**62], [0.25])


@pytest.mark.parametrize(
    ("build_request", "expected_code", "expected_message_parts"),
    [
        (_float64_request, grpc.StatusCode.INVALID_ARGUMENT, ["float64", EXPECTED_INPUT_MESSAGE]),
        (_two_dimensional_request, grpc.StatusCode.INVALID_ARGUMENT, ["[2, 8000]", EXPECTED_INPUT_MESSAGE]),
        (_empty_request, grpc.StatusCode.INVALID_ARGUMENT, ["empty", EXPECTED_INPUT_MESSAGE]),
        (_wrong_input_name_request, grpc.StatusCode.INVALID_ARGUMENT, ["'audio'", EXPECTED_INPUT_MESSAGE]),
        (_unknown_model_request, grpc.StatusCode.NOT_FOUND, ["Latest(dialect)"]),
        # An older version than the served one, one that was never pushed, and one whose directory is "6.tmp".
        (functools.partial(_version_request, 1), grpc.StatusCode.NOT_FOUND, ["Specific(accent, 1)"]),
        (functools.partial(_version_request, 42), grpc.StatusCode.NOT_FOUND, ["Specific(accent, 42)"]),
        (functools.partial(_version_request, 6), grpc.StatusCode.NOT_FOUND, ["Specific(accent, 6)"]),
        (_unknown_signature_request, grpc.StatusCode.INVALID_ARGUMENT, ["'classify_examples'"]),
        (_version_label_request, grpc.StatusCode.INVALID_ARGUMENT, ["stable"]),
        (_nan_waveform_request, grpc.StatusCode.INVALID_ARGUMENT, ["rejects NaN and Inf samples"]),
        (
            _thirty_minutes_in_two_values_request,
            grpc.StatusCode.INVALID_ARGUMENT,
            ["28800000 samples", "at most 9600000", "600 s"],
        ),
        (_negative_dimension_request, grpc.StatusCode.INVALID_ARGUMENT, ["negative dimension", "-5"]),
        (_huge_dimension_request, grpc.StatusCode.INVALID_ARGUMENT, [str(2**62), "at most 9600000"]),
    ],
)
def test_bad_requests_get_tf_serving_codes_and_the_server_keeps_answering(
    prediction_stub, build_request, expected_code: grpc.StatusCode, expected_message_parts: list[str]
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        prediction_stub.Predict(build_request(), timeout=RPC_TIMEOUT_SECONDS)
    assert raised.value.code() == expected_code
    for part in expected_message_parts:
        assert part in raised.value.details()
    _assert_still_answers(prediction_stub)


def _examples_request(serialized_examples: list[bytes]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = features.EXAMPLES_SIGNATURE
    request.inputs[features.EXAMPLES_INPUT_KEY].CopyFrom(
        tf.make_tensor_proto(serialized_examples, dtype=tf.string)
    )
    return request


def test_the_examples_signature_scores_serialized_examples(prediction_stub) -> None:
    example = tf.train.Example()
    example.features.feature[features.EMBEDDING_KEY].float_list.value.extend([0.5] * features.EMBEDDING_SIZE)
    response = prediction_stub.Predict(
        _examples_request([example.SerializeToString()] * 2), timeout=RPC_TIMEOUT_SECONDS
    )
    probabilities = tf.make_ndarray(response.outputs[features.PROBABILITIES_OUTPUT_KEY])
    assert probabilities.shape == (2, len(features.DEFAULT_CLASS_NAMES))
    np.testing.assert_allclose(probabilities.sum(axis=1), [1.0, 1.0], rtol=1e-5)


def test_garbage_bytes_to_the_examples_signature_are_invalid_argument(prediction_stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        prediction_stub.Predict(_examples_request([b"\x00\xffnot a tf.Example"]), timeout=RPC_TIMEOUT_SECONDS)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Could not parse example input" in raised.value.details()
    _assert_still_answers(prediction_stub)


def test_too_many_declared_strings_are_rejected_before_decoding(prediction_stub) -> None:
    request = _examples_request([b"x"])
    request.inputs[features.EXAMPLES_INPUT_KEY].tensor_shape.dim[0].size = 2**40
    with pytest.raises(grpc.RpcError) as raised:
        prediction_stub.Predict(request, timeout=RPC_TIMEOUT_SECONDS)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(2**40) in raised.value.details()
    _assert_still_answers(prediction_stub)


class _RecordingContext:
    """Stands in for a grpc.ServicerContext: records the status a handler aborts with."""

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def is_active(self) -> bool:
        return self.active

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise grpc.RpcError(details)


@pytest.mark.parametrize(
    ("error", "expected_code"),
    [
        (tf.errors.InvalidArgumentError(None, None, "bad input"), grpc.StatusCode.INVALID_ARGUMENT),
        (tf.errors.InternalError(None, None, "kernel failed"), grpc.StatusCode.INTERNAL),
        (tf.errors.UnknownError(None, None, "something broke"), grpc.StatusCode.INTERNAL),
        (RuntimeError("a bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_from_the_model_map_to_tf_serving_codes(
    error: Exception, expected_code: grpc.StatusCode
) -> None:
    def fail(record: object) -> None:
        raise error

    context = _RecordingContext()
    with pytest.raises(grpc.RpcError):
        rpc.run_rpc("Predict", context, fail)
    assert context.code == expected_code


def test_a_request_without_model_spec_is_invalid(prediction_stub) -> None:
    request = predict_pb2.PredictRequest()
    request.inputs[features.WAVEFORM_INPUT_KEY].CopyFrom(
        tf.make_tensor_proto(serving_models.make_waveform(1.0))
    )
    with pytest.raises(grpc.RpcError) as raised:
        prediction_stub.Predict(request, timeout=RPC_TIMEOUT_SECONDS)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_model_metadata_lists_the_serving_signature(prediction_stub) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL_NAME
    request.metadata_field.append("signature_def")
    response = prediction_stub.GetModelMetadata(request, timeout=RPC_TIMEOUT_SECONDS)

    assert response.model_spec.name == MODEL_NAME
    assert response.model_spec.version.value == SERVED_VERSION
    signature_def_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_def_map)
    signature = signature_def_map.signature_def[features.SERVING_SIGNATURE]
    assert list(signature.inputs) == [features.WAVEFORM_INPUT_KEY]
    waveform_info = signature.inputs[features.WAVEFORM_INPUT_KEY]
    assert waveform_info.dtype == types_pb2.DT_FLOAT
    assert [dimension.size for dimension in waveform_info.tensor_shape.dim] == [-1]
    num_classes = len(features.DEFAULT_CLASS_NAMES)
    outputs = {
        name: (info.dtype, [dimension.size for dimension in info.tensor_shape.dim])
        for name, info in signature.outputs.items()
    }
    assert outputs == {
        features.CLASS_PROBABILITIES_OUTPUT_KEY: (types_pb2.DT_FLOAT, [num_classes]),
        features.ACCENT_OUTPUT_KEY: (types_pb2.DT_STRING, []),
        features.PATCH_PROBABILITIES_OUTPUT_KEY: (types_pb2.DT_FLOAT, [-1, num_classes]),
    }


@pytest.mark.parametrize(
    ("model_name", "metadata_fields", "expected_code"),
    [
        (MODEL_NAME, [], grpc.StatusCode.INVALID_ARGUMENT),
        (MODEL_NAME, ["signature_def", "vocabulary"], grpc.StatusCode.INVALID_ARGUMENT),
        ("dialect", ["signature_def"], grpc.StatusCode.NOT_FOUND),
    ],
)
def test_get_model_metadata_rejects_bad_requests(
    prediction_stub, model_name: str, metadata_fields: list[str], expected_code: grpc.StatusCode
) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model_name
    request.metadata_field.extend(metadata_fields)
    with pytest.raises(grpc.RpcError) as raised:
        prediction_stub.GetModelMetadata(request, timeout=RPC_TIMEOUT_SECONDS)
    assert raised.value.code() == expected_code


def test_get_model_status_reports_the_served_version_available(model_stub) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL_NAME
    response = model_stub.GetModelStatus(request, timeout=RPC_TIMEOUT_SECONDS)

    assert len(response.model_version_status) == 1
    version_status = response.model_version_status[0]
    assert version_status.version == SERVED_VERSION
    assert version_status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert version_status.status.error_code == 0
    assert version_status.status.error_message == ""

    request.model_spec.version.value = SERVED_VERSION
    response = model_stub.GetModelStatus(request, timeout=RPC_TIMEOUT_SECONDS)
    assert [status.version for status in response.model_version_status] == [SERVED_VERSION]


@pytest.mark.parametrize(("model_name", "version"), [("dialect", None), (MODEL_NAME, 1), (MODEL_NAME, 42)])
def test_get_model_status_of_unknown_models_and_versions_is_not_found(
    model_stub, model_name: str, version: int | None
) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = version
    with pytest.raises(grpc.RpcError) as raised:
        model_stub.GetModelStatus(request, timeout=RPC_TIMEOUT_SECONDS)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_unimplemented_methods_answer_unimplemented(prediction_stub, model_stub) -> None:
    calls = [
        lambda: prediction_stub.Classify(
            classification_pb2.ClassificationRequest(), timeout=RPC_TIMEOUT_SECONDS
        ),
        lambda: prediction_stub.Regress(regression_pb2.RegressionRequest(), timeout=RPC_TIMEOUT_SECONDS),
        lambda: prediction_stub.MultiInference(
            inference_pb2.MultiInferenceRequest(), timeout=RPC_TIMEOUT_SECONDS
        ),
        lambda: model_stub.HandleReloadConfigRequest(
            model_management_pb2.ReloadConfigRequest(), timeout=RPC_TIMEOUT_SECONDS
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    _assert_still_answers(prediction_stub)


def test_each_request_is_logged_with_its_outcome_and_latency(prediction_stub, caplog) -> None:
    caplog.set_level(logging.INFO, logger=rpc.__name__)
    _assert_still_answers(prediction_stub)
    with pytest.raises(grpc.RpcError):
        prediction_stub.Predict(_unknown_model_request(), timeout=RPC_TIMEOUT_SECONDS)

    request_lines = [record.getMessage() for record in caplog.records if record.name == rpc.__name__]
    assert any(
        line.startswith(f"Predict model={MODEL_NAME} version={SERVED_VERSION} status=OK latency_ms=")
        for line in request_lines
    )
    assert any(
        line.startswith("Predict model=dialect version=- status=NOT_FOUND latency_ms=")
        for line in request_lines
    )


def test_ten_minutes_of_audio_fit_in_one_request(prediction_stub) -> None:
    waveform = np.zeros(10 * 60 * features.SAMPLE_RATE, dtype=np.float32)
    waveform[::7] = 0.25
    response = prediction_stub.Predict(_waveform_request(waveform), timeout=RPC_TIMEOUT_SECONDS)
    num_patches = tf.make_ndarray(response.outputs[features.PATCH_PROBABILITIES_OUTPUT_KEY]).shape[0]
    expected_patches = 1 + -(
        -(waveform.size - serving_models.PATCH_WINDOW_SAMPLES) // serving_models.PATCH_HOP_SAMPLES
    )
    assert num_patches == expected_patches


def test_messages_above_the_configured_limit_are_rejected(model_base_path: Path) -> None:
    with server.start_server(
        model_base_path,
        MODEL_NAME,
        host="127.0.0.1",
        port=0,
        poll_wait_seconds=0.2,
        max_message_bytes=64 * 1024,
    ) as small_server:
        assert small_server.manager.wait_for_version(SERVED_VERSION, timeout_seconds=30.0) is not None
        with grpc.insecure_channel(small_server.address) as small_channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(small_channel)
            stub.Predict(_waveform_request(serving_models.make_waveform(0.5)), timeout=RPC_TIMEOUT_SECONDS)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(
                    _waveform_request(serving_models.make_waveform(2.0)), timeout=RPC_TIMEOUT_SECONDS
                )
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_longest_audio_accepted_is_configurable(model_base_path: Path) -> None:
    with server.start_server(
        model_base_path, MODEL_NAME, host="127.0.0.1", port=0, poll_wait_seconds=0.2, max_audio_seconds=1.0
    ) as short_server:
        assert short_server.manager.wait_for_version(SERVED_VERSION, timeout_seconds=30.0) is not None
        with grpc.insecure_channel(short_server.address) as short_channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(short_channel)
            response = stub.Predict(
                _waveform_request(serving_models.make_waveform(1.0)), timeout=RPC_TIMEOUT_SECONDS
            )
            assert response.model_spec.version.value == SERVED_VERSION
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(
                    _waveform_request(serving_models.make_waveform(1.5)), timeout=RPC_TIMEOUT_SECONDS
                )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "24000 samples" in raised.value.details()
    assert "at most 16000" in raised.value.details()


def test_the_served_version_is_not_hidden_by_an_out_of_range_version_directory(model_stub) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL_NAME
    response = model_stub.GetModelStatus(request, timeout=RPC_TIMEOUT_SECONDS)
    assert [status.version for status in response.model_version_status] == [SERVED_VERSION]


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("max_message_bytes", 0),
        ("poll_wait_seconds", 0.0),
        ("max_audio_seconds", 0.0),
        ("max_in_flight", 0),
        ("max_workers", 0),
    ],
)
def test_start_server_rejects_bad_arguments(model_base_path: Path, argument: str, value: float) -> None:
    with pytest.raises(ValueError, match=argument):
        server.start_server(model_base_path, MODEL_NAME, **{argument: value})


def test_a_port_in_use_is_refused(running_server: server.RunningServer, model_base_path: Path) -> None:
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{running_server.port}"):
        server.start_server(model_base_path, MODEL_NAME, host="127.0.0.1", port=running_server.port)


def test_before_any_version_loads_requests_are_not_found(tmp_path: Path) -> None:
    with (
        server.start_server(tmp_path, MODEL_NAME, host="127.0.0.1", port=0) as empty_server,
        grpc.insecure_channel(empty_server.address) as empty_channel,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(empty_channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(_waveform_request(serving_models.make_waveform(0.5)), timeout=RPC_TIMEOUT_SECONDS)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "has been loaded yet" in raised.value.details()
