"""Offline checks of kubernetes/ and the Dockerfile: schema, policy, structure and probe behaviour.

The checkers (kubernetes-validate, checkov, hadolint) live in .venv-tools (``make tools``); the
Makefile points ``ACCENT_TOOLS_BIN`` at it. kubectl renders the overlays (``kubectl kustomize``
needs no cluster). A missing tool fails the test with the command that installs it.
"""

from __future__ import annotations

import ast
import fnmatch
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.serving import defaults as serving_defaults
from pipeline import configs
from tests import loopback_http

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO_ROOT / "kubernetes"
OVERLAYS = ("local", "cloud")
# The oldest Kubernetes minor these manifests support, and a current one.
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")
NAMESPACE = "accent"
SERVING_IMAGE = "tensorflow/serving:2.16.1"
REST_PORT = 8501
CLIENT_LABEL = ("accent-serving-client", "true")
TOOL_TIMEOUT_SECONDS = 120

# TF Serving's GET /v1/models/<name> answers, as its REST API documents them.
MODEL_STATUS_BODY = """{{
 "model_version_status": [
  {{
   "version": "1",
   "state": "{state}",
   "status": {{
    "error_code": "OK",
    "error_message": ""
   }}
  }}
 ]
}}
"""


def _tool(name: str) -> str:
    """Path of a checker: $ACCENT_TOOLS_BIN, then the repo's .venv-tools, then PATH."""
    candidates = [Path(os.environ["ACCENT_TOOLS_BIN"])] if os.environ.get("ACCENT_TOOLS_BIN") else []
    candidates.append(REPO_ROOT / ".venv-tools" / "bin")
    for directory in candidates:
        executable = directory / name
        if executable.is_file() and os.access(executable, os.X_OK):
            return str(executable)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} was found neither in {[str(directory) for directory in candidates]} nor on PATH; "
            "run `make tools` (it installs requirements-tools.txt into .venv-tools)"
        )
    return found


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not on PATH; it renders the kustomize overlays (`kubectl kustomize DIR`, no cluster "
            "needed). Install it, e.g. `apt-get install kubectl` from the Kubernetes apt repository"
        )
    return found


