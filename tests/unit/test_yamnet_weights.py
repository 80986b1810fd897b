import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from components.yamnet import network, weights
from tests.unit import yamnet_testing
from tests.unit.yamnet_testing import ARCHITECTURE, official_arrays, write_keras2_h5


def set_directly(yamnet_network, groups):
    for group_name, arrays in groups.items():
        layer = yamnet_network.get_layer(group_name.replace("/", "_"))
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.beta.assign(arrays["beta"])
            layer.moving_mean.assign(arrays["moving_mean"])
            layer.moving_variance.assign(arrays["moving_variance"])
        elif isinstance(layer, keras.layers.Dense):
            layer.kernel.assign(arrays["kernel"])
            layer.bias.assign(arrays["bias"])
        else:
            layer.kernel.assign(arrays.get("kernel", arrays.get("depthwise_kernel")))


@pytest.fixture(scope="module")
def groups():
    return official_arrays(np.random.default_rng(3))


@pytest.fixture(scope="module")
def patches():
    return tf.constant(np.random.default_rng(4).normal(-3.0, 2.0, (3, 96, 64)).astype(np.float32))


def test_official_layout_has_110_arrays(groups):
    assert sum(len(arrays) for arrays in groups.values()) == 110 == weights.NUM_H5_ARRAYS
    assert list(groups) == network.weighted_layer_names()


def test_architecture_matches_the_published_model():
    yamnet_network = network.build_yamnet_network()
    expected_parameters = 3 * 3 * 1 * 32 + 3 * 32
    channels = 32
    for _, _, filters in ARCHITECTURE[1:]:
        expected_parameters += 3 * 3 * channels + 3 * channels + channels * filters + 3 * filters
        channels = filters
    expected_parameters += 1024 * 521 + 521
    assert yamnet_network.count_params() == expected_parameters
    assert tuple(yamnet_network.get_layer("layer13_depthwise_conv").strides) == (2, 2)
    assert yamnet_network.get_layer("layer14_pointwise_conv").kernel.shape == (1, 1, 1024, 1024)
    assert yamnet_network.get_layer("layer1_conv_bn").epsilon == pytest.approx(1e-4)
    outputs = yamnet_network(tf.zeros([2, 96, 64]), training=False)
    assert tuple(outputs["scores"].shape) == (2, 521)
    assert tuple(outputs["embeddings"].shape) == (2, 1024)


def _assert_loads_as_set_directly(h5_path, groups, patches) -> tf.Tensor:
    """Checks that the network loaded from the H5 file scores and embeds as one given ``groups`` directly.

    Returns:
        The scores of the directly set network on the patches.
    """
    loaded = network.build_yamnet_network()
    weights.load_h5_weights(loaded, h5_path)
    direct = network.build_yamnet_network()
    set_directly(direct, groups)
    loaded_scores, loaded_embeddings = network.embed_patches(loaded, patches)
    direct_scores, direct_embeddings = network.embed_patches(direct, patches)
    np.testing.assert_array_equal(loaded_embeddings.numpy(), direct_embeddings.numpy())
    np.testing.assert_array_equal(loaded_scores.numpy(), direct_scores.numpy())
    return direct_scores


@pytest.mark.parametrize("under_model_weights", [False, True])
def test_h5_round_trip(tmp_path, groups, patches, under_model_weights):
    h5_path = tmp_path / "yamnet.h5"
    write_keras2_h5(h5_path, groups, under_model_weights)
    direct_scores = _assert_loads_as_set_directly(h5_path, groups, patches)
    untouched_scores, _ = network.embed_patches(network.build_yamnet_network(), patches)
    assert not np.allclose(untouched_scores.numpy(), direct_scores.numpy())


def _with_classifier_groups(groups, classifier_names):
    renamed = {name: arrays for name, arrays in groups.items() if name != "logits"}
    for classifier_name in classifier_names:
        renamed[classifier_name] = groups["logits"]
    return renamed


def test_h5_classifier_group_named_dense_is_accepted(tmp_path, groups, patches):
    # Today's official yamnet.py leaves the classifier's Dense layer unnamed, so Keras calls it "dense".
    h5_path = tmp_path / "yamnet_dense.h5"
    write_keras2_h5(h5_path, _with_classifier_groups(groups, ["dense"]))
    _assert_loads_as_set_directly(h5_path, groups, patches)


def test_h5_without_a_classifier_group_is_refused(tmp_path, groups):
    h5_path = tmp_path / "no_classifier.h5"
    write_keras2_h5(h5_path, _with_classifier_groups(groups, []))
    with pytest.raises(weights.WeightsFileError, match=r"no classifier group.*\(1024, 521\).*\(521,\)"):
        weights.load_h5_weights(network.build_yamnet_network(), h5_path)


