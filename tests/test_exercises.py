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


def test_a_forbidden_library_call_fails_the_check_and_is_put_back(capsys):
    """The "do not call torch.softmax" rules are enforced: the checker fails an answer that calls one."""
    import torch.nn.functional as F

    from llmcourse.exercises import forbidding
    from llmcourse.exercises.language_models import cross_entropy_exercise, softmax_exercise
    from llmcourse.exercises.transformer_lm import rms_norm_exercise

    original = torch.softmax
    for answer in (lambda z: torch.softmax(z, -1), lambda z: z.softmax(-1), lambda z: F.softmax(z, -1)):
        assert not softmax_exercise.check(answer)
        assert "which this exercise asks you to write yourself" in capsys.readouterr().out
    assert torch.softmax is original and torch.softmax(torch.zeros(2), 0).tolist() == [0.5, 0.5]  # put back
    assert softmax_exercise.check(lambda z: torch.exp(z - z.max(-1, keepdim=True).values)
                                  / torch.exp(z - z.max(-1, keepdim=True).values).sum(-1, keepdim=True))
    assert not cross_entropy_exercise.check(lambda z, y: F.cross_entropy(z, y))
    assert not rms_norm_exercise.check(lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps))
    for exercise in (softmax_exercise, cross_entropy_exercise, rms_norm_exercise):  # every name resolves
        with forbidding(exercise.forbidden):
            pass


def test_a_prediction_exercise_measures_only_once_a_prediction_is_written(monkeypatch, capsys):
    from llmcourse.exercises import FILL_PREDICTIONS, predicted

    monkeypatch.delenv(FILL_PREDICTIONS, raising=False)
    for blank in (None, "", {"a": None, "b": None}, [None], {}):
        assert predicted(blank, what="a number in my_guess") is False
        assert "predict first: write a number in my_guess" in capsys.readouterr().out
    for written in (0, "larger", {"a": None, "b": 3.0}, [None, 1]):
        assert predicted(written) is True
        assert capsys.readouterr().out == ""
    monkeypatch.setenv(FILL_PREDICTIONS, "1")  # what notebooks/conftest.py sets for nbval
    assert predicted(None) is True
    assert "no prediction written" in capsys.readouterr().out


def test_the_notebook_tests_measure_an_experiment_left_blank(monkeypatch, capsys):
    from llmcourse.exercises import FILL_PREDICTIONS
    from llmcourse.exercises.attention import scaling_experiment
    from llmcourse.exercises.rnn_lm import forget_bias_experiment

    assert not scaling_experiment.check({0: "?", 1: "?"})
    assert "mean entropy" not in capsys.readouterr().out  # a learner's blank: nothing measured
    monkeypatch.setenv(FILL_PREDICTIONS, "1")
    scaling_experiment.check({0: "?", 1: "falls"})
    forget_bias_experiment.check({0.5: None})
    out = capsys.readouterr().out
    assert "no prediction written for [0]" in out and "mean entropy" in out
    assert "no prediction written for [0.5]" in out and "sigmoid(bias)" in out
