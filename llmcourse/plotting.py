"""Plots every notebook uses: training curves, the race of notebook 04, and word-frequency (Zipf) plots.

Each function draws on a Matplotlib figure and returns it, so a notebook shows it and a script
can save it.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import ScalarFormatter

import torch
from torch import Tensor

from .training import History

__all__ = ["plot_history", "plot_race", "plot_zipf", "plot_attention", "plot_confusion_matrix", "plot_vocab_tradeoff",
           "plot_kv_cache", "plot_scaling", "plot_compute_optimal",
           "plot_ability", "plot_results"]


def plot_history(history: History | Mapping, title: str | None = None, x: str = "auto"):
    """Training and validation loss, perplexity (log scale) and learning rate against the step, or
    against the seconds of training (``x="seconds"``; ``"auto"``: seconds for a budget run)."""
    if isinstance(history, Mapping):
        history = History.from_dict(dict(history))
    if x == "auto":
        x = "seconds" if history.budget_seconds is not None else "step"
    if x not in {"step", "seconds"}:
        raise ValueError(f"x={x!r}: choose 'step', 'seconds' or 'auto'.")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    train, valid = history.train, history.valid
    if train:
        steps = [r[x] for r in train]
        axes[0].plot(steps, [r["loss"] for r in train], label="train", alpha=0.8)
        axes[1].plot(steps, [r["ppl"] for r in train], label="train", alpha=0.8)
        axes[2].plot(steps, [r["lr"] for r in train], color="tab:green")
    if valid:
        vsteps = [r[x] for r in valid]
        axes[0].plot(vsteps, [r["loss"] for r in valid], "o-", label="valid")
        axes[1].plot(vsteps, [r["ppl"] for r in valid], "o-", label="valid")
        best = [r[x] for r in valid if r["step"] == history.best_step]
        if best:
            for ax in axes[:2]:
                ax.axvline(best[0], color="grey", ls=":", lw=1, label="best")
    label = "step" if x == "step" else "seconds of training"
    axes[0].set(xlabel=label, ylabel="cross-entropy (nats/token)", title="loss")
    axes[1].set(xlabel=label, ylabel="perplexity", title="perplexity", yscale="log")
    axes[2].set(xlabel=label, ylabel="learning rate", title="schedule")
    for ax in axes[:2]:
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_race(curves: Mapping[str, Iterable[tuple[float, float]]], baselines: Mapping[str, float] | None = None,
              budget_seconds: float | None = None, title: str = "the race: validation perplexity on the same clock",
              ax=None):
    """Validation perplexity against seconds of training, one line per model (``name -> [(seconds, ppl)]``),
    each baseline (an n-gram: ``name -> perplexity``) as a horizontal line, the budget as a vertical one."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        points = sorted(curve)
        if points:
            ax.plot([s for s, _ in points], [p for _, p in points], "o-", label=name)
            ax.annotate(f"{points[-1][1]:.0f}", points[-1], textcoords="offset points", xytext=(5, 0), fontsize=8)
    for name, value in (baselines or {}).items():
        ax.axhline(value, color="grey", ls="--", lw=1)
        ax.text(0.01, value, f" {name}: {value:.0f}", transform=ax.get_yaxis_transform(), va="bottom", fontsize=8,
                color="grey")
    if budget_seconds:
        ax.axvline(budget_seconds, color="black", ls=":", lw=1, label=f"budget {budget_seconds:.0f} s")
    ax.set(xlabel="seconds of training", ylabel="validation perplexity", yscale="log", title=title)
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return ax.figure


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


def plot_attention(weights: Tensor, keys: Sequence[str] | None = None, queries: Sequence[str] | None = None, *,
                   ax=None, title: str | None = None, colorbar: bool = True):
    """Heatmap of one attention matrix ``weights: (t_q, t_k)``: a row per query, a column per key."""
    w = torch.as_tensor(weights).detach().float().cpu()
    if w.dim() != 2:
        raise ValueError(f"plot_attention draws one (t_q, t_k) matrix; got shape {tuple(w.shape)}: pick an "
                         "example and a head first, e.g. weights[0, head].")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.25 * w.shape[1] + 2.5, 0.25 * w.shape[0] + 1.5))
    image = ax.imshow(w.numpy(), cmap="viridis", vmin=0.0, vmax=max(float(w.max()), 1e-6), aspect="auto")
    for labels, set_ticks, set_labels, n in ((keys, ax.set_xticks, ax.set_xticklabels, w.shape[1]),
                                             (queries, ax.set_yticks, ax.set_yticklabels, w.shape[0])):
        if labels is not None:
            if len(labels) != n:
                raise ValueError(f"{len(labels)} labels for {n} rows/columns of the attention matrix.")
            set_ticks(range(n))
            set_labels(list(labels), fontsize=8)
    ax.set(xlabel="key (attended to)", ylabel="query (attending)")
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax.figure


