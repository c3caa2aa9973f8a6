"""What the benchmark scripts share: what every benchmark does with its figures (stamp them with the
machine and the date, print them, and save them as JSON, atomically: an interrupted run never leaves
half a file), the FLOP/s peaks that MFU is measured against, and the training of one language model
from its recipe (``llmcourse.recipes``), which the race runs for each model.

The scripts are run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from llmcourse.attention import has_fused_attention
from llmcourse.config import machine, seed_everything
from llmcourse.files import atomic_write
from llmcourse.recipes import Recipe
from llmcourse.training import train
from llmcourse.transformer import TransformerConfig, model_flops_per_token


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


def timed(fn):
    """``(fn(), seconds it took)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def tokenizer_args(argv: list[str] | None, description: str, quick_help: str, name: str):
    """The command line of the tokenizer benchmarks (``bpe.py``, ``bytebpe.py``): ``--quick``, ``--threads``
    (``tokenizers``' threads, set through ``RAYON_NUM_THREADS`` before it first runs in parallel), ``--out``.
    Returns the arguments and the result file (``results/<name>[_quick].json`` unless ``--out``)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--threads", type=int, default=1, help="tokenizers' threads (default 1); 0 = its default")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    return args, args.out or Path(__file__).parent / "results" / f"{name}{'_quick' if args.quick else ''}.json"


def default_result_path(benchmark: str, device: torch.device, kind: str) -> Path:
    """``benchmarks/results/<benchmark>_<device>[_quick].json``: ``cpu``, or the GPU's name."""
    where = "cpu" if device.type != "cuda" else torch.cuda.get_device_name(device).lower().replace(" ", "-")
    return Path(__file__).resolve().parent / "results" / f"{benchmark}_{where}{'_quick' if kind == 'quick' else ''}.json"


# --------------------------------------------------------------------------------------------
# Peaks for MFU
# --------------------------------------------------------------------------------------------
# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from the vendors' data sheets.
GPU_BF16_PEAK = {"H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12,
                 "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12, "RTX 4090": 165e12, "T4": 65e12}


def gpu_peak(name: str) -> tuple[float | None, str]:
    for key, peak in GPU_BF16_PEAK.items():  # the first (most specific) match wins
        if all(part in name for part in key.split()):
            kind = "fp16" if key == "T4" else "bf16"  # a T4 has no bf16: its fp16 tensor-core peak
            return peak, f"{key} dense {kind} peak {peak / 1e12:.0f} TFLOP/s"
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


def peak_flops(device: torch.device) -> tuple[float | None, str]:
    return gpu_peak(torch.cuda.get_device_name(device)) if device.type == "cuda" else cpu_peak()


# --------------------------------------------------------------------------------------------
# One language model, trained from its recipe
# --------------------------------------------------------------------------------------------
def _plain(config) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()}


def train_lm(recipe: Recipe, ids: dict, device: torch.device, seed: int = 0, return_model: bool = False):
    """Train ``recipe``'s model on WikiText-2's ``ids`` and score it on the whole validation and test
    sets; the figures of one entry of a race (budget, seconds trained, tokens, tokens/s, perplexities,
    the validation curve against seconds, MFU for a Transformer), and the trained model with
    ``return_model=True``."""
    seed_everything(seed)
    loaders = recipe.loaders(ids, seed=seed)
    model = recipe.model()
    print(f"--- {recipe.name} ({recipe.kind}): {recipe.note}\n{recipe.model_config}\n{recipe.train}\n"
          f"{model.num_parameters():,} parameters on {device}", flush=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    history = train(model, loaders["train"], loaders["valid"], recipe.train, device=device)
    t_eval = time.perf_counter()
    ppl = recipe.perplexities(model, loaders)
    eval_seconds = time.perf_counter() - t_eval
    train_tokens = ids["train"].numel() if recipe.train_limit is None else min(recipe.train_limit, ids["train"].numel())
    # Throughput: the median of the logged windows after the first (which holds warm-up and compilation).
    rates = [r["tokens_per_sec"] for r in history.train[1:]] or [r["tokens_per_sec"] for r in history.train]
    steady = sorted(rates)[len(rates) // 2] if rates else float("nan")
    figures = {
        "model": recipe.name,
        "note": recipe.note,
        "model_config": _plain(recipe.model_config),
        "train_config": _plain(recipe.train),
        "parameters": model.num_parameters(),
        "batch_size": recipe.batch_size,
        "seq_len": recipe.seq_len,
        "budget_seconds": recipe.train.budget_seconds,
        "train_seconds": round(history.train_seconds, 1),
        "setup_seconds": round(history.setup_seconds, 2),
        "steps": history.steps,
        "train_tokens": history.train_tokens,
        "epochs": round(history.train_tokens / max(1, train_tokens), 3),
        "tokens_per_second": round(history.train_tokens / max(history.train_seconds, 1e-9)),
        "tokens_per_second_steady": round(steady),
        "precision": history.precision,
        "compiled": history.compiled,
        "fused_attention": has_fused_attention() if recipe.name == "transformer" else None,
        "best_step": history.best_step,
        "valid_curve": [{"seconds": round(r["seconds"], 1), "step": r["step"], "ppl": round(r["ppl"], 2)}
                        for r in history.valid],
        "valid_ppl": round(ppl["valid"], 2),
        "test_ppl": round(ppl["test"], 2),
        "eval_seconds": round(eval_seconds, 1),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }
    if isinstance(recipe.model_config, TransformerConfig):
        flops = model_flops_per_token(recipe.model_config, recipe.seq_len)
        peak, peak_note = peak_flops(device)
        figures |= {"flops_per_token": flops, "peak_flops": peak, "peak_note": peak_note,
                    "mfu": None if peak is None else round(steady * flops / peak, 4),
                    "mfu_note": ("against the GPU's dense peak" if device.type == "cuda" else
                                 "against an ESTIMATED fp32 CPU peak (not comparable with GPU MFU)")}
    return (figures, model) if return_model else figures
