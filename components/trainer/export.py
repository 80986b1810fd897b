"""Export of the served model: YAMNet and the accent classifier in one SavedModel.

The SavedModel has three explicit signatures, whatever the form of YAMNet:

* ``serving_default`` takes one raw 16 kHz mono waveform of any length, runs
  YAMNet on it, classifies each 0.96 s patch, and returns the clip-level class
  probabilities (mean over speech patches), the top accent's name and the
  per-patch probabilities. Clients send audio and nothing else. The signature
  itself refuses a waveform with a NaN or infinite sample, or a sample outside
  ``[-MAX_ABS_AMPLITUDE, MAX_ABS_AMPLITUDE]`` (full scale, 1.0, plus
  ``AMPLITUDE_TOLERANCE``), with ``InvalidArgumentError``: TF Serving and the
  project's server both answer INVALID_ARGUMENT instead of a wrong accent.
* ``from_examples`` takes serialized per-patch tf.Examples and returns the
  classifier's probabilities; TFMA uses it in the Evaluator.
* ``serving_batch`` (``BATCH_SIGNATURE``) classifies many waveforms in one
  call, for servers that batch concurrent requests: ``waveforms`` float32
  ``[batch, max_samples]`` (each row zero-padded, or padded with anything, at
  its end) and ``num_samples`` int32 ``[batch]`` (each row's true length) to
  ``class_probabilities`` ``[batch, num_classes]``, ``accent`` ``[batch]``,
  ``patch_probabilities`` ``[batch, max_patches, num_classes]`` (zeros beyond
  each clip's patches) and ``num_patches`` ``[batch]``. Row ``i`` equals
  ``serving_default`` on ``waveforms[i, :num_samples[i]]``. With the project's
  YAMNet export (``components.yamnet.export``, which has ``embed_patches``),
  YAMNet's front end runs on the padded rows and the network on the valid
  patches of every row at once; with a YAMNet that has only ``__call__`` (the
  TF Hub model, tuple or dict form) YAMNet runs once per row (``tf.map_fn``),
  each row cut to its ``num_samples``; either way the classifier runs on the
  patches of every row at once. Every input and output has the batch as its
  0th dimension, as TF Serving's batching (``--enable_batching``, as
  ``kubernetes/`` deploys it) requires: TF Serving then batches every
  signature, and only this one can be batched.

The class names are stored in the model as the string variable ``class_names``
and written to ``assets.extra/class_names.json``.
"""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Sequence

import keras
import tensorflow as tf

from components import features
from components.serving import batch_signature
from components.yamnet import contract, frontend, network, params
from components.yamnet import export as yamnet_export

logger = logging.getLogger(__name__)

# File, under the SavedModel's assets.extra directory, listing the class names in id order.
CLASS_NAMES_FILENAME = "class_names.json"
ASSETS_EXTRA_DIRNAME = "assets.extra"

# The batched signature (see the module docstring): its name, inputs and extra output.
BATCH_SIGNATURE = batch_signature.BATCH_SIGNATURE
WAVEFORMS_INPUT_KEY = batch_signature.WAVEFORMS_INPUT_KEY
NUM_SAMPLES_INPUT_KEY = batch_signature.NUM_SAMPLES_INPUT_KEY
NUM_PATCHES_OUTPUT_KEY = batch_signature.NUM_PATCHES_OUTPUT_KEY

# Waveforms are float samples in [-1, 1]. The tolerance admits the rounding of format conversions
# (a 16-bit sample of -32768 scaled by 1/32767 is -1.00003) and nothing a real recording gives: a
# client whose resampler overshoots full scale must clip to [-1, 1], as the project's client does.
AMPLITUDE_TOLERANCE = 1e-3
MAX_ABS_AMPLITUDE = 1.0 + AMPLITUDE_TOLERANCE

