"""Export of the served model: YAMNet and the accent classifier in one SavedModel.

The SavedModel has two explicit signatures:

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
from components.yamnet import contract

logger = logging.getLogger(__name__)

# File, under the SavedModel's assets.extra directory, listing the class names in id order.
CLASS_NAMES_FILENAME = "class_names.json"
ASSETS_EXTRA_DIRNAME = "assets.extra"

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
    signatures = {
        features.SERVING_SIGNATURE: module.serve_waveform.get_concrete_function(),
        features.EXAMPLES_SIGNATURE: module.serve_examples.get_concrete_function(),
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