def test_h5_with_two_classifier_groups_is_refused(tmp_path, groups):
    h5_path = tmp_path / "two_classifiers.h5"
    write_keras2_h5(h5_path, _with_classifier_groups(groups, ["dense", "logits"]))
    with pytest.raises(weights.WeightsFileError, match=r"2 classifier groups.*\['dense', 'logits'\]"):
        weights.load_h5_weights(network.build_yamnet_network(), h5_path)


def test_h5_wrong_shape_is_reported(tmp_path, groups):
    broken = {name: dict(arrays) for name, arrays in groups.items()}
    broken["layer5/pointwise_conv"]["kernel"] = np.zeros((1, 1, 128, 255), np.float32)
    h5_path = tmp_path / "broken.h5"
    write_keras2_h5(h5_path, broken)
    with pytest.raises(weights.WeightsFileError, match=r"layer5/pointwise_conv/kernel.*\(1, 1, 128, 255\)"):
        weights.load_h5_weights(network.build_yamnet_network(), h5_path)


def test_h5_missing_group_is_reported(tmp_path, groups):
    incomplete = {name: arrays for name, arrays in groups.items() if name != "layer7/depthwise_conv/bn"}
    h5_path = tmp_path / "incomplete.h5"
    write_keras2_h5(h5_path, incomplete)
    with pytest.raises(weights.WeightsFileError, match="layer7/depthwise_conv/bn"):
        weights.load_h5_weights(network.build_yamnet_network(), h5_path)


def test_h5_missing_array_is_reported(tmp_path, groups):
    incomplete = {name: dict(arrays) for name, arrays in groups.items()}
    del incomplete["layer2/depthwise_conv/bn"]["moving_mean"]
    h5_path = tmp_path / "incomplete.h5"
    write_keras2_h5(h5_path, incomplete)
    with pytest.raises(weights.WeightsFileError, match=r"layer2/depthwise_conv/bn.*moving_mean"):
        weights.load_h5_weights(network.build_yamnet_network(), h5_path)


def test_h5_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.h5"):
        weights.load_h5_weights(network.build_yamnet_network(), tmp_path / "absent.h5")


def test_offline_weights_are_deterministic_and_seeded():
    first = yamnet_testing.offline_network()
    second = weights.build_yamnet("offline", yamnet_testing.SEED)
    for first_variable, second_variable in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(first_variable.numpy(), second_variable.numpy())
    other_seed = network.build_yamnet_network()
    weights.set_offline_weights(other_seed, seed=yamnet_testing.SEED + 1)
    assert not np.array_equal(
        first.get_layer("layer1_conv").kernel.numpy(), other_seed.get_layer("layer1_conv").kernel.numpy()
    )


def test_offline_embeddings_are_informative():
    yamnet_network = yamnet_testing.offline_network()
    clip_embeddings = []
    for clip in yamnet_testing.speech_like_clips():
        _, embeddings, _ = network.yamnet_frames(yamnet_network, tf.constant(clip))
        clip_embeddings.append(embeddings.numpy().mean(axis=0))
    clip_embeddings = np.stack(clip_embeddings)
    assert clip_embeddings.shape == (8, 1024)
    assert np.all(np.isfinite(clip_embeddings))
    spread = clip_embeddings.std(axis=0)
    assert spread.min() > 1e-3
    assert 0.01 < np.abs(clip_embeddings).mean() < 10.0


def test_offline_activations_stay_order_one():
    yamnet_network = yamnet_testing.offline_network()
    relu_names = ["layer1_relu"] + [f"layer{number}_pointwise_conv_relu" for number in range(2, 15)]
    layer_outputs = keras.Model(
        yamnet_network.input, [yamnet_network.get_layer(name).output for name in relu_names]
    )
    patches = weights.calibration_patches(yamnet_testing.CLIP_SEED)[:16]
    for name, activation in zip(relu_names, layer_outputs(patches), strict=True):
        mean_activation = float(np.mean(activation))
        assert 0.05 < mean_activation < 5.0, (name, mean_activation)


def test_offline_warning_is_logged_once_per_process(monkeypatch, caplog):
    monkeypatch.setattr(weights, "_offline_warning_logged", False)
    with caplog.at_level(logging.WARNING, logger=weights.__name__):
        assert weights.warn_offline_weights("seed 0")
        assert not weights.warn_offline_weights("seed 1")
    (record,) = [record for record in caplog.records if record.name == weights.__name__]
    assert "UNTRAINED" in record.getMessage() and "seed 0" in record.getMessage()
