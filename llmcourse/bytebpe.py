"""Byte-level BPE from scratch, as GPT-2 and Llama 3 use it, proven equal to Hugging Face ``tokenizers``.

:mod:`llmcourse.bpe` learns merges over *characters*, so a character never seen in training has no
token. Byte-level BPE (Radford et al. 2019, GPT-2) learns them over the *bytes* of the UTF-8 text:
the alphabet is the 256 byte values, every string is a sequence of them, and no text is ever
unknown. The merge loop is the same (:func:`llmcourse.bpe.learn_merges_fast`); what changes:

* **The byte table.** Merges are easier to read (and files easier to write) as strings, so each byte
  gets a printable character: :func:`bytes_to_unicode` keeps the 188 printable Latin-1 bytes as
  themselves (``a`` is ``a``) and moves the 68 others (controls, space, ...) to U+0100 upwards; the
  space is ``Ġ`` (U+0120), the newline ``Ċ``. A token is a string of these symbols.
* **Pre-tokenization.** Text is cut into pieces by GPT-2's regular expression
  (:data:`GPT2_PATTERN`): contractions (``'s``, ``'ll``, ...), runs of letters, of digits, of other
  symbols, each with at most one space in front, and runs of white space. A merge never crosses a
  piece, so ``" the"`` can become one token but ``"e t"`` cannot. The space belongs to the word after
  it, which is why :meth:`ByteBPETokenizer.decode` needs no rule to put spaces back: decoding is
  concatenating bytes, and ``decode(encode(s)) == s`` for every string.
* **Counting.** Training counts the distinct pieces once (the word-frequency trick).

Conventions (what "the same as ``tokenizers``" rests on, each found by experiment with
``tokenizers`` 0.23 and checked in ``tests/test_bytebpe.py``):

* **Ids when trained**: the special tokens first (in the order given), then the 256 byte symbols in
  the *code-point order of their symbols* (``!`` is id ``len(specials)``, then ``"`` ... ``~``,
  ``¡`` ... ``ÿ``, then ``Ā`` (byte 0) ... ``Ġ`` (space) ...; not byte order), then one token per merge,
  in merge order. This is the numbering of ``BpeTrainer(initial_alphabet=ByteLevel.alphabet())``.
* **Ties** (as in :mod:`llmcourse.bpe`): among pairs of equal count, the pair whose left token has
  the smallest id wins, then the one whose right token has. So byte symbols tie by their symbols'
  code points, not by byte value: ``é`` (bytes C3 A9, symbols ``Ã©``) is merged before the bytes 01 02
  (symbols ``āĂ``, U+0101 U+0102), and merged tokens lose ties to older ones.
* **Special tokens** (default ``<|endoftext|>``, GPT-2's) are cut out of the text wherever they occur,
  never split or merged, and not counted in training. (``tokenizers``' trainer does *not* cut them out
  of training text; :func:`tokenizers_byte_bpe` feeds it the pieces between them, for the proof.)
* **Ids when loaded** from GPT-2's ``vocab.json`` + ``merges.txt``: those of ``vocab.json``.
* **The pattern** is matched with the ``regex`` package; ``tokenizers`` uses Oniguruma. They agree on
  every character assigned up to Unicode 14; a handful assigned later (e.g. U+0558) count as letters
  for ``regex`` but not yet for ``tokenizers`` 0.23.
"""

from __future__ import annotations

import json
import operator
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import regex

from .bpe import check_text, learn_merges_fast, tokenizers_merges
from .files import atomic_write, read_json, write_json

__all__ = ["DEFAULT_SPECIALS", "GPT2_PATTERN", "SpecialSplitter", "bytes_to_unicode", "unicode_to_bytes", "pretokenize",
           "train_byte_bpe", "ByteBPETokenizer", "tokenizers_byte_bpe", "tokenizers_merges"]

#: GPT-2's end of text, its only special token.
DEFAULT_SPECIALS = ("<|endoftext|>",)
#: GPT-2's pre-tokenization pattern (``encoder.py`` in openai/gpt-2; ``tokenizers``' ByteLevel regex).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PIECES = regex.compile(GPT2_PATTERN)
_FORMAT = "llmcourse.bytebpe"
_VERSION = 1


