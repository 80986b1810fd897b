"""A serving process for the page: ``accent-pipeline web --model-base-path DIR`` in one command.

The serving command runs in a child process on a free loopback port, so the
page's own process never loads the model and talks to it over gRPC exactly as
it would to TF Serving. The child is stopped (SIGTERM, then SIGKILL) when the
page stops, on Ctrl-C and on SIGTERM alike.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence

import grpc

from components.errors import AccentPipelineError
from components.web import defaults, signals

logger = logging.getLogger(__name__)

# Loopback address the child server listens on.
LOOPBACK_HOST = "127.0.0.1"

# Seconds the child has to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 15.0

# Seconds between two checks of the child while it starts.
_READY_POLL_SECONDS = 1.0


class ServingProcessError(AccentPipelineError):
    """The serving process did not start, or stopped while starting."""


def free_loopback_port() -> int:
    """Returns a TCP port that is free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        return probe.getsockname()[1]


def wait_until_serving(
    process: subprocess.Popen, address: str, timeout_seconds: float = defaults.DEFAULT_SERVER_START_SECONDS
) -> None:
    """Waits until a gRPC server process accepts connections at ``address``.

    Args:
        process: The server's process.
        address: "HOST:PORT" it listens on.
        timeout_seconds: Longest wait.

    Raises:
        ServingProcessError: If the process exits first, or the wait times out.
    """
    deadline = time.monotonic() + timeout_seconds
    with grpc.insecure_channel(address) as channel:
        while True:
            exit_code = process.poll()
            if exit_code is not None:
                raise ServingProcessError(f"the serving process exited with code {exit_code} before serving")
            try:
                grpc.channel_ready_future(channel).result(timeout=_READY_POLL_SECONDS)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise ServingProcessError(
                        f"the serving process did not listen on {address} within {timeout_seconds:g} s"
                    ) from None


def stop_process(process: subprocess.Popen, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """Stops a child process: SIGTERM, then SIGKILL after ``grace_seconds``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        logger.warning(
            "The serving process %d did not stop within %g s; killing it", process.pid, grace_seconds
        )
        process.kill()
        process.wait()


@contextlib.contextmanager
def child_server(
    command: Sequence[str], address: str, timeout_seconds: float = defaults.DEFAULT_SERVER_START_SECONDS
) -> Iterator[None]:
    """Runs a serving command in a child process while the block runs.

    In the main thread, SIGTERM is turned into KeyboardInterrupt meanwhile, so
    that the child is stopped when the page is.

    Args:
        command: The serving command, listening on ``address``.
        address: "HOST:PORT" the command listens on.
        timeout_seconds: Longest wait for the child to accept connections.

    Yields:
        Nothing: the block runs once the child accepts connections.

    Raises:
        ServingProcessError: If the child does not start serving.
    """
    logger.info("Starting the serving process on %s: %s", address, " ".join(command))
    with signals.terminate_as_interrupt():
        process = subprocess.Popen(list(command))
        try:
            wait_until_serving(process, address, timeout_seconds)
            logger.info("The serving process %d accepts calls on %s", process.pid, address)
            yield
        finally:
            stop_process(process)
