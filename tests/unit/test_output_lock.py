"""The exclusive lock on a run's output directory, between real processes."""

import logging
import os
from pathlib import Path

import pytest

from pipeline import cli, output_lock
from tests.lock_holders import start_holder, stop_holder


def test_a_second_lock_on_the_same_output_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(output_lock.OutputLockedError) as raised:
            output_lock.OutputLock(tmp_path).acquire()
        message = str(raised.value)
        assert f"PID {holder.pid}" in message and str(tmp_path) in message
        assert raised.value.owner is not None and raised.value.owner.pid == holder.pid
        assert output_lock.is_held_by_another_process(tmp_path)
    finally:
        stop_holder(holder)
    assert not output_lock.is_held_by_another_process(tmp_path)
    lock = output_lock.OutputLock(tmp_path)
    lock.acquire()  # Released cleanly by the holder: free, and no abnormal end to report.
    try:
        assert lock.previous_owner is None
        assert output_lock.read_owner(tmp_path) == lock.owner
        assert lock.owner.pid == os.getpid()
    finally:
        lock.release()
    assert output_lock.read_owner(tmp_path) is None


def test_a_killed_holder_frees_the_lock_and_is_reported_as_ended_abnormally(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = start_holder(tmp_path)
    holder.kill()  # SIGKILL: no chance to release; the kernel drops the lock with the process.
    holder.wait()
    with caplog.at_level(logging.WARNING), output_lock.hold(tmp_path) as lock:
        assert lock.previous_owner is not None and lock.previous_owner.pid == holder.pid
    assert f"PID {holder.pid}" in caplog.text and "ended abnormally" in caplog.text
    assert lock.previous_owner.started in caplog.text


def test_hold_is_reentrant_within_one_process(tmp_path: Path) -> None:
    with output_lock.hold(tmp_path) as outer, output_lock.hold(tmp_path) as inner:
        assert inner is outer
        assert not output_lock.is_held_by_another_process(tmp_path)
    assert output_lock.read_owner(tmp_path) is None


def test_a_second_run_command_refuses_with_one_line_naming_the_other_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    holder = start_holder(output)
    try:
        exit_code = cli.main(["run", "--corpus", str(tmp_path / "corpus"), "--output", str(output)])
    finally:
        stop_holder(holder)
    assert exit_code != 0
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "accent-pipeline run" in line]
    assert len(error_lines) == 1
    assert f"PID {holder.pid}" in error_lines[0] and str(output) in error_lines[0]
