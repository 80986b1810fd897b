"""The servicers of the local server: TF Serving's PredictionService and ModelService.

* ``Predict`` runs a signature of the served SavedModel (``serving_default``
  unless the request names another);
* ``GetModelMetadata`` returns the SavedModel's signature defs;
* ``GetModelStatus`` reports the state of each version;
* ``Classify``, ``Regress``, ``MultiInference`` and
  ``HandleReloadConfigRequest`` answer UNIMPLEMENTED.

Each method is a thin layer over ``rpc.run_rpc`` (status codes, log line),
``model_lookup`` (the ModelSpec) and ``inputs`` (the tensors). No method
exists here that TF Serving lacks: a new endpoint is a new signature of the
served model, reached through ``Predict``.

Concurrent work: at most ``max_in_flight`` requests hold a model call slot at
once (``DEFAULT_MAX_IN_FLIGHT``); a Predict beyond that gets RESOURCE_EXHAUSTED
at once instead of queueing. Concurrent ``serving_default`` requests are
batched into one model call (``batching.RequestBatcher``); each of them keeps
its slot until it is answered. A Predict whose client has cancelled or whose
deadline has passed is not started (CANCELLED). A model call that has started
runs to its end: TensorFlow 2.16 has no per-call cancellation that is safe
across threads; the in-flight cap and the audio limit bound what such a call
costs.
"""

from __future__ import annotations

import threading

import grpc
import tensorflow as tf
from google.protobuf import message as protobuf_message
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from typing_extensions import override

from components import features
from components.serving import batching
from components.serving.batching import RequestBatcher
from components.serving.defaults import (
    DEFAULT_BATCH_TIMEOUT_MS,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_IN_FLIGHT,
)
from components.serving.inputs import DEFAULT_INPUT_LIMITS, InputLimits, check_inputs, decode_inputs
from components.serving.model_lookup import ModelLookup
from components.serving.model_manager import ModelManager
from components.serving.rpc import RequestRecord, ServingError, reject_unimplemented, run_rpc

SIGNATURE_DEF_METADATA_FIELD = "signature_def"


