"""Exercises of notebook 04, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import torch
from torch import Tensor

from . import Exercise

__all__ = ['causal_attention_exercise', 'top_k_exercise']


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
