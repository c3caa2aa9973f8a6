"""Benchmark: a GPT-style Transformer language model on WikiText-2 (notebook 04, ``llmcourse.transformer``).

Targets (issue 6):
* on one H100 (``--kind gpu``, the default when CUDA is available): test perplexity below the course's
  own LSTM (``benchmarks/results/rnn_lm.json``) and at or below 90 in any case, in under 15 minutes of
  training; throughput in tokens per second and model FLOPs utilisation (MFU) printed, aiming at 35%;
* on a 2-core CPU (``--kind cpu``): the recipe of notebook 04; ``--max-steps`` shortens it to a run of a
  few minutes (the JSON says so). MFU is then measured against an *estimated* fp32 peak of the CPU
  (cores x clock x FLOPs per cycle from its vector units), clearly labelled as such.

MFU = model FLOPs per second / peak FLOPs per second, with model FLOPs per token counted as
``6 N`` (N: the weights of every matrix product, the output layer included, embeddings' look-ups
excluded) plus attention's ``6 * n_layers * seq_len * d_model`` (causal half of ``q k^T`` and
``weights @ v``, forward and backward); see :func:`llmcourse.transformer.model_flops_per_token`.
On CUDA: bf16 autocast, PyTorch's fused attention kernel, and ``torch.compile`` (``--no-compile`` to
switch it off). Prints its figures and saves them to ``benchmarks/results/transformer_lm.json``.

    LLMCOURSE_DATA=/work/shared/data flock /tmp/llmcourse-cpu.lock .venv/bin/python benchmarks/transformer_lm.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from llmcourse.attention import has_fused_attention
from llmcourse.data import LMWindowDataset
from llmcourse.training import evaluate_perplexity, train
from llmcourse.transformer import TransformerLM, model_flops_per_token, wikitext2_recipe

from _common import lm_arguments, lm_start, save, stamp  # benchmarks/_common.py

ROOT = Path(__file__).resolve().parent
GPU_TARGET_PPL, GPU_TARGET_SECONDS, GPU_TARGET_MFU = 90.0, 900.0, 0.35

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from the vendors' data sheets.
GPU_BF16_PEAK = {"H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12,
                 "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12, "RTX 4090": 165e12}


def gpu_peak(name: str) -> tuple[float | None, str]:
    for key, peak in GPU_BF16_PEAK.items():  # the first (most specific) match wins
        if all(part in name for part in key.split()):
            return peak, f"{key} dense bf16 peak {peak / 1e12:.0f} TFLOP/s"
    return None, f"unknown GPU {name!r}: no peak known, MFU not computed"


def cpu_peak() -> tuple[float, str]:
    """An estimate of the CPU's fp32 peak: cores x clock x FLOPs per cycle (2 FMA units x vector width x 2)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    mhz = next((float(line.split(":", 1)[1]) for line in info.splitlines() if line.startswith("cpu MHz")), 2500.0)
    intel = "GenuineIntel" in info
    # AVX-512 on Intel server cores: two 512-bit FMA units; AMD Zen 4 runs AVX-512 on 256-bit units.
    per_cycle = 64 if ("avx512f" in flags and intel) else 32 if ("avx2" in flags and "fma" in flags) else 16
    cores = os.cpu_count() or 1
    peak = cores * mhz * 1e6 * per_cycle
    return peak, (f"ESTIMATED CPU fp32 peak {peak / 1e9:.0f} GFLOP/s = {cores} cores x {mhz / 1000:.2f} GHz x "
                  f"{per_cycle} FLOP/cycle ({platform.processor() or platform.machine()})")


