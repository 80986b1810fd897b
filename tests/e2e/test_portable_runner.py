"""The pipeline's Beam steps on Beam's PortableRunner, with the SDK harness in an external worker pool.

This is the shape in which Flink and Spark run Python Beam jobs on Kubernetes:
a job service receives the portable pipeline and asks a worker pool
(``--environment_type=EXTERNAL``) for SDK workers. Here both are Beam's own
local implementations (``local_job_service_main`` and ``worker_pool_main``),
started on free loopback ports, so the test needs no cluster and no network.

The whole pipeline runs through ``accent-pipeline run --beam-arg=...``, so
EmbeddingGen, StatisticsGen and the Evaluator all go to the job service. Then
EmbeddingGen's executor runs again on the DirectRunner, on the same clip index
and YAMNet artifacts and with the execution properties ML Metadata recorded,
and the two runs' TFRecords must hold the same examples.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts

from components import features
from components.artifacts import ClipIndex, QuarantineReport
from components.embedding import beam_job
from components.embedding.component import EmbeddingGen
from pipeline import configs, run_summary
from tests.e2e.conftest import run_pipeline

pytestmark = pytest.mark.e2e

# Seconds the job service and the worker pool get to start listening, and to stop.
_SERVICE_START_SECONDS = 120.0
_SERVICE_STOP_SECONDS = 30.0

# Embeddings of one patch may differ in the last bits between runs: the clips batched together (and
# so the shapes of the front end's and the network's calls) depend on how the runner splits bundles.
_EMBEDDING_TOLERANCE = 1e-4

# EmbeddingGen's execution properties, as ML Metadata records them, that its executor needs.
_EMBEDDING_PARAMETERS = (
    "class_names_json",
    "non_speech_rule",
    "energy_threshold_dbfs",
    "batch_patches",
    "max_bad_fraction",
    "max_clip_seconds",
)

_COMPLETED_JOB = re.compile(r"Completed job in [\d.]+ seconds with state DONE")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + _SERVICE_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args} exited with {process.returncode}: {log_path.read_text()[-2000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=1):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{process.args} did not listen on port {port} in {_SERVICE_START_SECONDS:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    """Stops a service and the SDK workers it started (its own process group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_SERVICE_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def _portable_beam_services(log_dir: Path) -> Iterator[tuple[list[str], Path]]:
    """Starts Beam's local job service and an external worker pool; stops both on exit.

    Yields:
        The Beam arguments that send a job to them, and the job service's log file.
    """
    # The pool starts each SDK worker with the ``python`` on PATH: this venv's, which has the project.
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    job_port, worker_port = _free_port(), _free_port()
    commands = {
        "job_service": [
            sys.executable,
            "-m",
            "apache_beam.runners.portability.local_job_service_main",
            "--port",
            str(job_port),
        ],
        "worker_pool": [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            "--service_port",
            str(worker_port),
        ],
    }
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            with open(log_dir / f"{name}.log", "wb") as log_file:
                processes[name] = subprocess.Popen(
                    command,
                    env=environment,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        _wait_until_listening(job_port, processes["job_service"], log_dir / "job_service.log")
        _wait_until_listening(worker_port, processes["worker_pool"], log_dir / "worker_pool.log")
        yield (
            [
                "--runner=PortableRunner",
                f"--job_endpoint=localhost:{job_port}",
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{worker_port}",
            ],
            log_dir / "job_service.log",
        )
    finally:
        for process in processes.values():
            _stop(process)


def _parsed_examples(examples_uri: str) -> dict[tuple[str, str, int], dict[str, object]]:
    """Reads an Examples artifact's records, keyed by (split, clip id, patch index)."""
    parsed = {}
    for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
        files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
        assert files, f"no TFRecord file in {examples_uri}/Split-{split}"
        for record in tf.data.TFRecordDataset(files):
            example = tf.train.Example.FromString(record.numpy())
            values = {}
            for key, feature in example.features.feature.items():
                kind = feature.WhichOneof("kind")
                values[key] = list(getattr(feature, kind).value)
            key = (split, values[features.CLIP_ID_KEY][0].decode(), values[features.PATCH_INDEX_KEY][0])
            assert key not in parsed, f"patch {key} written twice"
            parsed[key] = values
    return parsed


def _artifact(artifact_class: type, uri: str):
    artifact = artifact_class()
    artifact.uri = uri
    return artifact


def _embed_on_direct_runner(output: Path, reference_dir: Path) -> str:
    """Runs EmbeddingGen's executor on the DirectRunner, on the inputs and properties of ``output``'s run.

    Returns:
        The URI of the Examples it wrote.
    """
    store = run_summary.open_store(str(output / "metadata.sqlite"))
    runs = run_summary.latest_run(store)
    [execution] = store.get_executions_by_id([runs["EmbeddingGen"].execution_id])
    exec_properties = {
        name: getattr(value, value.WhichOneof("value"))
        for name, value in execution.custom_properties.items()
        if name in _EMBEDDING_PARAMETERS
    }
    assert sorted(exec_properties) == sorted(_EMBEDDING_PARAMETERS)
    # The DirectRunner's run must not overwrite the portable run's copy of the quarantine report.
    exec_properties["quarantine_copy_path"] = ""
    [clip_index] = runs["CorpusIndexGen"].outputs["clip_index"]
    [yamnet_model] = runs["YamnetModelGen"].outputs["model"]
    examples = _artifact(standard_artifacts.Examples, str(reference_dir / "examples"))
    executor = EmbeddingGen.EXECUTOR_SPEC.executor_class(
        base_beam_executor.BaseBeamExecutor.Context(
            beam_pipeline_args=list(configs.LOCAL_BEAM_PIPELINE_ARGS), tmp_dir=str(reference_dir / "tmp")
        )
    )
    executor.Do(
        {
            "clip_index": [_artifact(ClipIndex, clip_index.uri)],
            "yamnet_model": [_artifact(standard_artifacts.Model, yamnet_model.uri)],
        },
        {
            "examples": [examples],
            "quarantine_report": [_artifact(QuarantineReport, str(reference_dir / "report"))],
        },
        exec_properties,
    )
    return examples.uri


@pytest.fixture(scope="module")
def portable_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Runs the whole pipeline on the demo corpus (``conftest.py``), every Beam step on the PortableRunner.

    Returns:
        The output directory and the job service's log.
    """
    output = tmp_path_factory.mktemp("portable_run")
    with _portable_beam_services(tmp_path_factory.mktemp("beam_services")) as (beam_args, job_log):
        exit_code = run_pipeline(
            corpus,
            output,
            "--epochs",
            "2",
            "--min-auc",
            "0",
            *(f"--beam-arg={argument}" for argument in beam_args),
        )
        job_log_text = job_log.read_text(errors="replace")
    assert exit_code == 0
    return output, job_log_text


def test_every_component_completes_with_beam_on_the_portable_runner(portable_run: tuple[Path, str]) -> None:
    output, job_log = portable_run
    runs = run_summary.latest_run(run_summary.open_store(str(output / "metadata.sqlite")))
    assert {name: run.state for name, run in runs.items()} == {name: "complete" for name in runs}
    # EmbeddingGen, StatisticsGen and the Evaluator each sent a job to the job service.
    assert len(_COMPLETED_JOB.findall(job_log)) >= 3, job_log[-3000:]


def test_portable_examples_equal_the_direct_runners(
    portable_run: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    output, _ = portable_run
    runs = run_summary.latest_run(run_summary.open_store(str(output / "metadata.sqlite")))
    [portable_examples] = runs["EmbeddingGen"].outputs["examples"]
    assert os.path.basename(
        sorted(tf.io.gfile.glob(os.path.join(portable_examples.uri, "Split-train", "*")))[0]
    ).startswith(beam_job.EXAMPLES_FILE_PREFIX)
    direct_examples_uri = _embed_on_direct_runner(output, tmp_path_factory.mktemp("direct_runner"))

    portable = _parsed_examples(portable_examples.uri)
    direct = _parsed_examples(direct_examples_uri)
    assert sorted(portable) == sorted(direct)
    assert len(portable) > 100
    for key in sorted(portable):
        portable_values, direct_values = portable[key], direct[key]
        assert sorted(portable_values) == sorted(direct_values), key
        for name in portable_values:
            if name == features.EMBEDDING_KEY:
                np.testing.assert_allclose(
                    portable_values[name], direct_values[name], rtol=0, atol=_EMBEDDING_TOLERANCE
                )
            else:
                assert portable_values[name] == direct_values[name], (key, name)
