"""Kubeflow Pipelines v2: the compiled spec, its PVC mounts, and submission to a stand-in KFP API."""

from __future__ import annotations

import copy
import dataclasses
import http.server
import json
import math
import re
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2

import schemas
from components import artifacts
from pipeline import cli, configs, kubeflow_runner
from pipeline.pipeline import COMPONENT_IDS as EVERY_COMPONENT_ID
from pipeline.pipeline import OPTIONAL_COMPONENT_IDS
from tests import loopback_http
from tests.kubeflow_commands import IMAGE, MOUNT_FLAGS, PVC_MOUNTS, STEP_PATH_FLAGS, compile_command

# The steps of a pipeline compiled without optional steps (no --tune).
COMPONENT_IDS = tuple(step for step in EVERY_COMPONENT_ID if step not in OPTIONAL_COMPONENT_IDS)

RUN_ID = "run-7f3c2a"
# The folder of this checkout (or of the installed package): no compiled spec may name it.
PROJECT_DIR = str(Path(kubeflow_runner.__file__).resolve().parents[1])


def _load_documents(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def _constant(spec: dict[str, Any], task: str, parameter: str) -> Any:
    return spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][parameter]["runtimeValue"]["constant"]


def _container_labels(spec: dict[str, Any]) -> set[str]:
    return {
        label for label, executor in spec["deploymentSpec"]["executors"].items() if "container" in executor
    }


def _container(spec: dict[str, Any], step: str) -> dict[str, Any]:
    return spec["deploymentSpec"]["executors"][spec["components"][step]["executorLabel"]]["container"]


def _artifact_titles(spec: dict[str, Any]) -> set[str]:
    titles = set()
    for component in spec["components"].values():
        for section in ("inputDefinitions", "outputDefinitions"):
            for artifact in component.get(section, {}).get("artifacts", {}).values():
                artifact_type = artifact["artifactType"]
                if "schemaTitle" in artifact_type:
                    titles.add(artifact_type["schemaTitle"])
                else:
                    titles.add(yaml.safe_load(artifact_type["instanceSchema"])["title"])
    return titles


def structural_problems(spec: dict[str, Any], text: str) -> list[str]:
    """What in a compiled ``kfp`` spec a self-hosted KFP 2.x (or TFX's steps on it) could not run."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils

    problems = []
    expected_command = [*kubeflow_runner.STEP_COMMAND, "--local-artifact-paths"]
    for label, executor in spec["deploymentSpec"]["executors"].items():
        if "container" not in executor and "importer" not in executor:
            problems.append(f"{label}: a {next(iter(executor))} executor")
            continue
        container = executor.get("container")
        if container is None:
            continue
        if container["command"] != expected_command:
            problems.append(f"{label}: command {container['command']}")
        resources = container.get("resources", {})
        for field in ("cpuRequest", "cpuLimit", "memoryRequest", "memoryLimit"):
            if not resources.get(field, 0) > 0:
                problems.append(f"{label}: no {field}")
    for task_name, task in spec["root"]["dag"]["tasks"].items():
        for name, parameter in task.get("inputs", {}).get("parameters", {}).items():
            if "constant" not in parameter.get("runtimeValue", {}):
                problems.append(f"{task_name}.{name}: not runtimeValue.constant but {parameter}")
        condition = task.get("triggerPolicy", {}).get("condition", "")
        for key in re.findall(r"inputs\.artifacts\['([^']+)'\]", condition):
            if key not in task.get("inputs", {}).get("artifacts", {}):
                problems.append(f"{task_name}: the condition reads {key!r}, no input of the task")
    known_titles = {**compiler_utils.TITLE_TO_CLASS_PATH, **artifacts.KFP_SYSTEM_TITLE_CLASS_PATHS}
    for title in _artifact_titles(spec):
        class_path = known_titles.get(title, title)
        try:
            import_utils.import_class_by_path(class_path)
        except ImportError:
            problems.append(f"artifact title {title!r} does not import")
        if title not in known_titles and not re.fullmatch(
            r"[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}", title
        ):
            problems.append(f"artifact title {title!r} is not of KFP's <namespace>.<Title> form")
    if PROJECT_DIR in text:
        problems.append(f"the spec names the compiling machine's {PROJECT_DIR}")
    return problems


@pytest.fixture(scope="module")
def local_overlay_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline compiled as the README's runbook (and the issue's "done when") does, once per module."""
    output = tmp_path_factory.mktemp("kubeflow") / "pipeline.yaml"
    exit_code = cli.main(compile_command(output, "minio://mlpipeline/accent", *STEP_PATH_FLAGS, *MOUNT_FLAGS))
    assert exit_code == 0
    return output


