"""The one training loop of the course, exact perplexity, and checkpoints without pickle.

Every neural notebook (02 RNN, 04 Transformer, 05 BERT's masked-LM warm-up) trains with
:func:`train`. It takes any model that maps ids to logits:

* ``model(x) -> logits`` with ``x: (batch, time)`` and ``logits: (batch, time, vocab)``;
* or, for a model with ``stateful = True`` (an RNN), ``model(x, state) -> (logits, state)``: the loop
  carries the state from one window to the next and detaches it (truncated BPTT).

Targets ``y`` have the shape of ``x``; positions to ignore hold ``-100``. A model whose output is not
logits (an adaptive softmax, say) passes its own ``loss_fn(output, y) -> (sum of losses, n tokens)``.

Taught in notebook 00 (perplexity) and notebook 02 (the loop itself).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import get_device
from .files import atomic_write

__all__ = [
    "TrainConfig",
    "History",
    "lm_loss",
    "train",
    "evaluate",
    "evaluate_perplexity",
    "lr_at",
    "save_checkpoint",
    "load_checkpoint",
]

LossFn = Callable[[Any, Tensor], tuple[Tensor, Tensor]]


@dataclass
class TrainConfig:
    """Everything :func:`train` needs to know, in one object a notebook can print."""

    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps, whatever `epochs` says
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: str = "cosine"  # "cosine", "linear" or "constant" after the warm-up
    min_lr_ratio: float = 0.1  # the cosine and linear schedules end at lr * min_lr_ratio
    grad_clip: float | None = 1.0  # max global gradient norm; None to switch clipping off
    eval_every: int | None = None  # steps between validations; None: at the end of each epoch
    max_eval_batches: int | None = None  # None: the whole validation set
    patience: int | None = None  # early stopping: validations without improvement before stopping
    restore_best: bool = True  # end with the weights of the best validation
    bf16: bool = True  # bf16 autocast where the device supports it (CUDA); ignored elsewhere
    compile: bool = False  # torch.compile on CUDA; falls back to eager if it fails
    checkpoint_dir: str | None = None  # where the best model is saved (safetensors + JSON)
    log_every: int = 10  # steps between entries of the training history
    progress: bool = True  # a tqdm progress bar

    def __post_init__(self) -> None:
        if self.schedule not in {"cosine", "linear", "constant"}:
            raise ValueError(f"schedule={self.schedule!r}: choose 'cosine', 'linear' or 'constant'.")
        if self.epochs < 1 and self.max_steps is None:
            raise ValueError("Give epochs >= 1 or max_steps.")


@dataclass
class History:
    """What happened during training: a record every ``log_every`` steps and at each validation."""

    train: list[dict] = field(default_factory=list)  # step, epoch, loss, ppl, lr, tokens_per_sec
    valid: list[dict] = field(default_factory=list)  # step, epoch, loss, ppl
    best_valid_loss: float = math.inf
    best_step: int | None = None
    stopped_early: bool = False
    train_seconds: float = 0.0
    train_tokens: int = 0

    @property
    def best_valid_ppl(self) -> float:
        return math.exp(self.best_valid_loss) if self.best_valid_loss < math.inf else math.inf

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> "History":
        return cls(**state)


def lr_at(step: int, config: TrainConfig, total_steps: int) -> float:
    """The learning rate at ``step`` (0-based): linear warm-up, then the chosen decay."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    if config.schedule == "linear":
        return config.lr - (config.lr - floor) * progress
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def lm_loss(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy over the positions whose target is not ``-100``, and their count.

    ``logits``: ``(batch, time, vocab)``; ``y``: ``(batch, time)``. Computed in float32 even under
    autocast, so that perplexities do not depend on the precision of the forward pass.
    """
    total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1),
                            ignore_index=-100, reduction="sum")
    return total, (y != -100).sum()


def _detach(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def _forward(model: nn.Module, x: Tensor, state: Any) -> tuple[Any, Any]:
    if getattr(model, "stateful", False):
        return model(x, state)
    return model(x), None


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable, *, loss_fn: LossFn = lm_loss, device: torch.device | None = None,
             max_batches: int | None = None, bf16: bool = True) -> tuple[float, int]:
    """Mean loss per token over ``data`` (token-weighted) and the number of tokens scored."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for b, (x, y) in enumerate(data):
            if max_batches is not None and b >= max_batches:
                break
            x, y = x.to(device), y.to(device)
            with _autocast(device, bf16):
                output, state = _forward(model, x, state)
            loss_sum, n = loss_fn(output, y)
            total += float(loss_sum)
            count += int(n)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() saw no tokens: the data is empty or every target is -100.")
    return total / count, count


def evaluate_perplexity(model: nn.Module, data: Iterable, **kwargs) -> float:
    """Perplexity over ``data``: exp of the total negative log-likelihood divided by the total number
    of tokens — exact, not an average of per-batch averages (which over-weights a short last batch)."""
    loss, _ = evaluate(model, data, **kwargs)
    return math.exp(loss)


def train(model: nn.Module, train_data: Iterable, valid_data: Iterable | None = None,
          config: TrainConfig | None = None, *, device: torch.device | str | None = None,
          optimizer: torch.optim.Optimizer | None = None, loss_fn: LossFn = lm_loss) -> History:
    """Train ``model`` on batches ``(x, y)`` of ``train_data``; validate on ``valid_data``.

    AdamW (weights only decayed where they are matrices) unless an ``optimizer`` is given; warm-up
    then the schedule of ``config``; gradient clipping; bf16 autocast on CUDA; a progress bar with
    the running loss; validation every epoch (or ``eval_every`` steps) with early stopping; the best
    weights saved to ``config.checkpoint_dir`` and restored at the end. Returns the :class:`History`.
    """
    config = config or TrainConfig()
    device = get_device(device)
    model.to(device)
    if optimizer is None:
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, betas=config.betas, fused=device.type == "cuda" or None)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    try:
        steps_per_epoch = len(train_data)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    if config.max_steps is not None:
        total_steps = config.max_steps
    elif steps_per_epoch is not None:
        total_steps = config.epochs * steps_per_epoch
    else:
        raise ValueError("train_data has no length: give config.max_steps.")
    epochs = config.epochs if config.max_steps is None else math.inf

    forward_model = model
    if config.compile and device.type == "cuda":
        forward_model = _try_compile(model)

    history = History()
    best_state: dict[str, Tensor] | None = None
    bad_validations, step, epoch = 0, 0, 0
    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, desc="training", disable=not config.progress, dynamic_ncols=True)
    window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
    t_start = time.perf_counter()
    model.train()

    def validate() -> bool:
        """Validate, record, keep the best; True when early stopping says stop."""
        nonlocal best_state, bad_validations
        if valid_data is None:
            return False
        val_loss, _ = evaluate(forward_model, valid_data, loss_fn=loss_fn, device=device,
                               max_batches=config.max_eval_batches, bf16=config.bf16)
        history.valid.append({"step": step, "epoch": epoch, "loss": val_loss, "ppl": math.exp(min(val_loss, 50))})
        bar.write(f"step {step:>6}  epoch {epoch}  valid loss {val_loss:.4f}  valid ppl {math.exp(min(val_loss, 50)):.2f}")
        if val_loss < history.best_valid_loss:
            history.best_valid_loss, history.best_step, bad_validations = val_loss, step, 0
            if config.checkpoint_dir:
                save_checkpoint(model, config.checkpoint_dir, history=history)
            if config.restore_best:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_validations += 1
        return config.patience is not None and bad_validations > config.patience

    stop = False
    while epoch < epochs and not stop and step < total_steps:
        state = None
        for x, y in train_data:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            lr = lr_at(step, config, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["initial_lr"] / config.lr if config.lr else lr
            with _autocast(device, config.bf16):
                output, state = _forward(forward_model, x, state)
            loss_sum, n = loss_fn(output, y)
            loss = loss_sum / n.clamp(min=1)
            if not torch.isfinite(loss):
                bar.close()
                raise FloatingPointError(f"The loss became {loss.item()} at step {step}: lower the learning "
                                         "rate, or check the data for targets outside the vocabulary.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            state = _detach(state)
            step += 1
            ntok = int(n)
            history.train_tokens += ntok
            window_loss += float(loss_sum.detach())
            window_tokens += ntok
            bar.update(1)
            if step % config.log_every == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                mean = window_loss / max(window_tokens, 1)
                record = {"step": step, "epoch": epoch, "loss": mean, "ppl": math.exp(min(mean, 50)), "lr": lr,
                          "tokens_per_sec": window_tokens / elapsed if elapsed > 0 else float("nan")}
                history.train.append(record)
                bar.set_postfix(loss=f"{mean:.3f}", ppl=f"{record['ppl']:.1f}", lr=f"{lr:.2e}",
                                tok_s=f"{record['tokens_per_sec']:.0f}")
                window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
            if config.eval_every and step % config.eval_every == 0:
                stop = validate()
            if stop or step >= total_steps:
                break
        epoch += 1
        if not stop and not config.eval_every:
            stop = validate()
    if config.eval_every and valid_data is not None and (not history.valid or history.valid[-1]["step"] != step) and not stop:
        validate()
    bar.close()
    history.stopped_early = stop
    history.train_seconds = time.perf_counter() - t_start
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _try_compile(model: nn.Module) -> nn.Module:
    if not hasattr(torch, "compile"):
        return model
    try:
        return torch.compile(model)
    except Exception as exc:  # a missing compiler toolchain shows up here
        warnings.warn(f"torch.compile is not available here ({exc}); training without it.")
        return model


# --------------------------------------------------------------------------------------------
# Checkpoints: weights as safetensors, configuration as JSON, loaded back without pickle
# --------------------------------------------------------------------------------------------
WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save_checkpoint(model: nn.Module, directory: str | os.PathLike, *, history: History | None = None,
                    extra: dict | None = None) -> Path:
    """Save ``model`` to ``directory``: ``model.safetensors`` (tied weights stored once) and
    ``config.json`` (the model's class, its config dataclass, and the history if given)."""
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cls = type(getattr(model, "_orig_mod", model))  # the model itself, not a torch.compile wrapper
    config = getattr(model, "config", None)
    meta = {
        "model_class": f"{cls.__module__}.{cls.__qualname__}",
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None,
        "history": history.to_dict() if history is not None else None,
        **(extra or {}),
    }
    atomic_write(directory / WEIGHTS, lambda tmp: save_model(getattr(model, "_orig_mod", model), str(tmp)))
    atomic_write(directory / CONFIG, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
    return directory


def load_checkpoint(directory: str | os.PathLike, model: nn.Module | None = None, *,
                    device: torch.device | str = "cpu") -> nn.Module:
    """Load a checkpoint saved by :func:`save_checkpoint`.

    With ``model`` given, its weights are replaced. Otherwise the model is rebuilt from
    ``config.json``: its class must live in ``llmcourse`` and take its config dataclass
    (``cls.config_class``); no pickle is ever read.
    """
    from safetensors.torch import load_model

    directory = Path(directory)
    for name in (WEIGHTS, CONFIG):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a checkpoint: {name} is missing.")
    meta = json.loads((directory / CONFIG).read_text())
    if model is None:
        module_name, _, class_name = meta["model_class"].rpartition(".")
        if not module_name.startswith("llmcourse."):
            raise ValueError(f"{directory} holds a {meta['model_class']}; only llmcourse models can be rebuilt "
                             "from their config. Build the model yourself and pass it as model=.")
        cls = getattr(importlib.import_module(module_name), class_name)
        if meta["config"] is None or not hasattr(cls, "config_class"):
            raise ValueError(f"{meta['model_class']} has no config dataclass to rebuild it from.")
        model = cls(cls.config_class(**meta["config"]))
    load_model(model, str(directory / WEIGHTS), device=str(device))
    return model.to(device)
