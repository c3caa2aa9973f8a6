"""Resumable training: what :func:`llmcourse.training.train` needs to carry on after a disconnect.

A checkpoint of the best weights (``TrainConfig.checkpoint_dir``) is enough to *use* a model, not to
go on training it: the optimizer's moments, the learning-rate schedule, the step, the clock already
spent, the random numbers of dropout and shuffling, and where in its epoch the data stood are lost
with the process. With ``TrainConfig.resume_dir`` set, ``train()`` writes all of them to
``<resume_dir>/train_state.pt`` every ``resume_every`` steps or ``resume_every_seconds`` of
training, and at the end; started again with the same model, data and config, it finds that file
and continues where the last one stopped, the budget continuing. On a CPU a run of a number of steps
resumed this way ends with the same weights, bit for bit, as one that was never interrupted
(``tests/test_resume.py`` kills a training process to prove it).

The file is written atomically (an interrupted save leaves the previous one) and read with
``torch.load(weights_only=True)``: tensors, numbers and strings only, never arbitrary pickled
objects. A state saved from another model or another config is refused, by name.

Used by :func:`llmcourse.training.train`; notebooks resume into the course's cache
(:func:`llmcourse.config.cache_dir`), which a Colab learner can keep on Drive.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from .files import atomic_write

__all__ = ["STATE_FILE", "Resumer", "fingerprint", "rng_state", "set_rng_state", "save_state", "load_state"]

STATE_FILE = "train_state.pt"
FORMAT = 1
# TrainConfig fields that do not change what is computed: a resumed run may set them differently
_FREE = {"progress", "resume_dir", "resume_every", "resume_every_seconds", "checkpoint_dir", "log_every"}


def fingerprint(model: nn.Module, config: Any) -> dict:
    """What a saved state must match to be resumed: the model's class and config, the training config."""
    model = getattr(model, "_orig_mod", model)
    cls = type(model)
    model_config = getattr(model, "config", None)
    train = {k: v for k, v in dataclasses.asdict(config).items() if k not in _FREE}
    plain = {"model_class": f"{cls.__module__}.{cls.__qualname__}",
             "model_config": dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else None,
             "parameters": sum(p.numel() for p in model.parameters()),
             "train_config": train}
    return json.loads(json.dumps(plain))  # tuples as lists, as they come back from the file


