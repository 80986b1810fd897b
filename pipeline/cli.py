"""The ``accent-pipeline`` command line: parse, then call the modules that do the work."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from pipeline import configs

logger = logging.getLogger("accent-pipeline")


class _TfxProgressFilter(logging.Filter):
    """Keeps TFX's component-by-component progress and its warnings, not its artifact dumps."""

    # A warning TFX 1.16 logs for every input resolution of LocalDagRunner; it says nothing about the run.
    _NOISE = ("ArtifactQuery.property_predicate is not supported",)

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to show a record of the ``absl`` logger."""
        message = record.getMessage()
        if message.startswith(self._NOISE):
            return False
        return record.levelno >= logging.WARNING or (
            message.startswith("Component ") and message.rstrip(".").endswith(("running", "finished"))
        )


class _BeamWorkerFilter(logging.Filter):
    """Shows what the project's own code logs inside Beam workers, and Beam's own warnings.

    In multi-processing mode the DirectRunner forwards each worker's log lines
    as ``Worker: severity: ... message: "..." log_location: "..."``; the ones
    from this project (progress of the embedding job) are shown as plain text.
    """

    _FIELD = re.compile(r'(message|log_location): "((?:[^"\\]|\\.)*)"')

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to show a record of the ``apache_beam`` logger, rewritten if it is a worker's."""
        message = record.getMessage()
        if not message.startswith("Worker: "):
            return record.levelno >= logging.WARNING
        fields = dict(self._FIELD.findall(message))
        if "/components/" not in fields.get("log_location", ""):
            return False
        record.msg, record.args = f"[worker] {fields.get('message', '')}", ()
        return True


class _ProgressFilter(logging.Filter):
    """Applies the TFX and Beam filters to their loggers' records, and passes every other record."""

    def __init__(self) -> None:
        super().__init__()
        self._tfx = _TfxProgressFilter()
        self._beam = _BeamWorkerFilter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to show a record."""
        if record.name == "absl":
            return self._tfx.filter(record)
        if record.name == "apache_beam" or record.name.startswith("apache_beam."):
            return self._beam.filter(record)
        return True


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    if not verbose:
        # On the handlers, not the loggers: a logger's filters do not apply to its children's records.
        for handler in logging.getLogger().handlers:
            handler.addFilter(_ProgressFilter())


def _add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the flags shared by ``run`` and ``compile-kubeflow``."""
    parser.add_argument(
        "--yamnet",
        default=configs.YAMNET_HANDLE,
        help="YAMNet handle: TF Hub or Kaggle URL, local SavedModel dir, or 'offline' (untrained)",
    )
    parser.add_argument("--epochs", type=int, default=configs.EPOCHS)
    parser.add_argument("--batch-size", type=int, default=configs.BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=configs.LEARNING_RATE)
    parser.add_argument("--split", choices=("speaker", "utterance"), default=configs.SPLIT_STRATEGY)
    parser.add_argument("--eval-fraction", type=float, default=configs.EVAL_FRACTION)
    parser.add_argument(
        "--min-auc",
        type=float,
        default=configs.MIN_AUC,
        help="Lower bound on macro one-vs-rest AUC for blessing (0.85 suits OpenSLR-83 with real YAMNet)",
    )
    parser.add_argument("--max-auc-regression", type=float, default=configs.MAX_AUC_REGRESSION)
    parser.add_argument(
        "--non-speech-rule", choices=("auto", "yamnet", "energy", "none"), default=configs.NON_SPEECH_RULE
    )
    parser.add_argument("--energy-threshold-dbfs", type=float, default=configs.ENERGY_THRESHOLD_DBFS)
    parser.add_argument("--max-bad-fraction", type=float, default=configs.MAX_BAD_FRACTION)
    parser.add_argument(
        "--max-clip-seconds",
        type=float,
        default=configs.MAX_CLIP_SECONDS,
        help="Quarantine clips longer than this many seconds",
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=None,
        metavar="ARG",
        help="A Beam pipeline argument, e.g. --beam-arg=--runner=DataflowRunner; repeat for more",
    )