NON_FINITE_MESSAGE = "waveform has NaN or Inf samples; send finite float samples in [-1, 1]"
AMPLITUDE_MESSAGE = (
    f"waveform has samples outside [-1, 1] (beyond the tolerance of {AMPLITUDE_TOLERANCE:g}); "
    "send float samples in [-1, 1] (clip or rescale them). Largest |sample|:"
)


def check_waveform(waveform: tf.Tensor) -> tf.Tensor:
    """Returns the waveform once it is known to be finite and within full scale.

    Runs inside the serving signature, so every server of the SavedModel refuses
    bad audio alike.

    Args:
        waveform: float32 ``[num_samples]``.

    Returns:
        ``waveform``, with the checks as control dependencies.

    Raises:
        tf.errors.InvalidArgumentError: When run on a waveform with a NaN or
            infinite sample, or a sample whose magnitude exceeds ``MAX_ABS_AMPLITUDE``.
    """
    finite = tf.debugging.assert_all_finite(waveform, NON_FINITE_MESSAGE)
    largest = tf.reduce_max(tf.abs(finite))
    in_range = tf.debugging.Assert(largest <= MAX_ABS_AMPLITUDE, [AMPLITUDE_MESSAGE, largest], summarize=1)
    with tf.control_dependencies([in_range]):
        return tf.identity(finite)


