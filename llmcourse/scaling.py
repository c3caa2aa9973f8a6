"""Scaling laws measured on the learner's machine: a sweep of model sizes and budgets, power laws
fitted to it, the compute-optimal size, and a completion probe of what size buys beyond the loss.

Taught in notebook 07. The sweep trains the course's Transformer (:class:`~llmcourse.transformer.TransformerLM`,
GPT-2's block) on WikiText-2 in BPE tokens (:mod:`llmcourse.bpe`, a small vocabulary so that the
output layer does not swamp the blocks of the smallest models), every run built by
:func:`sweep_recipe` as a :class:`~llmcourse.recipes.Recipe` and trained by the course's one loop::

    sweep = sweep_for()                                    # sizes and token budgets for this device
    result = run_sweep(ids, sweep)                         # ids: {"train", "valid", "test"} BPE streams
    law = fit_power_law(result.params(), result.losses())  # L(N) = E + A N^-alpha

The fits follow the papers' forms: Kaplan et al. (2020), *Scaling Laws for Neural Language Models*,
and Hoffmann et al. (2022), *Training Compute-Optimal Large Language Models* (Chinchilla), which adds
an irreducible loss ``E``. Parameters ``N`` are the non-embedding ones (the blocks and the final norm:
Kaplan et al.'s count), compute ``C`` is the training FLOPs measured on one real step
(:func:`llmcourse.cost.training_flops_per_token`) times the tokens read.
"""

from __future__ import annotations

import math
import warnings
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .config import get_device, seed_everything
from .protocols import max_context as model_context
from .recipes import Recipe, recipe_kind
from .training import TrainConfig, evaluate, train
from .transformer import TransformerConfig, TransformerLM

__all__ = ["SweepSize", "Sweep", "SWEEPS", "PUBLISHED", "sweep_for", "non_embedding_parameters", "sweep_recipe",
           "flops_per_token",
           "SweepResult", "run_sweep", "PowerLaw", "fit_power_law", "fit_proportional", "compute_frontier",
           "compute_optimal", "FitWarning", "ClozeItem", "cloze_items", "cloze_accuracy", "cloze_chance"]


# --------------------------------------------------------------------------------------------
# The sweep: sizes and budgets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepSize:
    """One model of the sweep: GPT-2's block at ``d_model`` wide and ``n_layers`` deep."""

    d_model: int
    n_layers: int
    n_heads: int

    @property
    def name(self) -> str:
        return f"d{self.d_model}-L{self.n_layers}"


@dataclass(frozen=True)
class Sweep:
    """A grid of model sizes and token budgets: every size trains once for every budget, from scratch,
    with its learning-rate schedule stretched over that budget (Hoffmann et al.'s point: a shorter run
    is not the start of a longer one). ``vocab_size`` is the BPE vocabulary; ``seq_len`` the context;
    ``batch_size`` windows per step; ``eval_batches`` the validation batches of ``eval_batch_size``
    windows that score each run."""

    kind: str
    sizes: tuple[SweepSize, ...]
    tokens: tuple[int, ...]
    vocab_size: int
    seq_len: int
    batch_size: int
    lr: float
    eval_batches: int
    eval_batch_size: int = 32
    note: str = ""

    @property
    def runs(self) -> int:
        return len(self.sizes) * len(self.tokens)

    @property
    def total_tokens(self) -> int:
        return len(self.sizes) * sum(self.tokens)


def _sizes(*triples: tuple[int, int, int]) -> tuple[SweepSize, ...]:
    return tuple(SweepSize(*t) for t in triples)


