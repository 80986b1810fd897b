"""Batched YAMNet embedding of many clips, for the Beam embedding step and benchmarks.

With a SavedModel from ``export.export_yamnet`` (it has ``embed_patches``),
the clips of a call go through the front end together, in one graph call
(``frontend.batch_log_mel_patches``: YAMNet's fixed signal processing, the
code the export also uses), and their patches reach the network in batches of
up to ``batch_patches``, because throughput depends on batching. With the real Hub model, which has no
such function, or with a dict-form YAMNet (``contract.call_yamnet`` reads
both forms), the model runs once per clip. Both give the same numbers as
calling ``model(waveform)`` on each clip.

Beware offline weights: they are untrained, so ``top_class_is_speech`` means
nothing with them (``YamnetEmbedder.pretrained`` is False); use an energy rule
on ``ClipEmbedding.patch_levels_dbfs`` instead.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import weakref
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from components.yamnet import contract, defaults, export, frontend, network, params
from components.yamnet import weights as yamnet_weights

logger = logging.getLogger(__name__)

# Level given to digital silence (an RMS of zero), in dB relative to full scale.
SILENCE_LEVEL_DBFS = -120.0


def top_class_is_speech(scores: np.ndarray) -> np.ndarray:
    """Returns, per patch, whether YAMNet's top class is Speech (class 0).

    Meaningful with real YAMNet only: with offline (untrained) weights the top
    class says nothing about speech.

    Args:
        scores: [n, 521] YAMNet scores.

    Returns:
        A bool array [n].
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != params.NUM_CLASSES:
        raise ValueError(f"scores must have shape [n, {params.NUM_CLASSES}], got {scores.shape}")
    return np.argmax(scores, axis=1) == params.SPEECH_CLASS_INDEX


def patch_levels_dbfs(waveform: np.ndarray) -> np.ndarray:
    """Returns the RMS level of the raw audio under each YAMNet patch.

    Patch ``i`` covers samples ``[i * 7680, i * 7680 + 15600)`` of the
    zero-padded waveform (see ``frontend.pad_waveform``).

    Args:
        waveform: 1-D 16 kHz waveform in [-1, 1].

    Returns:
        A float32 array [n] of ``20 * log10(rms)``, at least -120 dBFS (0 dBFS
        is the RMS of a full-scale square wave).
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    padded = np.zeros(params.padded_length(waveform.shape[0]))
    padded[: waveform.shape[0]] = waveform
    starts = np.arange(params.num_patches(waveform.shape[0])) * params.PATCH_HOP_SAMPLES
    squares = np.concatenate([[0.0], np.cumsum(padded**2)])
    mean_squares = (
        squares[starts + params.PATCH_WINDOW_SAMPLES] - squares[starts]
    ) / params.PATCH_WINDOW_SAMPLES
    rms = np.sqrt(np.maximum(mean_squares, 0.0))
    floor = 10.0 ** (SILENCE_LEVEL_DBFS / 20.0)
    return (20.0 * np.log10(np.maximum(rms, floor))).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ClipEmbedding:
    """YAMNet's outputs for one clip, one row per 0.96 s patch.

    Attributes:
        embeddings: float32 [n, 1024].
        scores: float32 [n, 521].
        patch_levels_dbfs: float32 [n], RMS level of the raw audio under each patch.
    """

    embeddings: np.ndarray
    scores: np.ndarray
    patch_levels_dbfs: np.ndarray

    @property
    def num_patches(self) -> int:
        """Number of patches of the clip."""
        return int(self.embeddings.shape[0])

    @property
    def top_class_is_speech(self) -> np.ndarray:
        """Bool [n]: whether YAMNet's top class is Speech (meaningless with offline weights)."""
        return top_class_is_speech(self.scores)


def _as_waveform(waveform: np.ndarray, clip_index: int) -> np.ndarray:
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"Waveform {clip_index} must be 1-D (mono samples), got shape {waveform.shape}")
    return waveform


