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
``transformers.GPT2LMHeadModel`` with :func:`to_gpt2` (and back with :func:`from_gpt2`). The sizes
that notebook 04 and the benchmarks train on WikiText-2 live in :mod:`llmcourse.recipes`.

Shapes are batch first: ids ``(batch, time)``, hidden states ``(batch, time, d_model)``, logits
``(batch, time, vocab)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import MultiHeadAttention
from .heads import OutputLayer, check_cutoffs, output_layer_size

__all__ = [
    "layer_norm",
    "gelu_tanh",
    "sinusoidal_encoding",
    "TransformerConfig",
    "FeedForward",
    "TransformerBlock",
    "TransformerLM",
    "parameter_counts",
    "model_flops_per_token",
    "to_gpt2",
    "from_gpt2",
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


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
@dataclass
class TransformerConfig:
    """The whole :class:`TransformerLM` in one line (nanoGPT's ``GPTConfig``, GPT-2's sizes by other names).

    ``max_context`` is the longest input the model reads (GPT-2's ``n_positions``). ``d_ff`` defaults to
    ``4 * d_model``. ``dropout`` acts on the embeddings and on each residual branch, ``attn_dropout``
    on the attention weights. ``positional``: ``"learned"`` (GPT-2, exportable as is), ``"sinusoidal"``
    (fixed, for teaching; exported as a copy of the table) or ``"none"`` (no position vectors at all,
    for notebook 04's experiment; exported as a table of zeros). ``causal=False`` removes the causal
    mask: only to show the bug in notebook 04, never to train a language model. ``norm_first=False``
    makes every block post-LN (the original Transformer's order, ``LN(x + Attention(x))``) instead of
    GPT-2's pre-LN, for notebook 04's comparison; it cannot be exported to GPT-2.
    ``adaptive_cutoffs`` swaps the tied full softmax for an adaptive softmax (as in
    :class:`llmcourse.rnn.RNNConfig`; needs ``tie_weights=False``, and cannot be exported to GPT-2).
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

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        self.adaptive_cutoffs = check_cutoffs(self.adaptive_cutoffs, self.vocab_size, self.tie_weights)
        if self.positional not in {"learned", "sinusoidal", "none"}:
            raise ValueError(f"positional={self.positional!r}: choose 'learned', 'sinusoidal' or 'none'.")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}: each head gets "
                             "d_model // n_heads features, so pick n_heads among the divisors of d_model.")
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"Sinusoidal positions pair sines and cosines: d_model={self.d_model} must be even.")
        for name in ("vocab_size", "max_context", "d_model", "n_layers", "n_heads", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")


class FeedForward(nn.Module):
    """The position-wise feed-forward network: ``Linear(d, d_ff) → GELU → Linear(d_ff, d) → dropout``.

    The same two-layer network is applied to every position on its own (GPT-2's ``mlp``: ``c_fc``,
    ``gelu_new`` = GELU with the tanh approximation, ``c_proj``). ``(..., d_model) → (..., d_model)``.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff)
        self.act = nn.GELU(approximate="tanh")
        self.proj = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


