"""The one training loop of the course, exact perplexity, and checkpoints without pickle.

Every neural notebook (02 RNN, 04 Transformer, 05 BERT's masked-LM warm-up) trains with
:func:`train`. It takes any model that maps ids to an output:

* ``model(x) -> logits`` with ``x: (batch, time)`` and ``logits: (batch, time, vocab)``;
* or, for a model with ``stateful = True`` (an RNN), ``model(x, state) -> (output, state)``: the loop
  carries the state from one window to the next and detaches it (truncated BPTT).

Targets ``y`` have the shape of ``x``; positions to ignore hold ``-100``. The loop knows a model only
through ``forward`` and the protocols of :mod:`llmcourse.protocols`: :class:`~llmcourse.protocols.Stateful`
(``stateful = True``: carry the state) and :class:`~llmcourse.protocols.OwnLoss` (a ``loss_fn(output, y) ->
(sum of losses, n tokens)`` method, for a model whose output is not logits, such as one with an adaptive
softmax), through the helpers that module states once (``forward_step``, ``default_loss``,
``detach_state``). The course's language models (:class:`llmcourse.rnn.RNNLM`,
:class:`llmcourse.transformer.TransformerLM`) follow them without importing this module; a ``loss_fn``
argument overrides the model's own.

A run is as long as a number of steps (``max_steps`` or ``epochs``: bit-for-bit repeatable on a
CPU) or as long as a **time budget** (``budget_seconds``): then warm-up and decay are fractions of
the budget, the run ends at its minimum learning rate when the budget is spent, and two models
given the same budget on the same machine have had the same clock. Time spent validating does not
count against the budget. Every record of the :class:`History` carries the seconds of training so
far, so that curves can be drawn against time.

The same loop runs on several processes under PyTorch's ``DistributedDataParallel`` when it is
launched by ``torchrun`` and the process group is initialised (:func:`llmcourse.distributed.setup`):
the forward and loss go through DDP, which averages the gradients in backward; the loss and tokens of
each step are summed over the processes, so that every process records the same :class:`History` as
one process would on the whole batch; the clock and the validation loss are rank 0's, so that all
processes change their learning rate, validate and stop together; only rank 0 shows the progress bar,
prints and saves. A single process runs exactly as before.

Taught in notebook 00 (the loop itself, and perplexity), notebook 02 (truncated BPTT), notebook 04
(budgets) and notebook 07 (several processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from .config import get_device
from .heads import lm_loss
from . import checks, ddp
from .checkpoints import load_checkpoint, save_checkpoint
from .protocols import LossFn, OwnLoss, Stateful, default_loss, detach_state, forward_step, is_stateful
from . import resume
from .precision import PRECISIONS, autocast, grad_scaler, resolve_compile, resolve_precision

__all__ = [
    "Stateful",
    "OwnLoss",
    "TrainConfig",
    "History",
    "lm_loss",
    "train_simple",
    "train",
    "evaluate",
    "evaluate_perplexity",
    "stream_nll",
    "lr_at",
    "lr_at_fraction",
    "save_checkpoint",
    "load_checkpoint",
]


def _check_numbers(c: "TrainConfig") -> None:
    """The numbers of a :class:`TrainConfig` (:mod:`llmcourse.checks`): a NaN, a bool or a negative rate would
    train silently wrong."""
    checks.number("lr", c.lr, low=0.0, low_open=True)
    checks.number("weight_decay", c.weight_decay, low=0.0)
    if not isinstance(c.betas, tuple) or len(c.betas) != 2:
        raise ValueError(f"betas={c.betas!r}: Adam's two decay rates, each in [0, 1), e.g. (0.9, 0.999).")
    for i, beta in enumerate(c.betas):
        checks.probability(f"betas[{i}]", beta, one=False)
    checks.number("grad_clip", c.grad_clip, low=0.0, low_open=True, none=True)
    checks.probability("min_lr_ratio", c.min_lr_ratio)
    checks.probability("warmup_fraction", c.warmup_fraction, one=False)
    for name in ("max_steps", "eval_every", "max_eval_batches", "patience", "resume_every"):
        checks.whole(name, getattr(c, name), least=1, none=True)
    for name in ("epochs", "warmup_steps"):
        checks.whole(name, getattr(c, name), least=0)
    checks.whole("log_every", c.log_every, least=1)
    for name in ("budget_seconds", "eval_every_seconds", "resume_every_seconds"):
        checks.number(name, getattr(c, name), low=0.0, low_open=True, none=True)
    for name in ("checkpoint_dir", "resume_dir"):
        if getattr(c, name) is not None and not isinstance(getattr(c, name), (str, os.PathLike)):
            raise TypeError(f"{name}={getattr(c, name)!r}: give a folder path (str or pathlib.Path), or None.")


@dataclass
class TrainConfig:
    """Everything :func:`train` needs to know, in one object a notebook can print."""

    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps, whatever `epochs` says
    budget_seconds: float | None = None  # train for this many seconds instead (epochs ignored; max_steps still caps)
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0  # step-count runs
    warmup_fraction: float = 0.0  # budget runs: the first fraction of the budget warms up
    schedule: str = "cosine"  # "cosine", "linear" or "constant" after the warm-up
    min_lr_ratio: float = 0.1  # the cosine and linear schedules end at lr * min_lr_ratio
    grad_clip: float | None = 1.0  # max global gradient norm; None to switch clipping off
    eval_every: int | None = None  # steps between validations
    eval_every_seconds: float | None = None  # or seconds of training between validations
    max_eval_batches: int | None = None  # None: the whole validation set
    patience: int | None = None  # early stopping: validations without improvement before stopping
    restore_best: bool = True  # end with the weights of the best validation
    precision: str = "auto"  # "auto" (bf16 or fp16 on CUDA, fp32 elsewhere), "bf16", "fp16" or "fp32"
    compile: bool | str = False  # torch.compile: True, False or "auto" (CUDA with Triton only)
    checkpoint_dir: str | None = None  # where the best model is saved (safetensors + JSON)
    resume_dir: str | None = None  # where the whole training state is kept, to resume after a disconnect
    resume_every: int | None = None  # steps between saves of that state (with resume_dir) ...
    resume_every_seconds: float | None = None  # ... or seconds of training (default with resume_dir: 60)
    log_every: int = 10  # steps between entries of the training history
    progress: bool = True  # a tqdm progress bar

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)  # JSON gives back a list
        _check_numbers(self)
        if self.schedule not in {"cosine", "linear", "constant"}:
            raise ValueError(f"schedule={self.schedule!r}: choose 'cosine', 'linear' or 'constant'.")
        if self.budget_seconds is not None:
            if self.warmup_steps:
                raise ValueError("In a budget run the warm-up is a fraction of the budget: set warmup_fraction "
                                 f"(e.g. 0.05) instead of warmup_steps={self.warmup_steps}.")
        elif self.epochs < 1 and self.max_steps is None:
            raise ValueError("Give epochs >= 1, max_steps or budget_seconds.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: choose one of {', '.join(map(repr, PRECISIONS))}.")
        if self.compile not in (True, False, "auto"):
            raise ValueError(f"compile={self.compile!r}: choose True, False or 'auto'.")


@dataclass
class History:
    """What happened during training: a record every ``log_every`` steps and at each validation.

    ``seconds`` in each record is the training time so far (validation excluded), the clock of a
    budget run.
    """

    train: list[dict] = field(default_factory=list)  # step, epoch, seconds, loss, ppl, lr, tokens_per_sec
    valid: list[dict] = field(default_factory=list)  # step, epoch, seconds, loss, ppl
    best_valid_loss: float = math.inf
    best_step: int | None = None
    stopped_early: bool = False
    steps: int = 0
    train_seconds: float = 0.0  # on the clock: from the end of the first step (set-up and warm-up before it)
    setup_seconds: float = 0.0  # what the clock left out: moving the model, the optimizer, the first step
    train_tokens: int = 0
    budget_seconds: float | None = None
    precision: str = "fp32"
    compiled: bool = False

    @property
    def best_valid_ppl(self) -> float:
        return math.exp(self.best_valid_loss) if self.best_valid_loss < math.inf else math.inf

    def valid_curve(self) -> list[tuple[float, float]]:
        """``(seconds, validation perplexity)`` at every validation: the curve of a race."""
        return [(r["seconds"], r["ppl"]) for r in self.valid]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> "History":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in known})


def _decayed(progress: float, config: TrainConfig) -> float:
    """The schedule after the warm-up, at ``progress`` in [0, 1] of the decay."""
    if config.schedule == "constant":
        return config.lr
    progress = min(1.0, max(0.0, progress))
    floor = config.lr * config.min_lr_ratio
    if config.schedule == "linear":
        return config.lr - (config.lr - floor) * progress
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def lr_at(step: int, config: TrainConfig, total_steps: int) -> float:
    """The learning rate at ``step`` (0-based) of a step-count run: linear warm-up, then the decay."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, total_steps - config.warmup_steps)
    return _decayed((step - config.warmup_steps) / span, config)


