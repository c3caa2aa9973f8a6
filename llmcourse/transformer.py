"""A GPT-style Transformer language model (notebook 04), and its way into Hugging Face ``transformers``.

The notebook assembles a decoder-only Transformer from the attention of notebook 03
(:class:`llmcourse.attention.MultiHeadAttention`, the one place attention lives):

* token embeddings plus positions, learned (GPT-2) or sinusoidal (:func:`sinusoidal_encoding`,
  "Attention is all you need"), because attention alone does not know the order of its inputs
  (``positional="none"`` leaves them out, for the experiment of notebook 04's exercises);
* :class:`TransformerBlock`: pre-LN, ``x + Attention(LN(x))`` then ``x + FFN(LN(x))``, with causal
  multi-head self-attention, a position-wise feed-forward network with GELU (the tanh approximation
  GPT-2 uses, :func:`gelu_tanh`) and dropout on the residual branches; layer normalisation is
  :func:`layer_norm`'s formula (computed by ``nn.LayerNorm``). ``norm_first=False`` builds the
  post-LN block of the original Transformer instead, for notebook 04's comparison;
* :class:`TransformerLM`: the blocks, a final layer norm and an output layer: a full softmax tied to
  the embedding (GPT-2), or the adaptive softmax of notebook 02 (:class:`llmcourse.heads.OutputLayer`,
  the same output layer as the LSTM's), which makes a small model several times faster on a CPU.

It is trained with the course's shared loop (:func:`llmcourse.training.train`), decoded with the
shared helpers (:func:`llmcourse.decoding.generate`, which slides a window of ``max_context`` ids),
and, with a full softmax, being weight for weight a GPT-2, exported to
``transformers.GPT2LMHeadModel`` with :func:`to_gpt2` (and back with :func:`from_gpt2`), both in
:mod:`llmcourse.interop`. The sizes
that notebook 04 and the benchmarks train on WikiText-2 live in :mod:`llmcourse.recipes`.

Notebook 06 turns the same model into a Llama-style one, each change an option of
:class:`TransformerConfig` written from its formula (``TransformerConfig.llama(vocab_size)`` sets them all):

* rotary position embeddings (``positional="rope"``, :func:`rope_tables`, :func:`apply_rope`): queries
  and keys are rotated by an angle that grows with their position, so attention scores depend on
  relative positions only, and nothing is added to the embeddings;
* RMSNorm (``norm="rmsnorm"``, :func:`rms_norm`, :class:`RMSNorm`) instead of LayerNorm;
* the SwiGLU feed-forward network (``ffn="swiglu"``, :class:`SwiGLU`) instead of GELU's;
* grouped-query attention (``n_kv_heads`` below ``n_heads``, in :class:`SelfAttention`) and linear
  layers without biases (``bias=False``);
* a key-value cache (:class:`KVCache`, ``model(ids, cache=model.new_cache())``), which
  :func:`llmcourse.decoding.generate` uses with ``use_cache=True``; its memory is
  :func:`kv_cache_bytes`.

Such a model is weight for weight a ``transformers.LlamaForCausalLM``: :func:`to_llama` exports it and
:func:`from_llama` brings one back.

Shapes are batch first: ids ``(batch, time)``, hidden states ``(batch, time, d_model)``, logits
``(batch, time, vocab)``; inside attention ``(batch, heads, time, d_head)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import MultiHeadAttention, scaled_dot_product_attention
from .heads import OutputLayer, check_cutoffs, output_layer_size
from .text import check_token_ids

__all__ = [
    "layer_norm",
    "gelu_tanh",
    "rms_norm",
    "RMSNorm",
    "sinusoidal_encoding",
    "rope_tables",
    "rotate_half",
    "apply_rope",
    "TransformerConfig",
    "FeedForward",
    "SwiGLU",
    "KVCache",
    "SelfAttention",
    "TransformerBlock",
    "TransformerLM",
    "parameter_counts",
    "model_flops_per_token",
    "kv_cache_bytes",
    "to_gpt2",
    "from_gpt2",
    "to_llama",
    "from_llama",
]


# --------------------------------------------------------------------------------------------
# The two element-wise pieces of a block, from their formulas
# --------------------------------------------------------------------------------------------
def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation from its formula (Ba et al. 2016), over the last dimension of ``x``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, with the mean and the *biased* variance
    (divided by ``d``, not ``d - 1``) of each vector's ``d`` features, and a learned gain ``weight``
    and shift ``bias`` of shape ``(d,)``. Equal to ``nn.LayerNorm(d, eps=eps)`` on the same gain and
    shift (notebook 04, section 2, and its test). ``(..., d) -> (..., d)``.
    """
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased: divide by d
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def gelu_tanh(x: Tensor) -> Tensor:
    """GELU with the tanh approximation (Hendrycks & Gimpel 2016), GPT-2's ``gelu_new``.

    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, an approximation of the exact
    ``x Φ(x) = 0.5 x (1 + erf(x / sqrt 2))``; equal to ``F.gelu(x, approximate="tanh")``
    (notebook 04, section 2, and its test).
    """
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """Root-mean-square normalisation from its formula (Zhang & Sennrich 2019), over the last dimension.

    ``y = x / sqrt(mean(x²) + eps) * weight``: layer normalisation without subtracting the mean and
    without a shift, so each vector is rescaled to a unit root mean square and never recentred
    (Llama's norm: cheaper, and as good in practice). ``weight`` is the learned gain, ``(d,)``.
    The mean of squares is taken in float32 whatever the dtype of ``x``, as Llama does, since squares
    overflow float16 above 256. Equal to ``torch.nn.RMSNorm(d, eps=eps)`` and to ``transformers``'
    ``LlamaRMSNorm`` on the same gain (notebook 06, and its test). ``(..., d) -> (..., d)``.
    """
    y = x.float()
    y = y * torch.rsqrt(y.pow(2).mean(dim=-1, keepdim=True) + eps)
    y = y.to(x.dtype)
    return y if weight is None else weight * y


