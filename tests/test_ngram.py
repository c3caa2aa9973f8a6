"""llmcourse.ngram: every smoothing method against a brute-force reference written from the formulas,
probabilities that sum to 1, hand-computed perplexities, NLTK's Kneser-Ney, save/load, bad input."""

import math
import random
from collections import Counter

import numpy as np
import pytest

from llmcourse.ngram import (SMOOTHINGS, NGramConfig, NGramLM, mkn_discounts)
from llmcourse.text import Vocab

BOS = "<s>"


def _corpus(n_lines=60, seed=0):
    """Lines from a small Markov chain (so that n-grams repeat), each ending with <eos>; some empty."""
    rng = random.Random(seed)
    words = ["the", "cat", "dog", "sat", "ran", "on", "mat", "a", "<unk>"]
    lines = []
    for _ in range(n_lines):
        length = rng.choice([0, 1, 2, 3, 4, 5, 6, 7])
        line, prev = [], rng.choice(words)
        for _ in range(length):
            nxt = words[(words.index(prev) + rng.choice([1, 1, 2, 3])) % len(words)]
            line.append(nxt)
            prev = nxt
        lines.append(line + ["<eos>"])
    return lines


# Rare words so that every order has n-grams seen once, twice, three and four times (modified KN's
# discounts need them), even the unigrams.
TRAIN = _corpus(60, seed=0) + [["once", "twice", "<eos>"], ["twice", "thrice", "thrice", "<eos>"],
                               ["thrice", "four", "four", "four", "four", "<eos>"]]
TEST = _corpus(15, seed=1) + [["zebra", "the", "cat", "<eos>"]]  # an unknown word: read as <unk>
OPTIONS = {"interpolated": {"lambdas": 0.6}, "add-k": {"k": 0.5}}


# ----------------------------------------------------------------------------------------------
# A brute-force reference: dictionaries and the textbook formulas, one query at a time
# ----------------------------------------------------------------------------------------------
class Reference:
    def __init__(self, lines, n, method, words, k=1.0, lambdas=0.6, discount=None):
        self.n, self.method, self.words, self.k, self.lam = n, method, words, k, lambdas
        self.V = len(words)
        self.c = Counter()
        for line in lines:
            s = [BOS] + line
            for m in range(1, n + 1):
                for i in range(len(s) - m + 1):
                    self.c[tuple(s[i:i + m])] += 1
        self.c[(BOS,)] = 0  # <s> is never predicted
        self.left = {}  # N1+(. g): distinct words seen before g
        for g in self.c:
            if len(g) > 1 and self.c[g] > 0:
                self.left[g[1:]] = self.left.get(g[1:], 0) + 1
        self.discount = discount
        self.D = {}
        for m in range(1, n + 1):
            values = [self.a(g) for g in self.c if len(g) == m and self.a(g) > 0]
            nn = Counter(min(v, 5) for v in values)
            if method not in ("mkn", "kn", "backoff"):
                continue
            if method == "mkn":
                y = nn[1] / (nn[1] + 2 * nn[2])
                # clipped to [0, j] on tiny data (KenLM would refuse to build the model)
                self.D[m] = [0.0] + [min(max(j - (j + 1) * y * nn[j + 1] / nn[j], 0), j) for j in (1, 2, 3)]
            else:
                self.D[m] = discount if discount is not None else nn[1] / (nn[1] + 2 * nn[2])

    def a(self, g):
        """Adjusted count: raw at the top order and for n-grams that start with <s>, else N1+(. g)."""
        if self.method in ("kn", "mkn") and len(g) < self.n and g[0] != BOS:
            return self.left.get(g, 0)
        return self.c[g]

    def total(self, h):
        return sum(self.a(h + (w,)) for w in self.words)

    def p(self, w, h):
        m = len(h) + 1
        lower = (lambda: self.p(w, h[1:])) if h else (lambda: 1.0 / self.V)
        tot = self.total(h)
        if tot == 0:
            return lower()
        a = self.a(h + (w,))
        if self.method == "mle":
            return a / tot
        if self.method == "add-k":
            top = m == self.n or (h and h[0] == BOS)
            return (a + self.k) / (tot + self.k * self.V) if top else lower()
        if self.method == "interpolated":
            return self.lam * a / tot + (1 - self.lam) * lower()
        followers = [v for v in self.words if self.a(h + (v,)) > 0]
        if self.method == "kn":
            d = self.D[m]
            return max(a - d, 0) / tot + d * len(followers) / tot * lower()
        if self.method == "mkn":
            d = self.D[m]
            gamma = sum(d[min(self.a(h + (v,)), 3)] for v in followers) / tot
            return (a - d[min(a, 3)]) / tot + gamma * lower()
        if self.method == "backoff":
            d = self.D[m]
            if not h:
                return max(a - d, 0) / tot + d * len(followers) / tot / self.V
            if a > 0:
                return (a - d) / tot
            kept = sum((self.a(h + (v,)) - d) / tot for v in followers)
            lower_seen = sum(self.p(v, h[1:]) for v in followers)
            return (1 - kept) / (1 - lower_seen) * self.p(w, h[1:])
        raise AssertionError(self.method)

    def token_probs(self, lines, vocab):
        out = []
        for line in lines:
            s = [BOS] + [t if t in vocab else "<unk>" for t in line]
            for i in range(1, len(s)):
                out.append(self.p(s[i], tuple(s[max(0, i - self.n + 1):i])))
        return np.array(out)