def _generator(data: Iterable) -> torch.Generator | None:
    """The generator a ``DataLoader`` shuffles with (None: it draws from PyTorch's global one)."""
    generator = getattr(data, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def rng_state(data: Iterable | None = None) -> dict:
    """Every random number generator a training step can draw from: Python's, NumPy's, PyTorch's (CPU
    and every CUDA device), and ``data``'s own shuffling generator."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
             "torch": torch.get_rng_state(),
             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    generator = _generator(data) if data is not None else None
    if generator is not None:
        state["data"] = generator.get_state()
    return state


def set_rng_state(state: dict, data: Iterable | None = None) -> None:
    """Put back what :func:`rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = _generator(data) if data is not None else None
    if generator is not None and "data" in state:
        generator.set_state(state["data"])


def save_state(directory: str | Path, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists and dicts of them) to ``directory/train_state.pt``,
    atomically."""
    path = Path(directory) / STATE_FILE
    return atomic_write(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_state(directory: str | Path, expected: dict) -> dict | None:
    """The state saved in ``directory``, or None when there is none. A state from another model or config
    (``expected``: :func:`fingerprint`), or a damaged file, is an error that says what to do."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    fresh = f"Delete {path} to start afresh, or give this run another resume_dir."
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises several kinds
        raise ValueError(f"{path} cannot be read as a training state ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}). {fresh}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "fingerprint" not in state:
        raise ValueError(f"{path} was not written by this version of llmcourse.training.train. {fresh}")
    saved = state["fingerprint"]
    if saved != expected:
        differ = _differences(saved, expected)
        raise ValueError(f"{path} was saved by a different run ({differ}): resuming it would train another "
                         f"model or with another recipe. {fresh}")
    return state


def _differences(saved: dict, ours: dict, prefix: str = "") -> str:
    out = []
    for key in sorted(set(saved) | set(ours)):
        a, b = saved.get(key), ours.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _differences(a, b, f"{prefix}{key}.")
            if inner:
                out.append(inner)
        elif a != b:
            out.append(f"{prefix}{key}: saved {a!r}, now {b!r}")
    return "; ".join(out)


def detached_copy(state: Any) -> Any:
    """A recurrent state (a tensor, or tuples of them) as CPU tensors, for the file."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach().cpu().clone()
    return [detached_copy(s) for s in state]


def restore_recurrent(state: Any, device: torch.device) -> Any:
    """A saved recurrent state back on ``device`` (lists become tuples again, as ``nn.LSTM`` wants)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.to(device)
    return tuple(restore_recurrent(s, device) for s in state)


class Resumer:
    """The whole training state of one call of :func:`llmcourse.training.train`, saved to
    ``config.resume_dir`` every ``resume_every`` steps or ``resume_every_seconds`` and at the end, and put
    back when a run starts. It keeps the random state each epoch's data was drawn from and how many of its
    batches were trained on, so that a resumed run skips to the same batch of the same shuffle.

    ``run`` is what the parts of that call share (its ``config``, ``history``, ``clock``, ``team`` of
    processes and ``write``); ``validator`` holds the best weights and the count of bad validations."""

    def __init__(self, run: Any, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, validator: Any, train_data: Iterable):
        if run.team.size > 1:
            raise ValueError("resume_dir is for one process: a torchrun group would need one state per process. "
                             "Use checkpoint_dir to keep the best weights instead.")
        self.run, self.model, self.optimizer, self.scaler = run, model, optimizer, scaler
        self.validator, self.data = validator, train_data
        self.directory = Path(run.config.resume_dir)
        self.expected = fingerprint(model, run.config)
        self.every_seconds = run.config.resume_every_seconds or (None if run.config.resume_every else 60.0)
        self.next_save = self.every_seconds
        self.saved: dict | None = None
        self.batch_in_epoch, self.epoch_rng = 0, None

    def restore(self) -> tuple[int, int, int]:
        """Put a saved state back: ``(step, epoch, batches of that epoch already trained on)``."""
        saved = load_state(self.directory, self.expected)
        if saved is None:
            return 0, 0, 0
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scaler.is_enabled() and saved["scaler"]:
            self.scaler.load_state_dict(saved["scaler"])
        history = self.run.history
        restored = type(history).from_dict(json.loads(saved["history"]))
        for f in dataclasses.fields(history):
            setattr(history, f.name, getattr(restored, f.name))
        self.validator.best_state, self.validator.bad_validations = saved["best_state"], saved["bad_validations"]
        self.run.clock.go_on_from(saved["seconds"])
        self.run.clock.next_eval_seconds = saved["next_eval_seconds"]
        if self.every_seconds:
            self.next_save = saved["seconds"] + self.every_seconds
        if not saved["batch_in_epoch"]:  # saved between epochs: the next one draws from here
            set_rng_state(saved["step_rng"], self.data)
        self.saved = saved
        self.run.write(f"resumed from {self.directory / STATE_FILE}: step {saved['step']}, "
                       f"{saved['seconds']:.1f} s of training already done")
        return saved["step"], saved["epoch"], saved["batch_in_epoch"]

    def start_epoch(self, skip: int) -> None:
        """Before an epoch's data is drawn: keep (resuming mid-epoch: put back) the random state it draws from."""
        if skip:
            set_rng_state(self.saved["epoch_rng"], self.data)
        self.epoch_rng, self.batch_in_epoch = rng_state(self.data), skip

    def resumed_here(self, device: torch.device) -> Any:
        """Past the batches already trained on: the saved run's random state; its recurrent state returned."""
        set_rng_state(self.saved["step_rng"], self.data)
        return restore_recurrent(self.saved["recurrent"], device)

    def after_step(self, step: int, epoch: int, state: Any) -> None:
        self.batch_in_epoch += 1
        if (self.run.config.resume_every and step % self.run.config.resume_every == 0) or (
                self.next_save is not None and self.run.clock.seconds() >= self.next_save):
            self.save(step, epoch, state)

    def save(self, step: int, epoch: int, state: Any) -> None:
        clock = self.run.clock
        if self.next_save is not None:
            while self.next_save <= clock.seconds():
                self.next_save += self.every_seconds
        with clock.paused():
            v = self.validator
            save_state(self.directory, {
                "fingerprint": self.expected, "step": step, "epoch": epoch, "batch_in_epoch": self.batch_in_epoch,
                "seconds": clock.seconds(), "next_eval_seconds": clock.next_eval_seconds,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "history": json.dumps(self.run.history.to_dict()), "best_state": v.best_state,
                "bad_validations": v.bad_validations, "recurrent": detached_copy(state),
                "epoch_rng": self.epoch_rng, "step_rng": rng_state(self.data)})