def main() -> dict:
    parser = lm_arguments(__doc__, "llmcourse.transformer.wikitext2_recipe",
                          ROOT / "results" / "transformer_lm.json")
    parser.add_argument("--no-compile", action="store_true", help="do not torch.compile (CUDA only anyway)")
    args = parser.parse_args()
    run = lm_start(args, wikitext2_recipe)
    device, kind, recipe, ids, train_ids = run.device, run.kind, run.recipe, run.ids, run.train_ids
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.no_compile:
        recipe.train.compile = False
    ctx = recipe.model.max_context
    pin = device.type == "cuda"
    train_data = DataLoader(LMWindowDataset(train_ids, ctx), batch_size=recipe.batch_size, shuffle=True,
                            drop_last=True, pin_memory=pin)
    valid_data = DataLoader(LMWindowDataset(ids["valid"], ctx), batch_size=recipe.eval_batch_size, pin_memory=pin)
    test_data = DataLoader(LMWindowDataset(ids["test"], ctx), batch_size=recipe.eval_batch_size, pin_memory=pin)

    model = TransformerLM(recipe.model)
    flops_per_token = model_flops_per_token(recipe.model, ctx)
    print(f"{kind}: {recipe.note}\n{recipe.model}\n{recipe.train}\n{model.num_parameters():,} parameters "
          f"({model.num_parameters(non_embedding=True):,} without embeddings) on {device}; "
          f"{flops_per_token / 1e6:.1f} MFLOP per training token")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    history = train(model, train_data, valid_data, recipe.train, device=device)
    t_eval = time.perf_counter()
    valid_ppl = evaluate_perplexity(model, valid_data)
    test_ppl = evaluate_perplexity(model, test_data)
    eval_seconds = time.perf_counter() - t_eval

    # Throughput: the steady state (the logged windows after the first, which holds warm-up and
    # compilation), and the whole run including validation passes.
    rates = [r["tokens_per_sec"] for r in history.train[1:]] or [r["tokens_per_sec"] for r in history.train]
    steady = sorted(rates)[len(rates) // 2] if rates else float("nan")
    overall = history.train_tokens / history.train_seconds
    if device.type == "cuda":
        peak, peak_note = gpu_peak(torch.cuda.get_device_name(device))
    else:
        peak, peak_note = cpu_peak()
    mfu = None if peak is None else steady * flops_per_token / peak

    result = stamp("transformer_lm", device, kind=kind) | {
        "note": recipe.note + ("" if device.type == "cuda" else
                               "; CPU run (no GPU was available for this work)")
        + (f"; SHORTENED to {args.max_steps} of the recipe's {run.recipe_steps} steps" if args.max_steps else ""),
        "model": vars(recipe.model),
        "parameters": model.num_parameters(),
        "non_embedding_parameters": model.num_parameters(non_embedding=True),
        "batch_size": recipe.batch_size,
        "context": ctx,
        "steps": history.train[-1]["step"] if history.train else 0,
        "epochs": round(history.train_tokens / max(1, train_ids.numel()), 3),
        "train_tokens": history.train_tokens,
        "train_seconds": round(history.train_seconds, 1),
        "tokens_per_second_steady": round(steady),
        "tokens_per_second_overall": round(overall),
        "flops_per_token": flops_per_token,
        "peak_flops": peak,
        "peak_note": peak_note,
        "mfu": None if mfu is None else round(mfu, 4),
        "mfu_note": ("against the GPU's dense bf16 peak" if device.type == "cuda" else
                     "against an ESTIMATED fp32 CPU peak (not comparable with GPU MFU)"),
        "bf16": device.type == "cuda" and recipe.train.bf16,
        "fused_attention": has_fused_attention(),
        "compiled": device.type == "cuda" and recipe.train.compile,
    } | run.outcome(history, valid_ppl, test_ppl, eval_seconds)
    try:
        lstm = json.loads((ROOT / "results" / "rnn_lm.json").read_text())
        result["lstm_reference"] = {"kind": lstm.get("kind"), "test_ppl": lstm.get("test_ppl")}
    except (OSError, ValueError):
        lstm = None
    if kind == "gpu":
        bound = min(GPU_TARGET_PPL, lstm["test_ppl"]) if lstm and lstm.get("kind") == "gpu" else GPU_TARGET_PPL
        result["target"] = {"test_ppl_at_most": bound, "train_seconds": GPU_TARGET_SECONDS, "mfu": GPU_TARGET_MFU}
        result["target_met"] = (test_ppl <= bound and history.train_seconds < GPU_TARGET_SECONDS
                                and mfu is not None and mfu >= GPU_TARGET_MFU)
    save(result, args.out, hide=("valid_curve",))
    print(f"throughput {steady:,.0f} tokens/s (steady), {overall:,.0f} tokens/s (with validation); "
          + (f"MFU {100 * mfu:.2f}% {result['mfu_note']} [{peak_note}]" if mfu is not None else "MFU: n/a"))
    return result


if __name__ == "__main__":
    main()
