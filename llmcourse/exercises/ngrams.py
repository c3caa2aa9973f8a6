"""Exercises of notebook 01, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

from collections import Counter

from . import Exercise

__all__ = ['bigram_mle_exercise', 'continuation_exercise']


def _bigram_mle_solution(tokens: list[str], prev: str, word: str) -> float:
    pairs = Counter(zip(tokens, tokens[1:]))
    contexts = Counter(tokens[:-1])
    return pairs[(prev, word)] / contexts[prev]


bigram_mle_exercise = Exercise(
    title="the bigram maximum-likelihood estimate",
    task="""
    Write `my_bigram_mle(tokens, prev, word)`: given a list of tokens (one long text), return the
    maximum-likelihood estimate of `P(word | prev)`, the number of times `prev` is followed by
    `word`, divided by the number of times `prev` is followed by anything. (`prev` always occurs
    before the last token at least once.)
    """,
    solution_fn=_bigram_mle_solution,
    cases=[("the cat sat on the mat".split(), "the", "cat"),
           ("the cat sat on the mat".split(), "the", "dog"),
           ("a a a b".split(), "a", "a"),
           ("to be or not to be that is the question".split(), "to", "be"),
           ("x y x y x".split(), "y", "x"),
           ("b a b".split(), "a", "b"),
           ("a b a".split(), "a", "b"),
           ("I saw the cat and the".split(), "the", "cat")],
    hint_text="zip(tokens, tokens[1:]) gives the bigrams; count the contexts over tokens[:-1], not tokens.",
)


def _continuation_solution(tokens: list[str], word: str) -> float:
    bigram_types = set(zip(tokens, tokens[1:]))
    return len({a for a, b in bigram_types if b == word}) / len(bigram_types)


continuation_exercise = Exercise(
    title="Kneser-Ney's continuation probability",
    task="""
    Write `my_continuation_prob(tokens, word)`: the Kneser-Ney unigram probability of `word`, the
    number of *distinct* words that precede it in `tokens`, divided by the number of distinct
    bigram types in `tokens`. ("Francisco" follows only "San": it is frequent but has a small
    continuation probability.)
    """,
    solution_fn=_continuation_solution,
    cases=[("San Francisco is in San Francisco".split(), "Francisco"),
           ("San Francisco is in San Francisco".split(), "is"),
           ("a b a c a b".split(), "a"),
           ("a b a c a b".split(), "b"),
           ("the cat and the dog and a cat".split(), "cat"),
           ("x x x x".split(), "x")],
    hint_text="Make a set of the bigrams first; then count the distinct first words of those ending in `word`.",
)
