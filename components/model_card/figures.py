"""The card's figures, drawn with matplotlib's Agg backend and returned as PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from components.model_card.history import TrainingHistory
from components.model_card.inputs import ClassMetrics, ExampleClip, SliceMetrics

_DPI = 100


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def training_curves(history: TrainingHistory) -> bytes:
    """Loss, accuracy and AUC per epoch, train against validation (the Trainer's history)."""
    names = [name for name in ("loss", "accuracy", "auc") if name in history.metrics]
    figure, axes = plt.subplots(1, max(len(names), 1), figsize=(5 * max(len(names), 1), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names, strict=False):
        train = history.metrics[name]
        epochs = np.arange(1, len(train) + 1)
        axis.plot(epochs, train, label="train", marker="o" if len(train) < 20 else None)
        if f"val_{name}" in history.metrics:
            validation = history.metrics[f"val_{name}"]
            axis.plot(np.arange(1, len(validation) + 1), validation, label="validation")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    return _png(figure)


def confusion_matrix(
    counts: np.ndarray, classes: Sequence[ClassMetrics], class_names: Sequence[str], title: str
) -> bytes:
    """A confusion matrix of the classes present, with each class's precision and recall.

    Args:
        counts: ``[num_classes, num_classes]`` counts (patches or clips), actual rows, predicted columns.
        classes: The per-class metrics read off ``counts``, in class id order.
        class_names: The label vocabulary.
        title: The figure's title.

    Returns:
        The PNG.
    """
    present = [
        index for index in range(len(class_names)) if counts[index].sum() or counts[:, index].sum()
    ] or list(range(len(class_names)))
    matrix = counts[np.ix_(present, present)]
    labels = [class_names[index] for index in present]
    size = 1.1 * len(present) + 3
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    row_sums = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=float), where=row_sums > 0)
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(present)):
        for column in range(len(present)):
            axis.text(
                column,
                row,
                str(int(matrix[row, column])),
                ha="center",
                va="center",
                color="white" if shares[row, column] > 0.5 else "black",
            )
    precision = [classes[index].precision for index in present]
    recall = [classes[index].recall for index in present]
    axis.set_xticks(range(len(present)))
    axis.set_xticklabels(
        [f"{label}\nP={_fmt(value)}" for label, value in zip(labels, precision, strict=True)]
    )
    axis.set_yticks(range(len(present)))
    axis.set_yticklabels([f"{label} R={_fmt(value)}" for label, value in zip(labels, recall, strict=True)])
    plt.setp(axis.get_xticklabels(), rotation=30, ha="right")
    axis.set_xlabel("predicted (P = precision)")
    axis.set_ylabel("actual (R = recall)")
    axis.set_title(title)
    return _png(figure)


def roc_curves(metrics: SliceMetrics, title: str) -> bytes:
    """One-vs-rest ROC curves of each class (TFMA's per-class confusion matrices), with AUC and d'."""
    figure, axis = plt.subplots(figsize=(6, 5))
    by_name = {class_metrics.class_name: class_metrics for class_metrics in metrics.classes}
    for class_name, curve in metrics.roc_curves.items():
        auc = by_name[class_name].auc
        axis.plot(
            (0.0, *curve.false_positive_rate, 1.0),
            (0.0, *curve.true_positive_rate, 1.0),
            label=f"{class_name} (AUC {_fmt(auc)}, d' {_fmt(by_name[class_name].d_prime)})",
        )
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize="small")
    axis.grid(alpha=0.3)
    return _png(figure)


def layer_table(layers: Sequence[tuple[str, str, str, int]], title: str) -> bytes:
    """The model's layers as a table figure: (name, type, output shape, parameters)."""
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(layers) + 1.2))
    axis.axis("off")
    table = axis.table(
        cellText=[[name, kind, shape, f"{count:,}"] for name, kind, shape, count in layers],
        colLabels=["layer", "type", "output shape", "parameters"],
        loc="center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.3)
    axis.set_title(title)
    return _png(figure)


def clip_panels(clip: ExampleClip, class_names: Sequence[str], accent_names: Sequence[str]) -> bytes:
    """The reference's 3-panel figure: waveform, log-mel spectrogram, per-patch accent probabilities."""
    figure, axes = plt.subplots(3, 1, figsize=(9, 7.5))
    seconds = np.arange(clip.waveform.size) / clip.sample_rate
    axes[0].plot(seconds, clip.waveform, linewidth=0.5)
    axes[0].set_xlim(0, max(seconds[-1] if seconds.size else 0.0, 1e-3))
    axes[0].set_title(f"{clip.clip_id} ({clip.accent}): waveform")
    axes[0].set_xlabel("seconds")
    axes[1].imshow(clip.log_mel.T, aspect="auto", origin="lower", interpolation="nearest", cmap="magma")
    axes[1].set_title("log-mel spectrogram (YAMNet front end)")
    axes[1].set_xlabel("frame (10 ms)")
    axes[1].set_ylabel("mel bin")
    ids = [class_names.index(name) for name in accent_names if name in class_names]
    probabilities = (
        clip.patch_probabilities[:, ids] if clip.patch_probabilities.size else np.zeros((0, len(ids)))
    )
    axes[2].imshow(probabilities.T, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    axes[2].set_yticks(range(len(ids)))
    axes[2].set_yticklabels([class_names[index] for index in ids])
    axes[2].set_xlabel("patch (0.96 s, hop 0.48 s)")
    axes[2].set_title("per-patch probabilities of the accent classes")
    figure.tight_layout()
    return _png(figure)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"