# --------------------------------------------------------------------------------------------
# Bytes as printable characters, and pieces
# --------------------------------------------------------------------------------------------
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte (0-255) to a printable character; a bijection.

    The printable Latin-1 bytes ``!``-``~``, ``¡``-``¬`` and ``®``-``ÿ`` stand for themselves; the other
    68 bytes get the characters U+0100, U+0101, ... in byte order (so byte 32, the space, is ``Ġ``).

    >>> table = bytes_to_unicode()
    >>> table[ord("a")], table[ord(" ")], table[ord("\\n")], len(set(table.values()))
    ('a', 'Ġ', 'Ċ', 256)
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    table = {b: chr(b) for b in kept} | {b: chr(256 + n) for n, b in enumerate(moved)}
    return dict(sorted(table.items()))


def unicode_to_bytes() -> dict[str, int]:
    """The inverse of :func:`bytes_to_unicode`: byte symbol -> byte."""
    return {char: byte for byte, char in bytes_to_unicode().items()}


_SYMBOL = bytes_to_unicode()  # also the str.translate table from latin-1 text to byte symbols
_TO_LATIN1 = {ord(char): byte for byte, char in _SYMBOL.items()}
_ALPHABET = tuple(sorted(_SYMBOL.values()))  # code-point order: tokenizers' ids


def _symbols(piece: str) -> str:
    """The byte symbols of ``piece``: its UTF-8 bytes, each written as its printable character."""
    return piece.encode("utf-8").decode("latin-1").translate(_SYMBOL)


def pretokenize(text: str) -> list[str]:
    """``text`` cut into GPT-2's pieces (no special tokens: :meth:`ByteBPETokenizer.encode` cuts those first).

    >>> pretokenize("I don't  like   it!\\n")
    ['I', ' don', "'t", ' ', ' like', '  ', ' it', '!', '\\n']
    """
    return _PIECES.findall(check_text(text, "pretokenize's text"))


def _check_specials(special_tokens: Sequence[str]) -> tuple[str, ...]:
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens is a list of tokens, got the string {special_tokens!r}: "
                        f"write special_tokens=[{special_tokens!r}].")
    specials = tuple(special_tokens)
    for token in specials:
        if not isinstance(token, str) or not token:
            raise TypeError(f"a special token must be a non-empty str, got {type(token).__name__} {token!r}.")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens {list(specials)} name a token twice.")
    return specials


class SpecialSplitter:
    """Cuts the special tokens out of a text: ``split("a<|endoftext|>b")`` gives ``[("a", False),
    ("<|endoftext|>", True), ("b", False)]``; the longest special wins where two start at one place."""

    def __init__(self, specials: Sequence[str]):
        either = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))
        self.pattern = re.compile(f"({either})") if specials else None
        self.longest = max(map(len, specials), default=0)

    def __call__(self, text: str) -> list[tuple[str, bool]]:
        if self.pattern is None:
            return [(text, False)]
        return [(part, bool(k % 2)) for k, part in enumerate(self.pattern.split(text)) if part]


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def train_byte_bpe(texts: Iterable[str] | str, vocab_size: int, *,
                   special_tokens: Sequence[str] = DEFAULT_SPECIALS, min_frequency: int = 1) -> "ByteBPETokenizer":
    """Learn a byte-level BPE tokenizer of ``vocab_size`` tokens from ``texts`` (lines, or one str).

    Special tokens are cut out; the rest is pre-tokenized, the distinct pieces are counted and
    written as byte symbols, and :func:`~llmcourse.bpe.learn_merges_fast` learns
    ``vocab_size - len(special_tokens) - 256`` merges (fewer if no pair occurs ``min_frequency``
    times). The numbering and the ties are ``tokenizers``' (see the module's docstring).

    >>> tok = train_byte_bpe(["low lower newest widest"] * 3, vocab_size=261)  # 1 special + 256 bytes + 4 merges
    >>> tok.merges, tok.tokenize("lowest"), tok.tokenize(" lowest")
    ([('e', 's'), ('l', 'o'), ('es', 't'), ('lo', 'w')], ['low', 'est'], ['Ġ', 'low', 'est'])
    """
    specials = _check_specials(special_tokens)
    base = len(specials) + 256
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < base:
        raise ValueError(f"vocab_size must be a whole number >= {base} (the {len(specials)} special tokens and the "
                         f"256 bytes every byte-level vocabulary starts with), got {vocab_size!r}.")
    split, counts = SpecialSplitter(specials), Counter()
    for i, text in enumerate([texts] if isinstance(texts, str) else texts):
        for part, special in split(check_text(text, f"texts[{i}]")):
            if not special:
                counts.update(_PIECES.findall(part))
    words = {tuple(_symbols(piece)): count for piece, count in counts.items()}
    merges = learn_merges_fast(words, vocab_size - base, min_frequency)
    return ByteBPETokenizer(merges, special_tokens=specials)


