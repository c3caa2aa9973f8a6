"""An RNN encoder–decoder, with and without attention, on a synthetic task (notebook 03).

Notebook 03 uses it to show why a fixed-size hidden state is a bottleneck: reversing a sequence is
trivial for a decoder that can look back at the source (attention), and gets harder with length
for one that only receives the encoder's final state.

Data flows as everywhere in the course: :class:`ReversalTask` generates pairs ``(source, target)``,
:meth:`ReversalTask.collate` packs a batch into ``x = [source, <sep>, target[:-1]]`` and
``y = target`` (padding: ``<pad>`` in ``x``, ``-100`` in ``y``), and :class:`Seq2Seq` maps ``x`` to the
logits of ``y``, so the course's one training loop (:func:`llmcourse.training.train`) trains it
unchanged: teacher forcing is simply the decoder reading the true previous tokens from ``x``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .attention import MultiHeadAttention

__all__ = ["PAD", "SEP", "EOS", "ReversalTask", "Seq2SeqConfig", "Seq2Seq", "accuracy_by_length"]

PAD, SEP, EOS = 0, 1, 2  # <sep> also starts the decoder: it is the decoder's "begin" token


@dataclass
class ReversalTask:
    """Reverse a random sequence of ``n_symbols`` letters of length ``min_len..max_len``.

    ``"c a b" -> "b a c <eos>"``. The vocabulary is ``<pad> <sep> <eos> a b c ...``.
    """

    n_symbols: int = 20
    min_len: int = 3
    max_len: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.n_symbols <= 26:
            raise ValueError(f"n_symbols={self.n_symbols}: choose 1 to 26 letters.")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"Lengths {self.min_len}..{self.max_len}: need 1 <= min_len <= max_len.")

    @property
    def itos(self) -> list[str]:
        return ["<pad>", "<sep>", "<eos>"] + [chr(ord("a") + i) for i in range(self.n_symbols)]

    @property
    def vocab_size(self) -> int:
        return 3 + self.n_symbols

    def target(self, source: Sequence[int]) -> list[int]:
        """The answer for ``source`` (ids), ending in ``<eos>``."""
        return list(reversed(source)) + [EOS]

    def sample(self, n: int, *, seed: int = 0, length: int | None = None) -> list[tuple[list[int], list[int]]]:
        """``n`` pairs ``(source ids, target ids)``; lengths uniform in ``min_len..max_len`` unless ``length``."""
        rng = random.Random(seed)
        pairs = []
        for _ in range(n):
            size = length if length is not None else rng.randint(self.min_len, self.max_len)
            source = [3 + rng.randrange(self.n_symbols) for _ in range(size)]
            pairs.append((source, self.target(source)))
        return pairs

    def decode(self, ids: Sequence[int] | Tensor) -> list[str]:
        """Ids to symbols, stopping after ``<eos>``; padding dropped."""
        words = []
        for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
            if i == PAD:
                continue
            words.append(self.itos[i])
            if i == EOS:
                break
        return words

    @staticmethod
    def collate(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> tuple[Tensor, Tensor]:
        """Pack a batch: ``x: (batch, S + T)`` = source padded to ``S``, then ``<sep>`` and the target
        without its last token, padded to ``T``; ``y: (batch, T)`` = the target, ``-100`` at padding."""
        s = max(len(src) for src, _ in pairs)
        t = max(len(tgt) for _, tgt in pairs)
        x = torch.full((len(pairs), s + t), PAD, dtype=torch.long)
        y = torch.full((len(pairs), t), -100, dtype=torch.long)
        for row, (src, tgt) in enumerate(pairs):
            x[row, : len(src)] = torch.tensor(src)
            x[row, s] = SEP
            x[row, s + 1: s + len(tgt)] = torch.tensor(tgt[:-1])
            y[row, : len(tgt)] = torch.tensor(tgt)
        return x, y

    def loader(self, n: int, batch_size: int = 64, *, seed: int = 0, shuffle: bool = True):
        """A ``DataLoader`` of ``n`` fresh pairs (seeded), batches ``(x, y)`` from :meth:`collate`."""
        pairs = self.sample(n, seed=seed)
        return torch.utils.data.DataLoader(pairs, batch_size=batch_size, shuffle=shuffle, collate_fn=self.collate,
                                           generator=torch.Generator().manual_seed(seed))


@dataclass
class Seq2SeqConfig:
    vocab_size: int
    d_embed: int = 32
    d_hidden: int = 64
    attention: bool = True  # the decoder attends over the encoder's states (else: final state only)
    n_heads: int = 1


class Seq2Seq(nn.Module):
    """A GRU encoder–decoder; with ``config.attention`` the decoder also attends to the encoder.

    Encoder: a bidirectional GRU over the source; its two final states, projected, start the
    decoder. Without attention that vector is all the decoder ever learns about the source. With
    attention (Luong-style), each decoder state ``s_t`` queries the encoder states through a
    :class:`~llmcourse.attention.MultiHeadAttention` (cross-attention, padding masked), and the
    next token is predicted from ``[s_t, context_t]``.

    ``forward(x: (batch, S + T)) -> logits (batch, T, vocab)`` with ``x`` packed by
    :meth:`ReversalTask.collate`; :meth:`generate` decodes greedily from a source alone.
    """

    config_class = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        d, h = config.d_embed, config.d_hidden
        self.embed = nn.Embedding(config.vocab_size, d, padding_idx=PAD)
        self.encoder = nn.GRU(d, h, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * h, h)
        self.decoder = nn.GRU(d, h, batch_first=True)
        self.cross_attention = (MultiHeadAttention(h, config.n_heads, kdim=2 * h, vdim=2 * h)
                                if config.attention else None)
        self.out = nn.Linear(2 * h if config.attention else h, config.vocab_size)

    @staticmethod
    def split(x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` packed as ``[source, <sep>, target[:-1]]`` -> ``(source (batch, S), decoder input (batch, T))``."""
        where = (x[0] == SEP).nonzero()
        if where.numel() == 0:
            raise ValueError("x holds no <sep> column: pack batches with ReversalTask.collate.")
        s = int(where[0])
        return x[:, :s], x[:, s:]

    def encode(self, source: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``source (batch, S)`` -> ``(memory (batch, S, 2 d_hidden), state (1, batch, d_hidden), mask (batch, S))``."""
        mask = source != PAD
        lengths = mask.sum(1)
        if int(lengths.min()) == 0:
            raise ValueError("An empty source: every example needs at least one token.")
        packed = pack_padded_sequence(self.embed(source), lengths.cpu(), batch_first=True, enforce_sorted=False)
        memory, final = self.encoder(packed)  # final: (2, batch, h), the last state of each direction
        memory, _ = pad_packed_sequence(memory, batch_first=True, total_length=source.shape[1])
        state = torch.tanh(self.bridge(torch.cat([final[0], final[1]], dim=-1)))[None]
        return memory, state, mask

    def decode(self, tokens: Tensor, state: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``tokens (batch, T)`` read by the decoder -> ``(logits (batch, T, vocab), new state)``."""
        s, state = self.decoder(self.embed(tokens), state)
        if self.cross_attention is not None:
            context, _ = self.cross_attention(s, memory, memory, padding_mask=mask)
            s = torch.cat([s, context], dim=-1)
        return self.out(s), state

    def forward(self, x: Tensor) -> Tensor:
        source, decoder_input = self.split(x)  # (batch, source_len), (batch, target_len)
        memory, state, mask = self.encode(source)  # memory: (batch, source_len, hidden)
        logits, _ = self.decode(decoder_input, state, memory, mask)  # (batch, target_len, vocab)
        return logits

    @torch.no_grad()
    def generate(self, source: Tensor, max_len: int | None = None) -> Tensor:
        """Greedy decoding: ``source (batch, S)`` -> ``(batch, max_len)`` ids; after ``<eos>``, ``<pad>``."""
        max_len = max_len or source.shape[1] + 1
        memory, state, mask = self.encode(source)
        token = torch.full((source.shape[0], 1), SEP, dtype=torch.long, device=source.device)
        done = torch.zeros(source.shape[0], dtype=torch.bool, device=source.device)
        out = []
        for _ in range(max_len):
            logits, state = self.decode(token, state, memory, mask)
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(token.masked_fill(done[:, None], PAD))
            done |= token[:, 0] == EOS
            if bool(done.all()):
                break
        result = torch.cat(out, dim=1)
        if result.shape[1] < max_len:
            result = torch.cat([result, result.new_full((result.shape[0], max_len - result.shape[1]), PAD)], 1)
        return result


@torch.no_grad()
def accuracy_by_length(model: Seq2Seq, task: ReversalTask, lengths: Sequence[int], n: int = 200, *,
                       seed: int = 1234, batch_size: int = 200) -> dict[int, dict[str, float]]:
    """Greedy-decoding accuracy for each source length: ``{length: {"sequence": exact-match share,
    "token": share of target positions (with <eos>) right}}``, on ``n`` fresh examples per length."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    result = {}
    try:
        for length in lengths:
            pairs = task.sample(n, seed=seed + length, length=length)
            exact = correct = total = 0
            for start in range(0, n, batch_size):
                chunk = pairs[start: start + batch_size]
                source = torch.tensor([src for src, _ in chunk], device=device)
                target = torch.tensor([tgt for _, tgt in chunk], device=device)
                guess = model.generate(source, max_len=target.shape[1])
                hits = guess == target
                exact += int(hits.all(1).sum())
                correct += int(hits.sum())
                total += hits.numel()
            result[length] = {"sequence": exact / n, "token": correct / total}
    finally:
        model.train(was_training)
    return result
