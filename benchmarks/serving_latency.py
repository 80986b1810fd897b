"""Throughput and latency of ``Predict`` over gRPC through the project's local TF-Serving-compatible server.

The served model is built the way the pipeline builds it: the project's
classifier (``components.trainer.model.build_model``, untrained weights from a
fixed seed: latency does not depend on them) exported with YAMNet by
``components.trainer.export.export_serving_model`` into ``<base>/1``.

``measure_serving_latency`` (run in its own child process by ``run_all``)
first measures the limit: the served model's own computation (YAMNet's front
end, network and the classifier: ``serving_default`` for one clip,
``serving_batch`` for more) called in-process on batches of the request clip
up to 32 clips, with no server and no gRPC; the best patches/s over
``LIMIT_BATCH_CLIPS``, measured before and again after the server runs, is the
limit. It then
starts the server in a further process (``components.serving.server.start_server``
on 127.0.0.1 with an ephemeral port, default batching, ``SERVER_MAX_IN_FLIGHT``
requests in flight so that 32 clients queue instead of being refused), waits
until the model is loaded, and sends a bounded number of ``serving_default``
requests from 1, 8 and 32 concurrent clients (threads, each with its own
channel) carrying 5 s clips cut from the benchmark corpus. Each request's
latency is the wall time of the blocking ``Predict`` call, request
serialisation and response parsing included; throughput is patches answered
per wall second, and ``ServingResult.limit_fraction(clients)`` its fraction of
the limit. Each client first sends one untimed warm-up request whose answer is
checked against the serving contract.
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
from components.yamnet import params

logger = logging.getLogger(__name__)

# Clip lengths (seconds) and client counts measured.
CLIP_SECONDS: tuple[float, ...] = (5.0,)
CLIENT_COUNTS: tuple[int, ...] = (1, 8, 32)

# Client count whose throughput, as a fraction of the limit, is the report's serving_limit_fraction_8.
HEADLINE_CLIENTS = 8

# Requests the benchmark's server admits at once: the most clients, so that none is refused.
SERVER_MAX_IN_FLIGHT = max(CLIENT_COUNTS)

# Batch sizes, in clips, at which the limit is measured; the best patches/s is the limit. On a small
# CPU larger batches are not faster per patch, so the small ones are measured too.
LIMIT_BATCH_CLIPS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)

# Timed calls per limit batch size, after one untimed warm-up call.
LIMIT_CALLS = 4

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
        patches_per_request: YAMNet patches of the clip each request carries.
    """

    clip_seconds: float
    clients: int
    latencies_ms: tuple[float, ...]
    wall_seconds: float
    patches_per_request: int = 0

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

    @property
    def patches_per_second(self) -> float:
        """YAMNet patches answered per wall second."""
        return self.num_requests * self.patches_per_request / self.wall_seconds


@dataclasses.dataclass(frozen=True)
class LimitMeasurement:
    """The served model's own throughput at one batch size, in-process.

    Attributes:
        batch_clips: Clips per call of the batched signature.
        patches_per_call: Patches per call.
        call_seconds: Wall time of each timed call.
    """

    batch_clips: int
    patches_per_call: int
    call_seconds: tuple[float, ...]

    @property
    def patches_per_second(self) -> float:
        """Patches per wall second over the timed calls."""
        return self.patches_per_call * len(self.call_seconds) / sum(self.call_seconds)


@dataclasses.dataclass(frozen=True)
class ServingResult:
    """What the serving benchmark measured.

    Attributes:
        cells: One entry per (clip length, clients).
        server_peak_rss_bytes: The server process's own peak RSS.
        model_load_seconds: From starting the server to the model being served.
        limit_patches_per_second: The limit: the best patches/s of the served model's batched
            signature called in-process (``limits``), measured in the same run.
        limits: The limit's measurements at each batch size, before and after the server ran.
        load_average_before: The 1-minute load average when the measurement started.
        load_average_after: The 1-minute load average when it ended.
    """

    cells: tuple[LatencyCell, ...]
    server_peak_rss_bytes: int
    model_load_seconds: float
    limit_patches_per_second: float = 0.0
    limits: tuple[LimitMeasurement, ...] = ()
    load_average_before: float = 0.0
    load_average_after: float = 0.0

    def cell(self, clients: int, clip_seconds: float = CLIP_SECONDS[0]) -> LatencyCell:
        """Returns the cell of ``clients`` clients sending ``clip_seconds`` clips.

        Raises:
            KeyError: If that configuration was not measured.
        """
        for cell in self.cells:
            if cell.clients == clients and cell.clip_seconds == clip_seconds:
                return cell
        raise KeyError(f"no serving cell for {clients} clients and {clip_seconds:g} s clips")

    def limit_fraction(self, clients: int, clip_seconds: float = CLIP_SECONDS[0]) -> float:
        """Serving patches/s with ``clients`` clients over the limit (0 when no limit was measured)."""
        if self.limit_patches_per_second <= 0:
            return 0.0
        return self.cell(clients, clip_seconds).patches_per_second / self.limit_patches_per_second

    @property
    def serving_limit_fraction_8(self) -> float:
        """S of the report's final line: patches/s with 8 clients sending 5 s clips / the limit."""
        return self.limit_fraction(HEADLINE_CLIENTS)


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
    running = server.start_server(
        model_base_path, model_name, host="127.0.0.1", port=0, max_in_flight=SERVER_MAX_IN_FLIGHT
    )
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
        patches_per_request=params.num_patches(waveform.shape[0]),
    )


