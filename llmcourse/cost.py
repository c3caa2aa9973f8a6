"""What computation costs: timing and memory harnesses kept apart from the maths they measure.

:func:`attention_cost` times causal self-attention against sequence length (notebook 03).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Sequence

import torch

from .attention import scaled_dot_product_attention

__all__ = ["attention_cost"]


_MEMORY_PROBE = """
import json, resource, torch
from llmcourse.attention import scaled_dot_product_attention

def rss(field):  # resident memory in bytes from /proc (Linux); None elsewhere
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
    except (OSError, StopIteration):
        return None

torch.set_num_threads({threads})
b, h, t, d, fused = {batch}, {heads}, {t}, {d_head}, {fused}
q, k, v = (torch.randn(b, h, t, d) for _ in range(3))
with torch.no_grad():
    scaled_dot_product_attention(q[..., :8, :], k[..., :8, :], v[..., :8, :], need_weights=not fused)  # warm up
    try:  # reset the peak ("high water mark") so that it measures this call only
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss("VmRSS:")
    except OSError:
        before = None
    if before is None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out, w = scaled_dot_product_attention(q, k, v, is_causal=True, need_weights=not fused, check=False)
    peak = rss("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(max(peak - before, 0)))
"""


def _peak_memory_cpu(t: int, batch: int, heads: int, d_head: int, fused: bool) -> int:
    """Extra peak resident memory (bytes) of one forward, measured in a fresh Python process."""
    code = _MEMORY_PROBE.format(threads=torch.get_num_threads(), batch=batch, heads=heads, t=t, d_head=d_head,
                                fused=fused)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"The memory probe failed: {done.stderr.strip()[-500:]}")
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


def attention_cost(seq_lens: Sequence[int], *, batch: int = 1, heads: int = 8, d_head: int = 64, repeats: int = 5,
                   device: torch.device | str = "cpu", memory: bool = True, progress: bool = True) -> list[dict]:
    """Time (and peak memory) of causal self-attention, naive versus fused, for each sequence length.

    For each ``t`` in ``seq_lens`` and each path (``"naive"``: :func:`scaled_dot_product_attention`
    returning its weights; ``"fused"``: the same call with ``need_weights=False``, which goes through
    ``F.scaled_dot_product_attention``) it records the best (``seconds``) and the median time of
    ``repeats`` forward passes on ``(batch, heads, t, d_head)`` float32 inputs (the best is the least
    disturbed by other programs) and, with ``memory``, the extra peak memory in bytes (on
    CUDA from the allocator; on CPU from the peak resident size of a fresh process). Also records
    the size of the ``t x t`` weight matrices that the naive path builds.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    rows = []
    for t in tqdm(list(seq_lens), desc="attention cost", disable=not progress):
        q, k, v = (torch.randn(batch, heads, t, d_head, device=device) for _ in range(3))
        for path in ("naive", "fused"):
            fused = path == "fused"

            def run() -> None:
                with torch.no_grad():
                    scaled_dot_product_attention(q, k, v, is_causal=True, need_weights=not fused, check=False)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)

            run()  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            row = {"t": t, "path": path, "seconds": min(times), "median_seconds": statistics.median(times),
                   "weights_bytes": batch * heads * t * t * 4}
            if memory:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                    run()
                    row["peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
                else:
                    row["peak_bytes"] = _peak_memory_cpu(t, batch, heads, d_head, fused)
            rows.append(row)
    return rows
