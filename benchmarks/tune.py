"""Benchmark: the race's recipes tuned with equal effort (issue 23, item 3).

Every runner of the race gets the same search: six trials, a grid of three learning rates (half,
once and twice a centre) by two warm-ups (the centre's fraction of the budget, and five times it), each
trial a fresh model trained
by ``llmcourse.training.train`` for the same ``--trial-seconds`` of wall-clock time (warm-up and
cosine decay fitted to that budget, as in the race) and scored on the **whole validation set** with
the course's perplexity convention. The test set is never read. The centres are the recipes as they
stood before the search (:data:`CENTRES`); every other field comes from ``llmcourse.recipes``. The
recipes the course uses are the winners (lowest validation perplexity), and
``tests/test_benchmarks.py`` checks that ``recipe_for`` still holds them.

Saves every trial to ``benchmarks/results/tune_<device>.json``. Run heavy CPU jobs one at a time:

    LLMCOURSE_DATA=../shared/data .venv/bin/python benchmarks/tune.py
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from llmcourse.config import get_device, seed_everything
from llmcourse.data import WikiText2, numericalize, tokenize_lines, wikitext2_vocab
from llmcourse.recipes import KINDS, Recipe, recipe_for, recipe_kind
from llmcourse.training import train

from _common import default_result_path, save, stamp  # benchmarks/_common.py

# Where each runner's search is centred: its learning rate and warm-up fraction before the search.
CENTRES = {"cpu": {"lstm": (3e-3, 0.02), "transformer": (5e-3, 0.03)}}
LR_FACTORS, WARMUP_FACTORS = (0.5, 1.0, 2.0), (1, 5)


def grid(name: str, kind: str) -> list[tuple[float, float]]:
    """The six (learning rate, warm-up fraction) trials of ``name``: the same factors for every runner."""
    lr, warmup = centre(name, kind)
    return [(lr * f, round(warmup * w, 4)) for f in LR_FACTORS for w in WARMUP_FACTORS]


def centre(name: str, kind: str) -> tuple[float, float]:
    if name in CENTRES.get(kind, {}):
        return CENTRES[kind][name]
    recipe = recipe_for(name, kind)
    return recipe.train.lr, recipe.train.warmup_fraction or 0.02


def trial_recipe(name: str, kind: str, lr: float, warmup: float, seconds: float, vocab_size: int) -> Recipe:
    recipe = recipe_for(name, kind, vocab_size=vocab_size)
    train_config = dataclasses.replace(recipe.train, lr=lr, eval_every_seconds=None, eval_every=None,
                                       max_eval_batches=recipe.eval_limit, progress=False)
    recipe = dataclasses.replace(recipe, train=train_config)
    if kind == "quick":  # quick mode counts steps: a smoke test of the script
        return recipe
    recipe = recipe.with_budget(seconds)
    recipe.train.warmup_fraction = warmup
    return recipe


def run_trial(recipe: Recipe, ids: dict, device: torch.device, seed: int) -> dict:
    seed_everything(seed)
    loaders = recipe.loaders(ids, seed=seed)
    model = recipe.model()
    history = train(model, loaders["train"], loaders["valid"], recipe.train, device=device)
    final = history.valid[-1]  # the weights at the end, validated on the whole validation set (CPU, GPU)
    return {"lr": recipe.train.lr, "warmup_fraction": recipe.train.warmup_fraction, "steps": history.steps,
            "train_seconds": round(history.train_seconds, 1), "train_tokens": history.train_tokens,
            "tokens_per_second": round(history.train_tokens / max(history.train_seconds, 1e-9)),
            "valid_ppl": round(final["ppl"], 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["auto", *KINDS], default="auto")
    parser.add_argument("--models", nargs="+", default=["lstm", "transformer"])
    parser.add_argument("--trial-seconds", type=float, default=120.0, help="the training budget of every trial")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = get_device()
    kind = args.kind if args.kind != "auto" else recipe_kind(device)
    vocab = wikitext2_vocab()
    ids = {s: numericalize(tokenize_lines(WikiText2(s)), vocab) for s in ("train", "valid", "test")}
    searches = {}
    for name in args.models:
        trials = []
        for lr, warmup in grid(name, kind):
            t0 = time.perf_counter()
            recipe = trial_recipe(name, kind, lr, warmup, args.trial_seconds, len(vocab))
            trial = run_trial(recipe, ids, device, args.seed) | {"wall_seconds": round(time.perf_counter() - t0, 1)}
            trials.append(trial)
            print(f"{name:>12}: lr {lr:.2e}, warm-up {warmup:.2f}: {trial['steps']:,} steps, "
                  f"{trial['tokens_per_second']:,} tokens/s, valid {trial['valid_ppl']:.1f}", flush=True)
        best = min(trials, key=lambda t: t["valid_ppl"])
        searches[name] = {"centre": dict(zip(("lr", "warmup_fraction"), centre(name, kind))), "trials": trials,
                          "winner": {"lr": best["lr"], "warmup_fraction": best["warmup_fraction"],
                                     "valid_ppl": best["valid_ppl"]}}
        print(f"{name:>12}: winner lr {best['lr']:.2e}, warm-up {best['warmup_fraction']} "
              f"(valid {best['valid_ppl']:.1f})")
    result = stamp("tune", device, kind=kind) | {
        "note": (f"the same search for every runner: learning rate x {list(LR_FACTORS)} by warm-up "
                 f"fraction x {list(WARMUP_FACTORS)} around its centre, {args.trial_seconds:.0f} s of training per trial "
                 "(warm-up and cosine decay fitted to it), scored on the whole validation set; the test set is "
                 "never read"),
        "trial_seconds": args.trial_seconds, "searches": searches}
    save(result, args.out or default_result_path("tune", device, kind), echo=False)
    return result


if __name__ == "__main__":
    main()
