"""Tokenizers and vocabularies: the torchtext API the course uses, without torchtext.

torchtext's last release (0.18) no longer imports with current PyTorch, so this module keeps its
familiar API with the same behaviour, tested against torchtext's published rules:

* :func:`get_tokenizer` — ``get_tokenizer("basic_english")`` normalises exactly as torchtext did;
  ``get_tokenizer(None)`` splits on white space (what WikiText-2, already tokenised, needs).
* :class:`Vocab` — token ↔ index maps with specials, a default index, ``lookup_indices`` /
  ``lookup_tokens``, and save / load as JSON.
* :func:`build_vocab_from_iterator` — counts tokens, orders them by descending frequency then
  alphabetically, drops those under ``min_freq`` and puts the specials first (or last).

Taught in notebook 00 ("tokens and vocabularies").
"""

from __future__ import annotations

import numbers
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .files import read_json, write_json

__all__ = [
    "SPECIALS",
    "get_tokenizer",
    "basic_english",
    "Vocab",
    "build_vocab_from_iterator",
    "check_token_ids",
]

#: The course's special tokens: unknown word, padding, start and end of sequence.
SPECIALS = ("<unk>", "<pad>", "<sos>", "<eos>")

# torchtext.data.utils._basic_english_normalize, rule for rule and in the same order.
_BASIC_ENGLISH_RULES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in [
        (r"\'", " '  "),
        (r"\"", ""),
        (r"\.", " . "),
        (r"<br \/>", " "),
        (r",", " , "),
        (r"\(", " ( "),
        (r"\)", " ) "),
        (r"\!", " ! "),
        (r"\?", " ? "),
        (r"\;", " "),
        (r"\:", " "),
        (r"\s+", " "),
    ]
]


def basic_english(line: str) -> list[str]:
    """torchtext's ``basic_english`` tokenizer: lower-case, pad punctuation with spaces, drop ``"``,
    ``;`` and ``:``, turn ``<br />`` into a space, then split on white space.

    >>> basic_english('He said: "Hello, World!"')
    ['he', 'said', 'hello', ',', 'world', '!']
    """
    line = line.lower()
    for pattern, replacement in _BASIC_ENGLISH_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _split(line: str) -> list[str]:
    return line.split()


def get_tokenizer(tokenizer: str | Callable[[str], list[str]] | None, language: str = "en") -> Callable[[str], list[str]]:
    """Return a function that turns a string into a list of tokens, as ``torchtext.data.get_tokenizer``.

    ``None`` splits on white space; ``"basic_english"`` is torchtext's normaliser (English only);
    a callable is returned unchanged. Other names (spacy, moses, ...) are not bundled with the course.
    """
    if tokenizer is None:
        return _split
    if callable(tokenizer):
        return tokenizer
    if tokenizer == "basic_english":
        if language != "en":
            raise ValueError(f"basic_english normalises English only; got language={language!r}.")
        return basic_english
    raise ValueError(
        f"Unknown tokenizer {tokenizer!r}. llmcourse provides None (split on white space) and "
        "'basic_english'; pass any callable str -> list[str] for others (for sub-word tokenizers, "
        "use a Hugging Face tokenizer as notebook 05 does)."
    )


def _index(index: Any, who: str) -> int:
    """A token id: an int (a NumPy integer or a one-element integer tensor too), never a float or a bool,
    which ``int()`` would truncate silently."""
    if hasattr(index, "dtype") and getattr(index, "ndim", 1) == 0 and not isinstance(index, bool):
        kind = str(index.dtype)
        if "int" in kind and "bool" not in kind:
            return int(index)
    if isinstance(index, numbers.Integral) and not isinstance(index, bool):
        return int(index)
    raise TypeError(f"{who} takes a token id, an int; got {type(index).__name__} {index!r}"
                    + (" (a float would be truncated: make the ids integers)." if isinstance(index, float) else "."))


