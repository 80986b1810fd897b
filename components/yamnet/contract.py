"""The call contract of a YAMNet SavedModel: one waveform in, three outputs out.

YAMNet SavedModels come in two forms, and ``call_yamnet`` accepts both:

* the tuple form of the TF Hub / Kaggle model and of the project's export:
  ``model(waveform) -> (scores, embeddings, log_mel_spectrogram)``;
* the dict form of today's official ``export.py`` (tensorflow/models,
  research/audioset/yamnet): ``model(waveform) -> {"predictions",
  "embeddings", "log_mel_spectrogram"}`` (a ``"scores"`` key is accepted for
  the scores too).

Every caller of a loaded YAMNet's ``__call__`` (the embedder, the served
model's export) goes through ``call_yamnet``; it works eagerly and while
tracing a ``tf.function``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

# Keys of the dict form, by output; the first key of each that is present is used.
SCORES_KEYS = ("predictions", "scores")
EMBEDDINGS_KEYS = ("embeddings",)
LOG_MEL_KEYS = ("log_mel_spectrogram",)

NUM_OUTPUTS = 3


def _pick(outputs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in outputs:
            return outputs[key]
    raise ValueError(
        f"The YAMNet model returned a dict without {' or '.join(repr(key) for key in keys)}: "
        f"it has keys {sorted(outputs)}. Expected the keys {SCORES_KEYS[0]!r}, {EMBEDDINGS_KEYS[0]!r} "
        f"and {LOG_MEL_KEYS[0]!r} (official export.py) or a tuple (scores, embeddings, log_mel_spectrogram)"
    )


def unpack_outputs(outputs: Any) -> tuple[Any, Any, Any]:
    """Returns ``(scores, embeddings, log_mel_spectrogram)`` from either output form.

    Args:
        outputs: What a YAMNet SavedModel's ``__call__`` returned: a tuple or
            list of three tensors, or a dict with the keys ``predictions`` (or
            ``scores``), ``embeddings`` and ``log_mel_spectrogram``. Extra
            dict keys, such as ``logits``, are ignored.

    Returns:
        ``(scores [N, 521], embeddings [N, 1024], log_mel_spectrogram [M, 64])``.

    Raises:
        ValueError: If ``outputs`` is neither form.
    """
    if isinstance(outputs, Mapping):
        return (
            _pick(outputs, SCORES_KEYS),
            _pick(outputs, EMBEDDINGS_KEYS),
            _pick(outputs, LOG_MEL_KEYS),
        )
    if isinstance(outputs, Sequence) and not isinstance(outputs, (str, bytes)):
        if len(outputs) != NUM_OUTPUTS:
            raise ValueError(
                f"A YAMNet model returning a tuple must return {NUM_OUTPUTS} outputs "
                f"(scores, embeddings, log_mel_spectrogram); got {len(outputs)}"
            )
        scores, embeddings, log_mel_spectrogram = outputs
        return scores, embeddings, log_mel_spectrogram
    raise ValueError(
        "A YAMNet model must return a tuple (scores, embeddings, log_mel_spectrogram) or a dict with "
        f"the keys {SCORES_KEYS[0]!r}, {EMBEDDINGS_KEYS[0]!r} and {LOG_MEL_KEYS[0]!r}; "
        f"got a {type(outputs).__name__}"
    )


def call_yamnet(model: Any, waveform: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Runs a loaded YAMNet SavedModel of either form on one waveform.

    Args:
        model: A loaded YAMNet SavedModel (``tf.saved_model.load`` or ``hub.load``).
        waveform: 1-D float32 16 kHz waveform in [-1, 1].

    Returns:
        ``(scores [N, 521], embeddings [N, 1024], log_mel_spectrogram [M, 64])``.

    Raises:
        ValueError: If the model's outputs are neither form.
    """
    return unpack_outputs(model(waveform))
