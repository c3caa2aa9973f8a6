"""Byte-pair encoding (BPE) from scratch, proven equal to Hugging Face ``tokenizers`` (notebook 06).

BPE (Sennrich, Haddow & Birch 2016) learns a subword vocabulary from counts. Each word starts as a
sequence of characters; training repeatedly merges the most frequent pair of adjacent symbols into
a new symbol, and the ordered list of merges *is* the tokenizer. Encoding a new word replays the
merges in the order they were learned.

The pieces, in the order notebook 06 builds them:

* :func:`count_words` counts the words of the corpus once (the word-frequency trick: WikiText-2's
  2 million words are only 33,000 distinct ones, so training works on those and their counts);
* :func:`merge_pair` merges one pair inside one word;
* :func:`learn_merges` is the merge loop as a learner writes it: count every pair, merge the best,
  repeat. :func:`learn_merges_fast` keeps the pair counts up to date instead of recounting them
  (only the words that hold the merged pair change), and gives the same merges (a test checks);
* :func:`train_bpe` does it all and returns a :class:`BPETokenizer` (``encode``, ``decode``,
  ``save`` / ``load``, ``truncated``);
* :func:`tokens_per_word` and :func:`vocab_size_tradeoff`: the cost of a small vocabulary in
  sequence length;
* :func:`tokenizers_bpe` configures ``tokenizers``' ``BpeTrainer`` the same way, for the proof.

Conventions (what "the same as ``tokenizers``" rests on):

* **Words** are what ``str.split`` gives (WikiText-2 is already tokenized). Every word is written
  with a word-start marker ``▁`` (U+2581) in front, as SentencePiece does: ``"the"`` is trained as
  ``▁ t h e``, so a token knows whether it begins a word, and :meth:`BPETokenizer.decode` turns each
  ``▁`` back into a space. (Sennrich's end-of-word ``</w>``, ``tokenizers``' ``end_of_word_suffix``,
  does the same job, but ``tokenizers`` numbers the suffixed characters in the order of its hash map
  of words: three runs on the same text gave three different vocabularies, and ties between pairs
  are broken by those numbers. The marker is an ordinary character, so every id is reproducible.)
* **Special tokens** (default ``<unk>`` and ``<eos>``) are cut out of the text wherever they occur
  and never split or merged; they are not counted in training. WikiText-2's ``<unk>`` stands for a
  rare word, so it stays one token; ``<eos>`` is the course's one-per-line end of sequence, which
  :meth:`BPETokenizer.encode_lines` appends to every line.
* **Ids**: the special tokens first (in the order given), then the alphabet (every character of the
  training words, and the marker) in code-point order, then one new token per merge, in merge order.
  This is how ``tokenizers`` numbers them.
* **Ties**, found by experiment with ``tokenizers`` 0.23 (and confirmed in its source): among pairs
  of equal count, the pair whose *left* token has the smallest id wins, then the one whose right
  token has the smallest id. Ids, not strings: ``('b', 'd')`` beats ``('ab', 'c')`` because ``b`` is
  a character and ``ab`` was made later, although ``"ab" < "b"``.
* **Stopping**: at ``vocab_size`` tokens (special tokens and alphabet included) or after
  ``num_merges`` merges, or earlier when no pair occurs ``min_frequency`` times.

A later merge is never undone, so the merges learned for a small vocabulary are the first merges
learned for a larger one: :meth:`BPETokenizer.truncated` gives every smaller tokenizer from one
training. Training never makes the same token twice, so each merge adds one token;
:class:`BPETokenizer` refuses a merge list that breaks this (a damaged file).
"""

from __future__ import annotations

import heapq
import json
import math
import operator
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .files import read_json, write_json

__all__ = [
    "WORD_START",
    "DEFAULT_SPECIALS",
    "count_words",
    "merge_pair",
    "learn_merges",
    "learn_merges_fast",
    "train_bpe",
    "BPETokenizer",
    "tokens_per_word",
    "vocab_size_tradeoff",
    "tokenizers_bpe",
    "tokenizers_merges",
]

#: The mark put in front of every word (U+2581, SentencePiece's and ``tokenizers``' Metaspace choice).
WORD_START = "\u2581"
#: WikiText-2's unknown word and the course's end of line.
DEFAULT_SPECIALS = ("<unk>", "<eos>")