def _raise_if_dead(context: grpc.ServicerContext, stage: str) -> None:
    """Raises CANCELLED if the request's client has cancelled it or its deadline has passed."""
    if not context.is_active():
        raise ServingError(
            grpc.StatusCode.CANCELLED,
            f"the request was cancelled or timed out {stage}; the model was not run",
        )


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's PredictionService: Predict and GetModelMetadata."""

    def __init__(
        self,
        manager: ModelManager,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        input_limits: InputLimits = DEFAULT_INPUT_LIMITS,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS,
    ) -> None:
        """Creates the service.

        Args:
            manager: The manager that loads the model's versions.
            max_in_flight: Most requests holding a model call slot at once; a Predict beyond them is refused.
            input_limits: How large a request's inputs may be.
            max_batch_size: Most requests answered by one batched model call; 1 turns batching off.
            batch_timeout_ms: Longest wait of a batch for more requests, in milliseconds.

        Raises:
            ValueError: If ``max_in_flight``, ``max_batch_size`` or ``batch_timeout_ms`` is invalid.
        """
        if max_in_flight <= 0:
            raise ValueError(f"max_in_flight must be positive, got {max_in_flight}")
        self._lookup = ModelLookup(manager)
        self._input_limits = input_limits
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self.batcher = RequestBatcher(
            max_batch_size=max_batch_size,
            batch_timeout_seconds=batch_timeout_ms / 1000.0,
            admitted_requests=lambda: self.in_flight_model_calls,
        )

    @property
    def in_flight_model_calls(self) -> int:
        """How many model calls are running now."""
        with self._in_flight_lock:
            return self._in_flight

    def _take_model_call_slot(self) -> bool:
        with self._in_flight_lock:
            if self._in_flight >= self.max_in_flight:
                return False
            self._in_flight += 1
            return True

    def _release_model_call_slot(self) -> None:
        with self._in_flight_lock:
            self._in_flight -= 1

    @override
    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        """Runs a signature of the served model on the request's inputs."""
        return run_rpc("Predict", context, lambda record: self._predict(request, context, record))

    def _predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext, record: RequestRecord
    ) -> predict_pb2.PredictResponse:
        _raise_if_dead(context, "before it was read")
        model = self._lookup.resolve(request, record)
        signature_name = request.model_spec.signature_name or features.SERVING_SIGNATURE
        signature = model.signatures.get(signature_name)
        if signature is None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Serving signature name: '{signature_name}' not found in signature def "
                f"(the model has {sorted(model.signatures)})",
            )
        _, input_specs = signature.structured_input_signature
        output_names = list(signature.structured_outputs)
        unknown_outputs = sorted(set(request.output_filter) - set(output_names))
        if unknown_outputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {unknown_outputs} "
                f"(outputs: {sorted(output_names)})",
            )
        check_inputs(request.inputs, input_specs, self._input_limits)
        if not self._take_model_call_slot():
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is busy: {self.max_in_flight} model calls are running (--max-in-flight); "
                "try again later",
            )
        try:
            inputs = decode_inputs(request.inputs, input_specs, self._input_limits)
            _raise_if_dead(context, "while it waited")
            waveform = self.batcher.batchable_waveform(model, signature_name, inputs)
            if waveform is not None:
                outputs = self.batcher.predict(model, waveform, context)
                if signature_name != features.SERVING_SIGNATURE:
                    outputs = batching.as_one_row_batch(outputs)
            else:
                outputs = {name: tensor.numpy() for name, tensor in signature(**inputs).items()}
        finally:
            self._release_model_call_slot()
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature_name
        for output_name in request.output_filter or output_names:
            response.outputs[output_name].CopyFrom(tf.make_tensor_proto(outputs[output_name]))
        return response

    @override
    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Returns the served model's signature defs."""
        return run_rpc("GetModelMetadata", context, lambda record: self._get_model_metadata(request, record))

    def _get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, record: RequestRecord
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        # Noted first, so that a refused metadata field is logged with the model it asked about.
        record.note_model_spec(request.model_spec)
        if not request.metadata_field:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field "
                f"('{SIGNATURE_DEF_METADATA_FIELD}')",
            )
        unsupported = sorted(set(request.metadata_field) - {SIGNATURE_DEF_METADATA_FIELD})
        if unsupported:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Metadata field {unsupported} is not supported; only '{SIGNATURE_DEF_METADATA_FIELD}' is",
            )
        model = self._lookup.resolve(request, record)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.metadata[SIGNATURE_DEF_METADATA_FIELD].Pack(model.signature_def_map)
        return response

    @override
    def Classify(self, request: protobuf_message.Message, context: grpc.ServicerContext) -> None:
        """Answers UNIMPLEMENTED: the accent model has no classification signature."""
        reject_unimplemented("Classify", context, "use Predict")

    @override
    def Regress(self, request: protobuf_message.Message, context: grpc.ServicerContext) -> None:
        """Answers UNIMPLEMENTED: the accent model has no regression signature."""
        reject_unimplemented("Regress", context, "use Predict")

    @override
    def MultiInference(self, request: protobuf_message.Message, context: grpc.ServicerContext) -> None:
        """Answers UNIMPLEMENTED."""
        reject_unimplemented("MultiInference", context, "use Predict")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's ModelService: GetModelStatus."""

    def __init__(self, manager: ModelManager) -> None:
        """Creates the service.

        Args:
            manager: The manager that loads the model's versions.
        """
        self._lookup = ModelLookup(manager)

    @override
    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Reports the state of each version of the model (or of the version asked for)."""
        return run_rpc("GetModelStatus", context, lambda record: self._get_model_status(request, record))

    def _get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest, record: RequestRecord
    ) -> get_model_status_pb2.GetModelStatusResponse:
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self._lookup.version_statuses(request, record):
            version_status = response.model_version_status.add()
            version_status.version = status.version
            version_status.state = status.state
            version_status.status.error_code = status.error_code
            version_status.status.error_message = status.error_message
        return response

    @override
    def HandleReloadConfigRequest(
        self, request: protobuf_message.Message, context: grpc.ServicerContext
    ) -> None:
        """Answers UNIMPLEMENTED: this server serves one model from one base path."""
        reject_unimplemented("HandleReloadConfigRequest", context, "it serves one model from one base path")