def plot_confusion_matrix(cm: np.ndarray, names: Sequence[str] = ("negative", "positive"), ax=None):
    """The confusion matrix as a small annotated heat map."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 2.8))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true")
    return ax


def plot_vocab_tradeoff(vocab_sizes: Sequence[int], tokens_per_word: Sequence[float],
                        embedding_params: Sequence[int] | None = None, title: str = "BPE: vocabulary against length"):
    """Notebook 06: tokens per word of a text against the vocabulary size (log x axis), and, if given,
    the embedding table's parameters on a second axis: a bigger vocabulary makes sequences shorter and
    tables larger."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(vocab_sizes, tokens_per_word, "o-", color="tab:blue", label="tokens per word")
    for v, t in zip(vocab_sizes, tokens_per_word):
        ax.annotate(f"{t:.2f}", (v, t), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.text(0.01, 1.0, " one token per word (a word-level vocabulary)", transform=ax.get_yaxis_transform(),
            va="bottom", fontsize=8, color="grey")
    ax.set(xscale="log", xlabel="vocabulary size (tokens)", ylabel="tokens per word", title=title)
    ax.grid(alpha=0.3, which="both")
    if embedding_params is not None:
        twin = ax.twinx()
        twin.plot(vocab_sizes, np.asarray(embedding_params) / 1e6, "s--", color="tab:orange",
                  label="embedding parameters (M)")
        twin.set_ylabel("embedding parameters (millions)", color="tab:orange")
        lines = ax.get_legend_handles_labels(), twin.get_legend_handles_labels()
        ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], loc="upper center")
    else:
        ax.legend()
    fig.tight_layout()
    return fig


