"""The exercises of notebook 02: each checker accepts a right answer and rejects wrong ones."""

import math

import pytest
import torch
from torch import nn

from llmcourse.exercises.rnn_lm import (_gradient_ratio, detach_exercise, forget_bias_experiment,
                                        gru_step_exercise, rnn_step_exercise)
from llmcourse.rnn import detach_state, rnn_cell_step


def unwritten(*args):
    raise NotImplementedError


def test_rnn_lm_rnn_step_exercise():
    assert rnn_step_exercise.check(rnn_cell_step, verbose=False)
    assert not rnn_step_exercise.check(lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + h @ Wh.T), verbose=False)
    assert not rnn_step_exercise.check(unwritten, verbose=False)


def test_rnn_lm_detach_exercise():
    assert detach_exercise.check(detach_state, verbose=False)
    assert not detach_exercise.check(lambda s: s, verbose=False)  # same values, still attached: wrong
    assert not detach_exercise.check(lambda s: s.detach(), verbose=False)  # forgets the LSTM's pair


def _gru(order="rzn", reset_bias_inside=True, keep_is_z=True):
    """A GRU step, right by default; each argument makes it wrong in one way a learner might."""
    def step(x, h, W_ih, W_hh, b_ih, b_hh):
        gi = dict(zip(order, (x @ W_ih.T + b_ih).chunk(3, -1)))
        gh = dict(zip(order, (h @ W_hh.T + b_hh).chunk(3, -1)))
        r, z = torch.sigmoid(gi["r"] + gh["r"]), torch.sigmoid(gi["z"] + gh["z"])
        if reset_bias_inside:
            n = torch.tanh(gi["n"] + r * gh["n"])
        else:  # r * (W_hn h) + b_hn: the bias left outside the reset gate
            H = h.shape[-1]
            n = torch.tanh(gi["n"] + r * (h @ W_hh[2 * H:].T) + b_hh[2 * H:])
        return (1 - z) * n + z * h if keep_is_z else z * n + (1 - z) * h
    return step


def test_gru_step_solution_is_pytorchs_gru_cell():
    torch.manual_seed(0)
    ref = nn.GRUCell(5, 4)
    x, h = torch.randn(3, 5), torch.randn(3, 4)
    ours = gru_step_exercise.solution_fn(x, h, ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
    torch.testing.assert_close(ours, ref(x, h), atol=1e-6, rtol=1e-6)


def test_rnn_lm_gru_step_exercise():
    assert gru_step_exercise.check(_gru(), verbose=False)
    assert not gru_step_exercise.check(_gru(order="zrn"), verbose=False)  # gates in the wrong order
    assert not gru_step_exercise.check(_gru(reset_bias_inside=False), verbose=False)
    assert not gru_step_exercise.check(_gru(keep_is_z=False), verbose=False)  # z and 1 - z swapped
    assert not gru_step_exercise.check(lambda x, h, *w: rnn_cell_step(x, h, *(t[: h.shape[-1]] for t in w)),
                                       verbose=False)  # a plain RNN step
    assert not gru_step_exercise.check(unwritten, verbose=False)


def test_forget_bias_measurement_rises_then_saturates():
    ratios = [_gradient_ratio(b) for b in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)]
    assert ratios == sorted(ratios[:5]) + ratios[5:]  # rises with the bias up to 3
    assert ratios[0] < 1e-8 and ratios[4] > 1e-1
    assert 0.1 < ratios[5] < 10  # saturates: the gate cannot keep more than everything
    state = torch.random.get_rng_state()
    _gradient_ratio(1.0)
    assert torch.equal(state, torch.random.get_rng_state())  # leaves the notebook's random stream alone


def test_rnn_lm_forget_bias_experiment():
    truth = forget_bias_experiment.solution_fn([0.5, 2.0, 5.0])
    assert forget_bias_experiment.check(truth, verbose=False)
    assert forget_bias_experiment.check({b: v * 30 for b, v in truth.items()}, verbose=False)  # within 100x
    assert not forget_bias_experiment.check({0.5: None, 2.0: None, 5.0: None}, verbose=False)  # not predicted
    assert not forget_bias_experiment.check({0.5: 1.0, 2.0: 1.0, 5.0: 1.0}, verbose=False)  # "no decay at all"
    # straight-line extrapolation on the log axis from bias 1 (7e-5) and 3 (0.37) overshoots at 5
    log1, log3 = math.log10(_gradient_ratio(1.0)), math.log10(_gradient_ratio(3.0))
    assert not forget_bias_experiment.check({5.0: 10 ** (log3 + (log3 - log1))}, verbose=False)
    assert not forget_bias_experiment.check({2.0: 0.0}, verbose=False)
    assert not forget_bias_experiment.check([1e-5], verbose=False)


@pytest.mark.parametrize("exercise", [rnn_step_exercise, gru_step_exercise, forget_bias_experiment])
def test_rnn_lm_exercises_show_task_and_solution(exercise, capsys):
    assert "Exercise" in repr(exercise) and exercise.hint_text
    exercise.solution()
    assert capsys.readouterr().out.strip()
