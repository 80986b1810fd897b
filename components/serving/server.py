"""A local TF-Serving-compatible gRPC server for the accent model.

``serve`` backs ``accent-pipeline serve``. When the ``tensorflow_model_server``
binary is on PATH it runs that binary; otherwise it serves the model itself
with the same gRPC API (tensorflow-serving-api's ``PredictionService`` and
``ModelService``), so the same client works against both:

* ``Predict`` runs a signature of the served SavedModel (``serving_default``
  unless the request names another);
* ``GetModelMetadata`` returns the SavedModel's signature defs;
* ``GetModelStatus`` reports the state of each version;
* ``Classify``, ``Regress``, ``MultiInference`` and
  ``HandleReloadConfigRequest`` answer UNIMPLEMENTED.

Versions are loaded and swapped by ``model_manager.ModelManager``. Status
codes follow TF Serving: an unknown model or version is NOT_FOUND, a request
that does not match the signature is INVALID_ARGUMENT, and an error inside the
model is INTERNAL. Each request is logged on one INFO line with its method,
model, version, status code and latency.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from types import FrameType
from typing import TypeVar

import grpc
import tensorflow as tf
from google.protobuf import message as protobuf_message
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from typing_extensions import override

from components import features
from components.serving.grpc_options import DEFAULT_MAX_MESSAGE_BYTES, grpc_message_options
from components.serving.model_manager import LoadedModel, ModelManager

logger = logging.getLogger(__name__)

# Name of TF Serving's binary; when it is on PATH, ``serve`` runs it.
MODEL_SERVER_BINARY = "tensorflow_model_server"

# Seconds between two polls of the model base path (TF Serving's --file_system_poll_wait_seconds).
DEFAULT_POLL_WAIT_SECONDS = 1.0

# Threads answering requests.
DEFAULT_MAX_WORKERS = 16

# Seconds in-flight requests get to finish at shutdown.
DEFAULT_SHUTDOWN_GRACE_SECONDS = 5.0

SIGNATURE_DEF_METADATA_FIELD = "signature_def"

# Names of a signature input's unknown dimensions, for error messages.
_DIMENSION_NAMES: dict[str, tuple[str, ...]] = {features.WAVEFORM_INPUT_KEY: ("num_samples",)}

_Response = TypeVar("_Response", bound=protobuf_message.Message)


class ServingError(Exception):
    """A request that fails with a gRPC status code, as TF Serving would answer it."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class _RequestRecord:
    """What the request log line reports about a request."""

    model_name: str = "-"
    version: int | None = None


def _run_rpc(
    method: str,
    context: grpc.ServicerContext,
    handler: Callable[[_RequestRecord], _Response],
) -> _Response:
    """Runs one RPC: maps errors to status codes and logs the outcome and latency."""
    record = _RequestRecord()
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    error_message = ""
    response = None
    try:
        response = handler(record)
    except ServingError as error:
        code, error_message = error.code, error.message
    except tf.errors.OpError as error:
        code, error_message = grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error.message}"
        logger.error("%s: the model failed: %s", method, error_message)
    except Exception as error:
        logger.exception("%s raised an unexpected error", method)
        code, error_message = grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}"
    latency_ms = (time.perf_counter() - started) * 1000.0
    logger.info(
        "%s model=%s version=%s status=%s latency_ms=%.1f",
        method,
        record.model_name,
        "-" if record.version is None else record.version,
        code.name,
        latency_ms,
    )
    if code is not grpc.StatusCode.OK or response is None:
        context.abort(code, error_message)
    return response


