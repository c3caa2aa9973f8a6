"""What an output depends on, measured, beside what the attention weights point at (notebook 03).

Attention weights say where a model *read* its values; they do not say, by themselves, which inputs
the output *depends* on. Notebook 03 compares the two on its attentive encoder–decoder
(:class:`llmcourse.seq2seq.Seq2Seq`), on the reversal task, where the source position each output
letter comes from is known. Here:

* :func:`target_log_probs` — the log-probability of each target token under teacher forcing;
* two attribution methods, each ``(batch, T, S)``, one number per (output step, source position):
  :func:`occlusion` (replace one source token, measure how much the right output's log-probability
  drops) and :func:`gradient_x_input` (the gradient of that log-probability with respect to the
  token's embedding, dotted with the embedding: a first-order estimate of the same thing);
* :func:`cross_attention` (the weights, ``(batch, heads, T, S)``) and :func:`logits_with_attention`,
  which runs the decoder with *other* weights, so that :func:`permute_weights` and
  :func:`adversarial_attention` can ask whether a different attention pattern changes the output;
* :func:`rank_correlation` (Spearman's, along the last dimension) and :func:`reversal_positions`
  (where the right source letter of each output step is).

Inputs are batches packed by :meth:`llmcourse.seq2seq.ReversalTask.collate`: ``x: (batch, S + T)``,
``y: (batch, T)`` with ``-100`` at padding. Functions put the model in evaluation mode and restore
its mode afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from .attention import capture_attention
from .seq2seq import PAD, Seq2Seq

__all__ = [
    "target_log_probs",
    "cross_attention",
    "occlusion",
    "gradient_x_input",
    "logits_with_attention",
    "permute_weights",
    "adversarial_attention",
    "rank_correlation",
    "reversal_positions",
    "next_letter",
]

FIRST_LETTER = 3  # ids 0, 1, 2 are <pad>, <sep>, <eos> (llmcourse.seq2seq)


@contextlib.contextmanager
def _evaluating(model: Seq2Seq) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _gather_targets(logits: Tensor, y: Tensor) -> Tensor:
    lp = logits.log_softmax(-1).gather(-1, y.clamp(min=0)[..., None])[..., 0]
    return lp.masked_fill(y == -100, 0.0)


def target_log_probs(model: Seq2Seq, x: Tensor, y: Tensor) -> Tensor:
    """``(batch, T)``: ``log P(y_t | source, y_<t)`` under teacher forcing; 0 where ``y`` is padding."""
    with _evaluating(model), torch.no_grad():
        return _gather_targets(model(x), y)


def cross_attention(model: Seq2Seq, x: Tensor) -> Tensor:
    """The decoder's cross-attention weights on ``x``: ``(batch, heads, T, S)`` (each row sums to 1)."""
    with _evaluating(model), torch.no_grad(), capture_attention(model) as maps:
        model(x)
    return maps["cross_attention"]


def next_letter(tokens: Tensor, n_symbols: int) -> Tensor:
    """Each letter replaced by the next one of the alphabet (cyclically): the default occlusion."""
    return (tokens - FIRST_LETTER + 1) % n_symbols + FIRST_LETTER


