"""N-gram language models, from counts to modified Kneser-Ney (notebook 01).

One class, :class:`NGramLM`, fitted from token sequences (one sequence per line of text) for any
order and any of the smoothing methods the notebook teaches:

=================  ==============================================================================
``"mle"``          maximum likelihood, ``c(h w) / c(h)``: zero for every unseen n-gram
``"add-k"``        add-k (Laplace for ``k = 1``): ``(c(h w) + k) / (c(h) + k V)``
``"interpolated"`` Jelinek-Mercer: ``lambda * P_ML(w | h) + (1 - lambda) * P(w | shorter h)``
``"backoff"``      absolute-discount back-off (Ney, Essen & Kneser 1994): seen n-grams keep their
                   count less one discount D per order, the rest of the mass goes to unseen words by
                   the shorter context (Katz back-off has this shape, with Good-Turing discounts)
``"kn"``           interpolated Kneser-Ney: one discount per order, continuation counts below the
                   highest order
``"mkn"``          interpolated *modified* Kneser-Ney (Chen & Goodman): three discounts per order;
                   what KenLM's ``lmplz`` and SRILM build
=================  ==============================================================================

Conventions (the same as KenLM's, so that perplexities are comparable with ``lmplz``):

* each sequence is one line (a sentence); the model sees a start marker ``<s>`` before it, which
  is a context but never predicted. Sequences from :func:`llmcourse.data.tokenize_lines` end with
  ``<eos>``, which plays KenLM's ``</s>``: it is predicted once per line and counted in perplexity;
* no n-gram crosses a line; n-grams that start with ``<s>`` keep their raw counts at every order
  (nothing can precede them), as in KenLM;
* the lowest order is interpolated with the uniform distribution over the vocabulary (``<s>``
  excluded), so every word has a non-zero probability under every smoothed model;
* ``<unk>`` is an ordinary word; a word that is not in the vocabulary is read as ``<unk>`` when the
  vocabulary has a default index (and is an error otherwise).

How it is stored (and why it is fast): every n-gram of order ``k`` is the pair (id of its first
``k - 1`` words at order ``k - 1``, last word), packed into one integer ``prefix_id * W + word``.
Counting is one ``np.unique`` per order over all positions of the corpus; a look-up is one
``np.searchsorted``. Each order ``k`` keeps, for every n-gram, an additive term ``alpha`` and, for
every context, a weight ``gamma``, so that every method is the same recursion::

    P_k(w | h) = alpha_k(h w) + gamma_k(h) * P_{k-1}(w | h[1:]),    P_0(w) = 1 / V

with ``alpha = 0`` for an unseen n-gram and ``gamma = 1`` for an unseen context.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import checks
from .files import atomic_write
from .text import Vocab, build_vocab_from_iterator

__all__ = [
    "SMOOTHINGS",
    "FALLBACK_DISCOUNTS",
    "NGramConfig",
    "NGramLM",
    "mkn_discounts",
]

SMOOTHINGS = ("mle", "add-k", "interpolated", "backoff", "kn", "mkn")
BOS = "<s>"


@dataclass
class NGramConfig:
    """Everything that defines an n-gram model besides its counts.

    ``order``: n (1 = unigram). ``smoothing``: one of :data:`SMOOTHINGS`. ``k``: the pseudo-count of
    add-k. ``lambdas``: for ``"interpolated"``, the weight of each order's ML estimate, one float
    for every order or a tuple (order 1 first). ``discount``: for ``"kn"`` and ``"backoff"``, a fixed
    discount; ``None`` estimates ``D = n1 / (n1 + 2 n2)`` per order (Ney et al.).
    ``nltk_compat``: only for ``"kn"``, reproduce ``nltk.lm.KneserNeyInterpolated`` exactly (pad
    each line with ``order - 1`` start markers, continuation counts for every lower-order n-gram,
    and an undiscounted unigram level with no uniform part, which gives ``<s>`` some probability).
    """

    order: int = 3
    smoothing: str = "mkn"
    k: float = 1.0
    lambdas: float | tuple[float, ...] = 0.7
    discount: float | None = None
    nltk_compat: bool = False

    def __post_init__(self):
        if isinstance(self.order, bool) or not isinstance(self.order, (int, np.integer)) or self.order < 1:
            raise ValueError(f"order must be a whole number >= 1 (1 = unigram, 2 = bigram, ...); got {self.order!r}.")
        self.order = int(self.order)
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"Unknown smoothing {self.smoothing!r}; choose one of {', '.join(SMOOTHINGS)}.")
        if isinstance(self.k, bool) or not (isinstance(self.k, (int, float, np.number)) and math.isfinite(self.k)
                                            and self.k > 0):
            raise ValueError(f"add-k needs a finite k > 0 (k = 1 is Laplace); got k={self.k!r}.")
        lambdas = self.lambdas_per_order()
        if any(not 0 <= lam <= 1 for lam in lambdas):
            raise ValueError(f"Interpolation weights must lie in [0, 1]; got {self.lambdas}.")
        if self.discount is not None and not 0 < self.discount < 1:
            raise ValueError(f"A fixed discount must lie in (0, 1); got {self.discount}.")
        if self.nltk_compat and self.smoothing != "kn":
            raise ValueError("nltk_compat reproduces nltk.lm.KneserNeyInterpolated: use it with smoothing='kn'.")
        if isinstance(self.lambdas, list):
            self.lambdas = tuple(self.lambdas)

    def lambdas_per_order(self) -> tuple[float, ...]:
        if isinstance(self.lambdas, (int, float)):
            return (float(self.lambdas),) * self.order
        lambdas = tuple(float(x) for x in self.lambdas)
        if len(lambdas) != self.order:
            raise ValueError(f"lambdas has {len(lambdas)} weights but the model has order {self.order}: "
                             "give one weight per order (order 1 first), or a single float.")
        return lambdas


#: KenLM's ``lmplz --discount_fallback`` defaults, for an order whose counts-of-counts cannot give
#: discounts (WikiText-2's unigrams: every word of its vocabulary occurs at least 3 times).
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def mkn_discounts(adjusted_counts: np.ndarray,
                  fallback: tuple[float, float, float] | None = FALLBACK_DISCOUNTS) -> tuple[float, float, float]:
    """Chen & Goodman's three discounts ``D1, D2, D3+`` from the counts-of-counts ``n1..n4`` of one
    order's (adjusted) counts: ``Y = n1 / (n1 + 2 n2)``, ``D_j = j - (j + 1) Y n_{j+1} / n_j``.

    Without n-grams seen once or twice the formula has no answer: ``fallback`` is used instead (as
    KenLM's ``--discount_fallback``), or a ``ValueError`` is raised if ``fallback`` is None.
    """
    n = np.bincount(np.minimum(adjusted_counts, 5).astype(np.int64), minlength=6)
    if n[1] == 0 or n[2] == 0:
        if fallback is not None:
            return tuple(float(d) for d in fallback)
        raise ValueError("Modified Kneser-Ney needs n-grams seen once and twice at every order to estimate "
                         f"its discounts (got n1={n[1]}, n2={n[2]}); fit on more text, pass fallback "
                         "discounts, or use smoothing='kn' with a fixed discount.")
    y = n[1] / (n[1] + 2 * n[2])
    out = []
    for j in (1, 2, 3):
        d = j - (j + 1) * y * n[j + 1] / n[j] if n[j] > 0 else float(j) * y
        out.append(float(min(max(d, 0.0), j)))  # KenLM refuses out-of-range discounts; clip them for tiny data
    return tuple(out)


def _ney_discount(counts: np.ndarray) -> float:
    n = np.bincount(np.minimum(counts, 3).astype(np.int64), minlength=3)
    if n[1] == 0:
        return 0.5
    return float(n[1] / (n[1] + 2 * n[2]))


@dataclass
class _Level:
    """The n-grams of one order ``k``: sorted keys ``prefix_id * W + word``, their raw counts, the
    additive term ``alpha`` of each n-gram and the back-off weight ``gamma`` of each context (an
    n-gram of order ``k - 1``; a single entry for the empty context of the unigrams)."""

    keys: np.ndarray
    counts: np.ndarray
    alpha: np.ndarray
    gamma: np.ndarray


class NGramLM:
    """An n-gram language model over a :class:`~llmcourse.text.Vocab` (see the module docstring).

    >>> lm = NGramLM.fit(tokenize_lines(WikiText2("train")), order=5, smoothing="mkn", vocab=vocab)
    >>> lm.perplexity(tokenize_lines(WikiText2("test")))
    """

    config_class = NGramConfig

    def __init__(self, config: NGramConfig, vocab: Vocab, levels: list[_Level], stats: dict | None = None):
        self.config = config
        self.vocab = vocab
        self.levels = levels
        self.stats = stats or {}
        self.V = len(vocab)  # words that can be predicted
        self.W = self.V + 1  # ... plus <s>, the start marker, which has id V
        self.bos = self.V
        self._stoi = vocab.get_stoi()
        self._itos = vocab.get_itos()
        self._unk = vocab.get_default_index()

    # ------------------------------------------------------------------------------------------
    # Fitting
    # ------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, sequences, order: int = 3, smoothing: str = "mkn", vocab: Vocab | None = None,
            **options) -> "NGramLM":
        """Count the n-grams of ``sequences`` (one token list per line) and estimate the model.

        ``sequences``: token lists (strings), or lists / arrays of ids in ``vocab``, or one 1-D array
        of ids (a single line). ``vocab``: built from the sequences (with ``<unk>`` first and as the
        default index) when not given. ``options``: the other fields of :class:`NGramConfig`.
        """
        config = NGramConfig(order=order, smoothing=smoothing, **options)
        if vocab is None:
            vocab = _vocab_from(sequences)
        if BOS in vocab:
            raise ValueError(f"The vocabulary contains {BOS!r}, which the n-gram model reserves for the start "
                             "of a line; rename that token or remove it.")
        model = cls(config, vocab, [])
        t0 = time.perf_counter()
        ids, line = model._encode(sequences, pad=config.order - 1 if config.nltk_compat else 1)
        if not (ids != model.bos).any():
            raise ValueError("Nothing to count: the sequences hold no tokens.")
        t1 = time.perf_counter()
        model.levels, model.stats = _estimate(config, ids, line, model.V)
        model.stats.update(encode_seconds=t1 - t0, estimate_seconds=time.perf_counter() - t1,
                           train_tokens=int((ids != model.bos).sum()), train_lines=int(line[-1]) + 1)
        return model

    @property
    def order(self) -> int:
        return self.config.order

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k + 1}-grams: {int((lv.counts > 0).sum()):,}" for k, lv in enumerate(self.levels))
        return f"NGramLM(order={self.order}, smoothing={self.config.smoothing!r}, vocab={self.V:,}; {sizes})"

    # ------------------------------------------------------------------------------------------
    # Tokens -> ids
    # ------------------------------------------------------------------------------------------
    def _word_id(self, token) -> int:
        if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
            if not 0 <= token < self.V:
                raise ValueError(f"Word id {token} is outside the vocabulary (0 to {self.V - 1}).")
            return int(token)
        if not isinstance(token, str):
            raise TypeError(f"A token is a string or a word id, not {type(token).__name__} ({token!r}).")
        if token == BOS:
            return self.bos
        index = self._stoi.get(token)
        if index is None:
            if self._unk is None:
                raise KeyError(f"{token!r} is not in the vocabulary, and the vocabulary has no default index "
                               "to read unknown words as <unk>: call vocab.set_default_index(vocab['<unk>']) "
                               "before fitting, or map the word to a known one.")
            return self._unk
        return index

    def _encode(self, sequences, pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """One stream of ids with ``pad`` start markers before every line, and the line of each position."""
        sequences = _as_sequences(sequences)
        lookup = self._stoi
        chunks, lengths = [], []
        for seq in sequences:
            if isinstance(seq, np.ndarray) and seq.dtype.kind in "iu":
                arr = seq.astype(np.int64, copy=False)
                if arr.size and (arr.min() < 0 or arr.max() >= self.V):
                    raise ValueError(f"Word ids must lie in 0..{self.V - 1}; got {arr.min()}..{arr.max()}.")
            else:
                try:
                    arr = np.fromiter((lookup[t] for t in seq), dtype=np.int64, count=len(seq))
                except (KeyError, TypeError):  # unknown words or ids: the slow path says which
                    arr = np.array([self._word_id(t) for t in seq], dtype=np.int64)
                if (arr == self.bos).any():
                    raise ValueError(f"{BOS!r} marks the start of a line and is added by the model; "
                                     "remove it from the sequences.")
            chunks.append(np.full(pad, self.bos, dtype=np.int64))
            chunks.append(arr)
            lengths.append(arr.size + pad)
        if not chunks:
            raise ValueError("No sequences given: pass a list of token lists (one per line).")
        ids = np.concatenate(chunks)
        line = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        return ids, line

    def _context_ids(self, context, order: int | None = None) -> list[int]:
        """The ids of the context the model will use: at most ``order - 1`` words, after the last ``<s>``."""
        order = self._check_order(order)
        if context is None:
            context = []
        elif isinstance(context, str):
            context = context.split()
        ids = [self._word_id(t) for t in context]
        if self.bos in ids:  # a new line started: nothing before it counts
            ids = ids[len(ids) - 1 - ids[::-1].index(self.bos):]
        return ids[max(0, len(ids) - (order - 1)):] if order > 1 else []

    def context_tokens(self, context, order: int | None = None) -> list[str]:
        """The part of ``context`` the model will use at this ``order`` (unknown words as ``<unk>``)."""
        return [BOS if i == self.bos else self._itos[i] for i in self._context_ids(context, order)]

    def _check_order(self, order: int | None) -> int:
        if order is None:
            return self.order
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 1 <= order <= self.order:
            raise ValueError(f"This model was fitted with order {self.order}: ask for an order from 1 to "
                             f"{self.order} (got {order!r}), or fit a model of higher order.")
        return int(order)

    # ------------------------------------------------------------------------------------------
    # Look-ups
    # ------------------------------------------------------------------------------------------
    def _find(self, k: int, prefix: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Ids at order ``k`` of the n-grams (prefix id at order k-1, word); -1 where unseen."""
        if k == 1:
            return word.astype(np.int64)
        keys = self.levels[k - 1].keys
        key = prefix * self.W + word
        idx = np.searchsorted(keys, key)
        idx_c = np.minimum(idx, keys.size - 1)
        found = (prefix >= 0) & (keys.size > 0)
        found &= keys[idx_c] == key if keys.size else False
        return np.where(found, idx_c, -1)

    def _ngram_id(self, ids: Sequence[int]) -> int:
        """Id of an n-gram (a tuple of word ids) at order len(ids), -1 if it was never seen."""
        node = -1
        for k, w in enumerate(ids, start=1):
            node = int(self._find(k, np.array([node if k > 1 else 0]), np.array([w]))[0])
            if node < 0:
                return -1
        return node

    def count(self, ngram) -> int:
        """How many times an n-gram (tokens or a string) was seen in training (raw count)."""
        if isinstance(ngram, str):
            ngram = ngram.split()
        if not 1 <= len(ngram) <= self.order:
            raise ValueError(f"This model counted n-grams of 1 to {self.order} words; got {len(ngram)}.")
        ids = [self._word_id(t) for t in ngram]
        node = self._ngram_id(ids)
        return int(self.levels[len(ids) - 1].counts[node]) if node >= 0 else 0

    # ------------------------------------------------------------------------------------------
    # Probabilities
    # ------------------------------------------------------------------------------------------
    def next_word_probs(self, context=None, order: int | None = None, return_orders: bool = False):
        """``P(w | context)`` for every word of the vocabulary: an array of shape ``(V,)`` summing to 1.

        ``context``: tokens (or a string of space-separated tokens); only the last ``order - 1`` are
        used, and ``<s>`` marks the start of a line. An empty context gives the lowest-order
        (context-free) distribution. With ``return_orders``, also the highest order at which each
        word was seen after this context (0: never seen, its probability comes from smoothing only).
        """
        order = self._check_order(order)
        ctx = self._context_ids(context, order)
        p = np.full(self.V, 1.0 / self.V)
        lv = self.levels[0]
        p = lv.alpha[: self.V] + lv.gamma[0] * p
        supplied = (lv.counts[: self.V] > 0).astype(np.int64)
        node = 0
        for k in range(2, len(ctx) + 2):
            # the context of order k is the last k-1 words; its id at order k-1
            node = self._ngram_id(ctx[len(ctx) - (k - 1):])
            if node < 0:
                break  # unseen context: this order adds nothing (gamma = 1, alpha = 0)
            lv = self.levels[k - 1]
            lo, hi = np.searchsorted(lv.keys, [node * self.W, (node + 1) * self.W])
            words = lv.keys[lo:hi] % self.W
            p = lv.gamma[node] * p
            np.add.at(p, words, lv.alpha[lo:hi])
            supplied[words[lv.counts[lo:hi] > 0]] = k
        p = np.maximum(p, 0.0)  # back-off's alpha can round a zero to -1e-17
        return (p, supplied) if return_orders else p

    def prob(self, word, context=None, order: int | None = None) -> float:
        """``P(word | context)``; see :meth:`next_word_probs` for the context."""
        w = self._word_id(word)
        if w == self.bos:
            raise ValueError(f"{BOS!r} is a start marker and is never predicted.")
        order = self._check_order(order)
        ctx = self._context_ids(context, order)
        p = 1.0 / self.V
        lv = self.levels[0]
        p = lv.alpha[w] + lv.gamma[0] * p
        for k in range(2, len(ctx) + 2):
            node = self._ngram_id(ctx[len(ctx) - (k - 1):])
            if node < 0:
                break
            lv = self.levels[k - 1]
            idx = int(self._find(k, np.array([node]), np.array([w]))[0])
            p = (lv.alpha[idx] if idx >= 0 else 0.0) + lv.gamma[node] * p
        return max(float(p), 0.0)

    def top_next_words(self, context=None, k: int = 10, order: int | None = None) -> list[tuple[str, float, int]]:
        """The ``k`` most probable next words: ``(word, probability, highest order that saw it)``."""
        p, supplied = self.next_word_probs(context, order, return_orders=True)
        k = min(k, self.V)
        top = np.argpartition(-p, k - 1)[:k]
        top = top[np.argsort(-p[top], kind="stable")]
        return [(self._itos[i], float(p[i]), int(supplied[i])) for i in top]

    def token_log_probs(self, sequences, order: int | None = None) -> np.ndarray:
        """Natural-log probability of every token of every sequence given its past in the same line,
        vectorised over the whole corpus: a float64 array of shape ``(n_tokens,)`` (``<s>`` excluded)."""
        order = self._check_order(order)
        pad = self.order - 1 if self.config.nltk_compat else 1
        ids, line = self._encode(sequences, pad=max(pad, 1))
        with np.errstate(divide="ignore"):  # a zero probability (MLE) is a log-probability of -inf
            return np.log(self._stream_probs(ids, line, order))

    def _stream_probs(self, ids: np.ndarray, line: np.ndarray, order: int) -> np.ndarray:
        T = ids.size
        targets = np.flatnonzero(ids != self.bos)
        # id at order k of the window starting at each position (-1: unseen or crossing a line)
        window = [None, ids]
        for k in range(2, order + 1):
            m = T - k + 1
            if m <= 0:
                break
            prev = window[k - 1][:m]
            ok = (prev >= 0) & (line[:m] == line[k - 1:])
            found = np.full(m, -1, dtype=np.int64)
            found[ok] = self._find(k, prev[ok], ids[k - 1:][ok])
            window.append(found)
        lv = self.levels[0]
        p = lv.alpha[ids[targets]] + lv.gamma[0] / self.V
        for k in range(2, min(order, len(window) - 1) + 1):
            start = targets - (k - 1)
            valid = start >= 0
            start_c = np.where(valid, start, 0)
            valid &= line[start_c] == line[targets]
            ctx = np.where(valid, window[k - 1][start_c], -1)
            ng = np.where(valid & (ctx >= 0), window[k][start_c], -1)
            lv = self.levels[k - 1]
            g = np.where(ctx >= 0, lv.gamma[np.maximum(ctx, 0)], 1.0)
            a = np.where(ng >= 0, lv.alpha[np.maximum(ng, 0)], 0.0)
            p = a + g * p
        return np.maximum(p, 0.0)

    def log_prob(self, tokens, order: int | None = None) -> float:
        """Natural log of the probability of one line (a token list), starting after ``<s>``."""
        if isinstance(tokens, str):
            tokens = tokens.split()
        return float(self.token_log_probs([tokens], order).sum())

    def perplexity(self, sequences, order: int | None = None) -> float:
        """``exp(-mean log P(token | past))`` over every token of every sequence (one per line)."""
        lp = self.token_log_probs(sequences, order)
        if lp.size == 0:
            raise ValueError("The perplexity of no tokens is undefined: pass at least one token.")
        with np.errstate(over="ignore"):
            return float(np.exp(-lp.mean()))

    # ------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------
    def generate(self, context=None, max_tokens: int = 30, greedy: bool = False, temperature: float = 1.0,
                 seed: int | None = 0, stop: str | None = "<eos>") -> list[str]:
        """Continue ``context`` (by default the start of a line) word by word.

        ``greedy`` picks the most probable word each time; otherwise words are sampled from
        ``P(w | context) ** (1 / temperature)``, reproducibly for a given ``seed``. Stops after
        ``stop`` (the end of a line) or ``max_tokens`` words; returns the new words only.
        """
        checks.whole("max_tokens", max_tokens, least=0)
        checks.number("temperature", temperature, low=0.0, low_open=True, hint="greedy=True takes the arg-max")
        rng = np.random.default_rng(seed)
        history = [BOS] if context is None else (context.split() if isinstance(context, str) else list(context))
        out: list[str] = []
        for _ in range(max_tokens):
            p = self.next_word_probs(history)
            if greedy:
                w = int(np.argmax(p))
            else:
                if temperature != 1.0:
                    p = np.exp(np.log(np.maximum(p, 1e-300)) / temperature)
                w = int(rng.choice(self.V, p=p / p.sum()))
            token = self._itos[w]
            out.append(token)
            history.append(token)
            if stop is not None and token == stop:
                break
        return out

    # ------------------------------------------------------------------------------------------
    # Save / load: one .npz file, no pickle
    # ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays = {"config": np.array(json.dumps(asdict(self.config))),
                  "vocab": np.array(json.dumps(self.vocab.to_dict(), ensure_ascii=False)),
                  "stats": np.array(json.dumps(self.stats))}
        for k, lv in enumerate(self.levels, start=1):
            for name in ("keys", "counts", "alpha", "gamma"):
                arrays[f"{name}{k}"] = getattr(lv, name)
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a name
                np.savez(f, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NGramLM":
        """A model saved by :meth:`save`; a damaged or foreign file is a ``ValueError`` naming it."""
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as data:
                if "config" not in data:
                    raise ValueError("it has no 'config' entry")
                cfg = json.loads(str(data["config"]))
                if isinstance(cfg.get("lambdas"), list):
                    cfg["lambdas"] = tuple(cfg["lambdas"])
                config = NGramConfig(**cfg)
                vocab = Vocab.from_dict(json.loads(str(data["vocab"])))
                levels = [_Level(*(data[f"{name}{k}"] for name in ("keys", "counts", "alpha", "gamma")))
                          for k in range(1, config.order + 1)]
                stats = json.loads(str(data["stats"]))
        except FileNotFoundError:
            raise
        except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
            # numpy's own message for a file that is not an .npz suggests allow_pickle=True: never do that
            # with a file you did not write, so the message here does not repeat it.
            reason = str(exc) if "pickle" not in str(exc) else "it is not an .npz archive"
            raise ValueError(f"{path} is not a readable n-gram model saved by NGramLM.save ({reason}). "
                             "Fit the model again and save it, or restore the file from where you saved it.") from None
        return cls(config, vocab, levels, stats)


# ----------------------------------------------------------------------------------------------
# Counting and estimation (vectorised)
# ----------------------------------------------------------------------------------------------
def _as_sequences(sequences) -> list:
    try:
        import torch

        if isinstance(sequences, torch.Tensor):
            sequences = sequences.numpy()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(sequences, np.ndarray):
        if sequences.ndim != 1:
            raise ValueError(f"An array of ids must be 1-D (one line); got shape {sequences.shape}.")
        return [sequences]
    if isinstance(sequences, str):
        raise TypeError("Pass a list of token lists (one per line), e.g. tokenize_lines(lines); got one string.")
    out = []
    for seq in sequences:
        if isinstance(seq, str):
            raise TypeError("Each sequence must be a list of tokens, not a string: tokenize the lines first, "
                            "e.g. with llmcourse.data.tokenize_lines(lines).")
        if not isinstance(seq, np.ndarray):
            try:
                import torch

                if isinstance(seq, torch.Tensor):
                    seq = seq.numpy()
            except ImportError:  # pragma: no cover
                pass
        out.append(seq)
    return out


def _vocab_from(sequences) -> Vocab:
    seqs = _as_sequences(sequences)
    if any(isinstance(s, np.ndarray) and s.dtype.kind in "iu" for s in seqs):
        raise ValueError("Sequences of ids need the vocabulary they index: pass vocab=...")
    vocab = build_vocab_from_iterator(seqs, specials=["<unk>"])
    vocab.set_default_index(0)
    return vocab


def _count(ids: np.ndarray, line: np.ndarray, order: int, W: int) -> list[dict]:
    """All n-grams of orders 1..order that stay inside a line: sorted keys, raw counts, and for
    each n-gram the id of its prefix (first k-1 words) and of its suffix (last k-1 words)."""
    T = ids.size
    levels = [dict(keys=np.arange(W, dtype=np.int64), counts=np.bincount(ids, minlength=W).astype(np.int64),
                   prefix=np.zeros(W, dtype=np.int64), suffix=np.zeros(W, dtype=np.int64),
                   first=np.arange(W, dtype=np.int64))]
    window = ids  # id at the current order of the window starting at each position
    for k in range(2, order + 1):
        m = T - k + 1
        if m <= 0:
            levels.append(dict(keys=np.zeros(0, np.int64), counts=np.zeros(0, np.int64),
                               prefix=np.zeros(0, np.int64), suffix=np.zeros(0, np.int64),
                               first=np.zeros(0, np.int64)))
            window = np.zeros(0, np.int64)
            continue
        prev = window[:m]
        ok = (prev >= 0) & (line[:m] == line[k - 1:])
        where = np.flatnonzero(ok)
        keys = prev[where] * W + ids[where + k - 1]
        uniq, first_at, inverse = np.unique(keys, return_index=True, return_inverse=True)
        counts = np.bincount(inverse.ravel(), minlength=uniq.size).astype(np.int64)
        rep = where[first_at]  # one position where each n-gram occurs
        prefix = uniq // W
        suffix = window[rep + 1]  # the window one to the right, of order k-1: the last k-1 words
        first = levels[-1]["first"][prefix]
        new = np.full(T - k + 1, -1, dtype=np.int64)
        new[where] = inverse.ravel()
        levels.append(dict(keys=uniq, counts=counts, prefix=prefix, suffix=suffix, first=first))
        window = new
    return levels


@dataclass
class _Order:
    """The counts of one order ``k``, ready to be smoothed: ``c`` the raw counts of its n-grams, ``a`` the
    counts the estimate uses (continuation counts below the top order for Kneser-Ney), ``prefix`` each
    n-gram's context, and per context: ``total`` (the sum of ``a``), ``types`` (N1+(h .), distinct
    followers), ``seen`` (a total above zero) and ``safe`` (the total, 1 where unseen)."""

    k: int
    c: np.ndarray
    a: np.ndarray
    prefix: np.ndarray
    total: np.ndarray
    types: np.ndarray

    n_ctx = property(lambda self: self.total.size)
    seen = property(lambda self: self.total > 0)
    safe = property(lambda self: np.where(self.total > 0, self.total, 1.0))


def _order(config: NGramConfig, raw: list[dict], k: int, bos: int) -> _Order:
    """Order ``k``'s counts: adjusted for Kneser-Ney below the top order; ``<s>`` never predicted."""
    lv, n = raw[k - 1], config.order
    c = lv["counts"]
    n_ctx = 1 if k == 1 else raw[k - 2]["keys"].size
    if config.smoothing in ("kn", "mkn") and k < n:  # continuation counts N1+(. h w)
        a = np.bincount(raw[k]["suffix"], minlength=c.size).astype(np.int64)
        if not config.nltk_compat:
            starts = lv["first"] == bos  # nothing precedes <s>: keep the raw count (as KenLM)
            a[starts] = c[starts]
    else:
        a = c.copy()
    if k == 1 and not config.nltk_compat:
        a[bos] = 0  # <s> is never predicted
        c = c.copy()
        c[bos] = 0
    prefix = lv["prefix"]
    total = np.bincount(prefix, weights=a, minlength=n_ctx)
    types = np.bincount(prefix, weights=(c > 0), minlength=n_ctx)
    return _Order(k, c, a, prefix, total, types)


def _smooth(config: NGramConfig, o: _Order, raw: list[dict], V: int, P_prev: np.ndarray | None,
            info: dict) -> tuple[np.ndarray, np.ndarray]:
    """``alpha`` (each seen n-gram's own share) and ``gamma`` (each context's weight on the shorter
    context) of one order, by ``config.smoothing``; the discounts used are written into ``info``."""
    method, k, n, a, prefix = config.smoothing, o.k, config.order, o.a, o.prefix
    seen, safe, total, denom = o.seen, o.safe, o.total, o.safe[o.prefix]
    if method == "mle":
        return a / denom, np.where(seen, 0.0, 1.0)
    if method == "add-k":
        # add-k at the longest context available: order n, or a shorter one that starts a line
        kv = config.k * V
        top = np.ones(o.n_ctx, bool) if k == n or k == 1 else raw[k - 2]["first"] == V
        if k == 1 and n > 1:
            top[:] = False
        return np.where(top[prefix], a / (total[prefix] + kv), 0.0), np.where(top, kv / (total + kv), 1.0)
    if method == "interpolated":
        lam = config.lambdas_per_order()[k - 1]
        return lam * a / denom, np.where(seen, 1.0 - lam, 1.0)
    if method == "mkn":
        d1, d2, d3 = mkn_discounts(a[a > 0])
        info["discounts"] = (d1, d2, d3)
        dvec = np.select([a == 0, a == 1, a == 2], [0.0, d1, d2], d3)
        n1, n2, n3 = (np.bincount(prefix, weights=w, minlength=o.n_ctx) for w in (a == 1, a == 2, a >= 3))
        return (a - dvec) / denom, np.where(seen, (d1 * n1 + d2 * n2 + d3 * n3) / safe, 1.0)
    d = config.discount if config.discount is not None else _ney_discount(a[a > 0])  # kn, backoff
    info["discount"] = d
    if config.nltk_compat and k == 1:
        return a / denom, np.zeros(1)
    alpha, gamma = np.maximum(a - d, 0.0) / denom, np.where(seen, d * o.types / safe, 1.0)
    if method == "backoff" and k > 1:
        # Seen words keep their discounted estimate; the mass left over goes to the words not
        # seen after h, in proportion to the shorter context's probabilities.
        lower_p = P_prev[raw[k - 1]["suffix"]]
        free = 1.0 - np.bincount(prefix, weights=lower_p, minlength=o.n_ctx)
        full = free <= 1e-12  # every word was seen after h: nothing to back off to
        beta = np.where(seen & ~full, (1.0 - np.bincount(prefix, weights=alpha, minlength=o.n_ctx))
                        / np.where(full, 1.0, free), np.where(seen, 0.0, 1.0))
        alpha, gamma = np.where(full[prefix], a / denom, alpha - beta[prefix] * lower_p), beta
    return alpha, gamma


def _estimate(config: NGramConfig, ids: np.ndarray, line: np.ndarray, V: int) -> tuple[list[_Level], dict]:
    """Every order's :class:`_Level`, from the counts of ``ids`` (lines starting where ``line`` changes)."""
    W, bos, n = V + 1, V, config.order
    t0 = time.perf_counter()
    raw = _count(ids, line, n, W)
    stats: dict = {"count_seconds": time.perf_counter() - t0, "ngrams": [], "discounts": []}
    levels: list[_Level] = []
    P_prev = None  # P_{k-1}(last word | its context) of every (k-1)-gram, for back-off
    for k in range(1, n + 1):
        o, info = _order(config, raw, k, bos), {}
        alpha, gamma = _smooth(config, o, raw, V, P_prev, info)
        if config.smoothing != "backoff":
            alpha = np.where(o.a > 0, alpha, 0.0)
        P_prev = alpha + (gamma[0] / V if k == 1 else gamma[o.prefix] * P_prev[raw[k - 1]["suffix"]])
        levels.append(_Level(keys=raw[k - 1]["keys"], counts=raw[k - 1]["counts"], alpha=alpha.astype(np.float64),
                             gamma=gamma.astype(np.float64)))
        stats["ngrams"].append(int((o.c > 0).sum()))
        stats["discounts"].append(info.get("discounts", info.get("discount")))
    return levels, stats
