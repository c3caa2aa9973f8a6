"""The exercises of notebook 01: each checker accepts a right answer and rejects wrong ones."""

from collections import Counter

from llmcourse.exercises.ngrams import bigram_mle_exercise, continuation_exercise


def test_ngrams_exercises_accept_the_solution_and_reject_a_wrong_answer():
    def wrong_mle(tokens, prev, word):
        return Counter(zip(tokens, tokens[1:]))[(prev, word)] / Counter(tokens)[prev]  # counts the last token

    def wrong_continuation(tokens, word):
        bigrams = list(zip(tokens, tokens[1:]))
        return sum(b == word for a, b in bigrams) / len(bigrams)  # tokens, not types

    for exercise, wrong in ((bigram_mle_exercise, wrong_mle), (continuation_exercise, wrong_continuation)):
        assert exercise.check(exercise.solution_fn, verbose=False)
        assert not exercise.check(wrong, verbose=False)

    def stub(*args):
        raise NotImplementedError

    assert not bigram_mle_exercise.check(stub, verbose=False)