def _settings_from(args: argparse.Namespace, default_beam_args: Sequence[str]) -> configs.PipelineSettings:
    return configs.PipelineSettings(
        yamnet_handle=args.yamnet,
        split_strategy=args.split,
        eval_fraction=args.eval_fraction,
        non_speech_rule=args.non_speech_rule,
        energy_threshold_dbfs=args.energy_threshold_dbfs,
        max_bad_fraction=args.max_bad_fraction,
        max_clip_seconds=args.max_clip_seconds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        min_auc=args.min_auc,
        max_auc_regression=args.max_auc_regression,
        beam_pipeline_args=tuple(args.beam_arg) if args.beam_arg is not None else tuple(default_beam_args),
    )


def _demo_corpus(args: argparse.Namespace) -> int:
    from components import demo_corpus

    summary = demo_corpus.write_demo_corpus(args.directory, clips_per_speaker=args.clips_per_speaker)
    print(
        f"Demo corpus in {summary.output_dir}: {len(summary.clip_ids)} clips, {summary.total_seconds:.0f} s, "
        f"accents {', '.join(summary.accent_codes)}, {len(summary.speakers)} speakers"
    )
    return 0


# The exit code of a run refused because another run holds the lock on its output directory.
EXIT_OUTPUT_LOCKED = 75


def _run(args: argparse.Namespace) -> int:
    from pipeline import output_lock

    settings = _settings_from(args, configs.LOCAL_BEAM_PIPELINE_ARGS)
    lock = output_lock.OutputLock(args.output)
    try:
        lock.acquire()
    except output_lock.OutputLockedError as error:
        print(f"accent-pipeline run: {error}", file=sys.stderr)
        return EXIT_OUTPUT_LOCKED
    except OSError as error:
        print(f"accent-pipeline run: cannot lock {args.output}: {error}", file=sys.stderr)
        return 1
    try:
        # Held for the run and its summary, which then reads a store that no other run writes.
        return _run_locked(args, settings)
    finally:
        lock.release()


def _run_locked(args: argparse.Namespace, settings: configs.PipelineSettings) -> int:
    """Runs the pipeline and prints its summary; the caller holds the lock on the output directory."""
    from pipeline import local_runner, run_summary

    try:
        layout = local_runner.run_local(args.corpus, args.output, settings)
    except Exception as error:  # The run's own error, reported without a wall of traceback.
        logger.debug("Run failed", exc_info=True)
        print(f"\nThe run stopped: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(
        run_summary.format_summary(
            str(layout.metadata_path), settings.class_names, pipeline_root=str(layout.pipeline_root)
        )
    )
    print(f"Outputs: {layout.output_dir} (quarantine report: {layout.quarantine_path})")
    return 0


