import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from components.yamnet import class_map, contract, export, frontend, network, weights
from pipeline import cli
from tests.unit import yamnet_testing

LENGTHS_AND_PATCHES = [
    (1, 1),
    (15599, 1),
    (15600, 1),
    (15601, 2),
    (16000, 2),
    (23280, 2),
    (23281, 3),
    (48000, 6),
]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return yamnet_testing.offline_export_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def hub_model(export_dir):
    return hub.load(str(export_dir))


def test_hub_load_matches_direct_keras_call(hub_model):
    yamnet_network = yamnet_testing.offline_network()
    for clip in [*yamnet_testing.speech_like_clips()[:3], np.zeros(48000, np.float32)]:
        exported = hub_model(clip)
        direct = network.yamnet_frames(yamnet_network, tf.constant(clip))
        for exported_output, direct_output in zip(exported, direct, strict=True):
            np.testing.assert_allclose(exported_output.numpy(), direct_output.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("num_samples", "num_patches"), LENGTHS_AND_PATCHES)
def test_exported_output_shapes(hub_model, num_samples, num_patches):
    waveform = np.random.default_rng(num_samples).uniform(-0.3, 0.3, num_samples).astype(np.float32)
    scores, embeddings, log_mel = hub_model(waveform)
    assert tuple(scores.shape) == (num_patches, 521)
    assert tuple(embeddings.shape) == (num_patches, 1024)
    assert tuple(log_mel.shape) == (96 + 48 * (num_patches - 1), 64)
    assert np.all((scores.numpy() > 0) & (scores.numpy() < 1))


def test_batched_functions_agree_with_call(hub_model):
    clip = yamnet_testing.speech_like_clips()[0]
    scores, embeddings, log_mel = hub_model(clip)
    front_end = hub_model.log_mel_patches(clip)
    np.testing.assert_allclose(front_end["log_mel_spectrogram"].numpy(), log_mel.numpy(), atol=1e-6)
    _, expected_patches = frontend.waveform_to_log_mel_and_patches(tf.constant(clip))
    np.testing.assert_allclose(front_end["patches"].numpy(), expected_patches.numpy(), atol=1e-6)
    batched = hub_model.embed_patches(front_end["patches"])
    np.testing.assert_allclose(batched["embeddings"].numpy(), embeddings.numpy(), atol=1e-5)
    np.testing.assert_allclose(batched["scores"].numpy(), scores.numpy(), atol=1e-5)


def test_class_map_and_weights_description(hub_model, export_dir):
    with open(hub_model.class_map_path().numpy().decode(), newline="") as csv_file:
        rows = list(csv.reader(csv_file))
    assert rows[0] == ["index", "mid", "display_name"]
    assert rows[1] == ["0", "/m/09x0r", "Speech"]
    assert len(rows) == 1 + 521
    assert all(
        "placeholder_" in row[2] and row[0] == str(index) for index, row in enumerate(rows[1:]) if index
    )
    info = export.describe_weights(export_dir)
    assert info == export.WeightsInfo(
        source=weights.OFFLINE_WEIGHTS,
        seed=yamnet_testing.SEED,
        offline_weights_version=weights.OFFLINE_WEIGHTS_VERSION,
        export_version=export.EXPORT_VERSION,
    )
    assert not info.pretrained
    written = json.loads((export_dir / "assets" / export.WEIGHTS_INFO_FILENAME).read_text())
    assert written == {
        "source": "offline",
        "seed": yamnet_testing.SEED,
        "pretrained": False,
        "h5_path": None,
        "offline_weights_version": weights.OFFLINE_WEIGHTS_VERSION,
        "export_version": export.EXPORT_VERSION,
    }


def test_describe_weights_of_a_foreign_saved_model(tmp_path):
    tf.saved_model.save(tf.Module(), str(tmp_path))
    info = export.describe_weights(tmp_path)
    assert info == export.WeightsInfo(source=export.SOURCE_HUB)
    assert info.pretrained


def test_weights_info_is_frozen_and_reads_its_json():
    info = export.WeightsInfo.from_json_dict(
        {"source": "h5", "h5_path": "/w/yamnet.h5", "export_version": 2, "pretrained": True}
    )
    assert info == export.WeightsInfo(source=export.SOURCE_H5, h5_path="/w/yamnet.h5", export_version=2)
    assert info.pretrained
    assert export.WeightsInfo.from_json_dict(info.to_json_dict()) == info
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.source = export.SOURCE_OFFLINE  # type: ignore[misc]


@pytest.mark.parametrize("contents", [{}, {"source": "cloud"}])
def test_weights_info_refuses_an_unknown_source(contents):
    with pytest.raises(ValueError, match="source"):
        export.WeightsInfo.from_json_dict(contents)


def test_copied_export_keeps_its_assets(export_dir, tmp_path, hub_model):
    copy_dir = tmp_path / "copied"
    shutil.copytree(export_dir, copy_dir)
    copied = tf.saved_model.load(str(copy_dir))
    class_map_path = copied.class_map_path().numpy().decode()
    assert class_map_path.startswith(str(copy_dir))
    assert export.describe_weights(copy_dir).source == export.SOURCE_OFFLINE
    clip = yamnet_testing.speech_like_clips()[1]
    np.testing.assert_array_equal(copied(clip)[1].numpy(), hub_model(clip)[1].numpy())


