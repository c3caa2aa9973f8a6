"""Exercises of notebook 02, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from . import Exercise, filling_in

__all__ = ['rnn_step_exercise', 'gru_step_exercise', 'forget_bias_experiment', 'detach_exercise']


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


def _gru_step_solution(x_t: Tensor, h_prev: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    i_r, i_z, i_n = (x_t @ W_ih.T + b_ih).chunk(3, dim=-1)  # PyTorch's order: reset, update, candidate
    h_r, h_z, h_n = (h_prev @ W_hh.T + b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)  # the reset gate scales the recurrent part, its bias included
    return (1 - z) * n + z * h_prev


def _gru_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(11)
    cases = []
    for batch, n_in, n_h in [(1, 3, 4), (5, 2, 3), (2, 8, 8)]:
        cases.append((torch.randn(batch, n_in, generator=g), torch.randn(batch, n_h, generator=g),
                      torch.randn(3 * n_h, n_in, generator=g), torch.randn(3 * n_h, n_h, generator=g),
                      torch.randn(3 * n_h, generator=g), torch.randn(3 * n_h, generator=g)))
    return cases


gru_step_exercise = Exercise(
    title="one step of the GRU cell, in PyTorch's layout",
    task="""
    Write `my_gru_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh)`: one step of `torch.nn.GRUCell` from the
    equations of section 3. The three gates' weights are stacked in the order reset r, update z,
    candidate n: rows 0:H of W_ih (3H, input), W_hh (3H, H), b_ih and b_hh (3H,) belong to r,
    rows H:2H to z, rows 2H:3H to n.
        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h_t = (1 - z) * n + z * h
    x_t is (batch, input), h_prev (batch, H); return h_t, (batch, H). The checker compares with
    nn.GRUCell's arithmetic on three batches.
    """,
    solution_fn=_gru_step_solution,
    cases=_gru_cases(),
    hint_text="Compute x_t @ W_ih.T + b_ih and h_prev @ W_hh.T + b_hh once each, split both with .chunk(3, dim=-1); "
              "the reset gate multiplies the whole recurrent part of n, b_hn included.",
)


# --- predict, then measure: the forget-gate bias ---------------------------------------------
_DISTANCE, _STEPS, _TOLERANCE = 50, 100, 100.0  # read 50 steps back; a prediction holds within 100x
_FLOOR = 1e-30  # float32 gradients this small underflow to 0: compare no lower


def _gradient_ratio(bias: float, distance: int = _DISTANCE) -> float:
    """||dh_T/dx_t|| ``distance`` steps back over the last step's, for a fresh ``nn.LSTM(16, 64)`` (seed 0)
    with forget-gate bias ``bias``: the measurement of :data:`forget_bias_experiment`."""
    from ..rnn import grad_norms_through_time, set_forget_bias

    with torch.random.fork_rng():  # leave the notebook's random stream as it was
        torch.manual_seed(0)
        lstm = nn.LSTM(16, 64, batch_first=True)
    g = grad_norms_through_time(set_forget_bias(lstm, bias), seq_len=_STEPS)
    return max(float(g[distance] / g[0]), _FLOOR)


def _forget_truth(biases) -> dict:
    return {b: _gradient_ratio(b) for b in biases}


@dataclass(repr=False)
class _ForgetBiasExperiment(Exercise):
    """Predict the gradient 50 steps back for some forget-gate biases; ``check(prediction)`` measures it."""

    tolerance: float = _TOLERANCE

    def check(self, prediction: dict, verbose: bool = True) -> bool:
        if not isinstance(prediction, dict) or not prediction:
            return self._say(False, verbose, "pass a dict {forget-gate bias: predicted ratio}, "
                             "e.g. {0.5: 1e-6, 2.0: 1e-2}.")
        unsure = [b for b, guess in prediction.items()
                  if isinstance(guess, bool) or not isinstance(guess, (int, float)) or not guess > 0]
        if unsure and not filling_in(unsure):
            return self._say(False, verbose, f"predict first: for bias {unsure}, write a positive number "
                             "(the ratio, e.g. 1e-5), then run the cell again.")
        prediction = {b: 1.0 if b in unsure else guess for b, guess in prediction.items()}
        truth = self.solution_fn(sorted(prediction))
        if verbose:
            print(f"||dh_T/dx_t|| {_DISTANCE} steps back / at the last step, LSTM(16, 64), fresh weights "
                  f"(a prediction holds within {self.tolerance:g}x)")
            print("  bias  sigmoid(bias)  measured  per step  you said")
        wrong = []
        for b in sorted(prediction):
            measured, guess = truth[b], max(float(prediction[b]), _FLOOR)
            held = abs(math.log10(guess) - math.log10(measured)) <= math.log10(self.tolerance)
            wrong += [] if held else [b]
            if verbose:
                print(f"  {b:<5g} {1 / (1 + math.exp(-b)):13.3f}  {measured:8.1e}  {measured ** (1 / _DISTANCE):8.3f}"
                      f"  {guess:8.1e} {'✅' if held else '❌'}")
        return self._say_predictions(wrong, len(prediction), "bias", verbose)

    def solution(self) -> None:
        print(textwrap.dedent("""
            The forget gate starts near sigmoid(b): the fraction of the memory c kept at each step. The
            gradient flowing back along c is multiplied by about that much at every step, so 50 steps back
            it is roughly (factor per step) ** 50; the check() table prints the factor the measurement works
            out to, ratio ** (1/50), beside sigmoid(b). Between the curves of the figure, interpolate on the log
            axis: b = 0.5 lands between b = 0 and b = 1, b = 2 between b = 1 and b = 3. Beyond b = 3 the
            gate is already nearly 1 (sigmoid(3) = 0.95, sigmoid(5) = 0.993) and cannot keep more than
            everything: the ratio saturates near 1 instead of growing on. A straight-line extrapolation
            of the log ratio in b overshoots by orders of magnitude.""").strip())


forget_bias_experiment = _ForgetBiasExperiment(
    title="predict, then measure: the forget-gate bias as a dial",
    task="""
    The figure of section 3 shows how much of the gradient reaches 50 steps back in an untrained
    LSTM, for forget-gate biases 0, 1 and 3. Predict the ratio ||dh_T/dx_t|| 50 steps back / at the
    last step for the biases in `my_prediction` (0.5, 2 and 5; add others if you like): write a
    number such as 1e-7 for each, then run the cell. It builds a fresh LSTM of the same size, sets
    its forget-gate bias with `set_forget_bias`, measures with `grad_norms_through_time`, and says
    which predictions held (within a factor of 100: the figure spans twenty powers of ten).
    """,
    solution_fn=_forget_truth,
    hint_text="Read the three curves at distance 50 on the log axis. What fraction of its memory does a gate "
              "at sigmoid(b) keep per step, and what is the most it can keep?",
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
