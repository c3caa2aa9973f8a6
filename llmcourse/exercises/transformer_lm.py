"""Exercises of notebook 04, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`).

Three are functions to write (the causal attention weights, top-k filtering, RMSNorm from its
formula); :data:`positions_experiment` is an experiment: predict what removing the position vectors
does to a small language model, then train it and measure (:func:`compare_positions`).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from . import Exercise, predicted as exercise_predicted

__all__ = ['causal_attention_exercise', 'top_k_exercise', 'rms_norm_exercise', 'positions_experiment',
           'compare_positions']


def _causal_attention_solution(scores: Tensor) -> Tensor:
    t_q, t_k = scores.shape[-2:]
    allowed = torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)
    return scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)


def _scores_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(4)
    return [(torch.randn(*shape, generator=g),) for shape in [(1, 1, 3, 3), (2, 4, 6, 6), (1, 2, 1, 1), (3, 1, 5, 5)]]


causal_attention_exercise = Exercise(
    title="the causal mask inside the block",
    task="""
    Write `my_causal_weights(scores)`: given raw attention scores `q k^T / sqrt(d_k)` of shape
    `(batch, heads, t, t)`, return the attention weights of *causal* self-attention: query `i` gives
    weight 0 to every key `j > i`, and each row sums to 1 over the keys `j <= i`.
    """,
    solution_fn=_causal_attention_solution,
    cases=_scores_cases(),
    hint_text="Build a (t, t) lower-triangular boolean matrix with torch.tril, put -inf where it is False "
              "(scores.masked_fill(~allowed, float('-inf'))), then softmax over the last dimension.",
)


def _top_k_solution(logits: Tensor, k: int) -> Tensor:
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _top_k_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(5)
    return [(torch.randn(1, 10, generator=g), 3), (torch.randn(4, 50, generator=g), 1),
            (torch.randn(2, 20, generator=g), 20), (torch.randn(3, 7, generator=g), 5)]


top_k_exercise = Exercise(
    title="top-k filtering",
    task="""
    Write `my_top_k(logits, k)`: for next-token logits of shape `(batch, vocab)`, keep the `k` largest
    logits of each row unchanged and set every other logit to `-inf`, so that sampling from the
    softmax can only pick one of the `k` most likely tokens.
    """,
    solution_fn=_top_k_solution,
    cases=_top_k_cases(),
    hint_text="torch.topk(logits, k, dim=-1).values[:, -1:] is the k-th largest value of each row (kept as a "
              "column so it broadcasts); mask the logits below it with masked_fill(..., float('-inf')).",
)


# --------------------------------------------------------------------------------------------
# RMSNorm: layer normalisation without the mean
# --------------------------------------------------------------------------------------------
def _rms_norm_solution(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return x / rms * weight


def _rms_norm_cases() -> list[tuple]:
    """Inputs on which the usual slips give other numbers: vectors with a mean far from 0 (subtracting
    it is LayerNorm, not RMSNorm), small vectors and a large eps (eps left out, or added outside the
    square root), rows of different sizes (normalising over the wrong dimension), a gain that is not 1."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for shape, scale, shift, eps in [((2, 8), 1.0, 3.0, 1e-6), ((3, 4, 16), 1e-2, 0.0, 1e-5),
                                     ((1, 5, 6), 2.0, -1.0, 0.5), ((4, 32), 0.05, 0.02, 1e-3)]:
        x = (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift)
        x = x * torch.linspace(0.5, 2.0, shape[-2], dtype=torch.float64)[:, None]  # rows of different sizes
        weight = torch.rand(shape[-1], generator=g, dtype=torch.float64) + 0.5
        cases.append((x, weight, eps))
    return cases


rms_norm_exercise = Exercise(
    title="RMSNorm from its formula",
    task="""
    Section 2 wrote LayerNorm from its formula. Many recent language models (T5, LLaMA) use a simpler
    normalisation, **RMSNorm** (Zhang & Sennrich 2019): it does not subtract the mean, and divides
    each vector by its root mean square instead of its standard deviation,

    `y = x / sqrt(mean(x²) + eps) * weight`,

    the mean taken over the last dimension (the `d` features of one vector), with a learned gain
    `weight` of shape `(d,)` and no shift. Write `my_rms_norm(x, weight, eps)` for `x` of shape
    `(..., d)`. (PyTorch has it as `torch.nn.functional.rms_norm`: do not use it, the checker
    compares with it.)
    """,
    solution_fn=_rms_norm_solution,
    cases=_rms_norm_cases(),
    forbidden=("torch.nn.functional.rms_norm", "torch.rms_norm", "torch.nn.RMSNorm"),
    hint_text="x.pow(2).mean(dim=-1, keepdim=True) is each vector's mean square, kept as a column so that it "
              "broadcasts; add eps inside the square root; multiply by weight last. Unlike layer_norm, no "
              "mean is subtracted.",
)