def occlusion(model: Seq2Seq, x: Tensor, y: Tensor,
              replace: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``(batch, T, S)``: how much ``log P(y_t)`` drops when source token ``j`` alone is replaced.

    ``replace`` maps a column of source ids to their substitutes (default :func:`next_letter`: every
    letter becomes another letter, so the source keeps its length). Positive = the output needed that
    token; 0 at padded source positions and padded targets. One forward pass per source position.
    """
    source, _ = model.split(x)
    n_symbols = model.config.vocab_size - FIRST_LETTER
    replace = replace or (lambda column: next_letter(column, n_symbols))
    base = target_log_probs(model, x, y)
    drops = torch.zeros(*y.shape, source.shape[1], device=x.device)
    for j in range(source.shape[1]):
        real = source[:, j] != PAD
        occluded = x.clone()
        occluded[:, j] = torch.where(real, replace(x[:, j]), x[:, j])
        drops[:, :, j] = (base - target_log_probs(model, occluded, y)) * real[:, None]
    return drops


def gradient_x_input(model: Seq2Seq, x: Tensor, y: Tensor) -> Tensor:
    """``(batch, T, S)``: ``|grad_e log P(y_t) . e_j|``, with ``e_j`` the embedding of source token ``j``.

    The dot product is the first-order (Taylor) estimate of how ``log P(y_t)`` changes when ``e_j`` is
    scaled to zero; its absolute value is the attribution. One backward pass per output step.
    """
    captured: dict[str, Tensor] = {}

    def keep_source_embedding(module, inputs, output):  # the first call of model.embed is the source
        captured.setdefault("source", output)

    with _evaluating(model):
        handle = model.embed.register_forward_hook(keep_source_embedding)
        try:
            with torch.enable_grad():
                log_probs = _gather_targets(model(x), y)
                e = captured["source"]
                out = torch.zeros(*y.shape, e.shape[1], device=x.device)
                for t in range(y.shape[1]):
                    (grad,) = torch.autograd.grad(log_probs[:, t].sum(), e, retain_graph=t < y.shape[1] - 1)
                    out[:, t] = (grad * e).sum(-1).abs().detach()
        finally:
            handle.remove()
    source, _ = model.split(x)
    return out * (source != PAD)[:, None, :] * (y != -100)[..., None]


def _decoder_parts(model: Seq2Seq, x: Tensor) -> tuple[Tensor, Tensor]:
    """What the cross-attention's weights are applied to: the decoder states ``s: (batch, T, d_hidden)``
    and the values ``v: (batch, heads, S, d_head)``. Neither depends on the weights."""
    mha = model.cross_attention
    if mha is None:
        raise ValueError("This Seq2Seq has no attention (attention=False): there are no weights to replace.")
    source, decoder_input = model.split(x)
    memory, state, _ = model.encode(source)
    s, _ = model.decoder(model.embed(decoder_input), state)
    if mha.fused_qkv:  # the value projection is the last third of the fused one
        w, b = mha.qkv_proj.weight.chunk(3)[2], None if mha.qkv_proj.bias is None else mha.qkv_proj.bias.chunk(3)[2]
    else:
        w, b = mha.v_proj.weight, mha.v_proj.bias
    v = F.linear(memory, w, b).unflatten(-1, (mha.n_heads, mha.d_head)).transpose(1, 2)
    return s, v


def _logits_from(model: Seq2Seq, s: Tensor, v: Tensor, weights: Tensor) -> Tensor:
    expected = (*v.shape[:2], s.shape[1], v.shape[2])
    if tuple(weights.shape) != expected:
        raise ValueError(f"weights must be (batch, heads, T, S) = {expected}; got {tuple(weights.shape)}.")
    context = model.cross_attention.out_proj((weights @ v).transpose(1, 2).flatten(2))
    return model.out(torch.cat([s, context], dim=-1))


def logits_with_attention(model: Seq2Seq, x: Tensor, weights: Tensor) -> Tensor:
    """The model's logits ``(batch, T, vocab)`` when its cross-attention uses ``weights`` instead of its own.

    ``weights: (batch, heads, T, S)``. Everything else is the model's own computation (teacher
    forced, as in training), so passing :func:`cross_attention`'s weights gives back ``model(x)``.
    Differentiable in ``weights``.
    """
    s, v = _decoder_parts(model, x)
    return _logits_from(model, s, v, weights)


def permute_weights(weights: Tensor, heads: list[int] | None = None, *, real: Tensor | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
    """Each row's weights shuffled at random over the real source positions (Jain & Wallace's test).

    ``weights: (batch, heads, T, S)``; ``heads``: which heads to shuffle (default all); ``real:
    (batch, S)`` True at real source tokens (default all), whose weights move only among themselves.
    Every row keeps its values, so it still sums to 1; padded positions keep their (zero) weight.
    """
    b, h, t, s = weights.shape
    real = torch.ones(b, s, dtype=torch.bool, device=weights.device) if real is None else real.bool()
    order = torch.arange(s, device=weights.device) / s
    pads_last = (~real).float()[:, None, None, :] * 2 + order  # real positions first, in index order
    keys = torch.where(real[:, None, None, :], torch.rand(b, h, t, s, generator=generator).to(weights.device),
                       pads_last)
    shuffled, in_place = keys.argsort(-1), pads_last.expand(b, h, t, s).argsort(-1)
    out = torch.zeros_like(weights).scatter(-1, in_place, weights.gather(-1, shuffled))
    keep = torch.ones(h, dtype=torch.bool, device=weights.device)
    if heads is not None:
        keep[:] = False
        keep[list(heads)] = True
    return torch.where(keep[None, :, None, None], out, weights)


def adversarial_attention(model: Seq2Seq, x: Tensor, y: Tensor, avoid: Tensor, *, steps: int = 200,
                          lr: float = 0.1, kl_weight: float = 10.0) -> Tensor:
    """Weights ``(batch, heads, T, S)`` that put as little weight as they can on ``avoid`` while keeping
    the model's output distributions (after Jain & Wallace's adversarial attention).

    ``avoid: (batch, T, S)`` bool, the positions to take weight from (for reversal: the right source
    letter, :func:`reversal_positions`). Minimises, by Adam on the weights' logits, the mean weight on
    ``avoid`` plus ``kl_weight`` times the mean KL divergence from the original output distribution
    to the new one (targets that are padding not counted). Padded source positions stay at 0.
    """
    source, _ = model.split(x)
    real = (source != PAD)[:, None, None, :]
    with _evaluating(model):
        original = cross_attention(model, x)
        with torch.no_grad():
            reference = model(x).log_softmax(-1)
            s, v = _decoder_parts(model, x)  # fixed: only the weights change
        scored = y != -100
        logits = original.clamp(min=1e-9).log().masked_fill(~real, float("-inf")).requires_grad_()
        optimiser = torch.optim.Adam([logits], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                weights = logits.softmax(-1)
                new = _logits_from(model, s, v, weights).log_softmax(-1)
                kl = (reference.exp() * (reference - new)).sum(-1)[scored].mean()
                on_avoid = (weights * avoid[:, None]).sum(-1)[scored[:, None].expand(-1, weights.shape[1], -1)].mean()
                loss = on_avoid + kl_weight * kl
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return logits.detach().softmax(-1)


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation of ``a`` and ``b`` along the last dimension (ties broken by order)."""
    ra = a.argsort(-1).argsort(-1).double()
    rb = b.argsort(-1).argsort(-1).double()
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))


def reversal_positions(x: Tensor, t: int | None = None) -> Tensor:
    """``(batch, T, S)`` bool: True at the source position that output step ``t`` copies (``L - 1 - t``
    for a source of length ``L``); no True at the ``<eos>`` step and after. ``T`` defaults to ``S + 1``."""
    source, decoder_input = Seq2Seq.split(x)
    s = source.shape[1]
    t = decoder_input.shape[1] if t is None else t
    lengths = (source != PAD).sum(1)
    steps = torch.arange(t, device=x.device)
    target = lengths[:, None] - 1 - steps[None, :]  # (batch, T); negative from the <eos> step on
    return (torch.arange(s, device=x.device)[None, None, :] == target[..., None]) & (target[..., None] >= 0)
