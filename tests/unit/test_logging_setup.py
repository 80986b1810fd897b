"""What a run shows of TFX's and Beam's logging, with and without --verbose."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

import components
from pipeline.logging_setup import ProgressFilter

# Where this checkout's embedding job is, as a worker's log_location names it.
BEAM_JOB_PATH = Path(components.__file__).parent / "embedding" / "beam_job.py"

# A process that configures logging as ``accent-pipeline`` does, then logs as TFX, Beam and the project do.
_LOGGING_SCRIPT = """
import logging
import sys
from pipeline.logging_setup import configure_logging
configure_logging(verbose=sys.argv[1] == "verbose")
logging.getLogger("absl").info("Component Trainer is running.")
logging.getLogger("absl").info("Publishing output artifacts defaultdict(...)")
logging.getLogger("apache_beam.runners.portability.fn_api_runner").info("Running the bundle")
logging.getLogger("apache_beam.runners.direct").warning("A real warning")
logging.getLogger("components.embedding.component").info("Embedding 128 clips")
"""


def _record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def _logged_lines(verbose: bool) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _LOGGING_SCRIPT, "verbose" if verbose else "quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stderr


def test_a_run_shows_progress_warnings_and_its_own_lines_but_not_tfx_dumps_or_beam_chatter() -> None:
    shown = _logged_lines(verbose=False)
    assert "INFO absl: Component Trainer is running." in shown
    assert "WARNING apache_beam.runners.direct: A real warning" in shown
    assert "INFO components.embedding.component: Embedding 128 clips" in shown
    assert "Publishing output artifacts" not in shown
    assert "Running the bundle" not in shown


def test_a_verbose_run_shows_every_record() -> None:
    shown = _logged_lines(verbose=True)
    assert "Publishing output artifacts" in shown
    assert "Running the bundle" in shown


def test_tfx_records_pass_when_they_are_component_progress_or_warnings() -> None:
    progress = ProgressFilter()
    assert progress.filter(_record("absl", logging.INFO, "Component EmbeddingGen is running."))
    assert progress.filter(_record("absl", logging.INFO, "Component Trainer is finished."))
    assert progress.filter(_record("absl", logging.WARNING, "Something odd"))
    assert not progress.filter(_record("absl", logging.INFO, "Publishing output artifacts defaultdict(...)"))
    assert not progress.filter(
        _record("absl", logging.WARNING, "ArtifactQuery.property_predicate is not supported, ignoring it")
    )


def test_the_projects_beam_worker_lines_are_shown_as_text_and_other_workers_lines_are_not() -> None:
    progress = ProgressFilter()
    ours = _record(
        "apache_beam.runners.portability.local_job_service",
        logging.INFO,
        'Worker: severity: INFO message: "Embedded a batch of 4 clips (\\"12\\" patches)" '
        f'log_location: "{BEAM_JOB_PATH}:170" thread: "Thread-1"',
    )
    assert progress.filter(ours)
    assert ours.getMessage() == '[worker] Embedded a batch of 4 clips (\\"12\\" patches)'
    theirs = _record(
        "apache_beam.runners.portability.local_job_service",
        logging.WARNING,
        'Worker: severity: WARN message: "Couldn\'t find python-snappy" '
        'log_location: "/x/apache_beam/io/tfrecordio.py:59"',
    )
    assert not progress.filter(theirs)


@pytest.mark.parametrize(
    ("name", "level", "shown"),
    [
        ("apache_beam", logging.WARNING, True),
        ("apache_beam.runners.direct", logging.WARNING, True),
        ("apache_beam.runners.direct", logging.INFO, False),
        ("apache_beam.runners.portability.fn_api_runner", logging.INFO, False),
        ("components.embedding.component", logging.INFO, True),
        ("apache_beam_lookalike", logging.INFO, True),
    ],
)
def test_beam_records_pass_only_as_warnings_and_other_loggers_pass(
    name: str, level: int, shown: bool
) -> None:
    assert ProgressFilter().filter(_record(name, level, "Running pipeline")) is shown
