"""The reference rows the course ships: what a notebook shows, labelled, where an earlier notebook's
row is missing (a notebook opened alone, in a fresh Colab runtime).

Built from the committed benchmark JSON of each recipe kind (``results/ngram.json`` for the 5-gram,
``results/race_cpu.json`` for the LSTM and the Transformer; ``race_cpu_quick.json`` for quick mode),
with the machine and date each was measured on, into ``llmcourse/reference_results.json``: package
data, so that a course installed with pip (Colab) has it too. ``tests/test_results.py`` checks that
the file is what this script makes of the JSON files beside it. Re-run it after a benchmark:

    .venv/bin/python benchmarks/reference.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmcourse.files import atomic_write

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
OUT = ROOT.parent / "llmcourse" / "reference_results.json"
NOTEBOOKS = {"lstm": "02_rnn_lm", "transformer": "04_transformer_lm"}


def _ngram() -> dict:
    bench = json.loads((RESULTS / "ngram.json").read_text())
    five = next(o for o in bench["orders"] if o["order"] == 5 and o["smoothing"] == "mkn")
    return {"model": "5-gram modified Kneser-Ney", "valid_ppl": round(five["valid_ppl"], 2),
            "test_ppl": round(five["test_ppl"], 2), "train_seconds": five["fit_seconds"], "notebook": "01_ngrams",
            "machine": bench["machine"], "recorded": bench["date"], "source": "benchmarks/results/ngram.json"}


def _race(path: Path, mode: str) -> dict:
    race = json.loads(path.read_text())
    rows = {}
    for name, run in race["models"].items():
        c = run["model_config"]
        label = (f"LSTM {c['n_layers']}×{c['d_hidden']}" if name == "lstm" else
                 f"Transformer {c['n_layers']}×{c['d_model']}, ctx {c['max_context']}")
        rows[NOTEBOOKS[name]] = {
            "model": label + (", adaptive softmax" if c.get("adaptive_cutoffs") else ""),
            "valid_ppl": run["valid_ppl"], "test_ppl": run["test_ppl"], "train_seconds": run["train_seconds"],
            "notebook": NOTEBOOKS[name], "budget_seconds": run["budget_seconds"], "steps": run["steps"],
            "train_tokens": run["train_tokens"], "valid_curve": [[p["seconds"], p["ppl"]] for p in run["valid_curve"]],
            "machine": race["machine"], "recorded": race["date"], "source": f"benchmarks/results/{path.name}"}
    return rows


def build() -> dict:
    """``{recipe kind: {notebook: row}}`` from the benchmark JSON files."""
    reference = {"cpu": {"01_ngrams": _ngram(), **_race(RESULTS / "race_cpu.json", "full")}}
    quick = RESULTS / "race_cpu_quick.json"
    if quick.is_file():
        reference["quick"] = _race(quick, "quick")
    return reference


def main() -> None:
    argparse.ArgumentParser(description="Copy the committed benchmark figures into llmcourse/reference_results.json, "
                                        "the reference rows a notebook opened alone shows.").parse_args()
    text = json.dumps(build(), indent=1, ensure_ascii=False) + "\n"
    atomic_write(OUT, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"saved to {OUT}")


if __name__ == "__main__":
    main()
