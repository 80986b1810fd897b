"""Feature keys and the label vocabulary shared by every component.

One tf.Example is written per 0.96 s YAMNet patch. Its features are named by
the constants below; the schema in ``schemas/schema.pbtxt`` describes the same
keys. Class ids are positions in ``DEFAULT_CLASS_NAMES`` and stay stable from
run to run, whatever classes a particular corpus happens to contain.
"""

from __future__ import annotations

from collections.abc import Sequence

# Per-patch tf.Example feature keys.
EMBEDDING_KEY = "embedding"
LABEL_KEY = "label"
ACCENT_KEY = "accent"
SPEAKER_ID_KEY = "speaker_id"
GENDER_KEY = "gender"
CLIP_ID_KEY = "clip_id"
PATCH_INDEX_KEY = "patch_index"
IS_SPEECH_KEY = "is_speech"

# Size of one YAMNet embedding.
EMBEDDING_SIZE = 1024

# Filename prefix of each OpenSLR-83 accent, mapped to the class name.
ACCENT_CODE_TO_NAME: dict[str, str] = {
    "ir": "Irish",
    "mi": "Midlands",
    "no": "Northern",
    "sc": "Scottish",
    "so": "Southern",
    "we": "Welsh",
}

# Label given to patches that are not speech.
NOT_SPEECH_CLASS_NAME = "Not a speech"

# The reference example's seven classes, in label-id order.
DEFAULT_CLASS_NAMES: tuple[str, ...] = (
    *ACCENT_CODE_TO_NAME.values(),
    NOT_SPEECH_CLASS_NAME,
)

# Gender letter in an OpenSLR-83 filename, mapped to the value stored.
GENDER_CODE_TO_NAME: dict[str, str] = {"m": "male", "f": "female"}

# Split names used by the Examples artifact.
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"


def class_id(class_name: str, class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES) -> int:
    """Returns the label id of a class name.

    Args:
        class_name: One of ``class_names``.
        class_names: The label vocabulary, in id order.

    Returns:
        The position of ``class_name`` in ``class_names``.

    Raises:
        ValueError: If the class is not in the vocabulary.
    """
    try:
        return class_names.index(class_name)
    except ValueError:
        raise ValueError(f"Unknown class {class_name!r}; the vocabulary is {list(class_names)}") from None


# What ``not_speech_class_id`` returns for a vocabulary without "Not a speech": no label has this id.
NO_CLASS_ID = -1


def not_speech_class_id(class_names: Sequence[str] = DEFAULT_CLASS_NAMES) -> int:
    """Returns the label id of "Not a speech", or ``NO_CLASS_ID`` (-1) when the vocabulary lacks it.

    Code that sets non-speech patches aside compares labels with this id; with
    -1 no label matches, so every patch counts as speech.

    Args:
        class_names: The label vocabulary, in id order.

    Returns:
        The position of ``NOT_SPEECH_CLASS_NAME`` in ``class_names``, or -1.
    """
    names = list(class_names)
    return names.index(NOT_SPEECH_CLASS_NAME) if NOT_SPEECH_CLASS_NAME in names else NO_CLASS_ID


# The served model's contract (signature "serving_default"): clients send one
# 16 kHz mono float32 waveform of any length, and get back clip-level class
# probabilities, the top accent's name, and per-patch probabilities.
SERVING_SIGNATURE = "serving_default"
WAVEFORM_INPUT_KEY = "waveform"
CLASS_PROBABILITIES_OUTPUT_KEY = "class_probabilities"
ACCENT_OUTPUT_KEY = "accent"
PATCH_PROBABILITIES_OUTPUT_KEY = "patch_probabilities"

# Signature that scores serialized tf.Examples, used by TFMA in the Evaluator.
EXAMPLES_SIGNATURE = "from_examples"
EXAMPLES_INPUT_KEY = "examples"
PROBABILITIES_OUTPUT_KEY = "probabilities"

# Sample rate of every waveform the models see.
SAMPLE_RATE = 16000
