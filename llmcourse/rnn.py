"""Recurrent language models (notebook 02): a from-scratch RNN and the ``RNNLM`` trained on WikiText-2.

The notebook builds the recurrence ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` in plain
cells, shows that :class:`ScratchRNN` equals ``torch.nn.RNN`` on the same weights, makes vanishing
gradients visible with :func:`grad_norms_through_time`, and then trains :class:`RNNLM` (an
embedding, dropout, a stacked RNN / LSTM / GRU, and a decoder: tied to the embedding, or an
adaptive softmax where a full softmax over 33,278 words is too slow, on a CPU) with the course's
shared loop, :func:`llmcourse.training.train`.

Shapes are batch first everywhere: ids ``(batch, time)``, hidden sequences ``(batch, time, hidden)``,
recurrent states ``(layers, batch, hidden)`` (a pair ``(h, c)`` of them for an LSTM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .exercises import Exercise
from .training import TrainConfig, lm_loss

__all__ = [
    "rnn_cell_step",
    "RNNCell",
    "ScratchRNN",
    "grad_norms_through_time",
    "detach_state",
    "RNNConfig",
    "RNNLM",
    "rnn_step_exercise",
    "detach_exercise",
    "Recipe",
    "wikitext2_recipe",
]

State = Any  # a Tensor (RNN, GRU), a pair of Tensors (LSTM), or None


# --------------------------------------------------------------------------------------------
# The recurrence from its equation
# --------------------------------------------------------------------------------------------
def rnn_cell_step(x_t: Tensor, h_prev: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """One step of an Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_prev W_hh^T + b_hh)``.

    ``x_t``: ``(batch, input)``; ``h_prev``: ``(batch, hidden)``; ``W_ih``: ``(hidden, input)``;
    ``W_hh``: ``(hidden, hidden)``; biases ``(hidden,)``. Returns ``h_t``: ``(batch, hidden)``.
    The two biases are kept apart only to match ``torch.nn.RNN``'s parameters one for one.
    """
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)


class RNNCell(nn.Module):
    """The from-scratch cell of notebook 02, with ``torch.nn.RNNCell``'s parameter names and init."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        bound = 1 / math.sqrt(hidden_size)  # PyTorch's init: U(-1/sqrt(hidden), 1/sqrt(hidden))
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x_t: Tensor, h_prev: Tensor) -> Tensor:
        """``x_t``: ``(batch, input)``, ``h_prev``: ``(batch, hidden)`` → ``h_t``: ``(batch, hidden)``."""
        return rnn_cell_step(x_t, h_prev, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class ScratchRNN(nn.Module):
    """A stack of :class:`RNNCell` unrolled over time with a Python loop: ``torch.nn.RNN(batch_first=True)``
    written out, slowly, so that every step can be seen.

    ``forward(x, h0)``: ``x`` ``(batch, time, input)``, ``h0`` ``(layers, batch, hidden)`` or None (zeros)
    → ``(outputs, h_n)``: the last layer's states ``(batch, time, hidden)`` and the final state of every
    layer ``(layers, batch, hidden)``, exactly as ``nn.RNN`` returns them.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.cells = nn.ModuleList(RNNCell(input_size if i == 0 else hidden_size, hidden_size)
                                   for i in range(num_layers))

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 3:
            raise ValueError(f"ScratchRNN expects x of shape (batch, time, input), got {tuple(x.shape)}.")
        batch, time, _ = x.shape
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, batch, self.hidden_size)
        layer_input, finals = x, []
        for layer, cell in enumerate(self.cells):
            h, outputs = h0[layer], []
            for t in range(time):
                h = cell(layer_input[:, t], h)
                outputs.append(h)
            layer_input = torch.stack(outputs, dim=1)
            finals.append(h)
        return layer_input, torch.stack(finals)

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> "ScratchRNN":
        """A :class:`ScratchRNN` holding a copy of the weights of a ``torch.nn.RNN`` (tanh, unidirectional)."""
        if rnn.nonlinearity != "tanh" or rnn.bidirectional or not rnn.bias or getattr(rnn, "proj_size", 0):
            raise ValueError("from_torch copies a unidirectional tanh nn.RNN with biases and no projection.")
        scratch = cls(rnn.input_size, rnn.hidden_size, rnn.num_layers)
        with torch.no_grad():
            for i, cell in enumerate(scratch.cells):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(rnn, f"{name}_l{i}"))
        return scratch


# --------------------------------------------------------------------------------------------
# Vanishing gradients, made visible
# --------------------------------------------------------------------------------------------
def grad_norms_through_time(rnn: nn.Module, seq_len: int = 50, batch: int = 16, seed: int = 0) -> Tensor:
    """How much the last state remembers of each input: ``||d h_T / d x_t||`` for ``t = 0..T-1``.

    ``rnn`` is a batch-first ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (or :class:`ScratchRNN`). Random inputs
    go in; the gradient of ``sum(h_T)`` with respect to each input ``x_t`` comes back, averaged over the
    batch. Returns a tensor ``(seq_len,)`` indexed by the *distance* ``T - 1 - t`` from the end:
    element 0 is the last input, element ``seq_len - 1`` the first.
    """
    generator = torch.Generator().manual_seed(seed)
    input_size = rnn.input_size if hasattr(rnn, "input_size") else rnn.cells[0].input_size
    x = torch.randn(batch, seq_len, input_size, generator=generator).requires_grad_(True)
    outputs, _ = rnn(x)
    outputs[:, -1].sum().backward()
    norms = x.grad.norm(dim=-1).mean(dim=0)  # (seq_len,)
    return norms.flip(0).detach()


def detach_state(state: State) -> State:
    """Cut a recurrent state from the graph that produced it (truncated BPTT): a tensor, a tuple of
    tensors (LSTM), or None. The values stay; gradients no longer flow into earlier windows."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


# --------------------------------------------------------------------------------------------
# The language model
# --------------------------------------------------------------------------------------------
_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class RNNConfig:
    """The whole :class:`RNNLM` in one line.

    ``adaptive_cutoffs`` switches the decoder from a full softmax over the vocabulary to
    ``nn.AdaptiveLogSoftmaxWithLoss`` with these cut-offs (frequent words in the head, rare words in
    smaller tail clusters; the vocabulary must be sorted by frequency, as ``wikitext2_vocab`` is).
    Weight tying needs the full softmax, and ``d_hidden == d_embed``.
    """

    vocab_size: int
    cell: str = "lstm"  # "rnn", "lstm" or "gru"
    d_embed: int = 256
    d_hidden: int = 256
    n_layers: int = 2
    dropout: float = 0.2  # on the embeddings, between layers and before the decoder
    tie_weights: bool = True
    adaptive_cutoffs: tuple[int, ...] | None = None
    adaptive_div_value: float = 4.0
    init_range: float = 0.1  # embedding and decoder weights ~ U(-init_range, init_range)

    def __post_init__(self) -> None:
        if self.cell not in _CELLS:
            raise ValueError(f"cell={self.cell!r}: choose one of {sorted(_CELLS)}.")
        if self.adaptive_cutoffs is not None:
            self.adaptive_cutoffs = tuple(int(c) for c in self.adaptive_cutoffs)  # JSON gives back a list
            if list(self.adaptive_cutoffs) != sorted(set(self.adaptive_cutoffs)) or not (
                    0 < self.adaptive_cutoffs[0] and self.adaptive_cutoffs[-1] < self.vocab_size):
                raise ValueError(f"adaptive_cutoffs={self.adaptive_cutoffs} must increase strictly, between 1 and "
                                 f"vocab_size - 1 = {self.vocab_size - 1}.")
            if self.tie_weights:
                raise ValueError("tie_weights=True needs the full softmax: the adaptive softmax has its own "
                                 "output projections. Set tie_weights=False or adaptive_cutoffs=None.")
        if self.tie_weights and self.d_hidden != self.d_embed:
            raise ValueError(f"Weight tying shares one (vocab, d) matrix between the embedding and the decoder: "
                             f"d_hidden={self.d_hidden} must equal d_embed={self.d_embed}.")
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {self.n_layers}.")


class RNNLM(nn.Module):
    """Embedding → dropout → stacked RNN / LSTM / GRU → dropout → decoder (notebook 02).

    ``forward(x, state)``: ids ``x`` ``(batch, time)`` and the state left by the previous window (None
    at the start) → ``(output, state)``. ``output`` is the logits ``(batch, time, vocab)`` with a full
    softmax, or the hidden features ``(batch, time, d_hidden)`` with an adaptive softmax; either way
    :meth:`loss_fn` turns it into the summed loss the training loop wants, and :meth:`log_probs` into
    log-probabilities over the vocabulary. ``stateful = True`` tells :func:`llmcourse.training.train`
    to carry the state from window to window and detach it.
    """

    config_class = RNNConfig
    stateful = True

    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_embed)
        self.drop = nn.Dropout(c.dropout)
        kwargs = {"nonlinearity": "tanh"} if c.cell == "rnn" else {}
        self.rnn = _CELLS[c.cell](c.d_embed, c.d_hidden, c.n_layers, batch_first=True,
                                  dropout=c.dropout if c.n_layers > 1 else 0.0, **kwargs)
        self.decoder: nn.Linear | None = None
        self.adaptive: nn.AdaptiveLogSoftmaxWithLoss | None = None
        if c.adaptive_cutoffs is not None:
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(c.d_hidden, c.vocab_size, list(c.adaptive_cutoffs),
                                                          div_value=c.adaptive_div_value)
        else:
            self.decoder = nn.Linear(c.d_hidden, c.vocab_size)
        self._init_weights()
        if c.tie_weights:
            self.decoder.weight = self.embed.weight  # one matrix: word vectors in and out

    def _init_weights(self) -> None:
        r = self.config.init_range
        nn.init.uniform_(self.embed.weight, -r, r)
        if self.decoder is not None:
            nn.init.uniform_(self.decoder.weight, -r, r)
            nn.init.zeros_(self.decoder.bias)

    def forward(self, x: Tensor, state: State = None) -> tuple[Tensor, State]:
        if x.dim() != 2:
            raise ValueError(f"RNNLM expects ids of shape (batch, time), got {tuple(x.shape)}; "
                             "add a batch dimension with x.unsqueeze(0).")
        hidden, state = self.rnn(self.drop(self.embed(x)), state)
        hidden = self.drop(hidden)
        if self.decoder is not None:
            return self.decoder(hidden), state
        return hidden, state

    def loss_fn(self, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The training loop's loss hook: summed negative log-likelihood of ``y`` ``(batch, time)``
        (positions holding -100 ignored) and the number of tokens scored."""
        if self.adaptive is None:
            return lm_loss(output, y)
        flat, targets = output.reshape(-1, output.size(-1)).float(), y.reshape(-1)
        keep = targets != -100
        if not bool(keep.all()):
            flat, targets = flat[keep], targets[keep]
        if targets.numel() == 0:
            return flat.sum() * 0.0, keep.sum()
        # .output is log P(target) under the full (adaptive) distribution: exact, not an approximation
        return -self.adaptive(flat, targets).output.sum(), keep.sum()

    def log_probs(self, output: Tensor) -> Tensor:
        """Log-probabilities over the whole vocabulary from :meth:`forward`'s output: ``(..., vocab)``."""
        if self.adaptive is None:
            return F.log_softmax(output.float(), dim=-1)
        flat = output.reshape(-1, output.size(-1)).float()
        return self.adaptive.log_prob(flat).view(*output.shape[:-1], self.config.vocab_size)

    def num_parameters(self) -> int:
        """Trainable parameters, a tied matrix counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------------
# Exercises
# --------------------------------------------------------------------------------------------
def _rnn_step_solution(x_t: Tensor, h_prev: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)


def _step_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    cases = []
    for batch, n_in, n_h in [(1, 3, 4), (5, 2, 3), (2, 8, 8)]:
        cases.append((torch.randn(batch, n_in, generator=g), torch.randn(batch, n_h, generator=g),
                      torch.randn(n_h, n_in, generator=g), torch.randn(n_h, n_h, generator=g),
                      torch.randn(n_h, generator=g), torch.randn(n_h, generator=g)))
    return cases


rnn_step_exercise = Exercise(
    title="one step of the RNN cell",
    task="""
    Write `my_rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh)` that returns the next hidden state
    h_t = tanh(W_ih x_t + b_ih + W_hh h_prev + b_hh) for a whole batch at once.
    Shapes: x_t (batch, input), h_prev (batch, hidden), W_ih (hidden, input), W_hh (hidden, hidden),
    biases (hidden,); the result is (batch, hidden).
    """,
    solution_fn=_rnn_step_solution,
    cases=_step_cases(),
    hint_text="With rows as batch items, W x becomes x @ W.T; the biases broadcast over the batch.",
)


def _detach_solution(state):
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)


def _describe_state(state) -> tuple:
    """What the detach checker compares: the values, and whether each tensor still has a graph."""
    tensors = [state] if isinstance(state, torch.Tensor) else list(state)
    return tuple((t.detach().clone(), t.requires_grad, t.grad_fn is None) for t in tensors)


def _detach_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(3)
    leaf = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    h = torch.tanh(leaf * 2)  # a state that came out of a computation: it has a grad_fn
    c = leaf.exp()
    return [(h,), ((h, c),)]


@dataclass(repr=False)
class _StateExercise(Exercise):
    """An exercise whose answer is a recurrent state: compared by value *and* by its link to the graph."""

    def check(self, answer: Callable, verbose: bool = True) -> bool:
        shadow = Exercise(self.title, self.task, lambda *a: _describe_state(self.solution_fn(*a)), self.cases)
        return shadow.check(lambda *a: _describe_state(answer(*a)), verbose)


detach_exercise = _StateExercise(
    title="detach the hidden state between windows",
    task="""
    Write `my_detach(state)`: the state an RNN hands to the next window of truncated BPTT. `state` is
    one tensor (RNN, GRU) or a tuple `(h, c)` of tensors (LSTM). Return the same values, in the same
    structure, cut from the graph of the previous window, so that backward() stops at the window's edge.
    """,
    solution_fn=_detach_solution,
    cases=_detach_cases(),
    hint_text="Tensor.detach() returns the same values without a grad_fn; treat a tuple element by element.",
)


# --------------------------------------------------------------------------------------------
# Recipes: the sizes notebook 02 and benchmarks/rnn_lm.py train on WikiText-2
# --------------------------------------------------------------------------------------------
@dataclass
class Recipe:
    """A model, a training configuration and the batching that goes with them."""

    model: RNNConfig
    train: TrainConfig
    batch_size: int  # rows of the batchified training stream
    bptt: int  # window length of truncated BPTT
    train_tokens: int | None = None  # use only the first tokens of the training stream (quick mode)
    # validation and test: rows of a batchified stream, windows of eval_bptt, the state carried across.
    # More rows mean fewer sequential steps (much faster on a CPU); batchify drops the last
    # n % rows tokens and each row's first token is not predicted: 63 of 217,646 tokens at most.
    eval_batch_size: int = 32
    eval_bptt: int = 70
    note: str = ""


def wikitext2_recipe(kind: str, vocab_size: int = 33_278) -> Recipe:
    """The course's recipes for an LSTM on WikiText-2 (notebook 02 and ``benchmarks/rnn_lm.py``).

    ``"quick"``: a tiny model on a slice of the data, seconds to a minute (CI).
    ``"cpu"``: what fits in a notebook under 15 minutes on 2 CPU cores: the output layer over 33,278
    words dominates the cost, so an adaptive softmax (untied) replaces the full softmax.
    ``"gpu"``: the classic tied 2-layer 650-unit LSTM with a full softmax and dropout 0.5.
    """
    if kind == "quick":
        return Recipe(
            RNNConfig(vocab_size, "lstm", d_embed=64, d_hidden=64, n_layers=1, dropout=0.1, tie_weights=False,
                      adaptive_cutoffs=(2_000, 10_000)),
            TrainConfig(max_steps=40, lr=3e-3, warmup_steps=10, eval_every=20, max_eval_batches=20,
                        log_every=10), batch_size=32, bptt=35, train_tokens=100_000,
            note="quick mode: a tiny LSTM on the first 100k training tokens")
    if kind == "cpu":
        return Recipe(
            RNNConfig(vocab_size, "lstm", d_embed=256, d_hidden=256, n_layers=2, dropout=0.2, tie_weights=False,
                      adaptive_cutoffs=(2_000, 10_000)),
            TrainConfig(max_steps=2_400, lr=3e-3, warmup_steps=50, weight_decay=0.01, eval_every=400,
                        log_every=25), batch_size=64, bptt=35,
            note="2 CPU cores: 2-layer 256-unit LSTM, adaptive softmax, about 2.6 epochs")
    if kind == "gpu":
        return Recipe(
            RNNConfig(vocab_size, "lstm", d_embed=650, d_hidden=650, n_layers=2, dropout=0.5, tie_weights=True),
            TrainConfig(epochs=25, lr=2e-3, warmup_steps=200, weight_decay=0.1, patience=3, log_every=50),
            batch_size=32, bptt=35,
            note="one GPU: tied 2-layer 650-unit LSTM (PyTorch word-language-model sizes), AdamW")
    raise ValueError(f"kind={kind!r}: choose 'quick', 'cpu' or 'gpu'.")