def plot_kv_cache(lengths: Sequence[int], seconds_without: Sequence[float], seconds_with: Sequence[float],
                  cache_bytes: Sequence[int] | None = None, title: str = "generation with and without a KV cache"):
    """Notebook 06: seconds to generate ``n`` tokens with and without the key-value cache, the speed-up,
    and (if given) the cache's memory, against the generated length."""
    lengths = np.asarray(lengths)
    without, with_ = np.asarray(seconds_without, dtype=float), np.asarray(seconds_with, dtype=float)
    panels = 3 if cache_bytes is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 3.6))
    axes[0].plot(lengths, without, "o-", label="without a cache: re-read the whole sequence")
    axes[0].plot(lengths, with_, "o-", label="with a cache: read the new token only")
    axes[0].set(xlabel="tokens generated", ylabel="seconds", title=title)
    axes[0].legend(fontsize=8)
    axes[1].plot(lengths, without / with_, "o-", color="tab:green")
    axes[1].axhline(1.0, color="grey", ls="--", lw=1)
    axes[1].set(xlabel="tokens generated", ylabel="speed-up (times)", title="speed-up")
    if cache_bytes is not None:
        axes[2].plot(lengths, np.asarray(cache_bytes) / 2**20, "o-", color="tab:purple")
        axes[2].set(xlabel="tokens in the cache", ylabel="MiB", title="the cache's memory")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_scaling(rows: Sequence[Mapping], law_n=None, law_c=None, frontier: Sequence[int] | None = None,
                 title: str = "the scaling sweep"):
    """Notebook 07: validation loss against non-embedding parameters (one line per token budget) and
    against training compute (one line per size), on log axes, with the fitted power laws
    (:class:`llmcourse.scaling.PowerLaw`: ``law_n`` on the largest budget, ``law_c`` on the compute
    frontier, whose runs ``frontier`` indexes) and their exponents in the legend."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    budgets = sorted({r["budget"] for r in rows})
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    colours = plt.cm.viridis(np.linspace(0.1, 0.85, max(len(budgets), len(sizes))))
    for colour, budget in zip(colours, budgets):
        runs = sorted((r for r in rows if r["budget"] == budget), key=lambda r: r["params"])
        left.plot([r["params"] for r in runs], [r["valid_loss"] for r in runs], "o-", color=colour,
                  label=f"{budget:,} tokens")
    if law_n is not None:
        n = np.geomspace(min(r["params"] for r in rows) / 1.5, max(r["params"] for r in rows) * 1.5, 100)
        left.plot(n, law_n(n), "k--", lw=1, label=f"fit: {law_n.e:.2f} + A N^-{law_n.alpha:.2f}")
    left.set(xscale="log", yscale="log", xlabel="non-embedding parameters N", ylabel="validation loss (nats per token)",
             title="loss against size")
    for colour, size in zip(colours, sizes):
        runs = sorted((r for r in rows if r["size"] == size), key=lambda r: r["flops"])
        right.plot([r["flops"] for r in runs], [r["valid_loss"] for r in runs], "o-", color=colour, label=size)
    if frontier is not None and len(frontier):
        right.plot([rows[i]["flops"] for i in frontier], [rows[i]["valid_loss"] for i in frontier], "o", ms=11,
                   mfc="none", mec="red", label="compute frontier")
    if law_c is not None:
        c = np.geomspace(min(r["flops"] for r in rows) / 1.5, max(r["flops"] for r in rows) * 1.5, 100)
        right.plot(c, law_c(c), "r--", lw=1, label=f"fit: {law_c.e:.2f} + B C^-{law_c.alpha:.3f}")
    right.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", title="loss against compute")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="y", which="minor", labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_compute_optimal(best: Sequence[Mapping], fit: tuple[float, float] | None = None,
                         sizes: Mapping[str, int] | None = None, title: str = "the compute-optimal size"):
    """Notebook 07: the size that reaches the lowest loss at each compute budget
    (:func:`llmcourse.scaling.compute_optimal`), on log axes, with ``fit = (k, b)`` of ``N_opt = k C^b``
    and the sweep's ``sizes`` (name -> parameters) as horizontal guides."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    c = np.array([b["flops"] for b in best])
    ax.step(c, [b["params"] for b in best], "o-", where="mid", label="best size in the sweep")
    if fit is not None:
        k, b = fit
        ax.plot(c, k * c ** b, "k--", lw=1, label=f"fit: N_opt ~ C^{b:.2f}")
    for name, n in (sizes or {}).items():
        ax.axhline(n, color="grey", lw=0.5)
        ax.text(c[0], n, f" {name}", fontsize=7, color="grey", va="bottom")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel="non-embedding parameters N",
           title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_ability(params: Sequence[int], accuracy: Sequence[float], chance: float, names: Sequence[str] | None = None,
                 title: str = "a completion probe against size"):
    """Notebook 07: a probe's accuracy against non-embedding parameters (log x axis), with chance."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(params, accuracy, "o-", label="the sweep's models (largest budget)")
    for i, (n, a) in enumerate(zip(params, accuracy)):
        label = f"{a:.1%}" if names is None else f"{names[i]}: {a:.1%}"
        ax.annotate(label, (n, a), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.0%})")
    ax.set(xscale="log", xlabel="non-embedding parameters N", ylabel="accuracy", title=title,
           ylim=(0, max(1.0, max(accuracy) * 1.1)))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_results(rows: Sequence[Mapping]):
    """The results table as bars of test perplexity from zero, one per row (:func:`llmcourse.results.plot` picks
    the rows); reference rows hatched and grey; a log scale only when the values span more than a factor of 10."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(rows) + 1), 3.6))
    names = [r["model"] for r in rows]
    values = [r["test_ppl"] for r in rows]
    bars = ax.bar(range(len(rows)), values, color=["0.7" if r.get("reference") else "tab:blue" for r in rows],
                  hatch=None)
    for bar, r in zip(bars, rows):
        if r.get("reference"):
            bar.set_hatch("//")
    ax.bar_label(bars, labels=[f"{v:.0f}" for v in values])
    ax.set_xticks(range(len(rows)), names, rotation=20, ha="right")
    if max(values) > 10 * min(values):
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.15 * max(values))  # room for the labels above the bars
    ax.set(ylabel="test perplexity (lower is better)", title="WikiText-2: the course so far")
    fig.tight_layout()
    return fig