def lr_at_fraction(fraction: float, config: TrainConfig) -> float:
    """The learning rate of a budget run once ``fraction`` of its budget is spent: linear warm-up over
    ``warmup_fraction``, then the decay, reaching ``lr * min_lr_ratio`` at 1."""
    warm = config.warmup_fraction
    if warm and fraction < warm:
        return config.lr * max(fraction, 1e-3 * warm) / warm
    return _decayed((fraction - warm) / (1 - warm), config)


class _Clock:
    """How far a run has gone: in steps, or in seconds of training against its budget.

    The clock starts at the end of the run's first step (:meth:`start`): everything done once before
    it (moving the model, building the optimizer, the first step's allocations, imports and, where
    compiled, compilation) is set-up, not training, so that every model of a race gets the same seconds
    of steady training. Time inside :meth:`paused` (validation, checkpoints) is not training time either.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int | None,
                 agree: Callable[[float], float] = lambda seconds: seconds):
        self.config, self.agree = config, agree
        self.budget = config.budget_seconds
        if config.max_steps is not None:
            self.total_steps = config.max_steps
        elif self.budget is not None:
            self.total_steps = None
        elif steps_per_epoch is not None:
            self.total_steps = config.epochs * steps_per_epoch
        else:
            raise ValueError("train_data has no length: give config.max_steps or config.budget_seconds.")
        self.epochs = math.inf if (config.max_steps is not None or self.budget is not None) else config.epochs
        self.created = time.perf_counter()  # train() sets it to its own start
        self.setup_seconds = 0.0
        self._start: float | None = None
        self._before = 0.0  # seconds of training of the run this one resumes
        self._paused = 0.0
        self.next_eval_seconds = config.eval_every_seconds

    def start(self) -> float:
        """Start counting (once; later calls do nothing). Returns the set-up seconds it left out."""
        if self._start is None:
            self._start = time.perf_counter()
        return self._start - self.created

    def go_on_from(self, seconds: float) -> None:
        """A resumed run: the clock goes on from the seconds of training already done."""
        self._before = seconds

    def seconds(self) -> float:
        running = 0.0 if self._start is None else time.perf_counter() - self._start - self._paused
        return self.agree(self._before + running)

    @contextlib.contextmanager
    def paused(self):
        t, running = time.perf_counter(), self._start is not None
        try:
            yield
        finally:
            if running:
                self._paused += time.perf_counter() - t

    def lr(self, step: int) -> float:
        if self.budget is not None:
            return lr_at_fraction(self.seconds() / self.budget, self.config)
        return lr_at(step, self.config, self.total_steps)

    def done(self, step: int) -> bool:
        if self.total_steps is not None and step >= self.total_steps:
            return True
        return self.budget is not None and self.seconds() >= self.budget

    def after_step(self, step: int) -> bool:
        """Called at the end of each step: starts the clock after the first; says whether the run is done."""
        if self._start is None:
            self.setup_seconds = self.start()
        return self.done(step)

    def validation_due(self, step: int) -> bool:
        if self.config.eval_every and step % self.config.eval_every == 0:
            return True
        if self.next_eval_seconds is not None and self.seconds() >= self.next_eval_seconds:
            while self.next_eval_seconds <= self.seconds():
                self.next_eval_seconds += self.config.eval_every_seconds
            return True
        return False


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable, *, loss_fn: LossFn | None = None,
             device: torch.device | None = None, max_batches: int | None = None,
             precision: str = "auto") -> tuple[float, int]:
    """Mean loss per token over ``data`` (token-weighted) and the number of tokens scored.

    ``loss_fn`` defaults to the model's own (a course language model) or :func:`lm_loss`."""
    device = device or next(model.parameters()).device
    loss_fn = loss_fn or default_loss(getattr(model, "_orig_mod", model))
    stateful = is_stateful(getattr(model, "_orig_mod", model))
    precision = resolve_precision(precision, device)
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    try:
        for b, (x, y) in enumerate(data):
            if max_batches is not None and b >= max_batches:
                break
            x, y = x.to(device), y.to(device)
            with autocast(precision, device):
                output, state = forward_step(model, x, state, stateful=stateful)
            loss_sum, n = loss_fn(output, y)
            total += float(loss_sum)
            count += int(n)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() saw no tokens: the data is empty or every target is -100.")
    if not math.isfinite(total):
        raise FloatingPointError(f"the loss over {count:,} tokens is {total / count}: the model's outputs hold NaN "
                                 "or infinity (a weight became NaN: lower the learning rate, warm up longer, or "
                                 "clip the gradients; check the data for targets outside the vocabulary).")
    return total / count, count


