import logging
import os
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import path_utils, proto_utils

from components import baseline, pusher
from components.artifacts import ModelCard
from components.serving import versions


def _graph(schema_version: int) -> bytes:
    """A serialized SavedModel proto, told apart by its schema version."""
    return saved_model_pb2.SavedModel(saved_model_schema_version=schema_version).SerializeToString()


def _saved_model(directory: Path, graph: bytes) -> Path:
    """The files of a SavedModel without a fingerprint, as TensorFlow before 2.12 wrote them."""
    (directory / "variables").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(graph)
    (directory / "variables" / "variables.index").write_bytes(b"index")
    (directory / "variables" / "variables.data-00000-of-00001").write_bytes(b"data")
    return directory


class _Scale(tf.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = tf.Variable(factor)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, values: tf.Tensor) -> tf.Tensor:
        return values * self.factor


@pytest.fixture(scope="module")
def real_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real, different SavedModels with variables and fingerprints."""
    directory = tmp_path_factory.mktemp("real_models")
    first, second = directory / "first", directory / "second"
    tf.saved_model.save(_Scale(2.0), str(first))
    tf.saved_model.save(_Scale(3.0), str(second))
    return first, second


def _copy(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def _push(
    model_dir: Path, base_directory: Path, work_dir: Path, model_card_dir: Path | None = None
) -> standard_artifacts.PushedModel:
    """Runs the project's Pusher executor on a blessed model, with a card if given; returns its output."""
    model = standard_artifacts.Model()
    model.uri = str(work_dir / "model")
    if not Path(path_utils.serving_model_path(model.uri)).exists():
        shutil.copytree(model_dir, path_utils.serving_model_path(model.uri))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(work_dir / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(work_dir / "pushed" / str(len(list(work_dir.glob("pushed/*")))))
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base_directory))
    )
    inputs = {"model": [model], "model_blessing": [blessing]}
    if model_card_dir is not None:
        card = ModelCard()
        card.uri = str(model_card_dir)
        inputs["model_card"] = [card]
    pusher.Executor().Do(
        inputs,
        {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination)},
    )
    return pushed


def test_latest_complete_version_is_the_highest_integer_that_holds_a_saved_model(tmp_path: Path) -> None:
    assert pusher.latest_complete_version_dir(str(tmp_path / "missing")) is None
    for name in ("9", "10", "tmp-11", "2", "\u0663"):  # "\u0663" is an Arabic-Indic digit, no version.
        _saved_model(tmp_path / name, _graph(1))
    assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "10")
    (tmp_path / "12" / "variables").mkdir(parents=True)  # An interrupted copy: no saved_model.pb.
    assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "10")
    assert versions.version_number(str(tmp_path / "10")) == 10


def test_a_version_number_beyond_int64_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _saved_model(tmp_path / "10", _graph(1))
    _saved_model(tmp_path / str(2**63), _graph(1))  # One past int64's maximum: TF Serving ignores it.
    _saved_model(tmp_path / "99999999999999999999", _graph(1))
    with caplog.at_level(logging.WARNING):
        assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "10")
    assert "99999999999999999999" in caplog.text and str(2**63) in caplog.text
    assert versions.version_number(str(tmp_path / str(2**63 - 1))) == 2**63 - 1
    with pytest.raises(ValueError, match="99999999999999999999"):
        versions.version_number(str(tmp_path / "99999999999999999999"))
    with pytest.raises(ValueError, match="tmp-11"):
        versions.version_number(str(tmp_path / "tmp-11"))


def test_a_version_without_its_variables_index_is_incomplete_and_reported(
    real_models: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = real_models
    _copy(first, tmp_path / "10")
    broken = _copy(first, tmp_path / "11")
    (broken / "variables" / "variables.index").unlink()
    with caplog.at_level(logging.WARNING):
        assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "10")
    assert str(broken) in caplog.text
    assert pusher.incomplete_reason(str(tmp_path / "10")) is None
    assert "variables.index" in str(pusher.incomplete_reason(str(broken)))