def _fit(method, order, lines=TRAIN, **kw):
    return NGramLM.fit(lines, order=order, smoothing=method, **{**OPTIONS.get(method, {}), **kw})


@pytest.mark.parametrize("method", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_brute_force_reference(method, order):
    lm = _fit(method, order)
    words = lm.vocab.get_itos()
    ref = Reference(TRAIN, order, method, words, **OPTIONS.get(method, {}))
    expected = ref.token_probs(TEST, lm.vocab)
    got = np.exp(lm.token_log_probs(TEST))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
    # and one query at a time, through prob()
    line = [BOS] + TEST[3]
    for i in range(1, len(line)):
        context = line[max(0, i - order + 1):i]
        assert lm.prob(line[i], context) == pytest.approx(ref.p(line[i], tuple(context)), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("method", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one(method, order):
    lm = _fit(method, order)
    contexts = [[], [BOS], ["the"], [BOS, "the", "cat"], ["the", "cat", "sat"], ["mat", "mat", "mat"],
                ["zebra", "giraffe"],  # unknown words: read as <unk> <unk>
                ["sat", BOS]]  # a new line started
    for context in contexts:
        p = lm.next_word_probs(context)
        assert p.shape == (len(lm.vocab),)
        assert (p >= 0).all()
        if method == "mle" and not (p > 0).any():
            continue
        assert p.sum() == pytest.approx(1.0, abs=1e-12), (method, order, context)
        # next_word_probs and prob agree
        for w in ("the", "mat", "<eos>"):
            assert lm.prob(w, context) == pytest.approx(p[lm.vocab[w]], rel=1e-12, abs=1e-15)


def test_unseen_context_is_really_unseen_and_still_sums_to_one():
    lm = _fit("mkn", 3)
    assert lm.count(["mat", "mat"]) == 0
    p = lm.next_word_probs(["mat", "mat"])
    np.testing.assert_allclose(p, lm.next_word_probs(["mat"]))  # backs off to the shorter context
    assert p.sum() == pytest.approx(1.0)


def test_perplexity_by_hand():
    lines = [["a", "b"], ["b", "a", "b"]]
    test = [["a", "b"]]
    # bigram MLE: P(a | <s>) = 1/2, P(b | a) = 2/2
    mle = NGramLM.fit(lines, order=2, smoothing="mle")
    assert mle.perplexity(test) == pytest.approx(math.sqrt(2))
    assert mle.log_prob(["a", "b"]) == pytest.approx(math.log(0.5))
    # add-1, V = 3 (<unk>, a, b): P(a | <s>) = (1+1)/(2+3), P(b | a) = (2+1)/(2+3)
    laplace = NGramLM.fit(lines, order=2, smoothing="add-k", k=1.0)
    assert len(laplace.vocab) == 3
    assert laplace.perplexity(test) == pytest.approx((2 / 5 * 3 / 5) ** -0.5)
    # unigram MLE: counts a 2, b 3 of 5 tokens
    uni = NGramLM.fit(lines, order=1, smoothing="mle")
    assert uni.perplexity(test) == pytest.approx((2 / 5 * 3 / 5) ** -0.5)


def test_mle_gives_zero_to_unseen_ngrams_and_infinite_perplexity():
    mle = NGramLM.fit([["a", "b"], ["b", "a", "b"]], order=2, smoothing="mle")
    assert mle.prob("a", ["a"]) == 0.0
    with np.errstate(divide="ignore"):
        assert mle.perplexity([["a", "a"]]) == math.inf


def test_mkn_discounts_formula():
    counts = np.array([1] * 10 + [2] * 4 + [3] * 2 + [4] * 1 + [7] * 3)
    y = 10 / (10 + 8)
    assert mkn_discounts(counts) == pytest.approx((1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y * 1 / 2))
    with pytest.raises(ValueError, match="seen once and twice"):
        mkn_discounts(np.array([1, 1, 3]), fallback=None)
    assert mkn_discounts(np.array([3, 4, 8])) == (0.5, 1.0, 1.5)  # KenLM's --discount_fallback


def test_mkn_unigram_model_without_singletons_uses_fallback_discounts():
    lines = [["a", "b", "<eos>"]] * 3 + [["b", "a", "<eos>"]] * 2
    lm = NGramLM.fit(lines, order=1, smoothing="mkn")
    assert lm.stats["discounts"] == [(0.5, 1.0, 1.5)]
    assert lm.next_word_probs([]).sum() == pytest.approx(1.0)


def test_matches_nltk_kneser_ney_interpolated():
    nltk_lm = pytest.importorskip("nltk.lm")
    from nltk.util import everygrams, pad_sequence

    order, discount = 3, 0.1
    train = [line[:-1] for line in TRAIN if len(line) > 1]  # NLTK pads; no end marker needed
    padded = [list(pad_sequence(s, order, pad_left=True, left_pad_symbol=BOS)) for s in train]
    ref = nltk_lm.KneserNeyInterpolated(order, discount=discount)
    ref.fit([list(everygrams(s, max_len=order)) for s in padded], [w for s in padded for w in s])
    ours = NGramLM.fit(train, order=order, smoothing="kn", discount=discount, nltk_compat=True)
    test = [s for s in (line[:-1] for line in TEST[:-1]) if s]
    got = np.exp(ours.token_log_probs(test))
    expected = []
    for s in test:
        p = [BOS] * (order - 1) + s
        expected += [ref.score(p[i], p[i - order + 1:i]) for i in range(order - 1, len(p))]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_top_words_generation_and_orders():
    lm = _fit("mkn", 3)
    top = lm.top_next_words([BOS, "the"], k=5)
    assert len(top) == 5
    probs = [p for _, p, _ in top]
    assert probs == sorted(probs, reverse=True)
    for word, p, order in top:
        assert p == pytest.approx(lm.prob(word, [BOS, "the"]))
        assert order == (3 if lm.count([BOS, "the", word]) else 2 if lm.count(["the", word]) else
                         1 if lm.count([word]) else 0)
    greedy = lm.generate(max_tokens=12, greedy=True)
    assert greedy == lm.generate(max_tokens=12, greedy=True, seed=5)  # greedy ignores the seed
    assert greedy[0] == lm.top_next_words([BOS], k=1)[0][0]
    a, b = lm.generate(max_tokens=20, seed=1), lm.generate(max_tokens=20, seed=1)
    assert a == b and 1 <= len(a) <= 20
    assert a[-1] == "<eos>" or len(a) == 20


def test_fit_from_ids_matches_fit_from_tokens():
    lm = _fit("mkn", 3)
    ids = [np.array(lm.vocab(line)) for line in TRAIN]
    lm2 = NGramLM.fit(ids, order=3, smoothing="mkn", vocab=lm.vocab)
    np.testing.assert_array_equal(lm.token_log_probs(TEST), lm2.token_log_probs(TEST))


def test_lower_order_queries_use_less_context():
    lm = _fit("mkn", 4)
    assert lm.prob("mat", ["the", "cat", "on"], order=2) == pytest.approx(lm.prob("mat", ["on"], order=2))
    assert lm.perplexity(TEST, order=1) > lm.perplexity(TEST)


def test_save_load_round_trip(tmp_path):
    for method in SMOOTHINGS:
        lm = _fit(method, 3)
        path = lm.save(tmp_path / f"{method}")
        assert path.suffix == ".npz"
        back = NGramLM.load(path)
        assert back.config == lm.config and back.vocab == lm.vocab
        np.testing.assert_array_equal(back.token_log_probs(TEST), lm.token_log_probs(TEST))
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    good = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    (tmp_path / "noise.npz").write_bytes(b"not a model at all" * 10)
    for name in ("other.npz", "cut.npz", "noise.npz"):
        with pytest.raises(ValueError, match="not a readable n-gram model saved by NGramLM.save") as info:
            NGramLM.load(tmp_path / name)
        assert "allow_pickle" not in str(info.value) and name in str(info.value)


def test_clear_errors():
    with pytest.raises(ValueError, match="order must be"):
        NGramLM.fit(TRAIN, order=0)
    with pytest.raises(ValueError, match="Unknown smoothing"):
        NGramLM.fit(TRAIN, order=2, smoothing="good-turing")
    for k in (float("nan"), float("inf"), -1.0, 0.0):
        with pytest.raises(ValueError, match="add-k needs a finite k > 0"):
            NGramLM.fit(TRAIN, order=2, smoothing="add-k", k=k)
    for bad in (dict(smoothing="interpolated", lambdas=float("nan")), dict(smoothing="kn", discount=float("nan"))):
        with pytest.raises(ValueError, match="must lie in"):
            NGramLM.fit(TRAIN, order=2, **bad)
    with pytest.raises(ValueError, match="one weight per order"):
        NGramLM.fit(TRAIN, order=3, smoothing="interpolated", lambdas=(0.5, 0.5))
    lm = _fit("kn", 3)
    with pytest.raises(ValueError, match="fitted with order 3"):
        lm.prob("the", ["a", "b", "c"], order=4)
    with pytest.raises(ValueError, match="fitted with order 3"):
        lm.perplexity(TEST, order=0)
    with pytest.raises(ValueError, match="never predicted"):
        lm.prob(BOS, ["the"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        lm.prob(10_000, [])
    with pytest.raises(TypeError, match="tokenize"):
        NGramLM.fit(["the cat sat", "on the mat"], order=2)
    with pytest.raises(ValueError, match="start of a line"):
        NGramLM.fit([[BOS, "the", "cat"]], order=2)
    with pytest.raises(ValueError, match="Nothing to count"):
        NGramLM.fit([[], []], order=2)
    with pytest.raises(ValueError, match="no tokens"):
        lm.perplexity([[]])
    # an unknown word is <unk> when the vocabulary has a default index ...
    assert lm.prob("zebra", ["the"]) == lm.prob("<unk>", ["the"])
    # ... and a clear error when it has none
    strict = NGramLM.fit(TRAIN, order=2, vocab=Vocab(lm.vocab.get_itos()))
    with pytest.raises(KeyError, match="not in the vocabulary"):
        strict.prob("zebra", ["the"])
    # the empty context is the context-free distribution
    assert lm.prob("the", []) == lm.prob("the", None) == lm.prob("the", "")
    # a context longer than the order keeps its last order - 1 words
    assert lm.context_tokens(["a", "b", "on", "the"]) == ["on", "the"]
    assert lm.context_tokens(["mat", "<s>", "zebra"]) == ["<s>", "<unk>"]
    assert lm.context_tokens(["on", "the"], order=1) == []
    five = _fit("mkn", 5)  # a context shorter than order - 1 is used whole
    assert five.context_tokens(["the", "cat", "sat"]) == ["the", "cat", "sat"]
    assert five.context_tokens(["a", "the", "cat", "sat", "on"]) == ["the", "cat", "sat", "on"]
    line = [BOS, "the", "cat", "sat", "on"]
    for i in range(1, len(line)):  # one query at a time equals the vectorised scorer, whatever the length
        assert five.prob(line[i], line[:i]) == pytest.approx(math.exp(five.token_log_probs([line[1:]])[i - 1]))
    assert lm.prob("mat", ["a", "b", "on", "the"]) == lm.prob("mat", ["on", "the"])




def test_config_dataclass():
    cfg = NGramConfig(order=5, smoothing="mkn")
    assert cfg.lambdas_per_order() == (0.7,) * 5
    with pytest.raises(ValueError, match="nltk_compat"):
        NGramConfig(smoothing="mkn", nltk_compat=True)


def test_wikitext2_mkn_close_to_kenlm(shared_data):
    """On the real data, a trigram modified-KN model lands where KenLM's lmplz -o 3 does (226.1)."""
    from llmcourse.data import WikiText2, tokenize_lines, wikitext2_vocab

    vocab = wikitext2_vocab()
    lm = NGramLM.fit(tokenize_lines(WikiText2("train")), order=3, smoothing="mkn", vocab=vocab)
    assert abs(lm.perplexity(tokenize_lines(WikiText2("test"))) - 226.1) < 0.5