def _run(command: list[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
    )


def _documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def _manifest_files() -> list[Path]:
    """Every Kubernetes resource file; kustomization.yaml files are kustomize's, not the API's."""
    return sorted(path for path in KUBERNETES_DIR.rglob("*.yaml") if path.name != "kustomization.yaml")


def _find(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        document
        for document in documents
        if document["kind"] == kind and (name is None or document["metadata"]["name"] == name)
    ]


def _one(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = _find(documents, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _serving_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = _one(documents, "Deployment", "accent-serving")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _flags(container: dict[str, Any]) -> dict[str, str]:
    flags = {}
    for argument in container["args"]:
        key, separator, value = argument.partition("=")
        assert key.startswith("--") and separator, f"argument {argument!r} is not --flag=value"
        assert key not in flags, f"flag {key} given twice"
        flags[key] = value
    return flags


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _checkov(target: Path) -> dict[str, Any]:
    """Runs checkov's Kubernetes checks on a directory; no call to the vendor's platform."""
    result = _run(
        [
            _tool("checkov"),
            *("--directory", str(target), "--framework", "kubernetes"),
            *("--skip-download", "--output", "json"),
        ]
    )
    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert [entry["check_type"] for entry in reports] == ["kubernetes"]
    return reports[0]


def _validate(paths: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    return _run(
        [_tool("kubernetes-validate"), "--strict", "--kubernetes-version", version] + [str(p) for p in paths]
    )


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """The output of ``kubectl kustomize`` for the base and each overlay."""
    outputs = {}
    for name, directory in [("base", KUBERNETES_DIR / "base")] + [
        (overlay, KUBERNETES_DIR / "overlays" / overlay) for overlay in OVERLAYS
    ]:
        result = _run([_kubectl(), "kustomize", str(directory)])
        assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
        outputs[name] = result.stdout
    return outputs


@pytest.fixture(scope="module")
def rendered_dir(rendered: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rendered")
    for overlay in OVERLAYS:
        (directory / f"{overlay}.yaml").write_text(rendered[overlay])
    return directory


@pytest.fixture(scope="module")
def overlay_documents(rendered: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {name: _documents(text) for name, text in rendered.items()}


# Schema validation.


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_file_passes_strict_schema_validation(version: str) -> None:
    files = _manifest_files()
    result = _validate(files, version)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = sum(len(_documents(path.read_text())) for path in files)
    assert result.stdout.count(" passed for resource ") == expected, result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_overlays_pass_strict_schema_validation(version: str, rendered_dir: Path) -> None:
    files = sorted(rendered_dir.glob("*.yaml"))
    result = _validate(files, version)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = sum(len(_documents(path.read_text())) for path in files)
    assert result.stdout.count(" passed for resource ") == expected, result.stdout


def test_strict_schema_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    deployment = yaml.safe_load((KUBERNETES_DIR / "base" / "serving-deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    result = _validate([manifest], KUBERNETES_VERSIONS[-1])
    assert result.returncode != 0
    assert "readinessProbes" in result.stdout + result.stderr


def test_every_yaml_file_under_kubernetes_is_used_by_a_kustomization() -> None:
    referenced = set()
    for kustomization in KUBERNETES_DIR.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text()).get("resources", []):
            path = (kustomization.parent / resource).resolve()
            if path.is_file():
                referenced.add(path)
    assert {path.resolve() for path in _manifest_files()} == referenced


# Policy checks.


def test_checkov_reports_no_failed_check_on_the_manifests() -> None:
    report = _checkov(KUBERNETES_DIR)
    results = report["results"]
    failed = [
        (check["check_id"], check["file_path"], check["resource"]) for check in results["failed_checks"]
    ]
    assert failed == []
    assert results["parsing_errors"] == []
    checked = {check["resource"] for check in results["passed_checks"]}
    assert "Deployment.accent.accent-serving" in checked
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert reason and reason != "No comment provided", (
            f"{skipped['check_id']} is skipped without a reason"
        )


def test_checkov_reports_no_failed_check_on_the_rendered_overlays(rendered_dir: Path) -> None:
    results = _checkov(rendered_dir)["results"]
    failed = [
        (check["check_id"], check["file_path"], check["resource"]) for check in results["failed_checks"]
    ]
    assert failed == []
    assert results["parsing_errors"] == []
    assert {Path(check["file_path"]).name for check in results["passed_checks"]} == {
        "local.yaml",
        "cloud.yaml",
    }


def test_checkov_fails_a_deployment_without_security_settings(tmp_path: Path) -> None:
    deployment = yaml.safe_load((KUBERNETES_DIR / "base" / "serving-deployment.yaml").read_text())
    pod_spec = deployment["spec"]["template"]["spec"]
    del pod_spec["securityContext"]
    del pod_spec["containers"][0]["securityContext"]
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    failed = {check["check_id"] for check in _checkov(tmp_path)["results"]["failed_checks"]}
    # Privilege escalation, read-only root filesystem, capabilities, seccomp.
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_37", "CKV_K8S_31"} <= failed


# The Dockerfile.


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def _setup_top_level_packages() -> set[str]:
    """Top-level packages named in setup.py's ``find_packages(include=[...])``."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "find_packages":
            for keyword in node.keywords:
                if keyword.arg == "include":
                    return {ast.literal_eval(element).split(".")[0] for element in keyword.value.elts}
    raise AssertionError("setup.py has no find_packages(include=[...])")


def test_dockerfile_builds_from_tfx_and_installs_the_whole_package() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "tensorflow/tfx:1.16.0")
    copied = set()
    for keyword, arguments in instructions:
        if keyword == "COPY":
            copied.update(source.rstrip("/") for source in arguments.split()[:-1])
    assert {
        "setup.py",
        "requirements-post.txt",
        "requirements-nodeps.txt",
    } | _setup_top_level_packages() <= copied
    assert {"pipeline", "components", "schemas"} <= copied
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert any(
        'pip install --no-cache-dir "./[web]" && pip install --no-cache-dir -r requirements-post.txt'
        " && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt" in run
        for run in runs
    )
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    # The image runs the steps, serving's tools and the web page (kubernetes/base/web-deployment.yaml);
    # the demo corpus and the tests are dev only.
    installed_extras = {extra for run in runs for extra in re.findall(r"\./?\[([^\]]*)\]", run)}
    assert installed_extras == {"web"}, installed_extras


def test_dockerignore_keeps_local_state_out_and_the_package_in() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".venv", ".venv-tools", "demo", "outputs", "tests", ".git"):
        assert any(fnmatch.fnmatch(excluded, pattern) for pattern in patterns), f"{excluded} is not ignored"
    copied = {
        source.rstrip("/")
        for keyword, arguments in _dockerfile_instructions()
        if keyword == "COPY"
        for source in arguments.split()[:-1]
    }
    for source in copied:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in patterns), f"{source} would be ignored"


def test_dockerfile_passes_hadolint() -> None:
    result = _run([_tool("hadolint"), str(REPO_ROOT / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr


# Structure of the rendered overlays.


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_container_runs_the_accent_model(
    overlay: str, overlay_documents: dict[str, list[dict[str, Any]]]
) -> None:
    container = _serving_container(overlay_documents[overlay])
    assert container["image"] == SERVING_IMAGE
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]
    flags = _flags(container)
    assert flags["--model_name"] == configs.SERVING_MODEL_NAME == "accent"
    assert flags["--port"] == str(serving_defaults.DEFAULT_PORT) == "8500"
    assert flags["--rest_api_port"] == str(REST_PORT)
    assert flags["--file_system_poll_wait_seconds"] == "30"
    channel_arguments = dict(pair.split("=") for pair in flags["--grpc_channel_arguments"].split(","))
    assert int(channel_arguments["grpc.max_connection_age_ms"]) > 0
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": serving_defaults.DEFAULT_PORT, "http": REST_PORT}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_pod_is_locked_down(overlay: str, overlay_documents: dict[str, list[dict[str, Any]]]) -> None:
    deployment = _one(overlay_documents[overlay], "Deployment", "accent-serving")
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_security = pod_spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        assert isinstance(pod_security[field], int) and pod_security[field] > 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False
    container = pod_spec["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    for resources in (container["resources"]["requests"], container["resources"]["limits"]):
        assert {"cpu", "memory", "ephemeral-storage"} <= set(resources)
    volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
    tmp_mounts = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
    assert len(tmp_mounts) == 1 and "emptyDir" in volumes[tmp_mounts[0]["name"]]
    service_account = _one(overlay_documents[overlay], "ServiceAccount", pod_spec["serviceAccountName"])
    assert service_account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_wait_for_an_available_model(
    overlay: str, overlay_documents: dict[str, list[dict[str, Any]]]
) -> None:
    container = _serving_container(overlay_documents[overlay])
    for probe_name in ("readinessProbe", "startupProbe"):
        command = " ".join(container[probe_name]["exec"]["command"])
        assert f"/v1/models/{configs.SERVING_MODEL_NAME}" in command
        assert f"/dev/tcp/127.0.0.1/{REST_PORT}" in command
        assert "AVAILABLE" in command
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert container["livenessProbe"]["tcpSocket"]["port"] in ("grpc", serving_defaults.DEFAULT_PORT)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_match_the_serving_pods(
    overlay: str, overlay_documents: dict[str, list[dict[str, Any]]]
) -> None:
    documents = overlay_documents[overlay]
    deployment = _one(documents, "Deployment", "accent-serving")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _labels_match(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    services = [
        service
        for service in _find(documents, "Service")
        if service["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"
    ]
    assert {service["metadata"]["name"] for service in services} == {
        "accent-serving",
        "accent-serving-headless",
    }
    for service in services:
        assert _labels_match(service["spec"]["selector"], pod_labels)
        ports = {port["name"]: (port["port"], port.get("appProtocol")) for port in service["spec"]["ports"]}
        assert ports == {"grpc": (serving_defaults.DEFAULT_PORT, "grpc"), "http": (REST_PORT, "http")}
    assert _one(documents, "Service", "accent-serving-headless")["spec"]["clusterIP"] == "None"
    assert _labels_match(
        _one(documents, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels
    )
    autoscaler = _one(documents, "HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "accent-serving",
    }
    assert [metric["resource"]["name"] for metric in autoscaler["spec"]["metrics"]] == ["cpu"]
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_admit_only_labelled_clients(
    overlay: str, overlay_documents: dict[str, list[dict[str, Any]]]
) -> None:
    documents = overlay_documents[overlay]
    pod_labels = _one(documents, "Deployment", "accent-serving")["spec"]["template"]["metadata"]["labels"]
    policies = _find(documents, "NetworkPolicy")
    deny_all = [policy for policy in policies if policy["spec"]["podSelector"] == {}]
    assert len(deny_all) == 1 and "ingress" not in deny_all[0]["spec"]
    assert deny_all[0]["spec"]["policyTypes"] == ["Ingress"]
    serving = [
        policy
        for policy in policies
        if _labels_match(policy["spec"]["podSelector"].get("matchLabels", {}), pod_labels)
    ]
    assert len(serving) == 1
    rules = serving[0]["spec"]["ingress"]
    assert len(rules) == 1
    assert rules[0]["from"] == [{"podSelector": {"matchLabels": {CLIENT_LABEL[0]: CLIENT_LABEL[1]}}}]
    assert sorted(port["port"] for port in rules[0]["ports"]) == [serving_defaults.DEFAULT_PORT, REST_PORT]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lives_in_the_accent_namespace(
    overlay: str, overlay_documents: dict[str, list[dict[str, Any]]]
) -> None:
    documents = overlay_documents[overlay]
    namespace = _one(documents, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    labels = namespace["metadata"]["labels"]
    assert (
        labels["pod-security.kubernetes.io/warn"]
        == labels["pod-security.kubernetes.io/audit"]
        == "restricted"
    )
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == NAMESPACE, document["metadata"]["name"]
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "accent-recognition"


def test_base_and_cloud_enforce_the_restricted_pod_security_profile(
    overlay_documents: dict[str, list[dict[str, Any]]],
) -> None:
    for name in ("base", "cloud"):
        labels = _one(overlay_documents[name], "Namespace")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", name


def test_local_overlay_serves_from_the_model_store_pvc(
    overlay_documents: dict[str, list[dict[str, Any]]],
) -> None:
    documents = overlay_documents["local"]
    pod_spec = _one(documents, "Deployment", "accent-serving")["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in pod_spec["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert len(claims) == 1
    ((volume_name, claim_name),) = claims.items()
    claim = _one(documents, "PersistentVolumeClaim", claim_name)
    assert claim["spec"]["resources"]["requests"]["storage"]
    mount = next(mount for mount in container["volumeMounts"] if mount["name"] == volume_name)
    assert mount["readOnly"] is True
    model_base_path = _flags(container)["--model_base_path"]
    assert model_base_path == f"{mount['mountPath']}/{configs.SERVING_MODEL_NAME}"


def test_local_overlay_has_the_kubeflow_side(overlay_documents: dict[str, list[dict[str, Any]]]) -> None:
    documents = overlay_documents["local"]
    _one(documents, "PersistentVolumeClaim", "accent-pipeline-root")
    runner = _one(documents, "ServiceAccount", "accent-pipeline-runner")
    assert runner["automountServiceAccountToken"] is True
    binding = _one(documents, "RoleBinding", "accent-pipeline-runner")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "accent-pipeline-runner", "namespace": NAMESPACE}
    ]
    role = _one(documents, "Role", binding["roleRef"]["name"])
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    # The launcher reads the object store's Secret, that one only, and only with get.
    secret_rules = [rule for rule in role["rules"] if "secrets" in rule["resources"]]
    assert secret_rules == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["mlpipeline-minio-artifact"],
            "verbs": ["get"],
        }
    ]
    # KFP's UI reaches the namespace's artifact server through the base's default deny.
    (ui_policy,) = [
        policy
        for policy in _find(documents, "NetworkPolicy")
        if policy["spec"]["podSelector"].get("matchLabels") == {"app": "ml-pipeline-ui-artifact"}
    ]
    ((rule),) = ui_policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 3000}]
    assert rule["from"][0]["podSelector"] == {"matchLabels": {"app": "ml-pipeline-ui"}}
    assert rule["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}
    }
    # Kubeflow's pods carry no restricted security context and share this namespace here.
    labels = _one(documents, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"


def test_cloud_overlay_serves_from_gcs_with_workload_identity(
    overlay_documents: dict[str, list[dict[str, Any]]],
) -> None:
    documents = overlay_documents["cloud"]
    pod_spec = _one(documents, "Deployment", "accent-serving")["spec"]["template"]["spec"]
    model_base_path = _flags(pod_spec["containers"][0])["--model_base_path"]
    assert re.fullmatch(rf"gs://[a-zA-Z0-9_.-]+/serving/{configs.SERVING_MODEL_NAME}", model_base_path)
    assert not any("persistentVolumeClaim" in volume for volume in pod_spec["volumes"])
    assert not _find(documents, "PersistentVolumeClaim")
    service_account = _one(documents, "ServiceAccount", pod_spec["serviceAccountName"])
    assert service_account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )


# The readiness probe's command, run against a stand-in for TF Serving's REST API.


class _ModelStatusHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /v1/models/accent with the state the test server holds; 404 elsewhere."""

    def do_GET(self) -> None:
        self.server.requested_paths.append(self.path)  # type: ignore[attr-defined]
        if self.path != f"/v1/models/{configs.SERVING_MODEL_NAME}":
            self.send_error(404)
            return
        body = MODEL_STATUS_BODY.format(state=self.server.model_state).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture()
def model_status_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelStatusHandler)
    server.model_state = "LOADING"  # type: ignore[attr-defined]
    server.requested_paths = []  # type: ignore[attr-defined]
    with loopback_http.serving(server):
        yield server


def _probe_on_port(documents: list[dict[str, Any]], probe_name: str, port: int) -> list[str]:
    command = _serving_container(documents)[probe_name]["exec"]["command"]
    assert command[:2] == ["/bin/bash", "-c"]
    script = command[2]
    assert script.count(f"/dev/tcp/127.0.0.1/{REST_PORT}") == 1
    return ["bash", "-c", script.replace(f"/dev/tcp/127.0.0.1/{REST_PORT}", f"/dev/tcp/127.0.0.1/{port}")]


@pytest.mark.parametrize("probe_name", ["readinessProbe", "startupProbe"])
@pytest.mark.parametrize(
    ("state", "ready"), [("START", False), ("LOADING", False), ("AVAILABLE", True), ("UNLOADING", False)]
)
def test_probe_passes_only_once_a_version_is_available(
    probe_name: str,
    state: str,
    ready: bool,
    model_status_server: http.server.ThreadingHTTPServer,
    overlay_documents: dict[str, list[dict[str, Any]]],
) -> None:
    model_status_server.model_state = state  # type: ignore[attr-defined]
    port = model_status_server.server_address[1]
    result = subprocess.run(
        _probe_on_port(overlay_documents["cloud"], probe_name, port),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert (result.returncode == 0) is ready, result.stderr
    assert model_status_server.requested_paths == [f"/v1/models/{configs.SERVING_MODEL_NAME}"]  # type: ignore[attr-defined]


def test_probe_fails_while_nothing_listens(overlay_documents: dict[str, list[dict[str, Any]]]) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    result = subprocess.run(
        _probe_on_port(overlay_documents["local"], "readinessProbe", port),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_page_is_a_labelled_serving_client_locked_down_like_serving(
    overlay: str, overlay_documents: dict[str, list[dict[str, Any]]]
) -> None:
    documents = overlay_documents[overlay]
    web = _one(documents, "Deployment", "accent-web")
    serving = _one(documents, "Deployment", "accent-serving")
    web_pod, serving_pod = web["spec"]["template"]["spec"], serving["spec"]["template"]["spec"]
    assert web["spec"]["template"]["metadata"]["labels"][CLIENT_LABEL[0]] == CLIENT_LABEL[1]
    assert web_pod["securityContext"] == serving_pod["securityContext"]
    assert web_pod["containers"][0]["securityContext"] == serving_pod["containers"][0]["securityContext"]
    assert web_pod["automountServiceAccountToken"] is False
    arguments = web_pod["containers"][0]["args"]
    assert arguments[0] == "web"
    assert (
        f"--server=accent-serving.{NAMESPACE}.svc.cluster.local:{serving_defaults.DEFAULT_PORT}" in arguments
    )
    service = _one(documents, "Service", "accent-web")
    assert _labels_match(service["spec"]["selector"], web["spec"]["template"]["metadata"]["labels"])
    policies = [
        policy
        for policy in _find(documents, "NetworkPolicy")
        if policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "accent-web"
    ]
    assert len(policies) == 1
    assert [port["port"] for port in policies[0]["spec"]["ingress"][0]["ports"]] == [8080]