def test_a_truncated_saved_model_pb_is_incomplete(real_models: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = real_models
    truncated = _copy(first, tmp_path / "11")
    graph = (truncated / "saved_model.pb").read_bytes()
    (truncated / "saved_model.pb").write_bytes(graph[: len(graph) // 2])
    assert pusher.incomplete_reason(str(truncated)) is not None
    assert pusher.latest_complete_version_dir(str(tmp_path)) is None


def test_a_missing_variables_shard_is_incomplete(real_models: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = real_models
    broken = _copy(first, tmp_path / "11")
    (broken / "variables" / "variables.data-00001-of-00002").write_bytes(b"")
    (broken / "variables" / "variables.data-00000-of-00001").rename(
        broken / "variables" / "variables.data-00000-of-00002"
    )
    (broken / "variables" / "variables.data-00001-of-00002").unlink()
    assert "variables.data-00001-of-00002" in str(pusher.incomplete_reason(str(broken)))


def test_same_model_is_recognised_by_its_fingerprint(real_models: tuple[Path, Path], tmp_path: Path) -> None:
    first, second = real_models
    assert pusher.same_saved_model(str(first), str(_copy(first, tmp_path / "same")))
    assert not pusher.same_saved_model(str(first), str(second))


def test_without_fingerprints_the_graph_and_variables_decide(tmp_path: Path) -> None:
    candidate = _saved_model(tmp_path / "candidate", _graph(1))
    assert pusher.same_saved_model(str(candidate), str(_saved_model(tmp_path / "same", _graph(1))))
    assert not pusher.same_saved_model(str(candidate), str(_saved_model(tmp_path / "other", _graph(2))))
    assert not pusher.same_saved_model(str(candidate), str(tmp_path / "empty"))


def test_an_interrupted_copy_with_the_same_fingerprint_is_not_already_served(
    real_models: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = real_models
    base = tmp_path / "serving"
    # What a crash or a full disk left behind: the fingerprint, part of the variables, a cut saved_model.pb.
    interrupted = _copy(first, base / "100")
    (interrupted / "variables" / "variables.index").unlink()
    (interrupted / "saved_model.pb").write_bytes((first / "saved_model.pb").read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        pushed = _push(first, base, tmp_path / "work")
    assert not pushed.has_custom_property("already_served")
    destination = pushed.get_string_custom_property("pushed_destination")
    assert destination != str(interrupted)
    assert versions.version_number(destination) > 100
    assert pusher.incomplete_reason(destination) is None
    assert pusher.latest_complete_version_dir(str(base)) == destination
    assert str(interrupted) in caplog.text


def test_a_push_that_dies_mid_copy_leaves_no_version_directory(
    real_models: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, _ = real_models
    base = tmp_path / "serving"
    real_copy = fileio.copy

    def copy_until_the_disk_is_full(source: str, destination: str, overwrite: bool = False) -> None:
        if os.path.basename(source) == "saved_model.pb":
            raise OSError(28, "No space left on device")
        real_copy(source, destination, overwrite)

    monkeypatch.setattr(fileio, "copy", copy_until_the_disk_is_full)
    with pytest.raises(OSError, match="No space left"):
        _push(first, base, tmp_path / "work")
    monkeypatch.setattr(fileio, "copy", real_copy)
    assert os.listdir(base) == []  # No version directory, and the temporary copy is removed.
    # A push killed outright leaves its temporary copy, under a name that is no version.
    stale = _copy(first, base / ".tmp-123-killed")
    (stale / "saved_model.pb").unlink()
    leftovers = pusher.stale_temporary_dirs(str(base))
    assert leftovers == [str(stale)]

    with caplog.at_level(logging.WARNING):
        pushed = _push(first, base, tmp_path / "work")
    destination = pushed.get_string_custom_property("pushed_destination")
    assert pusher.incomplete_reason(destination) is None
    assert pusher.same_saved_model(str(first), destination)
    assert leftovers[0] in caplog.text  # The stale temporary directory of the crashed push is reported.


def test_a_second_push_of_the_same_model_records_the_served_version(
    real_models: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = real_models
    base = tmp_path / "serving"
    served = _push(first, base, tmp_path / "work").get_string_custom_property("pushed_destination")
    again = _push(first, base, tmp_path / "work")
    assert again.get_int_custom_property("already_served") == 1
    assert again.get_string_custom_property("pushed_destination") == served
    other = _push(second, base, tmp_path / "other")
    assert versions.version_number(
        other.get_string_custom_property("pushed_destination")
    ) > versions.version_number(served)


def test_a_push_carries_the_model_card_in_assets_extra_and_stays_the_same_model(
    real_models: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = real_models
    card_dir = tmp_path / "card"
    (card_dir / "figures").mkdir(parents=True)
    (card_dir / "model_card.html").write_text("<html>card</html>")
    (card_dir / "README.md").write_text("---\nlibrary_name: keras\n---\n")
    (card_dir / "figures" / "curves.png").write_bytes(b"png")
    base = tmp_path / "serving"
    pushed = _push(first, base, tmp_path / "work", model_card_dir=card_dir)
    version_dir = Path(pushed.get_string_custom_property("pushed_destination"))
    carried = version_dir / "assets.extra" / "model_card"
    assert (carried / "model_card.html").read_text() == "<html>card</html>"
    assert (carried / "README.md").exists() and (carried / "figures" / "curves.png").exists()
    assert pusher.incomplete_reason(str(version_dir)) is None
    assert pusher.same_saved_model(str(first), str(version_dir))
    assert pusher.latest_complete_version_dir(str(base)) == str(version_dir)
    assert not pusher.stale_temporary_dirs(str(base))
    again = _push(first, base, tmp_path / "again", model_card_dir=card_dir)
    assert again.get_int_custom_property("already_served") == 1


def test_remove_stale_temporary_dirs(tmp_path: Path) -> None:
    _saved_model(tmp_path / "10", _graph(1))
    (tmp_path / ".tmp-11-abc" / "variables").mkdir(parents=True)
    assert pusher.remove_stale_temporary_dirs(str(tmp_path)) == [str(tmp_path / ".tmp-11-abc")]
    assert sorted(os.listdir(tmp_path)) == ["10"]


def test_baseline_passes_over_an_incomplete_version(real_models: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = real_models
    base = tmp_path / "serving"
    _copy(first, base / "10")
    broken = _copy(first, base / "11")
    (broken / "variables" / "variables.index").unlink()
    _copy(first, base / "99999999999999999999")
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "baseline")
    baseline.LatestServedModel.test_call(model=model, serving_base_path=str(base))
    assert model.get_int_custom_property(baseline.SERVED_VERSION_PROPERTY) == 10
    assert baseline.baseline_is_present(model)


def test_version_names_follow_the_shared_rule(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _saved_model(tmp_path / "9", _graph(1))
    _saved_model(tmp_path / "010", _graph(1))  # Version 10, leading zeros allowed as in TF Serving.
    assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "010")
    assert versions.version_number(str(tmp_path / "010")) == 10
    _saved_model(tmp_path / "10", _graph(2))  # Now "10" is version 10; "010" is passed over.
    with caplog.at_level(logging.WARNING):
        assert pusher.latest_complete_version_dir(str(tmp_path)) == str(tmp_path / "10")
    assert str(tmp_path / "010") in caplog.text