class RMSNorm(nn.Module):
    """:func:`rms_norm` as a layer with a learned gain (initialised to ones): ``(..., d) -> (..., d)``."""

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


# --------------------------------------------------------------------------------------------
# Positions
# --------------------------------------------------------------------------------------------
def sinusoidal_encoding(max_len: int, d_model: int) -> Tensor:
    """The fixed positional encoding of Vaswani et al. (2017): ``(max_len, d_model)``.

    ``PE[pos, 2i] = sin(pos / 10000^(2i/d))`` and ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d))``: each pair
    of features is a clock turning at its own speed, from one turn every 2π positions down to one turn
    every 10000·2π. Added to the token embeddings (notebook 04).
    """
    if max_len < 1 or d_model < 2 or d_model % 2:
        raise ValueError(f"sinusoidal_encoding({max_len}, {d_model}): max_len must be >= 1 and d_model even.")
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * inv_freq)
    pe[:, 1::2] = torch.cos(position * inv_freq)
    return pe


def rope_tables(max_len: int, d_head: int, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    """The cosines and sines of rotary position embeddings (RoPE, Su et al. 2021): two ``(max_len, d_head)`` tables.

    RoPE turns the features of a query or key at position ``m`` in pairs, pair ``i`` by the angle
    ``m · theta^(-2i/d_head)`` (``i = 0 .. d_head/2 - 1``): each pair is a clock turning at its own speed,
    like :func:`sinusoidal_encoding`'s, but the clock rotates the vector instead of being added to it.
    Pair ``i`` is features ``i`` and ``i + d_head/2`` (the two halves of the head, the layout of
    ``transformers``' Llama, so that its weights need no permutation), hence each angle appears twice
    in a row of the tables. Applied by :func:`apply_rope` (notebook 06).
    """
    if max_len < 1 or d_head < 2 or d_head % 2:
        raise ValueError(f"rope_tables({max_len}, {d_head}): RoPE turns features in pairs, so d_head must be even "
                         "(and max_len >= 1).")
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.float32) / d_head))  # (d_head/2,)
    angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (max_len, d_head/2)
    angles = torch.cat([angles, angles], dim=-1)  # feature i and feature i + d_head/2 turn together
    return angles.cos(), angles.sin()