def _export_yamnet(args: argparse.Namespace) -> int:
    from components.yamnet import export

    try:
        path = export.export_yamnet(
            args.output, weights=args.weights, seed=args.seed, class_map_csv=args.class_map
        )
    except ValueError as error:
        print(f"accent-pipeline export-yamnet: error: {error}", file=sys.stderr)
        return 2
    print(f"YAMNet SavedModel written to {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from components.serving import launcher

    return launcher.serve(
        model_base_path=args.model_base_path,
        model_name=args.model_name,
        port=args.port,
        host=args.host,
        max_audio_seconds=args.max_audio_seconds,
        max_in_flight=args.max_in_flight,
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


def _predict(args: argparse.Namespace) -> int:
    from components.serving import client

    return client.predict_files(
        args.files, server=args.server, model_name=args.model_name, output_json=args.json
    )


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


def _compile_kubeflow(args: argparse.Namespace) -> int:
    from pipeline import kubeflow_runner

    try:
        kubeflow_runner.compile_kubeflow(
            output_path=args.output,
            image=args.image,
            pipeline_root=args.pipeline_root,
            settings=_settings_from(args, ()),
            corpus_dir=args.corpus,
            serving_base_path=args.serving_base_path,
            quarantine_copy_path=args.quarantine_copy,
            corpus_fingerprint=args.corpus_fingerprint,
            pvc_mounts=args.pvc_mount,
            target=args.target,
            step_resources=args.resources,
        )
    except ValueError as error:
        logger.debug("Compilation failed", exc_info=True)
        print(f"compile-kubeflow: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {args.output}")
    return 0


def _submit_kubeflow(args: argparse.Namespace) -> int:
    from pipeline import kubeflow_runner

    try:
        run_id = kubeflow_runner.submit_kubeflow(
            args.package,
            host=args.host,
            experiment=args.experiment,
            namespace=args.namespace,
            service_account=args.service_account,
        )
    except (FileNotFoundError, kubeflow_runner.KubeflowSubmitError) as error:
        logger.debug("Submission failed", exc_info=True)
        print(f"submit-kubeflow: {error}", file=sys.stderr)
        return 1
    print(f"Submitted run {run_id}")
    return 0


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
    _add_settings_arguments(run)
    run.set_defaults(handler=_run)

    export_yamnet = commands.add_parser(
        "export-yamnet", help="Write YAMNet as a TF-Hub-compatible SavedModel"
    )
    export_yamnet.add_argument("--output", required=True)
    export_yamnet.add_argument(
        "--weights",
        default="offline",
        help="'offline' (untrained, seeded) or the path of the official yamnet.h5",
    )
    export_yamnet.add_argument(
        "--seed", type=int, default=configs.OFFLINE_YAMNET_SEED, help="Seed of offline weights"
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
    serve.add_argument("--port", type=int, default=configs.SERVING_PORT)
    serve.add_argument(
        "--host",
        default=configs.SERVING_HOST,
        help=f"Address to listen on (default: {configs.SERVING_HOST}, this machine only; 0.0.0.0 for every "
        "interface). tensorflow_model_server, when on PATH, always listens on every interface",
    )
    serve.add_argument(
        "--max-audio-seconds",
        type=_positive_float,
        default=configs.SERVING_MAX_AUDIO_SECONDS,
        help="Longest audio a request may send, in seconds at 16 kHz; longer is INVALID_ARGUMENT "
        f"(default: {configs.SERVING_MAX_AUDIO_SECONDS:g})",
    )
    serve.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=configs.SERVING_MAX_IN_FLIGHT,
        help="Most model calls running at once; more requests get RESOURCE_EXHAUSTED at once "
        f"(default: {configs.SERVING_MAX_IN_FLIGHT})",
    )
    serve.set_defaults(handler=_serve)

    predict = commands.add_parser("predict", help="Send audio files to TF Serving and print the accents")
    predict.add_argument("files", nargs="+")
    predict.add_argument("--server", default=f"localhost:{configs.SERVING_PORT}")
    predict.add_argument("--model-name", default=configs.SERVING_MODEL_NAME)
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(handler=_predict)

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
    _add_settings_arguments(compile_kfp)
    compile_kfp.set_defaults(handler=_compile_kubeflow)

    submit = commands.add_parser("submit-kubeflow", help="Submit a compiled pipeline to Kubeflow Pipelines")
    submit.add_argument("package")
    submit.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    submit.add_argument("--experiment", default=None, help="Experiment name, created if missing")
    submit.add_argument("--namespace", default=None, help="Namespace of the experiment (multi-user KFP)")
    submit.add_argument("--service-account", default=None, help="Service account of the run's pods")
    submit.set_defaults(handler=_submit_kubeflow)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code.
    """
    args = build_parser().parse_args(argv)
    # google-cloud libraries warn on every import that Python 3.10 (which TFX 1.16 needs) is old.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core\.")
    _configure_logging(args.verbose)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