def measure_limit(
    version_dir: str, waveform: np.ndarray, batch_clips: Sequence[int] = LIMIT_BATCH_CLIPS
) -> tuple[LimitMeasurement, ...]:
    """Measures the served model's own computation in-process on batches of the request clip.

    A batch of one clip calls ``serving_default`` (what a lone request runs),
    larger ones call ``serving_batch`` (what a batch of requests runs).

    Args:
        version_dir: The served SavedModel.
        waveform: The clip every request carries.
        batch_clips: Batch sizes, in clips.

    Returns:
        One measurement per batch size: ``LIMIT_CALLS`` timed calls after a warm-up call.

    Raises:
        RuntimeError: If the served model has no batched signature.
    """
    import tensorflow as tf

    from components.trainer import export

    loaded = tf.saved_model.load(version_dir)
    if export.BATCH_SIGNATURE not in loaded.signatures:
        raise RuntimeError(f"The served model at {version_dir} has no {export.BATCH_SIGNATURE} signature")
    measurements = []
    for clips in batch_clips:
        if clips == 1:
            signature = loaded.signatures[features.SERVING_SIGNATURE]
            inputs = {features.WAVEFORM_INPUT_KEY: tf.constant(waveform)}
        else:
            signature = loaded.signatures[export.BATCH_SIGNATURE]
            inputs = {
                export.WAVEFORMS_INPUT_KEY: tf.constant(np.tile(waveform, (clips, 1))),
                export.NUM_SAMPLES_INPUT_KEY: tf.constant([waveform.shape[0]] * clips, dtype=tf.int32),
            }
        signature(**inputs)
        call_seconds = []
        for _ in range(LIMIT_CALLS):
            started = time.perf_counter()
            signature(**inputs)[features.CLASS_PROBABILITIES_OUTPUT_KEY].numpy()
            call_seconds.append(time.perf_counter() - started)
        measurement = LimitMeasurement(
            batch_clips=clips,
            patches_per_call=clips * params.num_patches(waveform.shape[0]),
            call_seconds=tuple(call_seconds),
        )
        logger.info("Limit: %d clips per call, %.1f patches/s", clips, measurement.patches_per_second)
        measurements.append(measurement)
    return tuple(measurements)


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
        The latencies, the throughputs, the limit and the server's peak RSS.

    Raises:
        ValueError: If ``requests_per_cell`` is not positive.
        RuntimeError: If the server fails to serve the model or a request fails.
    """
    if requests_per_cell < 1:
        raise ValueError(f"requests_per_cell must be positive, got {requests_per_cell}")
    child.configure_step_logging()
    load_average_before = os.getloadavg()[0]
    waveforms = benchmark_waveforms(corpus_dir, clip_seconds)
    version_dir = os.path.join(model_base_path, str(SERVED_VERSION))
    limits = measure_limit(version_dir, waveforms[min(clip_seconds)])
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
                    "Serving %g s clips, %d clients: p50 %.1f ms, p99 %.1f ms, %.1f patches/s, %d requests",
                    seconds,
                    clients,
                    cell.percentile_ms(50),
                    cell.percentile_ms(99),
                    cell.patches_per_second,
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
    # Measured again once the server is gone, so that a slow spell of a shared machine during either
    # measurement does not lower the limit.
    limits_after = measure_limit(version_dir, waveforms[min(clip_seconds)])
    return ServingResult(
        cells=tuple(cells),
        server_peak_rss_bytes=int(server_peak),
        model_load_seconds=load_seconds,
        limit_patches_per_second=max(limit.patches_per_second for limit in limits + limits_after),
        limits=limits + limits_after,
        load_average_before=load_average_before,
        load_average_after=os.getloadavg()[0],
    )