def rotate_half(x: Tensor) -> Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension: each pair ``(x_i, x_{i+d/2})``
    turned by a quarter turn. ``(..., d) -> (..., d)``."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate every feature pair of ``x`` by its position's angle: ``x · cos + rotate_half(x) · sin``.

    For the pair ``(a, b) = (x_i, x_{i+d/2})`` this is ``(a cos θ - b sin θ, b cos θ + a sin θ)``, a
    rotation by θ. Since rotations compose, the dot product of a query rotated to position ``m`` and a
    key rotated to position ``n`` depends on ``m - n`` only: attention sees relative positions, and
    the length of every vector is unchanged. ``x``: ``(batch, heads, time, d_head)``; ``cos``, ``sin``:
    ``(time, d_head)``, the rows of :func:`rope_tables` for these positions (notebook 06).
    """
    return x * cos + rotate_half(x) * sin


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
@dataclass
class TransformerConfig:
    """The whole :class:`TransformerLM` in one line (nanoGPT's ``GPTConfig``, GPT-2's sizes by other names).

    ``max_context`` is the longest input the model reads (GPT-2's ``n_positions``). ``d_ff`` is the
    feed-forward network's hidden size: by default ``4 * d_model`` with GELU, and ``8/3 * d_model``
    (rounded up to a multiple of 8) with SwiGLU, whose three matrices then hold as many parameters as
    GELU's two (Llama's choice). ``dropout`` acts on the embeddings and on each residual branch,
    ``attn_dropout`` on the attention weights. ``positional``: ``"learned"`` (GPT-2, exportable as is),
    ``"sinusoidal"`` (fixed, for teaching; exported as a copy of the table), ``"none"`` (no position
    vectors at all, for notebook 04's experiment; exported as a table of zeros) or ``"rope"`` (rotary
    embeddings of queries and keys, base ``rope_theta``, notebook 06; nothing is added to the
    embeddings). ``causal=False`` removes the causal mask: only to show the bug in notebook 04, never to
    train a language model. ``norm_first=False`` makes every block post-LN (the original Transformer's
    order, ``LN(x + Attention(x))``) instead of GPT-2's pre-LN, for notebook 04's comparison; it cannot be
    exported. ``adaptive_cutoffs`` swaps the tied full softmax for an adaptive softmax (as in
    :class:`llmcourse.rnn.RNNConfig`; needs ``tie_weights=False``, and cannot be exported).

    Notebook 06's options: ``norm`` (``"layernorm"`` or ``"rmsnorm"``; its epsilon is
    ``layer_norm_eps`` either way), ``ffn`` (``"gelu"`` or ``"swiglu"``), ``n_kv_heads`` (grouped-query
    attention: that many key/value heads, each shared by ``n_heads // n_kv_heads`` query heads; None
    means ``n_heads``, plain multi-head attention) and ``bias`` (False: no bias in any linear layer, as
    in Llama; the layer norms keep theirs). :meth:`llama` sets them the Llama way. The defaults are
    GPT-2's block, exactly.
    """

    vocab_size: int
    max_context: int = 128
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int | None = None
    dropout: float = 0.1
    attn_dropout: float = 0.1
    positional: str = "learned"
    tie_weights: bool = True
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    causal: bool = True
    adaptive_cutoffs: tuple[int, ...] | None = None
    adaptive_div_value: float = 4.0
    norm_first: bool = True
    norm: str = "layernorm"
    ffn: str = "gelu"
    n_kv_heads: int | None = None
    bias: bool = True
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name, choices in (("positional", ("learned", "sinusoidal", "none", "rope")),
                              ("norm", ("layernorm", "rmsnorm")), ("ffn", ("gelu", "swiglu"))):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r}: choose one of {', '.join(map(repr, choices))}.")
        if self.d_ff is None:
            # SwiGLU: 8d/3 rounded up to a multiple of 8, so that 3 d d_ff is about GELU's 2 d (4d)
            self.d_ff = 4 * self.d_model if self.ffn == "gelu" else 8 * math.ceil(self.d_model / 3)
        self.adaptive_cutoffs = check_cutoffs(self.adaptive_cutoffs, self.vocab_size, self.tie_weights)
        for name in ("vocab_size", "max_context", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}: each head gets "
                             "d_model // n_heads features, so pick n_heads among the divisors of d_model.")
        if self.n_kv_heads is not None and (self.n_kv_heads < 1 or self.n_heads % self.n_kv_heads):
            raise ValueError(f"n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}: in grouped-query "
                             "attention each key/value head serves the same number of query heads, so pick "
                             f"n_kv_heads among the divisors of {self.n_heads} (or None for one per query head).")
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"Sinusoidal positions pair sines and cosines: d_model={self.d_model} must be even.")
        if self.positional == "rope" and self.d_head % 2:
            raise ValueError(f"RoPE rotates each head's features in pairs, but d_model // n_heads = {self.d_model} // "
                             f"{self.n_heads} = {self.d_head} is odd. Pick d_model and n_heads that give an even "
                             "head size.")
        if self.positional == "rope" and not (math.isfinite(self.rope_theta) and self.rope_theta > 0):
            raise ValueError(f"rope_theta, the base of RoPE's angles, must be a positive number (Llama: 10000 or "
                             f"500000), got {self.rope_theta}.")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")

    @property
    def d_head(self) -> int:
        """Features per attention head: ``d_model // n_heads``."""
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads: ``n_kv_heads``, or ``n_heads`` when it is None (no grouping)."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @classmethod
    def llama(cls, vocab_size: int, **overrides) -> "TransformerConfig":
        """A Llama-style model in one line (notebook 06): rotary positions, RMSNorm, SwiGLU, no biases in
        the linear layers and no dropout (Llama trains without it); every other field as in
        :class:`TransformerConfig`, and any field can be overridden, e.g.
        ``TransformerConfig.llama(vocab_size, d_model=128, n_heads=4, n_kv_heads=2)``. Exported with
        :func:`to_llama` (which refuses the overrides Llama has no counterpart for, such as
        ``norm_first=False``)."""
        llama = dict(positional="rope", norm="rmsnorm", ffn="swiglu", bias=False, dropout=0.0, attn_dropout=0.0)
        return cls(vocab_size, **{**llama, **overrides})


