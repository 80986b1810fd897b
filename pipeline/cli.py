"""The ``accent-pipeline`` command line: parse, then call the modules that do the work."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from components import features
from components.corpus.split import SPLIT_STRATEGIES
from components.embedding.speech import RULES as NON_SPEECH_RULES
from components.errors import AccentPipelineError, InvalidArgumentError
from components.serving import batch_signature
from components.serving import defaults as serving_defaults
from components.web import defaults as web_defaults
from components.yamnet import defaults as yamnet_defaults
from pipeline import configs, logging_setup
from pipeline.output_lock import OutputLockedError

logger = logging.getLogger("accent-pipeline")


# Every setting at its default, for the flags' defaults.
_DEFAULT_SETTINGS = configs.PipelineSettings()


class _RepeatedFlagAction(argparse.Action):
    """A repeatable flag whose values are collected into a tuple; the first use replaces the default."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[str] | None,
        option_string: str | None = None,
    ) -> None:
        """Adds one value."""
        collected = getattr(namespace, self.dest)
        if collected is self.default:
            collected = ()
        setattr(namespace, self.dest, (*collected, str(values)))


def _comma_separated(text: str) -> tuple[str, ...]:
    """Parses ``A,B,C`` for argparse."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _code_map(text: str) -> dict[str, str]:
    """Parses ``CODE=NAME,CODE=NAME`` for argparse."""
    mapping: dict[str, str] = {}
    for item in _comma_separated(text):
        code, separator, name = item.partition("=")
        if not separator or not code.strip() or not name.strip():
            raise argparse.ArgumentTypeError(f"expected CODE=NAME, got {item!r}")
        mapping[code.strip()] = name.strip()
    return mapping


def _add_setting(parser: argparse.ArgumentParser, field_name: str, *flags: str, **options: Any) -> None:
    """Adds the flag of one ``PipelineSettings`` field, whose default is the field's."""
    parser.add_argument(*flags, dest=field_name, default=getattr(_DEFAULT_SETTINGS, field_name), **options)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one flag per ``PipelineSettings`` field: the flags shared by ``run`` and ``compile-kubeflow``.

    Each flag's destination is its field's name and its default the field's
    default; a new setting is a new field plus one line here.
    """
    _add_setting(
        parser,
        "yamnet_handle",
        "--yamnet",
        help="YAMNet handle: TF Hub or Kaggle URL, local SavedModel dir, or "
        f"{yamnet_defaults.OFFLINE_WEIGHTS!r} (untrained)",
    )
    _add_setting(
        parser,
        "class_names",
        "--class-names",
        type=_comma_separated,
        metavar="NAME,...",
        help="Label vocabulary in label-id order, the non-speech class included",
    )
    _add_setting(
        parser,
        "accent_codes",
        "--accent-codes",
        type=_code_map,
        metavar="CODE=NAME,...",
        help="Filename prefix of each accent and its class name",
    )
    _add_setting(parser, "split_strategy", "--split", choices=SPLIT_STRATEGIES)
    _add_setting(parser, "eval_fraction", "--eval-fraction", type=float)
    _add_setting(parser, "split_seed", "--split-seed", type=int, help="Seed of the utterance split")
    _add_setting(parser, "non_speech_rule", "--non-speech-rule", choices=NON_SPEECH_RULES)
    _add_setting(parser, "energy_threshold_dbfs", "--energy-threshold-dbfs", type=float)
    _add_setting(
        parser,
        "embedding_batch_patches",
        "--embedding-batch-patches",
        type=int,
        help="Patches sent to YAMNet in one call",
    )
    _add_setting(parser, "max_bad_fraction", "--max-bad-fraction", type=float)
    _add_setting(
        parser,
        "max_clip_seconds",
        "--max-clip-seconds",
        type=float,
        help="Quarantine clips longer than this many seconds",
    )
    _add_setting(parser, "epochs", "--epochs", type=int)
    _add_setting(parser, "batch_size", "--batch-size", type=int)
    _add_setting(parser, "learning_rate", "--learning-rate", type=float)
    _add_setting(parser, "early_stopping_patience", "--early-stopping-patience", type=int)
    _add_setting(
        parser,
        "min_auc",
        "--min-auc",
        type=float,
        help="Lower bound on macro one-vs-rest AUC for blessing (0.85 suits OpenSLR-83 with real YAMNet)",
    )
    _add_setting(parser, "max_auc_regression", "--max-auc-regression", type=float)
    _add_setting(
        parser,
        "tune",
        "--tune",
        action="store_true",
        help="Search the classifier's hyperparameters with a TFX Tuner before the Trainer: KerasTuner "
        "Bayesian optimisation of validation AUC on a speaker-disjoint part of the train split (never "
        "the eval split); the Trainer then builds the best trial's model instead of the reference",
    )
    _add_setting(
        parser,
        "tuner_trials",
        "--tuner-trials",
        type=int,
        help=f"Trials of the --tune search (default {_DEFAULT_SETTINGS.tuner_trials})",
    )
    _add_setting(
        parser, "tuner_epochs", "--tuner-epochs", type=int, help="Training epochs of each --tune trial"
    )
    _add_setting(
        parser,
        "beam_pipeline_args",
        "--beam-arg",
        action=_RepeatedFlagAction,
        metavar="ARG",
        help="A Beam pipeline argument, e.g. --beam-arg=--runner=DataflowRunner; repeat for more "
        "(default for run: the DirectRunner, one thread per core)",
    )


def settings_from_args(args: argparse.Namespace) -> configs.PipelineSettings:
    """Builds the settings from the flags of ``add_settings_arguments``.

    Raises:
        InvalidArgumentError: If a setting is invalid.
    """
    return configs.PipelineSettings(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(configs.PipelineSettings)}
    )


def _demo_corpus(args: argparse.Namespace) -> None:
    from components import demo_corpus

    summary = demo_corpus.write_demo_corpus(args.directory, clips_per_speaker=args.clips_per_speaker)
    print(
        f"Demo corpus in {summary.output_dir}: {len(summary.clip_ids)} clips, {summary.total_seconds:.0f} s, "
        f"accents {', '.join(summary.accent_codes)}, {len(summary.speakers)} speakers"
    )


def _run(args: argparse.Namespace) -> None:
    from pipeline import local_runner, output_lock, run_summary

    settings = settings_from_args(args)
    # Held for the run and its summary, which then reads a store that no other run writes.
    with output_lock.hold(args.output):
        layout = local_runner.run_local(args.corpus, args.output, settings)
        print(f"Outputs: {layout.output_dir} (quarantine report: {layout.quarantine_path})")
        # The summary ends with the model card's path, the last line a run prints.
        print(
            run_summary.format_summary(
                str(layout.metadata_path),
                settings.class_names,
                pipeline_root=str(layout.pipeline_root),
                corpus_dir=args.corpus,
            )
        )


def _export_yamnet(args: argparse.Namespace) -> None:
    from components.yamnet import export

    path = export.export_yamnet(
        args.output, weights=args.weights, seed=args.seed, class_map_csv=args.class_map
    )
    print(f"YAMNet SavedModel written to {path}")


def _serve(args: argparse.Namespace) -> None:
    from components.serving import launcher

    launcher.serve(
        model_base_path=args.model_base_path,
        model_name=args.model_name,
        port=args.port,
        host=args.host,
        max_audio_seconds=args.max_audio_seconds,
        max_in_flight=args.max_in_flight,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
    )


def _positive_float(text: str) -> float:
    """Parses a positive finite number for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    """Parses a positive integer for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    """Parses a finite number >= 0 for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _predict(args: argparse.Namespace) -> None:
    from components.serving import client

    num_failed = client.predict_files(
        args.files,
        server=args.server,
        model_name=args.model_name,
        output_json=args.json,
        signature_name=args.signature,
    )
    if num_failed:
        raise client.PredictionError(f"{num_failed} of {len(args.files)} files could not be scored")