# Compilation for a self-hosted KFP.


def test_the_kfp_spec_passes_the_structural_check(local_overlay_package: Path) -> None:
    spec = _load_documents(local_overlay_package)[0]
    assert spec["schemaVersion"] == "2.1.0"
    assert set(COMPONENT_IDS) == set(spec["components"]) == set(spec["root"]["dag"]["tasks"])
    assert structural_problems(spec, local_overlay_package.read_text()) == []


def test_the_structural_check_finds_what_kfp_cannot_run(local_overlay_package: Path) -> None:
    spec = _load_documents(local_overlay_package)[0]
    broken = copy.deepcopy(spec)
    broken["deploymentSpec"]["executors"]["Resolver_executor"] = {"resolver": {"outputArtifactQueries": {}}}
    pusher_task = broken["root"]["dag"]["tasks"]["Pusher"]
    pusher_task["triggerPolicy"]["condition"] = "inputs.artifacts['_Evaluator.blessing'].artifacts[0] == 1"
    parameter = pusher_task["inputs"]["parameters"]["push_destination"]["runtimeValue"]
    parameter["constantValue"] = {"stringValue": parameter.pop("constant")}
    trainer = _container(broken, "Trainer")
    trainer["command"] = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
    del trainer["resources"]["memoryRequest"]
    outputs = broken["components"]["CorpusIndexGen"]["outputDefinitions"]["artifacts"]
    outputs["clip_index"]["artifactType"] = {"schemaTitle": "accent.ClipIndex"}
    problems = "\n".join(structural_problems(broken, f"schema_file: {PROJECT_DIR}/schemas/schema.pbtxt"))
    for expected in (
        "Resolver_executor: a resolver executor",
        "Pusher: the condition reads '_Evaluator.blessing'",
        "Pusher.push_destination: not runtimeValue.constant",
        "Trainer_executor: command",
        "Trainer_executor: no memoryRequest",
        "artifact title 'accent.ClipIndex' does not import",
        "compiling machine",
    ):
        assert expected in problems


def test_the_blessing_condition_reads_the_pushers_own_input(local_overlay_package: Path) -> None:
    pusher_task = _load_documents(local_overlay_package)[0]["root"]["dag"]["tasks"]["Pusher"]
    condition = pusher_task["triggerPolicy"]["condition"]
    assert "inputs.artifacts['model_blessing']" in condition and "blessed" in condition
    assert pusher_task["inputs"]["artifacts"]["model_blessing"]["taskOutputArtifact"] == {
        "outputArtifactKey": "blessing",
        "producerTask": "Evaluator",
    }


def test_the_baseline_step_is_never_cached_and_reads_the_serving_path(local_overlay_package: Path) -> None:
    spec = _load_documents(local_overlay_package)[0]
    caching = {name: task.get("cachingOptions", {}) for name, task in spec["root"]["dag"]["tasks"].items()}
    assert caching.pop("LatestServedModel") == {"enableCache": False}
    assert all(options == {"enableCache": True} for options in caching.values()), caching
    assert _constant(spec, "LatestServedModel", "serving_base_path") == "/models/accent"
    evaluator_inputs = spec["root"]["dag"]["tasks"]["Evaluator"]["inputs"]["artifacts"]
    assert evaluator_inputs["baseline_model"]["taskOutputArtifact"]["producerTask"] == "LatestServedModel"