SWEEPS = {
    "quick": Sweep("quick", _sizes((8, 1, 1), (16, 1, 1), (16, 2, 2), (24, 2, 2), (32, 2, 2)),
                   tokens=(4_096, 8_192, 16_384), vocab_size=512, seq_len=32, batch_size=8, lr=5e-3, eval_batches=4,
                   eval_batch_size=16, note="quick mode: five tiny models, a few steps each"),
    # 2 CPU cores: 26k to 790k non-embedding parameters (30x), 0.1 to 1 million tokens (10x); about 5 minutes.
    # One learning rate for every size: at 1 M tokens, 5e-3 gave d32 4.44 and d128 4.53 (too high for the larger
    # model), 2e-3 gave 4.58 and 4.10 (measured on the 2-core CPU, 2026-12-02).
    "cpu": Sweep("cpu", _sizes((32, 2, 1), (48, 2, 2), (64, 3, 2), (96, 3, 3), (128, 4, 4)),
                 tokens=(100_000, 300_000, 1_000_000), vocab_size=1024, seq_len=64, batch_size=16, lr=2e-3,
                 eval_batches=48, note="2 CPU cores: five models from 26k to 790k non-embedding parameters, "
                                       "0.1 to 1 million tokens each"),
    # one GPU: 0.1 M to 19 M non-embedding parameters, 5 to 50 million tokens (not measured by the course yet)
    "gpu": Sweep("gpu", _sizes((64, 2, 2), (128, 4, 4), (256, 4, 4), (384, 6, 6), (512, 8, 8), (768, 8, 12)),
                 tokens=(5_000_000, 15_000_000, 50_000_000), vocab_size=4096, seq_len=256, batch_size=32, lr=1e-3,
                 eval_batches=64, note="one GPU: six models from 0.1 M to 57 M non-embedding parameters, "
                                       "5 to 50 million tokens each"),
}

# The published fits the notebook sets the measured ones beside.
PUBLISHED = {
    "Kaplan et al. 2020": {"alpha_N": 0.076, "alpha_C": 0.050, "N_opt ~ C^a": 0.73,
                           "form": "L = (N_c / N)^alpha_N, no irreducible term; C_min frontier"},
    "Hoffmann et al. 2022": {"alpha_N": 0.34, "alpha_D": 0.28, "E": 1.69, "N_opt ~ C^a": 0.50,
                             "form": "L = E + A / N^alpha + B / D^beta"},
}


def sweep_for(kind: str | None = None, device: torch.device | str | None = None) -> Sweep:
    """The sweep for ``kind`` (``"quick"``, ``"cpu"``, ``"gpu"``; default: :func:`~llmcourse.recipes.recipe_kind`,
    a GPU without bf16 counted as ``"gpu"``)."""
    kind = kind or recipe_kind(device)
    kind = "gpu" if kind == "gpu-fp16" else kind
    if kind not in SWEEPS:
        raise ValueError(f"kind={kind!r}: choose one of {', '.join(map(repr, SWEEPS))}.")
    return SWEEPS[kind]


def _config(size: SweepSize, sweep: Sweep) -> TransformerConfig:
    return TransformerConfig(sweep.vocab_size, max_context=sweep.seq_len, d_model=size.d_model,
                             n_layers=size.n_layers, n_heads=size.n_heads, dropout=0.0, attn_dropout=0.0,
                             tie_weights=True)


def non_embedding_parameters(model: TransformerLM) -> int:
    """Kaplan et al.'s ``N``: the parameters of the blocks and the final norm, the token and position embeddings
    and the output layer left out (the sweep's output layer is the tied embedding). The one count of the course:
    ``model.num_parameters(non_embedding=True)`` (:class:`llmcourse.protocols.LanguageModel`)."""
    return model.num_parameters(non_embedding=True)