class YamnetEmbedder:
    """Embeds clips with a YAMNet SavedModel, batching patches across clips.

    Args:
        saved_model_dir: A YAMNet SavedModel directory (see ``handle.resolve_yamnet_handle``).
        batch_patches: Most patches sent to the network in one call.

    Raises:
        ValueError: If ``batch_patches`` is not positive.
    """

    def __init__(
        self, saved_model_dir: str | os.PathLike, batch_patches: int = defaults.EMBEDDING_BATCH_PATCHES
    ):
        if batch_patches < 1:
            raise ValueError(f"batch_patches must be >= 1, got {batch_patches}")
        self.saved_model_dir = os.fspath(saved_model_dir)
        self.batch_patches = batch_patches
        self.weights_info: export.WeightsInfo = export.describe_weights(saved_model_dir)
        self._model = tf.saved_model.load(self.saved_model_dir)
        self._batch_log_mel_patches = tf.function(
            frontend.batch_log_mel_patches,
            input_signature=frontend.BATCH_LOG_MEL_PATCHES_SIGNATURE,
            autograph=False,
        )
        _LIVE_EMBEDDERS.add(self)
        self.batched = hasattr(self._model, export.EMBED_PATCHES_FUNCTION) and hasattr(
            self._model, export.LOG_MEL_PATCHES_FUNCTION
        )
        if not self.weights_info.pretrained:
            yamnet_weights.warn_offline_weights(f"{self.weights_info.describe()}, at {self.saved_model_dir}")
        logger.info(
            "YAMNet embedder on %s (%s, batches of up to %d patches)",
            self.saved_model_dir,
            "batched across clips" if self.batched else "one call per clip",
            batch_patches,
        )

    def release(self) -> None:
        """Drops the loaded model and its functions; the embedder cannot embed afterwards."""
        self._model = None
        self._batch_log_mel_patches = None

    @property
    def pretrained(self) -> bool:
        """Whether the weights are real, trained YAMNet weights (False for offline weights)."""
        return self.weights_info.pretrained

    def embed_waveforms(self, waveforms: Sequence[np.ndarray]) -> list[ClipEmbedding]:
        """Embeds clips, batching their patches together when the model allows it.

        Args:
            waveforms: 1-D 16 kHz mono float waveforms in [-1, 1], any lengths.

        Returns:
            One ``ClipEmbedding`` per waveform, in order; each equals the
            per-clip ``model(waveform)`` outputs.

        Raises:
            ValueError: If a waveform is not 1-D.
            RuntimeError: If the embedder was released.
        """
        if self._model is None:
            raise RuntimeError(f"The YAMNet embedder of {self.saved_model_dir} was released")
        clips = [_as_waveform(waveform, clip_index) for clip_index, waveform in enumerate(waveforms)]
        if not clips:
            return []
        if self.batched:
            scores, embeddings = self._embed_batched(clips)
        else:
            scores, embeddings = self._embed_per_clip(clips)
        return [
            ClipEmbedding(
                embeddings=clip_embeddings,
                scores=clip_scores,
                patch_levels_dbfs=patch_levels_dbfs(clip),
            )
            for clip, clip_scores, clip_embeddings in zip(clips, scores, embeddings, strict=True)
        ]

    def _embed_per_clip(self, clips: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        scores: list[np.ndarray] = []
        embeddings: list[np.ndarray] = []
        for clip in clips:
            clip_scores, clip_embeddings, _ = contract.call_yamnet(self._model, tf.constant(clip))
            scores.append(clip_scores.numpy().astype(np.float32))
            embeddings.append(clip_embeddings.numpy().astype(np.float32))
        return scores, embeddings

    def _embed_batched(self, clips: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        signal, patch_frame_starts, patch_counts = frontend.concatenate_clips(clips)
        all_patches = self._batch_log_mel_patches(tf.constant(signal), tf.constant(patch_frame_starts))
        batch_scores: list[np.ndarray] = []
        batch_embeddings: list[np.ndarray] = []
        for start in range(0, int(all_patches.shape[0]), self.batch_patches):
            outputs = self._model.embed_patches(all_patches[start : start + self.batch_patches])
            batch_scores.append(outputs[network.SCORES_OUTPUT].numpy())
            batch_embeddings.append(outputs[network.EMBEDDINGS_OUTPUT].numpy())
        boundaries = np.cumsum(patch_counts)[:-1]
        scores = np.split(np.concatenate(batch_scores, axis=0), boundaries)
        embeddings = np.split(np.concatenate(batch_embeddings, axis=0), boundaries)
        return scores, embeddings


# Embedders still alive when the interpreter exits (Beam's shared cache keeps the last one), released
# while TensorFlow can still free their functions: freed during interpreter teardown instead, each
# function prints an ignored TypeError.
_LIVE_EMBEDDERS: weakref.WeakSet[YamnetEmbedder] = weakref.WeakSet()


@atexit.register
def _release_live_embedders() -> None:
    for embedder in list(_LIVE_EMBEDDERS):
        embedder.release()