Pair = tuple[str, str]
_FORMAT = "llmcourse.bpe"
_VERSION = 1


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------
def _check_specials(special_tokens: Sequence[str]) -> tuple[str, ...]:
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens is a list of tokens, got the string {special_tokens!r}: "
                        f"write special_tokens=[{special_tokens!r}].")
    specials = tuple(special_tokens)
    for token in specials:
        if not isinstance(token, str) or not token or any(c.isspace() for c in token) or WORD_START in token:
            raise ValueError(f"special token {token!r} must be a non-empty str with no white space and no "
                             f"{WORD_START!r}.")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens {list(specials)} name a token twice.")
    return specials


class _Splitter:
    """Splits text into words on white space, with the special tokens cut out wherever they occur
    (``"a <unk> b<eos>"`` gives ``a``, ``<unk>``, ``b``, ``<eos>``), the way ``tokenizers`` cuts out its
    added tokens before pre-tokenizing."""

    def __init__(self, specials: Sequence[str]):
        # Longest first, so that a special token that contains another one wins (leftmost-longest).
        either = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))
        self._specials = re.compile(f"({either})") if specials else None

    def __call__(self, text: str) -> list[str]:
        if self._specials is None:
            return text.split()
        pieces: list[str] = []
        for k, part in enumerate(self._specials.split(text)):  # text, special, text, special, ...
            if k % 2:
                pieces.append(part)
            else:
                pieces += part.split()
        return pieces

    def start(self, text: str, index: int) -> int:
        """Where the ``index``-th piece of ``text`` begins (for error messages only)."""
        parts = self._specials.split(text) if self._specials is not None else [text]
        offset, seen = 0, 0
        for k, part in enumerate(parts):
            starts = [offset] if k % 2 else [offset + m.start() for m in re.finditer(r"\S+", part)]
            if index < seen + len(starts):
                return starts[index - seen]
            seen += len(starts)
            offset += len(part)
        raise IndexError(index)


