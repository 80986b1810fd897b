"""Latency of ``Predict`` over gRPC through the project's local TF-Serving-compatible server.

The served model is built the way the pipeline builds it: the project's
classifier (``components.trainer.model.build_model``, untrained weights from a
fixed seed: latency does not depend on them) exported with YAMNet by
``components.trainer.export.export_serving_model`` into ``<base>/1``.

``measure_serving_latency`` (run in its own child process by ``run_all``)
starts the server in a further process (``components.serving.server.start_server``
on 127.0.0.1 with an ephemeral port), waits until the model is loaded, and sends
a bounded number of ``serving_default`` requests from 1 and from 8 concurrent
clients (threads, each with its own channel), for 5 s and 30 s clips cut from
the benchmark corpus. Each request's latency is the wall time of the blocking
``Predict`` call, request serialisation and response parsing included. Each
client first sends one untimed warm-up request whose answer is checked
against the serving contract.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from benchmarks import child
from components import features

logger = logging.getLogger(__name__)

# Clip lengths (seconds) and client counts measured.
CLIP_SECONDS: tuple[float, ...] = (5.0, 30.0)
CLIENT_COUNTS: tuple[int, ...] = (1, 8)

# Requests per (clip length, clients) cell, split evenly between the clients.
DEFAULT_REQUESTS_PER_CELL = 120

SERVED_MODEL_NAME = "accent"
SERVED_VERSION = 1

# Longest wait for the server to load the model, and for one request.
MODEL_LOAD_TIMEOUT_SECONDS = 600.0
REQUEST_TIMEOUT_SECONDS = 120.0

# Seed of the untrained classifier's weights.
CLASSIFIER_SEED = 0


@dataclasses.dataclass(frozen=True)
class LatencyCell:
    """Latencies of one (clip length, clients) configuration.

    Attributes:
        clip_seconds: Duration of the clip each request carries.
        clients: Concurrent clients.
        latencies_ms: Each timed request's latency, in milliseconds.
        wall_seconds: Wall time of the whole cell.
    """

    clip_seconds: float
    clients: int
    latencies_ms: tuple[float, ...]
    wall_seconds: float

    @property
    def num_requests(self) -> int:
        """Number of timed requests."""
        return len(self.latencies_ms)

    def percentile_ms(self, percent: float) -> float:
        """Returns a latency percentile (linear interpolation), in milliseconds."""
        return float(np.percentile(np.asarray(self.latencies_ms), percent))

    @property
    def requests_per_second(self) -> float:
        """Timed requests answered per wall second."""
        return self.num_requests / self.wall_seconds


@dataclasses.dataclass(frozen=True)
class ServingResult:
    """What the serving benchmark measured.

    Attributes:
        cells: One entry per (clip length, clients).
        server_peak_rss_bytes: The server process's own peak RSS.
        model_load_seconds: From starting the server to the model being served.
    """

    cells: tuple[LatencyCell, ...]
    server_peak_rss_bytes: int
    model_load_seconds: float


def export_served_model(yamnet_dir: str, model_base_path: str) -> str:
    """Exports the project's classifier with YAMNet, as the Trainer does, as version 1.

    Args:
        yamnet_dir: The YAMNet SavedModel directory.
        model_base_path: TF Serving base path; the model goes to ``<base>/1``.

    Returns:
        The version directory.
    """
    child.configure_step_logging()
    import keras

    from components.trainer import export, model
    from pipeline import configs

    keras.utils.set_random_seed(CLASSIFIER_SEED)
    classifier = model.build_model(
        num_classes=len(configs.PipelineSettings().class_names),
        learning_rate=configs.PipelineSettings().learning_rate,
    )
    staging_dir = os.path.join(model_base_path, f".staging-{SERVED_VERSION}")
    export.export_serving_model(classifier, yamnet_dir, configs.PipelineSettings().class_names, staging_dir)
    version_dir = os.path.join(model_base_path, str(SERVED_VERSION))
    os.rename(staging_dir, version_dir)
    return version_dir


def serve_until_stopped(model_base_path: str, model_name: str, connection: Connection) -> None:
    """Runs the local server on 127.0.0.1 until told to stop (the server process's body).

    Sends ``("ready", port, load_seconds)`` once the model is served (or
    ``("failed", reason)``), waits for any message, stops the server and sends
    ``("stopped", own peak RSS in bytes)``.

    Args:
        model_base_path: TF Serving base path of the model.
        model_name: Name to serve it under.
        connection: Pipe end to the benchmark process.
    """
    child.configure_step_logging()
    logging.getLogger("components.serving").setLevel(logging.WARNING)
    from components.serving import server

    started = time.perf_counter()
    running = server.start_server(model_base_path, model_name, host="127.0.0.1", port=0)
    try:
        if (
            running.manager.wait_for_version(SERVED_VERSION, timeout_seconds=MODEL_LOAD_TIMEOUT_SECONDS)
            is None
        ):
            connection.send(("failed", f"version {SERVED_VERSION} was not loaded"))
            return
        connection.send(("ready", running.port, time.perf_counter() - started))
        connection.recv()
    finally:
        running.stop()
    connection.send(("stopped", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def benchmark_waveforms(corpus_dir: str, clip_seconds: Sequence[float]) -> dict[float, np.ndarray]:
    """Cuts 16 kHz request waveforms of the given lengths from the corpus's speech.

    The clips are decoded with ``components.audio`` and joined; when the
    corpus is shorter than the longest request, the joined audio repeats.

    Args:
        corpus_dir: A benchmark corpus.
        clip_seconds: Wanted durations.

    Returns:
        One float32 waveform per duration.
    """
    from components import audio

    joined = np.concatenate(
        [
            audio.load_waveform(path.read_bytes(), path.name)
            for path in sorted(Path(corpus_dir).glob("*.wav"))[:16]
        ]
    )
    longest = round(max(clip_seconds) * features.SAMPLE_RATE)
    joined = np.resize(joined, max(longest, joined.shape[0]))
    return {seconds: joined[: round(seconds * features.SAMPLE_RATE)].copy() for seconds in clip_seconds}


def _run_cell(
    address: str, waveform: np.ndarray, clip_seconds: float, clients: int, requests: int
) -> LatencyCell:
    """Sends ``requests`` timed requests from ``clients`` concurrent clients."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from components.serving import client
    from components.serving.grpc_options import grpc_message_options

    per_client = max(1, -(-requests // clients))
    request = client.build_predict_request(waveform, SERVED_MODEL_NAME)
    barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def run_client(client_index: int) -> None:
        with grpc.insecure_channel(address, options=grpc_message_options()) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                prediction = client.predict_waveform(
                    stub, waveform, SERVED_MODEL_NAME, REQUEST_TIMEOUT_SECONDS
                )
                if prediction.model_version != SERVED_VERSION:
                    raise RuntimeError(f"version {prediction.model_version} answered, not {SERVED_VERSION}")
            except BaseException as error:
                errors.append(error)
                raise
            finally:
                barrier.wait()
            for _ in range(per_client):
                started = time.perf_counter()
                try:
                    stub.Predict(request, timeout=REQUEST_TIMEOUT_SECONDS)
                except grpc.RpcError as error:
                    errors.append(error)
                    return
                latencies[client_index].append((time.perf_counter() - started) * 1000.0)

    threads = [
        threading.Thread(target=run_client, args=(index,), name=f"bench-client-{index}")
        for index in range(clients)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall_seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed; first: {errors[0]!r}")
    return LatencyCell(
        clip_seconds=clip_seconds,
        clients=clients,
        latencies_ms=tuple(latency for client_latencies in latencies for latency in client_latencies),
        wall_seconds=wall_seconds,
    )


def measure_serving_latency(
    model_base_path: str,
    corpus_dir: str,
    requests_per_cell: int = DEFAULT_REQUESTS_PER_CELL,
    clip_seconds: Sequence[float] = CLIP_SECONDS,
    client_counts: Sequence[int] = CLIENT_COUNTS,
) -> ServingResult:
    """Starts the server in its own process and measures Predict latencies (see the module docstring).

    Args:
        model_base_path: TF Serving base path holding the exported model.
        corpus_dir: The benchmark corpus (source of the request audio).
        requests_per_cell: Timed requests per (clip length, clients), rounded up to a multiple of clients.
        clip_seconds: Clip durations.
        client_counts: Numbers of concurrent clients.

    Returns:
        The latencies and the server's peak RSS.

    Raises:
        ValueError: If ``requests_per_cell`` is not positive.
        RuntimeError: If the server fails to serve the model or a request fails.
    """
    if requests_per_cell < 1:
        raise ValueError(f"requests_per_cell must be positive, got {requests_per_cell}")
    child.configure_step_logging()
    waveforms = benchmark_waveforms(corpus_dir, clip_seconds)
    context = multiprocessing.get_context("spawn")
    server_connection, server_end = context.Pipe()
    server_process = context.Process(
        target=serve_until_stopped, args=(model_base_path, SERVED_MODEL_NAME, server_end), name="bench-server"
    )
    server_process.start()
    stopped_message = None
    try:
        if not server_connection.poll(MODEL_LOAD_TIMEOUT_SECONDS + 60.0):
            raise RuntimeError("The server did not report readiness in time")
        message = server_connection.recv()
        if message[0] != "ready":
            raise RuntimeError(f"The server failed: {message[1]}")
        _, port, load_seconds = message
        address = f"127.0.0.1:{port}"
        cells = []
        for seconds in clip_seconds:
            for clients in client_counts:
                cell = _run_cell(address, waveforms[seconds], seconds, clients, requests_per_cell)
                logger.info(
                    "Serving %g s clips, %d clients: p50 %.1f ms, p99 %.1f ms over %d requests",
                    seconds,
                    clients,
                    cell.percentile_ms(50),
                    cell.percentile_ms(99),
                    cell.num_requests,
                )
                cells.append(cell)
        server_connection.send("stop")
        if server_connection.poll(60.0):
            stopped_message = server_connection.recv()
    finally:
        if server_process.is_alive() and stopped_message is None:
            server_process.terminate()
        server_process.join(60.0)
    server_peak = stopped_message[1] if stopped_message and stopped_message[0] == "stopped" else 0
    return ServingResult(
        cells=tuple(cells), server_peak_rss_bytes=int(server_peak), model_load_seconds=load_seconds
    )
