"""Which number format and which compiler a training run uses, chosen by what the device can do.

* ``"bf16"``: bfloat16 autocast. Same exponent range as float32, so no loss scaling is needed.
  Ampere and newer GPUs (compute capability 8.0 or more: A100, L4, H100, RTX 30xx/40xx) compute it
  natively. Older GPUs (Colab's T4 is 7.5) only *emulate* it, slowly, although
  ``torch.cuda.is_bf16_supported()`` answers True there by default: the course asks the capability.
* ``"fp16"``: float16 autocast with a gradient scaler, for GPUs without bf16 (Colab's T4, V100).
  Small gradients would underflow in float16, so the loss is multiplied by a large factor before
  ``backward()`` and the gradients divided by it again before the optimizer step.
* ``"fp32"``: no autocast. The default on a CPU or an Apple GPU unless another format is asked for.

``"auto"`` picks bf16 on a CUDA GPU with native bf16, fp16 on one without, fp32 elsewhere;
:func:`explain_precision` says which and why (every notebook's first cell prints it).
``torch.compile`` (``"auto"``) is used only on a CUDA GPU with native bf16 and Triton installed: on a
CPU it was measured to cost time (``benchmarks/results/speed_cpu.json``: 0.94x and 0.95x, plus seconds
of compiling), and on a T4 its minutes of compiling are not worth a notebook's few minutes of training.
Everywhere else the model runs eagerly (:func:`resolve_compile`).
Used by :func:`llmcourse.training.train`; taught in notebook 04.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings

import torch

__all__ = ["PRECISIONS", "bf16_supported", "explain_precision", "resolve_precision", "autocast", "grad_scaler",
           "resolve_compile"]

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


NATIVE_BF16 = (8, 0)  # the first CUDA compute capability with bfloat16 in its tensor cores (Ampere)


def _native_bf16(device: torch.device) -> bool:
    if torch.version.hip:  # AMD GPUs under ROCm: every architecture PyTorch supports has bf16
        return True
    return tuple(torch.cuda.get_device_capability(device)) >= NATIVE_BF16


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16: a CUDA GPU only where it is native (compute capability
    8.0 or more; ``torch.cuda.is_bf16_supported()`` would also count a T4's slow emulation), a CPU by
    autocast (correct, but slower than float32 on most CPUs), an Apple GPU not."""
    device = torch.device(device)
    if device.type == "cuda":
        return _native_bf16(device)
    return device.type == "cpu"


def explain_precision(device: torch.device, precision: str = "auto") -> str:
    """The format a run on ``device`` uses for ``precision``, and why, in one line."""
    device = torch.device(device)
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        return f"{chosen} (asked for)"
    if device.type == "cuda":
        name, cap = torch.cuda.get_device_name(device), ".".join(map(str, torch.cuda.get_device_capability(device)))
        if chosen == "bf16":
            return f"bf16 autocast: the {name} (compute capability {cap}) computes bfloat16 natively"
        return (f"fp16 autocast with a gradient scaler: the {name} (compute capability {cap}) has no native "
                "bfloat16 (8.0 or newer), only a slow emulation")
    where = "an Apple GPU" if device.type == "mps" else "a CPU"
    return f"fp32: {where} trains in float32 (bfloat16 there is slower or unsupported)"


def resolve_precision(precision: str, device: torch.device) -> str:
    """The format a run on ``device`` uses for ``precision`` (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(map(repr, PRECISIONS))}.")
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if bf16_supported(device) else "fp16"
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"precision='bf16' was asked for, but {device} has no bf16 support (a T4 or V100 GPU, or "
                         "an Apple GPU): use precision='fp16' (with a gradient scaler) or 'auto'.")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' needs a CUDA GPU (its gradient scaler is CUDA-only); on {device} use "
                         "'fp32' or 'auto'.")
    return precision


def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 on CUDA, None for every other format (they need none)."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def resolve_compile(requested: bool | str, device: torch.device) -> bool:
    """Whether to ``torch.compile``: ``requested`` is True, False or ``"auto"``.

    ``"auto"`` compiles on a CUDA GPU with native bf16 (compute capability 8.0 or more) and Triton
    installed. A CPU run stays eager (measured: compiling made both race recipes slower on 2 cores), and
    so does a T4 (7.5) unless asked: its compiling costs minutes of a short notebook run. ``True`` compiles
    wherever Inductor's GPU kernels work (Triton, capability 7.0 or more). When compiling was asked for
    (True) but cannot work here, a warning says why.
    """
    if requested not in (True, False, "auto"):
        raise ValueError(f"compile={requested!r}: choose True, False or 'auto'.")
    if requested is False:
        return False
    why = None
    if device.type != "cuda":
        why = f"on {device.type} the course trains eagerly"
    elif not _has_triton():
        why = "Triton is not installed"
    elif tuple(torch.cuda.get_device_capability(device)) < (7, 0):
        why = f"the GPU's compute capability {torch.cuda.get_device_capability(device)} is below 7.0"
    elif requested == "auto" and not bf16_supported(device):
        return False  # a T4: eager unless compiling is asked for
    if why is None:
        return True
    if requested is True:
        warnings.warn(f"torch.compile was asked for but {why}: training without it.")
    return False
