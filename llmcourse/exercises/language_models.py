"""Exercises of notebook 00, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import math

from . import Exercise

__all__ = ['perplexity_exercise']


def _perplexity_solution(log_probs: list[float]) -> float:
    mean_nll = -sum(log_probs) / len(log_probs)
    return math.exp(mean_nll)


perplexity_exercise = Exercise(
    title="perplexity from log-probabilities",
    task="""
    Write `my_perplexity(log_probs)`: given the natural-log probability that a model gave to each
    token of a text (a list of floats), return the perplexity of the model on that text.
    """,
    solution_fn=_perplexity_solution,
    cases=[([math.log(0.5)] * 4,), ([math.log(0.25), math.log(0.5), math.log(0.125)],),
           ([math.log(1 / 33278)] * 3,), ([-2.0, -0.1, -7.5, -3.3, -0.01],)],
    hint_text="Average the negative log-probabilities, then undo the log with math.exp.",
)
