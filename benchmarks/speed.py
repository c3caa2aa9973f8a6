"""Benchmark: what is free speed for the race's recipes on this machine (issue 23, item 7).

For the LSTM and the Transformer of the race (``llmcourse.recipes``, the kind for this device), the same
model trains the same number of steps through ``llmcourse.training.train`` with one thing changed at a
time:

* the optimizer's implementation: AdamW's per-parameter loop (PyTorch's default off CUDA), ``foreach``
  (one kernel over every parameter) and ``fused``;
* the number of CPU threads (``torch.set_num_threads``);
* ``torch.compile`` (Inductor, a C++ toolchain on a CPU), its compilation time counted separately.

Each variant reports the steady tokens per second (the median of the logged windows after the first)
and the seconds of its first window (which holds compilation). Saves ``benchmarks/results/speed_<device>.json``.
Run heavy CPU jobs one at a time:

    LLMCOURSE_DATA=../shared/data .venv/bin/python benchmarks/speed.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import torch

from llmcourse import training
from llmcourse.config import get_device, seed_everything
from llmcourse.data import WikiText2, numericalize, tokenize_lines, wikitext2_vocab
from llmcourse.recipes import KINDS, recipe_for, recipe_kind
from llmcourse.training import TrainConfig, train

from _common import default_result_path, save, stamp  # benchmarks/_common.py



def adamw(model: torch.nn.Module, config: TrainConfig, impl: str) -> torch.optim.Optimizer:
    """The loop's AdamW (decay on matrices only) with the implementation ``impl``."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    flags = {"loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[impl]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=config.betas, **flags)


def measure(recipe, ids, device, steps: int, impl: str = "loop", threads: int | None = None,
            compiled: bool = False) -> dict:
    seed_everything(0)
    model = recipe.model()
    config = TrainConfig(max_steps=steps, lr=recipe.train.lr, weight_decay=recipe.train.weight_decay,
                         betas=recipe.train.betas, warmup_steps=0, log_every=max(1, steps // 8), progress=False,
                         precision=recipe.train.precision)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with mock.patch.object(training, "resolve_compile", lambda *_: compiled):
            history = train(model, recipe.loaders(ids)["train"], None, config, device=device,
                            optimizer=adamw(model, config, impl))
    finally:
        torch.set_num_threads(before)
    rates = sorted(r["tokens_per_sec"] for r in history.train[1:])
    first = history.train[0]
    return {"impl": impl, "threads": threads or before, "compiled": history.compiled, "steps": history.steps,
            "tokens_per_second_steady": round(rates[len(rates) // 2]),
            "first_window_seconds": round(first["seconds"], 2), "train_seconds": round(history.train_seconds, 1),
            "final_loss": round(history.train[-1]["loss"], 4)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["auto", *KINDS], default="auto")
    parser.add_argument("--steps", type=int, default=48, help="steps per variant")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    device = get_device()
    kind = args.kind if args.kind != "auto" else recipe_kind(device)
    vocab = wikitext2_vocab()
    ids = {s: numericalize(tokenize_lines(WikiText2(s)), vocab) for s in ("train", "valid", "test")}
    cores = torch.get_num_threads()
    variants = [dict(impl="loop"), dict(impl="foreach"), dict(impl="fused")]
    variants += [dict(impl="loop", threads=n) for n in sorted({1, cores}) if n != cores]
    if not args.no_compile:
        variants.append(dict(impl="loop", compiled=True))
    runs = {}
    for name in ("lstm", "transformer"):
        recipe = recipe_for(name, kind, vocab_size=len(vocab))
        runs[name] = []
        for variant in variants:
            t0 = time.perf_counter()
            try:
                figures = measure(recipe, ids, device, args.steps, **variant)
            except Exception as exc:  # a variant this machine cannot run (no compiler, say) is reported
                figures = variant | {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            figures["wall_seconds"] = round(time.perf_counter() - t0, 1)
            runs[name].append(figures)
            print(f"{name:>12} {variant}: {figures.get('tokens_per_second_steady', figures.get('error'))} tokens/s "
                  f"(first window {figures.get('first_window_seconds')} s)", flush=True)
        base = runs[name][0]["tokens_per_second_steady"]
        for figures in runs[name]:
            if "tokens_per_second_steady" in figures:
                figures["speedup"] = round(figures["tokens_per_second_steady"] / base, 3)
    result = stamp("speed", device, kind=kind) | {
        "note": "the same recipe and steps for every variant; one change at a time against AdamW's per-parameter "
                "loop on all threads, eager",
        "steps": args.steps, "models": runs}
    save(result, args.out or default_result_path("speed", device, kind), echo=False)
    return result


if __name__ == "__main__":
    main()
