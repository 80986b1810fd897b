"""Fixtures shared by the end-to-end tests: the demo corpus and one pipeline run on it, once per session.

The pipeline runs once for the whole session: ``test_local_pipeline.py`` checks
that run (and runs again into the same output to test caching and blessing),
and ``test_web_page.py`` serves the model it pushed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components import demo_corpus
from pipeline import cli


def run_pipeline(corpus: Path | str, output: Path, *extra: str) -> int:
    """Runs ``accent-pipeline run`` with the end-to-end tests' settings (offline YAMNet).

    ``extra`` flags come last; a flag given again there overrides its setting here (argparse keeps
    the last value), e.g. ``"--epochs", "2"``.
    """
    return cli.main(
        [
            "run",
            "--corpus",
            str(corpus),
            "--output",
            str(output),
            "--yamnet",
            "offline",
            "--split",
            "utterance",
            "--eval-fraction",
            "0.25",
            "--epochs",
            "8",
            "--batch-size",
            "16",
            *extra,
        ]
    )


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo_corpus")
    demo_corpus.write_demo_corpus(str(directory), clips_per_speaker=3)
    return directory


@pytest.fixture(scope="session")
def first_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT of a first run that pushed a model (``--min-auc 0``, so it is blessed)."""
    output = tmp_path_factory.mktemp("run")
    assert run_pipeline(corpus, output, "--learning-rate", "0.002", "--min-auc", "0") == 0
    return output
