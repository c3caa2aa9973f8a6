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
from typing import Any, Sequence

from . import checks
from .config import cache_dir, is_quick, machine
from .files import read_json_rows, update_json_rows

__all__ = ["results_path", "current_mode", "record", "load", "show", "plot", "format_seconds", "markdown",
           "reference_rows", "by_notebook", "compute_path", "record_compute", "load_compute", "DEVICE_WATTS",
           "energy_kwh", "compute_table", "show_compute_table"]

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
    _check_name(model)
    for name, value in (("valid_ppl", valid_ppl), ("test_ppl", test_ppl)):
        checks.number(name, value, low=1.0, hint=f"a perplexity, of {model!r}")
    checks.number("train_seconds", train_seconds, low=0.0, none=True, hint=f"of {model!r}")
    _check_extra(model, extra)
    path = path or results_path()
    row = {"model": model, "valid_ppl": float(valid_ppl), "test_ppl": float(test_ppl),
           "train_seconds": train_seconds, "notebook": notebook, "mode": current_mode(), "machine": machine(),
           "recorded": time.strftime("%Y-%m-%d %H:%M"), **extra}
    update_json_rows(path, row, same=lambda r: (r["model"], r.get("mode")))
    return row


def _check_name(model: Any) -> None:
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model={model!r}: name the model (a non-empty string such as 'LSTM 2x256'): rows are "
                         "replaced by name, and a table with a blank name cannot say what was measured.")


def _check_extra(model: str, extra: dict) -> None:
    """Extra columns: numbers finite and not booleans (True would be written as 1.0 by a plot), JSON-readable."""
    for key, value in extra.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key}={value!r} for {model!r}: a measured number must be finite (NaN or infinity "
                             "would be written into the table as if measured); leave the column out instead.")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{key}={value!r} for {model!r}: the table holds JSON values (numbers, strings, lists, "
                            f"dicts) only ({exc}).") from None


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
    span more than a factor of 10 (the drawing: :func:`llmcourse.plotting.plot_results`)."""
    rows = load(path, mode)
    have = {r.get("notebook") for r in rows}
    missing = [nb for nb in reference if nb not in have]
    if missing:
        rows = list(by_notebook(*missing, path=path, say=False).values()) + rows
    if not rows:
        raise ValueError(f"No results recorded yet in {path or results_path()} (mode {mode!r}): run a notebook "
                         "that trains a language model (01, 02 or 04) first.")
    from .plotting import plot_results

    return plot_results(rows)


# --------------------------------------------------------------------------------------------
# The compute table: every model's training FLOPs and seconds, and an energy estimate (notebook 05)
# --------------------------------------------------------------------------------------------
# Assumed average power draw while training, in watts: the energy column is an estimate built on these.
DEVICE_WATTS = {
    "cpu": 30.0,  # a laptop or small server CPU package running two busy cores (measured CPUs draw 15-65 W)
    "t4": 70.0,  # NVIDIA T4's board power limit (Colab's usual GPU)
    "gpu": 300.0,  # a data-centre GPU under load, order of magnitude (A100 PCIe: 250-300 W)
    "apple": 20.0,  # an Apple-silicon laptop's package power under load, order of magnitude
}


def energy_kwh(seconds: float, watts: float) -> float:
    """Energy of ``seconds`` at ``watts``, in kilowatt-hours (3.6e6 joules each)."""
    if not (math.isfinite(seconds) and seconds >= 0 and math.isfinite(watts) and watts > 0):
        raise ValueError(f"energy_kwh needs seconds >= 0 and watts > 0, finite; got seconds={seconds}, watts={watts}.")
    return seconds * watts / 3.6e6


def _device_class(machine: str) -> str:
    text = machine.lower()
    if "mps" in text:
        return "apple"
    if "t4" in text:
        return "t4"
    return "gpu" if "gpu" in text else "cpu"


def compute_path() -> Path:
    return cache_dir() / "compute.json"


def record_compute(model: str, *, train_seconds: float, train_flops: float | None, notebook: str,
           path: Path | None = None, **extra) -> dict:
    """Add or replace the compute row of ``model`` (current mode): its training seconds and FLOPs.

    Every notebook that trains a model records one, beside its results row; ``train_flops`` is None
    for a model that counts instead of computing (an n-gram model).
    """
    _check_name(model)
    checks.number("train_seconds", train_seconds, low=0.0, hint=f"of {model!r}")
    checks.number("train_flops", train_flops, low=0.0, none=True, hint=f"of {model!r}; None for a model that counts")
    _check_extra(model, extra)
    path = path or compute_path()
    row = {"model": model, "train_seconds": float(train_seconds),
           "train_flops": None if train_flops is None else float(train_flops), "notebook": notebook,
           "mode": current_mode(), "machine": machine(), **extra}
    update_json_rows(path, row, same=lambda r: (r["model"], r.get("mode")))
    return row


def load_compute(path: Path | None = None, mode: str | None = "current") -> list[dict]:
    """The recorded compute rows, in the order the notebooks ran (only ``mode``'s, by default the current one)."""
    return load(path or compute_path(), mode)


def compute_table(rows: Sequence[dict] | None = None, watts: dict[str, float] | None = None) -> list[dict]:
    """The compute of every model the course trains: FLOPs, seconds and an energy estimate.

    ``rows`` defaults to the rows the notebooks recorded with :func:`record_compute` (current mode).
    Models that count instead of computing (n-grams) have no FLOPs. Energy is ``train_seconds * watts``
    for the row's device class (``DEVICE_WATTS``, overridable): an estimate of the device alone, not measured, without the
    rest of the machine, cooling or the energy spent making the hardware.
    """
    rows = load_compute() if rows is None else rows
    watts = {**DEVICE_WATTS, **(watts or {})}
    table = []
    for r in rows:
        seconds = r.get("train_seconds")
        device = _device_class(r.get("machine", ""))
        flops = r.get("train_flops")
        table.append({
            "model": r["model"], "notebook": r.get("notebook"), "train_seconds": seconds,
            "train_flops": flops, "device": device, "watts": watts[device],
            "flops_per_second": flops / seconds if flops and seconds else None,
            "energy_kwh": energy_kwh(seconds, watts[device]) if seconds is not None else None,
        })
    return table


def show_compute_table(rows: Sequence[dict] | None = None, watts: dict[str, float] | None = None) -> Any:
    """:func:`compute_table` as Markdown in a notebook (a string elsewhere)."""
    lines = ["| model | notebook | training time | training FLOPs | achieved FLOP/s | assumed power | energy (Wh) |",
             "|---|---|---|---|---|---|---|"]
    for r in compute_table(rows, watts):
        flops = f"{r['train_flops']:.2e}" if r["train_flops"] else "– (counts, no FLOPs)"
        rate = f"{r['flops_per_second'] / 1e9:.1f} G" if r["flops_per_second"] else "–"
        energy = f"{r['energy_kwh'] * 1000:.2f}" if r["energy_kwh"] is not None else "–"
        lines.append(f"| {r['model']} | {r['notebook'] or '–'} | {format_seconds(r['train_seconds'])} | {flops} "
                     f"| {rate} | {r['watts']:.0f} W ({r['device']}) | {energy} |")
    return markdown("\n".join(lines))