class TransformerBlock(nn.Module):
    """One pre-LN decoder block: ``x = x + Dropout(Attention(LN1(x)))``, then ``x = x + FFN(LN2(x))``.

    Pre-LN (layer norm *inside* each residual branch, as in GPT-2) keeps an untouched identity path
    from the input to the output of the whole stack (the residual stream). With
    ``config.norm_first=False`` the block is post-LN, as in the original Transformer and BERT:
    ``x = LN1(x + Dropout(Attention(x)))``, then ``x = LN2(x + FFN(x))``, a layer norm on the main path
    after each addition (the same parameters, in another order; notebook 04 measures the difference).
    The attention is :class:`llmcourse.attention.MultiHeadAttention` with one fused q/k/v projection
    (GPT-2's ``c_attn``), causal unless ``config.causal`` is False. ``(batch, time, d_model)`` in and out.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = config
        self.causal = c.causal
        self.norm_first = c.norm_first
        self.ln1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, dropout=c.attn_dropout, fused_qkv=True)
        self.drop = nn.Dropout(c.dropout)
        self.ln2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.ff = FeedForward(c.d_model, c.d_ff, c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.norm_first:  # pre-LN (GPT-2): normalise inside each branch, add to an untouched stream
            attended, _ = self.attn(self.ln1(x), is_causal=self.causal)
            x = x + self.drop(attended)
            return x + self.ff(self.ln2(x))
        # post-LN (the original Transformer): normalise the stream itself after each addition
        attended, _ = self.attn(x, is_causal=self.causal)
        x = self.ln1(x + self.drop(attended))
        return self.ln2(x + self.ff(x))


class TransformerLM(nn.Module):
    """A decoder-only (GPT-style) Transformer language model (notebook 04).

    ``forward(x)``: ids ``(batch, time)`` with ``time <= config.max_context`` → logits
    ``(batch, time, vocab)``; position ``t``'s logits score the token at ``t + 1`` and depend only on
    ``x[:, :t+1]``. Token embedding + position → dropout → ``n_layers`` :class:`TransformerBlock` →
    final layer norm → output layer (sharing the embedding matrix when ``tie_weights``). A post-LN
    model (``norm_first=False``) keeps the final layer norm too, so that both orders have the same
    parameters (at initialisation, after a block that already ends in a layer norm, it changes nothing).
    ``max_context`` tells :func:`llmcourse.decoding.generate` how wide a window to slide. With an
    adaptive softmax the output is the final hidden states instead of logits; :meth:`loss_fn` and
    :meth:`log_probs` make the difference invisible to training, perplexity and decoding.
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
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.head = OutputLayer(c.d_model, c.vocab_size, c.adaptive_cutoffs, div_value=c.adaptive_div_value,
                                bias=False)
        self.apply(self._init_module)
        # GPT-2's scheme: the projections that write into the residual stream start smaller, by
        # 1/sqrt(2 * n_layers), so that the sum of 2 * n_layers branches keeps a unit scale.
        for block in self.blocks:
            for proj in (block.attn.out_proj, block.ff.proj):
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

    def positions(self, t: int, device: torch.device | None = None) -> Tensor:
        """The position vectors added to the first ``t`` token embeddings: ``(t, d_model)``."""
        if self.config.positional == "learned":
            return self.pos_embed(torch.arange(t, device=device or self.pos_embed.weight.device))
        if self.config.positional == "none":  # no order information added: zeros
            return torch.zeros(t, self.config.d_model, device=device or self.tok_embed.weight.device)
        return self.pos_table[:t]

    def hidden_states(self, x: Tensor) -> Tensor:
        """The final (layer-normed) hidden states ``(batch, time, d_model)`` before the output layer."""
        if x.dim() != 2:
            raise ValueError(f"TransformerLM expects ids of shape (batch, time), got {tuple(x.shape)}; "
                             "add a batch dimension with x.unsqueeze(0).")
        t = x.size(1)
        if t > self.config.max_context:
            raise ValueError(f"The input has {t} positions but this model was built for at most max_context="
                             f"{self.config.max_context} (it has no position vector beyond). Feed the last "
                             f"{self.config.max_context} ids, x[:, -{self.config.max_context}:] (which is what "
                             "llmcourse.decoding.generate does), or build a model with a larger max_context.")
        if t == 0:
            raise ValueError("The input is empty: give at least one id per row.")
        h = self.drop(self.tok_embed(x) + self.positions(t, x.device))
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.hidden_states(x))

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
    feed-forward network and ``4 d`` in the two layer norms."""
    d, f, v = config.d_model, config.d_ff, config.vocab_size
    counts = {
        "token embedding": v * d,
        "position embedding": config.max_context * d if config.positional == "learned" else 0,
        "attention (all blocks)": config.n_layers * (4 * d * d + 4 * d),
        "feed-forward (all blocks)": config.n_layers * (2 * d * f + f + d),
        "layer norms": config.n_layers * 4 * d + 2 * d,
        "output layer": 0 if config.tie_weights else output_layer_size(d, v, config.adaptive_cutoffs,
                                                                         config.adaptive_div_value, bias=False),
    }
    counts["total"] = sum(counts.values())
    return counts


def model_flops_per_token(config: TransformerConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token: ``6 N`` (forward and backward through every non-embedding weight and
    the output layer) plus attention's ``6 · n_layers · seq_len · d_model`` (the ``q k^T`` and
    ``weights · v`` products, halved since the mask leaves half of them). PaLM's appendix B counts
    ``12 · n_layers · seq_len · d_model`` without the causal halving; we report the causal count.
    An adaptive softmax is counted as if every token went through every tail cluster (an upper bound:
    training computes a tail only for the tokens of that cluster)."""
    t = seq_len or config.max_context
    d = config.d_model
    n_matmul = config.n_layers * (4 * d * d + 2 * d * config.d_ff) + output_layer_size(
        d, config.vocab_size, config.adaptive_cutoffs, config.adaptive_div_value, bias=False)
    return 6.0 * n_matmul + 6.0 * config.n_layers * t * d


