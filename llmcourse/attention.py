"""Attention, the one place it lives in the course (notebook 03; used by notebooks 04 and 05).

``Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V``: every query takes a weighted average of the
values, weighted by how well it matches each key. Here:

* :func:`scaled_dot_product_attention` returns ``(output, weights)``, the way notebook 03 derives it,
  and goes through PyTorch's fused kernel (``torch.nn.functional.scaled_dot_product_attention``)
  when the weights are not needed. Both paths give the same output (tests prove it).
* :func:`causal_mask`, :func:`padding_mask` and :func:`combine_masks` build masks.
* :class:`MultiHeadAttention` is ``Concat(head_1..head_h) W^O`` with
  ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)``; self- or cross-attention, separate or fused
  q/k/v projections, and loaders for ``torch.nn.MultiheadAttention``, GPT-2's ``c_attn`` and BERT's
  ``query/key/value`` weights. It equals ``torch.nn.MultiheadAttention`` on the same weights.
* :func:`capture_attention` records what a trained model attends to (drawn by
  :func:`llmcourse.plotting.plot_attention` and :func:`llmcourse.widgets.attention_explorer`; timed by
  :func:`llmcourse.cost.attention_cost`).

Conventions (the whole course): batch first, ``(batch, time, ...)``; a boolean mask is **True where
attention is allowed** (the convention of ``F.scaled_dot_product_attention`` and of Hugging Face's
``attention_mask``; the opposite of ``nn.MultiheadAttention``'s ``key_padding_mask``). A float mask is
added to the scores (0 to keep, ``-inf`` to block).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


__all__ = [
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "combine_masks",
    "MultiHeadAttention",
    "capture_attention",
    "has_fused_attention",
]


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------
def causal_mask(t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """``(t_q, t_k)`` boolean mask, True where query ``i`` may see key ``j``: ``j <= i + (t_k - t_q)``.

    With ``t_k == t_q`` (the usual case) this is the lower triangle: position ``i`` sees positions
    ``0..i`` and never the future. When the queries are the *last* ``t_q`` of ``t_k`` positions (a
    decoder fed only its newest tokens), the diagonal shifts so that each still sees its whole past.
    """
    t_k = t_q if t_k is None else t_k
    if t_q < 1 or t_k < 1:
        raise ValueError(f"causal_mask({t_q}, {t_k}): both lengths must be at least 1.")
    if t_k < t_q:
        raise ValueError(f"causal_mask({t_q}, {t_k}): there are fewer keys than queries, so the first "
                         "queries would see nothing. Pass t_k >= t_q.")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def padding_mask(x: Tensor, pad_id: int | None = None, *, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
    """``(batch, 1, time)`` boolean mask, True at real tokens and False at padding.

    Give either a batch of ids ``x: (batch, time)`` and the ``pad_id``, or ``lengths`` (one per row)
    with ``x`` only telling the width. The middle dimension of size 1 lets the mask broadcast over
    the queries of ``(batch, t_q, t_k)`` scores: every query ignores the padded keys.
    """
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.is_floating_point() or lengths.dtype == torch.bool or (lengths.numel() and int(lengths.min()) < 0):
            raise ValueError(f"lengths must be whole numbers >= 0, one per row; got {lengths.tolist()}.")
        width = x.shape[-1]
        if lengths.dim() != 1 or lengths.numel() != x.shape[0]:
            raise ValueError(f"lengths must hold one length per row of x ({x.shape[0]}); got shape "
                             f"{tuple(lengths.shape)}.")
        if int(lengths.max()) > width:
            raise ValueError(f"A length of {int(lengths.max())} does not fit in {width} positions.")
        keep = torch.arange(width, device=x.device)[None, :] < lengths[:, None]
    else:
        if pad_id is None:
            raise ValueError("padding_mask needs pad_id (the id used for padding) or lengths=.")
        if x.dim() != 2:
            raise ValueError(f"padding_mask expects ids of shape (batch, time), got {tuple(x.shape)}.")
        keep = x != pad_id
    return keep[:, None, :]


def _keep_mask(padding_mask: Tensor, shape: tuple[int, int]) -> Tensor:
    """A padding mask ``(batch, t_k)``: boolean, or integer 0/1 (Hugging Face's ``attention_mask``); a float
    mask is refused (0.5 is neither padding nor a token)."""
    if not isinstance(padding_mask, Tensor) or padding_mask.is_floating_point() or padding_mask.is_complex():
        got = f"dtype {padding_mask.dtype}" if isinstance(padding_mask, Tensor) else type(padding_mask).__name__
        raise TypeError(f"padding_mask must be boolean (True at real tokens) or 0/1 integers; got {got}. "
                        "Build it with ids != pad_id, or take the tokenizer's attention_mask.")
    if tuple(padding_mask.shape) != shape:
        raise ValueError(f"padding_mask must be (batch, t_k) = {shape}, True at real tokens; got "
                         f"{tuple(padding_mask.shape)}.")
    if padding_mask.dtype != torch.bool and bool(((padding_mask != 0) & (padding_mask != 1)).any()):
        raise ValueError("an integer padding_mask holds 1 at real tokens and 0 at padding; it has other values.")
    return padding_mask.bool()


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """The positions allowed by *every* mask (boolean ``and``; float masks are added). ``None``s are skipped."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        if out.dtype == torch.bool and m.dtype == torch.bool:
            out = out & m
        else:
            out = _as_float_mask(out) + _as_float_mask(m)
    return out


def _as_float_mask(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
    return mask


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> None:
    """Clear errors for the mistakes that otherwise end in an obscure matmul error, or in NaNs."""
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(f"q, k, v need shape (..., time, features); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}.")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"Queries and keys must have the same feature size d_k to be compared: q has "
                         f"{q.shape[-1]} ({tuple(q.shape)}), k has {k.shape[-1]} ({tuple(k.shape)}).")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"Every key needs a value: k has {k.shape[-2]} positions ({tuple(k.shape)}), v has "
                         f"{v.shape[-2]} ({tuple(v.shape)}).")
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"The leading (batch, head) dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and "
                         f"v {tuple(v.shape)} do not match.") from None
    if mask is None:
        return
    scores_shape = (*batch, q.shape[-2], k.shape[-2])
    try:
        if torch.broadcast_shapes(mask.shape, scores_shape) != torch.Size(scores_shape):
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"The mask of shape {tuple(mask.shape)} does not broadcast to the attention scores "
                         f"(..., t_q, t_k) = {scores_shape}. A causal mask is (t_q, t_k); a padding mask is "
                         f"(batch, 1, t_k), or (batch, 1, 1, t_k) with heads.") from None
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"A mask is boolean (True = attend) or float (added to the scores), not {mask.dtype}. "
                        "For 0/1 integer masks use mask.bool().")


