"""Exercises of notebook 00, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import Exercise

__all__ = ['perplexity_exercise', 'softmax_exercise', 'cross_entropy_exercise', 'bias_correction_exercise']


def _perplexity_solution(log_probs: list[float]) -> float:
    mean_nll = -sum(log_probs) / len(log_probs)
    return math.exp(mean_nll)


perplexity_exercise = Exercise(
    title="perplexity from log-probabilities",
    task="""
    Write `my_perplexity(log_probs)`: given the natural-log probability that a model gave to each
    token of a text (a list of floats), return the perplexity of the model on that text.
    """,
    solution_fn=_perplexity_solution,
    cases=[([math.log(0.5)] * 4,), ([math.log(0.25), math.log(0.5), math.log(0.125)],),
           ([math.log(1 / 33278)] * 3,), ([-2.0, -0.1, -7.5, -3.3, -0.01],)],
    hint_text="Average the negative log-probabilities, then undo the log with math.exp.",
)


def _softmax_solution(logits: Tensor) -> Tensor:
    shifted = logits - logits.max(dim=-1, keepdim=True).values  # every exponent <= 0: no overflow
    e = torch.exp(shifted)
    return e / e.sum(dim=-1, keepdim=True)


def _softmax_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(0)
    f64 = dict(dtype=torch.float64)
    return [(torch.tensor([1.0, 2.0, 3.0], **f64),),
            (torch.tensor([1000.0, 1001.0, 1002.0], **f64),),  # exp(1000) overflows even in float64
            (torch.tensor([-1000.0, -1000.0, -999.0], **f64),),  # and exp(-1000) underflows to 0
            (torch.tensor([[1000.0, 1001.0], [-1000.0, -999.0]], **f64),),  # rows of very different scales
            (3 * torch.randn(2, 3, generator=g, dtype=torch.float64),),
            (5 * torch.randn(2, 3, 4, generator=g, dtype=torch.float64),)]


softmax_exercise = Exercise(
    title="a softmax that survives large scores",
    task="""
    Write `my_softmax(logits)`: the softmax over the last dimension of a tensor of any shape, using
    only `torch.exp`, `max` and `sum` (not `torch.softmax`). It must give the right probabilities
    for scores around 1000 or -1000 too, where `exp` alone overflows to inf or underflows to 0.
    """,
    solution_fn=_softmax_solution,
    cases=_softmax_cases(),
    forbidden=("torch.softmax", "torch.Tensor.softmax", "torch.nn.functional.softmax", "torch.special.softmax"),
    hint_text="softmax(z) = softmax(z - c) for any c: subtract each row's own maximum "
              "(z.max(dim=-1, keepdim=True).values) before exp, and sum over dim=-1 with keepdim=True.",
)


def _cross_entropy_solution(logits: Tensor, targets: Tensor) -> Tensor:
    keep = targets != -100
    z, y = logits[keep], targets[keep]
    z_max = z.max(dim=-1, keepdim=True).values
    log_sum_exp = (z_max + torch.log(torch.exp(z - z_max).sum(dim=-1, keepdim=True))).squeeze(-1)
    return (log_sum_exp - z[torch.arange(len(y)), y]).mean()


def _cross_entropy_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(1)
    f64 = dict(dtype=torch.float64)
    return [(torch.randn(3, 4, generator=g, **f64), torch.tensor([0, 3, 1])),
            (torch.zeros(2, 10, **f64), torch.tensor([3, 7])),  # uniform over 10 words: log 10
            (torch.tensor([[1000.0, 0.0, -1000.0], [1000.0, 1001.0, 1002.0]], **f64), torch.tensor([0, 2])),
            (2 * torch.randn(4, 5, generator=g, **f64), torch.tensor([2, -100, 4, -100])),  # two padded positions
            (torch.randn(6, 7, generator=g, **f64), torch.tensor([6, 5, -100, 0, 1, 2]))]


cross_entropy_exercise = Exercise(
    title="cross-entropy from logits, padding ignored",
    task="""
    Write `my_cross_entropy(logits, targets)`: `logits` is `(N, V)` (N positions, V words), `targets`
    is `(N,)` with the index of the right word at each position, or -100 where the position is
    padding and must not count. Return the mean of -log softmax(logits)[target] over the positions
    that count, as a 0-dimensional tensor (what `F.cross_entropy` returns), without calling
    `F.cross_entropy`, `F.log_softmax` or `torch.logsumexp`. Logits around 1000 must work.
    """,
    solution_fn=_cross_entropy_solution,
    cases=_cross_entropy_cases(),
    forbidden=("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss", "torch.nn.functional.log_softmax",
               "torch.log_softmax", "torch.Tensor.log_softmax", "torch.logsumexp", "torch.Tensor.logsumexp"),
    hint_text="-log softmax(z)[y] = log(sum_j exp z_j) - z_y; compute the log-sum-exp with the row's maximum "
              "subtracted and added back. Keep the rows where targets != -100 first, then take the mean.",
)


def _update_ratio_solution(t: int, beta1: float, beta2: float) -> float:
    return (1 - beta1 ** t) / math.sqrt(1 - beta2 ** t)


bias_correction_exercise = Exercise(
    title="Adam without its bias correction (an experiment)",
    task="""
    Predict first: without the bias correction (m and v used as they are, not divided by 1 - beta ** t),
    are Adam's first updates smaller or larger than with it? Then write
    `my_update_ratio(t, beta1, beta2)`: for a gradient g that is the same at every step (and eps
    negligible), the size of the update at step t (counting from 1) without the correction, divided
    by its size with it. Then run the experiment cell, which measures that ratio on the bigram model.
    """,
    solution_fn=_update_ratio_solution,
    cases=[(1, 0.9, 0.999), (2, 0.9, 0.999), (10, 0.9, 0.999), (100, 0.9, 0.999), (1000, 0.9, 0.999),
           (1, 0.9, 0.99), (5, 0.5, 0.9), (3, 0.9, 0.9)],
    hint_text="With a constant g, m_t = (1 - beta1 ** t) g and v_t = (1 - beta2 ** t) g ** 2 exactly (sum the "
              "geometric series). The corrected update is lr * sign(g); the uncorrected one is lr * m_t / sqrt(v_t).",
)
