import logging

import pytest

from pipeline import cli, configs


def _record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def test_run_flags_become_settings() -> None:
    args = cli.build_parser().parse_args(
        [
            "run",
            "--corpus",
            "c",
            "--output",
            "o",
            "--yamnet",
            "offline",
            "--epochs",
            "3",
            "--split",
            "utterance",
            "--min-auc",
            "0.5",
            "--beam-arg=--runner=DataflowRunner",
            "--beam-arg=--region=europe-west2",
        ]
    )
    settings = cli._settings_from(args, configs.LOCAL_BEAM_PIPELINE_ARGS)
    assert settings.yamnet_handle == "offline"
    assert settings.epochs == 3 and settings.split_strategy == "utterance" and settings.min_auc == 0.5
    assert settings.beam_pipeline_args == ("--runner=DataflowRunner", "--region=europe-west2")
    assert settings.batch_size == configs.BATCH_SIZE


def test_local_beam_arguments_are_the_default() -> None:
    args = cli.build_parser().parse_args(["run", "--corpus", "c", "--output", "o"])
    settings = cli._settings_from(args, configs.LOCAL_BEAM_PIPELINE_ARGS)
    assert settings.beam_pipeline_args == configs.LOCAL_BEAM_PIPELINE_ARGS
    assert settings.yamnet_handle == configs.YAMNET_HANDLE


def test_bad_settings_fail_before_anything_runs() -> None:
    args = cli.build_parser().parse_args(["run", "--corpus", "c", "--output", "o", "--eval-fraction", "2"])
    with pytest.raises(ValueError, match="eval_fraction"):
        cli._settings_from(args, ())


def test_tfx_progress_filter_keeps_component_progress_only() -> None:
    progress = cli._TfxProgressFilter()
    assert progress.filter(_record("absl", logging.INFO, "Component EmbeddingGen is running."))
    assert progress.filter(_record("absl", logging.INFO, "Component Trainer is finished."))
    assert progress.filter(_record("absl", logging.WARNING, "Something odd"))
    assert not progress.filter(_record("absl", logging.INFO, "Publishing output artifacts defaultdict(...)"))


def test_beam_worker_filter_shows_the_projects_worker_lines_as_text() -> None:
    worker = cli._BeamWorkerFilter()
    ours = _record(
        "apache_beam.runners.portability.local_job_service",
        logging.INFO,
        'Worker: severity: INFO message: "Embedded a batch of 4 clips (\\"12\\" patches)" '
        'log_location: "/work/main/components/embedding/beam_job.py:170" thread: "Thread-1"',
    )
    assert worker.filter(ours)
    assert ours.getMessage() == '[worker] Embedded a batch of 4 clips (\\"12\\" patches)'
    theirs = _record(
        "apache_beam.runners.portability.local_job_service",
        logging.WARNING,
        'Worker: severity: WARN message: "Couldn\'t find python-snappy" '
        'log_location: "/x/apache_beam/io/tfrecordio.py:59"',
    )
    assert not worker.filter(theirs)
    assert worker.filter(_record("apache_beam.runners.direct", logging.WARNING, "A real warning"))
    assert not worker.filter(_record("apache_beam.runners.direct", logging.INFO, "Running pipeline"))


def test_progress_filter_reaches_records_of_child_loggers() -> None:
    progress = cli._ProgressFilter()
    assert not progress.filter(
        _record("apache_beam.runners.portability.fn_api_runner", logging.INFO, "Running")
    )
    assert not progress.filter(_record("absl", logging.INFO, "Publishing output artifacts"))
    assert progress.filter(_record("components.embedding.component", logging.INFO, "Embedding 128 clips"))
