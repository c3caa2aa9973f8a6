"""The exercises of notebook 00: each checker accepts a right answer and rejects wrong ones."""

import math

from llmcourse.exercises.language_models import perplexity_exercise


def test_perplexity_exercise():
    assert perplexity_exercise.check(lambda lp: math.exp(-sum(lp) / len(lp)), verbose=False)
    assert not perplexity_exercise.check(lambda lp: math.exp(-sum(lp)), verbose=False)  # forgot the mean