def evaluate_perplexity(model: nn.Module, data: Iterable, **kwargs) -> float:
    """Perplexity over ``data``: exp of the total negative log-likelihood divided by the total number
    of tokens — exact, not an average of per-batch averages (which over-weights a short last batch)."""
    loss, _ = evaluate(model, data, **kwargs)
    return math.exp(loss)


def stream_nll(model: nn.Module, ids: Tensor, seq_len: int, *, batch_size: int = 32, **kwargs) -> tuple[float, int]:
    """The total negative log-likelihood (nats) a stateless model gives a whole stream of ids ``(n,)``,
    read in consecutive windows of ``seq_len`` with every token after the first scored once (the last
    window padded: :class:`~llmcourse.data.LMWindowDataset` with ``pad_last=True``), and the number of
    tokens scored, ``n - 1``. Divided by a word count, it gives the per-word perplexity of notebook 06
    (:func:`llmcourse.lm.per_word_perplexity`). Keyword arguments go to :func:`evaluate`."""
    from torch.utils.data import DataLoader

    from .data import LMWindowDataset

    loader = DataLoader(LMWindowDataset(ids, seq_len, pad_last=True), batch_size=batch_size)
    mean, count = evaluate(model, loader, **kwargs)
    return mean * count, count


def _optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on biases, norms' gains or 1-D parameters), in its
    fused implementation where this PyTorch has one for the device (``benchmarks/speed.py``: on 2 CPU
    cores it trained the LSTM about 15% faster than the default per-parameter loop, the Transformer as
    fast), the default one elsewhere."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=True)
        except (RuntimeError, TypeError):  # an older PyTorch without a fused kernel for this device
            pass
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


