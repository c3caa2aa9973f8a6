"""Recurrent language models (notebook 02): a from-scratch RNN and the ``RNNLM`` trained on WikiText-2.

The notebook builds the recurrence ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` in plain
cells, shows that :class:`ScratchRNN` equals ``torch.nn.RNN`` on the same weights, makes vanishing
gradients visible with :func:`grad_norms_through_time`, writes the LSTM from its gate equations
(:func:`lstm_cell_step`, :class:`ScratchLSTM`, equal to ``torch.nn.LSTM``), shows the forget-gate bias
(:func:`set_forget_bias`) as the lever on how far back its gradient reaches, and then trains :class:`RNNLM` (an
embedding, dropout, a stacked RNN / LSTM / GRU, and a decoder: tied to the embedding, or an
adaptive softmax where a full softmax over 33,278 words is too slow, on a CPU: the
:class:`llmcourse.heads.OutputLayer` that the Transformer of notebook 04 shares) with the course's
shared loop, :func:`llmcourse.training.train`. Its recipes live in :mod:`llmcourse.recipes`.

Shapes are batch first everywhere: ids ``(batch, time)``, hidden sequences ``(batch, time, hidden)``,
recurrent states ``(layers, batch, hidden)`` (a pair ``(h, c)`` of them for an LSTM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .heads import OutputLayer, check_cutoffs
from .protocols import detach_state  # noqa: F401  (rnn.detach_state: where notebook 02 teaches it)
from .text import check_token_ids

__all__ = [
    "rnn_cell_step",
    "RNNCell",
    "ScratchRNN",
    "lstm_cell_step",
    "LSTMCell",
    "ScratchLSTM",
    "forget_bias",
    "set_forget_bias",
    "grad_norms_through_time",
    "detach_state",
    "RNNConfig",
    "RNNLM",
]

State = Any  # a Tensor (RNN, GRU), a pair of Tensors (LSTM), or None


def _copy_layers(scratch: nn.Module, torch_rnn: nn.RNNBase) -> nn.Module:
    """Copy layer ``i`` of a ``torch.nn`` recurrent network into ``scratch.cells[i]`` (same parameter names)."""
    with torch.no_grad():
        for i, cell in enumerate(scratch.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(torch_rnn, f"{name}_l{i}"))
    return scratch


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
        return _copy_layers(scratch, rnn)


# --------------------------------------------------------------------------------------------
# The LSTM from its gate equations
# --------------------------------------------------------------------------------------------
def lstm_cell_step(x_t: Tensor, h_prev: Tensor, c_prev: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor,
                   b_hh: Tensor) -> tuple[Tensor, Tensor]:
    """One step of an LSTM, from its gate equations (notebook 02, section 3).

    The four gates' weights are stacked as PyTorch stacks them in ``nn.LSTM.weight_ih_l0``: rows
    ``0:H`` the input gate ``i``, ``H:2H`` the forget gate ``f``, ``2H:3H`` the candidate cell ``g``,
    ``3H:4H`` the output gate ``o``::

        i, f, o = sigmoid(x_t W_i·^T + b_i· + h_prev W_h·^T + b_h·)      g: the same with tanh
        c_t = f * c_prev + i * g,   h_t = o * tanh(c_t)

    ``x_t``: ``(batch, input)``; ``h_prev``, ``c_prev``: ``(batch, H)``; ``W_ih``: ``(4H, input)``;
    ``W_hh``: ``(4H, H)``; biases ``(4H,)``. Returns ``(h_t, c_t)``, each ``(batch, H)``.
    """
    gates = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh  # (batch, 4H): all four gates in one product
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_t = f * c_prev + i * g
    h_t = o * torch.tanh(c_t)
    return h_t, c_t


class LSTMCell(nn.Module):
    """The from-scratch LSTM cell of notebook 02, with ``torch.nn.LSTMCell``'s parameter names, shapes and init.

    ``forward(x_t, (h_prev, c_prev))`` → ``(h_t, c_t)``, shapes as in :func:`lstm_cell_step`.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        bound = 1 / math.sqrt(hidden_size)  # PyTorch's init: U(-1/sqrt(hidden), 1/sqrt(hidden)), biases too
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h_prev, c_prev = state
        return lstm_cell_step(x_t, h_prev, c_prev, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class ScratchLSTM(nn.Module):
    """A stack of :class:`LSTMCell` unrolled over time with a Python loop: ``torch.nn.LSTM(batch_first=True)``
    written out.

    ``forward(x, state)``: ``x`` ``(batch, time, input)``, ``state`` a pair ``(h0, c0)`` of
    ``(layers, batch, hidden)`` tensors or None (zeros) → ``(outputs, (h_n, c_n))``: the last layer's
    hidden states ``(batch, time, hidden)`` and the final ``h`` and ``c`` of every layer, exactly as
    ``nn.LSTM`` returns them. No dropout between layers: it equals an ``nn.LSTM`` with dropout in eval mode.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.cells = nn.ModuleList(LSTMCell(input_size if i == 0 else hidden_size, hidden_size)
                                   for i in range(num_layers))

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if x.dim() != 3:
            raise ValueError(f"ScratchLSTM expects x of shape (batch, time, input), got {tuple(x.shape)}.")
        batch, time, _ = x.shape
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        layer_input, final_h, final_c = x, [], []
        for layer, cell in enumerate(self.cells):
            h, c, outputs = h0[layer], c0[layer], []
            for t in range(time):
                h, c = cell(layer_input[:, t], (h, c))
                outputs.append(h)
            layer_input = torch.stack(outputs, dim=1)
            final_h.append(h)
            final_c.append(c)
        return layer_input, (torch.stack(final_h), torch.stack(final_c))

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> "ScratchLSTM":
        """A :class:`ScratchLSTM` holding a copy of the weights of a ``torch.nn.LSTM`` (unidirectional, with
        biases, no projection)."""
        if lstm.bidirectional or not lstm.bias or getattr(lstm, "proj_size", 0):
            raise ValueError("from_torch copies a unidirectional nn.LSTM with biases and no projection.")
        scratch = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers)
        return _copy_layers(scratch, lstm)


def _lstm_bias_pairs(lstm: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """The ``(bias_ih, bias_hh)`` of every layer of an ``nn.LSTM`` / ``nn.LSTMCell`` / :class:`ScratchLSTM`."""
    if isinstance(lstm, nn.LSTM):
        if lstm.bidirectional or not lstm.bias:
            raise ValueError("forget-gate biases: give a unidirectional nn.LSTM with biases.")
        return [(getattr(lstm, f"bias_ih_l{k}"), getattr(lstm, f"bias_hh_l{k}")) for k in range(lstm.num_layers)]
    if isinstance(lstm, (nn.LSTMCell, LSTMCell)):
        return [(lstm.bias_ih, lstm.bias_hh)]
    if isinstance(lstm, ScratchLSTM):
        return [(cell.bias_ih, cell.bias_hh) for cell in lstm.cells]
    raise TypeError(f"forget-gate biases: expected an nn.LSTM, nn.LSTMCell or ScratchLSTM, got {type(lstm).__name__}.")


def forget_bias(lstm: nn.Module) -> Tensor:
    """The forget gate's total bias ``b_if + b_hf`` of every layer and unit: ``(layers, hidden)``.

    PyTorch keeps two biases per gate; only their sum matters. Its default init draws each from
    ``U(-1/sqrt(hidden), 1/sqrt(hidden))``, so the forget gate starts near ``sigmoid(0) = 0.5``.
    """
    rows = []
    for b_ih, b_hh in _lstm_bias_pairs(lstm):
        hidden = b_ih.numel() // 4
        rows.append((b_ih[hidden:2 * hidden] + b_hh[hidden:2 * hidden]).detach())
    return torch.stack(rows)


def set_forget_bias(lstm: nn.Module, value: float) -> nn.Module:
    """Set the forget gate's total bias to ``value`` in every layer (``bias_ih``'s forget slice to ``value``,
    ``bias_hh``'s to 0) and return the module. A bias of 1 (Gers et al. 2000; Jozefowicz et al. 2015)
    starts the gate near ``sigmoid(1) = 0.73``: the memory is kept, and the gradient reaches further back."""
    with torch.no_grad():
        for b_ih, b_hh in _lstm_bias_pairs(lstm):
            hidden = b_ih.numel() // 4
            b_ih[hidden:2 * hidden].fill_(value)
            b_hh[hidden:2 * hidden].zero_()
    return lstm


# --------------------------------------------------------------------------------------------
# Vanishing gradients, made visible
# --------------------------------------------------------------------------------------------
def grad_norms_through_time(rnn: nn.Module, seq_len: int = 50, batch: int = 16, seed: int = 0) -> Tensor:
    """How much the last state remembers of each input: ``||d h_T / d x_t||`` for ``t = 0..T-1``.

    ``rnn`` is a batch-first ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (or :class:`ScratchRNN`, :class:`ScratchLSTM`). Random inputs
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
        self.adaptive_cutoffs = check_cutoffs(self.adaptive_cutoffs, self.vocab_size, self.tie_weights)
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
    max_context = None  # it reads any length, carrying its state (llmcourse.protocols.LanguageModel)

    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_embed)
        self.drop = nn.Dropout(c.dropout)
        kwargs = {"nonlinearity": "tanh"} if c.cell == "rnn" else {}
        self.rnn = _CELLS[c.cell](c.d_embed, c.d_hidden, c.n_layers, batch_first=True,
                                  dropout=c.dropout if c.n_layers > 1 else 0.0, **kwargs)
        self.head = OutputLayer(c.d_hidden, c.vocab_size, c.adaptive_cutoffs, div_value=c.adaptive_div_value,
                                tie_to=self.embed if c.tie_weights else None)
        self._init_weights()

    def _init_weights(self) -> None:
        r = self.config.init_range
        nn.init.uniform_(self.embed.weight, -r, r)  # the tied decoder too: it is the same matrix
        if self.head.linear is not None:
            if not self.config.tie_weights:
                nn.init.uniform_(self.head.linear.weight, -r, r)
            nn.init.zeros_(self.head.linear.bias)

    def forward(self, x: Tensor, state: State = None) -> tuple[Tensor, State]:
        if x.dim() != 2:
            raise ValueError(f"RNNLM expects ids of shape (batch, time), got {tuple(x.shape)}; "
                             "add a batch dimension with x.unsqueeze(0).")
        check_token_ids(x, self.config.vocab_size, "RNNLM")
        hidden, state = self.rnn(self.drop(self.embed(x)), state)
        return self.head(self.drop(hidden)), state

    def loss_fn(self, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The training loop's loss hook: summed negative log-likelihood of ``y`` ``(batch, time)``
        (positions holding -100 ignored) and the number of tokens scored."""
        return self.head.loss(output, y)

    def log_probs(self, output: Tensor) -> Tensor:
        """Log-probabilities over the whole vocabulary from :meth:`forward`'s output: ``(..., vocab)``."""
        return self.head.log_probs(output)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Trainable parameters, a tied matrix counted once; ``non_embedding`` leaves out the embedding and an
        untied full-softmax matrix, as :meth:`llmcourse.transformer.TransformerLM.num_parameters` does."""
        n = sum(p.numel() for p in self.parameters() if p.requires_grad)
        if non_embedding:
            n -= self.embed.weight.numel()
            if not self.config.tie_weights and self.head.linear is not None:
                n -= self.head.linear.weight.numel()
        return n