class AccentServingModule(tf.Module):
    """The served model: YAMNet embeddings followed by the accent classifier.

    Attributes:
        yamnet: The loaded YAMNet SavedModel, tuple or dict form (see ``contract.call_yamnet``).
        classifier: The trained Keras classifier of 1024-d embeddings.
        class_names: String variable of the class names, in id order.
    """

    def __init__(self, yamnet: tf.Module, classifier: keras.Model, class_names: Sequence[str]) -> None:
        """Wraps YAMNet and the classifier.

        Args:
            yamnet: A loaded YAMNet SavedModel: ``yamnet(waveform)`` returns the TF Hub tuple
                ``(scores, embeddings, log_mel)`` or the official export's dict (``contract.call_yamnet``).
            classifier: A Keras model mapping ``[batch, 1024]`` embeddings to ``[batch, num_classes]``
                probabilities.
            class_names: The label vocabulary, in id order; its length is the classifier's output size.

        Raises:
            ValueError: If ``class_names`` is empty.
        """
        super().__init__(name="accent_serving")
        if not class_names:
            raise ValueError("class_names must not be empty")
        self.yamnet = yamnet
        self.classifier = classifier
        self.class_names = tf.Variable(
            list(class_names), trainable=False, dtype=tf.string, name="class_names"
        )
        self._num_classes = len(class_names)
        self._not_speech_id = features.not_speech_class_id(class_names)

    def classify_embeddings(self, embeddings: tf.Tensor) -> tf.Tensor:
        """Returns the classifier's probabilities of a batch of embeddings.

        Args:
            embeddings: float32 ``[batch, 1024]``.

        Returns:
            float32 ``[batch, num_classes]``.
        """
        return tf.ensure_shape(self.classifier(embeddings, training=False), [None, self._num_classes])

    def clip_probabilities(self, patch_probabilities: tf.Tensor) -> tf.Tensor:
        """Averages patch probabilities over the clip's speech patches.

        A patch is speech when its most probable class is not "Not a speech".
        When no patch is speech the mean is over every patch, and when there is
        no patch at all the probabilities are uniform.

        Args:
            patch_probabilities: float32 ``[num_patches, num_classes]``.

        Returns:
            float32 ``[num_classes]``.
        """
        is_speech = tf.not_equal(tf.argmax(patch_probabilities, axis=1), self._not_speech_id)
        speech_probabilities = tf.boolean_mask(patch_probabilities, is_speech)
        num_patches = tf.shape(patch_probabilities)[0]
        uniform = tf.fill([self._num_classes], 1.0 / self._num_classes)
        return tf.case(
            [
                (tf.reduce_any(is_speech), lambda: tf.reduce_mean(speech_probabilities, axis=0)),
                (num_patches > 0, lambda: tf.reduce_mean(patch_probabilities, axis=0)),
            ],
            default=lambda: uniform,
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=features.WAVEFORM_INPUT_KEY)])
    def serve_waveform(self, waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        """Classifies one 16 kHz mono waveform.

        Args:
            waveform: float32 ``[num_samples]`` in [-1, 1], any length (YAMNet pads short ones).

        Returns:
            ``class_probabilities`` float32 ``[num_classes]``, ``accent`` string scalar and
            ``patch_probabilities`` float32 ``[num_patches, num_classes]``.

        Raises:
            tf.errors.InvalidArgumentError: If a sample is NaN, infinite or beyond
                ``MAX_ABS_AMPLITUDE`` (see ``check_waveform``).
        """
        _, embeddings, _ = contract.call_yamnet(self.yamnet, check_waveform(waveform))
        patch_probabilities = self.classify_embeddings(embeddings)
        class_probabilities = tf.ensure_shape(
            self.clip_probabilities(patch_probabilities), [self._num_classes]
        )
        accent = tf.gather(self.class_names, tf.argmax(class_probabilities, output_type=tf.int32))
        return {
            features.CLASS_PROBABILITIES_OUTPUT_KEY: class_probabilities,
            features.ACCENT_OUTPUT_KEY: accent,
            features.PATCH_PROBABILITIES_OUTPUT_KEY: patch_probabilities,
        }

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name=WAVEFORMS_INPUT_KEY),
            tf.TensorSpec([None], tf.int32, name=NUM_SAMPLES_INPUT_KEY),
        ]
    )
    def serve_waveform_batch(self, waveforms: tf.Tensor, num_samples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Classifies many 16 kHz mono waveforms at once; row ``i`` equals ``serve_waveform`` on its clip.

        Args:
            waveforms: float32 ``[batch, max_samples]``; row ``i`` holds its clip in its first
                ``num_samples[i]`` samples, and whatever padding after them.
            num_samples: int32 ``[batch]``, each clip's length, from 0 to ``max_samples``.

        Returns:
            ``class_probabilities`` float32 ``[batch, num_classes]``, ``accent`` string ``[batch]``,
            ``patch_probabilities`` float32 ``[batch, max_patches, num_classes]`` (zero rows beyond
            a clip's patches) and ``num_patches`` int32 ``[batch]``.

        Raises:
            tf.errors.InvalidArgumentError: If a length is outside ``[0, max_samples]``, or a
                clip's sample is NaN, infinite or beyond ``MAX_ABS_AMPLITUDE``.
        """
        width = tf.shape(waveforms)[1]
        length_ok = tf.reduce_all((num_samples >= 0) & (num_samples <= width))
        length_check = tf.debugging.Assert(
            length_ok, ["num_samples must be between 0 and the waveforms' width", width], summarize=1
        )
        with tf.control_dependencies([length_check]):
            is_sample = tf.range(width)[tf.newaxis, :] < num_samples[:, tf.newaxis]
        clips = check_waveform(tf.where(is_sample, waveforms, tf.zeros_like(waveforms)))
        if hasattr(self.yamnet, yamnet_export.EMBED_PATCHES_FUNCTION):
            embeddings, patch_counts = self._embed_patches_of_every_row(clips, num_samples)
        else:
            embeddings, patch_counts = self._embed_row_by_row(clips, num_samples)
        probabilities = self.classify_embeddings(embeddings)
        max_patches = tf.reduce_max(tf.concat([patch_counts, [0]], axis=0))
        is_patch = tf.range(max_patches)[tf.newaxis, :] < patch_counts[:, tf.newaxis]
        batch_size = tf.shape(waveforms)[0]
        patch_probabilities = tf.scatter_nd(
            tf.where(is_patch),
            probabilities,
            tf.cast(tf.stack([batch_size, max_patches, self._num_classes]), tf.int64),
        )
        is_speech = is_patch & tf.not_equal(tf.argmax(patch_probabilities, axis=2), self._not_speech_id)
        speech_counts = tf.reduce_sum(tf.cast(is_speech, tf.float32), axis=1, keepdims=True)
        speech_sums = tf.reduce_sum(
            patch_probabilities * tf.cast(is_speech, tf.float32)[:, :, tf.newaxis], axis=1
        )
        patch_sums = tf.reduce_sum(patch_probabilities, axis=1)
        counts = tf.cast(patch_counts, tf.float32)[:, tf.newaxis]
        class_probabilities = tf.where(
            speech_counts > 0,
            speech_sums / tf.maximum(speech_counts, 1.0),
            patch_sums / tf.maximum(counts, 1.0),
        )
        accent = tf.gather(self.class_names, tf.argmax(class_probabilities, axis=1, output_type=tf.int32))
        return {
            features.CLASS_PROBABILITIES_OUTPUT_KEY: class_probabilities,
            features.ACCENT_OUTPUT_KEY: accent,
            features.PATCH_PROBABILITIES_OUTPUT_KEY: patch_probabilities,
            NUM_PATCHES_OUTPUT_KEY: patch_counts,
        }

    def _embed_patches_of_every_row(
        self, clips: tf.Tensor, num_samples: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """YAMNet embeddings of every row's patches, the network run on all of them at once.

        Needs the project's YAMNet export, which has ``embed_patches``: YAMNet's
        front end runs on the padded rows, the network on the valid patches only.

        Args:
            clips: float32 ``[batch, width]``, each row zero beyond its clip.
            num_samples: int32 ``[batch]``, each clip's length.

        Returns:
            The embeddings float32 ``[total_patches, 1024]`` of row 0's patches, then row 1's, ...,
            and each row's patch count, int32 ``[batch]``.
        """
        width = tf.shape(clips)[1]
        # YAMNet's zero padding of the longest clip; shorter rows are zeros beyond their clip, so
        # their leading frames are their own front end's frames.
        longest = tf.reduce_max(tf.concat([num_samples, [0]], axis=0))
        hops = (tf.maximum(0, longest - params.PATCH_WINDOW_SAMPLES) + params.PATCH_HOP_SAMPLES - 1) // (
            params.PATCH_HOP_SAMPLES
        )
        padded_width = params.PATCH_WINDOW_SAMPLES + hops * params.PATCH_HOP_SAMPLES
        clips = tf.pad(clips, [[0, 0], [0, tf.maximum(0, padded_width - width)]])[:, :padded_width]
        spectrograms = frontend.log_mel_spectrogram(clips)
        patches = tf.signal.frame(
            spectrograms, frame_length=params.PATCH_FRAMES, frame_step=params.PATCH_HOP_FRAMES, axis=1
        )
        patch_counts = 1 + (
            tf.maximum(0, num_samples - params.PATCH_WINDOW_SAMPLES) + params.PATCH_HOP_SAMPLES - 1
        ) // (params.PATCH_HOP_SAMPLES)
        is_patch = tf.range(tf.shape(patches)[1])[tf.newaxis, :] < patch_counts[:, tf.newaxis]
        valid_patches = tf.boolean_mask(patches, is_patch)
        return self.yamnet.embed_patches(valid_patches)[network.EMBEDDINGS_OUTPUT], patch_counts

    def _embed_row_by_row(self, clips: tf.Tensor, num_samples: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """YAMNet embeddings of every row's patches, YAMNet called once per row.

        For a YAMNet with only ``__call__`` (the TF Hub model, or the official
        export's dict form): each row is cut to its ``num_samples`` and run
        through YAMNet exactly as ``serve_waveform`` runs it.

        Args:
            clips: float32 ``[batch, width]``, each row zero beyond its clip.
            num_samples: int32 ``[batch]``, each clip's length.

        Returns:
            The embeddings float32 ``[total_patches, 1024]`` of row 0's patches, then row 1's, ...,
            and each row's patch count, int32 ``[batch]``.
        """

        def embed_row(row: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
            clip, length = row
            _, embeddings, _ = contract.call_yamnet(self.yamnet, clip[:length])
            return tf.ensure_shape(embeddings, [None, features.EMBEDDING_SIZE])

        row_embeddings = tf.map_fn(
            embed_row,
            (clips, num_samples),
            fn_output_signature=tf.RaggedTensorSpec(
                shape=[None, features.EMBEDDING_SIZE], dtype=tf.float32, ragged_rank=0
            ),
        )
        return row_embeddings.flat_values, tf.cast(row_embeddings.row_lengths(), tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT_KEY)])
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Classifies serialized per-patch tf.Examples.

        Args:
            examples: string ``[batch]`` of serialized tf.Examples with an ``embedding`` feature.

        Returns:
            ``probabilities`` float32 ``[batch, num_classes]``.
        """
        parsed = tf.io.parse_example(
            examples,
            {features.EMBEDDING_KEY: tf.io.FixedLenFeature([features.EMBEDDING_SIZE], tf.float32)},
        )
        return {features.PROBABILITIES_OUTPUT_KEY: self.classify_embeddings(parsed[features.EMBEDDING_KEY])}


def export_serving_model(
    classifier: keras.Model,
    yamnet_path: str | pathlib.Path,
    class_names: Sequence[str],
    output_dir: str | pathlib.Path,
) -> str:
    """Writes the served SavedModel (YAMNet + classifier) with explicit signatures.

    Args:
        classifier: The trained classifier of 1024-d embeddings.
        yamnet_path: Directory of a YAMNet SavedModel, tuple or dict form (``contract.call_yamnet``).
        class_names: The label vocabulary, in id order.
        output_dir: Where to write the SavedModel (``FnArgs.serving_model_dir``).

    Returns:
        The SavedModel directory (a local path or a remote URI such as ``gs://...``).

    Raises:
        ValueError: If the classifier's output size differs from the number of class names.
    """
    output_size = classifier.output_shape[-1]
    if output_size != len(class_names):
        raise ValueError(
            f"The classifier has {output_size} outputs but there are {len(class_names)} class names"
        )
    logger.info("Loading YAMNet from %s", yamnet_path)
    yamnet = tf.saved_model.load(str(yamnet_path))
    module = AccentServingModule(yamnet, classifier, class_names)
    if not hasattr(yamnet, yamnet_export.EMBED_PATCHES_FUNCTION):
        logger.info(
            "YAMNet at %s has no %s function: %s runs YAMNet once per row",
            yamnet_path,
            yamnet_export.EMBED_PATCHES_FUNCTION,
            BATCH_SIGNATURE,
        )
    signatures = {
        features.SERVING_SIGNATURE: module.serve_waveform.get_concrete_function(),
        features.EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function(),
        BATCH_SIGNATURE: module.serve_waveform_batch.get_concrete_function(),
    }
    output_dir = str(output_dir)
    logger.info("Saving the served model to %s", output_dir)
    tf.saved_model.save(module, output_dir, signatures=signatures)
    assets_extra = f"{output_dir.rstrip('/')}/{ASSETS_EXTRA_DIRNAME}"
    tf.io.gfile.makedirs(assets_extra)
    with tf.io.gfile.GFile(f"{assets_extra}/{CLASS_NAMES_FILENAME}", "w") as class_names_file:
        class_names_file.write(json.dumps(list(class_names), indent=2) + "\n")
    return output_dir


def read_served_class_names(saved_model_dir: str | pathlib.Path) -> list[str]:
    """Reads the class names written beside an exported served model (``assets.extra/class_names.json``).

    Args:
        saved_model_dir: Directory written by ``export_serving_model``.

    Returns:
        The class names, in id order.
    """
    path = f"{str(saved_model_dir).rstrip('/')}/{ASSETS_EXTRA_DIRNAME}/{CLASS_NAMES_FILENAME}"
    with tf.io.gfile.GFile(path) as class_names_file:
        return json.loads(class_names_file.read())
