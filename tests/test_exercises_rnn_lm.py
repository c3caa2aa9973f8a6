"""The exercises of notebook 02: each checker accepts a right answer and rejects wrong ones."""

import torch

from llmcourse.exercises.rnn_lm import detach_exercise, rnn_step_exercise
from llmcourse.rnn import detach_state, rnn_cell_step


def test_rnn_lm_rnn_step_exercise():
    assert rnn_step_exercise.check(rnn_cell_step, verbose=False)
    assert not rnn_step_exercise.check(lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + h @ Wh.T), verbose=False)

    def unwritten(*args):
        raise NotImplementedError

    assert not rnn_step_exercise.check(unwritten, verbose=False)


def test_rnn_lm_detach_exercise():
    assert detach_exercise.check(detach_state, verbose=False)
    assert not detach_exercise.check(lambda s: s, verbose=False)  # same values, still attached: wrong
    assert not detach_exercise.check(lambda s: s.detach(), verbose=False)  # forgets the LSTM's pair
