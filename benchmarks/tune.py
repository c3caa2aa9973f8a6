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

A second stage (``--stage batch``) searches the batch size the same way for every runner: three
trials, the batch at a quarter, half and once its size before this stage (:data:`BATCH_CENTRES`), at
the first stage's learning rate and warm-up, each trial ``--trial-seconds`` long (300 s: the half
budget of the race, the harder of its two clocks). Fewer sequences per step means more steps in the
same seconds; on 2 CPU cores the LSTM reads about as many tokens per second at batch 32 as at 64.

Saves every trial to ``benchmarks/results/tune_<device>.json`` (the second stage:
``tune_batch_<device>.json``). Run heavy CPU jobs one at a time:

    LLMCOURSE_DATA=../shared/data .venv/bin/python benchmarks/tune.py
    LLMCOURSE_DATA=../shared/data .venv/bin/python benchmarks/tune.py --stage batch --trial-seconds 300
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
# The second stage: each runner's batch (sequences per step) before it, and the factors tried.
BATCH_CENTRES = {"cpu": {"lstm": 64, "transformer": 32}}
BATCH_FACTORS = (0.25, 0.5, 1.0)


def batch_grid(name: str, kind: str) -> list[int]:
    """The three batch sizes of ``name``'s second stage: the same factors for every runner."""
    centre_batch = BATCH_CENTRES.get(kind, {}).get(name) or recipe_for(name, kind).batch_size
    return [max(1, round(centre_batch * f)) for f in BATCH_FACTORS]


def grid(name: str, kind: str) -> list[tuple[float, float]]:
    """The six (learning rate, warm-up fraction) trials of ``name``: the same factors for every runner."""
    lr, warmup = centre(name, kind)
    return [(lr * f, round(warmup * w, 4)) for f in LR_FACTORS for w in WARMUP_FACTORS]


def centre(name: str, kind: str) -> tuple[float, float]:
    if name in CENTRES.get(kind, {}):
        return CENTRES[kind][name]
    recipe = recipe_for(name, kind)
    return recipe.train.lr, recipe.train.warmup_fraction or 0.02


def trial_recipe(name: str, kind: str, lr: float, warmup: float, seconds: float, vocab_size: int,
                 batch_size: int | None = None) -> Recipe:
    recipe = recipe_for(name, kind, vocab_size=vocab_size)
    if batch_size is not None:
        recipe = dataclasses.replace(recipe, batch_size=batch_size)
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
    return {"lr": recipe.train.lr, "warmup_fraction": recipe.train.warmup_fraction, "batch_size": recipe.batch_size,
            "steps": history.steps,
            "train_seconds": round(history.train_seconds, 1), "train_tokens": history.train_tokens,
            "tokens_per_second": round(history.train_tokens / max(history.train_seconds, 1e-9)),
            "valid_ppl": round(final["ppl"], 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["auto", *KINDS], default="auto")
    parser.add_argument("--models", nargs="+", default=["lstm", "transformer"])
    parser.add_argument("--stage", choices=["lr", "batch"], default="lr",
                        help="lr: learning rate by warm-up (six trials); batch: the batch size (three trials)")
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
        recipe = recipe_for(name, kind)
        if args.stage == "lr":
            points = [dict(lr=lr, warmup=warmup) for lr, warmup in grid(name, kind)]
        else:
            points = [dict(lr=recipe.train.lr, warmup=recipe.train.warmup_fraction or 0.02, batch_size=b)
                      for b in batch_grid(name, kind)]
        trials = []
        for point in points:
            t0 = time.perf_counter()
            trial = run_trial(trial_recipe(name, kind, seconds=args.trial_seconds, vocab_size=len(vocab), **point),
                              ids, device, args.seed) | {"wall_seconds": round(time.perf_counter() - t0, 1)}
            trials.append(trial)
            print(f"{name:>12}: lr {trial['lr']:.2e}, warm-up {trial['warmup_fraction']:.2f}, batch "
                  f"{trial['batch_size']}: {trial['steps']:,} steps, {trial['tokens_per_second']:,} tokens/s, "
                  f"valid {trial['valid_ppl']:.1f}", flush=True)
        best = min(trials, key=lambda t: t["valid_ppl"])
        searched = ("lr", "warmup_fraction") if args.stage == "lr" else ("batch_size",)
        centre_point = (dict(zip(searched, centre(name, kind))) if args.stage == "lr"
                        else {"batch_size": BATCH_CENTRES.get(kind, {}).get(name, recipe.batch_size)})
        searches[name] = {"centre": centre_point, "trials": trials,
                          "winner": {**{k: best[k] for k in searched}, "valid_ppl": best["valid_ppl"]}}
        print(f"{name:>12}: winner {searches[name]['winner']}")
    grid_note = (f"learning rate x {list(LR_FACTORS)} by warm-up fraction x {list(WARMUP_FACTORS)} around its centre"
                 if args.stage == "lr" else
                 f"batch size x {list(BATCH_FACTORS)} of its centre, at the first stage's learning rate and warm-up")
    result = stamp("tune", device, kind=kind) | {
        "stage": args.stage,
        "note": (f"the same search for every runner: {grid_note}, {args.trial_seconds:.0f} s of training per trial "
                 "(warm-up and cosine decay fitted to it), scored on the whole validation set; the test set is "
                 "never read"),
        "trial_seconds": args.trial_seconds, "searches": searches}
    name = "tune" if args.stage == "lr" else "tune_batch"
    save(result, args.out or default_result_path(name, device, kind), echo=False)
    return result

if __name__ == "__main__":
    main()
