"""The course's results table: every model's perplexity, recorded where it was measured.

Each notebook that trains a language model records a row with :func:`record` (its valid and test
perplexity, training time, machine and mode) and shows the table so far with :func:`show`; the
comparison plot across notebooks is :func:`plot`. Rows live in a JSON file in the course's cache
(``results.json``), one row per model name and mode, so re-running a notebook replaces its row.
Quick mode (CI, ``LLMCOURSE_QUICK=1``) and full mode keep separate rows, and :func:`show` and
:func:`plot` show the rows of the mode this process runs in: a quick run's tiny models never sit
beside a full run's.
The benchmarks in ``benchmarks/`` save their own figures under ``benchmarks/results/``; the
README's table is copied from those.

A notebook opened alone (a fresh Colab runtime, say) has no rows from the notebooks before it. Where
it needs one, :func:`by_notebook` gives the **reference row** of the same recipe kind instead: the
benchmark figures committed with the course (``reference_results.json``, made by
``benchmarks/reference.py``), marked ``reference`` and labelled with the machine and date they were
measured on, so that the race and the table are never empty and never pass a reference off as this run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from .config import cache_dir, is_quick, machine
from .files import read_json_rows, update_json_rows

__all__ = ["results_path", "current_mode", "record", "load", "show", "plot", "format_seconds", "markdown",
           "reference_rows", "by_notebook"]

REFERENCE = Path(__file__).with_name("reference_results.json")


def results_path() -> Path:
    return cache_dir() / "results.json"


def current_mode() -> str:
    return "quick" if is_quick() else "full"


def load(path: Path | None = None, mode: str | None = None) -> list[dict]:
    """The recorded rows; only those of ``mode`` ("quick", "full" or "current") if given."""
    if mode == "current":
        mode = current_mode()
    if mode not in {"quick", "full", None}:
        raise ValueError(f"mode={mode!r}: choose 'quick', 'full', 'current' or None (every row).")
    path = path or results_path()
    return [r for r in read_json_rows(path) if mode is None or r.get("mode") == mode]


def record(model: str, *, valid_ppl: float, test_ppl: float, train_seconds: float | None = None,
           notebook: str | None = None, path: Path | None = None, **extra) -> dict:
    """Add or replace the row of ``model`` in the current mode and return it.

    Safe with many processes recording at once (a workshop): the table is updated under a file lock.
    """
    for name, value in (("valid_ppl", valid_ppl), ("test_ppl", test_ppl)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1):
            raise ValueError(f"{name}={value!r} for {model!r}: a perplexity is a finite number >= 1 "
                             "(check the evaluation that produced it).")
    if train_seconds is not None and not (math.isfinite(train_seconds) and train_seconds >= 0):
        raise ValueError(f"train_seconds={train_seconds!r} for {model!r}: give a finite number >= 0, or None.")
    path = path or results_path()
    row = {"model": model, "valid_ppl": float(valid_ppl), "test_ppl": float(test_ppl),
           "train_seconds": train_seconds, "notebook": notebook, "mode": current_mode(), "machine": machine(),
           "recorded": time.strftime("%Y-%m-%d %H:%M"), **extra}
    update_json_rows(path, row, same=lambda r: (r["model"], r.get("mode")))
    return row


def reference_rows(kind: str | None = None) -> dict[str, dict]:
    """The reference rows committed with the course for recipe ``kind`` (default: this mode and device,
    :func:`llmcourse.recipes.recipe_kind`), by notebook; empty for a kind never benchmarked (a GPU's)."""
    if kind is None:
        from .recipes import recipe_kind

        kind = recipe_kind()
    rows = json.loads(REFERENCE.read_text(encoding="utf-8")).get(kind, {})
    return {nb: {**row, "reference": True, "mode": current_mode(), "model": f"{row['model']} [reference]",
                 "machine": f"{row['machine']}; {row['recorded']} ({row['source']})"}
            for nb, row in rows.items()}


def by_notebook(*notebooks: str, path: Path | None = None, kind: str | None = None,
                say: bool = True) -> dict[str, dict]:
    """The current mode's row of each of ``notebooks`` (``"02_rnn_lm"``...): the one recorded on this
    machine, or where there is none the reference row of the same recipe kind (:func:`reference_rows`),
    marked ``row["reference"] = True``. A notebook with neither is left out. With ``say``, prints which
    rows are reference rows and how to replace them with this machine's own."""
    recorded = {r.get("notebook"): r for r in load(path, "current")}
    reference = reference_rows(kind) if any(nb not in recorded for nb in notebooks) else {}
    rows = {}
    for nb in notebooks:
        row = recorded.get(nb) or reference.get(nb)
        if row is None:
            if say:
                print(f"no row from notebook {nb} in this mode, and no reference figures for this kind of run: "
                      f"run notebook {nb} first to see it here")
            continue
        if row.get("reference") and say:
            print(f"notebook {nb} has not run here: its row is the course's reference (measured on "
                  f"{row['machine']}); run notebook {nb} to replace it with your own")
        rows[nb] = row
    return rows


def format_seconds(seconds: float | None) -> str:
    """A training time as the table shows it: seconds under two minutes, else minutes."""
    if seconds is None:
        return "–"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def show(path: Path | None = None, mode: str | None = "current", *, reference: tuple[str, ...] = ()):
    """The table so far (the current mode's rows; ``mode=None`` for all), as Markdown in a notebook;
    the notebooks named in ``reference`` that have no row here get their reference row, labelled."""
    rows = load(path, mode)
    have = {r.get("notebook") for r in rows}
    missing = [nb for nb in reference if nb not in have]
    if missing:
        rows = list(by_notebook(*missing, path=path, say=False).values()) + rows
    lines = ["| model | valid ppl | test ppl | training time | mode | machine |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['valid_ppl']:.1f} | {r['test_ppl']:.1f} | {format_seconds(r['train_seconds'])} "
                     f"| {r['mode']} | {r['machine']} |")
    return markdown("\n".join(lines))


def markdown(text: str):
    """``text`` shown as Markdown in a notebook (the string itself where IPython is missing)."""
    try:
        from IPython.display import Markdown

        return Markdown(text)
    except ImportError:  # pragma: no cover - IPython ships with the course
        return text


def plot(path: Path | None = None, mode: str | None = "current", *, reference: tuple[str, ...] = ()):
    """Test perplexity of every recorded model of the current mode (``mode=None``: all), as bars from
    zero (reference rows, see :func:`show`, hatched and grey); a log scale only when the perplexities
    span more than a factor of 10."""
    import matplotlib.pyplot as plt

    rows = load(path, mode)
    have = {r.get("notebook") for r in rows}
    missing = [nb for nb in reference if nb not in have]
    if missing:
        rows = list(by_notebook(*missing, path=path, say=False).values()) + rows
    if not rows:
        raise ValueError(f"No results recorded yet in {path or results_path()} (mode {mode!r}): run a notebook "
                         "that trains a language model (01, 02 or 04) first.")
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