# --------------------------------------------------------------------------------------------
# Into the ecosystem: GPT2LMHeadModel
# --------------------------------------------------------------------------------------------
def _gpt2_config(config: TransformerConfig, **overrides):
    from transformers import GPT2Config

    kwargs = dict(vocab_size=config.vocab_size, n_positions=config.max_context, n_embd=config.d_model,
                  n_layer=config.n_layers, n_head=config.n_heads, n_inner=config.d_ff,
                  activation_function="gelu_new", resid_pdrop=config.dropout, embd_pdrop=config.dropout,
                  attn_pdrop=config.attn_dropout, layer_norm_epsilon=config.layer_norm_eps,
                  initializer_range=config.init_std, tie_word_embeddings=config.tie_weights,
                  bos_token_id=None, eos_token_id=None, pad_token_id=None)
    kwargs.update(overrides)
    return GPT2Config(**kwargs)


@torch.no_grad()
def to_gpt2(model: TransformerLM, **config_overrides):
    """A ``transformers.GPT2LMHeadModel`` computing exactly what ``model`` computes (eval mode).

    The configuration maps one for one (``d_model`` → ``n_embd``, ``max_context`` → ``n_positions``, ...;
    GELU with the tanh approximation is GPT-2's ``gelu_new``); ``config_overrides`` set other
    ``GPT2Config`` fields, such as ``eos_token_id``. GPT-2 keeps its projections in ``Conv1D`` layers,
    whose weight is ``(in, out)``: the transpose of ``nn.Linear``'s ``(out, in)``. Sinusoidal positions
    are copied into GPT-2's learned position table (the same function, now trainable); a model without
    positions gets a table of zeros. GPT-2 is pre-LN: a post-LN model (``norm_first=False``) is refused.
    Save with ``.save_pretrained(folder)``; load with ``GPT2LMHeadModel.from_pretrained(folder)``.
    """
    from transformers import GPT2LMHeadModel

    c = model.config
    if not c.causal:
        raise ValueError("GPT-2 is always causal: export a model built with causal=True.")
    if not c.norm_first:
        raise ValueError("This model is post-LN (norm_first=False): each block normalises after its addition, "
                         "LN(x + Attention(x)). GPT-2's blocks are pre-LN, x + Attention(LN(x)), so the same "
                         "weights would compute something else there. Export a pre-LN model (norm_first=True).")
    if c.adaptive_cutoffs is not None:
        raise ValueError("This model has an adaptive softmax (adaptive_cutoffs is set); GPT-2's output layer is one "
                         "full softmax over the vocabulary, so there is nothing to copy it into. Export a model "
                         "with a full softmax (adaptive_cutoffs=None), such as a tied one.")
    hf = GPT2LMHeadModel(_gpt2_config(c, **config_overrides))
    hf.eval()
    t = hf.transformer
    t.wte.weight.copy_(model.tok_embed.weight)
    t.wpe.weight.copy_(model.positions(c.max_context))
    for ours, theirs in zip(model.blocks, t.h):
        qkv_w, qkv_b = ours.attn.qkv_weight()
        pairs = [(theirs.attn.c_attn, qkv_w, qkv_b), (theirs.attn.c_proj, ours.attn.out_proj.weight, ours.attn.out_proj.bias),
                 (theirs.mlp.c_fc, ours.ff.fc.weight, ours.ff.fc.bias), (theirs.mlp.c_proj, ours.ff.proj.weight, ours.ff.proj.bias)]
        for conv1d, weight, bias in pairs:
            conv1d.weight.copy_(weight.T)  # Conv1D: (in, out) = nn.Linear's weight transposed
            conv1d.bias.copy_(bias)
        _copy_layer_norm(theirs.ln_1, ours.ln1)
        _copy_layer_norm(theirs.ln_2, ours.ln2)
    _copy_layer_norm(t.ln_f, model.ln_f)
    if not c.tie_weights:
        hf.lm_head.weight.copy_(model.head.linear.weight)
    return hf.to(model.tok_embed.weight.device)