def test_the_schema_comes_from_the_image_checked_by_its_fingerprint(local_overlay_package: Path) -> None:
    spec = _load_documents(local_overlay_package)[0]
    assert _constant(spec, "CuratedSchemaGen", "schema_fingerprint") == schemas.schema_fingerprint()


def test_heavy_steps_get_more_resources_and_beam_workers_follow_the_cpu_request(
    local_overlay_package: Path,
) -> None:
    spec = _load_documents(local_overlay_package)[0]
    for step in COMPONENT_IDS:
        container = _container(spec, step)
        expected = configs.KUBEFLOW_STEP_RESOURCES.get(step, configs.KUBEFLOW_DEFAULT_RESOURCES)
        assert container["resources"] == {
            "cpuLimit": expected.cpu_limit,
            "memoryLimit": expected.memory_limit_gb,
            "cpuRequest": expected.cpu_request,
            "memoryRequest": expected.memory_request_gb,
        }, step
        assert "--direct_running_mode=multi_threading" in container["args"]
        assert f"--direct_num_workers={math.ceil(expected.cpu_request)}" in container["args"], step
    embedding = _container(spec, "EmbeddingGen")["resources"]
    default = configs.KUBEFLOW_DEFAULT_RESOURCES
    assert embedding["cpuRequest"] > default.cpu_request
    assert embedding["memoryRequest"] > default.memory_request_gb


