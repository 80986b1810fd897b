"""The launcher behind ``accent-pipeline serve``: TF Serving's binary if it is there, else the local server.

Production runs TF Serving (``tensorflow_model_server``, the image in
``kubernetes/``). When that binary is on PATH, ``serve`` hands over to it with
the same arguments (``model_server_command``), forwarding SIGTERM and SIGINT;
otherwise it runs the project's server (``server.start_server``) until one of
those signals arrives.

``tensorflow_model_server`` has no option for ``host``, ``max_audio_seconds``
or ``max_in_flight``: its gRPC port listens on every interface, which ``serve``
says in a warning, and it admits messages up to 2 GiB.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from components.errors import AccentPipelineError, InvalidArgumentError
from components.serving import server
from components.serving.defaults import (
    DEFAULT_BATCH_TIMEOUT_MS,
    DEFAULT_HOST,
    DEFAULT_MAX_AUDIO_SECONDS,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_IN_FLIGHT,
)

logger = logging.getLogger(__name__)

# Name of TF Serving's binary; when it is on PATH, ``serve`` runs it.
MODEL_SERVER_BINARY = "tensorflow_model_server"


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


def _is_every_interface(host: str) -> bool:
    return host in ("0.0.0.0", "::", "[::]", "")


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


class ModelServerError(AccentPipelineError):
    """The model server cannot start, or ends with an error.

    Attributes:
        return_code: The exit code of ``tensorflow_model_server``; None for the project's server.
    """

    def __init__(self, message: str, return_code: int | None = None) -> None:
        super().__init__(message)
        self.return_code = return_code


def serve(
    model_base_path: str | os.PathLike[str],
    model_name: str,
    port: int,
    poll_wait_seconds: float = server.DEFAULT_POLL_WAIT_SECONDS,
    max_message_bytes: int | None = None,
    host: str = DEFAULT_HOST,
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS,
) -> None:
    """Serves the model until SIGTERM or SIGINT; backs ``accent-pipeline serve``.

    Runs ``tensorflow_model_server`` when it is on PATH (with ``--port``,
    ``--model_name``, ``--model_base_path`` and
    ``--file_system_poll_wait_seconds``), otherwise the project's own server.
    TF Serving's binary has no option for ``host``, ``max_audio_seconds`` or
    ``max_in_flight``: its gRPC port listens on every interface (a warning
    says so unless ``host`` asks for every interface too), and it admits
    messages up to 2 GiB.

    Args:
        model_base_path: Directory holding one subdirectory per integer version.
        model_name: The name clients ask for.
        port: gRPC port.
        poll_wait_seconds: Seconds between two polls of the base path.
        max_message_bytes: Largest request or response of the project's server, in bytes;
            None for ``max_audio_seconds`` of float32 audio plus 4 MiB.
        host: Address the project's server listens on; loopback only by default.
        max_audio_seconds: Longest audio a Predict may send to the project's server, in seconds.
        max_in_flight: Most model calls the project's server runs at once.
        max_batch_size: Most concurrent requests the project's server answers with one batched
            model call; 1 turns batching off. TF Serving's binary batches only with its own
            ``--enable_batching`` and a batching parameters file (see ``kubernetes/``).
        batch_timeout_ms: Longest wait of the project's server's batches for more requests.

    Raises:
        InvalidArgumentError: If the base path is not a directory.
        ModelServerError: If the port cannot be bound, or ``tensorflow_model_server`` ends with
            an error.
    """
    if not Path(model_base_path).is_dir():
        raise InvalidArgumentError(f"The model base path {model_base_path} is not a directory")
    binary = shutil.which(MODEL_SERVER_BINARY)
    if binary is not None:
        if not _is_every_interface(host):
            logger.warning(
                "%s cannot bind to one host: its gRPC port listens on every interface (0.0.0.0:%d), not "
                "only on --host %s. Block the port with a firewall, or take %s off PATH to use the "
                "project's server, which honours --host. --max-audio-seconds, --max-in-flight, "
                "--max-batch-size and --batch-timeout-ms do not apply to it either.",
                MODEL_SERVER_BINARY,
                port,
                host,
                MODEL_SERVER_BINARY,
            )
        return_code = _run_model_server_binary(
            model_server_command(binary, model_base_path, model_name, port, poll_wait_seconds)
        )
        if return_code != 0:
            raise ModelServerError(f"{MODEL_SERVER_BINARY} exited with code {return_code}", return_code)
        return
    logger.info("%s is not on PATH; serving with the project's gRPC server", MODEL_SERVER_BINARY)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("Received %s; shutting down", signal.Signals(signum).name)
        stop_requested.set()

    previous_handlers = _install_signal_handlers(request_stop)
    try:
        try:
            running_server = server.start_server(
                model_base_path,
                model_name,
                host=host,
                port=port,
                poll_wait_seconds=poll_wait_seconds,
                max_message_bytes=max_message_bytes,
                max_audio_seconds=max_audio_seconds,
                max_in_flight=max_in_flight,
                max_batch_size=max_batch_size,
                batch_timeout_ms=batch_timeout_ms,
            )
        except OSError as error:
            raise ModelServerError(str(error)) from error
        try:
            while not stop_requested.wait(0.5):
                pass
        finally:
            running_server.stop()
    finally:
        _restore_signal_handlers(previous_handlers)
