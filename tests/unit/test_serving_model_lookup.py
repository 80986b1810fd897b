"""The local server's ModelSpec check and model lookup, and its UNIMPLEMENTED answer, without gRPC."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from components.serving import model_lookup, rpc
from components.serving.model_manager import LoadedModel, ModelVersionState, VersionStatus

MODEL_NAME = "accent"
SERVED_VERSION = 3


class _StubManager:
    """Stands in for a ModelManager that serves one version, or none yet."""

    def __init__(self, served_version: int | None) -> None:
        self.model_name = MODEL_NAME
        self._model = (
            None
            if served_version is None
            else LoadedModel(
                name=MODEL_NAME,
                version=served_version,
                path=Path(str(served_version)),
                saved_model=None,
                signatures={},
                signature_def_map=get_model_metadata_pb2.SignatureDefMap(),
            )
        )

    def current(self) -> LoadedModel | None:
        return self._model

    def version_statuses(self) -> list[VersionStatus]:
        if self._model is None:
            return []
        return [
            VersionStatus(self._model.version, ModelVersionState.AVAILABLE),
            VersionStatus(1, ModelVersionState.END),
        ]


class _RecordingContext:
    """Stands in for a grpc.ServicerContext: records the status a handler aborts with."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise grpc.RpcError(details)


def _predict_request(name: str = MODEL_NAME, version: int | None = None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def _status_request(
    name: str = MODEL_NAME, version: int | None = None
) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


@pytest.mark.parametrize(
    "build_request", [predict_pb2.PredictRequest, get_model_status_pb2.GetModelStatusRequest]
)
def test_every_request_needs_a_model_spec_without_a_version_label(build_request) -> None:
    record = rpc.RequestRecord()
    with pytest.raises(rpc.ServingError, match="Missing ModelSpec") as raised:
        model_lookup.read_model_spec(build_request(), record)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT

    request = build_request()
    request.model_spec.name = MODEL_NAME
    request.model_spec.version_label = "stable"
    with pytest.raises(rpc.ServingError, match="stable") as raised:
        model_lookup.read_model_spec(request, record)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert record.model_name == MODEL_NAME


def test_resolve_returns_the_served_model_and_notes_its_version() -> None:
    lookup = model_lookup.ModelLookup(_StubManager(SERVED_VERSION))
    for request in (_predict_request(), _predict_request(version=SERVED_VERSION)):
        record = rpc.RequestRecord()
        assert lookup.resolve(request, record).version == SERVED_VERSION
        assert (record.model_name, record.version) == (MODEL_NAME, SERVED_VERSION)


@pytest.mark.parametrize(
    ("served_version", "request_", "expected_text"),
    [
        (SERVED_VERSION, _predict_request(name="dialect"), "Latest(dialect)"),
        (SERVED_VERSION, _predict_request(version=1), "Specific(accent, 1)"),
        (None, _predict_request(), "has been loaded yet"),
    ],
)
def test_resolve_answers_not_found_as_tf_serving_does(
    served_version: int | None, request_: predict_pb2.PredictRequest, expected_text: str
) -> None:
    lookup = model_lookup.ModelLookup(_StubManager(served_version))
    with pytest.raises(
        rpc.ServingError, match=expected_text.replace("(", r"\(").replace(")", r"\)")
    ) as raised:
        lookup.resolve(request_, rpc.RequestRecord())
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_version_statuses_are_all_versions_or_the_one_asked_for() -> None:
    lookup = model_lookup.ModelLookup(_StubManager(SERVED_VERSION))
    record = rpc.RequestRecord()
    assert [status.version for status in lookup.version_statuses(_status_request(), record)] == [
        SERVED_VERSION,
        1,
    ]
    assert [status.version for status in lookup.version_statuses(_status_request(version=1), record)] == [1]
    for request in (_status_request(name="dialect"), _status_request(version=42)):
        with pytest.raises(rpc.ServingError) as raised:
            lookup.version_statuses(request, rpc.RequestRecord())
        assert raised.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(rpc.ServingError, match="any versions"):
        model_lookup.ModelLookup(_StubManager(None)).version_statuses(_status_request(), rpc.RequestRecord())


def test_unimplemented_methods_are_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=rpc.__name__)
    context = _RecordingContext()
    with pytest.raises(grpc.RpcError):
        rpc.reject_unimplemented("Classify", context, "use Predict")
    assert context.code == grpc.StatusCode.UNIMPLEMENTED
    assert context.details == "Classify is not implemented by this server; use Predict"
    assert any(
        record.getMessage().startswith("Classify model=- version=- status=UNIMPLEMENTED")
        for record in caplog.records
    )
