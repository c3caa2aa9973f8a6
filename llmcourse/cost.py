"""What computation costs: timing and memory harnesses kept apart from the maths they measure.

:func:`attention_cost` times causal self-attention against sequence length (notebook 03).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .attention import scaled_dot_product_attention
from .config import cache_dir, machine
from .files import update_json_rows
from .results import current_mode, format_seconds, markdown
from .results import load as load_rows

__all__ = ["attention_cost", "training_flops_per_token", "record", "load", "DEVICE_WATTS", "energy_kwh",
           "compute_table", "show_compute_table"]


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


# --------------------------------------------------------------------------------------------
# Compute: FLOPs per token, seconds, energy
# --------------------------------------------------------------------------------------------
_RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _recurrent_flops(module: nn.RNNBase, tokens: int) -> float:
    """Forward FLOPs of ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` over ``tokens`` (batch × time) steps, from its shapes.

    ``FlopCounterMode`` does not see inside PyTorch's fused recurrent kernels, so they are counted
    here: per layer, direction and token, ``2 * gates * hidden * (input + hidden)`` multiply-adds.
    """
    gates = _RECURRENT_GATES[module.mode]
    directions = 2 if module.bidirectional else 1
    flops = 0.0
    for layer in range(module.num_layers):
        n_in = module.input_size if layer == 0 else module.hidden_size * directions
        flops += 2 * gates * module.hidden_size * (n_in + module.hidden_size) * directions
    return flops * tokens


def training_flops_per_token(model: nn.Module, x: Tensor, y: Tensor | None = None, loss_fn=None) -> float:
    """FLOPs of one training step (forward, loss and backward) per scored target token of a batch.

    ``x: (batch, time)``; ``y`` defaults to ``x`` shifted by one (a language model's targets). Matrix
    products are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real step (the loss is
    the model's own ``loss_fn`` when it has one, as in :func:`llmcourse.training.train`); recurrent
    layers, which it cannot see into, are added from their shapes at each call, with the backward
    pass costing twice the forward (the usual rule, exact for matrix products). Element-wise work
    (softmax, norms, activations) is not counted, as in the "6 N" rule of thumb. Divided by the
    tokens the loss scores, it multiplies ``History.train_tokens``. The gradients are zeroed afterwards.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from .protocols import default_loss, forward_step  # the loop's own forward and loss

    y = x.roll(-1, dims=1) if y is None else y
    loss_fn = loss_fn or default_loss(model)
    recurrent_flops = []

    def count(module: nn.RNNBase, inputs, _output) -> None:
        data = inputs[0]
        steps = data.data.shape[0] if isinstance(data, nn.utils.rnn.PackedSequence) else data.shape[0] * data.shape[1]
        recurrent_flops.append(_recurrent_flops(module, steps))

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.RNNBase)]
    was_training = model.training
    model.train()
    try:
        with FlopCounterMode(display=False) as counter:
            output, _ = forward_step(model, x)
            loss_sum, n = loss_fn(output, y)
            (loss_sum / n).backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return (counter.get_total_flops() + 3 * sum(recurrent_flops)) / int(n)


# Assumed average power draw while training, in watts: the energy column is an estimate built on these.
DEVICE_WATTS = {
    "cpu": 30.0,  # a laptop or small server CPU package running two busy cores (measured CPUs draw 15-65 W)
    "t4": 70.0,  # NVIDIA T4's board power limit (Colab's usual GPU)
    "gpu": 300.0,  # a data-centre GPU under load, order of magnitude (A100 PCIe: 250-300 W)
    "apple": 20.0,  # an Apple-silicon laptop's package power under load, order of magnitude
}


def energy_kwh(seconds: float, watts: float) -> float:
    """Energy of ``seconds`` at ``watts``, in kilowatt-hours (3.6e6 joules each)."""
    if not (math.isfinite(seconds) and seconds >= 0 and math.isfinite(watts) and watts > 0):
        raise ValueError(f"energy_kwh needs seconds >= 0 and watts > 0, finite; got seconds={seconds}, watts={watts}.")
    return seconds * watts / 3.6e6


def _device_class(machine: str) -> str:
    text = machine.lower()
    if "mps" in text:
        return "apple"
    if "t4" in text:
        return "t4"
    return "gpu" if "gpu" in text else "cpu"


def compute_path() -> Path:
    return cache_dir() / "compute.json"


def record(model: str, *, train_seconds: float, train_flops: float | None, notebook: str,
           path: Path | None = None, **extra) -> dict:
    """Add or replace the compute row of ``model`` (current mode): its training seconds and FLOPs.

    Every notebook that trains a model records one, beside its results row; ``train_flops`` is None
    for a model that counts instead of computing (an n-gram model).
    """
    for name, value in (("train_seconds", train_seconds), ("train_flops", train_flops)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value!r} for {model!r}: give a finite number >= 0 (or None for no FLOPs).")
    path = path or compute_path()
    row = {"model": model, "train_seconds": float(train_seconds),
           "train_flops": None if train_flops is None else float(train_flops), "notebook": notebook,
           "mode": current_mode(), "machine": machine(), **extra}
    update_json_rows(path, row, same=lambda r: (r["model"], r.get("mode")))
    return row


def load(path: Path | None = None, mode: str | None = "current") -> list[dict]:
    """The recorded compute rows, in the order the notebooks ran (only ``mode``'s, by default the current one)."""
    return load_rows(path or compute_path(), mode)


def compute_table(rows: Sequence[dict] | None = None, watts: dict[str, float] | None = None) -> list[dict]:
    """The compute of every model the course trains: FLOPs, seconds and an energy estimate.

    ``rows`` defaults to the rows the notebooks recorded with :func:`record` (current mode).
    Models that count instead of computing (n-grams) have no FLOPs. Energy is ``train_seconds * watts``
    for the row's device class (``DEVICE_WATTS``, overridable): an estimate of the device alone, not measured, without the
    rest of the machine, cooling or the energy spent making the hardware.
    """
    rows = load() if rows is None else rows
    watts = {**DEVICE_WATTS, **(watts or {})}
    table = []
    for r in rows:
        seconds = r.get("train_seconds")
        device = _device_class(r.get("machine", ""))
        flops = r.get("train_flops")
        table.append({
            "model": r["model"], "notebook": r.get("notebook"), "train_seconds": seconds,
            "train_flops": flops, "device": device, "watts": watts[device],
            "flops_per_second": flops / seconds if flops and seconds else None,
            "energy_kwh": energy_kwh(seconds, watts[device]) if seconds is not None else None,
        })
    return table


def show_compute_table(rows: Sequence[dict] | None = None, watts: dict[str, float] | None = None) -> Any:
    """:func:`compute_table` as Markdown in a notebook (a string elsewhere)."""
    lines = ["| model | notebook | training time | training FLOPs | achieved FLOP/s | assumed power | energy (Wh) |",
             "|---|---|---|---|---|---|---|"]
    for r in compute_table(rows, watts):
        flops = f"{r['train_flops']:.2e}" if r["train_flops"] else "– (counts, no FLOPs)"
        rate = f"{r['flops_per_second'] / 1e9:.1f} G" if r["flops_per_second"] else "–"
        energy = f"{r['energy_kwh'] * 1000:.2f}" if r["energy_kwh"] is not None else "–"
        lines.append(f"| {r['model']} | {r['notebook'] or '–'} | {format_seconds(r['train_seconds'])} | {flops} "
                     f"| {rate} | {r['watts']:.0f} W ({r['device']}) | {energy} |")
    return markdown("\n".join(lines))