def sweep_recipe(size: SweepSize, tokens: int, sweep: Sweep) -> Recipe:
    """The recipe of one run: ``size`` trained for ``tokens`` tokens (whole steps of ``batch_size`` x
    ``seq_len``), AdamW, 5% warm-up then cosine decay over exactly this run, scored once at the end
    on the first ``eval_batches`` validation batches. The same shape as every recipe of the course."""
    per_step = sweep.batch_size * sweep.seq_len
    if not isinstance(tokens, int) or tokens < per_step:
        raise ValueError(f"tokens={tokens!r}: a run needs at least one step of {per_step:,} tokens "
                         f"(batch_size {sweep.batch_size} x seq_len {sweep.seq_len}).")
    steps = tokens // per_step
    train_config = TrainConfig(max_steps=steps, lr=sweep.lr, warmup_steps=max(1, steps // 20), weight_decay=0.1,
                               betas=(0.9, 0.98), max_eval_batches=sweep.eval_batches, log_every=max(1, steps // 10),
                               progress=False, precision="fp32" if sweep.kind != "gpu" else "auto")
    return Recipe(f"sweep-{size.name}", sweep.kind, _config(size, sweep), train_config, batch_size=sweep.batch_size,
                  seq_len=sweep.seq_len, eval_batch_size=sweep.eval_batch_size, eval_limit=sweep.eval_batches,
                  note=f"{size.name}, {tokens:,} tokens")


@dataclass
class SweepResult:
    """One row per run (``size``, ``d_model``, ``n_layers``, ``params``: non-embedding, ``total_params``,
    ``tokens``, ``flops_per_token``, ``flops``, ``seconds``, ``valid_loss``), and the model each size
    trained on the largest budget, for samples and the probe."""

    rows: list[dict] = field(default_factory=list)
    models: dict[str, nn.Module] = field(default_factory=dict)

    def select(self, **where: Any) -> list[dict]:
        return [r for r in self.rows if all(r[k] == v for k, v in where.items())]

    def column(self, name: str, rows: Sequence[dict] | None = None) -> np.ndarray:
        return np.array([r[name] for r in (self.rows if rows is None else rows)], dtype=float)


def flops_per_token(model: TransformerLM, sweep: Sweep, device: torch.device | str | None = None) -> float:
    """Training FLOPs per token of ``model`` on one real step of the sweep's batch shape
    (:func:`llmcourse.cost.training_flops_per_token`: the output layer and attention included)."""
    from .cost import training_flops_per_token

    device = next(model.parameters()).device if device is None else torch.device(device)
    x = torch.randint(0, sweep.vocab_size, (sweep.batch_size, sweep.seq_len), device=device)
    return training_flops_per_token(model, x)


def run_sweep(ids: dict[str, Tensor], sweep: Sweep | None = None, *, seed: int = 0,
              device: torch.device | str | None = None, progress: bool = True) -> SweepResult:
    """Train every size of ``sweep`` for every token budget (seeded, the same batches for every size at
    a budget), score each on the validation slice, and keep the model each size trained longest.

    ``ids`` maps ``"train"``, ``"valid"`` and ``"test"`` to BPE id streams ``(n,)`` of the sweep's
    vocabulary. A progress bar counts the runs (their own bars are off)."""
    from tqdm.auto import tqdm

    sweep = sweep or sweep_for(device=device)
    device = get_device(device)
    top = int(max(max(int(s.max()) for s in ids.values() if len(s)), 0))
    if top >= sweep.vocab_size:
        raise ValueError(f"the id streams hold id {top}, outside the sweep's vocabulary of {sweep.vocab_size}: "
                         f"encode them with a BPE tokenizer of vocab_size={sweep.vocab_size}.")
    result = SweepResult()
    bar = tqdm(total=sweep.runs, desc="sweep", unit="run", disable=not progress, dynamic_ncols=True)
    try:
        for size in sweep.sizes:
            for tokens in sorted(sweep.tokens):
                recipe = sweep_recipe(size, tokens, sweep)
                seed_everything(seed)
                model = recipe.model().to(device)
                per_token = flops_per_token(model, sweep, device)
                loaders = recipe.loaders(ids, seed=seed)
                history = train(model, loaders["train"], None, recipe.train, device=device)
                loss, _ = evaluate(model, loaders["valid"], max_batches=sweep.eval_batches,
                                   precision=recipe.train.precision)
                result.rows.append({
                    "size": size.name, "d_model": size.d_model, "n_layers": size.n_layers,
                    "params": non_embedding_parameters(model), "total_params": model.num_parameters(),
                    "budget": tokens, "tokens": history.train_tokens, "steps": history.steps,
                    "flops_per_token": per_token, "flops": per_token * history.train_tokens,
                    "seconds": history.train_seconds, "valid_loss": loss,
                    "tokens_per_sec": history.train_tokens / max(history.train_seconds, 1e-9)})
                result.models[size.name] = model.eval()  # the largest budget comes last
                bar.update(1)
                bar.set_postfix_str(f"{size.name} {tokens:,} tokens: valid loss {loss:.3f}")
    finally:
        bar.close()
    return result


# --------------------------------------------------------------------------------------------
# Fitting power laws
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerLaw:
    """``y = e + a * (x / scale) ** -alpha``: a power law with an irreducible term ``e`` (0 for the pure
    law). ``scale`` only conditions the fit (the geometric mean of the x it was fitted on)."""

    e: float
    a: float
    alpha: float
    scale: float = 1.0

    def __call__(self, x: Any) -> np.ndarray:
        return self.e + self.a * (np.asarray(x, dtype=float) / self.scale) ** -self.alpha

    def __str__(self) -> str:
        coef = self.a * self.scale ** self.alpha
        return f"{self.e:.3f} + {coef:.4g} x^-{self.alpha:.3f}" if self.e else f"{coef:.4g} x^-{self.alpha:.3f}"


def _check_xy(x: Any, y: Any, least: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} and {y.size} values.")
    if x.size < least:
        raise ValueError(f"a fit with these parameters needs at least {least} points; got {x.size}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite numbers (a NaN or inf loss means a run diverged: drop it).")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("a power law needs x > 0 and y > 0 (parameters, compute and losses are positive).")
    if least > 1 and np.all(x == x[0]):
        raise ValueError(f"every x is {x[0]:g}: a law of x needs points at different x (different sizes or budgets).")
    return x, y


class FitWarning(UserWarning):
    """A fit that ran but cannot be trusted as it stands: the message says why."""


def _warn_fit(x: np.ndarray, y: np.ndarray, n_params: int, slope: float) -> None:
    """Warn, naming the reason, where a power-law fit says little: too few points, losses that do not fall."""
    if x.size < n_params + 2:
        warnings.warn(f"{n_params} parameters fitted to {x.size} points: the curve can pass through almost any "
                      "such points, so its exponent means little. Measure more sizes or budgets.", FitWarning,
                      stacklevel=3)
    if y.max() - y.min() <= 1e-9 * y.max():
        warnings.warn(f"the losses are all {y[0]:.6g}: they do not change with x, so no power law can be read "
                      "from them (its terms are arbitrary).", FitWarning, stacklevel=3)
    elif slope > 0:
        warnings.warn("the losses rise with x: a falling power law cannot fit them, and the exponent is pushed to "
                      "its bound of 0. Look at the runs (did the larger ones train long enough?).", FitWarning,
                      stacklevel=3)


def fit_power_law(x: Any, y: Any, *, irreducible: bool = True) -> PowerLaw:
    """Least-squares fit of ``y = e + a x^-alpha`` (``irreducible=False``: ``e = 0``, a straight line in
    log-log axes, Kaplan et al.'s form). With ``e``, ``scipy.optimize.curve_fit`` fits the residuals of
    ``log y`` (every point weighs by its relative error, as in Hoffmann et al.'s fit of log-losses), with
    ``0 <= e < min(y)``, from the start the pure law gives."""
    from scipy.optimize import curve_fit

    x, y = _check_xy(x, y, 4 if irreducible else 2)
    scale = float(np.exp(np.mean(np.log(x))))
    u = np.log(x / scale)
    slope, intercept = np.polyfit(u, np.log(y), 1)
    _warn_fit(x, y, 3 if irreducible else 2, slope)
    if not irreducible:
        return PowerLaw(0.0, float(np.exp(intercept)), float(-slope), scale)

    def log_law(u, e, log_a, alpha):
        return np.log(e + np.exp(log_a - alpha * u))

    start = (0.5 * y.min(), math.log(max(y.mean() - 0.5 * y.min(), 1e-12)), max(-slope, 1e-3) * 2)
    low, high = [0.0, -50.0, 0.0], [y.min() * (1 - 1e-9), 50.0, 10.0]
    (e, log_a, alpha), _ = curve_fit(log_law, u, np.log(y), p0=start, maxfev=20_000, bounds=(low, high))
    at_bound = [f"{name}={value:.4g}" for name, value, lo, hi in zip(("e", "log a", "alpha"), (e, log_a, alpha), low,
                                                                     high) if min(value - lo, hi - value) <= 1e-6 * (hi - lo)]
    if at_bound:
        warnings.warn(f"the fit stopped at a bound ({', '.join(at_bound)}): the best curve lies outside what the law "
                      "allows (e in [0, min loss), alpha in [0, 10]), so its terms are not estimates.", FitWarning,
                      stacklevel=2)
    return PowerLaw(float(e), float(np.exp(log_a)), float(alpha), scale)


def fit_proportional(x: Any, y: Any) -> tuple[float, float]:
    """``y = k x^b`` by a straight line through ``(log x, log y)``: ``(k, b)`` (the optimal size against
    compute, ``N_opt = k C^b``)."""
    x, y = _check_xy(x, y, 2)
    b, log_k = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(log_k)), float(b)


def compute_frontier(flops: Any, losses: Any) -> np.ndarray:
    """Indices of the runs on the compute frontier, by increasing compute: each has a lower loss than
    every run that used less compute (Kaplan et al.'s ``L(C_min)``)."""
    flops, losses = _check_xy(flops, losses, 1)
    best, keep = math.inf, []
    for i in np.argsort(flops, kind="stable"):
        if losses[i] < best:
            best = losses[i]
            keep.append(int(i))
    return np.array(keep, dtype=int)


def compute_optimal(rows: Sequence[dict], budgets: Any | None = None, points: int = 25) -> list[dict]:
    """For each compute budget, the size whose runs reach the lowest loss at that compute.

    Each size's validation loss is interpolated linearly in ``log C`` between its runs (no extrapolation:
    a size is a candidate only inside the compute its runs span). ``budgets`` default to ``points``
    budgets spaced evenly in ``log C`` over the span two or more sizes share. One dict per budget:
    ``flops``, ``size``, ``params``, ``loss``, ``candidates`` (how many sizes span it)."""
    by_size: dict[str, list[dict]] = {}
    for r in rows:
        if not (isinstance(r.get("flops"), (int, float)) and math.isfinite(r["flops"]) and r["flops"] > 0
                and isinstance(r.get("valid_loss"), (int, float)) and math.isfinite(r["valid_loss"])):
            raise ValueError(f"the run of {r.get('size')!r} at {r.get('flops')!r} FLOPs has valid_loss="
                             f"{r.get('valid_loss')!r}: every run needs a positive finite compute and a finite loss "
                             "(a NaN loss means it diverged: drop it, or run it again with a lower learning rate).")
        by_size.setdefault(r["size"], []).append(r)
    if len(by_size) < 2:
        raise ValueError("compute_optimal needs the runs of two or more sizes.")
    curves = {}
    for name, runs in by_size.items():
        runs = sorted(runs, key=lambda r: r["flops"])
        curves[name] = (np.log([r["flops"] for r in runs]), np.array([r["valid_loss"] for r in runs]),
                        runs[0]["params"])
    if budgets is None:
        lows = sorted(c[0][0] for c in curves.values())
        highs = sorted(c[0][-1] for c in curves.values())
        lo, hi = lows[1], highs[-2]  # where at least two sizes are candidates
        if not lo < hi:
            raise ValueError("no compute budget is spanned by two sizes' runs: widen the token budgets.")
        budgets = np.exp(np.linspace(lo, hi, points))
    budgets = np.asarray(budgets, dtype=float).ravel()
    if budgets.size == 0 or not (np.all(np.isfinite(budgets)) and np.all(budgets > 0)):
        raise ValueError(f"budgets={budgets.tolist()}: give positive, finite compute budgets in FLOPs.")
    out = []
    for c in budgets:
        logc, best = math.log(c), None
        candidates = 0
        for name, (lc, loss, params) in curves.items():
            if lc[0] - 1e-9 <= logc <= lc[-1] + 1e-9:
                candidates += 1
                at = float(np.interp(logc, lc, loss))
                if best is None or at < best[2]:
                    best = (name, params, at)
        if best is not None:
            out.append({"flops": float(c), "size": best[0], "params": best[1], "loss": best[2],
                        "candidates": candidates})
    return out


# --------------------------------------------------------------------------------------------
# What size buys beyond the loss: a completion probe from the validation text
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClozeItem:
    """Which word comes next? ``context``: the token ids before the word; ``choices``: the candidate
    words' token ids, each as long as the others; ``answer``: the index of the word the text has."""

    context: tuple[int, ...]
    choices: tuple[tuple[int, ...], ...]
    answer: int
    words: tuple[str, ...] = ()


def cloze_items(tokenizer, lines: Sequence[str], train_counts: Counter, *, n_items: int = 400, n_choices: int = 4,
                context_tokens: int = 48, rank_range: tuple[int, int] = (100, 5_000), seed: int = 0) -> list[ClozeItem]:
    """A multiple-choice completion probe built from ``lines`` (the validation text): at random word
    positions, the text so far (its last ``context_tokens`` BPE tokens) and ``n_choices`` candidate next
    words: the true one and distractors of the same frequency band and the same number of tokens, so
    neither length nor frequency gives the answer away. Only words ranked ``rank_range`` in the training
    counts ``train_counts`` (alphabetic, not ``<unk>``) are asked: the most frequent words are too easy
    to guess, the rarest too few to test. Chance is ``1 / n_choices``."""
    if isinstance(lines, str):
        raise TypeError("lines must be a list of lines (str.splitlines()), not one string.")
    if n_choices < 2:
        raise ValueError(f"n_choices={n_choices}: a choice needs two or more candidates.")
    lo, hi = rank_range
    ranked = [w for w, _ in train_counts.most_common() if w.isalpha()]
    band = ranked[lo:hi]
    if len(band) < n_choices:
        raise ValueError(f"only {len(band)} words ranked {lo} to {hi} in train_counts: widen rank_range.")
    in_band = set(band)
    encode = {}

    def ids_of(word: str) -> tuple[int, ...]:
        if word not in encode:
            encode[word] = tuple(tokenizer.encode(word))
        return encode[word]

    by_length: dict[int, list[str]] = {}
    for w in band:
        by_length.setdefault(len(ids_of(w)), []).append(w)
    stream, targets = [], []  # the whole text's tokens, and where each askable word starts
    eos = tokenizer.encode("<eos>")
    for line in lines:
        for word in line.split():
            if word in in_band and len(stream) >= context_tokens and len(by_length[len(ids_of(word))]) >= n_choices:
                targets.append((len(stream), word))
            stream.extend(ids_of(word))
        stream.extend(eos)
    if not targets:
        raise ValueError("no word of the band has enough context in lines: give more text or a wider rank_range.")
    rng = random.Random(seed)
    picked = rng.sample(targets, min(n_items, len(targets)))
    items = []
    for start, word in sorted(picked):
        pool = [w for w in by_length[len(ids_of(word))] if w != word]
        words = [word, *rng.sample(pool, n_choices - 1)]
        rng.shuffle(words)
        items.append(ClozeItem(tuple(stream[start - context_tokens:start]), tuple(ids_of(w) for w in words),
                               words.index(word), tuple(words)))
    return items


@torch.no_grad()
def cloze_accuracy(model: nn.Module, items: Sequence[ClozeItem], *, batch_size: int = 64,
                   max_context: int | None = None) -> float:
    """The fraction of ``items`` where ``model`` gives the true word the highest log-probability: the
    sum of its tokens' log-probabilities after the context. ``model(x) -> output`` with
    ``model.log_probs(output) -> (batch, time, vocab)``, as the course's language models. A context
    longer than the model reads (``max_context``, default the model's own) keeps its last tokens."""
    if not items:
        raise ValueError("no items to score.")
    limit = max_context or model_context(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows, owners = [], []
    for i, item in enumerate(items):
        for choice in item.choices:
            context = list(item.context)
            if limit is not None:  # the input is context + choice[:-1]: at most `limit` positions
                context = context[max(0, len(context) + len(choice) - 1 - limit):]
            if not context:
                raise ValueError(f"item {i}: a choice of {len(choice)} tokens leaves no room for context in "
                                 f"max_context={limit}.")
            rows.append(context + list(choice))
            owners.append((i, len(context), len(choice)))
    scores = np.zeros(len(rows))
    try:
        order = sorted(range(len(rows)), key=lambda k: len(rows[k]))  # batch rows of one length together
        for s in range(0, len(order), batch_size):
            chunk = order[s:s + batch_size]
            by_len: dict[int, list[int]] = {}
            for k in chunk:
                by_len.setdefault(len(rows[k]), []).append(k)
            for length, ks in by_len.items():
                x = torch.tensor([rows[k] for k in ks], device=device)
                logp = model.log_probs(model(x[:, :-1])).float()
                for j, k in enumerate(ks):
                    _, n_context, n_choice = owners[k]
                    positions = torch.arange(n_context - 1, n_context - 1 + n_choice, device=device)
                    targets = x[j, n_context:n_context + n_choice]
                    scores[k] = float(logp[j, positions, targets].sum())
    finally:
        model.train(was_training)
    correct, k = 0, 0
    for item in items:
        n = len(item.choices)
        correct += int(np.argmax(scores[k:k + n]) == item.answer)
        k += n
    return correct / len(items)


def cloze_chance(items: Sequence[ClozeItem]) -> float:
    """The accuracy of guessing: the mean of ``1 / len(choices)``."""
    return float(np.mean([1 / len(i.choices) for i in items]))