@dataclass
class _Run:
    """What the parts of one call of :func:`train` share: its config, its history, its clock, its team
    of processes (:mod:`llmcourse.ddp`; one process alone) and the printer of its progress bar."""

    config: TrainConfig
    history: History
    clock: _Clock
    team: ddp.Alone
    write: Callable[[str], None]


class _Validator:
    """Validation, the best weights and early stopping: ``validate(step, epoch)`` says whether to stop.
    ``valid_loss()`` gives the mean validation loss (None: no validation data)."""

    def __init__(self, run: _Run, model: nn.Module, valid_loss: Callable[[], float] | None):
        self.run, self.model, self.valid_loss = run, model, valid_loss
        self.best_state: dict[str, Tensor] | None = None
        self.bad_validations = 0

    def validate(self, step: int, epoch: int) -> bool:
        if self.valid_loss is None:
            return False
        config, history, clock, at = self.run.config, self.run.history, self.run.clock, self.run.clock.seconds()
        with clock.paused():
            # Under DDP every process reads the whole validation set: one process's numbers exactly, with no
            # shard padded by repeated windows to miscount tokens (but no speed-up). Rank 0's loss is then
            # everyone's, so that the best step and early stopping agree even where GPUs differ in a last bit.
            try:
                val_loss = self.run.team.agree(self.valid_loss())
            except FloatingPointError as exc:  # a NaN stops the run now, not after the rest of its budget
                raise FloatingPointError(f"Validation at step {step}: {exc}") from None
            ppl = math.exp(min(val_loss, 50))
            history.valid.append({"step": step, "epoch": epoch, "seconds": round(at, 3), "loss": val_loss, "ppl": ppl})
            self.run.write(f"step {step:>6}  {at:7.1f} s  valid loss {val_loss:.4f}  valid ppl {ppl:.2f}")
            if val_loss < history.best_valid_loss:
                history.best_valid_loss, history.best_step, self.bad_validations = val_loss, step, 0
                if config.checkpoint_dir and self.run.team.main:
                    save_checkpoint(self.model, config.checkpoint_dir, history=history)
                if config.restore_best:
                    self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                self.bad_validations += 1
        return config.patience is not None and self.bad_validations > config.patience


