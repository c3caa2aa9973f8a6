"""What every benchmark script does with its figures: stamp them with the machine and the date,
print them, and save them as JSON (atomically: an interrupted run never leaves half a file).

The scripts are run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from llmcourse.config import machine
from llmcourse.files import atomic_write


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