def _check_rows(mask: Tensor) -> None:
    """A query that may attend to no key would get softmax over nothing = 0/0 = NaN: say so instead."""
    blocked = ~mask.any(dim=-1) if mask.dtype == torch.bool else torch.isneginf(mask).all(dim=-1)
    if bool(blocked.any()):
        raise ValueError("A query row is fully masked: it may attend to no key at all, and softmax over nothing "
                         "is 0/0 = NaN. This happens when a padded query sees only padding (e.g. left padding "
                         "with a causal mask). Let every query see at least one key, for example itself.")


# --------------------------------------------------------------------------------------------
# Scaled dot-product attention
# --------------------------------------------------------------------------------------------
def has_fused_attention() -> bool:
    """Whether this PyTorch has the fused kernel (``F.scaled_dot_product_attention``, torch >= 2.0)."""
    return hasattr(F, "scaled_dot_product_attention")


_FUSED_FAILED: set[str] = set()


def _fused_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float, scale: float | None,
                     is_causal: bool = False) -> Tensor | None:
    """PyTorch's fused kernel, or None (and a warning, once per reason) where it cannot run this input."""
    try:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal,
                                              scale=scale)
    except RuntimeError as exc:  # e.g. a dtype or device this build's kernels do not support
        reason = f"{q.device.type}/{q.dtype}: {exc}"
        if reason not in _FUSED_FAILED:
            _FUSED_FAILED.add(reason)
            warnings.warn(f"The fused attention kernel failed ({reason}); using the naive path instead.")
        return None


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *,
                                 is_causal: bool = False, dropout_p: float = 0.0, scale: float | None = None,
                                 need_weights: bool = True, check: bool = True) -> tuple[Tensor, Tensor | None]:
    """``softmax(q k^T / sqrt(d_k) + mask) v``, and the attention weights.

    Shapes: ``q: (..., t_q, d_k)``, ``k: (..., t_k, d_k)``, ``v: (..., t_k, d_v)``; the leading
    dimensions (batch, or batch and heads) broadcast. ``mask`` broadcasts to ``(..., t_q, t_k)``:
    boolean True where attention is allowed, or float added to the scores. ``is_causal`` adds
    :func:`causal_mask`. ``dropout_p`` drops weights (pass 0 at evaluation). ``scale`` defaults to
    ``1 / sqrt(d_k)``.

    Returns ``(output: (..., t_q, d_v), weights: (..., t_q, t_k))``. With ``need_weights=False`` it
    returns ``(output, None)`` through PyTorch's fused kernel, which never builds the ``t_q x t_k``
    matrix (the naive path is used where the fused kernel is missing). A query that may attend to no
    key is an error, not a row of NaNs (``check=False`` skips that test, which syncs with the device).
    """
    if check:
        _check_inputs(q, k, v, mask)
    t_q, t_k = q.shape[-2], k.shape[-2]
    fused = not need_weights and has_fused_attention()
    if is_causal:
        if fused and mask is None and t_q == t_k:  # the kernel's own causal mask (never materialised)
            out = _fused_attention(q, k, v, None, dropout_p, scale, is_causal=True)
            if out is not None:
                return out, None
        mask = combine_masks(causal_mask(t_q, t_k, device=q.device), mask)
    if check and mask is not None:
        _check_rows(mask)
    if fused:
        if mask is not None and mask.is_floating_point():
            mask = mask.to(q.dtype)
        out = _fused_attention(q, k, v, mask, dropout_p, scale)
        if out is not None:
            return out, None
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., t_q, t_k): how well each query matches each key
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: exactly zero weight
        else:
            scores = scores + mask.to(scores.dtype)
    weights = scores.softmax(dim=-1)
    attended = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return attended @ v, (weights if need_weights else None)


