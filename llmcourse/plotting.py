"""Plots every notebook uses: training curves and word-frequency (Zipf) plots.

Each function draws on a Matplotlib figure and returns it, so a notebook shows it and a script
can save it.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np

from .training import History

__all__ = ["plot_history", "plot_zipf"]


def plot_history(history: History | Mapping, title: str | None = None):
    """Training and validation loss, perplexity (log scale) and learning rate against the step."""
    if isinstance(history, Mapping):
        history = History.from_dict(dict(history))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    train, valid = history.train, history.valid
    if train:
        steps = [r["step"] for r in train]
        axes[0].plot(steps, [r["loss"] for r in train], label="train", alpha=0.8)
        axes[1].plot(steps, [r["ppl"] for r in train], label="train", alpha=0.8)
        axes[2].plot(steps, [r["lr"] for r in train], color="tab:green")
    if valid:
        vsteps = [r["step"] for r in valid]
        axes[0].plot(vsteps, [r["loss"] for r in valid], "o-", label="valid")
        axes[1].plot(vsteps, [r["ppl"] for r in valid], "o-", label="valid")
        if history.best_step is not None:
            for ax in axes[:2]:
                ax.axvline(history.best_step, color="grey", ls=":", lw=1, label="best")
    axes[0].set(xlabel="step", ylabel="cross-entropy (nats/token)", title="loss")
    axes[1].set(xlabel="step", ylabel="perplexity", title="perplexity", yscale="log")
    axes[2].set(xlabel="step", ylabel="learning rate", title="schedule")
    for ax in axes[:2]:
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_zipf(counts: Counter | Mapping[str, int] | Iterable[int], label: str | None = None, ax=None):
    """Frequency against rank on log-log axes, with the Zipf line ``f(r) = f(1) / r`` for reference."""
    values = counts.values() if isinstance(counts, Mapping) else counts
    freq = np.sort(np.fromiter(values, dtype=np.float64))[::-1]
    rank = np.arange(1, freq.size + 1)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4))
    else:
        fig = ax.figure
    ax.loglog(rank, freq, label=label or "observed")
    ax.loglog(rank, freq[0] / rank, "--", color="grey", label="Zipf: f(1) / rank")
    ax.set(xlabel="rank", ylabel="frequency", title="Zipf's law")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return fig
