"""The exercises of notebook 00: each checker accepts a right answer and rejects wrong ones."""

import math

import torch
import torch.nn.functional as F

from llmcourse.exercises.language_models import (bias_correction_exercise, cross_entropy_exercise,
                                                 perplexity_exercise, softmax_exercise)


def test_perplexity_exercise():
    assert perplexity_exercise.check(lambda lp: math.exp(-sum(lp) / len(lp)), verbose=False)
    assert not perplexity_exercise.check(lambda lp: math.exp(-sum(lp)), verbose=False)  # forgot the mean


def test_softmax_exercise_accepts_right_answers():
    for (z,) in softmax_exercise.cases:  # the reference solution is PyTorch's softmax, which the answer may not call
        assert torch.allclose(softmax_exercise.solution_fn(z), torch.softmax(z, dim=-1), rtol=1e-12)
    assert not softmax_exercise.check(lambda z: torch.softmax(z, dim=-1), verbose=False)

    def via_log_sum_exp(z):  # another correct route: exp(z - logsumexp(z))
        m = z.max(dim=-1, keepdim=True).values
        return torch.exp(z - (m + torch.log(torch.exp(z - m).sum(dim=-1, keepdim=True))))

    assert softmax_exercise.check(via_log_sum_exp, verbose=False)


def test_softmax_exercise_rejects_wrong_answers():
    def naive(z):  # overflows at 1000: inf / inf = nan
        return torch.exp(z) / torch.exp(z).sum(dim=-1, keepdim=True)

    def global_max(z):  # one maximum for the whole tensor: a row far below it underflows to 0 / 0
        e = torch.exp(z - z.max())
        return e / e.sum(dim=-1, keepdim=True)

    def unnormalised(z):
        return torch.exp(z - z.max(dim=-1, keepdim=True).values)

    def as_floats(z):
        return torch.softmax(z, dim=-1).tolist()

    for wrong in (naive, global_max, unnormalised, lambda z: torch.softmax(z, dim=0), as_floats):
        assert not softmax_exercise.check(wrong, verbose=False)


def test_cross_entropy_exercise_accepts_right_answers():
    assert not cross_entropy_exercise.check(lambda z, y: F.cross_entropy(z, y), verbose=False)  # forbidden
    for z, y in cross_entropy_exercise.cases:  # the reference solution is F.cross_entropy itself
        assert torch.allclose(cross_entropy_exercise.solution_fn(z, y), F.cross_entropy(z, y), rtol=1e-12)


def test_cross_entropy_exercise_rejects_wrong_answers():
    def no_padding(z, y):  # indexes with -100: an error, or the wrong row from the end
        return F.cross_entropy(z, y.clamp(min=0))

    def padding_counted_in_the_mean(z, y):
        keep = y != -100
        return F.cross_entropy(z, y, reduction="sum") / len(y) if keep.any() else z.sum()

    def summed(z, y):
        return F.cross_entropy(z, y, reduction="sum")

    def naive_log_softmax(z, y):  # log(exp(z) / sum exp(z)): nan at 1000
        keep = y != -100
        p = torch.exp(z[keep]) / torch.exp(z[keep]).sum(dim=-1, keepdim=True)
        return -torch.log(p[torch.arange(int(keep.sum())), y[keep]]).mean()

    def as_float(z, y):
        return F.cross_entropy(z, y).item()

    for wrong in (no_padding, padding_counted_in_the_mean, summed, naive_log_softmax, as_float,
                  lambda z, y: -F.cross_entropy(z, y)):
        assert not cross_entropy_exercise.check(wrong, verbose=False)


def test_bias_correction_exercise():
    assert bias_correction_exercise.check(lambda t, b1, b2: (1 - b1 ** t) / (1 - b2 ** t) ** 0.5, verbose=False)
    assert math.isclose(bias_correction_exercise.solution_fn(1, 0.9, 0.999), 0.1 / math.sqrt(0.001))
    wrong_answers = [
        lambda t, b1, b2: (1 - b1 ** t) / (1 - b2 ** t),  # forgot the square root of v
        lambda t, b1, b2: (1 - b2 ** t) ** 0.5 / (1 - b1 ** t),  # upside down: "smaller without correction"
        lambda t, b1, b2: 1 - b1 ** t,  # only the first moment's correction
        lambda t, b1, b2: 1.0,  # "the correction changes nothing"
    ]
    for wrong in wrong_answers:
        assert not bias_correction_exercise.check(wrong, verbose=False)


def test_bias_correction_formula_matches_adam_on_a_constant_gradient():
    from llmcourse.optim import adam_step

    g = torch.full((3,), 0.5, dtype=torch.float64)
    sizes = {}
    for corrected in (True, False):
        p, m, v = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        sizes[corrected] = []
        for t in range(1, 21):
            before = p.clone()
            adam_step(p, g, m, v, t, lr=1e-3, eps=0.0, bias_correction=corrected)
            sizes[corrected].append((before - p).abs().max().item())
    for t in range(1, 21):
        assert math.isclose(sizes[False][t - 1] / sizes[True][t - 1],
                            bias_correction_exercise.solution_fn(t, 0.9, 0.999), rel_tol=1e-9)