# --------------------------------------------------------------------------------------------
# Multi-head attention
# --------------------------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """``MultiHead(Q, K, V) = Concat(head_1..head_h) W^O``, ``head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)``.

    ``d_model`` is split into ``n_heads`` heads of ``d_model // n_heads`` features. ``kdim``/``vdim``
    are the feature sizes of keys and values when they differ from ``d_model`` (cross-attention to an
    encoder of another width). ``fused_qkv=True`` keeps one ``(3 d_model, d_model)`` projection
    (``qkv_proj``, GPT-2's ``c_attn`` and ``nn.MultiheadAttention``'s ``in_proj``) that self-attention
    applies in one matrix product; otherwise ``q_proj``, ``k_proj``, ``v_proj`` (BERT's
    ``query``/``key``/``value``). Both layouts load either kind of weights (:meth:`load_qkv`).
    ``dropout`` drops attention weights in training mode; ``bias`` switches every projection's bias.
    """

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None, fused_qkv: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}: each head gets "
                             "d_model // n_heads features, so pick n_heads among the divisors of d_model.")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.kdim, self.vdim = kdim or d_model, vdim or d_model
        self.dropout = dropout
        self.fused_qkv = fused_qkv
        if fused_qkv:
            if self.kdim != d_model or self.vdim != d_model:
                raise ValueError("fused_qkv=True needs kdim = vdim = d_model (one matrix projects all three).")
            self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=bias)
        else:
            self.q_proj = nn.Linear(d_model, d_model, bias=bias)
            self.k_proj = nn.Linear(self.kdim, d_model, bias=bias)
            self.v_proj = nn.Linear(self.vdim, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.capture = False  # set by capture_attention(): keep the last weights in self.last_weights
        self.last_weights: Tensor | None = None

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, dropout={self.dropout}, fused_qkv={self.fused_qkv}"

    # ---- projections ------------------------------------------------------------------------
    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if not self.fused_qkv:
            return self.q_proj(query), self.k_proj(key), self.v_proj(value)
        if query is key and key is value:  # self-attention: one matrix product for q, k and v
            return self.qkv_proj(query).chunk(3, dim=-1)
        w, b = self.qkv_proj.weight.chunk(3), (self.qkv_proj.bias.chunk(3) if self.qkv_proj.bias is not None
                                               else (None, None, None))
        return F.linear(query, w[0], b[0]), F.linear(key, w[1], b[1]), F.linear(value, w[2], b[2])

    def _split_heads(self, x: Tensor) -> Tensor:  # (batch, time, d_model) -> (batch, heads, time, d_head)
        return x.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None, *,
                mask: Tensor | None = None, padding_mask: Tensor | None = None, is_causal: bool = False,
                need_weights: bool = False, average_heads: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` (self-attention when they are omitted).

        Shapes: ``query: (batch, t_q, d_model)``, ``key: (batch, t_k, kdim)``, ``value: (batch, t_k, vdim)``.
        ``mask``: boolean (True = attend) or float, ``(t_q, t_k)``, ``(batch, t_q, t_k)`` or
        ``(batch, heads, t_q, t_k)``. ``padding_mask``: ``(batch, t_k)``, True (or 1) at real tokens,
        like Hugging Face's ``attention_mask``. ``is_causal``: each query sees only keys at or before it.

        Returns ``(output: (batch, t_q, d_model), weights)``: ``weights`` is ``None`` unless
        ``need_weights`` (then ``(batch, heads, t_q, t_k)``, or ``(batch, t_q, t_k)`` with
        ``average_heads``). Without weights the fused kernel does the work.
        """
        key = query if key is None else key
        value = key if value is None else value
        if query.dim() != 3 or key.dim() != 3 or value.dim() != 3:
            raise ValueError(f"MultiHeadAttention takes batch-first (batch, time, features) tensors; got query "
                             f"{tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}.")
        if query.shape[-1] != self.d_model or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ValueError(f"Feature sizes: expected query/key/value with {self.d_model}/{self.kdim}/{self.vdim} "
                             f"features, got {query.shape[-1]}/{key.shape[-1]}/{value.shape[-1]}.")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"Batch and time must agree: query {tuple(query.shape)}, key {tuple(key.shape)}, "
                             f"value {tuple(value.shape)}.")
        batch, t_q, t_k = query.shape[0], query.shape[1], key.shape[1]
        q, k, v = (self._split_heads(t) for t in self._project(query, key, value))

        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]  # (batch, t_q, t_k) -> (batch, 1, t_q, t_k): the same for every head
        if padding_mask is not None:
            mask = combine_masks(mask, _keep_mask(padding_mask, (batch, t_k))[:, None, None, :])

        want = need_weights or self.capture
        out, weights = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, need_weights=want,
                                                    dropout_p=self.dropout if self.training else 0.0)
        if self.capture:
            self.last_weights = weights.detach()
        out = self.out_proj(out.transpose(1, 2).reshape(batch, t_q, self.d_model))
        if not need_weights:
            return out, None
        return out, (weights.mean(dim=1) if average_heads else weights)

    # ---- loading weights ---------------------------------------------------------------------
    @torch.no_grad()
    def load_qkv(self, weight: Tensor | Sequence[Tensor], bias: Tensor | Sequence[Tensor] | None = None) -> None:
        """Load the q/k/v projections, given either fused or separate, whatever this module's layout.

        ``weight``: a ``(3 d_model, d_model)`` tensor (rows: q, then k, then v; ``nn.MultiheadAttention``'s
        ``in_proj_weight``, GPT-2's ``c_attn.weight.T``) or three ``(d_model, in_features)`` tensors
        (BERT's ``query``/``key``/``value`` ``.weight``). ``bias`` likewise, or None.
        """
        ws = list(weight.chunk(3)) if isinstance(weight, Tensor) else list(weight)
        bs = None if bias is None else (list(bias.chunk(3)) if isinstance(bias, Tensor) else list(bias))
        if len(ws) != 3 or (bs is not None and len(bs) != 3):
            raise ValueError("load_qkv needs the q, k and v weights: one fused (3 d_model, d_model) tensor or three.")
        if self.fused_qkv:
            self._copy(self.qkv_proj, torch.cat(ws), None if bs is None else torch.cat(bs))
        else:
            for proj, w, b in zip((self.q_proj, self.k_proj, self.v_proj), ws, [None] * 3 if bs is None else bs):
                self._copy(proj, w, b)

    @torch.no_grad()
    def load_out(self, weight: Tensor, bias: Tensor | None = None) -> None:
        """Load the output projection ``W^O``: ``weight (d_model, d_model)`` in ``nn.Linear`` layout."""
        self._copy(self.out_proj, weight, bias)

    def qkv_weight(self) -> tuple[Tensor, Tensor | None]:
        """The q/k/v projection as one ``(3 d_model, d_model)`` weight and ``(3 d_model,)`` bias, in either layout."""
        if self.fused_qkv:
            return self.qkv_proj.weight, self.qkv_proj.bias
        projs = (self.q_proj, self.k_proj, self.v_proj)
        bias = None if self.q_proj.bias is None else torch.cat([p.bias for p in projs])
        return torch.cat([p.weight for p in projs]), bias

    @staticmethod
    def _copy(linear: nn.Linear, weight: Tensor, bias: Tensor | None) -> None:
        if weight.shape != linear.weight.shape:
            raise ValueError(f"Weight of shape {tuple(weight.shape)} cannot load into {tuple(linear.weight.shape)} "
                             "(nn.Linear keeps (out_features, in_features); transpose GPT-2's Conv1D weights).")
        linear.weight.copy_(weight)
        if (bias is None) != (linear.bias is None):
            raise ValueError("Bias mismatch: give a bias exactly when the module was built with bias=True.")
        if bias is not None:
            linear.bias.copy_(bias)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, *, fused_qkv: bool = True) -> "MultiHeadAttention":
        """A copy of a ``torch.nn.MultiheadAttention`` (with ``batch_first`` or not: ours always is)."""
        bias = mha.in_proj_bias is not None
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("add_bias_kv and add_zero_attn have no counterpart here.")
        kdim, vdim = mha.kdim, mha.vdim
        ours = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=bias, kdim=kdim, vdim=vdim,
                   fused_qkv=fused_qkv and mha._qkv_same_embed_dim)
        if mha._qkv_same_embed_dim:
            ours.load_qkv(mha.in_proj_weight, mha.in_proj_bias)
        else:
            ours.load_qkv((mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight),
                          None if not bias else mha.in_proj_bias.chunk(3))
        ours.load_out(mha.out_proj.weight, mha.out_proj.bias)
        return ours.to(mha.out_proj.weight.device)


# --------------------------------------------------------------------------------------------
# Seeing attention
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def capture_attention(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Within the block, every :class:`MultiHeadAttention` of ``model`` records its weights.

    Yields a dict that, once the block ends, maps each attention module's name to the weights of
    its last call, ``(batch, heads, t_q, t_k)`` (detached). Forward passes inside the block take the
    naive path, which builds the weights.

    >>> with capture_attention(model) as maps:
    ...     model(x)
    >>> maps["decoder.cross_attention"].shape
    """
    modules = {name: m for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)}
    if not modules:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention module to capture.")
    maps: dict[str, Tensor] = {}
    for m in modules.values():
        m.capture, m.last_weights = True, None
    try:
        yield maps
    finally:
        for name, m in modules.items():
            m.capture = False
            if m.last_weights is not None:
                maps[name] = m.last_weights
            m.last_weights = None


# --------------------------------------------------------------------------------------------
# Cost: time and memory against sequence length
# --------------------------------------------------------------------------------------------


