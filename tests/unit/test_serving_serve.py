"""``serve``: delegation to tensorflow_model_server when it is on PATH, and shutdown on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from components.errors import InvalidArgumentError
from components.serving import launcher
from tests import serving_models

MODEL_NAME = "accent"
STARTUP_TIMEOUT_SECONDS = 60.0

FAKE_MODEL_SERVER = """#!/bin/sh
# Stands in for TF Serving's binary: records its arguments, then exits or waits for SIGTERM.
printf '%s\\n' "$@" > "$FAKE_MODEL_SERVER_ARGV.partial"
mv "$FAKE_MODEL_SERVER_ARGV.partial" "$FAKE_MODEL_SERVER_ARGV"
if [ -z "$FAKE_MODEL_SERVER_WAIT" ]; then
    exit 3
fi
trap 'echo TERM > "$FAKE_MODEL_SERVER_SIGNAL"; exit 0' TERM
count=0
while [ "$count" -lt 600 ]; do
    sleep 0.1
    count=$((count + 1))
done
exit 4
"""

SERVE_SCRIPT = """
import logging, sys
from components.serving import launcher
logging.basicConfig(level=logging.INFO)
sys.exit(launcher.serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), host="127.0.0.1"))
"""


@pytest.fixture
def fake_binary_dir(tmp_path: Path) -> Path:
    binary_dir = tmp_path / "bin"
    binary_dir.mkdir()
    binary = binary_dir / launcher.MODEL_SERVER_BINARY
    binary.write_text(FAKE_MODEL_SERVER)
    binary.chmod(0o755)
    return binary_dir


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_file(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not path.exists():
        assert process.poll() is None, f"serve exited early with code {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def _stop_with_sigterm(process: subprocess.Popen) -> str:
    """Sends SIGTERM and returns the process's stderr; kills it if it has not ended within 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30.0)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate(timeout=10.0)
    return stderr


def test_serve_runs_tensorflow_model_server_when_it_is_on_path(
    fake_binary_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_base_path = tmp_path / "models" / MODEL_NAME
    model_base_path.mkdir(parents=True)
    argv_file = tmp_path / "argv.txt"
    monkeypatch.setenv("PATH", f"{fake_binary_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_MODEL_SERVER_ARGV", str(argv_file))
    monkeypatch.delenv("FAKE_MODEL_SERVER_WAIT", raising=False)
    monkeypatch.chdir(tmp_path)

    with pytest.raises(launcher.ModelServerError) as raised:
        launcher.serve(Path("models") / MODEL_NAME, "dialect", 9123, poll_wait_seconds=0.5)
    exit_code = raised.value.return_code

    assert exit_code == 3
    assert argv_file.read_text().splitlines() == [
        "--port=9123",
        "--model_name=dialect",
        f"--model_base_path={model_base_path}",
        "--file_system_poll_wait_seconds=1",
    ]


@pytest.mark.parametrize(("host", "warns"), [("127.0.0.1", True), ("0.0.0.0", False)])
def test_serve_warns_that_tensorflow_model_server_listens_on_every_interface(
    fake_binary_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    host: str,
    warns: bool,
) -> None:
    model_base_path = tmp_path / MODEL_NAME
    model_base_path.mkdir()
    monkeypatch.setenv("PATH", f"{fake_binary_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_MODEL_SERVER_ARGV", str(tmp_path / "argv.txt"))
    monkeypatch.delenv("FAKE_MODEL_SERVER_WAIT", raising=False)
    caplog.set_level(logging.WARNING, logger=launcher.__name__)

    with pytest.raises(launcher.ModelServerError, match="exited with code 3"):
        launcher.serve(model_base_path, MODEL_NAME, 9123, host=host)

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    bind_warnings = [message for message in warnings if "every interface" in message]
    if warns:
        assert len(bind_warnings) == 1
        assert "0.0.0.0:9123" in bind_warnings[0]
        assert f"--host {host}" in bind_warnings[0]
    else:
        assert bind_warnings == []


def test_model_server_command_rounds_the_poll_interval_up() -> None:
    command = launcher.model_server_command("/opt/tfs", "/srv/models/accent", MODEL_NAME, 8500, 2.5)
    assert command == [
        "/opt/tfs",
        "--port=8500",
        f"--model_name={MODEL_NAME}",
        "--model_base_path=/srv/models/accent",
        "--file_system_poll_wait_seconds=3",
    ]


def test_serve_refuses_a_missing_base_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        launcher.serve(tmp_path / "nothing-here", MODEL_NAME, _free_loopback_port())


@pytest.mark.slow
def test_serve_passes_sigterm_on_to_tensorflow_model_server(fake_binary_dir: Path, tmp_path: Path) -> None:
    model_base_path = tmp_path / MODEL_NAME
    model_base_path.mkdir()
    argv_file = tmp_path / "argv.txt"
    signal_file = tmp_path / "signal.txt"
    environment = {
        **os.environ,
        "PATH": f"{fake_binary_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_MODEL_SERVER_ARGV": str(argv_file),
        "FAKE_MODEL_SERVER_SIGNAL": str(signal_file),
        "FAKE_MODEL_SERVER_WAIT": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(model_base_path), MODEL_NAME, "8500"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_file(argv_file, process)
    finally:
        stderr = _stop_with_sigterm(process)

    assert process.returncode == 0, stderr
    assert signal_file.read_text().strip() == "TERM"
    assert "Received SIGTERM; passing it to tensorflow_model_server" in stderr


@pytest.mark.slow
def test_the_project_server_shuts_down_cleanly_on_sigterm(tmp_path: Path, model_cache: Path) -> None:
    model_base_path = tmp_path / MODEL_NAME
    serving_models.push_cached_version(model_cache, model_base_path, 1)
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    port = _free_loopback_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(model_base_path), MODEL_NAME, str(port)],
        env={**os.environ, "PATH": str(empty_bin)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = MODEL_NAME
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while True:
                assert process.poll() is None, f"serve exited early with code {process.returncode}"
                assert time.monotonic() < deadline, "the server did not report version 1 available"
                try:
                    response = stub.GetModelStatus(status_request, timeout=5.0)
                except grpc.RpcError:
                    time.sleep(0.2)
                    continue
                if (
                    response.model_version_status[0].state
                    == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                ):
                    break
                time.sleep(0.2)
    finally:
        stderr = _stop_with_sigterm(process)

    assert process.returncode == 0, stderr
    assert "tensorflow_model_server is not on PATH" in stderr
    assert "Received SIGTERM; shutting down" in stderr
    assert f"Server on 127.0.0.1:{port} stopped" in stderr