class Vocab:
    """A vocabulary: a list of tokens whose positions are their indices, as ``torchtext.vocab.Vocab``.

    Looking up a token that is not in the vocabulary raises, unless a default index was set with
    :meth:`set_default_index` (usually the index of ``<unk>``).
    """

    def __init__(self, tokens: Iterable[str], default_index: int | None = None):
        self._itos: list[str] = []
        self._stoi: dict[str, int] = {}
        for token in tokens:
            self.append_token(token)
        self._default_index: int | None = None
        if default_index is not None:
            self.set_default_index(default_index)

    # --- the torchtext.vocab.Vocab API -------------------------------------------------------
    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __getitem__(self, token: str) -> int:
        if not isinstance(token, str):
            hint = f" To get the token at index {token}, use vocab.lookup_token({token})." if isinstance(token, int) else ""
            raise TypeError(f"vocab[...] looks up a token, a str; got {type(token).__name__} {token!r}.{hint}")
        index = self._stoi.get(token)
        if index is not None:
            return index
        if self._default_index is None:
            raise RuntimeError(
                f"Token {token!r} is not in the vocabulary and no default index is set; "
                "call vocab.set_default_index(vocab['<unk>']) to map unknown tokens to <unk>."
            )
        return self._default_index

    def __call__(self, tokens: Sequence[str]) -> list[int]:
        return self.lookup_indices(tokens)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vocab) and self._itos == other._itos
                and self._default_index == other._default_index)

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._itos[:6])
        more = ", ..." if len(self) > 6 else ""
        return f"Vocab({len(self)} tokens: [{head}{more}], default_index={self._default_index})"

    def set_default_index(self, index: int | None) -> None:
        index = None if index is None else _index(index, "set_default_index")
        if index is not None and not 0 <= index < len(self):
            raise IndexError(f"Default index {index} is outside the vocabulary (size {len(self)}).")
        self._default_index = index

    def get_default_index(self) -> int | None:
        return self._default_index

    def lookup_token(self, index: int) -> str:
        index = _index(index, "lookup_token")
        if not 0 <= index < len(self._itos):
            raise RuntimeError(f"Index {index} is outside the vocabulary (valid: 0 to {len(self) - 1}).")
        return self._itos[index]

    def lookup_tokens(self, indices: Iterable[int]) -> list[str]:
        if isinstance(indices, (str, bytes)):
            raise TypeError(f"lookup_tokens takes token ids (ints); got the string {indices[:30]!r}.")
        return [self.lookup_token(i) for i in indices]

    def lookup_indices(self, tokens: Iterable[str]) -> list[int]:
        return [self[token] for token in tokens]

    def get_stoi(self) -> dict[str, int]:
        return dict(self._stoi)

    def get_itos(self) -> list[str]:
        return list(self._itos)

    def append_token(self, token: str) -> None:
        if not isinstance(token, str):
            raise TypeError(f"A vocabulary holds tokens as str; got {type(token).__name__} {token!r}.")
        if token in self._stoi:
            raise RuntimeError(f"Token {token!r} is already in the vocabulary at index {self._stoi[token]}.")
        self._stoi[token] = len(self._itos)
        self._itos.append(token)

    def insert_token(self, token: str, index: int) -> None:
        if token in self._stoi:
            raise RuntimeError(f"Token {token!r} is already in the vocabulary at index {self._stoi[token]}.")
        if not 0 <= index <= len(self._itos):
            raise RuntimeError(f"Index {index} is outside 0..{len(self)}.")
        self._itos.insert(index, token)
        self._stoi = {t: i for i, t in enumerate(self._itos)}
        if self._default_index is not None and self._default_index >= index:
            self._default_index += 1

    # --- persistence: plain JSON, never pickle -----------------------------------------------
    def to_dict(self) -> dict:
        return {"itos": self._itos, "default_index": self._default_index}

    @classmethod
    def from_dict(cls, state: dict) -> "Vocab":
        itos = state.get("itos") if isinstance(state, dict) else None
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError(f"'itos' should be a list of tokens (str); got {type(itos).__name__}")
        repeated = next((t for t in set(itos) if itos.count(t) > 1), None) if len(set(itos)) != len(itos) else None
        if repeated is not None:
            raise ValueError(f"the token {repeated!r} is listed twice in 'itos'")
        return cls(itos, default_index=state.get("default_index"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary to ``path`` as JSON, atomically (a reader never sees half a file) and sealed with
        the sha256 of its content (:func:`llmcourse.files.write_json`)."""
        return write_json(path, self.to_dict(), sealed=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """Read a vocabulary written by :meth:`save`; a damaged or changed file is a ``ValueError`` naming it."""
        return read_json(path, cls.from_dict, "vocabulary", "save it again with Vocab.save, or build it again "
                         "from the data", sealed=True)


def build_vocab_from_iterator(
    iterator: Iterable[Iterable[str]],
    min_freq: int = 1,
    specials: Sequence[str] | None = None,
    special_first: bool = True,
    max_tokens: int | None = None,
) -> Vocab:
    """Build a :class:`Vocab` from an iterator of token lists, exactly as torchtext 0.18 did.

    Tokens are ordered by descending frequency, ties broken alphabetically; tokens seen fewer than
    ``min_freq`` times are dropped; ``specials`` are removed from the counts and placed first
    (``special_first=True``) or last, in the order given. ``max_tokens`` caps the size, specials
    included. No default index is set: call ``vocab.set_default_index(vocab["<unk>"])``.
    """
    if min_freq < 1:
        raise ValueError(f"min_freq must be at least 1, got {min_freq}.")
    counter: Counter[str] = Counter()
    for tokens in iterator:
        if isinstance(tokens, str):
            raise TypeError("build_vocab_from_iterator expects an iterator of token *lists*; got a "
                            f"string ({tokens[:30]!r}...). Tokenize each line first.")
        counter.update(tokens)
    specials = list(specials or [])
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    if max_tokens is not None:
        if len(specials) >= max_tokens:
            raise ValueError(f"max_tokens={max_tokens} leaves no room beside {len(specials)} specials.")
        # torchtext cuts before removing specials from the counts; keep that quirk for equality.
        ordered = ordered[: max_tokens - len(specials)]
    special_set = set(specials)
    tokens = [token for token, freq in ordered if freq >= min_freq and token not in special_set]
    tokens = specials + tokens if special_first else tokens + specials
    return Vocab(tokens)


def check_token_ids(ids, vocab_size: int | None, who: str) -> None:
    """Token ids must be integers in ``[0, vocab_size)``: say so here, instead of an ``IndexError`` deep in
    an embedding (:func:`llmcourse.checks.token_ids`, the one check of token ids)."""
    from .checks import token_ids

    token_ids(who, ids, vocab_size)