# --------------------------------------------------------------------------------------------
# An experiment: does a causal language model need position vectors?
# --------------------------------------------------------------------------------------------
@dataclass(repr=False)
class Experiment:
    """A "predict, then measure" exercise: a task, a hint, and the function that measures."""

    title: str
    task: str
    hint_text: str = ""

    def __repr__(self) -> str:
        return f"Experiment: {self.title}\n\n{textwrap.dedent(self.task).strip()}"

    def _repr_markdown_(self) -> str:
        return f"**Experiment — {self.title}**\n\n{textwrap.dedent(self.task).strip()}"

    def hint(self) -> None:
        print(self.hint_text or "No hint for this one: re-read the cell above the exercise.")


positions_experiment = Experiment(
    title="does a causal language model need positions?",
    task="""
    Section 1 showed that attention without a mask cannot tell one order of its inputs from another.
    A *causal* mask changes that a little: position `t` sees `t + 1` tokens, position 0 only itself,
    so the model could, in principle, work out where it is from what it can see. Predict first, then
    measure: a `TransformerLM` built with `positional="none"` (no position vectors at all), trained
    exactly like one with learned positions (same data, seed, steps), reaches what validation
    perplexity? Write your guesses in `my_prediction`, then run `compare_positions`, which trains both
    and prints them beside the word-frequency baseline. Then try `"sinusoidal"` too, or more steps.
    """,
    hint_text="Think about what each position can compute from the tokens it sees: position 0 attends only to "
              "itself, position 1 splits its attention over two tokens, ... A model that can count can learn "
              "roughly where it is (Haviv et al. 2022, 'Transformer language models without positional "
              "encodings still learn positional information'). Whether it does so in a few hundred steps "
              "is what the measurement tells you. If you try 'sinusoidal', compare the size of its entries "
              "(between -1 and 1) with that of the token embeddings they are added to (initialised with a "
              "standard deviation of 0.02).",
)


def compare_positions(train_ids: Tensor, valid_ids: Tensor, choices=("learned", "none"), *, vocab_size: int,
                      context: int = 32, d_model: int = 64, n_layers: int = 2, n_heads: int = 4, steps: int = 300,
                      batch_size: int = 32, lr: float = 5e-3, seed: int = 0, device=None,
                      predicted: dict | None = None, baseline: float | None = None,
                      progress: bool = False) -> dict[str, float]:
    """Train one small :class:`llmcourse.transformer.TransformerLM` per ``positional`` choice on the same
    data, seed and steps; return the validation perplexity of each (scored with the causal mask, every
    token of ``valid_ids`` in consecutive windows). ``train_ids``/``valid_ids`` are id streams ``(n,)``
    whose ids are below ``vocab_size``. Prints each measurement beside ``predicted[choice]`` (your guess)
    and the ``baseline`` perplexity (word frequencies alone), when given.

    With no prediction at all it trains nothing and returns ``{}``: predict, then measure (a guess made
    after seeing the answer teaches nothing)."""
    from torch.utils.data import DataLoader

    from ..data import LMWindowDataset
    from ..training import TrainConfig, evaluate, train
    from ..transformer import TransformerConfig, TransformerLM

    for name, stream in (("train_ids", train_ids), ("valid_ids", valid_ids)):
        if stream.dim() != 1 or int(stream.max()) >= vocab_size:
            raise ValueError(f"{name} must be a 1-D stream of ids below vocab_size={vocab_size}.")
    predicted = predicted or {}
    if not exercise_predicted({p: predicted.get(p) for p in choices}, then="trains and measures",
                              what=f"a validation perplexity for {', '.join(map(repr, choices))} in my_prediction"):
        return {}
    base = TransformerConfig(vocab_size, max_context=context, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                             dropout=0.0, attn_dropout=0.0)
    valid = DataLoader(LMWindowDataset(valid_ids, context), batch_size=64)
    measured = {}
    for positional in choices:
        torch.manual_seed(seed)
        model = TransformerLM(replace(base, positional=positional))
        loader = DataLoader(LMWindowDataset(train_ids, context), batch_size=batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        train(model, loader, None, TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, steps // 15),
                                               log_every=max(1, steps // 10), progress=progress), device=device)
        measured[positional] = math.exp(evaluate(model, valid)[0])
    for positional, ppl in measured.items():
        guess = predicted.get(positional)
        said = "no prediction" if guess is None else f"you predicted {float(guess):.1f}"
        print(f"positional={positional!r:>13}: validation perplexity {ppl:7.1f}   ({said})")
    if baseline is not None:
        print(f"{'word frequencies alone':>25}: {baseline:7.1f}")
    return measured

