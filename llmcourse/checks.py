"""The checks the public entry points share: the same mistake gets the same message everywhere.

Each function takes the argument's ``name`` as the caller spells it and the ``value``, returns the
value (converted where that is safe: a NumPy integer to ``int``), and raises ``TypeError`` for a
value of the wrong kind or ``ValueError`` for one out of range, naming the argument, what it got
and what it takes. Booleans are never numbers here (``True`` is not a budget of one second), and
floats are never counts or token ids (``2.5`` tokens is a mistake, not a request to round).

Used by training, decoding, data, attention, LoRA, the results table and the scaling fits.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

__all__ = ["whole", "number", "probability", "token_ids", "listed", "writable_dir", "finite_loss", "no_merged_adapters"]


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whole(name: str, value: Any, *, least: int = 1, none: bool = False, hint: str = "") -> int | None:
    """A whole number ``>= least`` (``None`` too where ``none``): a count, a size, a number of steps. ``hint``
    ends the message (what the argument is, what is usual)."""
    if value is None and none:
        return None
    end = (", or None" if none else "") + (f" ({hint})" if hint else "") + "."
    if not _is_whole(value):
        if isinstance(value, float) and value.is_integer():
            raise TypeError(f"{name}={value!r}: give a whole number (an int, {int(value)}), not a float{end}")
        raise TypeError(f"{name}={value!r}: give a whole number >= {least}{end}")
    if value < least:
        raise ValueError(f"{name}={value!r}: give a whole number >= {least}{end}")
    return int(value)


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, none: bool = False, hint: str = "") -> float | None:
    """A finite real number in ``[low, high]`` (an end is left out with ``low_open`` / ``high_open``)."""
    if value is None and none:
        return None
    span = _span(low, high, low_open, high_open)
    end = (", or None" if none else "") + (f" ({hint})" if hint else "") + "."
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r}: give a number{span}{end}")
    value = float(value)
    if not math.isfinite(value) or (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and (value > high or (high_open and value == high))):
        raise ValueError(f"{name}={value!r}: give a finite number{span}{end}")
    return value


def _span(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    def show(x: float) -> str:
        return f"{x:g}"
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {show(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {show(high)}"
    return ""


def probability(name: str, value: Any, *, zero: bool = True, one: bool = True, none: bool = False,
                hint: str = "") -> float | None:
    """A probability: a number in ``[0, 1]``, an end left out where ``zero`` or ``one`` is False."""
    return number(name, value, low=0.0, high=1.0, low_open=not zero, high_open=not one, none=none, hint=hint)


def token_ids(who: str, ids: Any, vocab_size: int | None = None) -> Tensor:
    """Token ids as an integer tensor: never floats or booleans (``int()`` would truncate ``1.7`` silently),
    in ``[0, vocab_size)``. A list (of lists) of ints or a NumPy array is converted. The range is checked off
    the GPU only (on CUDA the check would stall every step; a device-side assert stops a bad id there)."""
    if not isinstance(ids, Tensor):
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"{who} takes token ids (ints); got the string {ids[:30]!r}: encode it first.")
        flat = ids.tolist() if hasattr(ids, "tolist") else ids
        while isinstance(flat, (list, tuple)) and flat and isinstance(flat[0], (list, tuple)):
            flat = [v for row in flat for v in row]
        bad = next((v for v in (flat if isinstance(flat, (list, tuple)) else [flat]) if not _is_whole(v)), None)
        if bad is not None:
            raise TypeError(f"{who} takes integer token ids; got {type(bad).__name__} {bad!r}"
                            + (" (a float would be truncated)." if isinstance(bad, float) else "."))
        ids = torch.as_tensor(ids.tolist() if hasattr(ids, "tolist") else ids, dtype=torch.long)
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{who} takes integer token ids (torch.long); got dtype {ids.dtype}. Build them with "
                        "torch.tensor(vocab(words), dtype=torch.long) or numericalize(token_lists, vocab).")
    if ids.numel() and ids.device.type != "cuda":
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or (vocab_size is not None and high >= vocab_size):
            bad = low if low < 0 else high
            top = vocab_size - 1 if vocab_size is not None else "..."
            raise ValueError(f"{who} got token id {bad}, outside the model's vocabulary (0 to {top}): were the ids "
                             "made with another vocabulary, or is vocab_size too small?")
    return ids


def listed(name: str, items: Iterable, *, strings: bool = False) -> list:
    """An iterable read once into a list (a generator or ``map`` is accepted, never consumed and dropped).
    With ``strings``, a bare string is refused: it would be read letter by letter."""
    if isinstance(items, (str, bytes)):
        if strings:
            raise TypeError(f"{name} takes a list of strings; got the string {items[:40]!r}, which would be read "
                            f"letter by letter. Put it in a list: [{items[:40]!r}].")
        raise TypeError(f"{name} takes a list (or any iterable) of items; got a string ({items[:40]!r}).")
    try:
        return list(items)
    except TypeError:
        raise TypeError(f"{name} takes a list (or any iterable); got {type(items).__name__}.") from None


def writable_dir(name: str, path: str | os.PathLike | None) -> Path | None:
    """A folder the run can write into, made if need be, checked by writing a file into it *before* any work
    is done (an unwritable folder found at the end of training loses the run)."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}={path!r}: give a folder path (a str or pathlib.Path), or None.")
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".llmcourse-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{name}={str(folder)!r} cannot be written to ({exc.strerror or exc}): choose a folder you "
                         "can write, e.g. one under llmcourse.config.cache_dir().") from None
    return folder


def finite_loss(loss: float, where: str) -> float:
    """A loss that must be a finite number: NaN or infinity stops the run, saying where and what to try."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"The loss became {loss} {where}: training cannot go on from here. Lower the "
                                 "learning rate (or warm up longer, or clip the gradients), and check the data "
                                 "for targets outside the vocabulary.")
    return loss


def no_merged_adapters(model: torch.nn.Module, who: str) -> None:
    """Refuse a model whose LoRA adapters were merged into its weights (peft's ``merge_adapter``): they no longer
    take part in the forward pass, so training them would change nothing, and adding more would stack them."""
    merged = [name for name, m in model.named_modules() if getattr(m, "merged", False) is True and hasattr(m, "lora_A")]
    if merged:
        raise ValueError(f"{who}: the LoRA adapters of {len(merged)} layers (e.g. {merged[0]}) are merged into the "
                         "weights, so they no longer take part in the forward pass. Call model.unmerge_adapter() "
                         "first, or start again from the model before merging.")