class FeedForward(nn.Module):
    """The position-wise feed-forward network: ``Linear(d, d_ff) → GELU → Linear(d_ff, d) → dropout``.

    The same two-layer network is applied to every position on its own (GPT-2's ``mlp``: ``c_fc``,
    ``gelu_new`` = GELU with the tanh approximation, ``c_proj``). ``(..., d_model) → (..., d_model)``.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.act = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # x: (batch, time, d_model)
        hidden = self.act(self.fc(x))  # (batch, time, d_ff)
        return self.drop(self.proj(hidden))  # (batch, time, d_model)


class SwiGLU(nn.Module):
    """Llama's gated feed-forward network (Shazeer 2020, "GLU variants improve Transformer").

    ``SwiGLU(x) = W_down (silu(W_gate x) ⊙ W_up x)``, with ``silu(z) = z · sigmoid(z)`` (the swish):
    one projection to ``d_ff`` features is passed through silu and gates, feature by feature, a second
    one, and a third projects back to ``d_model``. Three ``nn.Linear`` named as in ``transformers``'
    ``LlamaMLP`` (``gate_proj``, ``up_proj``, ``down_proj``), without biases in Llama (``bias=False``);
    dropout on the output as in :class:`FeedForward`. ``(..., d_model) → (..., d_model)`` (notebook 06).
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # x: (batch, time, d_model)
        gated = F.silu(self.gate_proj(x)) * self.up_proj(x)  # (batch, time, d_ff)
        return self.drop(self.down_proj(gated))  # (batch, time, d_model)


