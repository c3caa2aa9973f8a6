"""Exercises of notebook 02, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from . import Exercise

__all__ = ['rnn_step_exercise', 'detach_exercise']


def _rnn_step_solution(x_t: Tensor, h_prev: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)


def _step_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    cases = []
    for batch, n_in, n_h in [(1, 3, 4), (5, 2, 3), (2, 8, 8)]:
        cases.append((torch.randn(batch, n_in, generator=g), torch.randn(batch, n_h, generator=g),
                      torch.randn(n_h, n_in, generator=g), torch.randn(n_h, n_h, generator=g),
                      torch.randn(n_h, generator=g), torch.randn(n_h, generator=g)))
    return cases


rnn_step_exercise = Exercise(
    title="one step of the RNN cell",
    task="""
    Write `my_rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh)` that returns the next hidden state
    h_t = tanh(W_ih x_t + b_ih + W_hh h_prev + b_hh) for a whole batch at once.
    Shapes: x_t (batch, input), h_prev (batch, hidden), W_ih (hidden, input), W_hh (hidden, hidden),
    biases (hidden,); the result is (batch, hidden).
    """,
    solution_fn=_rnn_step_solution,
    cases=_step_cases(),
    hint_text="With rows as batch items, W x becomes x @ W.T; the biases broadcast over the batch.",
)


def _detach_solution(state):
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)


def _describe_state(state) -> tuple:
    """What the detach checker compares: the values, and whether each tensor still has a graph."""
    tensors = [state] if isinstance(state, torch.Tensor) else list(state)
    return tuple((t.detach().clone(), t.requires_grad, t.grad_fn is None) for t in tensors)


def _detach_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(3)
    leaf = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    h = torch.tanh(leaf * 2)  # a state that came out of a computation: it has a grad_fn
    c = leaf.exp()
    return [(h,), ((h, c),)]


@dataclass(repr=False)
class _StateExercise(Exercise):
    """An exercise whose answer is a recurrent state: compared by value *and* by its link to the graph."""

    def check(self, answer: Callable, verbose: bool = True) -> bool:
        shadow = Exercise(self.title, self.task, lambda *a: _describe_state(self.solution_fn(*a)), self.cases)
        return shadow.check(lambda *a: _describe_state(answer(*a)), verbose)


detach_exercise = _StateExercise(
    title="detach the hidden state between windows",
    task="""
    Write `my_detach(state)`: the state an RNN hands to the next window of truncated BPTT. `state` is
    one tensor (RNN, GRU) or a tuple `(h, c)` of tensors (LSTM). Return the same values, in the same
    structure, cut from the graph of the previous window, so that backward() stops at the window's edge.
    """,
    solution_fn=_detach_solution,
    cases=_detach_cases(),
    hint_text="Tensor.detach() returns the same values without a grad_fn; treat a tuple element by element.",
)
