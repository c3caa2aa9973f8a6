"""Exercises of notebook 01, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass

from . import Exercise, filling_in

__all__ = ['bigram_mle_exercise', 'continuation_exercise', 'backoff_exercise', 'discount_experiment']


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


def _backoff_solution(tokens: list[str], prev: str, word: str, discount: float) -> float:
    pairs = Counter(zip(tokens, tokens[1:]))
    contexts = Counter(tokens[:-1])
    unigram = {w: c / len(tokens) for w, c in Counter(tokens).items()}
    if pairs[(prev, word)] > 0:
        return (pairs[(prev, word)] - discount) / contexts[prev]
    followers = {b for a, b in pairs if a == prev}
    beta = discount * len(followers) / contexts[prev]  # the mass the discount saved
    unseen_mass = sum(p for w, p in unigram.items() if w not in followers)
    return beta * unigram[word] / unseen_mass


backoff_exercise = Exercise(
    title="absolute-discount back-off",
    task="""
    Write `my_backoff_prob(tokens, prev, word, discount)`: the back-off bigram probability of
    section 5, with the maximum-likelihood unigram `P(w) = c(w) / len(tokens)` as the shorter context.
    If the bigram `(prev, word)` occurs in `tokens`, return `(c(prev word) - discount) / c(prev .)`;
    otherwise give `word` its share of the mass the discount saved, `beta = discount * N1+(prev .) / c(prev .)`
    (`N1+(prev .)`: the number of distinct words seen after `prev`), in proportion to `P(word)` among
    the words *not* seen after `prev`: `beta * P(word) / sum of P(v) over those words v`.
    (`prev` occurs before the last token at least once; `word` occurs somewhere in `tokens`; for
    every `prev` your probabilities must sum to 1 over the words of `tokens`.)
    """,
    solution_fn=_backoff_solution,
    cases=[("the cat sat on the mat".split(), "the", "cat", 0.5),
           ("the cat sat on the mat".split(), "the", "sat", 0.5),
           ("the cat sat on the mat".split(), "the", "the", 0.5),
           ("a b a c a b d".split(), "a", "b", 0.75),
           ("a b a c a b d".split(), "a", "d", 0.75),
           ("a b a c a b d".split(), "b", "c", 0.3),
           ("x y x y x z".split(), "x", "x", 0.9),
           ("x y x y x z".split(), "y", "z", 0.1)],
    hint_text="Count the bigrams with zip(tokens, tokens[1:]) and the contexts over tokens[:-1]. For an unseen "
              "bigram, the normaliser sums the unigram probabilities of the words never seen after prev.",
)


_TRENDS = ("higher", "lower")


def _discount_truth(train, valid, vocab, discounts, order: int = 3) -> tuple[float, dict[float, float]]:
    """Validation perplexity of Kneser-Ney with its estimated discounts, and with each fixed ``D``."""
    from ..ngram import NGramLM

    estimated = NGramLM.fit(train, order=order, smoothing="kn", vocab=vocab).perplexity(valid)
    fixed = {d: NGramLM.fit(train, order=order, smoothing="kn", discount=d, vocab=vocab).perplexity(valid)
             for d in discounts}
    return estimated, fixed


@dataclass(repr=False)
class _DiscountExperiment(Exercise):
    """An experiment, not a function to write: the answer is a prediction, checked against a measurement."""

    tolerance: float = 0.001  # a perplexity within 0.1% of the reference counts as either answer

    def check(self, prediction: dict, train=None, valid=None, vocab=None, order: int = 3,
              verbose: bool = True) -> bool:
        """Fit the models ``prediction`` asks about, print their perplexities, say which predictions held."""
        if not isinstance(prediction, dict) or not prediction:
            return self._say(False, verbose, "pass a dict {discount D: 'higher' or 'lower'}.")
        bad = [d for d in prediction if not isinstance(d, (int, float)) or not 0 < d < 1]
        if bad:
            return self._say(False, verbose, f"each key is a discount D with 0 < D < 1; got {bad}.")
        unsure = [d for d, p in prediction.items() if p not in _TRENDS]
        if unsure and not filling_in(unsure):
            return self._say(False, verbose, f"predict first: for D = {unsure}, write 'higher' or 'lower' "
                             "(than with the estimated discounts), then run the cell again.")
        prediction = {d: "higher" if d in unsure else guess for d, guess in prediction.items()}
        if train is None or valid is None:
            return self._say(False, verbose, "pass the data too: check(prediction, train, valid, vocab).")
        estimated, fixed = self.solution_fn(train, valid, vocab, sorted(prediction), order)
        wrong = []
        if verbose:
            print(f"order-{order} Kneser-Ney, validation perplexity: estimated discounts {estimated:.1f}")
        for d in sorted(prediction):
            ppl = fixed[d]
            measured = "higher" if ppl > estimated else "lower"
            held = prediction[d] == measured or abs(ppl - estimated) <= self.tolerance * estimated
            wrong += [] if held else [d]
            if verbose:
                print(f"  D = {d:<5g} {ppl:8.1f}  {measured:>6}; you said {prediction[d]:<6} {'✅' if held else '❌'}")
        return self._say_predictions(wrong, len(prediction), "D =", verbose)

    def solution(self) -> None:
        print(textwrap.dedent("""
            The validation perplexity is U-shaped in D. A small D leaves almost nothing for the words never
            seen after a context (they get a tiny back-off weight), so every unseen n-gram in the validation
            text costs a lot: D = 0.1 is far worse. A D close to 1 takes nearly a whole count from every
            n-gram seen once or twice, which are most of them, and hands it to the shorter context. In
            between, the estimate D = n1 / (n1 + 2 n2) of each order lands near the bottom, but it is not
            the bottom: on WikiText-2 a single fixed D a little larger than the estimated ones can beat them.
            Modified Kneser-Ney, with three discounts per order, does better than both (section 7's table).
            check() prints the figures for the D you ask about.""").strip())


discount_experiment = _DiscountExperiment(
    title="predict, then measure: Kneser-Ney's discount D",
    task="""
    Kneser-Ney estimates one discount per order, `D = n1 / (n1 + 2 n2)` (section 6.1). What if you
    used one fixed `D` for every order instead? For each `D` in `my_prediction`, predict whether the
    trigram model's validation perplexity will be **higher** or **lower** than with the estimated
    discounts, write `"higher"` or `"lower"`, then run the cell: it fits the models (a few seconds
    each in full mode) and tells you which predictions held. Add any other `D` between 0 and 1 you
    are curious about, or pass `order=2`.
    """,
    solution_fn=_discount_truth,
    hint_text="The discount decides how much probability the unseen words get. What does the validation text "
              "cost when that is too little, and what do the n-grams seen once lose when it is too much?",
)
