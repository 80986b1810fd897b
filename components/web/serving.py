"""The page's gRPC side: what the served model is, and its answer for one waveform.

Every call goes to TF Serving's API (``PredictionService`` and
``ModelService``), so the page works against ``tensorflow_model_server`` and
the project's local server alike. Like ``accent-pipeline predict``, the page
calls ``serving_batch`` when the served model lists it (TF Serving with
``--enable_batching``, as ``kubernetes/`` deploys it, can run no other) and
``serving_default`` otherwise; it reads the signatures from GetModelMetadata
once per model version. Each failure becomes a ``PageError`` whose message is
written for the person using the page.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from components import features
from components.errors import AccentPipelineError
from components.serving import client
from components.serving.grpc_options import grpc_message_options

logger = logging.getLogger(__name__)

# The metadata field TF Serving's GetModelMetadata answers.
SIGNATURE_DEF_METADATA_FIELD = client.SIGNATURE_DEF_METADATA_FIELD

# Deadline of the metadata and status calls, in seconds: the page must not hang on them.
INFO_TIMEOUT_SECONDS = 5.0

# Kinds of PageError, which the page and its tests tell apart.
NOT_AUDIO = "not-audio"
TOO_LONG = "too-long"
TOO_LARGE = "too-large"
NO_FILE = "no-file"
SERVER_UNAVAILABLE = "server-unavailable"
NO_MODEL = "no-model"
SERVER_ERROR = "server-error"

_STATE_NAMES = {
    value: name for name, value in get_model_status_pb2.ModelVersionStatus.State.items() if name != "UNKNOWN"
}


class PageError(AccentPipelineError):
    """A request the page cannot answer; the message is shown in the page as it is.

    Attributes:
        kind: One of this module's kinds (``NOT_AUDIO``, ``SERVER_UNAVAILABLE``, ...).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The served model as GetModelMetadata and GetModelStatus describe it.

    Attributes:
        model_name: The name the model is served under.
        version: The version GetModelMetadata answered for (the one Predict uses).
        version_states: Each version GetModelStatus knows and its state (``AVAILABLE``, ``END``, ...).
        signature_outputs: The outputs of the serving signature, by name.
        signature_name: The signature the page calls: ``serving_batch`` when the model lists it,
            ``serving_default`` otherwise.
    """

    model_name: str
    version: int
    version_states: dict[int, str]
    signature_outputs: tuple[str, ...]
    signature_name: str = features.SERVING_SIGNATURE

    def describe(self) -> str:
        """One line for the page: name, served version and its state, and the other versions known."""
        state = self.version_states.get(self.version, "state unknown")
        others = ", ".join(
            f"{version} {name}"
            for version, name in sorted(self.version_states.items())
            if version != self.version
        )
        line = f"Model {self.model_name}, version {self.version} ({state})"
        return f"{line}; other versions: {others}" if others else line


def describe_rpc_error(error: grpc.RpcError, server: str, model_name: str) -> PageError:
    """Turns a failed gRPC call into the page's message.

    Args:
        error: The call's error.
        server: "HOST:PORT" of the server, for the message.
        model_name: The model asked for, for the message.

    Returns:
        A PageError of kind ``SERVER_UNAVAILABLE``, ``NO_MODEL`` or ``SERVER_ERROR``.
    """
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return PageError(
            SERVER_UNAVAILABLE,
            f"Server unavailable: the model server at {server} does not answer "
            f"({code.name}: {details}). Start it, or try again in a moment.",
        )
    if code is grpc.StatusCode.NOT_FOUND:
        return PageError(
            NO_MODEL,
            f"No model: the server at {server} serves no model named {model_name!r} yet ({details}). "
            "Push a model, or wait for the server to load it.",
        )
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return PageError(SERVER_ERROR, f"The server at {server} is busy ({details}). Try again in a moment.")
    code_name = code.name if code is not None else "UNKNOWN"
    return PageError(SERVER_ERROR, f"The server at {server} refused the request: {code_name}: {details}")


class ServingConnection:
    """One gRPC channel to TF Serving (or the local server), shared by the page's requests.

    gRPC reconnects by itself, so a server that restarts is reached again
    without restarting the page.
    """

    def __init__(
        self,
        server: str,
        model_name: str,
        max_message_bytes: int,
        timeout_seconds: float = client.DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """Opens the channel (lazily: nothing is sent until the first call).

        Args:
            server: "HOST:PORT" of TF Serving or the project's server.
            model_name: The name the model is served under.
            max_message_bytes: Largest message sent or received, in bytes.
            timeout_seconds: Deadline of a Predict call, in seconds.
        """
        self.server = server
        self.model_name = model_name
        self.timeout_seconds = timeout_seconds
        self._channel = grpc.insecure_channel(server, options=grpc_message_options(max_message_bytes))
        self._prediction_stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model_stub = model_service_pb2_grpc.ModelServiceStub(self._channel)
        # The served version the page last read the signatures of, and the signature it calls on it.
        self._signature_lock = threading.Lock()
        self._known_signature: tuple[int, str] | None = None

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def model_info(self) -> ModelInfo:
        """Asks the server what it serves: GetModelMetadata, then GetModelStatus.

        Returns:
            The served model's name, version, version states and signature outputs.

        Raises:
            PageError: If the server is down, serves no such model, or refuses.
        """
        metadata = self._model_metadata()
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = self.model_name
        try:
            status = self._model_stub.GetModelStatus(status_request, timeout=INFO_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            raise describe_rpc_error(error, self.server, self.model_name) from error
        signature_defs = client.signature_defs_of(metadata)
        serving_signature = signature_defs.signature_def.get(features.SERVING_SIGNATURE)
        outputs = tuple(sorted(serving_signature.outputs)) if serving_signature is not None else ()
        return ModelInfo(
            model_name=metadata.model_spec.name or self.model_name,
            version=metadata.model_spec.version.value,
            version_states={
                version_status.version: _STATE_NAMES.get(version_status.state, str(version_status.state))
                for version_status in status.model_version_status
            },
            signature_outputs=outputs,
            signature_name=self._remember_signature(metadata),
        )

    def _model_metadata(self) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadata of the served model's signature defs.

        Raises:
            PageError: If the server is down, serves no such model, or refuses.
        """
        request = client.build_metadata_request(self.model_name)
        try:
            return self._prediction_stub.GetModelMetadata(request, timeout=INFO_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            raise describe_rpc_error(error, self.server, self.model_name) from error

    def _remember_signature(self, metadata: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
        """Picks the signature to call on the version the metadata describes, and remembers it."""
        signature_name = client.signature_for(client.signature_defs_of(metadata).signature_def)
        version = metadata.model_spec.version.value
        with self._signature_lock:
            if self._known_signature != (version, signature_name):
                logger.info(
                    "Model %s version %d: requests call signature %s",
                    self.model_name,
                    version,
                    signature_name,
                )
            self._known_signature = (version, signature_name)
        return signature_name

    def _forget_signature(self) -> None:
        with self._signature_lock:
            self._known_signature = None

    def signature_name(self) -> str:
        """The signature the page calls, read from GetModelMetadata once per served version.

        Returns:
            ``serving_batch`` when the served model lists it, ``serving_default`` otherwise.

        Raises:
            PageError: If the signatures are not known yet and the metadata call fails.
        """
        with self._signature_lock:
            known = self._known_signature
        if known is not None:
            return known[1]
        return self._remember_signature(self._model_metadata())

    def predict(self, waveform: np.ndarray) -> client.Prediction:
        """Asks the server for the accent of one 16 kHz mono waveform, as ``accent-pipeline predict`` does.

        The request calls ``signature_name()``; an answer from another version than the
        one whose signatures are known makes the next request read them again.

        Args:
            waveform: 1-D float32 samples in [-1, 1].

        Returns:
            The prediction.

        Raises:
            PageError: If the server is down, serves no such model, refuses the
                request, or answers outside the model's contract.
        """
        signature_name = self.signature_name()
        try:
            prediction = client.predict_waveform(
                self._prediction_stub,
                waveform,
                self.model_name,
                self.timeout_seconds,
                signature_name=signature_name,
            )
        except grpc.RpcError as error:
            # The served version may have changed under the page: the next request reads it again.
            self._forget_signature()
            raise describe_rpc_error(error, self.server, self.model_name) from error
        except ValueError as error:
            raise PageError(
                SERVER_ERROR, f"Unexpected answer from the server at {self.server}: {error}"
            ) from error
        with self._signature_lock:
            if self._known_signature is not None and self._known_signature[0] != prediction.model_version:
                self._known_signature = None
        return prediction