def _describe_shape(input_name: str, shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "any shape"
    dimension_names = _DIMENSION_NAMES.get(input_name, ())
    described = []
    for position, dimension in enumerate(shape.as_list()):
        if dimension is not None:
            described.append(str(dimension))
        elif position < len(dimension_names):
            described.append(dimension_names[position])
        else:
            described.append("?")
    return f"shape [{', '.join(described)}]"


def describe_expected_input(input_name: str, spec: tf.TensorSpec) -> str:
    """Describes what a signature expects for one input, for error messages.

    Args:
        input_name: The input's key in the signature.
        spec: The input's TensorSpec.

    Returns:
        E.g. "expected input 'waveform': float32 tensor of shape [num_samples]".
    """
    shape_text = _describe_shape(input_name, spec.shape)
    return f"expected input '{input_name}': {spec.dtype.name} tensor of {shape_text}"


def _dtype_name(dtype_enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(dtype_enum).name
    except TypeError:
        return f"dtype enum {dtype_enum}"


def decode_inputs(
    tensor_protos: Mapping[str, tensor_pb2.TensorProto],
    input_specs: Mapping[str, tf.TensorSpec],
) -> dict[str, tf.Tensor]:
    """Checks a request's input tensors against a signature and decodes them.

    Args:
        tensor_protos: The request's inputs.
        input_specs: The signature's inputs.

    Returns:
        One tensor per signature input.

    Raises:
        ServingError: INVALID_ARGUMENT if the names, a dtype or a shape do not
            match the signature, or an input is empty.
    """
    expected = "; ".join(describe_expected_input(name, spec) for name, spec in sorted(input_specs.items()))
    sent_names = set(tensor_protos.keys())
    if sent_names != set(input_specs):
        missing = sorted(set(input_specs) - sent_names)
        unexpected = sorted(sent_names - set(input_specs))
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"inputs do not match the signature (missing: {missing}, unexpected: {unexpected}); {expected}",
        )
    decoded = {}
    for name, spec in input_specs.items():
        tensor_proto = tensor_protos[name]
        expected_input = describe_expected_input(name, spec)
        if tensor_proto.dtype != spec.dtype.as_datatype_enum:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' has dtype {_dtype_name(tensor_proto.dtype)}; {expected_input}",
            )
        if tensor_proto.tensor_shape.unknown_rank:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' has no shape; {expected_input}"
            )
        sent_shape = tf.TensorShape([dimension.size for dimension in tensor_proto.tensor_shape.dim])
        if not spec.shape.is_compatible_with(sent_shape):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' has shape {sent_shape.as_list()}; {expected_input}",
            )
        try:
            array = tf.make_ndarray(tensor_proto)
        except (ValueError, TypeError) as error:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' cannot be decoded ({error}); {expected_input}",
            ) from None
        if array.shape != tuple(sent_shape.as_list()):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input '{name}' holds {array.size} values, not {sent_shape.as_list()}; {expected_input}",
            )
        if array.size == 0:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is empty; {expected_input}")
        decoded[name] = tf.constant(array, dtype=spec.dtype)
    return decoded


def _record_model_spec(model_spec: model_pb2.ModelSpec, record: _RequestRecord) -> None:
    """Notes the model and version a request asks for, for the request log line."""
    record.model_name = model_spec.name or "-"
    if model_spec.HasField("version"):
        record.version = model_spec.version.value


def _servable_request_text(model_name: str, model_spec: model_pb2.ModelSpec) -> str:
    if model_spec.HasField("version"):
        return f"Specific({model_name}, {model_spec.version.value})"
    return f"Latest({model_name})"


