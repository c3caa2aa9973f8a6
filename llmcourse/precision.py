"""Which number format and which compiler a training run uses, chosen by what the device can do.

* ``"bf16"``: bfloat16 autocast. Same exponent range as float32, so no loss scaling is needed.
  Ampere and newer GPUs (A100, H100, RTX 30xx/40xx) have it.
* ``"fp16"``: float16 autocast with a gradient scaler, for GPUs without bf16 (Colab's T4, V100).
  Small gradients would underflow in float16, so the loss is multiplied by a large factor before
  ``backward()`` and the gradients divided by it again before the optimizer step.
* ``"fp32"``: no autocast. The default on a CPU or an Apple GPU unless another format is asked for.

``"auto"`` picks bf16 on a CUDA GPU that supports it, fp16 on one that does not, fp32 elsewhere.
``torch.compile`` is used only where it works: on CUDA with Triton and a GPU of compute capability
7.0 or more. Everywhere else the model runs eagerly (:func:`resolve_compile`).
Used by :func:`llmcourse.training.train`; taught in notebook 04.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings

import torch

__all__ = ["PRECISIONS", "bf16_supported", "resolve_precision", "autocast", "grad_scaler", "resolve_compile"]

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 at full speed (CUDA: ``torch.cuda.is_bf16_supported``)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu"  # CPU autocast supports bf16 (slower than fp32 on most CPUs, but correct)


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

    It is used on CUDA only, with Triton installed and compute capability 7.0 or more (what
    Inductor's GPU kernels need). A CPU run stays eager: compiling there needs a C++ toolchain and
    mostly costs time in a notebook. When compiling was asked for (True) but cannot work here, a
    warning says why.
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
    elif torch.cuda.get_device_capability(device) < (7, 0):
        why = f"the GPU's compute capability {torch.cuda.get_device_capability(device)} is below 7.0"
    if why is None:
        return True
    if requested is True:
        warnings.warn(f"torch.compile was asked for but {why}: training without it.")
    return False