def _copy_layer_norm(dst: nn.LayerNorm, src: nn.LayerNorm) -> None:
    dst.weight.copy_(src.weight)
    dst.bias.copy_(src.bias)


@torch.no_grad()
def from_gpt2(hf_model) -> TransformerLM:
    """A :class:`TransformerLM` with the weights of a ``transformers.GPT2LMHeadModel`` (the inverse of
    :func:`to_gpt2`; positions come back learned)."""
    hc = hf_model.config
    if hc.activation_function not in {"gelu_new", "gelu_pytorch_tanh"}:
        raise ValueError(f"activation_function={hc.activation_function!r}: TransformerLM uses GELU with the tanh "
                         "approximation (GPT-2's 'gelu_new').")
    if hc.scale_attn_by_inverse_layer_idx or not hc.scale_attn_weights or getattr(hc, "add_cross_attention", False):
        raise ValueError("Only GPT-2's standard attention (scaled by 1/sqrt(d_head), no cross-attention) maps "
                         "onto TransformerLM.")
    config = TransformerConfig(vocab_size=hc.vocab_size, max_context=hc.n_positions, d_model=hc.n_embd,
                               n_layers=hc.n_layer, n_heads=hc.n_head, d_ff=hc.n_inner or 4 * hc.n_embd,
                               dropout=float(hc.resid_pdrop), attn_dropout=float(hc.attn_pdrop),
                               layer_norm_eps=hc.layer_norm_epsilon, init_std=hc.initializer_range,
                               tie_weights=bool(hc.tie_word_embeddings))
    model = TransformerLM(config)
    t = hf_model.transformer
    model.tok_embed.weight.copy_(t.wte.weight)
    model.pos_embed.weight.copy_(t.wpe.weight)
    for ours, theirs in zip(model.blocks, t.h):
        ours.attn.load_qkv(theirs.attn.c_attn.weight.T, theirs.attn.c_attn.bias)
        ours.attn.load_out(theirs.attn.c_proj.weight.T, theirs.attn.c_proj.bias)
        for linear, conv1d in ((ours.ff.fc, theirs.mlp.c_fc), (ours.ff.proj, theirs.mlp.c_proj)):
            linear.weight.copy_(conv1d.weight.T)
            linear.bias.copy_(conv1d.bias)
        _copy_layer_norm(ours.ln1, theirs.ln_1)
        _copy_layer_norm(ours.ln2, theirs.ln_2)
    _copy_layer_norm(model.ln_f, t.ln_f)
    if not config.tie_weights:
        model.head.linear.weight.copy_(hf_model.lm_head.weight)
    return model.to(t.wte.weight.device).eval()
