"""Another process that holds a run's output lock, for the tests of the lock and of the run summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A process that takes the lock on OUT, says so, and holds it until its standard input closes
# (or it is killed).
_HOLDER_SCRIPT = """
import sys
from pipeline import output_lock
lock = output_lock.OutputLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def start_holder(output_dir: Path) -> subprocess.Popen[str]:
    """Starts a process that takes the output lock on a directory, returning once it holds it.

    Args:
        output_dir: The run's output directory (OUT).

    Returns:
        The holding process; closing its standard input makes it release the lock and exit.
    """
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER_SCRIPT, str(output_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"  # Blocks until the lock is held: no sleep.
    return holder


def stop_holder(holder: subprocess.Popen[str]) -> None:
    """Makes a holder release the lock and checks that it exits cleanly.

    Args:
        holder: A process from ``start_holder``.
    """
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait() == 0
