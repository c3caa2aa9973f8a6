"""Exercises of notebook 05, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..bert import apply_mask_rule
from . import Exercise

__all__ = ['mask_rule_exercise', 'accuracy_exercise']


def _mask_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(5)
    cases = []
    for shape in [(1, 8), (3, 12), (4, 40)]:
        ids = torch.randint(5, 100, shape, generator=g)
        selected = torch.rand(shape, generator=g) < 0.3
        u = torch.rand(shape, generator=g)
        random_ids = torch.randint(5, 100, shape, generator=g)
        cases.append((ids, selected, u, random_ids, 4))
    return cases


mask_rule_exercise = Exercise(
    title="BERT's 80/10/10 rule",
    task="""
    Write `my_mask_rule(ids, selected, u, random_ids, mask_id)` returning `(inputs, labels)`.
    Every tensor has the shape of `ids`. Where `selected` is True the model must predict the token:
    its label is the original id (elsewhere the label is -100, which the loss ignores). A selected
    token becomes `mask_id` when `u < 0.8`, becomes `random_ids` when `0.8 <= u < 0.9`, and is left
    unchanged when `u >= 0.9`. Tokens not selected never change.
    """,
    solution_fn=apply_mask_rule,
    cases=_mask_cases(),
    hint_text="torch.where(condition, a, b) picks a where the condition holds, b elsewhere; build the inputs in two "
              "steps (first [MASK], then the random ids) and combine conditions with & .",
)


def _accuracy_from_logits(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(dim=-1) == labels).float().mean())


def _accuracy_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(n, c, generator=g), torch.randint(c, (n,), generator=g)) for n, c in [(4, 2), (50, 2), (30, 5)]]


accuracy_exercise = Exercise(
    title="Accuracy from logits",
    task="""
    Write `my_accuracy(logits, labels)`: `logits` is `(n, n_classes)`, `labels` is `(n,)` of class ids.
    Return the fraction of rows whose highest logit is the true class, as a Python float.
    """,
    solution_fn=_accuracy_from_logits,
    cases=_accuracy_cases(),
    hint_text="The predicted class is logits.argmax(dim=-1); compare with labels, then take the mean of a float tensor.",
)