def _set_lr(optimizer: torch.optim.Optimizer, lr: float, config: TrainConfig) -> None:
    """This step's learning rate; parameter groups keep their ratio to ``config.lr`` (an optimizer passed in
    may give its groups different rates)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = lr * group["initial_lr"] / config.lr if config.lr else lr


def _check_finite(loss: Tensor, step: int) -> None:
    if not torch.isfinite(loss):
        checks.finite_loss(loss.item(), f"at step {step}, on a training batch")


def _clip(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
          max_norm: float | None) -> None:
    """Clip the gradients' norm to ``max_norm`` (None: no clipping), unscaled first in fp16."""
    if max_norm is not None:
        scaler.unscale_(optimizer)  # a no-op unless the loss was scaled (fp16)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)


class _Progress:
    """The progress bar and the training records: the mean loss of each window of ``log_every`` steps."""

    def __init__(self, config: TrainConfig, clock: _Clock, history: History, show: bool = True):
        from tqdm.auto import tqdm

        self.config, self.clock, self.history, self.show = config, clock, history, show
        self.by_time = config.budget_seconds is not None
        self.bar = tqdm(total=config.budget_seconds if self.by_time else clock.total_steps,
                        unit="s" if self.by_time else "step", desc="training", disable=not (config.progress and show),
                        dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{postfix}]" if self.by_time else None)
        self.loss, self.tokens, self.start = 0.0, 0, clock.seconds()

    def write(self, line: str) -> None:
        if self.show:  # tqdm.write prints even when the bar is disabled
            self.bar.write(line)

    def update(self, step: int, epoch: int, lr: float, loss_sum: Tensor, tokens: int, finished: bool) -> None:
        self.history.train_tokens += tokens
        self.loss += float(loss_sum.detach())
        self.tokens += tokens
        now = self.clock.seconds()
        self.bar.update(min(now, self.config.budget_seconds) - self.bar.n if self.by_time else 1)
        if step % self.config.log_every and not finished:
            return
        elapsed, mean = now - self.start, self.loss / max(self.tokens, 1)
        record = {"step": step, "epoch": epoch, "seconds": round(now, 3), "loss": mean,
                  "ppl": math.exp(min(mean, 50)), "lr": lr,
                  "tokens_per_sec": self.tokens / elapsed if elapsed > 0 else float("nan")}
        self.history.train.append(record)
        self.bar.set_postfix_str(f"step={step}, loss={mean:.3f}, ppl={record['ppl']:.1f}, lr={lr:.2e}, "
                                 f"tok/s={record['tokens_per_sec']:.0f}")
        self.loss, self.tokens, self.start = 0.0, 0, self.clock.seconds()


