"""The exercises of notebook 01: each checker accepts a right answer and rejects wrong ones; the
discount experiment measures before it judges a prediction."""

import random
from collections import Counter

from llmcourse.exercises.ngrams import (_backoff_solution, _discount_truth, backoff_exercise, bigram_mle_exercise,
                                        continuation_exercise, discount_experiment)
from llmcourse.ngram import NGramLM


def stub(*args):
    raise NotImplementedError


def test_ngrams_exercises_accept_the_solution_and_reject_a_wrong_answer():
    def wrong_mle(tokens, prev, word):
        return Counter(zip(tokens, tokens[1:]))[(prev, word)] / Counter(tokens)[prev]  # counts the last token

    def wrong_continuation(tokens, word):
        bigrams = list(zip(tokens, tokens[1:]))
        return sum(b == word for a, b in bigrams) / len(bigrams)  # tokens, not types

    for exercise, wrong in ((bigram_mle_exercise, wrong_mle), (continuation_exercise, wrong_continuation)):
        assert exercise.check(exercise.solution_fn, verbose=False)
        assert not exercise.check(wrong, verbose=False)
    assert not bigram_mle_exercise.check(stub, verbose=False)


def _counts(tokens, prev):
    pairs, contexts = Counter(zip(tokens, tokens[1:])), Counter(tokens[:-1])
    followers = {b for a, b in pairs if a == prev}
    unigram = {w: c / len(tokens) for w, c in Counter(tokens).items()}
    return pairs, contexts, followers, unigram


def test_the_backoff_solution_is_a_distribution():
    for tokens, prev, _, d in backoff_exercise.cases:
        assert abs(sum(_backoff_solution(tokens, prev, w, d) for w in set(tokens)) - 1) < 1e-12


def test_the_backoff_checker_rejects_realistic_mistakes():
    assert backoff_exercise.check(_backoff_solution, verbose=False)

    def not_normalised(tokens, prev, word, d):  # beta * P(word), forgetting to renormalise over the unseen
        pairs, contexts, followers, unigram = _counts(tokens, prev)
        if pairs[(prev, word)]:
            return (pairs[(prev, word)] - d) / contexts[prev]
        return d * len(followers) / contexts[prev] * unigram[word]

    def interpolated(tokens, prev, word, d):  # adds the lower order to seen words too (that is interpolation)
        pairs, contexts, followers, unigram = _counts(tokens, prev)
        return max(pairs[(prev, word)] - d, 0) / contexts[prev] + d * len(followers) / contexts[prev] * unigram[word]

    def no_discount(tokens, prev, word, d):  # the discount forgotten on seen bigrams
        pairs, contexts, _, _ = _counts(tokens, prev)
        return pairs[(prev, word)] / contexts[prev] if pairs[(prev, word)] else _backoff_solution(tokens, prev, word, d)

    for wrong in (not_normalised, interpolated, no_discount, stub):
        assert not backoff_exercise.check(wrong, verbose=False)


def _corpus(n_lines, seed):
    rng = random.Random(seed)
    words = "the cat dog sat ran on mat a big red".split()
    lines = []
    for _ in range(n_lines):
        prev, line = rng.choice(words), []
        for _ in range(rng.randint(1, 8)):
            prev = words[(words.index(prev) + rng.choice([1, 1, 2, 3, 5])) % len(words)]
            line.append(prev)
        lines.append(line + ["<eos>"])
    return lines


def test_the_discount_experiment_measures_and_judges_the_prediction(capsys):
    train, valid = _corpus(300, seed=0), _corpus(60, seed=1)
    vocab = NGramLM.fit(train, order=1, smoothing="mle").vocab
    estimated, fixed = _discount_truth(train, valid, vocab, [0.05, 0.5, 0.95], order=2)
    assert estimated == NGramLM.fit(train, order=2, smoothing="kn", vocab=vocab).perplexity(valid)
    assert fixed[0.5] == NGramLM.fit(train, order=2, smoothing="kn", discount=0.5, vocab=vocab).perplexity(valid)
    truth = {d: "higher" if fixed[d] > estimated else "lower" for d in fixed}
    flipped = {d: "lower" if t == "higher" else "higher" for d, t in truth.items()}
    assert discount_experiment.check(truth, train, valid, vocab, order=2)
    assert "estimated discounts" in capsys.readouterr().out  # the measured figures are printed
    assert not discount_experiment.check(flipped, train, valid, vocab, order=2, verbose=False)
    # not predicted yet, a key that is no discount, or no data: refused before anything is fitted
    assert not discount_experiment.check({0.1: "?"}, train, valid, vocab)
    assert "predict first" in capsys.readouterr().out
    assert not discount_experiment.check({1.5: "higher"}, train, valid, vocab, verbose=False)
    assert not discount_experiment.check({0.1: "higher"}, verbose=False)