def _web(args: argparse.Namespace) -> None:
    from components.web import app, local_serving

    # Without --server, a serving process gets a free loopback port; settings are checked before it starts.
    server = args.server or f"{local_serving.LOOPBACK_HOST}:{local_serving.free_loopback_port()}"
    settings = app.PageSettings(
        server=server,
        model_name=args.model_name,
        max_audio_seconds=args.max_audio_seconds,
        examples_dir=args.examples,
    )
    if args.server:
        app.launch_page(settings, host=args.host, port=args.port, block=True)
        return
    host, _, port = server.rpartition(":")
    serve_command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "serve",
        f"--model-base-path={args.model_base_path}",
        f"--model-name={args.model_name}",
        f"--host={host}",
        f"--port={port}",
        f"--max-audio-seconds={args.max_audio_seconds}",
    ]
    with local_serving.child_server(serve_command, server):
        app.launch_page(settings, host=args.host, port=args.port, block=True)


class _KeyedFlagAction(argparse.Action):
    """Collects a repeated flag into a dict; a subclass parses one value into a key and an item.

    A ``ValueError`` of ``parse`` or ``check`` becomes argparse's error for the flag.
    """

    def parse(self, text: str) -> tuple[str, Any]:
        """Parses one value of the flag into its key and item."""
        raise NotImplementedError

    def check(self, collected: dict[str, Any], key: str, item: Any) -> None:
        """Checks one more item against those collected so far; nothing to check by default."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[str] | None,
        option_string: str | None = None,
    ) -> None:
        """Parses one value, checks it and adds it."""
        collected = dict(getattr(namespace, self.dest) or {})
        try:
            key, item = self.parse(str(values))
            self.check(collected, key, item)
        except ValueError as error:
            raise argparse.ArgumentError(self, str(error)) from error
        setattr(namespace, self.dest, {**collected, key: item})


class _PvcMountAction(_KeyedFlagAction):
    """``--pvc-mount CLAIM:MOUNT_PATH``, repeated: claim -> mount path, no claim or path twice."""

    def parse(self, text: str) -> tuple[str, str]:
        """Parses ``CLAIM:MOUNT_PATH``."""
        from pipeline import kubeflow_runner

        return kubeflow_runner.parse_pvc_mount(text)

    def check(self, collected: dict[str, Any], key: str, item: Any) -> None:
        """Refuses a second mount of a claim or of a path."""
        from pipeline import kubeflow_runner

        if key in collected:
            raise ValueError(f"{key!r} is already mounted at {collected[key]}")
        kubeflow_runner.check_pvc_mounts({**collected, key: item})


class _StepResourcesAction(_KeyedFlagAction):
    """``--resources STEP=CPU,MEMORY_GB``, repeated: step -> resources."""

    def parse(self, text: str) -> tuple[str, configs.StepResources]:
        """Parses ``STEP=CPU[/LIMIT],MEMORY_GB[/LIMIT]``."""
        from pipeline import kubeflow_runner

        return kubeflow_runner.parse_step_resources(text)


def _compile_kubeflow(args: argparse.Namespace) -> None:
    from pipeline import kubeflow_runner

    kubeflow_runner.compile_kubeflow(
        output_path=args.output,
        image=args.image,
        pipeline_root=args.pipeline_root,
        settings=settings_from_args(args),
        corpus_dir=args.corpus,
        serving_base_path=args.serving_base_path,
        quarantine_copy_path=args.quarantine_copy,
        corpus_fingerprint=args.corpus_fingerprint,
        pvc_mounts=args.pvc_mount,
        target=args.target,
        step_resources=args.resources,
    )
    print(f"Wrote {args.output}")


def _submit_kubeflow(args: argparse.Namespace) -> None:
    from pipeline import kubeflow_runner

    run_id = kubeflow_runner.submit_kubeflow(
        args.package,
        host=args.host,
        experiment=args.experiment,
        namespace=args.namespace,
        service_account=args.service_account,
    )
    print(f"Submitted run {run_id}")


def _report(args: argparse.Namespace) -> None:
    from pipeline import card_report

    print(card_report.format_report(card_report.latest_card(args.output)))


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="accent-pipeline", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="Debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo-corpus", help="Write the synthetic eSpeak NG accent corpus")
    demo.add_argument("directory")
    demo.add_argument("--clips-per-speaker", type=int, default=8)
    demo.set_defaults(handler=_demo_corpus)

    run = commands.add_parser("run", help="Run the whole pipeline locally with LocalDagRunner")
    run.add_argument("--corpus", required=True, help="Corpus in the OpenSLR-83 layout (index + wavs or zips)")
    run.add_argument("--output", required=True, help="Output directory OUT")
    add_settings_arguments(run)
    run.set_defaults(handler=_run)

    export_yamnet = commands.add_parser(
        "export-yamnet", help="Write YAMNet as a TF-Hub-compatible SavedModel"
    )
    export_yamnet.add_argument("--output", required=True)
    export_yamnet.add_argument(
        "--weights",
        default=yamnet_defaults.OFFLINE_WEIGHTS,
        help=f"{yamnet_defaults.OFFLINE_WEIGHTS!r} (untrained, seeded) or the path of the official yamnet.h5",
    )
    export_yamnet.add_argument(
        "--seed", type=int, default=yamnet_defaults.OFFLINE_SEED, help="Seed of offline weights"
    )
    export_yamnet.add_argument(
        "--class-map",
        default=None,
        help="yamnet_class_map.csv of the h5 weights (tensorflow/models, research/audioset/yamnet); "
        "required with --weights PATH/yamnet.h5, refused with offline weights",
    )
    export_yamnet.set_defaults(handler=_export_yamnet)

    serve = commands.add_parser("serve", help="Serve pushed models over TF Serving's gRPC API")
    serve.add_argument("--model-base-path", required=True)
    serve.add_argument("--model-name", default=configs.SERVING_MODEL_NAME)
    serve.add_argument("--port", type=int, default=serving_defaults.DEFAULT_PORT)
    serve.add_argument(
        "--host",
        default=serving_defaults.DEFAULT_HOST,
        help=f"Address to listen on (default: {serving_defaults.DEFAULT_HOST}, this machine only; "
        "0.0.0.0 for every interface). tensorflow_model_server, when on PATH, always listens on "
        "every interface",
    )
    serve.add_argument(
        "--max-audio-seconds",
        type=_positive_float,
        default=serving_defaults.DEFAULT_MAX_AUDIO_SECONDS,
        help="Longest audio a request may send, in seconds at 16 kHz; longer is INVALID_ARGUMENT "
        f"(default: {serving_defaults.DEFAULT_MAX_AUDIO_SECONDS:g})",
    )
    serve.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=serving_defaults.DEFAULT_MAX_IN_FLIGHT,
        help="Most model calls running at once; more requests get RESOURCE_EXHAUSTED at once "
        f"(default: {serving_defaults.DEFAULT_MAX_IN_FLIGHT})",
    )
    serve.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=serving_defaults.DEFAULT_MAX_BATCH_SIZE,
        help="Most concurrent Predict requests answered by one batched model call; 1 turns batching "
        f"off; never more than --max-in-flight (default: {serving_defaults.DEFAULT_MAX_BATCH_SIZE})",
    )
    serve.add_argument(
        "--batch-timeout-ms",
        type=_non_negative_float,
        default=serving_defaults.DEFAULT_BATCH_TIMEOUT_MS,
        help="Longest wait of a batch for more requests, in milliseconds; a lone request never waits "
        f"(default: {serving_defaults.DEFAULT_BATCH_TIMEOUT_MS:g})",
    )
    serve.set_defaults(handler=_serve)

    predict = commands.add_parser("predict", help="Send audio files to TF Serving and print the accents")
    predict.add_argument("files", nargs="+")
    predict.add_argument("--server", default=f"localhost:{serving_defaults.DEFAULT_PORT}")
    predict.add_argument("--model-name", default=configs.SERVING_MODEL_NAME)
    predict.add_argument("--json", action="store_true")
    predict.add_argument(
        "--signature",
        choices=[features.SERVING_SIGNATURE, batch_signature.BATCH_SIGNATURE],
        default=None,
        help="Force the signature to call (default: serving_batch when the served model lists it, "
        "as TF Serving with --enable_batching in kubernetes/ needs, else serving_default)",
    )
    predict.set_defaults(handler=_predict)

    web = commands.add_parser("web", help="Start a web page to try the served model (a gRPC client)")
    web_server = web.add_mutually_exclusive_group(required=True)
    web_server.add_argument("--server", help="HOST:PORT of TF Serving or `accent-pipeline serve`")
    web_server.add_argument(
        "--model-base-path",
        help="Instead of --server: serve DIR (as `serve` does) in a child process on a free loopback "
        "port, and point the page at it; both stop together",
    )
    web.add_argument(
        "--host", default=web_defaults.DEFAULT_HOST, help="Address of the page (default: %(default)s)"
    )
    web.add_argument(
        "--port", type=int, default=web_defaults.DEFAULT_PORT, help="Port of the page (default: %(default)s)"
    )
    web.add_argument("--model-name", default=configs.SERVING_MODEL_NAME)
    web.add_argument(
        "--examples", default=None, metavar="DIR", help="Offer a few clips of DIR (a corpus) as examples"
    )
    web.add_argument(
        "--max-audio-seconds",
        type=_positive_float,
        default=serving_defaults.DEFAULT_MAX_AUDIO_SECONDS,
        help="Longest audio the page accepts, in seconds; keep the server's (default: %(default)g)",
    )
    web.set_defaults(handler=_web)

    compile_kfp = commands.add_parser(
        "compile-kubeflow", help="Compile for a self-hosted Kubeflow Pipelines 2.x or Vertex AI Pipelines"
    )
    compile_kfp.add_argument(
        "--output", required=True, help=".yaml: PipelineSpec; .json: Vertex AI PipelineJob"
    )
    compile_kfp.add_argument(
        "--target",
        choices=configs.KUBEFLOW_TARGETS,
        default=None,
        help=f"Where the pipeline runs (default: vertex for .json output, else {configs.KUBEFLOW_TARGET})",
    )
    compile_kfp.add_argument("--image", required=True)
    compile_kfp.add_argument("--pipeline-root", required=True)
    compile_kfp.add_argument(
        "--corpus",
        default=None,
        help="Corpus path on a --pvc-mount, or gs:// URI (default: <pipeline-root>/corpus)",
    )
    compile_kfp.add_argument(
        "--corpus-fingerprint",
        default=None,
        help="Cache key of the corpus, e.g. its version: the same key reuses KFP's cached index and "
        "embeddings (default: the compile time, so every compiled pipeline indexes the corpus again)",
    )
    compile_kfp.add_argument(
        "--serving-base-path",
        default=None,
        help="Where the Pusher writes (default: <pipeline-root>/serving/accent)",
    )
    compile_kfp.add_argument(
        "--quarantine-copy",
        default=None,
        help="Where EmbeddingGen copies the quarantine report (default: <pipeline-root>/quarantine.csv)",
    )
    compile_kfp.add_argument(
        "--pvc-mount",
        action=_PvcMountAction,
        default=None,
        metavar="CLAIM:MOUNT_PATH",
        help="Mount a PersistentVolumeClaim into every step (kfp target only); repeat for more",
    )
    compile_kfp.add_argument(
        "--resources",
        action=_StepResourcesAction,
        default=None,
        metavar="STEP=CPU[/LIMIT],MEMORY_GB[/LIMIT]",
        help="CPU and memory (GB) of one step's pod, e.g. EmbeddingGen=8,16G; repeat for more "
        "(defaults in pipeline/configs.py)",
    )
    add_settings_arguments(compile_kfp)
    compile_kfp.set_defaults(handler=_compile_kubeflow)

    submit = commands.add_parser("submit-kubeflow", help="Submit a compiled pipeline to Kubeflow Pipelines")
    submit.add_argument("package")
    submit.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    submit.add_argument("--experiment", default=None, help="Experiment name, created if missing")
    submit.add_argument("--namespace", default=None, help="Namespace of the experiment (multi-user KFP)")
    submit.add_argument("--service-account", default=None, help="Service account of the run's pods")
    submit.set_defaults(handler=_submit_kubeflow)

    report = commands.add_parser("report", help="Print the model card of OUT's latest run: summary, paths")
    report.add_argument("output", help="Output directory OUT of a local run")
    report.set_defaults(handler=_report)
    return parser


# Exit codes of the project's errors, the most specific class first; argparse exits with 2 itself.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_OUTPUT_LOCKED = 75
_EXIT_CODES: tuple[tuple[type[AccentPipelineError], int], ...] = (
    (OutputLockedError, EXIT_OUTPUT_LOCKED),
    (InvalidArgumentError, EXIT_USAGE),
    (AccentPipelineError, EXIT_FAILED),
)


def exit_code_of(error: AccentPipelineError) -> int:
    """The exit code of a project error: 75 for a held lock, 2 for a bad argument, else 1."""
    return next(code for error_class, code in _EXIT_CODES if isinstance(error, error_class))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand; the one place that turns errors into exit codes and messages.

    A project error (``components.errors.AccentPipelineError``) prints one line,
    ``accent-pipeline COMMAND: error: MESSAGE``, and exits with ``exit_code_of``;
    any other exception prints one line too, and its traceback with ``--verbose``.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code: 0, or 1 (a failed or refused run or input), 2 (a bad argument or
        setting) or 75 (another run holds the output directory).
    """
    args = build_parser().parse_args(argv)
    # google-cloud libraries warn on every import that Python 3.10 (which TFX 1.16 needs) is old.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core\.")
    logging_setup.configure_logging(args.verbose)
    prefix = f"accent-pipeline {args.command}: error:"
    try:
        args.handler(args)
    except AccentPipelineError as error:
        logger.debug("%s failed", args.command, exc_info=True)
        print(f"{prefix} {error}", file=sys.stderr)
        return exit_code_of(error)
    except Exception as error:  # Anything else: one line, and the traceback on request.
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(error).split())
        print(f"{prefix} {type(error).__name__}: {message}", file=sys.stderr)
        if not args.verbose:
            print("run with --verbose for the traceback", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