class _StepLoss(nn.Module):
    """The forward pass and the loss of one batch in one module call: ``(x, y, state) -> (summed loss, tokens,
    state)``. DDP sees only what happens inside its module's forward, and an adaptive softmax uses its
    weights in the loss, after the model's forward."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, stateful: bool, precision: str, device: torch.device):
        super().__init__()
        self.model, self.loss_fn, self.stateful, self.precision, self.device = (
            model, loss_fn, stateful, precision, device)

    def forward(self, x: Tensor, y: Tensor, state: Any) -> tuple[Tensor, Tensor, Any]:
        with autocast(self.precision, self.device):
            output, state = forward_step(self.model, x, state, stateful=self.stateful)
        loss_sum, n = self.loss_fn(output, y)
        return loss_sum, n, state


def _set_epoch(data: Iterable, epoch: int) -> None:
    """A sampler that shuffles by epoch (``DistributedSampler``) is told which epoch begins."""
    set_epoch = getattr(getattr(data, "sampler", None), "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)


def train_simple(model: nn.Module, batches: Iterable, *, steps: int, lr: float = 1e-2,
                 optimizer: torch.optim.Optimizer | None = None, loss_fn: LossFn | None = None) -> list[float]:
    """The training loop of notebook 00, section 13, and nothing else: ``steps`` updates of ``model`` on
    batches ``(x, y)`` of a stateless model, with Adam at a constant ``lr`` unless an ``optimizer`` is given.
    Returns the loss of each step (mean per token). :func:`train` is this loop grown up: the same five lines,
    with a schedule, clipping, validation, precision, a clock and several processes around them; with those
    extras switched off it makes exactly these updates (``tests/test_training.py`` checks it)."""
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = loss_fn or default_loss(model)
    batches = iter(batches)
    losses = []
    model.train()
    for step in range(steps):
        x, y = next(batches)
        output, _ = forward_step(model, x)  # forward: the scores at every position
        loss_sum, n = loss_fn(output, y)  # the summed cross-entropy and the tokens it scored
        loss = loss_sum / n
        optimizer.zero_grad()  # clear the previous step's gradients
        loss.backward()  # autograd fills every parameter's .grad
        optimizer.step()  # the optimizer's update
        losses.append(loss.item())
    return losses


@dataclass
class _Parts:
    """Everything :func:`train` builds before its first step."""

    run: _Run
    step_loss: nn.Module  # (x, y, state) -> (summed loss, tokens, state); under DDP, wrapped in it
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    progress: _Progress
    validator: _Validator
    resumer: resume.Resumer | None


def _set_up(model: nn.Module, train_data: Iterable, valid_data: Iterable | None, config: TrainConfig,
            device: torch.device, optimizer: torch.optim.Optimizer | None, loss_fn: LossFn | None) -> _Parts:
    """The model on its device, compiled where asked; the loss; the optimizer; the clock; validation. Whatever
    can be seen wrong before training (no batch, no trainable weight, a folder it cannot write) is an error now."""
    started = time.perf_counter()
    _check_before_training(model, train_data)
    model.to(device)
    loss_fn = loss_fn or default_loss(model)
    try:
        steps_per_epoch = len(train_data)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    precision = resolve_precision(config.precision, device)
    forward_model = _try_compile(model) if resolve_compile(config.compile, device) else model
    team = ddp.team(device)
    if team.main:  # before any work: a folder found unwritable at the first validation would lose the run
        checks.writable_dir("checkpoint_dir", config.checkpoint_dir)
        checks.writable_dir("resume_dir", config.resume_dir)
    step_loss = team.wrap(_StepLoss(forward_model, loss_fn, is_stateful(model), precision, device))
    history = History(budget_seconds=config.budget_seconds, precision=precision, compiled=forward_model is not model)
    # the optimizer before the clock: its first construction in a process imports torch._dynamo (2-3 s),
    # which is not training and would shorten the first budget run of a process
    optimizer = optimizer or _optimizer(model, config, device)
    # fp16 scales the loss so that small gradients do not underflow; elsewhere a disabled scaler, which passes
    # everything through (scale(loss) is loss, step(optimizer) is optimizer.step()), keeps one loop for all
    scaler = grad_scaler(precision, device) or torch.amp.GradScaler(device.type, enabled=False)
    clock = _Clock(config, steps_per_epoch, agree=team.agree)
    clock.created = started
    progress = _Progress(config, clock, history, show=team.main)
    run = _Run(config, history, clock, team, progress.write)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    if frozen:  # said, so that a model whose adapters were merged away does not train its head alone unnoticed
        run.write(f"training {sum(p.numel() for p in model.parameters()) - frozen:,} parameters; {frozen:,} are frozen")
    valid_loss = None if valid_data is None else functools.partial(
        _mean_loss, forward_model, valid_data, loss_fn=loss_fn, device=device,
        max_batches=config.max_eval_batches, precision=precision)
    validator = _Validator(run, model, valid_loss)
    resumer = resume.Resumer(run, model, optimizer, scaler, validator, train_data) if config.resume_dir else None
    return _Parts(run, step_loss, optimizer, scaler, progress, validator, resumer)


def _check_before_training(model: nn.Module, train_data: Iterable) -> None:
    """Training never reports success on nothing, and never loses a run to a folder found unwritable at its end."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise ValueError("train() wraps the model in DistributedDataParallel itself when it runs on several "
                         "processes: pass the plain model (ddp_model.module).")
    if not isinstance(model, nn.Module):
        raise TypeError(f"train() takes a torch.nn.Module; got {type(model).__name__}.")
    checks.no_merged_adapters(model, "train()")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{type(model).__name__} has no trainable parameter (every requires_grad is False): "
                         "training would change nothing. Unfreeze the weights to train, or, for LoRA, add the "
                         "adapters again (llmcourse.lora.add_lora) if they were merged.")
    if isinstance(train_data, (str, bytes)) or not hasattr(train_data, "__iter__"):
        raise TypeError(f"train_data must give batches (x, y), e.g. a DataLoader; got {type(train_data).__name__}.")
    if hasattr(train_data, "__len__") and len(train_data) == 0:
        raise ValueError("train_data has no batch: it is empty (too few tokens for one batch of this size?). "
                         "Give it more data or make the batches smaller.")