class KVCache:
    """One attention layer's keys and values for every position it has read so far (notebook 06).

    Without a cache, generating a token re-reads the whole sequence, recomputing keys and values that
    have not changed (in a causal model a position never sees the ones after it). With one, the model
    reads only the new token: :meth:`update` appends its keys and values ``(batch, kv_heads, new,
    d_head)`` and returns those of every position so far, ``(batch, kv_heads, length, d_head)``. Keys
    are kept after their rotation (RoPE), so each is computed once. A model's cache is one of these
    per layer: :meth:`TransformerLM.new_cache`.
    """

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    @property
    def length(self) -> int:
        """How many positions the cache holds."""
        return 0 if self.keys is None else self.keys.size(2)

    @property
    def nbytes(self) -> int:
        """The memory the keys and values take (compare :func:`kv_cache_bytes`)."""
        return 0 if self.keys is None else self.keys.nbytes + self.values.nbytes

    def update(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new positions' ``keys`` and ``values`` and return all of them."""
        if self.keys is not None:
            keys, values = torch.cat([self.keys, keys], dim=2), torch.cat([self.values, values], dim=2)
        self.keys, self.values = keys, values
        return keys, values

    def __repr__(self) -> str:
        shape = None if self.keys is None else tuple(self.keys.shape)
        return f"KVCache(length={self.length}, keys={shape})"


class SelfAttention(MultiHeadAttention):
    """A decoder block's self-attention: :class:`llmcourse.attention.MultiHeadAttention` (notebook 03),
    plus what a modern LLM adds to it (notebook 06).

    * ``rope=(cos, sin)``: the queries and keys are rotated by their positions (:func:`apply_rope`)
      after the projections, before the scores;
    * ``n_kv_heads < n_heads``: grouped-query attention (Ainslie et al. 2023): the keys and values have
      ``n_kv_heads`` heads, each shared by ``n_heads // n_kv_heads`` consecutive query heads, which
      shrinks the key/value projections and the cache by that factor;
    * ``cache``: a :class:`KVCache`; the new positions' keys and values are appended to it and the
      queries attend to all of them.

    With ``n_kv_heads == n_heads`` the q/k/v projection is one fused matrix (GPT-2's ``c_attn``),
    otherwise three (``q_proj``, ``k_proj``, ``v_proj``, Llama's); the loaders and
    :meth:`qkv_weight` of :class:`MultiHeadAttention` serve both.
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, *, dropout: float = 0.0,
                 bias: bool = True):
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_kv_heads < 1 or n_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads={n_kv_heads} must divide n_heads={n_heads} (each key/value head serves "
                             "the same number of query heads).")
        super().__init__(d_model, n_heads, dropout=dropout, bias=bias, fused_qkv=n_kv_heads == n_heads)
        self.n_kv_heads = n_kv_heads
        if n_kv_heads != n_heads:  # fewer key/value heads: narrower key and value projections
            self.k_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)
            self.v_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_kv_heads={self.n_kv_heads}"

    def forward(self, x: Tensor, *, is_causal: bool = True, rope: tuple[Tensor, Tensor] | None = None,
                cache: KVCache | None = None, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """``x: (batch, time, d_model)`` → ``(output: (batch, time, d_model), weights)``.

        ``rope``: ``(cos, sin)``, each ``(time, d_head)``, the rotations of these positions. With
        ``cache`` the queries also see the ``cache.length`` earlier positions, so ``weights`` (None
        unless ``need_weights``) is ``(batch, heads, time, cache.length + time)``.
        """
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"SelfAttention takes (batch, time, {self.d_model}) hidden states, got {tuple(x.shape)}.")
        batch, t, _ = x.shape
        q, k, v = self._project(x, x, x)
        q = q.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)  # (batch, heads, time, d_head)
        k = k.unflatten(-1, (self.n_kv_heads, self.d_head)).transpose(1, 2)  # (batch, kv_heads, time, d_head)
        v = v.unflatten(-1, (self.n_kv_heads, self.d_head)).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(k, v)  # now every position so far: (batch, kv_heads, length, d_head)
        if self.n_kv_heads != self.n_heads:  # each key/value head serves a group of consecutive query heads
            groups = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        want = need_weights or self.capture
        out, weights = scaled_dot_product_attention(q, k, v, is_causal=is_causal, need_weights=want,
                                                    dropout_p=self.dropout if self.training else 0.0)
        if self.capture:
            self.last_weights = weights.detach()
        # out: (batch, heads, time, d_head) -> (batch, time, heads * d_head = d_model)
        out = self.out_proj(out.transpose(1, 2).reshape(batch, t, self.d_model))
        return out, (weights if need_weights else None)


def _norm(c: TransformerConfig) -> nn.Module:
    if c.norm == "layernorm":
        return nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
    return RMSNorm(c.d_model, eps=c.layer_norm_eps)


class TransformerBlock(nn.Module):
    """One pre-LN decoder block: ``x = x + Dropout(Attention(LN1(x)))``, then ``x = x + FFN(LN2(x))``.

    Pre-LN (layer norm *inside* each residual branch, as in GPT-2) keeps an untouched identity path
    from the input to the output of the whole stack (the residual stream). With
    ``config.norm_first=False`` the block is post-LN, as in the original Transformer and BERT:
    ``x = LN1(x + Dropout(Attention(x)))``, then ``x = LN2(x + FFN(x))``, a layer norm on the main path
    after each addition (the same parameters, in another order; notebook 04 measures the difference).
    The attention is :class:`SelfAttention` (a :class:`llmcourse.attention.MultiHeadAttention`) with one
    fused q/k/v projection (GPT-2's ``c_attn``), causal unless ``config.causal`` is False. With notebook
    06's options the norms are :class:`RMSNorm`, the feed-forward network is :class:`SwiGLU`, and the
    attention rotates queries and keys (``rope``) and may group its key/value heads; the order stays
    Llama's pre-norm. ``(batch, time, d_model)`` in and out; ``cache`` is this layer's :class:`KVCache`.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = config
        self.causal = c.causal
        self.norm_first = c.norm_first
        self.ln1 = _norm(c)
        self.attn = SelfAttention(c.d_model, c.n_heads, c.kv_heads, dropout=c.attn_dropout, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)
        self.ln2 = _norm(c)
        if c.ffn == "gelu":
            self.ff = FeedForward(c.d_model, c.d_ff, c.dropout, bias=c.bias)
        else:
            self.ff = SwiGLU(c.d_model, c.d_ff, c.dropout, bias=c.bias)

    def forward(self, x: Tensor, *, rope: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None) -> Tensor:
        if self.norm_first:  # pre-LN (GPT-2): normalise inside each branch, add to an untouched stream
            attended, _ = self.attn(self.ln1(x), is_causal=self.causal, rope=rope, cache=cache)  # (batch, time, d)
            x = x + self.drop(attended)  # the residual stream, (batch, time, d_model)
            return x + self.ff(self.ln2(x))  # (batch, time, d_model)
        # post-LN (the original Transformer): normalise the stream itself after each addition
        attended, _ = self.attn(x, is_causal=self.causal, rope=rope, cache=cache)  # (batch, time, d_model)
        x = self.ln1(x + self.drop(attended))  # (batch, time, d_model)
        return self.ln2(x + self.ff(x))  # (batch, time, d_model)


class TransformerLM(nn.Module):
    """A decoder-only (GPT-style) Transformer language model (notebook 04; Llama-style in notebook 06).

    ``forward(x)``: ids ``(batch, time)`` with ``time <= config.max_context`` → logits
    ``(batch, time, vocab)``; position ``t``'s logits score the token at ``t + 1`` and depend only on
    ``x[:, :t+1]``. Token embedding + position → dropout → ``n_layers`` :class:`TransformerBlock` →
    final layer norm → output layer (sharing the embedding matrix when ``tie_weights``). A post-LN
    model (``norm_first=False``) keeps the final layer norm too, so that both orders have the same
    parameters (at initialisation, after a block that already ends in a layer norm, it changes nothing).
    ``max_context`` tells :func:`llmcourse.decoding.generate` how wide a window to slide. With an
    adaptive softmax the output is the final hidden states instead of logits; :meth:`loss_fn` and
    :meth:`log_probs` make the difference invisible to training, perplexity and decoding.

    ``forward(x, cache=cache)`` (notebook 06) reads ``x`` as the positions that follow the
    ``cache[0].length`` already in ``cache`` (from :meth:`new_cache`), which it extends: generating with
    it feeds one new token per step instead of the whole sequence. Training never passes a cache.
    """

    config_class = TransformerConfig
    stateful = False

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)
        if c.positional == "learned":
            self.pos_embed = nn.Embedding(c.max_context, c.d_model)
        elif c.positional == "sinusoidal":  # a buffer: fixed, saved with the weights, never trained
            self.register_buffer("pos_table", sinusoidal_encoding(c.max_context, c.d_model))
        elif c.positional == "rope":  # derived from the config: rebuilt with the model, not saved
            cos, sin = rope_tables(c.max_context, c.d_head, c.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c) for _ in range(c.n_layers))
        self.ln_f = _norm(c)
        self.head = OutputLayer(c.d_model, c.vocab_size, c.adaptive_cutoffs, div_value=c.adaptive_div_value,
                                bias=False)
        self.apply(self._init_module)
        # GPT-2's scheme: the projections that write into the residual stream start smaller, by
        # 1/sqrt(2 * n_layers), so that the sum of 2 * n_layers branches keeps a unit scale.
        for block in self.blocks:
            ff_out = block.ff.down_proj if isinstance(block.ff, SwiGLU) else block.ff.proj
            for proj in (block.attn.out_proj, ff_out):
                nn.init.normal_(proj.weight, std=c.init_std / math.sqrt(2 * c.n_layers))
        if c.tie_weights:
            self.head.linear.weight = self.tok_embed.weight  # one (vocab, d_model) matrix, in and out

    def _init_module(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def max_context(self) -> int:
        return self.config.max_context

    def positions(self, t: int, device: torch.device | None = None, start: int = 0) -> Tensor:
        """The position vectors added to the token embeddings of positions ``start .. start + t - 1``:
        ``(t, d_model)`` (zeros with RoPE, which rotates queries and keys instead)."""
        if self.config.positional == "learned":
            return self.pos_embed(torch.arange(start, start + t, device=device or self.pos_embed.weight.device))
        if self.config.positional in ("none", "rope"):  # no order information added: zeros
            return torch.zeros(t, self.config.d_model, device=device or self.tok_embed.weight.device)
        return self.pos_table[start : start + t]

    def new_cache(self) -> list[KVCache]:
        """An empty key-value cache for :meth:`forward`: one :class:`KVCache` per layer (notebook 06)."""
        return [KVCache() for _ in self.blocks]

    def _check_cache(self, cache: list[KVCache], x: Tensor) -> int:
        """Where the new ids start: the number of positions in ``cache``, after checking it fits ``x``."""
        if not self.config.causal:
            raise ValueError("A key-value cache needs a causal model: without the mask, earlier positions would "
                             "see each new token, so their cached keys and values would go stale.")
        if len(cache) != len(self.blocks) or not all(isinstance(layer, KVCache) for layer in cache):
            raise ValueError(f"cache must hold one KVCache per layer ({len(self.blocks)}); make it with "
                             "model.new_cache().")
        start = cache[0].length
        if start and cache[0].keys.size(0) != x.size(0):
            raise ValueError(f"The cache holds {cache[0].keys.size(0)} rows but the input has {x.size(0)}: feed the "
                             "same batch at every step, or start a new cache with model.new_cache().")
        t, limit = x.size(1), self.config.max_context
        if start + t > limit:
            raise ValueError(f"The cache holds {start} positions and the input adds {t}: {start + t} is more than "
                             f"this model's max_context={limit} (it has no position beyond). Generate fewer "
                             "tokens, or generate without the cache (llmcourse.decoding.generate with "
                             f"use_cache=False), which slides a window over the last {limit} ids.")
        return start

    def hidden_states(self, x: Tensor, cache: list[KVCache] | None = None) -> Tensor:
        """The final (layer-normed) hidden states ``(batch, time, d_model)`` before the output layer;
        ``cache`` as in :meth:`forward`."""
        if x.dim() != 2:
            raise ValueError(f"TransformerLM expects ids of shape (batch, time), got {tuple(x.shape)}; "
                             "add a batch dimension with x.unsqueeze(0).")
        t = x.size(1)
        if t == 0:
            raise ValueError("The input is empty: give at least one id per row.")
        check_token_ids(x, self.config.vocab_size, "TransformerLM")
        start = 0 if cache is None else self._check_cache(cache, x)
        if t > self.config.max_context:
            raise ValueError(f"The input has {t} positions but this model was built for at most max_context="
                             f"{self.config.max_context} (it has no position vector beyond). Feed the last "
                             f"{self.config.max_context} ids, x[:, -{self.config.max_context}:] (which is what "
                             "llmcourse.decoding.generate does), or build a model with a larger max_context.")
        h = self.drop(self.tok_embed(x) + self.positions(t, x.device, start))  # (batch, time, d_model)
        rope = None
        if self.config.positional == "rope":
            rope = (self.rope_cos[start : start + t], self.rope_sin[start : start + t])
        for i, block in enumerate(self.blocks):
            h = block(h, rope=rope, cache=None if cache is None else cache[i])  # (batch, time, d_model)
        return self.ln_f(h)  # (batch, time, d_model)

    def forward(self, x: Tensor, cache: list[KVCache] | None = None) -> Tensor:
        """Ids ``(batch, time)`` → logits ``(batch, time, vocab)`` (hidden states with an adaptive softmax).

        With ``cache`` (from :meth:`new_cache`), ``x`` holds the positions that follow those already in
        the cache, which this call extends by ``time`` positions (notebook 06).
        """
        return self.head(self.hidden_states(x, cache))  # (batch, time, d_model) -> (batch, time, vocab)

    def loss_fn(self, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Summed negative log-likelihood of ``y`` ``(batch, time)`` (-100 ignored) and the token count."""
        return self.head.loss(output, y)

    def log_probs(self, output: Tensor) -> Tensor:
        """Log-probabilities over the whole vocabulary from :meth:`forward`'s output: ``(..., vocab)``."""
        return self.head.log_probs(output)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Trainable parameters, a tied matrix counted once; ``non_embedding`` leaves out the token and
        position embeddings and an untied full-softmax matrix (the count that scaling laws use; an
        adaptive softmax's projections stay in)."""
        n = sum(p.numel() for p in self.parameters() if p.requires_grad)
        if non_embedding:
            n -= self.tok_embed.weight.numel()
            if self.config.positional == "learned":
                n -= self.pos_embed.weight.numel()
            if not self.config.tie_weights and self.head.linear is not None:
                n -= self.head.linear.weight.numel()
        return n


def parameter_counts(config: TransformerConfig) -> dict[str, int]:
    """Parameters of each part of a :class:`TransformerLM`, from the formula (notebook 04 checks it
    against the model): per block ``4 d² + 4 d`` in attention, ``2 d d_ff + d_ff + d`` in the
    feed-forward network and ``4 d`` in the two layer norms. With notebook 06's options: the key and
    value projections are ``d × kv_heads · d_head`` each, SwiGLU has three ``d × d_ff`` matrices, an
    RMSNorm has a gain and no shift, and ``bias=False`` drops the linear layers' biases."""
    d, f, v = config.d_model, config.d_ff, config.vocab_size
    kv, b = config.kv_heads * config.d_head, int(config.bias)
    attention = 2 * d * d + 2 * d * kv + b * (2 * d + 2 * kv)  # q and out: d x d; k and v: d x kv
    ffn = 2 * d * f + b * (f + d) if config.ffn == "gelu" else 3 * d * f + b * (2 * f + d)
    norm = 2 * d if config.norm == "layernorm" else d
    counts = {
        "token embedding": v * d,
        "position embedding": config.max_context * d if config.positional == "learned" else 0,
        "attention (all blocks)": config.n_layers * attention,
        "feed-forward (all blocks)": config.n_layers * ffn,
        "layer norms": (2 * config.n_layers + 1) * norm,
        "output layer": 0 if config.tie_weights else output_layer_size(d, v, config.adaptive_cutoffs,
                                                                         config.adaptive_div_value, bias=False),
    }
    counts["total"] = sum(counts.values())
    return counts


def model_flops_per_token(config: TransformerConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token, the course's one definition: the FLOPs of the matrix products of a training
    step (forward, and a backward that costs twice the forward), element-wise work left out. From the
    config that is ``6 N`` (every non-embedding weight and the output layer) plus attention's
    ``12 · n_layers · seq_len · d_model`` (the ``q k^T`` and ``weights · v`` products), as in PaLM's
    appendix B: the causal mask hides half of those products, but the attention computes them all the
    same, so they are counted. :func:`llmcourse.cost.training_flops_per_token` counts the same thing on
    one real step of any model (``tests/test_cost.py``: equal for the Transformer). An adaptive softmax is
    counted as if every token went through every tail cluster (an upper bound: training computes a tail
    only for the tokens of that cluster). The weights per block are ``4 d² + 2 d d_ff`` for GPT-2's block;
    grouped-query attention and SwiGLU change them as in :func:`parameter_counts`."""
    t = seq_len or config.max_context
    d, kv = config.d_model, config.kv_heads * config.d_head
    ffn = (2 if config.ffn == "gelu" else 3) * d * config.d_ff
    n_matmul = config.n_layers * (2 * d * d + 2 * d * kv + ffn) + output_layer_size(
        d, config.vocab_size, config.adaptive_cutoffs, config.adaptive_div_value, bias=False)
    return 6.0 * n_matmul + 12.0 * config.n_layers * t * d


def kv_cache_bytes(config: TransformerConfig, batch: int, seq_len: int, dtype: torch.dtype = torch.float32) -> int:
    """The memory of a full key-value cache, from the config (notebook 06):
    ``2 × n_layers × kv_heads × d_head × seq_len × batch × bytes per number`` (keys and values, every
    layer, every position of every row). It grows linearly with the context, and grouped-query
    attention divides it by ``n_heads // n_kv_heads``."""
    if batch < 1 or seq_len < 0:
        raise ValueError(f"kv_cache_bytes: batch must be >= 1 and seq_len >= 0, got batch={batch}, seq_len={seq_len}.")
    itemsize = torch.empty((), dtype=dtype).element_size()
    return 2 * config.n_layers * config.kv_heads * config.d_head * seq_len * batch * itemsize


# The way into Hugging Face transformers, kept in its own module and named here as well, where notebooks 04 and
# 06 import it from. At the end of this file: llmcourse.interop builds on the classes above.
from .interop import from_gpt2, from_llama, to_gpt2, to_llama  # noqa: E402
