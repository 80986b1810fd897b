"""YAMNet's network in Keras 3: MobileNet v1 on 96 x 64 log-mel patches.

A port of ``yamnet.py`` of the published model. Keras 3 refuses '/' in layer
names, so the published layer ``layer2/depthwise_conv/bn`` is named
``layer2_depthwise_conv_bn`` here; ``h5_group_name`` maps one to the other.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from components.yamnet import frontend, params

# Names of the output tensors of the network.
SCORES_OUTPUT = "scores"
EMBEDDINGS_OUTPUT = "embeddings"
LOGITS_LAYER = "logits"


def weighted_layer_names() -> list[str]:
    """Returns the published names of the layers that hold weights, in network order.

    Returns:
        ``["layer1/conv", "layer1/conv/bn", "layer2/depthwise_conv", ..., "logits"]``
        (56 names: 55 convolution and batch-norm layers, then the classifier).
    """
    names: list[str] = []
    for layer_number, (kind, _, _, _) in enumerate(params.LAYER_DEFINITIONS, start=1):
        prefix = f"layer{layer_number}"
        if kind == "conv":
            names += [f"{prefix}/conv", f"{prefix}/conv/bn"]
        else:
            names += [
                f"{prefix}/depthwise_conv",
                f"{prefix}/depthwise_conv/bn",
                f"{prefix}/pointwise_conv",
                f"{prefix}/pointwise_conv/bn",
            ]
    return [*names, LOGITS_LAYER]


def keras_layer_name(published_name: str) -> str:
    """Returns the Keras layer name of a published layer name ('/' becomes '_')."""
    return published_name.replace("/", "_")


def _batch_norm(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(
        center=params.BATCHNORM_CENTER,
        scale=params.BATCHNORM_SCALE,
        epsilon=params.BATCHNORM_EPSILON,
        name=name,
    )


# How every YAMNet convolution is set up: "same" padding, and no bias (its batch norm centres it).
_UNBIASED = {"padding": "same", "use_bias": False}


def _normalized_relu(net: tf.Tensor, convolution: keras.layers.Layer, relu_name: str) -> tf.Tensor:
    """Applies a convolution, its batch norm (named after it, ``<name>_bn``) and a ReLU, as YAMNet does."""
    net = convolution(net)
    net = _batch_norm(f"{convolution.name}_bn")(net)
    return keras.layers.ReLU(name=relu_name)(net)


def build_yamnet_network(name: str = "yamnet") -> keras.Model:
    """Builds YAMNet's network (untrained) as a functional Keras model.

    Args:
        name: Name of the Keras model.

    Returns:
        A model from patches [B, 96, 64] to ``{"scores": [B, 521], "embeddings": [B, 1024]}``.
    """
    patches = keras.Input(shape=(params.PATCH_FRAMES, params.PATCH_BANDS), name="patches")
    net = keras.layers.Reshape((params.PATCH_FRAMES, params.PATCH_BANDS, 1), name="reshape")(patches)
    for layer_number, (kind, kernel_size, stride, filters) in enumerate(params.LAYER_DEFINITIONS, start=1):
        prefix = f"layer{layer_number}"
        if kind == "conv":
            convolution = keras.layers.Conv2D(
                filters, kernel_size, strides=stride, name=f"{prefix}_conv", **_UNBIASED
            )
            net = _normalized_relu(net, convolution, relu_name=f"{prefix}_relu")
        else:
            depthwise = keras.layers.DepthwiseConv2D(
                kernel_size, strides=stride, depth_multiplier=1, name=f"{prefix}_depthwise_conv", **_UNBIASED
            )
            net = _normalized_relu(net, depthwise, relu_name=f"{prefix}_depthwise_conv_relu")
            pointwise = keras.layers.Conv2D(
                filters, (1, 1), strides=1, name=f"{prefix}_pointwise_conv", **_UNBIASED
            )
            net = _normalized_relu(net, pointwise, relu_name=f"{prefix}_pointwise_conv_relu")
    embeddings = keras.layers.GlobalAveragePooling2D(name=EMBEDDINGS_OUTPUT)(net)
    logits = keras.layers.Dense(params.NUM_CLASSES, use_bias=True, name=LOGITS_LAYER)(embeddings)
    scores = keras.layers.Activation("sigmoid", name=SCORES_OUTPUT)(logits)
    return keras.Model(
        inputs=patches, outputs={SCORES_OUTPUT: scores, EMBEDDINGS_OUTPUT: embeddings}, name=name
    )


def embed_patches(network: keras.Model, patches: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs the network (inference mode) on a batch of patches.

    Args:
        network: A model from ``build_yamnet_network``.
        patches: [B, 96, 64] float32 log-mel patches.

    Returns:
        ``(scores [B, 521], embeddings [B, 1024])``.
    """
    outputs = network(patches, training=False)
    return outputs[SCORES_OUTPUT], outputs[EMBEDDINGS_OUTPUT]


def yamnet_frames(network: keras.Model, waveform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Runs front end and network on one waveform, like the Hub model's ``__call__``.

    Args:
        network: A model from ``build_yamnet_network``.
        waveform: 1-D float32 16 kHz waveform in [-1, 1], any length.

    Returns:
        ``(scores [N, 521], embeddings [N, 1024], log_mel_spectrogram [M, 64])``.
    """
    spectrogram, patches = frontend.waveform_to_log_mel_and_patches(waveform)
    scores, embeddings = embed_patches(network, patches)
    return scores, embeddings, spectrogram
