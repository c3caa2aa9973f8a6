"""What computation costs: timing and memory harnesses kept apart from the maths they measure.

:func:`attention_cost` times causal self-attention against sequence length (notebook 03);
:func:`training_flops_per_token` counts a model's training FLOPs on one real step. The table of every model's
FLOPs, seconds and energy lives with the results table (:mod:`llmcourse.results`): ``record``, ``load``,
``compute_table`` and ``show_compute_table`` are named here as well.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Sequence

import torch
from torch import Tensor, nn

from .attention import scaled_dot_product_attention
# The compute table is kept with the results table (one bookkeeping module); its names stay here too, where
# the notebooks record their rows: cost.record(...), cost.show_compute_table().
from .results import DEVICE_WATTS, compute_table, energy_kwh, show_compute_table  # noqa: F401
from .results import load_compute as load  # noqa: F401
from .results import record_compute as record  # noqa: F401

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
    (softmax, norms, activations) is not counted, as in the "6 N" rule of thumb. Attention is counted
    through PyTorch's reference ("math") kernel: the counter has no formula for the fused CPU kernel
    that runs without dropout and would count its products as zero (PyTorch 2.13). The count is the
    one definition of :func:`llmcourse.transformer.model_flops_per_token`. Divided by the tokens the loss
    scores, it multiplies ``History.train_tokens``. The gradients are zeroed afterwards.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
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
        with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
            output, _ = forward_step(model, x)
            loss_sum, n = loss_fn(output, y)
            (loss_sum / n).backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return (counter.get_total_flops() + 3 * sum(recurrent_flops)) / int(n)
