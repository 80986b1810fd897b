"""How the local server answers an RPC: TF Serving's status codes, and one log line per request.

Every servicer method runs its work through ``run_rpc``, which maps what went
wrong to the status code TF Serving would answer:

* ``ServingError`` carries its own code (NOT_FOUND for an unknown model or
  version, INVALID_ARGUMENT for a request that does not match the signature...);
* a ``tf.errors.InvalidArgumentError`` or ``ResourceExhaustedError`` raised by
  the model is the request's fault and keeps its code; any other TensorFlow
  error, and any other exception, is INTERNAL.

Each request is logged on one INFO line of this module's logger, with its
method, model, version, status code and latency. Methods TF Serving has but
this server does not implement answer UNIMPLEMENTED through
``reject_unimplemented``, logged like any other request.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
import tensorflow as tf
from google.protobuf import message as protobuf_message
from tensorflow_serving.apis import model_pb2

from components.errors import AccentPipelineError

logger = logging.getLogger(__name__)

_Response = TypeVar("_Response", bound=protobuf_message.Message)

# TensorFlow errors raised by a model that are the request's fault, mapped as TF Serving maps them.
_OP_ERROR_CODES: dict[type[tf.errors.OpError], grpc.StatusCode] = {
    tf.errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    tf.errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class ServingError(AccentPipelineError):
    """A request that fails with a gRPC status code, as TF Serving would answer it.

    Attributes:
        code: The status code the client gets.
        message: The status details the client gets.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class RequestRecord:
    """What the request log line reports about a request.

    Attributes:
        model_name: The model the request names, or "-".
        version: The version it names or was answered by, or None.
    """

    model_name: str = "-"
    version: int | None = None

    def note_model_spec(self, model_spec: model_pb2.ModelSpec) -> None:
        """Notes the model and version a request asks for."""
        self.model_name = model_spec.name or "-"
        if model_spec.HasField("version"):
            self.version = model_spec.version.value


def run_rpc(
    method: str,
    context: grpc.ServicerContext,
    handler: Callable[[RequestRecord], _Response],
) -> _Response:
    """Runs one RPC: maps errors to status codes and logs the outcome and latency.

    Args:
        method: The RPC's name, for the log line.
        context: The RPC's context; it is aborted with the status code on failure.
        handler: Computes the response; it notes the model and version in the record it is given.

    Returns:
        The handler's response.

    Raises:
        grpc.RpcError: Raised by ``context.abort`` when the handler fails.
    """
    record = RequestRecord()
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    error_message = ""
    response = None
    try:
        response = handler(record)
    except ServingError as error:
        code, error_message = error.code, error.message
    except tf.errors.OpError as error:
        error_message = f"{type(error).__name__}: {error.message}"
        code = _OP_ERROR_CODES.get(type(error), grpc.StatusCode.INTERNAL)
        if code is grpc.StatusCode.INTERNAL:
            logger.error("%s: the model failed: %s", method, error_message)
        else:
            logger.warning("%s: the model refused the request: %s", method, error_message)
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


def reject_unimplemented(method: str, context: grpc.ServicerContext, hint: str) -> None:
    """Answers a method this server does not implement with UNIMPLEMENTED, logged like any request.

    Args:
        method: The RPC's name.
        context: The RPC's context.
        hint: What the client can do instead, appended to the status details.

    Raises:
        grpc.RpcError: Always, from ``context.abort``.
    """

    def reject(record: RequestRecord) -> protobuf_message.Message:
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this server; {hint}"
        )

    run_rpc(method, context, reject)
