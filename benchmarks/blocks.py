"""Benchmark: GPT-2's block against Llama's (notebook 06), on WikiText-2 cut into BPE tokens.

Both models come from ``llmcourse.recipes`` (``gpt-bpe`` and ``llama-bpe``: the same sizes, parameters to
1%, training, batches and data), train under the same wall-clock budget on the same device, and are
scored on the whole validation and test sets by per-word perplexity (``llmcourse.training.stream_nll``
divided by the words, one ``<eos>`` per line; ``llmcourse.lm.per_word_perplexity``), so the figures sit
beside the word-level models' in the README. The tokenizer is ``llmcourse.bpe.train_bpe`` on the training
text, with notebook 06's vocabulary for the kind (4,096 on a CPU, 16,384 on a GPU).

Notebook 06 runs the same race for one minute each; this runs it for the budget
``llmcourse.budget.race_budget`` chooses on this machine (the recipes' 10 minutes unless the machine is
too slow for them; ``--minutes`` to set it). The word-level Transformer of notebook 04 and the BPE models
have the same blocks (4 layers of width 128): the same non-embedding parameters, printed and saved, so
the per-word comparison is one of tokenization, not of size. Saves
``benchmarks/results/blocks_<device>.json``. Run heavy CPU jobs one at a time:

    LLMCOURSE_DATA=../shared/data .venv/bin/python benchmarks/blocks.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from llmcourse import bpe
from llmcourse.budget import race_budget
from llmcourse.config import get_device
from llmcourse.data import WikiText2
from llmcourse.lm import per_word_perplexity
from llmcourse.recipes import KINDS, recipe_for, recipe_kind
from llmcourse.training import stream_nll

from _common import default_result_path, save, stamp, train_lm  # benchmarks/_common.py

VOCAB = {"quick": 1_000, "cpu": 4_096, "gpu": 16_384, "gpu-fp16": 16_384}


def word_non_embedding(kind: str) -> int:
    """The non-embedding parameters of notebook 04's word-level Transformer of the same kind."""
    from llmcourse.transformer import TransformerLM

    return TransformerLM(recipe_for("transformer", kind).model_config).num_parameters(non_embedding=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["auto", *KINDS], default="auto",
                        help="recipes from llmcourse.recipes.recipe_for; auto: by the device (recipe_kind)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="the budget of each model (default: the recipe's, 10 minutes; quick runs count steps)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = get_device()
    kind = args.kind if args.kind != "auto" else recipe_kind(device)
    t0 = time.perf_counter()
    lines = {s: WikiText2(s) for s in ("train", "valid", "test")}
    train_text = lines["train"] if kind != "quick" else lines["train"][:8_000]
    alphabet = sorted({ch for line in lines["train"] for word in line.split() for ch in word})
    tokenizer = bpe.train_bpe(train_text, vocab_size=VOCAB[kind], initial_alphabet=alphabet)
    ids = {s: torch.tensor(tokenizer.encode_lines(text), dtype=torch.long) for s, text in lines.items()}
    words = {s: sum(len(line.split()) + 1 for line in text) for s, text in lines.items()}
    data_seconds = time.perf_counter() - t0

    budget = race_budget(["gpt-bpe", "llama-bpe"], ids, device=device, kind=kind, vocab_size=len(tokenizer))
    print(budget, flush=True)
    runs = {}
    for name in ("gpt-bpe", "llama-bpe"):
        recipe = budget.recipe(name)
        if args.minutes is not None:
            recipe = recipe.with_budget(60 * args.minutes)
        recipe.train.progress = False
        figures, model = train_lm(recipe, ids, device, seed=args.seed, return_model=True)
        for split in ("valid", "test"):
            stream = ids[split] if kind != "quick" else ids[split][:20_000]
            n_words = words[split] if kind != "quick" else round(stream.numel() * words[split] / ids[split].numel())
            nll, count = stream_nll(model, stream, recipe.seq_len, batch_size=recipe.eval_batch_size, device=device)
            figures[f"{split}_ppl_per_word"] = round(per_word_perplexity(nll, n_words - 1), 2)
        figures["non_embedding_parameters"] = model.num_parameters(non_embedding=True)
        runs[name] = figures
        print(f"{name:>10}: {figures['steps']:,} steps, {figures['tokens_per_second']:,} tokens/s, per-word valid "
              f"{figures['valid_ppl_per_word']:.1f}, test {figures['test_ppl_per_word']:.1f}", flush=True)

    result = stamp("blocks", device, kind=kind) | {
        "note": "the same recipe, budget, data and device for both blocks; per-word perplexity over the whole "
                "splits (valid_ppl/test_ppl are per BPE token, first eval_limit batches in quick mode)",
        "bpe_vocab_size": len(tokenizer),
        "tokens_per_word": {s: round(ids[s].numel() / words[s], 4) for s in ids},
        "data_seconds": round(data_seconds, 1),
        "calibration": {"seconds": budget.seconds, "tokens_per_second": {k: round(v) for k, v in budget.rates.items()},
                        "explanation": str(budget)},
        "word_level_transformer_non_embedding_parameters": word_non_embedding(kind),
        "models": runs,
    }
    save(result, args.out or default_result_path("blocks", device, kind), echo=False)
    return result


if __name__ == "__main__":
    main()
