"""Plots for reports, as PNG data URIs (matplotlib, headless)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from finevl.report.encode import png_data_uri  # noqa: E402


def _uri(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return png_data_uri(buf.getvalue())


def curve(steps: list[int], values: list[float], label: str) -> str:
    """A training curve (e.g. the contrastive loss by step)."""
    return curves(steps, {label: values}, label)


def curves(steps: list[int], series: dict[str, list[float]], ylabel: str) -> str:
    """Several curves over the same steps (e.g. sampled and greedy rewards), one legend."""
    fig, ax = plt.subplots(figsize=(4.8, 2.8))
    for label, values in series.items():
        ax.plot(steps, values, lw=1.5, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7)
    return _uri(fig)


def confusion(matrix: list[list[int]], classes: list[str], title: str) -> str:
    """A confusion matrix, rows true class, columns predicted, row-normalised colours."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    share = m / np.maximum(1, m.sum(1, keepdims=True))
    fig, ax = plt.subplots(figsize=(0.45 * len(classes) + 1.8, 0.45 * len(classes) + 1.2))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    int(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    return _uri(fig)