# --------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------
class ByteBPETokenizer:
    """A byte-level BPE tokenizer: its ``merges`` (in order), ``special_tokens`` and ``vocab`` (token -> id;
    ``tokens``: id -> token). With ``vocab=None`` the ids are those of training; a given ``vocab`` (GPT-2's
    ``vocab.json``) keeps its ids: it must hold the 256 byte symbols, every part and result of a merge, and
    ids ``0 .. len - 1`` once each; a special token it lacks gets the next id (as ``tokenizers`` adds one).
    Encoded pieces are cached, ``cache_size`` at most, so that memory stays bounded on an endless stream."""

    def __init__(self, merges: Sequence[tuple[str, str]], special_tokens: Sequence[str] = DEFAULT_SPECIALS,
                 vocab: Mapping[str, int] | None = None, cache_size: int = 100_000):
        self.special_tokens = _check_specials(special_tokens)
        self.merges: list[tuple[str, str]] = []
        for k, pair in enumerate(merges):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
                raise ValueError(f"merge {k} should be a pair of non-empty tokens, got {pair!r}.")
            self.merges.append((pair[0], pair[1]))
        self.vocab = self._numbered() if vocab is None else self._checked(vocab)
        self.tokens: list[str] = sorted(self.vocab, key=self.vocab.__getitem__)
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._special_ids = {s: self.vocab[s] for s in self.special_tokens}
        self._token_bytes = [t.encode() if t in self._special_ids else t.translate(_TO_LATIN1).encode("latin-1")
                             for t in self.tokens]
        self._split = SpecialSplitter(self.special_tokens)
        self.cache_size = cache_size
        self._cache: dict[str, tuple[int, ...]] = {}

    def _numbered(self) -> dict[str, int]:
        tokens = [*self.special_tokens, *_ALPHABET]
        vocab = {t: i for i, t in enumerate(tokens)}
        if len(vocab) != len(tokens):
            raise ValueError(f"special tokens {sorted(set(tokens[:len(self.special_tokens)]) & set(_ALPHABET))} are "
                             "also byte symbols: they could not have ids of their own.")
        for k, (a, b) in enumerate(self.merges):
            for part in (a, b):
                if part not in vocab or part in self.special_tokens:
                    raise ValueError(f"merge {k} {(a, b)} uses {part!r}, which is neither a byte symbol nor made by an "
                                     "earlier merge.")
            if a + b in self.special_tokens:
                raise ValueError(f"merge {k} {(a, b)} makes the special token {a + b!r}: rename the special token.")
            if a + b in vocab:
                raise ValueError(f"merge {k} {(a, b)} makes {a + b!r}, which is already a token: training makes each "
                                 "token once (give vocab= to number the tokens yourself).")
            vocab[a + b] = len(vocab)
        return vocab

    def _checked(self, vocab: Mapping[str, int]) -> dict[str, int]:
        if not isinstance(vocab, Mapping):
            raise ValueError(f"the vocabulary should map tokens to ids (a JSON object), got {type(vocab).__name__}.")
        owner: dict[int, str] = {}
        for token, i in vocab.items():
            if not isinstance(token, str) or not isinstance(i, int) or isinstance(i, bool) or i < 0:
                raise ValueError(f"the vocabulary maps tokens (str) to ids (int >= 0); got {token!r}: {i!r}.")
            if i in owner:
                raise ValueError(f"the vocabulary gives the id {i} to both {owner[i]!r} and {token!r}: each id names "
                                 "one token.")
            owner[i] = token
        gap = next((i for i in range(len(owner)) if i not in owner), None)
        if gap is not None:
            raise ValueError(f"the vocabulary's ids must run from 0 to {len(owner) - 1} without gaps, but id {gap} is "
                             f"missing (the largest is {max(owner)}); renumber it.")
        vocab = dict(vocab)
        for s in self.special_tokens:
            vocab.setdefault(s, len(vocab))
        missing = [c for c in _ALPHABET if c not in vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} of the 256 byte symbols (e.g. {missing[0]!r}, byte "
                             f"{_TO_LATIN1[ord(missing[0])]}): some text could not be encoded.")
        for token in vocab:
            if token not in self.special_tokens and any(ord(c) not in _TO_LATIN1 for c in token):
                raise ValueError(f"the vocabulary's token {token!r} is not written in byte symbols: if it is a special "
                                 "token, name it in special_tokens.")
        for k, (a, b) in enumerate(self.merges):
            for what, token in (("part", a), ("part", b), ("result", a + b)):
                if token not in vocab:
                    raise ValueError(f"merge {k} {(a, b)}: its {what} {token!r} is not in the vocabulary; the "
                                     "vocabulary and the merges disagree (were they saved together?).")
        return vocab

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        specials, merges = len(self.special_tokens), len(self.merges)
        return f"ByteBPETokenizer({len(self)} tokens: {specials} special, 256 bytes, {merges} merges)"

    # --- encoding ----------------------------------------------------------------------------
    def _piece_ids(self, piece: str) -> tuple[int, ...]:
        """The ids of one piece: its byte symbols, merged as ``tokenizers`` does: again and again the
        adjacent pair learned first (the leftmost if it occurs twice), until no learned pair is left."""
        symbols, ranks = list(_symbols(piece)), self._ranks
        while len(symbols) > 1:
            best, where = None, 0
            for j, pair in enumerate(zip(symbols, symbols[1:])):
                rank = ranks.get(pair)
                if rank is not None and (best is None or rank < best):
                    best, where = rank, j
            if best is None:
                break
            symbols[where:where + 2] = [symbols[where] + symbols[where + 1]]
        ids = tuple(self.vocab[s] for s in symbols)
        if len(self._cache) < self.cache_size:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: special tokens whole, every other piece by its merges (cached); equal to
        ``tokenizers``' ``encode(text).ids`` with the ByteLevel pre-tokenizer (a test checks)."""
        text = check_text(text, "encode's text")
        ids: list[int] = []
        cache, piece_ids = self._cache, self._piece_ids
        for part, special in self._split(text):
            if special:
                ids.append(self._special_ids[part])
            else:
                for piece in _PIECES.findall(part):
                    ids += cache.get(piece) or piece_ids(piece)
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` as strings of byte symbols (``" the"`` is ``'Ġthe'``)."""
        return [self.tokens[i] for i in self.encode(text)]

    def encode_iterable(self, chunks: Iterable[str]) -> Iterator[int]:
        """The ids of the text ``"".join(chunks)``, one by one, lazily: lines of a file opened in text mode
        (``open(path, encoding="utf-8")``) are encoded while they are read, in bounded memory.

        The ids equal ``encode("".join(chunks))`` however the text is cut: a piece may go on in the next
        chunk (``"don'"`` + ``"t"``, spaces before a word, half a special token), so what could still
        change (the last two pieces, 3 characters, ``len(longest special) - 1`` characters) is held back.
        """
        if isinstance(chunks, (str, bytes)):
            raise TypeError("encode_iterable takes an iterable of str (lines, or a file opened in text mode); "
                            "for one text use encode(text).")
        return self._stream(iter(chunks))

    def _stream(self, chunks: Iterator[str]) -> Iterator[int]:
        held = ""
        for k, chunk in enumerate(chunks):
            if not isinstance(chunk, str):
                raise TypeError(f"encode_iterable's chunk {k} is not a str ({type(chunk).__name__}: open a file in "
                                "text mode, with encoding='utf-8').")
            held += chunk
            start, pieces, cut = self._settled(held)
            if start:
                yield from self.encode(held[:start])
            for piece in pieces:
                yield from self._cache.get(piece) or self._piece_ids(piece)
            held = held[cut:]
        if held:
            yield from self.encode(held)

    def _settled(self, text: str) -> tuple[int, list[str], int]:
        """What of ``text`` encodes the same whatever follows: ``text[:start]`` (empty, or ending with a
        special token), then ``pieces`` up to ``cut``, kept as found here: pre-tokenizing ``text[:cut]``
        again could join white space at its end (``"\\r\\n"``, ``"\\n"`` before a word are one run at the end)."""
        limit = len(text) - max(self._split.longest - 1, 0)  # beyond: maybe the start of a special token
        start = 0
        if self._split.pattern is not None:
            for m in self._split.pattern.finditer(text):
                if m.start() >= limit:
                    break
                start = m.end()  # a special token that starts before limit is whole: settled
        pieces, previous = [], None
        for m in _PIECES.finditer(text, start):
            # Settled if the regex never read up to limit to find it: the next piece ends before limit (white
            # space reads one character past its run) and 3 more characters (a contraction at its start) are in.
            if previous is not None:
                if m.end() >= limit or previous.end() + 3 > limit:
                    break
                pieces.append(previous.group())
            previous = m
        cut = start + sum(map(len, pieces))
        return start, pieces, cut

    # --- decoding ----------------------------------------------------------------------------
    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``: their bytes, concatenated, read as UTF-8. Exact: ``decode(encode(s)) == s``.
        Ids that cut a character's bytes apart (never made by :meth:`encode`) give U+FFFD there, as
        ``tokenizers``' ByteLevel decoder does."""
        if hasattr(ids, "tolist"):  # a tensor or an array
            ids = ids.tolist()
        out, n = [], len(self._token_bytes)
        for position, i in enumerate(ids):
            if isinstance(i, bool) or not hasattr(i, "__index__"):
                raise TypeError(f"decode takes token ids (int); got {type(i).__name__} {i!r} at position {position}. "
                                "To turn text into ids, use encode(text).")
            i = operator.index(i)
            if not 0 <= i < n:
                raise ValueError(f"token id {i} at position {position} is not in the vocabulary (ids 0 to {n - 1}): "
                                 "were these ids made by another tokenizer?")
            out.append(self._token_bytes[i])
        return b"".join(out).decode("utf-8", errors="replace")

    # --- saving and loading ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": _VERSION, "special_tokens": list(self.special_tokens),
                "vocab": self.vocab, "merges": [list(pair) for pair in self.merges]}

    @classmethod
    def from_dict(cls, state: dict) -> "ByteBPETokenizer":
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"not a tokenizer saved by ByteBPETokenizer.save (no \"format\": \"{_FORMAT}\").")
        if state.get("version") != _VERSION:
            raise ValueError(f"saved with version {state.get('version')!r}; this llmcourse reads version {_VERSION}.")
        return cls(state.get("merges", []), state.get("special_tokens", []), state.get("vocab"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer to ``path`` as JSON, atomically (a reader never sees half a file), sealed with
        the sha256 of its content (:func:`llmcourse.files.write_json`)."""
        return write_json(path, self.to_dict(), sealed=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ByteBPETokenizer":
        """Read a tokenizer written by :meth:`save`; a damaged or changed file is a ``ValueError`` that names it."""
        return read_json(path, cls.from_dict, "byte-level BPE tokenizer",
                         "save it again with ByteBPETokenizer.save or retrain it", sealed=True)

    def save_gpt2_files(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        """Write GPT-2's two files into ``folder``: ``vocab.json`` (token -> id) and ``merges.txt`` (a
        ``#version`` line, then one merge a line, its two tokens separated by a space). Readable by
        :meth:`from_gpt2_files`, ``tokenizers.models.BPE.from_file`` and ``transformers``' GPT2Tokenizer."""
        folder = Path(folder)
        vocab = json.dumps(self.vocab, ensure_ascii=False)
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges)
        return (atomic_write(folder / "vocab.json", lambda tmp: tmp.write_text(vocab, encoding="utf-8")),
                atomic_write(folder / "merges.txt", lambda tmp: tmp.write_text(merges, encoding="utf-8")))

    @classmethod
    def from_gpt2_files(cls, vocab_json_path: str | os.PathLike, merges_txt_path: str | os.PathLike,
                        special_tokens: Sequence[str] = DEFAULT_SPECIALS) -> "ByteBPETokenizer":
        """Read GPT-2's ``vocab.json`` and ``merges.txt``; the ids are those of ``vocab.json`` (a special
        token missing from it gets the next id). Errors name the file (and line)."""
        try:
            vocab = json.loads(Path(vocab_json_path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{vocab_json_path} is not a readable vocab.json ({exc}).") from exc
        merges = []
        with open(merges_txt_path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line or (number == 1 and line.startswith("#version")):
                    continue
                pair = line.split(" ")
                if len(pair) != 2 or not all(pair):
                    raise ValueError(f"{merges_txt_path}, line {number}: {line!r} is not two tokens separated by one "
                                     "space.")
                merges.append(tuple(pair))
        try:
            return cls(merges, special_tokens, vocab)
        except ValueError as exc:
            raise ValueError(f"{vocab_json_path} and {merges_txt_path}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The same with Hugging Face tokenizers, for the proof
# --------------------------------------------------------------------------------------------
def tokenizers_byte_bpe(texts: Iterable[str] | str, vocab_size: int, *,
                        special_tokens: Sequence[str] = DEFAULT_SPECIALS, min_frequency: int = 1):
    """A ``tokenizers.Tokenizer`` with GPT-2's byte-level BPE, trained by ``BpeTrainer`` like
    :func:`train_byte_bpe`: ``ByteLevel(add_prefix_space=False)`` pre-tokenizer and decoder,
    ``initial_alphabet=ByteLevel.alphabet()``. Its trainer would count a special token's characters
    in the text, so it is fed the text between the special tokens. Its merges, vocabulary and
    ``encode(text).ids`` equal the course's.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = _check_specials(special_tokens)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    split = SpecialSplitter(specials)
    texts = [texts] if isinstance(texts, str) else texts
    tokenizer.train_from_iterator((part for text in texts for part, special in split(text) if not special), trainer)
    return tokenizer
