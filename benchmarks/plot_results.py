"""The README's comparison plot: test perplexity on WikiText-2 of every model the benchmarks measured.

Reads ``benchmarks/results/ngram.json`` and the races ``race_*.json`` (whatever is there) and writes
``benchmarks/results/perplexity.png``; each bar is labelled with its perplexity, its training
time and the machine kind of the run. Nothing is measured here: re-run the benchmarks first.

    .venv/bin/python benchmarks/plot_results.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from llmcourse.files import atomic_write  # noqa: E402
from llmcourse.results import format_seconds  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _where(result: dict) -> str:
    return "GPU" if result["machine"].startswith("GPU") else "CPU"


def bars(results: Path = RESULTS) -> list[tuple[str, float, str]]:
    """(label, test perplexity, detail) for each model in the saved benchmark results."""
    out = []
    if (path := results / "ngram.json").is_file():
        ngram = json.loads(path.read_text())
        for row in ngram["orders"]:
            if row["order"] in (3, 5) and row["smoothing"] == "mkn":
                out.append((f"{row['order']}-gram\nKneser-Ney", row["test_ppl"],
                            f"{format_seconds(row['fit_seconds'])}, {_where(ngram)}"))
    labels = {"lstm": "LSTM\n{n_layers}×{d_hidden}", "transformer": "Transformer\n{n_layers}×{d_model}"}
    for path in sorted(results.glob("race_*.json")):
        race = json.loads(path.read_text())
        if race.get("kind") == "quick":
            continue  # CI's tiny models are not a result
        for name, r in race["models"].items():
            if "SHORTENED" in r.get("note", ""):
                continue  # a partial run is not a result to plot
            out.append((labels[name].format(**r["model_config"]), r["test_ppl"],
                        f"{format_seconds(r['train_seconds'])}, {_where(race)}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "perplexity.png")
    args = parser.parse_args()
    rows = bars()
    if not rows:
        raise SystemExit(f"No benchmark results in {RESULTS}: run benchmarks/ngram.py and benchmarks/race.py.")
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 1.5, 3.4), dpi=80)
    values = [v for _, v, _ in rows]
    drawn = ax.bar(range(len(rows)), values, color=["tab:gray" if "gram" in label else "tab:blue" for label, _, _ in rows])
    ax.bar_label(drawn, labels=[f"{v:.1f}\n({d})" for _, v, d in rows], fontsize=8)
    ax.set_xticks(range(len(rows)), [label for label, _, _ in rows], fontsize=9)
    ax.set(ylabel="test perplexity (lower is better)", ylim=(0, 1.25 * max(values)),
           title="WikiText-2 test perplexity, from benchmarks/results/*.json")
    fig.tight_layout()
    atomic_write(args.out, lambda tmp: fig.savefig(tmp, format="png"))
    for label, value, detail in rows:
        print(f"{label.replace(chr(10), ' '):>30}: {value:7.1f}  ({detail})")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
