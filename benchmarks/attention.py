"""Time and peak memory of causal self-attention against sequence length: naive versus fused.

The naive path (``llmcourse.attention.scaled_dot_product_attention`` returning its weights) builds the
``(batch, heads, t, t)`` score and weight matrices; the fused path (the same call with
``need_weights=False``, i.e. ``torch.nn.functional.scaled_dot_product_attention``) does not. Figures
are for one forward pass without gradients, batch 1, 8 heads of 64 features (a GPT-2-small layer).

Run under the course's CPU lock:  flock /tmp/llmcourse-cpu.lock .venv/bin/python benchmarks/attention.py
Saves benchmarks/results/attention.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import torch

from llmcourse.cost import attention_cost
from llmcourse.config import get_device, machine

from _common import save  # benchmarks/_common.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--d-head", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: steadier figures on a shared machine); 0 = PyTorch's default")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "attention.json"))
    args = parser.parse_args()

    device = get_device()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = attention_cost(args.lengths, batch=1, heads=args.heads, d_head=args.d_head, repeats=args.repeats,
                          device=device)
    print(f"{'t':>6} {'path':>6} {'ms':>10} {'peak MiB':>10} {'t x t weights MiB':>18}")
    for r in rows:
        print(f"{r['t']:>6} {r['path']:>6} {1e3 * r['seconds']:>10.2f} {r['peak_bytes'] / 2**20:>10.1f} "
              f"{r['weights_bytes'] / 2**20:>18.1f}")
    by = {(r["t"], r["path"]): r for r in rows}
    summary = {t: {"speedup": by[t, "naive"]["seconds"] / by[t, "fused"]["seconds"],
                   "naive_peak_mib": by[t, "naive"]["peak_bytes"] / 2**20,
                   "fused_peak_mib": by[t, "fused"]["peak_bytes"] / 2**20}
               for t in args.lengths}
    for t, s in summary.items():
        print(f"t={t}: fused is {s['speedup']:.2f}x faster; extra peak memory {s['naive_peak_mib']:.1f} MiB naive, "
              f"{s['fused_peak_mib']:.1f} MiB fused")
    result = {
        "benchmark": "attention",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(device),
        "threads": torch.get_num_threads(),
        "setup": {"batch": 1, "heads": args.heads, "d_head": args.d_head, "causal": True, "dtype": "float32",
                  "grad": False, "repeats": args.repeats, "statistic": "seconds: best of repeats; median_seconds: median",
                  "memory": "extra peak resident memory of a fresh process (CPU) or allocator peak (CUDA)"},
        "rows": rows,
        "summary": {str(t): s for t, s in summary.items()},
    }
    save(result, args.out, echo=False)


if __name__ == "__main__":
    main()
