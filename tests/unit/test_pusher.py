from pathlib import Path

from components import pusher


def _saved_model(directory: Path, graph: bytes, fingerprint: bytes | None) -> Path:
    (directory / "variables").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(graph)
    (directory / "variables" / "variables.index").write_bytes(b"index")
    if fingerprint is not None:
        (directory / "fingerprint.pb").write_bytes(fingerprint)
    return directory


def test_latest_complete_version_is_the_highest_integer_that_holds_a_saved_model(tmp_path: Path) -> None:
    assert pusher.latest_complete_version_dir(str(tmp_path / "missing")) is None
    for name in ("9", "10", "tmp-11", "2", "\u0663"):  # "\u0663" is an Arabic-Indic digit, no version.
        _saved_model(tmp_path / name, b"graph", None)
    assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "10")
    (tmp_path / "12" / "variables").mkdir(parents=True)  # An interrupted copy: no saved_model.pb.
    assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "10")
    assert pusher.version_number(str(tmp_path / "10")) == 10


def test_same_model_is_recognised_by_its_fingerprint(tmp_path: Path) -> None:
    candidate = _saved_model(tmp_path / "candidate", b"graph", b"fp-1")
    assert pusher.same_saved_model(str(candidate), str(_saved_model(tmp_path / "same", b"graph", b"fp-1")))
    assert not pusher.same_saved_model(
        str(candidate), str(_saved_model(tmp_path / "other", b"graph", b"fp-2"))
    )


def test_without_fingerprints_the_graph_and_variables_decide(tmp_path: Path) -> None:
    candidate = _saved_model(tmp_path / "candidate", b"graph", None)
    assert pusher.same_saved_model(str(candidate), str(_saved_model(tmp_path / "same", b"graph", None)))
    assert not pusher.same_saved_model(
        str(candidate), str(_saved_model(tmp_path / "other", b"graph-2", None))
    )
    assert not pusher.same_saved_model(str(candidate), str(tmp_path / "empty"))
