"""The course's results table: every model's perplexity, recorded where it was measured.

Each notebook that trains a language model records a row with :func:`record` (its valid and test
perplexity, training time, machine and mode) and shows the table so far with :func:`show`; the
comparison plot across notebooks is :func:`plot`. Rows live in a JSON file in the course's cache
(``results.json``), one row per model name, so re-running a notebook replaces its row.
The benchmarks in ``benchmarks/`` save their own figures under ``benchmarks/results/``; the
README's table is copied from those.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import cache_dir, is_quick, machine
from .files import atomic_write

__all__ = ["results_path", "record", "load", "show", "plot"]


def results_path() -> Path:
    return cache_dir() / "results.json"


def load(path: Path | None = None) -> list[dict]:
    path = path or results_path()
    if not path.is_file():
        return []
    return json.loads(path.read_text())


def record(model: str, *, valid_ppl: float, test_ppl: float, train_seconds: float | None = None,
           notebook: str | None = None, path: Path | None = None, **extra) -> dict:
    """Add or replace the row of ``model`` and return it."""
    path = path or results_path()
    row = {"model": model, "valid_ppl": float(valid_ppl), "test_ppl": float(test_ppl),
           "train_seconds": train_seconds, "notebook": notebook,
           "mode": "quick" if is_quick() else "full", "machine": machine(),
           "recorded": time.strftime("%Y-%m-%d %H:%M"), **extra}
    rows = [r for r in load(path) if r["model"] != model] + [row]
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(rows, indent=2)))
    return row


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def show(path: Path | None = None):
    """The table so far, as a Markdown display object in a notebook (plain text elsewhere)."""
    rows = load(path)
    lines = ["| model | valid ppl | test ppl | training time | mode | machine |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['valid_ppl']:.1f} | {r['test_ppl']:.1f} | {_fmt_time(r['train_seconds'])} "
                     f"| {r['mode']} | {r['machine']} |")
    text = "\n".join(lines)
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:  # pragma: no cover - IPython ships with the course
        return text


def plot(path: Path | None = None):
    """Test perplexity of every recorded model, lower is better (log scale)."""
    import matplotlib.pyplot as plt

    rows = load(path)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(rows) + 1), 3.6))
    names = [r["model"] for r in rows]
    values = [r["test_ppl"] for r in rows]
    bars = ax.bar(range(len(rows)), values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.0f}" for v in values])
    ax.set_xticks(range(len(rows)), names, rotation=20, ha="right")
    ax.set(ylabel="test perplexity (lower is better)", yscale="log", title="WikiText-2: the course so far")
    fig.tight_layout()
    return fig
