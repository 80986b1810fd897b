import http.server
import json
import shutil
import socket
import threading
import time
import uuid

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from components.yamnet import embedder, export, handle
from tests.unit import yamnet_testing

UNREACHABLE_URL = "http://127.0.0.1:9/yamnet"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return yamnet_testing.offline_export_dir(tmp_path_factory)


def test_unreachable_url_fails_fast_with_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    started = time.monotonic()
    with pytest.raises(handle.YamnetHandleError) as raised:
        handle.resolve_yamnet_handle(UNREACHABLE_URL)
    assert time.monotonic() - started < 5.0
    assert isinstance(raised.value, RuntimeError)
    message = str(raised.value)
    for remedy in (
        UNREACHABLE_URL,
        "internet",
        "TFHUB_CACHE_DIR",
        "export-yamnet",
        "SavedModel directory",
        "offline",
    ):
        assert remedy in message


def test_silent_server_times_out():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/yamnet"
        started = time.monotonic()
        with pytest.raises(handle.YamnetHandleError, match="Cannot reach YAMNet handle"):
            handle.check_reachable(url, timeout_seconds=1.0)
        assert time.monotonic() - started < 3.0


def test_cached_url_needs_no_network(export_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    cached = handle.hub_cache_dir_for(UNREACHABLE_URL)
    shutil.copytree(export_dir, cached)
    assert handle.resolve_yamnet_handle(UNREACHABLE_URL) == cached


def test_missing_local_path(tmp_path):
    missing = tmp_path / "no_such_yamnet"
    with pytest.raises(handle.YamnetHandleError, match="no such local path"):
        handle.resolve_yamnet_handle(str(missing))


def test_local_path_that_is_not_a_saved_model(tmp_path):
    with pytest.raises(handle.YamnetHandleError, match="not a SavedModel"):
        handle.resolve_yamnet_handle(str(tmp_path))
    h5_file = tmp_path / "yamnet.h5"
    h5_file.write_bytes(b"")
    with pytest.raises(handle.YamnetHandleError, match="export-yamnet"):
        handle.resolve_yamnet_handle(str(h5_file))


def test_empty_handle():
    with pytest.raises(handle.YamnetHandleError, match="empty"):
        handle.resolve_yamnet_handle("")


def test_local_saved_model_and_load(export_dir):
    assert handle.resolve_yamnet_handle(str(export_dir)) == export_dir.resolve()
    model = tf.saved_model.load(str(handle.resolve_yamnet_handle(str(export_dir))))
    scores, embeddings, _ = model(np.zeros(16000, np.float32))
    assert scores.shape == (2, 521)
    assert embeddings.shape == (2, 1024)


def test_offline_handle_is_cached(export_dir):
    saved_model_file = export_dir / "saved_model.pb"
    modified = saved_model_file.stat().st_mtime_ns
    again = handle.resolve_yamnet_handle("offline", export_dir.parent, seed=yamnet_testing.SEED)
    assert again == export_dir
    assert saved_model_file.stat().st_mtime_ns == modified
    assert export_dir.name.startswith(f"offline-seed{yamnet_testing.SEED}-")
    assert export.describe_weights(again).seed == yamnet_testing.SEED


def _copy_to_ram_filesystem(local_dir):
    # ram:// is a TensorFlow file system that tf.io.gfile opens like gs://, but in memory.
    remote_dir = f"ram://tfhub-modules/{uuid.uuid4().hex}/yamnet"
    for path in sorted(local_dir.rglob("*")):
        remote_path = f"{remote_dir}/{path.relative_to(local_dir).as_posix()}"
        if path.is_dir():
            tf.io.gfile.makedirs(remote_path)
        else:
            tf.io.gfile.makedirs(remote_path.rsplit("/", 1)[0])
            tf.io.gfile.copy(str(path), remote_path)
    return remote_dir


def test_remote_path_from_hub_resolve_is_passed_through(export_dir, tmp_path, monkeypatch):
    # With TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED, hub.resolve returns the model's gs:// directory.
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    remote_dir = _copy_to_ram_filesystem(export_dir)
    monkeypatch.setattr(handle, "check_reachable", lambda url: None)
    monkeypatch.setattr(hub, "resolve", lambda url: remote_dir)
    resolved = handle.resolve_yamnet_handle("https://tfhub.dev/google/yamnet/1")
    assert resolved == remote_dir
    assert export.describe_weights(resolved).source == export.SOURCE_OFFLINE
    (remote_embedding,) = embedder.YamnetEmbedder(resolved).embed_waveforms([np.zeros(16000, np.float32)])
    (local_embedding,) = embedder.YamnetEmbedder(export_dir).embed_waveforms([np.zeros(16000, np.float32)])
    np.testing.assert_array_equal(remote_embedding.embeddings, local_embedding.embeddings)


def test_remote_path_handle(export_dir):
    remote_dir = _copy_to_ram_filesystem(export_dir)
    assert handle.resolve_yamnet_handle(remote_dir) == remote_dir
    with pytest.raises(handle.YamnetHandleError, match="not a SavedModel directory"):
        handle.resolve_yamnet_handle(f"{remote_dir}/variables")
    with pytest.raises(handle.YamnetHandleError, match="does not exist"):
        handle.resolve_yamnet_handle(f"{remote_dir}-missing")


def test_remote_path_from_hub_resolve_must_be_a_saved_model(export_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    remote_dir = _copy_to_ram_filesystem(export_dir)
    monkeypatch.setattr(handle, "check_reachable", lambda url: None)
    monkeypatch.setattr(hub, "resolve", lambda url: f"{remote_dir}/variables")
    with pytest.raises(handle.YamnetHandleError, match="not a SavedModel directory"):
        handle.resolve_yamnet_handle("https://tfhub.dev/google/yamnet/1")


def test_stale_offline_export_without_serving_default_is_replaced(export_dir, tmp_path):
    stale = handle.offline_model_dir(tmp_path, yamnet_testing.SEED)
    shutil.copytree(export_dir, stale)
    weights_info_file = stale / "assets" / export.WEIGHTS_INFO_FILENAME
    stale_info = json.loads(weights_info_file.read_text())
    del stale_info["export_version"]
    weights_info_file.write_text(json.dumps(stale_info))
    resolved = handle.resolve_yamnet_handle("offline", tmp_path, seed=yamnet_testing.SEED)
    assert resolved == stale
    assert export.describe_weights(resolved).export_version == export.EXPORT_VERSION
    assert "serving_default" in tf.saved_model.load(str(resolved)).signatures


class RedirectingHandler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(302)
        self.send_header("Location", UNREACHABLE_URL)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_redirecting_server_counts_as_reachable():
    server = http.server.HTTPServer(("127.0.0.1", 0), RedirectingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        handle.check_reachable(f"http://127.0.0.1:{server.server_port}/yamnet", timeout_seconds=2.0)
    finally:
        server.shutdown()
        server.server_close()
