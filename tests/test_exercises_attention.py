"""The exercises of notebook 03: each checker accepts a right answer and rejects wrong ones (a float
mask with the right values included); the scaling experiment measures before it judges a prediction."""

import math

import torch

from llmcourse.attention import padding_mask, scaled_dot_product_attention
from llmcourse.exercises.attention import (_mean_entropy, _scaling_truth, attention_exercise, padding_mask_exercise,
                                           scaling_experiment)


def stub(*args):
    raise NotImplementedError


def test_attention_exercise_accepts_the_solution_and_rejects_wrong_answers():
    assert attention_exercise.check(lambda q, k, v: scaled_dot_product_attention(q, k, v)[0], verbose=False)
    assert not attention_exercise.check(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1) @ v,
                                        verbose=False)  # forgot the scaling
    assert not attention_exercise.check(stub, verbose=False)


def test_padding_mask_exercise_wants_a_boolean_mask_of_the_right_shape(capsys):
    def package(lengths, t):
        return padding_mask(torch.zeros(len(lengths), t), lengths=lengths)

    assert padding_mask_exercise.check(package, verbose=False)

    def as_float(lengths, t):  # the right values, as 0.0 / 1.0
        return package(lengths, t).float()

    assert not padding_mask_exercise.check(as_float)
    assert "bool" in capsys.readouterr().out
    assert not padding_mask_exercise.check(lambda lengths, t: ~package(lengths, t), verbose=False)  # True = ignore
    assert not padding_mask_exercise.check(lambda lengths, t: package(lengths, t)[:, 0], verbose=False)  # (batch, t)
    assert not padding_mask_exercise.check(  # off by one: one padded position let through
        lambda lengths, t: (torch.arange(t)[None, :] <= lengths[:, None])[:, None, :], verbose=False)
    assert not padding_mask_exercise.check(lambda lengths, t: package(lengths, t).tolist(), verbose=False)
    assert not padding_mask_exercise.check(stub, verbose=False)


def test_the_entropy_is_measured_as_the_task_says():
    assert _mean_entropy(1.0, 4096) > math.log(16) - 0.01  # scores near 0: nearly uniform
    assert _mean_entropy(0.0, 1024) < 0.2  # unscaled, wide: nearly one-hot
    truth = _scaling_truth([0, 0.5, 1])
    assert [truth[p][0] for p in (0, 0.5, 1)] == ["falls", "stays", "rises"]


def test_the_scaling_experiment_judges_predictions_against_the_measurement(capsys):
    assert scaling_experiment.check({0: "falls", 0.5: "stays", 1: "rises"})
    assert "d_k=1024" in capsys.readouterr().out  # the measurement is printed
    assert not scaling_experiment.check({0: "falls", 0.5: "stays", 1: "stays"}, verbose=False)  # 1/d_k: uniform
    assert not scaling_experiment.check({0: "?", 0.5: "?", 1: "?"})
    assert "predict first" in capsys.readouterr().out
    assert not scaling_experiment.check({"1/d_k": "rises"}, verbose=False)
    assert not scaling_experiment.check(lambda: None, verbose=False)