def test_two_offline_exports_are_identical(tmp_path, hub_model):
    second = tf.saved_model.load(
        str(export.export_yamnet(tmp_path / "second", "offline", seed=yamnet_testing.SEED))
    )
    for clip in yamnet_testing.speech_like_clips()[:4]:
        for first_output, second_output in zip(hub_model(clip), second(clip), strict=True):
            np.testing.assert_array_equal(first_output.numpy(), second_output.numpy())


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory):
    h5_path = tmp_path_factory.mktemp("h5") / "yamnet.h5"
    yamnet_testing.write_keras2_h5(h5_path, yamnet_testing.official_arrays(np.random.default_rng(11)))
    return h5_path


def test_h5_export(tmp_path, h5_file):
    class_map_csv = yamnet_testing.write_class_map(tmp_path / "yamnet_class_map.csv")
    exported_dir = export.export_yamnet(
        tmp_path / "from_h5", weights=str(h5_file), class_map_csv=class_map_csv
    )
    description = export.describe_weights(exported_dir)
    assert description.source == export.SOURCE_H5
    assert description.pretrained is True
    assert description.h5_path == str(h5_file)
    direct = network.build_yamnet_network()
    weights.load_h5_weights(direct, h5_file)
    clip = yamnet_testing.speech_like_clips()[2]
    loaded = tf.saved_model.load(str(exported_dir))
    exported = loaded(clip)
    expected = network.yamnet_frames(direct, tf.constant(clip))
    np.testing.assert_allclose(exported[0].numpy(), expected[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(exported[1].numpy(), expected[1].numpy(), atol=1e-5)
    names = class_map.read_display_names(loaded.class_map_path().numpy())
    assert names == class_map.read_display_names(class_map_csv)
    assert not any("placeholder" in name or "offline" in name for name in names)


def test_h5_export_requires_the_class_map(tmp_path, h5_file):
    with pytest.raises(ValueError, match=r"--class-map.*yamnet_class_map\.csv.*research/audioset/yamnet"):
        export.export_yamnet(tmp_path / "from_h5", weights=str(h5_file))
    assert not (tmp_path / "from_h5").exists()


def test_h5_export_refuses_a_class_map_that_is_not_yamnets(tmp_path, h5_file):
    short_map = tmp_path / "short.csv"
    short_map.write_text("index,mid,display_name\n0,/m/09x0r,Speech\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short\.csv.*1 class.*521"):
        export.export_yamnet(tmp_path / "from_h5", weights=str(h5_file), class_map_csv=short_map)


def test_offline_export_refuses_a_real_class_map(tmp_path):
    class_map_csv = yamnet_testing.write_class_map(tmp_path / "yamnet_class_map.csv")
    with pytest.raises(ValueError, match="offline"):
        export.export_yamnet(tmp_path / "offline", weights="offline", class_map_csv=class_map_csv)


def test_cli_export_yamnet_from_h5_requires_the_class_map(tmp_path, h5_file, capsys):
    exit_code = cli.main(["export-yamnet", "--output", str(tmp_path / "out"), "--weights", str(h5_file)])
    assert exit_code == 2
    assert "--class-map" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_serving_default_has_the_hub_names_and_matches_call(export_dir):
    loaded = tf.saved_model.load(str(export_dir))
    serving_default = loaded.signatures["serving_default"]
    _, input_specs = serving_default.structured_input_signature
    assert list(input_specs) == ["waveform"]
    assert input_specs["waveform"].shape.as_list() == [None]
    assert input_specs["waveform"].dtype == tf.float32
    assert sorted(serving_default.structured_outputs) == ["output_0", "output_1", "output_2"]
    clip = yamnet_testing.speech_like_clips()[3]
    outputs = serving_default(waveform=tf.constant(clip))
    for name, expected in zip(["output_0", "output_1", "output_2"], loaded(clip), strict=True):
        np.testing.assert_array_equal(outputs[name].numpy(), expected.numpy())


def test_contract_unpacks_the_tuple_and_the_dict_forms(export_dir, tmp_path):
    clip = tf.constant(yamnet_testing.speech_like_clips()[0])
    tuple_form = tf.saved_model.load(str(export_dir))
    dict_form = tf.saved_model.load(
        str(yamnet_testing.write_dict_form_yamnet(export_dir, tmp_path / "dict_form"))
    )
    assert isinstance(dict_form(clip), dict)
    expected = tuple_form(clip)
    for model in (tuple_form, dict_form):
        outputs = contract.call_yamnet(model, clip)
        assert len(outputs) == 3
        for output, expected_output in zip(outputs, expected, strict=True):
            np.testing.assert_array_equal(output.numpy(), expected_output.numpy())


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (
            {"embeddings": 1, "log_mel_spectrogram": 2},
            r"predictions.*\['embeddings', 'log_mel_spectrogram'\]",
        ),
        ((1, 2), "3 outputs.*got 2"),
        ("scores", "tuple.*or a dict.*str"),
    ],
)
def test_contract_refuses_other_output_forms(outputs, message):
    with pytest.raises(ValueError, match=message):
        contract.unpack_outputs(outputs)
