"""Benchmark: the race of notebook 04. The LSTM (notebook 02) and the Transformer (notebook 04) train on
WikiText-2 under the same wall-clock budget, on the same device, each from its recipe in
``llmcourse.recipes``; both are then scored on the whole validation and test sets with the course's
perplexity convention.

The budget is chosen as the notebooks choose it (``llmcourse.budget.race_budget``): a few seconds of
calibration measure each recipe's training rate on this machine, and the budget is the recipes' own
(10 minutes) unless a model would then read fewer tokens than its recipe needs. The race is then run
twice in one invocation, at that budget and at half of it (``--fractions``): half the budget stands for
a machine half as fast, and the course's order must hold in both.

Targets (issues 12 and 23):
* on 2 CPU cores (``--kind cpu``): Transformer test perplexity below the LSTM's, and the LSTM's below the
  5-gram's (read from ``benchmarks/results/ngram.json``; 220.1), at the full budget and at half of it;
  at the full budget on a machine of the reference run's speed, Transformer test <= 140 and LSTM <= 185;
* on one H100/H200 (``--kind gpu``): LSTM test <= 86.7, Transformer test <= 90 and below the LSTM, and the
  Transformer's MFU >= 35% of the GPU's dense bf16 peak.

Saves ``benchmarks/results/race_cpu.json`` on a CPU, ``race_<gpu>.json`` on a GPU (``--out`` to change):
the calibration, then per budget and model the seconds trained, tokens seen, tokens/s, valid and test
perplexity, the validation curve against seconds, and the machine. ``models`` holds the full-budget
race, ``races`` every budget. Run heavy CPU jobs one at a time:

    LLMCOURSE_DATA=../shared/data flock /tmp/llmcourse-cpu.lock .venv/bin/python benchmarks/race.py
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch

from llmcourse.budget import race_budget
from llmcourse.config import get_device
from llmcourse.data import WikiText2, numericalize, tokenize_lines, wikitext2_vocab
from llmcourse.recipes import KINDS, recipe_kind

from _common import save, stamp, train_lm  # benchmarks/_common.py

ROOT = Path(__file__).resolve().parent
NGRAM_FALLBACK = 220.1  # KenLM 5-gram modified Kneser-Ney, test (benchmarks/results/ngram.json)
GPU_TARGETS = {"lstm_test_ppl": 86.7, "transformer_test_ppl": 90.0, "transformer_mfu": 0.35}
CPU_STRETCH = {"lstm_test_ppl": 185.0, "transformer_test_ppl": 140.0}  # full budget, the reference speed


def ngram_baseline() -> float:
    try:
        return float(json.loads((ROOT / "results" / "ngram.json").read_text())["kenlm_reference"]["test"]["5"])
    except (OSError, KeyError, ValueError):
        return NGRAM_FALLBACK


def default_out(device: torch.device, kind: str) -> Path:
    if device.type == "cuda":
        where = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    else:
        where = device.type
    return ROOT / "results" / (f"race_{where}.json" if kind != "quick" else f"race_{where}_quick.json")


def targets(kind: str, runs: dict, full: bool = True) -> dict:
    """Which targets of the issues this race met (only for the models it ran); ``full``: the full budget."""
    lstm, tf = runs.get("lstm"), runs.get("transformer")
    if kind == "quick":
        return {}
    if kind == "cpu":
        baseline = ngram_baseline()
        met = {}
        if lstm:
            met["lstm_below_ngram"] = {"ngram_test_ppl": baseline, "met": lstm["test_ppl"] < baseline}
        if lstm and tf:
            met["transformer_below_lstm"] = {"met": tf["test_ppl"] < lstm["test_ppl"]}
        for name, bound in CPU_STRETCH.items() if full else ():
            run = runs.get(name.split("_")[0])
            if run:
                met[f"{name.split('_')[0]}_test_at_most_{bound:.0f}"] = {"met": run["test_ppl"] <= bound}
        return met
    met = {}
    if lstm:
        met["lstm_test_ppl"] = {"at_most": GPU_TARGETS["lstm_test_ppl"], "met": lstm["test_ppl"] <= 86.7}
    if tf:
        bound = min(GPU_TARGETS["transformer_test_ppl"], lstm["test_ppl"]) if lstm else GPU_TARGETS["transformer_test_ppl"]
        met["transformer_test_ppl"] = {"at_most": bound, "met": tf["test_ppl"] <= bound}
        met["transformer_mfu"] = {"at_least": GPU_TARGETS["transformer_mfu"],
                                  "met": tf.get("mfu") is not None and tf["mfu"] >= GPU_TARGETS["transformer_mfu"]}
    return met


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["auto", *KINDS], default="auto",
                        help="recipes from llmcourse.recipes.recipe_for; auto: by the device (recipe_kind)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="the full budget of each model, instead of the one calibration chooses")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5],
                        help="the budgets raced, as fractions of the full one (default: 1 and 0.5)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="a SHORTENED step-count run instead of a budget (a smoke test; the JSON says so)")
    parser.add_argument("--models", nargs="+", choices=["lstm", "transformer"], default=["lstm", "transformer"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = get_device()
    kind = args.kind if args.kind != "auto" else recipe_kind(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    t0 = time.perf_counter()
    vocab = wikitext2_vocab()
    ids = {s: numericalize(tokenize_lines(WikiText2(s)), vocab) for s in ("train", "valid", "test")}
    data_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    budget = race_budget(args.models, ids, device=device, kind=kind, vocab_size=len(vocab))
    calibration = {"seconds": budget.seconds, "tokens_per_second": {k: round(v) for k, v in budget.rates.items()},
                   "tokens_needed": {k: r.tokens_needed for k, r in budget.recipes.items()},
                   "wanted_seconds": None if budget.wanted is None else round(budget.wanted, 1),
                   "floor_seconds": budget.floor, "cap_seconds": budget.cap, "scale": budget.scale,
                   "calibration_seconds": round(time.perf_counter() - t0, 1), "explanation": str(budget)}
    print(budget, flush=True)
    full = 60 * args.minutes if args.minutes is not None else budget.seconds
    fractions = [1.0] if (full is None or args.max_steps is not None) else args.fractions
    races = {}
    for fraction in fractions:
        runs = {}
        for name in args.models:
            recipe = budget.recipes[name] if full is None else budget.recipes[name].with_budget(full * fraction)
            if args.max_steps is not None:
                recipe.train.budget_seconds, recipe.train.max_steps = None, args.max_steps
                recipe.train.warmup_steps = max(1, args.max_steps // 20)
                recipe.note += f"; SHORTENED to {args.max_steps} steps"
            recipe.train.progress = False
            runs[name] = train_lm(recipe, ids, device, seed=args.seed)
        budgets = {r["budget_seconds"] for r in runs.values()}
        races[f"{fraction:g}"] = {"fraction": fraction, "budget_seconds": budgets.pop() if len(budgets) == 1 else None,
                                  "models": runs, "targets": targets(kind, runs, full=fraction == 1.0)}
        for name, r in runs.items():
            print(f"{fraction:g} x budget {name:>12}: {r['steps']:,} steps in {r['train_seconds']:.1f} s of training "
                  f"(set-up before the clock: {r['setup_seconds']:.1f} s), "
                  f"{r['train_tokens']:,} tokens ({r['tokens_per_second']:,}/s), valid {r['valid_ppl']:.1f}, "
                  f"test {r['test_ppl']:.1f}", flush=True)

    first = races[f"{fractions[0]:g}"]
    result = stamp("race", device, kind=kind) | {
        "note": ("the same budget for every model, on the same device" if first["budget_seconds"] else "UNEQUAL budgets")
        + ("" if device.type == "cuda" else "; CPU run (no GPU was available)"),
        "budget_seconds": first["budget_seconds"],
        "data_seconds": round(data_seconds, 1),
        "calibration": calibration,
        "models": first["models"],
        "targets": first["targets"],
        "races": races,
    }
    save(result, args.out or default_out(device, kind), echo=False)
    print(json.dumps({k: r["targets"] for k, r in races.items()}, indent=2))
    return result


if __name__ == "__main__":
    main()
