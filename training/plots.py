"""Pictures of a training run that a person would rather look at than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training runs on machines without a screen
import matplotlib.pyplot as plt
import numpy as np

from edge.classes import ACTION_CLASSES

COLOURS = ["#d9d9d9", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation scores against steps, one line per head."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    labels = {"frame": "per-frame CNN", "window": "window clip", "best": "CNN-LSTM"}
    for head, label in labels.items():
        rows = [h for h in history if h["head"] == head]
        if not rows:
            continue
        steps = [h["step"] for h in rows]
        ax1.plot(steps, [h["train_loss"] for h in rows], label=label)
        line = ax2.plot(steps, [h["val"]["frame_accuracy"] for h in rows], label=f"{label}: frame accuracy")
        ax2.plot(
            steps,
            [h["val"]["f1@50"] / 100 for h in rows],
            "--",
            color=line[0].get_color(),
            label=f"{label}: F1@50 / 100",
        )
    ax1.set_xlabel("step (of its stage)")
    ax1.set_ylabel("training cross-entropy")
    ax1.legend()
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("step (of its stage)")
    ax2.set_ylabel("validation")
    ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, path: Path) -> None:
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(ACTION_CLASSES)), ACTION_CLASSES, rotation=40, ha="right")
    ax.set_yticks(range(len(ACTION_CLASSES)), ACTION_CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(ACTION_CLASSES)):
        for j in range(len(ACTION_CLASSES)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(truth: np.ndarray, pred: np.ndarray, fps: float, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(12, 3.0))
    for row, frames in ((1, truth), (0, pred)):
        change = np.flatnonzero(np.diff(frames)) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(frames)]])
        for s, e in zip(starts, ends, strict=True):
            ax.barh(row, (e - s) / fps, left=s / fps, color=COLOURS[frames[s]], height=0.8)
    ax.set_yticks([0, 1], ["predicted", "true"])
    ax.set_xlabel("seconds")
    ax.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS]
    ax.legend(handles, ACTION_CLASSES, ncol=6, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
