"""Run-time configuration shared by every notebook: device, seed, quick mode, data folder.

Taught in notebook 00 (first cell). Every notebook starts with :func:`describe`, which prints the
device and the mode so that a learner always knows what kind of run they are looking at.

Environment variables
---------------------
``LLMCOURSE_QUICK``   ``1`` for quick mode: less data, smaller models, fewer steps, same code path.
``LLMCOURSE_DATA``    a folder holding the data sets under their official file names (offline use).
``LLMCOURSE_CACHE``   where downloads are cached (default: the repository's ``data/`` folder).
``LLMCOURSE_DEVICE``  force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "is_quick",
    "get_device",
    "seed_everything",
    "by_mode",
    "data_dir",
    "cache_dir",
    "describe",
    "notebook_setup",
    "machine",
]

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def any_set(*names: str) -> bool:
    """True when any of these environment variables is set to a true value (``1``, ``true``, ``yes``, ``on``):
    the hub's offline switches, which other libraries read too, so other values are not an error here."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in names)


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not understood: set it to 1 (on) or 0 (off).")


def is_quick() -> bool:
    """True when ``LLMCOURSE_QUICK=1``: notebooks then run in seconds to minutes on 2 CPU cores."""
    return _flag("LLMCOURSE_QUICK")


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer``, else ``$LLMCOURSE_DEVICE``, else CUDA, then MPS, then CPU.

    An explicit choice that this machine cannot honour is an error, not a silent fallback.
    """
    choice = prefer if prefer is not None else os.environ.get("LLMCOURSE_DEVICE") or None
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"Device {str(choice)!r} was asked for, but CUDA is not available here. "
                           "Unset LLMCOURSE_DEVICE (or pass prefer=None) to use the best device found.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"Device {str(choice)!r} was asked for, but Apple MPS is not available here. "
                           "Unset LLMCOURSE_DEVICE (or pass prefer=None) to use the best device found.")
    return device


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (all devices) so that a run can be repeated exactly on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    return seed


def by_mode(*, quick: T, cpu: T, gpu: T | None = None, device: torch.device | None = None) -> T:
    """Pick a size by mode: ``quick`` in quick mode, else ``gpu`` on an accelerator, else ``cpu``.

    >>> steps = by_mode(quick=20, cpu=2_000, gpu=20_000)
    """
    if is_quick():
        return quick
    device = device or get_device()
    if device.type != "cpu" and gpu is not None:
        return gpu
    return cpu


def _repo_root() -> Path | None:
    """The course checkout this package was installed from (editable install), if any."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "data" / "README.md").is_file() and (root / "llmcourse").is_dir() else None


def data_dir() -> Path | None:
    """The offline data folder named by ``$LLMCOURSE_DATA``, or None when it is not set."""
    value = os.environ.get("LLMCOURSE_DATA")
    if not value:
        return None
    return Path(value).expanduser().resolve()


def cache_dir() -> Path:
    """Where downloads are cached: ``$LLMCOURSE_CACHE``, else the checkout's ``data/``, else
    ``~/.cache/llmcourse`` (a package installed from git, on Colab for example)."""
    value = os.environ.get("LLMCOURSE_CACHE")
    if value:
        return Path(value).expanduser().resolve()
    root = _repo_root()
    if root is not None:
        return root / "data"
    return Path.home() / ".cache" / "llmcourse"


def describe() -> dict[str, str]:
    """Print (and return) the device, the number format training uses there and why, the mode and where
    data comes from; every notebook's first cell."""
    from .precision import explain_precision

    device = get_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple MPS"
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    folder = data_dir()
    info = {
        "device": f"{device} ({name})",
        "precision": explain_precision(device),
        "mode": "quick (LLMCOURSE_QUICK=1)" if is_quick() else "full",
        "data": f"{folder} (LLMCOURSE_DATA)" if folder else f"{cache_dir()} (download cache)",
        "torch": torch.__version__,
    }
    for key, value in info.items():
        print(f"{key:>9}: {value}")
    return info


def notebook_setup(seed: int = 0) -> None:
    """The first cell of every notebook: seed everything, make figures small and sharp, and say
    which device and mode this run uses."""
    import matplotlib.pyplot as plt

    seed_everything(seed)
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "figure.figsize": (6.4, 4.0)})
    describe()


def machine(device: torch.device | None = None) -> str:
    """A one-line description of where a figure was measured, saved beside every benchmark result."""
    import platform

    device = device or get_device()
    if device.type == "cuda":
        hw = f"GPU {torch.cuda.get_device_name(device)}"
    elif device.type == "mps":
        hw = "Apple MPS"
    else:
        hw = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{hw}; torch {torch.__version__}; Python {platform.python_version()}"