class _ModelLookup:
    """Finds the loaded model a request's ModelSpec names."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def resolve(self, request: protobuf_message.Message, record: _RequestRecord) -> LoadedModel:
        """Returns the model that answers ``request``, or raises NOT_FOUND / INVALID_ARGUMENT."""
        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        model_spec = request.model_spec
        _record_model_spec(model_spec, record)
        if model_spec.HasField("version_label"):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Unrecognized servable version label: {model_spec.version_label} "
                "(this server has no version labels; name a version number or none for the latest)",
            )
        servable_request = _servable_request_text(model_spec.name, model_spec)
        if model_spec.name != self.manager.model_name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {servable_request} (this server serves model "
                f"'{self.manager.model_name}')",
            )
        model = self.manager.current()
        if model is None:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {servable_request} (no version of "
                f"'{self.manager.model_name}' has been loaded yet)",
            )
        if model_spec.HasField("version") and model_spec.version.value != model.version:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: {servable_request} (serving version {model.version} only)",
            )
        record.version = model.version
        return model


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's PredictionService: Predict and GetModelMetadata."""

    def __init__(self, manager: ModelManager) -> None:
        self._lookup = _ModelLookup(manager)

    @override
    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        """Runs a signature of the served model on the request's inputs."""
        return _run_rpc("Predict", context, lambda record: self._predict(request, record))

    def _predict(
        self, request: predict_pb2.PredictRequest, record: _RequestRecord
    ) -> predict_pb2.PredictResponse:
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
        inputs = decode_inputs(request.inputs, input_specs)
        outputs = signature(**inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = signature_name
        for output_name in request.output_filter or output_names:
            response.outputs[output_name].CopyFrom(tf.make_tensor_proto(outputs[output_name].numpy()))
        return response

    @override
    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Returns the served model's signature defs."""
        return _run_rpc("GetModelMetadata", context, lambda record: self._get_model_metadata(request, record))

    def _get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, record: _RequestRecord
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        _record_model_spec(request.model_spec, record)
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

    def _unimplemented(self, method: str, context: grpc.ServicerContext) -> None:
        def reject(record: _RequestRecord) -> protobuf_message.Message:
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this server; use Predict"
            )

        _run_rpc(method, context, reject)

    @override
    def Classify(self, request: protobuf_message.Message, context: grpc.ServicerContext) -> None:
        """Answers UNIMPLEMENTED: the accent model has no classification signature."""
        self._unimplemented("Classify", context)

    @override
    def Regress(self, request: protobuf_message.Message, context: grpc.ServicerContext) -> None:
        """Answers UNIMPLEMENTED: the accent model has no regression signature."""
        self._unimplemented("Regress", context)

    @override
    def MultiInference(self, request: protobuf_message.Message, context: grpc.ServicerContext) -> None:
        """Answers UNIMPLEMENTED."""
        self._unimplemented("MultiInference", context)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's ModelService: GetModelStatus."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    @override
    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Reports the state of each version of the model (or of the version asked for)."""
        return _run_rpc("GetModelStatus", context, lambda record: self._get_model_status(request, record))

    def _get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest, record: _RequestRecord
    ) -> get_model_status_pb2.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        model_spec = request.model_spec
        _record_model_spec(model_spec, record)
        if model_spec.HasField("version_label"):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Unrecognized servable version label: {model_spec.version_label}",
            )
        statuses = self._manager.version_statuses() if model_spec.name == self._manager.model_name else []
        if not statuses:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {model_spec.name}"
            )
        if model_spec.HasField("version"):
            statuses = [status for status in statuses if status.version == model_spec.version.value]
            if not statuses:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {model_spec.version.value} of model {model_spec.name}",
                )
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
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

        def reject(record: _RequestRecord) -> protobuf_message.Message:
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                "HandleReloadConfigRequest is not implemented by this server; it serves one model from "
                "one base path",
            )

        _run_rpc("HandleReloadConfigRequest", context, reject)


@dataclasses.dataclass
class RunningServer:
    """A started gRPC server and the model manager behind it.

    Attributes:
        host: The address the server listens on.
        port: The port it listens on (the real one when 0 was asked for).
        manager: The manager that loads the model's versions.
        grpc_server: The underlying ``grpc.Server``.
    """

    host: str
    port: int
    manager: ModelManager
    grpc_server: grpc.Server

    @property
    def address(self) -> str:
        """The "HOST:PORT" clients connect to."""
        return f"{self.host}:{self.port}"

    def stop(self, grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS) -> None:
        """Stops accepting requests, lets in-flight ones finish for up to ``grace_seconds``, stops polling.

        Args:
            grace_seconds: Longest wait for in-flight requests.
        """
        self.grpc_server.stop(grace_seconds).wait()
        self.manager.stop()
        logger.info("Server on %s stopped", self.address)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    model_base_path: str | os.PathLike[str],
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    poll_wait_seconds: float = DEFAULT_POLL_WAIT_SECONDS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> RunningServer:
    """Starts the project's gRPC server in background threads.

    The server answers at once; until the first version has loaded (one poll
    interval plus the load time), requests get NOT_FOUND, as with TF Serving.
    Use ``manager.wait_for_version()`` to wait for a version.

    Args:
        model_base_path: Directory holding one subdirectory per integer version.
        model_name: The name clients ask for.
        host: Address to listen on; "127.0.0.1" for loopback only, "0.0.0.0" for every interface.
        port: Port to listen on; 0 picks a free one (see ``RunningServer.port``).
        poll_wait_seconds: Seconds between two polls of the base path.
        max_message_bytes: Largest request or response, in bytes.
        max_workers: Threads answering requests.

    Returns:
        The running server; call ``stop()`` when done.

    Raises:
        ValueError: If an argument is invalid.
        OSError: If the port cannot be bound.
    """
    if max_message_bytes <= 0:
        raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
    if max_workers <= 0:
        raise ValueError(f"max_workers must be positive, got {max_workers}")
    manager = ModelManager(model_base_path, model_name, poll_wait_seconds=poll_wait_seconds)
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="serving"),
        options=[*grpc_message_options(max_message_bytes), ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(manager), grpc_server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager), grpc_server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound_port = grpc_server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {address}: {error}") from error
    if bound_port == 0:
        raise OSError(f"cannot listen on {address}")
    manager.start()
    grpc_server.start()
    logger.info(
        "Serving model %r from %s over gRPC on %s:%d (max message %d bytes, %d workers)",
        model_name,
        manager.model_base_path,
        host,
        bound_port,
        max_message_bytes,
        max_workers,
    )
    return RunningServer(host=host, port=bound_port, manager=manager, grpc_server=grpc_server)


def model_server_command(
    binary: str, model_base_path: str | os.PathLike[str], model_name: str, port: int, poll_wait_seconds: float
) -> list[str]:
    """Returns the ``tensorflow_model_server`` command equivalent to ``serve``'s arguments.

    TF Serving polls in whole seconds, so ``poll_wait_seconds`` is rounded up.

    Args:
        binary: Path of the binary.
        model_base_path: Directory holding one subdirectory per integer version.
        model_name: The name clients ask for.
        port: gRPC port.
        poll_wait_seconds: Seconds between two polls of the base path.

    Returns:
        The argv.
    """
    return [
        binary,
        f"--port={port}",
        f"--model_name={model_name}",
        f"--model_base_path={Path(model_base_path).absolute()}",
        f"--file_system_poll_wait_seconds={max(1, math.ceil(poll_wait_seconds))}",
    ]


def _install_signal_handlers(handler: Callable[[int, FrameType | None], None]) -> dict[int, object]:
    """Installs ``handler`` for SIGTERM and SIGINT; returns the previous ones (none off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}


