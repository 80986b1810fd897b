"""The local server's life cycle: ``start_server`` builds and starts it, ``RunningServer.stop`` ends it.

``start_server`` wires a ``model_manager.ModelManager`` (which polls the base
path and loads versions) to the servicers (``servicers``) on a gRPC server, and
returns at once: until the first version has loaded, requests get NOT_FOUND,
as with TF Serving. ``launcher.serve`` runs it until a signal arrives, when
``tensorflow_model_server`` is not on PATH.

Limits, so that no request can take the server down:

* Request threads are bounded: ``max_in_flight`` (model calls) plus
  ``EXTRA_WORKERS`` for cheap RPCs, so GetModelStatus, GetModelMetadata and
  refusals are answered while every model call slot is busy. So are the RPCs
  admitted at once (``ADMITTED_RPCS_PER_WORKER`` per thread); gRPC answers
  RESOURCE_EXHAUSTED beyond them.
* Messages are bounded by ``max_message_bytes``, by default what
  ``max_audio_seconds`` of float32 audio needs plus 4 MiB.
* Address: the server listens on ``host``, 127.0.0.1 by default.
* Shutdown: in-flight requests get ``DEFAULT_SHUTDOWN_GRACE_SECONDS`` to finish.

Batching: concurrent ``serving_default`` requests are answered by one call of
the model's batched signature, up to ``max_batch_size`` requests waiting at
most ``batch_timeout_ms`` for one another (``batching``); each still holds one
of the ``max_in_flight`` slots.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from components.serving.defaults import DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_HOST, DEFAULT_MAX_BATCH_SIZE
from components.serving.grpc_options import grpc_message_options, max_message_bytes_for_audio
from components.serving.inputs import DEFAULT_MAX_AUDIO_SECONDS, InputLimits
from components.serving.model_manager import ModelManager
from components.serving.servicers import DEFAULT_MAX_IN_FLIGHT, ModelServicer, PredictionServicer

logger = logging.getLogger(__name__)

# Seconds between two polls of the model base path (TF Serving's --file_system_poll_wait_seconds).
DEFAULT_POLL_WAIT_SECONDS = 1.0

# Request threads beyond the in-flight cap, so that GetModelStatus, GetModelMetadata and refusals
# are answered while every model call slot is busy.
EXTRA_WORKERS = 4

# RPCs admitted at once, per request thread; the excess waits for a thread (holding no request
# message: a thread reads it), and gRPC refuses RPCs beyond it with RESOURCE_EXHAUSTED.
ADMITTED_RPCS_PER_WORKER = 2

# Seconds in-flight requests get to finish at shutdown.
DEFAULT_SHUTDOWN_GRACE_SECONDS = 5.0


@dataclasses.dataclass
class RunningServer:
    """A started gRPC server and the model manager behind it.

    Attributes:
        host: The address the server listens on.
        port: The port it listens on (the real one when 0 was asked for).
        manager: The manager that loads the model's versions.
        grpc_server: The underlying ``grpc.Server``.
        prediction_servicer: The PredictionService, which runs the model calls.
    """

    host: str
    port: int
    manager: ModelManager
    grpc_server: grpc.Server
    prediction_servicer: PredictionServicer

    def in_flight_model_calls(self) -> int:
        """How many model calls are running now."""
        return self.prediction_servicer.in_flight_model_calls

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


def worker_count(max_in_flight: int) -> int:
    """Returns how many request threads serve ``max_in_flight`` model calls: a few more, for cheap RPCs."""
    return max_in_flight + EXTRA_WORKERS


def start_server(
    model_base_path: str | os.PathLike[str],
    model_name: str,
    host: str = DEFAULT_HOST,
    port: int = 0,
    poll_wait_seconds: float = DEFAULT_POLL_WAIT_SECONDS,
    max_message_bytes: int | None = None,
    max_workers: int | None = None,
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS,
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
        max_message_bytes: Largest request or response, in bytes; None for
            ``max_audio_seconds`` of float32 audio plus 4 MiB.
        max_workers: Request threads; None for ``worker_count(max_in_flight)``.
        max_audio_seconds: Longest audio a Predict may send, in seconds at 16 kHz.
        max_in_flight: Most model calls running at once; a Predict beyond them gets RESOURCE_EXHAUSTED.
        max_batch_size: Most concurrent requests answered by one batched model call; 1 turns batching off.
        batch_timeout_ms: Longest wait of a batch for more requests, in milliseconds.

    Returns:
        The running server; call ``stop()`` when done.

    Raises:
        ValueError: If an argument is invalid.
        OSError: If the port cannot be bound.
    """
    if max_audio_seconds <= 0 or not math.isfinite(max_audio_seconds):
        raise ValueError(f"max_audio_seconds must be positive, got {max_audio_seconds}")
    if max_in_flight <= 0:
        raise ValueError(f"max_in_flight must be positive, got {max_in_flight}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    if batch_timeout_ms < 0 or not math.isfinite(batch_timeout_ms):
        raise ValueError(f"batch_timeout_ms must be a finite number >= 0, got {batch_timeout_ms}")
    if max_message_bytes is None:
        max_message_bytes = max_message_bytes_for_audio(max_audio_seconds)
    if max_message_bytes <= 0:
        raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
    if max_workers is None:
        max_workers = worker_count(max_in_flight)
    if max_workers <= 0:
        raise ValueError(f"max_workers must be positive, got {max_workers}")
    input_limits = InputLimits.for_audio_seconds(max_audio_seconds, max_message_bytes)
    manager = ModelManager(model_base_path, model_name, poll_wait_seconds=poll_wait_seconds)
    prediction_servicer = PredictionServicer(
        manager,
        max_in_flight=max_in_flight,
        input_limits=input_limits,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
    )
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="serving"),
        options=[*grpc_message_options(max_message_bytes), ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=max_workers * ADMITTED_RPCS_PER_WORKER,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction_servicer, grpc_server)
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
        "Serving model %r from %s over gRPC on %s:%d (max audio %g s, max message %d bytes, "
        "%d model calls in flight, batches of up to %d requests waiting up to %g ms, %d request threads)",
        model_name,
        manager.model_base_path,
        host,
        bound_port,
        max_audio_seconds,
        max_message_bytes,
        max_in_flight,
        max_batch_size,
        batch_timeout_ms,
        max_workers,
    )
    return RunningServer(
        host=host,
        port=bound_port,
        manager=manager,
        grpc_server=grpc_server,
        prediction_servicer=prediction_servicer,
    )