def check_text(text: object, what: str) -> str:
    """``text`` if it is a str, else a TypeError naming ``what`` (bytes get the hint to decode them first)."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        raise TypeError(f"{what} is bytes; decode it first (text.decode('utf-8')).")
    raise TypeError(f"{what} must be a str, got {type(text).__name__}.")


def count_words(texts: Iterable[str] | str, special_tokens: Sequence[str] = DEFAULT_SPECIALS) -> Counter:
    """How often each word occurs in ``texts`` (lines of text, or one str): the word-frequency trick.

    Words are split on white space, and the special tokens are cut out wherever they occur and not
    counted (they are never split into characters). Taught in notebook 06.

    >>> count_words([" the cat <unk> the <eos> "])
    Counter({'the': 2, 'cat': 1})
    """
    specials = _check_specials(special_tokens)
    split, skip = _Splitter(specials), set(specials)
    counts: Counter = Counter()
    for i, text in enumerate([texts] if isinstance(texts, str) else texts):
        check_text(text, f"texts[{i}]")
        counts.update(w for w in split(text) if w not in skip)
    return counts


def _count_mapping(word_counts: Mapping[str, int], specials: tuple[str, ...]) -> Counter:
    """A word -> count mapping read like text: each key split (and special tokens cut out) the same way."""
    split, skip = _Splitter(specials), set(specials)
    counts: Counter = Counter()
    for word, count in word_counts.items():
        if not isinstance(word, str):
            raise TypeError(f"a word-count mapping has str keys; got {type(word).__name__} {word!r}.")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"the count of {word!r} must be a whole number >= 1, got {count!r}.")
        for piece in split(word):
            if piece not in skip:
                counts[piece] += count
    return counts


# --------------------------------------------------------------------------------------------
# The merge loop: plain, then fast
# --------------------------------------------------------------------------------------------
def merge_pair(symbols: Sequence, pair: tuple, new=None) -> list:
    """Replace every occurrence of ``pair`` in ``symbols`` by one symbol, scanning left to right.

    ``new`` is the merged symbol (by default the two strings joined; :func:`learn_merges_fast`
    passes an id). Overlaps go to the left: merging ``('a', 'a')`` in ``a a a`` gives ``aa a``.

    >>> merge_pair(['▁', 'l', 'o', 'w'], ('l', 'o'))
    ['▁', 'lo', 'w']
    """
    first, second = pair
    new = first + second if new is None else new
    out = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def _check_word_counts(word_counts: Mapping[tuple[str, ...], int], num_merges: int, min_frequency: int) -> None:
    if not isinstance(num_merges, int) or isinstance(num_merges, bool) or num_merges < 0:
        raise ValueError(f"num_merges must be a whole number >= 0, got {num_merges!r}.")
    if not isinstance(min_frequency, int) or isinstance(min_frequency, bool) or min_frequency < 0:
        raise ValueError(f"min_frequency must be a whole number >= 0, got {min_frequency!r}.")
    for word, count in word_counts.items():
        if not isinstance(word, tuple) or not all(isinstance(s, str) for s in word):
            raise TypeError(f"word_counts maps words written as tuples of symbols, e.g. ('▁', 'c', 'a', 't'), "
                            f"to counts; got the key {word!r}. train_bpe() splits the words for you.")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"the count of {word!r} must be a whole number >= 1, got {count!r}.")


def learn_merges(word_counts: Mapping[tuple[str, ...], int], num_merges: int,
                 min_frequency: int = 1) -> list[Pair]:
    """The BPE merge loop, plainly: count all pairs, merge the most frequent, repeat ``num_merges`` times.

    ``word_counts`` maps each word, written as a tuple of symbols (``('▁', 'c', 'a', 't')``), to its
    count. A pair's count is the sum of the counts of the words it occurs in, once per occurrence.
    Ties go to the pair whose left symbol entered the vocabulary first, then whose right symbol did
    (characters in code-point order, then merged symbols in merge order): ``tokenizers``' rule.
    Stops early when no pair occurs ``min_frequency`` times. Returns the merges in order.
    Taught in notebook 06; :func:`learn_merges_fast` is the same, faster.
    """
    _check_word_counts(word_counts, num_merges, min_frequency)
    words = dict(word_counts)
    order = {s: i for i, s in enumerate(sorted({s for word in words for s in word}))}
    merges: list[Pair] = []
    while len(merges) < num_merges:
        pairs: Counter = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break  # every word is one symbol
        best = min(pairs, key=lambda p: (-pairs[p], order[p[0]], order[p[1]]))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        order[best[0] + best[1]] = len(order)
        words = {tuple(merge_pair(word, best)): count for word, count in words.items()}
    return merges


def learn_merges_fast(word_counts: Mapping[tuple[str, ...], int], num_merges: int,
                      min_frequency: int = 1) -> list[Pair]:
    """:func:`learn_merges` with pair counts kept up to date: the same merges, in seconds on WikiText-2.

    Recounting every pair after every merge costs a pass over all words; but a merge changes only
    the words that hold the merged pair. So: keep each pair's count and the words it occurs in;
    after a merge, take those words' old pairs out of the counts and put their new pairs in. The best
    pair comes from a heap of ``(-count, left id, right id)`` (so ties break as in
    :func:`learn_merges`); an entry whose count has since fallen is put back with its current count
    when it comes to the top, which is safe because counts of existing pairs only fall.
    """
    _check_word_counts(word_counts, num_merges, min_frequency)
    tokens = sorted({s for word in word_counts for s in word})  # id -> symbol; ids give the tie order
    ids = {s: i for i, s in enumerate(tokens)}
    words = [[ids[s] for s in word] for word in word_counts]
    counts = list(word_counts.values())
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # may also name words the pair has left
    for w, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            where[pair].add(w)
    heap = [(-count, a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        neg_count, a, b = heapq.heappop(heap)
        count = pair_counts.get((a, b), 0)
        if count != -neg_count:  # stale: the pair lost occurrences since this entry was pushed
            if count > 0:
                heapq.heappush(heap, (-count, a, b))
            continue
        if count < min_frequency:
            break
        new = len(tokens)
        tokens.append(tokens[a] + tokens[b])
        merges.append((tokens[a], tokens[b]))
        grown = set()
        for w in where.pop((a, b)):
            word, count = words[w], counts[w]
            for pair in zip(word, word[1:]):
                pair_counts[pair] -= count
            word = words[w] = merge_pair(word, (a, b), new)
            for pair in zip(word, word[1:]):
                pair_counts[pair] += count
                where[pair].add(w)
                if new in pair:
                    grown.add(pair)
        del pair_counts[(a, b)]
        for pair in grown:  # only pairs with the new token can have gained: they are new
            heapq.heappush(heap, (-pair_counts[pair], *pair))
    return merges


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def train_bpe(corpus: Iterable[str] | Mapping[str, int] | str, vocab_size: int | None = None, *,
              num_merges: int | None = None, min_frequency: int = 1,
              special_tokens: Sequence[str] = DEFAULT_SPECIALS, unk_token: str | None = None,
              initial_alphabet: Iterable[str] = "", fast: bool = True) -> "BPETokenizer":
    """Learn a BPE tokenizer from ``corpus``: lines of text (or one str), or a mapping word -> count.

    Give exactly one of ``vocab_size`` (tokens in all: special tokens, the alphabet and one per
    merge, as ``tokenizers.trainers.BpeTrainer(vocab_size=...)``) or ``num_merges``. The alphabet is
    every character of the training words, the word-start marker and ``initial_alphabet`` (characters
    to know although the corpus lacks them). ``unk_token`` (one of ``special_tokens``) is what
    :meth:`BPETokenizer.encode` writes for a character outside the alphabet; ``None`` makes that an
    error. ``fast=False`` runs the plain :func:`learn_merges` (a quarter of a second per merge on WikiText-2,
    where the fast loop makes 16,000 merges in about 4 s).
    Taught in notebook 06.

    >>> tok = train_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, num_merges=6)
    >>> tok.merges
    [('e', 's'), ('es', 't'), ('l', 'o'), ('▁', 'lo'), ('▁lo', 'w'), ('e', 'w')]
    """
    specials = _check_specials(special_tokens)
    if (vocab_size is None) == (num_merges is None):
        raise ValueError("give exactly one of vocab_size (tokens in all) and num_merges.")
    if vocab_size is not None and (not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 1):
        raise ValueError(f"vocab_size must be a positive whole number, got {vocab_size!r}.")
    word_counts = _count_mapping(corpus, specials) if isinstance(corpus, Mapping) else count_words(corpus, specials)
    if not word_counts:
        raise ValueError("the corpus has no words (it is empty, blank, or only special tokens): "
                         "BPE needs text to count pairs in.")
    marked = next((word for word in word_counts if WORD_START in word), None)
    if marked is not None:
        raise ValueError(f"the corpus holds the word-start marker {WORD_START!r} (U+2581), e.g. in {marked!r}; "
                         "decoding could not tell it from a space. Replace it in the text first.")
    extra = _check_alphabet_chars(initial_alphabet)
    alphabet = sorted({WORD_START, *extra, *(c for word in word_counts for c in word)})
    base = len(specials) + len(alphabet)
    if vocab_size is not None:
        if vocab_size < base:
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(specials)} special tokens and the "
                             f"{len(alphabet)} characters of the alphabet ({base} tokens) that every BPE "
                             f"vocabulary starts with: use vocab_size >= {base}.")
        num_merges = vocab_size - base
    learn = learn_merges_fast if fast else learn_merges
    words = {(WORD_START, *word): count for word, count in word_counts.items()}
    merges = learn(words, num_merges, min_frequency)
    return BPETokenizer(merges, alphabet, special_tokens=specials, unk_token=unk_token)


def _check_alphabet_chars(chars: Iterable[str]) -> list[str]:
    chars = list(chars)
    for c in chars:
        if not isinstance(c, str) or len(c) != 1 or c.isspace():
            raise ValueError(f"the alphabet holds single characters that are not white space; got {c!r}.")
    return chars


# --------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------
class BPETokenizer:
    """A trained BPE tokenizer: its ``merges`` (in order), ``alphabet`` and ``special_tokens``.

    The vocabulary follows from them: special tokens, then the alphabet in code-point order, then
    one token per merge (``vocab``: token -> id; ``tokens``: id -> token). ``unk_token`` (``None``,
    or one of the special tokens) replaces a character outside the alphabet when encoding; with
    ``None`` such a character is an error. Made by :func:`train_bpe`; taught in notebook 06.
    """

    def __init__(self, merges: Sequence[Pair], alphabet: Iterable[str],
                 special_tokens: Sequence[str] = DEFAULT_SPECIALS, unk_token: str | None = None):
        self.special_tokens = _check_specials(special_tokens)
        if unk_token is not None and unk_token not in self.special_tokens:
            raise ValueError(f"unk_token {unk_token!r} must be one of the special tokens {list(self.special_tokens)} "
                             "(or None, to make an unknown character an error).")
        self.unk_token = unk_token
        chars = _check_alphabet_chars(alphabet)
        if len(set(chars)) != len(chars):
            raise ValueError("the alphabet names a character twice.")
        if WORD_START not in chars:
            raise ValueError(f"the alphabet must hold the word-start marker {WORD_START!r}: every word begins with it.")
        self.alphabet = tuple(sorted(chars))
        self.tokens: list[str] = [*self.special_tokens, *self.alphabet]
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.vocab) != len(self.tokens):
            raise ValueError("a special token is also a character of the alphabet.")
        self.merges: list[Pair] = []
        for k, pair in enumerate(merges):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise ValueError(f"merge {k} should be a pair of tokens, got {pair!r}.")
            for part in pair:
                if part not in self.vocab or part in self.special_tokens:
                    raise ValueError(f"merge {k} {tuple(pair)} uses {part!r}, which is neither a character of the "
                                     "alphabet nor made by an earlier merge.")
            new = pair[0] + pair[1]
            if new in self.vocab:
                raise ValueError(f"merge {k} {tuple(pair)} makes {new!r}, which is already a token: BPE makes each "
                                 "token once.")
            self.vocab[new] = len(self.tokens)
            self.tokens.append(new)
            self.merges.append((pair[0], pair[1]))
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._alphabet = set(self.alphabet)
        self._specials = {t: self.vocab[t] for t in self.special_tokens}
        self._split = _Splitter(self.special_tokens)
        self._cache: dict[str, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return (f"BPETokenizer({len(self)} tokens: {len(self.special_tokens)} special, {len(self.alphabet)} "
                f"characters, {len(self.merges)} merges; unk_token={self.unk_token!r})")

    # --- encoding ----------------------------------------------------------------------------
    def bpe(self, word: str) -> list[str]:
        """The tokens of one word (no white space): ``▁`` and its characters, merged by rank.

        Repeatedly merges the adjacent pair that was learned first, until no learned pair is left:
        the order of training, replayed. Characters outside the alphabet become ``unk_token``.

        >>> tok = train_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3}, num_merges=6)
        >>> tok.bpe("lowest")
        ['▁low', 'est']
        """
        symbols = [WORD_START] + [c if c in self._alphabet else self._unknown(c, word, j) for j, c in enumerate(word)]
        while len(symbols) > 1:
            pair = min(zip(symbols, symbols[1:]), key=lambda p: self._ranks.get(p, math.inf))
            if pair not in self._ranks:
                break
            symbols = merge_pair(symbols, pair)
        return symbols

    def _unknown(self, char: str, word: str, where: int) -> str:
        if self.unk_token is None:
            fix = ("pass unk_token='<unk>'" if "<unk>" in self.special_tokens
                   else "add '<unk>' to special_tokens and pass unk_token='<unk>'")
            raise ValueError(f"character {char!r} (U+{ord(char):04X}) at position {where} of the text (in the word "
                             f"{word!r}) is not in the tokenizer's alphabet of {len(self.alphabet)} characters: "
                             f"{fix} to map such characters to it, or train with initial_alphabet= holding them.")
        return self.unk_token

    def _word_ids(self, word: str) -> tuple[int, ...]:
        ids = self._cache.get(word)
        if ids is None:
            ids = self._cache[word] = tuple(self.vocab[t] for t in self.bpe(word))
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: each word encoded by :meth:`bpe` (and cached), special tokens kept whole.

        Equal to ``tokenizers_bpe(...).encode(text).ids`` (a test checks it on WikiText-2).
        """
        text = check_text(text, "encode's text")
        if WORD_START in text:
            where = text.index(WORD_START)
            raise ValueError(f"the text holds the word-start marker {WORD_START!r} (U+2581) at position {where}: "
                             "decode() could not tell it from a space. Replace it first.")
        ids: list[int] = []
        for k, word in enumerate(self._split(text)):
            special = self._specials.get(word)
            if special is not None:
                ids.append(special)
                continue
            if self.unk_token is None and word not in self._cache:
                unknown = next((j for j, c in enumerate(word) if c not in self._alphabet), None)
                if unknown is not None:
                    self._unknown(word[unknown], word, self._split.start(text, k) + unknown)
            ids.extend(self._word_ids(word))
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` as strings (what :meth:`encode` gives, before the ids)."""
        return [self.tokens[i] for i in self.encode(text)]

    def encode_lines(self, lines: Iterable[str], eos: str = "<eos>") -> list[int]:
        """One stream of ids for many lines, each ended by ``eos``: the course's one-``<eos>``-per-line."""
        if eos not in self._specials:
            raise ValueError(f"eos={eos!r} is not one of the special tokens {list(self.special_tokens)}.")
        if isinstance(lines, str):
            raise TypeError("encode_lines takes a list of lines; for one text use encode(text).")
        ids: list[int] = []
        for line in lines:
            ids.extend(self.encode(line))
            ids.append(self._specials[eos])
        return ids

    # --- decoding ----------------------------------------------------------------------------
    def _token(self, i: object, position: int) -> str:
        if isinstance(i, bool) or isinstance(i, (str, bytes, float)):
            raise TypeError(f"decode takes token ids (int); got {type(i).__name__} {i!r} at position {position}. "
                            "To turn text into ids, use encode(text).")
        try:
            index = operator.index(i)
        except TypeError:
            raise TypeError(f"decode takes token ids (int); got {type(i).__name__} at position {position}.") from None
        if not 0 <= index < len(self.tokens):
            raise ValueError(f"token id {index} at position {position} is not in the vocabulary (ids 0 to "
                             f"{len(self.tokens) - 1}): were these ids made by another tokenizer?")
        return self.tokens[index]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: tokens joined, each ``▁`` a space between words, special tokens as words.

        ``decode(encode(text)) == " ".join(text.split())`` whenever every character of ``text`` is in the
        alphabet and its special tokens stand as words of their own (as in WikiText-2). ``tokenizers``'
        Metaspace decoder glues a special token to the word before it; here it keeps its spaces.
        """
        if hasattr(ids, "tolist"):  # a tensor or an array
            ids = ids.tolist()
        words: list[str] = []
        glue = False  # does the next token without a marker continue the last word?
        for position, i in enumerate(ids):
            token = self._token(i, position)
            if token in self._specials:
                words.append(token)
                glue = False
            elif token.startswith(WORD_START):
                words.append(token[1:])
                glue = True
            elif glue:
                words[-1] += token
            else:
                words.append(token)
                glue = True
        return " ".join(w for w in words if w)

    def decode_lines(self, ids: Iterable[int], eos: str = "<eos>") -> list[str]:
        """Undo :meth:`encode_lines`: the text of each run of ids ended by ``eos`` (a last run without it too)."""
        if eos not in self._specials:
            raise ValueError(f"eos={eos!r} is not one of the special tokens {list(self.special_tokens)}.")
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = list(ids)
        end = self._specials[eos]
        lines, start = [], 0
        for k, i in enumerate(ids):
            if i == end:
                lines.append(self.decode(ids[start:k]))
                start = k + 1
        if start < len(ids):
            lines.append(self.decode(ids[start:]))
        return lines

    # --- smaller vocabularies, saving and loading --------------------------------------------
    def truncated(self, vocab_size: int) -> "BPETokenizer":
        """The tokenizer with only the first merges, ``vocab_size`` tokens in all.

        Equal to training with ``vocab_size`` directly (a test checks it): BPE's merges are a prefix.
        """
        base = len(self.special_tokens) + len(self.alphabet)
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or not base <= vocab_size <= len(self):
            raise ValueError(f"vocab_size must be between {base} (special tokens and alphabet) and {len(self)} "
                             f"(this tokenizer's size), got {vocab_size!r}; train longer for a larger one.")
        return BPETokenizer(self.merges[:vocab_size - base], self.alphabet, self.special_tokens, self.unk_token)

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": _VERSION, "word_start": WORD_START,
                "special_tokens": list(self.special_tokens), "unk_token": self.unk_token,
                "alphabet": list(self.alphabet), "merges": [list(pair) for pair in self.merges]}

    @classmethod
    def from_dict(cls, state: dict) -> "BPETokenizer":
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"not a tokenizer saved by BPETokenizer.save (no \"format\": \"{_FORMAT}\").")
        if state.get("version") != _VERSION or state.get("word_start") != WORD_START:
            raise ValueError(f"saved with version {state.get('version')!r} and word start "
                             f"{state.get('word_start')!r}; this llmcourse reads version {_VERSION}, {WORD_START!r}.")
        for key, kind in (("special_tokens", list), ("alphabet", list), ("merges", list)):
            if not isinstance(state.get(key), kind):
                raise ValueError(f"{key!r} should be a list, got {type(state.get(key)).__name__}.")
        return cls(state["merges"], state["alphabet"], state["special_tokens"], state.get("unk_token"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer to ``path`` as JSON, atomically (a reader never sees half a file), sealed with
        the sha256 of its content (:func:`llmcourse.files.write_json`)."""
        return write_json(path, self.to_dict(), sealed=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        """Read a tokenizer written by :meth:`save`; a damaged or changed file is a ``ValueError`` that names it."""
        return read_json(path, cls.from_dict, "BPE tokenizer", "save it again with BPETokenizer.save or retrain it", sealed=True)


# --------------------------------------------------------------------------------------------
# Vocabulary size against sequence length
# --------------------------------------------------------------------------------------------
def tokens_per_word(tokenizer: BPETokenizer, texts: Iterable[str] | str) -> float:
    """Tokens per word of ``texts`` (words as ``str.split`` counts them, special tokens included)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    words = sum(len(check_text(t, f"texts[{i}]").split()) for i, t in enumerate(texts))
    if words == 0:
        raise ValueError("texts has no words to measure.")
    return sum(len(tokenizer.encode(t)) for t in texts) / words


def vocab_size_tradeoff(train_texts: Iterable[str], eval_texts: Iterable[str],
                        vocab_sizes: Sequence[int] = (500, 1000, 2000, 4000, 8000, 16000),
                        **train_kwargs) -> dict[int, float]:
    """Tokens per word of ``eval_texts`` for each vocabulary size, from one training to the largest.

    The merges for a smaller vocabulary are the first merges of a larger one, so one
    :func:`train_bpe` run and :meth:`BPETokenizer.truncated` give them all. ``train_kwargs`` go to
    :func:`train_bpe` (``unk_token="<unk>"`` if ``eval_texts`` may hold unseen characters).
    Returns ``{vocab_size: tokens per word}``, for notebook 06's plot.
    """
    if not vocab_sizes:
        raise ValueError("vocab_sizes is empty: name at least one vocabulary size.")
    eval_texts = list(eval_texts)
    largest = train_bpe(train_texts, vocab_size=max(vocab_sizes), **train_kwargs)
    if len(largest) < max(vocab_sizes):
        raise ValueError(f"the training text allows only {len(largest)} tokens (no pair occurs often enough for "
                         f"more), fewer than vocab size {max(vocab_sizes)}.")
    return {size: tokens_per_word(largest.truncated(size), eval_texts) for size in sorted(vocab_sizes)}


# --------------------------------------------------------------------------------------------
# The same with Hugging Face tokenizers, for the proof
# --------------------------------------------------------------------------------------------
def tokenizers_bpe(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 1,
                   special_tokens: Sequence[str] = DEFAULT_SPECIALS, unk_token: str | None = None,
                   initial_alphabet: Iterable[str] = ""):
    """A ``tokenizers.Tokenizer`` trained by ``BpeTrainer`` with :func:`train_bpe`'s conventions.

    Split on white space, ``▁`` in front of every word (``WhitespaceSplit`` then ``Metaspace``); the
    special tokens are removed from the training text by a ``Replace`` normaliser (when encoding,
    ``tokenizers`` cuts special tokens out before normalising, so the normaliser never sees them
    there). Its merges, vocabulary and ``encode(text).ids`` equal the course's. Two differences
    remain: with ``unk_token=None`` it drops an unknown character silently, and ``WhitespaceSplit``
    does not split at the separators U+001C to U+001F, which ``str.split`` does.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = list(_check_specials(special_tokens))
    tokenizer = Tokenizer(models.BPE(unk_token=unk_token))
    if specials:
        tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(s, " ") for s in specials])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=False)])
    tokenizer.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always", split=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                  initial_alphabet=list(initial_alphabet), show_progress=False)
    tokenizer.train_from_iterator([texts] if isinstance(texts, str) else texts, trainer)
    return tokenizer


def tokenizers_merges(tokenizer) -> list[Pair]:
    """The merges of a ``tokenizers`` BPE model, in order (as pairs, whichever way it stores them)."""
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