def test_resources_flags_override_the_defaults(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    flags = ["--resources", "EmbeddingGen=8,16G", "--resources=Trainer=2/4,8G/12"]
    assert cli.main(compile_command(output, "minio://b/r", *STEP_PATH_FLAGS, *MOUNT_FLAGS, *flags)) == 0
    spec = _load_documents(output)[0]
    assert _container(spec, "EmbeddingGen")["resources"] == {
        "cpuLimit": 8,
        "memoryLimit": 16,
        "cpuRequest": 8,
        "memoryRequest": 16,
    }
    assert "--direct_num_workers=8" in _container(spec, "EmbeddingGen")["args"]
    assert _container(spec, "Trainer")["resources"] == {
        "cpuLimit": 4,
        "memoryLimit": 12,
        "cpuRequest": 2,
        "memoryRequest": 8,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("EmbeddingGen=8", "expected STEP=CPU,MEMORY_GB"),
        ("Embedder=8,16G", "no step of the pipeline"),
        ("Trainer=4/2,8G", "cannot exceed its limit"),
        ("Trainer=0,8G", "must be positive"),
        ("Trainer=four,8G", "could not convert"),
    ],
)
def test_malformed_resources_are_argparse_errors(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(compile_command("p.yaml", "gs://b", "--resources", value))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "argument --resources" in error and message in error


def test_user_beam_args_replace_the_default_and_a_gs_root_keeps_gs_paths(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    command = compile_command(
        output, "gs://bucket/root", "--beam-arg=--runner=DataflowRunner", "--beam-arg=--region=europe-west2"
    )
    assert cli.main(command) == 0
    documents = _load_documents(output)
    assert len(documents) == 1, "no platform spec without PVC mounts"
    spec = documents[0]
    assert spec["defaultPipelineRoot"] == "gs://bucket/root"
    images = {executor["container"]["image"] for executor in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE}
    embedding_args = " ".join(_container(spec, "EmbeddingGen")["args"])
    assert "--runner=DataflowRunner" in embedding_args and "--region=europe-west2" in embedding_args
    assert "--direct_num_workers" not in embedding_args
    assert _constant(spec, "CorpusIndexGen", "corpus_dir") == "gs://bucket/root/corpus"
    assert _constant(spec, "EmbeddingGen", "quarantine_copy_path") == "gs://bucket/root/quarantine.csv"
    assert _constant(spec, "LatestServedModel", "serving_base_path") == "gs://bucket/root/serving/accent"


@pytest.mark.parametrize(
    ("flags", "flag_named"),
    [
        ([], "--corpus"),
        (["--corpus", "/pipeline-root/corpus"], "--serving-base-path"),
        (["--corpus", "/pipeline-root/corpus", "--serving-base-path", "/models/accent"], "--quarantine-copy"),
        (["--corpus", "/data/corpus", "--serving-base-path", "/models/accent"], "--corpus"),
        ([*STEP_PATH_FLAGS, "--yamnet", "/home/me/yamnet"], "--yamnet"),
    ],
)
def test_an_object_store_root_refuses_paths_no_step_can_open(
    tmp_path: Path, flags: list[str], flag_named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "pipeline.yaml"
    assert cli.main(compile_command(output, "minio://mlpipeline/accent", *flags, *MOUNT_FLAGS)) == 2
    error = capsys.readouterr().err
    assert f"Give {flag_named} a path on a --pvc-mount" in error
    assert not output.exists()


def test_an_empty_quarantine_copy_and_a_yamnet_on_a_claim_are_accepted(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    flags = [*STEP_PATH_FLAGS[:4], "--quarantine-copy", "", "--yamnet", "/pipeline-root/yamnet", *MOUNT_FLAGS]
    assert cli.main(compile_command(output, "s3://bucket/accent", *flags, "--corpus-fingerprint", "v7")) == 0
    spec = _load_documents(output)[0]
    assert _constant(spec, "YamnetModelGen", "yamnet_handle") == "/pipeline-root/yamnet"
    assert _constant(spec, "EmbeddingGen", "quarantine_copy_path") == ""
    assert _constant(spec, "CorpusIndexGen", "corpus_fingerprint") == "v7"


def test_every_container_step_mounts_every_claim(local_overlay_package: Path) -> None:
    spec, platform_spec = _load_documents(local_overlay_package)
    executors = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    container_labels = _container_labels(spec)
    assert set(executors) == container_labels
    assert {spec["components"][step]["executorLabel"] for step in COMPONENT_IDS} == container_labels
    for label, executor_config in executors.items():
        # Strict parsing: a misspelt field name of kfp-kubernetes' proto fails here.
        config = json_format.ParseDict(
            executor_config, kubernetes_executor_config_pb2.KubernetesExecutorConfig()
        )
        assert [mount.WhichOneof("pvc_reference") for mount in config.pvc_mount] == ["constant", "constant"]
        assert {mount.constant: mount.mount_path for mount in config.pvc_mount} == PVC_MOUNTS, label


def test_the_paths_the_steps_use_lie_on_the_mounted_claims(local_overlay_package: Path) -> None:
    spec, _ = _load_documents(local_overlay_package)
    assert spec["defaultPipelineRoot"] == "minio://mlpipeline/accent"
    corpus_dir = _constant(spec, "CorpusIndexGen", "corpus_dir")
    quarantine_copy = _constant(spec, "EmbeddingGen", "quarantine_copy_path")
    assert (corpus_dir, quarantine_copy) == ("/pipeline-root/corpus", "/pipeline-root/quarantine.csv")
    pusher_parameters = json.dumps(spec["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"])
    assert "/models/accent" in pusher_parameters
    for path in (corpus_dir, quarantine_copy, "/models/accent"):
        assert any(path.startswith(mount_path + "/") for mount_path in PVC_MOUNTS.values()), path


# Compilation for Vertex AI Pipelines.


def test_json_is_a_vertex_pipeline_job_whose_steps_read_gs_directly(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.json"
    document = kubeflow_runner.compile_kubeflow(
        str(output), image=IMAGE, pipeline_root="gs://bucket/root", settings=configs.PipelineSettings()
    )
    assert set(document) >= {"pipelineSpec", "runtimeConfig", "displayName"}
    spec = json.loads(output.read_text())["pipelineSpec"]
    assert spec["pipelineInfo"]["name"] == configs.PIPELINE_NAME
    trainer = _container(spec, "Trainer")
    assert trainer["command"] == list(kubeflow_runner.STEP_COMMAND), "no launcher paths on Vertex"
    assert set(trainer["resources"]) == {"cpuLimit", "memoryLimit"}


@pytest.mark.parametrize(
    ("output_name", "flags", "message"),
    [
        ("p.txt", [], "must end in .yaml"),
        ("p.json", ["--target", "kfp"], "takes the YAML PipelineSpec"),
        ("p.json", ["--pipeline-root", "minio://b/r"], "must start with gs://"),
        ("p.yaml", ["--target", "vertex", "--corpus", "/pipeline-root/corpus"], "opens gs:// paths only"),
        ("p.yaml", ["--pipeline-root", "file:///tmp/root"], "must start with gs:// or minio:// or s3://"),
    ],
)
def test_targets_refuse_what_they_cannot_run(
    tmp_path: Path, output_name: str, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = compile_command(tmp_path / output_name, "gs://bucket/root", *flags)
    assert cli.main(command) == 2
    assert message in capsys.readouterr().err


def test_vertex_output_refuses_pvc_mounts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "pipeline.json"
    with pytest.raises(ValueError, match="Vertex AI Pipelines cannot mount"):
        kubeflow_runner.compile_kubeflow(
            str(output),
            image=IMAGE,
            pipeline_root="gs://bucket/root",
            settings=configs.PipelineSettings(),
            pvc_mounts={"accent-model-store": "/models"},
        )
    exit_code = cli.main(
        compile_command(output, "gs://bucket/root", "--pvc-mount", "accent-model-store:/models")
    )
    assert exit_code == 2
    assert "Vertex AI Pipelines cannot mount" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["accent-model-store"], "expected CLAIM:MOUNT_PATH"),
        (["accent-model-store:models"], "must be absolute"),
        (["Accent_Store:/models"], "not a Kubernetes object name"),
        (["accent-model-store:/"], "root directory"),
        (["accent-model-store:/models:ro"], "must not contain ':'"),
        (["accent-model-store:/models", "accent-pipeline-root:/models/"], "both mounted at /models"),
        (["accent-model-store:/models", "accent-model-store:/data"], "already mounted at /models"),
    ],
)
def test_malformed_pvc_mounts_are_argparse_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = compile_command("p.yaml", "gs://b")
    for flag in flags:
        arguments += ["--pvc-mount", flag]
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "argument --pvc-mount" in error and message in error


def test_pvc_mount_flags_become_a_claim_to_path_mapping() -> None:
    args = cli.build_parser().parse_args(
        compile_command(
            "p.yaml",
            "gs://b",
            "--pvc-mount",
            "accent-pipeline-root:/pipeline-root/",
            "--pvc-mount=accent-model-store:/models",
        )
    )
    assert args.pvc_mount == {"accent-pipeline-root": "/pipeline-root", "accent-model-store": "/models"}
    assert cli.build_parser().parse_args(compile_command("p.yaml", "gs://b")).pvc_mount is None


# Submission, against a stand-in for the KFP v2beta1 REST API on loopback.


# The filter's EQUALS operation, as JSON may spell a proto enum: by name or by number.
_EQUALS = ("EQUALS", 1)


@dataclasses.dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class _FakeKfpApi(http.server.ThreadingHTTPServer):
    """The endpoints ``kfp.Client.create_run_from_pipeline_package`` calls, recording each request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeKfpHandler)
        self.requests: list[_Request] = []
        self.experiments: list[dict[str, Any]] = []
        self.run_refusal: tuple[int, dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeKfpHandler(http.server.BaseHTTPRequestHandler):
    server: _FakeKfpApi

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> _Request:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        request = _Request(self.command, url.path, urllib.parse.parse_qs(url.query), body)
        self.server.requests.append(request)
        return request

    def do_GET(self) -> None:
        request = self._record()
        if request.path == "/apis/v2beta1/healthz":
            self._answer(200, {"multi_user": False})
        elif request.path == "/apis/v2beta1/experiments":
            names = {
                predicate["stringValue"]
                for predicate in json.loads(request.query["filter"][0])["predicates"]
                if predicate["key"] == "display_name" and predicate["operation"] in _EQUALS
            }
            found = [
                experiment for experiment in self.server.experiments if experiment["display_name"] in names
            ]
            self._answer(200, {"experiments": found, "total_size": len(found)} if found else {})
        else:
            self._answer(404, {"error_message": f"no route {request.path}"})

    def do_POST(self) -> None:
        request = self._record()
        if request.path == "/apis/v2beta1/experiments":
            experiment = {
                "experiment_id": f"experiment-{len(self.server.experiments) + 1}",
                "display_name": request.body["display_name"],
                "namespace": request.body.get("namespace"),
            }
            self.server.experiments.append(experiment)
            self._answer(200, experiment)
        elif request.path == "/apis/v2beta1/runs" and self.server.run_refusal is not None:
            self._answer(*self.server.run_refusal)
        elif request.path == "/apis/v2beta1/runs":
            self._answer(
                200,
                {
                    "run_id": RUN_ID,
                    "experiment_id": request.body["experiment_id"],
                    "display_name": request.body["display_name"],
                    "state": "PENDING",
                },
            )
        else:
            self._answer(404, {"error_message": f"no route {request.path}"})

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture()
def kfp_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_FakeKfpApi]:
    from kfp.client import client as kfp_client

    # kfp keeps a namespace in ~/.config/kfp/context.json; the test's own file, absent, means none.
    monkeypatch.setattr(kfp_client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp" / "context.json"))
    for variable in ("KF_PIPELINES_DEFAULT_EXPERIMENT_NAME", "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME"):
        monkeypatch.delenv(variable, raising=False)
    with loopback_http.serving(_FakeKfpApi()) as server:
        yield server


def test_submit_creates_the_experiment_and_uploads_spec_and_platform_spec(
    kfp_api: _FakeKfpApi, local_overlay_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = cli.main(
        ["submit-kubeflow", str(local_overlay_package), "--host", kfp_api.url, "--experiment", "accent"]
    )
    assert exit_code == 0
    assert f"Submitted run {RUN_ID}" in capsys.readouterr().out
    assert [(request.method, request.path) for request in kfp_api.requests] == [
        ("GET", "/apis/v2beta1/healthz"),
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/runs"),
    ]
    lookup, creation, run = kfp_api.requests[1:]
    (predicate,) = json.loads(lookup.query["filter"][0])["predicates"]
    assert (predicate["key"], predicate["stringValue"]) == ("display_name", "accent")
    assert predicate["operation"] in _EQUALS
    assert creation.body["display_name"] == "accent"
    assert run.body["experiment_id"] == kfp_api.experiments[0]["experiment_id"]

    spec, platform_spec = _load_documents(local_overlay_package)
    uploaded = run.body["pipeline_spec"]
    assert set(uploaded) == {"pipeline_spec", "platform_spec"}
    uploaded_spec = uploaded["pipeline_spec"]
    assert uploaded_spec["pipelineInfo"]["name"] == configs.PIPELINE_NAME
    assert uploaded_spec["defaultPipelineRoot"] == "minio://mlpipeline/accent"
    assert set(COMPONENT_IDS) == set(uploaded_spec["components"])
    uploaded_executors = uploaded_spec["deploymentSpec"]["executors"]
    assert {
        executor["container"]["image"] for executor in uploaded_executors.values() if "container" in executor
    } == {IMAGE}
    assert uploaded["platform_spec"] == platform_spec
    mounts = uploaded["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(mounts) == _container_labels(spec)


def test_submit_reuses_an_experiment_of_the_namespace_and_passes_the_service_account(
    kfp_api: _FakeKfpApi, local_overlay_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kfp_api.experiments.append(
        {"experiment_id": "experiment-accent", "display_name": "accent", "namespace": "accent"}
    )
    run_id = kubeflow_runner.submit_kubeflow(
        str(local_overlay_package),
        host=kfp_api.url,
        experiment="accent",
        namespace="accent",
        service_account="accent-pipeline-runner",
    )
    assert run_id == RUN_ID
    assert [(request.method, request.path) for request in kfp_api.requests] == [
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/runs"),
    ]
    lookup, run = kfp_api.requests
    assert lookup.query["namespace"] == ["accent"]
    assert run.body["experiment_id"] == "experiment-accent"
    assert run.body["service_account"] == "accent-pipeline-runner"


def test_a_refused_run_is_a_clear_error(
    kfp_api: _FakeKfpApi, local_overlay_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kfp_api.run_refusal = (400, {"error_message": "Invalid input error: pipeline spec is invalid", "code": 3})
    exit_code = cli.main(["submit-kubeflow", str(local_overlay_package), "--host", kfp_api.url])
    assert exit_code == 1
    error = capsys.readouterr().err
    assert f"Kubeflow Pipelines at {kfp_api.url} refused the request" in error
    assert "HTTP 400" in error and "pipeline spec is invalid" in error
    assert "Traceback" not in error
    assert kfp_api.experiments[0]["display_name"] == "Default"


def _unused_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_host_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "pipeline.yaml"
    package.write_text("pipelineInfo:\n  name: accent\n")
    host = f"http://127.0.0.1:{_unused_loopback_port()}"
    exit_code = cli.main(["submit-kubeflow", str(package), "--host", host])
    assert exit_code == 1
    error = capsys.readouterr().err
    assert f"submit-kubeflow: error: Cannot reach the Kubeflow Pipelines API at {host}" in error
    assert "Connection refused" in error
    assert "Traceback" not in error


def test_a_missing_package_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = cli.main(["submit-kubeflow", str(tmp_path / "absent.yaml"), "--host", "http://127.0.0.1:9"])
    assert exit_code == 1
    assert "No compiled pipeline at" in capsys.readouterr().err


def test_tune_compiles_the_tuner_as_one_more_container_step_with_its_own_resources(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    flags = ["--tune", "--tuner-trials", "5", "--tuner-epochs", "3"]
    exit_code = cli.main(
        compile_command(output, "minio://mlpipeline/accent", *STEP_PATH_FLAGS, *MOUNT_FLAGS, *flags)
    )
    assert exit_code == 0
    spec = _load_documents(output)[0]
    assert set(EVERY_COMPONENT_ID) == set(spec["components"]) == set(spec["root"]["dag"]["tasks"])
    assert structural_problems(spec, output.read_text()) == []
    expected = configs.KUBEFLOW_STEP_RESOURCES["Tuner"]
    assert expected != configs.KUBEFLOW_DEFAULT_RESOURCES
    assert _container(spec, "Tuner")["resources"] == {
        "cpuLimit": expected.cpu_limit,
        "memoryLimit": expected.memory_limit_gb,
        "cpuRequest": expected.cpu_request,
        "memoryRequest": expected.memory_request_gb,
    }
    assert spec["components"]["Tuner"]["executorLabel"] in _container_labels(spec)
    trainer_inputs = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["artifacts"]
    assert trainer_inputs["hyperparameters"]["taskOutputArtifact"] == {
        "producerTask": "Tuner",
        "outputArtifactKey": "best_hyperparameters",
    }
    custom_config = _constant(spec, "Tuner", "custom_config")
    custom_config = json.loads(custom_config) if isinstance(custom_config, str) else custom_config
    assert (custom_config["max_trials"], custom_config["epochs_per_trial"]) == (5, 3)
