"""Exercises of notebook 03, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import Exercise

__all__ = ['attention_exercise', 'causal_mask_exercise']


def _attention_solution(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    d_k = q.shape[-1]
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_k), dim=-1)
    return weights @ v


def _attention_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(3)
    shapes = [((1, 3, 4), (1, 3, 4), (1, 3, 4)), ((2, 5, 8), (2, 7, 8), (2, 7, 3)), ((2, 4, 6, 16),) * 3]
    return [tuple(torch.randn(*s, generator=g) for s in case) for case in shapes]


attention_exercise = Exercise(
    title="scaled dot-product attention",
    task="""
    Write `my_attention(q, k, v)` that returns `softmax(q k^T / sqrt(d_k)) v` for batched inputs
    `q: (..., t_q, d_k)`, `k: (..., t_k, d_k)`, `v: (..., t_k, d_v)`; the result is `(..., t_q, d_v)`.
    Use only `@`, `.transpose`, `torch.softmax` and `math.sqrt` (no masks, no dropout).
    """,
    solution_fn=_attention_solution,
    cases=_attention_cases(),
    hint_text="Transpose the last two dimensions of k, divide the scores by sqrt(d_k) where d_k = q.shape[-1], "
              "take the softmax over the keys (the last dimension), then multiply by v.",
)


def _causal_mask_solution(t: int) -> Tensor:
    return torch.tril(torch.ones(t, t, dtype=torch.bool))


causal_mask_exercise = Exercise(
    title="a causal mask",
    task="""
    Write `my_causal_mask(t)` returning a `(t, t)` boolean tensor that is True where query `i` may
    attend to key `j`, i.e. where `j <= i` (the course's convention: True = allowed).
    """,
    solution_fn=_causal_mask_solution,
    cases=[(1,), (2,), (5,), (9,)],
    hint_text="torch.ones(t, t, dtype=torch.bool) and torch.tril (lower triangle, diagonal included).",
)
