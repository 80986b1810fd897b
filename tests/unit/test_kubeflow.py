"""Kubeflow Pipelines v2: the compiled spec, its PVC mounts, and submission to a stand-in KFP API."""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2

from pipeline import cli, configs, kubeflow_runner
from tests import loopback_http
from tests.unit.test_pipeline_wiring import COMPONENT_IDS

IMAGE = "example/accent:1"
# Every TFX component runs as a container; the resolver node is not a pod.
CONTAINER_STEPS = [
    component_id for component_id in COMPONENT_IDS if component_id != "LatestBlessedModelResolver"
]
RESOLVER = "LatestBlessedModelResolver"
PVC_MOUNTS = {"accent-pipeline-root": "/pipeline-root", "accent-model-store": "/models"}
RUN_ID = "run-7f3c2a"


def _load_documents(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def _constant(spec: dict[str, Any], task: str, parameter: str) -> Any:
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][parameter]
    return value["runtimeValue"]["constantValue"]["stringValue"]


def _container_labels(spec: dict[str, Any]) -> set[str]:
    return {
        label for label, executor in spec["deploymentSpec"]["executors"].items() if "container" in executor
    }


def _compile_command(output: str | Path, pipeline_root: str, *flags: str) -> list[str]:
    """Returns ``compile-kubeflow`` arguments with the test image and the given flags."""
    return [
        "compile-kubeflow",
        "--output",
        str(output),
        "--image",
        IMAGE,
        "--pipeline-root",
        pipeline_root,
        *flags,
    ]


@pytest.fixture(scope="module")
def local_overlay_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline compiled as the README's local-overlay command does, once per module."""
    output = tmp_path_factory.mktemp("kubeflow") / "pipeline.yaml"
    exit_code = cli.main(
        _compile_command(
            output,
            "minio://mlpipeline/accent",
            "--corpus",
            "/pipeline-root/corpus",
            "--quarantine-copy",
            "/pipeline-root/quarantine.csv",
            "--serving-base-path",
            "/models/accent",
            *[f"--pvc-mount={claim}:{path}" for claim, path in PVC_MOUNTS.items()],
        )
    )
    assert exit_code == 0
    return output


# Compilation.


def test_yaml_without_mounts_holds_every_component_the_image_and_the_beam_args(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    command = _compile_command(
        output, "gs://bucket/root", "--beam-arg=--runner=DataflowRunner", "--beam-arg=--region=europe-west2"
    )
    assert cli.main(command) == 0
    documents = _load_documents(output)
    assert len(documents) == 1, "no platform spec without PVC mounts"
    spec = documents[0]
    assert spec["defaultPipelineRoot"] == "gs://bucket/root"
    assert set(CONTAINER_STEPS) <= set(spec["components"])
    assert any(name.startswith(RESOLVER) for name in spec["components"])
    executors = spec["deploymentSpec"]["executors"]
    images = {executor["container"]["image"] for executor in executors.values() if "container" in executor}
    assert images == {IMAGE}
    embedding_executor = executors[spec["components"]["EmbeddingGen"]["executorLabel"]]
    embedding_args = " ".join(embedding_executor["container"].get("args", []))
    assert "--runner=DataflowRunner" in embedding_args and "--region=europe-west2" in embedding_args
    assert _constant(spec, "CorpusIndexGen", "corpus_dir") == "gs://bucket/root/corpus"
    assert _constant(spec, "EmbeddingGen", "quarantine_copy_path") == "gs://bucket/root/quarantine.csv"


def test_every_container_step_mounts_every_claim(local_overlay_package: Path) -> None:
    spec, platform_spec = _load_documents(local_overlay_package)
    executors = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    container_labels = _container_labels(spec)
    assert set(executors) == container_labels
    assert {spec["components"][step]["executorLabel"] for step in CONTAINER_STEPS} == container_labels
    resolver_labels = {
        component["executorLabel"]
        for name, component in spec["components"].items()
        if name.startswith(RESOLVER)
    }
    assert resolver_labels and not resolver_labels & set(executors), "resolvers are not pods"
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


def test_json_is_a_vertex_pipeline_job(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.json"
    document = kubeflow_runner.compile_kubeflow(
        str(output), image=IMAGE, pipeline_root="gs://bucket/root", settings=configs.PipelineSettings()
    )
    assert set(document) >= {"pipelineSpec", "runtimeConfig", "displayName"}
    assert json.loads(output.read_text())["pipelineSpec"]["pipelineInfo"]["name"] == configs.PIPELINE_NAME


def test_output_must_be_yaml_or_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="yaml"):
        kubeflow_runner.compile_kubeflow(
            str(tmp_path / "p.txt"), image="i", pipeline_root="gs://b", settings=configs.PipelineSettings()
        )


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
        _compile_command(output, "gs://bucket/root", "--pvc-mount", "accent-model-store:/models")
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
    arguments = _compile_command("p.yaml", "gs://b")
    for flag in flags:
        arguments += ["--pvc-mount", flag]
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "argument --pvc-mount" in error and message in error


def test_pvc_mount_flags_become_a_claim_to_path_mapping() -> None:
    args = cli.build_parser().parse_args(
        _compile_command(
            "p.yaml",
            "gs://b",
            "--pvc-mount",
            "accent-pipeline-root:/pipeline-root/",
            "--pvc-mount=accent-model-store:/models",
        )
    )
    assert args.pvc_mount == {"accent-pipeline-root": "/pipeline-root", "accent-model-store": "/models"}
    assert cli.build_parser().parse_args(_compile_command("p.yaml", "gs://b")).pvc_mount is None


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
    assert set(CONTAINER_STEPS) <= set(uploaded_spec["components"])
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
    assert f"submit-kubeflow: Cannot reach the Kubeflow Pipelines API at {host}" in error
    assert "Connection refused" in error
    assert "Traceback" not in error


def test_a_missing_package_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = cli.main(["submit-kubeflow", str(tmp_path / "absent.yaml"), "--host", "http://127.0.0.1:9"])
    assert exit_code == 1
    assert "No compiled pipeline at" in capsys.readouterr().err
