"""What the benchmark scripts share: the set-up of the language-model benchmarks, and what every
benchmark does with its figures (stamp them with the machine and the date, print them, and save them
as JSON, atomically: an interrupted run never leaves half a file).

The scripts are run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from llmcourse.config import get_device, machine, seed_everything
from llmcourse.data import WikiText2, numericalize, tokenize_lines, wikitext2_vocab
from llmcourse.files import atomic_write


def stamp(benchmark: str, device: torch.device | None = None, **fields) -> dict:
    """The head of a result: which benchmark, on which machine, when; then ``fields``."""
    return {"benchmark": benchmark, **fields, "machine": machine(device),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def save(result: dict, out: str | Path, *, hide: tuple[str, ...] = (), echo: bool = True) -> Path:
    """Print ``result`` (less the long entries named in ``hide``) and write it all to ``out``."""
    if echo:
        print(json.dumps({k: v for k, v in result.items() if k not in hide}, indent=2))
    text = json.dumps(result, indent=2) + "\n"
    path = atomic_write(out, lambda tmp: tmp.write_text(text))
    print(f"saved to {path}")
    return path


# --------------------------------------------------------------------------------------------
# The language-model benchmarks (rnn_lm.py, transformer_lm.py)
# --------------------------------------------------------------------------------------------
def lm_arguments(description: str, recipes: str, out: Path) -> argparse.ArgumentParser:
    """The options every language-model benchmark takes; ``recipes`` names its recipe function."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["auto", "quick", "cpu", "gpu"], default="auto",
                        help=f"recipe from {recipes}; auto: gpu on CUDA, else cpu")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="override the recipe's number of steps (a shorter run)")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--seed", type=int, default=0)
    return parser


@dataclass
class LMRun:
    """A language-model benchmark's start: its device, recipe and WikiText-2, numericalized."""

    device: torch.device
    kind: str
    recipe: object  # llmcourse.rnn.Recipe or llmcourse.transformer.Recipe, --max-steps applied
    recipe_steps: int | None  # the recipe's own max_steps, before --max-steps
    ids: dict[str, Tensor]  # "train", "valid", "test"
    data_seconds: float

    @property
    def train_ids(self) -> Tensor:
        tokens = self.recipe.train_tokens
        return self.ids["train"] if tokens is None else self.ids["train"][:tokens]

    def outcome(self, history, valid_ppl: float, test_ppl: float, eval_seconds: float) -> dict:
        """The figures every language-model benchmark ends its result with."""
        cuda = self.device.type == "cuda"
        return {
            "data_seconds": round(self.data_seconds, 1),
            "eval_seconds": round(eval_seconds, 1),
            "best_step": history.best_step,
            "valid_curve": [(r["step"], round(r["ppl"], 2)) for r in history.valid],
            "valid_ppl": round(valid_ppl, 2),
            "test_ppl": round(test_ppl, 2),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        }


def lm_start(args: argparse.Namespace, wikitext2_recipe: Callable) -> LMRun:
    """Pick the device and recipe kind, seed, load WikiText-2 and the recipe (no progress bars)."""
    device = get_device()
    kind = args.kind if args.kind != "auto" else ("gpu" if device.type == "cuda" else "cpu")
    seed_everything(args.seed)
    t0 = time.perf_counter()
    vocab = wikitext2_vocab()
    ids = {s: numericalize(tokenize_lines(WikiText2(s)), vocab) for s in ("train", "valid", "test")}
    data_seconds = time.perf_counter() - t0
    recipe = wikitext2_recipe(kind, len(vocab))
    recipe_steps = recipe.train.max_steps
    if args.max_steps is not None:
        recipe.train.max_steps = args.max_steps
    recipe.train.progress = False
    return LMRun(device, kind, recipe, recipe_steps, ids, data_seconds)