def _mean_loss(model: nn.Module, data: Iterable, **kwargs) -> float:
    return evaluate(model, data, **kwargs)[0]


def _epoch_batches(train_data: Iterable, epoch: int, skip: int, resumer: resume.Resumer | None,
                   device: torch.device) -> tuple[Iterator, Any]:
    """The batches of one epoch and the recurrent state it starts from: a resumed run goes past the
    ``skip`` batches it had trained on and takes back its state."""
    _set_epoch(train_data, epoch)
    if resumer:
        resumer.start_epoch(skip)
    batches, state = iter(train_data), None
    if skip:
        for _ in range(skip):
            next(batches, None)
        state = resumer.resumed_here(device)
    return batches, state


def _check_trained(step: int, steps_before: int, skip: int, history: History) -> None:
    """After an epoch: training never reports success on nothing."""
    if step == steps_before and not skip:
        raise ValueError("train_data gave no batch: it is empty (too few tokens for one batch?).")
    if history.train_tokens == 0:
        raise ValueError("Every target in train_data is -100 (ignored): there is nothing to learn, and "
                         "the loss would read 0 (perplexity 1). Check how the targets were built.")


def train(model: nn.Module, train_data: Iterable, valid_data: Iterable | None = None,
          config: TrainConfig | None = None, *, device: torch.device | str | None = None,
          optimizer: torch.optim.Optimizer | None = None, loss_fn: LossFn | None = None) -> History:
    """Train ``model`` on batches ``(x, y)`` of ``train_data``; validate on ``valid_data``.

    :func:`train_simple`'s loop (forward, loss, ``zero_grad``, ``backward``, ``step``) with its extras:
    AdamW unless an ``optimizer`` is given; warm-up then the schedule of ``config``, over steps or a time
    budget; gradient clipping; the precision and compilation the device allows; a progress bar; validation
    every epoch, ``eval_every`` steps or ``eval_every_seconds``, with early stopping; the best weights saved
    to ``config.checkpoint_dir`` and restored at the end; the whole state kept in ``config.resume_dir``.
    Launched by ``torchrun`` on several processes, it trains with DDP (notebook 07): ``train_data`` is then
    this process's share of each batch, ``valid_data`` the whole validation set. Returns the :class:`History`.
    """
    config = config or TrainConfig()
    device = get_device(device)
    parts = _set_up(model, train_data, valid_data, config, device, optimizer, loss_fn)
    optimizer, scaler, step_loss, progress = parts.optimizer, parts.scaler, parts.step_loss, parts.progress
    clock, team, history = parts.run.clock, parts.run.team, parts.run.history
    validator, resumer = parts.validator, parts.resumer
    step, epoch, skip = resumer.restore() if resumer else (0, 0, 0)
    progress.start = clock.seconds()
    stop = False  # early stopping
    model.train()
    try:
        while epoch < clock.epochs and not stop and not clock.done(step):
            steps_before = step
            batches, state = _epoch_batches(train_data, epoch, skip, resumer, device)
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                lr = clock.lr(step)
                _set_lr(optimizer, lr, config)
                loss_sum, n, state = step_loss(x, y, state)  # forward and loss
                total, count = team.sum(loss_sum, n)  # of the whole batch, over every process
                loss = team.mean_loss(loss_sum, count)
                _check_finite(loss, step)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                _clip(model, optimizer, scaler, config.grad_clip)
                scaler.step(optimizer)  # optimizer.step() (in fp16: skipped where a gradient overflowed)
                scaler.update()
                state = detach_state(state)
                step += 1
                finished = clock.after_step(step)  # the clock starts after the first step: set-up is not training
                progress.update(step, epoch, lr, total, int(count), finished)
                if clock.validation_due(step):
                    stop = validator.validate(step, epoch)
                if resumer:
                    resumer.after_step(step, epoch, state)
                if stop or finished:
                    break
            _check_trained(step, steps_before, skip, history)
            epoch, skip = epoch + 1, 0
            if not stop and not (config.eval_every or config.eval_every_seconds):
                stop = validator.validate(step, epoch)  # at the end of each epoch
        if not stop and (not history.valid or history.valid[-1]["step"] != step):
            validator.validate(step, epoch)  # the final weights are always validated
    finally:
        progress.bar.close()
    return _finish(parts, model, step, epoch, stop)


def _finish(parts: _Parts, model: nn.Module, step: int, epoch: int, stop: bool) -> History:
    """The history completed, the finished state kept (started again, the run returns at once with these
    weights and this history), and the best weights put back."""
    history = parts.run.history
    history.stopped_early, history.steps, history.train_seconds = stop, step, parts.run.clock.seconds()
    history.setup_seconds = parts.run.clock.setup_seconds
    if parts.resumer:
        parts.resumer.save(step, epoch, None)
    if parts.validator.best_state is not None:
        model.load_state_dict(parts.validator.best_state)
    return history


def _try_compile(model: nn.Module) -> nn.Module:
    try:
        return torch.compile(model)
    except Exception as exc:  # a missing compiler toolchain shows up here
        warnings.warn(f"torch.compile is not available here ({exc}); training without it.")
        return model
