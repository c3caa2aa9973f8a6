"""Tests for llmcourse.exercises.Exercise: what a checker accepts and how it reports the rest."""

import torch

from llmcourse.exercises import Exercise, type_problem


def _mask(t):
    return torch.tril(torch.ones(t, t, dtype=torch.bool))


MASK = Exercise("mask", "a boolean lower triangle", _mask, cases=[(2,), (4,)])


def test_a_right_answer_passes_and_a_wrong_one_is_reported(capsys):
    assert MASK.check(_mask)
    assert "all 2 checks passed" in capsys.readouterr().out
    assert not MASK.check(lambda t: torch.ones(t, t, dtype=torch.bool))
    assert "expected" in capsys.readouterr().out


def test_the_right_values_in_the_wrong_type_are_rejected(capsys):
    assert not MASK.check(lambda t: torch.tril(torch.ones(t, t)))  # a float mask with the same values
    out = capsys.readouterr().out
    assert "floating-point tensor" in out and "bool tensor" in out
    assert not MASK.check(lambda t: _mask(t).tolist())
    assert "return a torch.Tensor" in capsys.readouterr().out
    assert type_problem(torch.zeros(2, 3), torch.zeros(3, 2)) == "it returned shape (2, 3), expected shape (3, 2)."
    assert type_problem((torch.zeros(2), torch.zeros(2, dtype=torch.long)), (torch.zeros(2), torch.zeros(2))) \
        and type_problem(1.0, 2.0) is None


def test_unwritten_and_crashing_answers_are_reported(capsys):
    def unwritten(t):
        raise NotImplementedError

    assert not MASK.check(unwritten)
    assert "not written yet" in capsys.readouterr().out
    assert not MASK.check(lambda t: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_a_verdict_is_a_truth_value_that_a_notebook_does_not_print():
    from llmcourse.exercises import Verdict

    assert MASK.check(_mask, verbose=False) and not MASK.check(lambda t: _mask(t).T, verbose=False)
    assert repr(Verdict(False)) == "Verdict(passed=False)" and Verdict(True)._ipython_display_() is None
