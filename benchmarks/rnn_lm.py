"""Benchmark: an LSTM language model on WikiText-2 (notebook 02, ``llmcourse.rnn``).

Targets (issue 4):
* on one GPU (``--kind gpu``, the default when CUDA is available): a tied 2-layer 650-unit LSTM reaches
  test perplexity <= 86.7 in under 10 minutes of training;
* on a 2-core CPU (``--kind cpu``): the recipe that notebook 02 trains beats the n-gram baseline's test
  perplexity (5-gram modified Kneser-Ney, read from ``benchmarks/results/ngram.json``) within the
  notebook's 15-minute budget.

Prints its figures and saves them to ``benchmarks/results/rnn_lm.json`` (``--out`` to change).
Run heavy CPU jobs under ``flock /tmp/llmcourse-cpu.lock``.

    LLMCOURSE_DATA=/work/shared/data flock /tmp/llmcourse-cpu.lock .venv/bin/python benchmarks/rnn_lm.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from llmcourse.data import BPTTIterator, batchify
from llmcourse.rnn import RNNLM, wikitext2_recipe
from llmcourse.training import evaluate_perplexity, train

from _common import lm_arguments, lm_start, save, stamp  # benchmarks/_common.py

ROOT = Path(__file__).resolve().parent
GPU_TARGET_PPL, GPU_TARGET_SECONDS = 86.7, 600.0
NGRAM_FALLBACK = 220.1  # KenLM 5-gram modified Kneser-Ney, test (benchmarks/results/ngram.json)


def ngram_baseline() -> float:
    path = ROOT / "results" / "ngram.json"
    try:
        return float(json.loads(path.read_text())["kenlm_reference"]["test"]["5"])
    except (OSError, KeyError, ValueError):
        return NGRAM_FALLBACK


def main() -> dict:
    args = lm_arguments(__doc__, "llmcourse.rnn.wikitext2_recipe", ROOT / "results" / "rnn_lm.json").parse_args()
    run = lm_start(args, wikitext2_recipe)
    device, kind, recipe, ids, train_ids = run.device, run.kind, run.recipe, run.ids, run.train_ids
    train_data = BPTTIterator(batchify(train_ids, recipe.batch_size), recipe.bptt)
    valid_data = BPTTIterator(batchify(ids["valid"], recipe.eval_batch_size), recipe.eval_bptt)
    test_data = BPTTIterator(batchify(ids["test"], recipe.eval_batch_size), recipe.eval_bptt)

    model = RNNLM(recipe.model)
    print(f"{kind}: {recipe.note}\n{recipe.model}\n{recipe.train}\n{model.num_parameters():,} parameters on {device}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    history = train(model, train_data, valid_data, recipe.train, device=device, loss_fn=model.loss_fn)
    t_eval = time.perf_counter()
    # the full validation and test sets, exactly (training may have validated on a part only)
    valid_ppl = evaluate_perplexity(model, valid_data, loss_fn=model.loss_fn)
    test_ppl = evaluate_perplexity(model, test_data, loss_fn=model.loss_fn)
    eval_seconds = time.perf_counter() - t_eval
    epochs = history.train_tokens / max(1, train_ids.numel())

    result = stamp("rnn_lm", device, kind=kind) | {
        "note": recipe.note + ("" if device.type == "cuda" else "; CPU only (no GPU was available)"),
        "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(recipe.model).items()},
        "parameters": model.num_parameters(),
        "batch_size": recipe.batch_size,
        "bptt": recipe.bptt,
        "eval_batch_size": recipe.eval_batch_size,
        "eval_bptt": recipe.eval_bptt,
        "train_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(recipe.train).items()},
        "steps": history.train[-1]["step"] if history.train else 0,
        "epochs": round(epochs, 3),
        "train_tokens": history.train_tokens,
        "train_seconds": round(history.train_seconds, 1),
        "tokens_per_second": round(history.train_tokens / history.train_seconds),
    } | run.outcome(history, valid_ppl, test_ppl, eval_seconds)
    if kind == "gpu":
        result["target"] = {"test_ppl": GPU_TARGET_PPL, "train_seconds": GPU_TARGET_SECONDS}
        result["target_met"] = test_ppl <= GPU_TARGET_PPL and history.train_seconds < GPU_TARGET_SECONDS
    else:
        baseline = ngram_baseline()
        result["target"] = {"test_ppl_below_ngram": baseline}
        result["target_met"] = test_ppl < baseline
    save(result, args.out, hide=("valid_curve",))
    return result


if __name__ == "__main__":
    main()