def _restore_signal_handlers(previous_handlers: dict[int, object]) -> None:
    for signum, previous_handler in previous_handlers.items():
        signal.signal(signum, previous_handler)


def _run_model_server_binary(command: list[str]) -> int:
    """Runs TF Serving's binary, forwarding SIGTERM and SIGINT to it; returns its exit code."""
    running: list[subprocess.Popen] = []
    pending_signals: list[int] = []

    def forward_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("Received %s; passing it to %s", signal.Signals(signum).name, MODEL_SERVER_BINARY)
        if running:
            running[0].send_signal(signum)
        else:
            pending_signals.append(signum)

    # The handlers go in first, so that a signal arriving while the binary starts is not lost.
    previous_handlers = _install_signal_handlers(forward_signal)
    try:
        logger.info("Running %s", " ".join(command))
        process = subprocess.Popen(command)
        running.append(process)
        for signum in pending_signals:
            process.send_signal(signum)
        return_code = process.wait()
    finally:
        _restore_signal_handlers(previous_handlers)
    # A negative code means the binary died of a signal; report it the way a shell does.
    return 128 - return_code if return_code < 0 else return_code


def serve(
    model_base_path: str | os.PathLike[str],
    model_name: str,
    port: int,
    poll_wait_seconds: float = DEFAULT_POLL_WAIT_SECONDS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    host: str = "0.0.0.0",
) -> int:
    """Serves the model until SIGTERM or SIGINT; backs ``accent-pipeline serve``.

    Runs ``tensorflow_model_server`` when it is on PATH (with ``--port``,
    ``--model_name``, ``--model_base_path`` and
    ``--file_system_poll_wait_seconds``), otherwise the project's own server.

    Args:
        model_base_path: Directory holding one subdirectory per integer version.
        model_name: The name clients ask for.
        port: gRPC port.
        poll_wait_seconds: Seconds between two polls of the base path.
        max_message_bytes: Largest request or response of the project's server, in bytes
            (TF Serving's binary admits up to 2 GiB).
        host: Address the project's server listens on; every interface by default, like TF Serving.

    Returns:
        The exit code: 0 after a clean shutdown, 2 when the base path is not a
        directory, 1 when the port cannot be bound, else the binary's own code.
    """
    if not Path(model_base_path).is_dir():
        logger.error("The model base path %s is not a directory", model_base_path)
        return 2
    binary = shutil.which(MODEL_SERVER_BINARY)
    if binary is not None:
        return _run_model_server_binary(
            model_server_command(binary, model_base_path, model_name, port, poll_wait_seconds)
        )
    logger.info("%s is not on PATH; serving with the project's gRPC server", MODEL_SERVER_BINARY)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("Received %s; shutting down", signal.Signals(signum).name)
        stop_requested.set()

    previous_handlers = _install_signal_handlers(request_stop)
    try:
        try:
            running_server = start_server(
                model_base_path,
                model_name,
                host=host,
                port=port,
                poll_wait_seconds=poll_wait_seconds,
                max_message_bytes=max_message_bytes,
            )
        except OSError as error:
            logger.error("%s", error)
            return 1
        try:
            while not stop_requested.wait(0.5):
                pass
        finally:
            running_server.stop()
    finally:
        _restore_signal_handlers(previous_handlers)
    return 0
