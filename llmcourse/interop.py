"""The course's Transformer into Hugging Face ``transformers`` and back, weight for weight.

* :func:`to_gpt2` / :func:`from_gpt2`: a :class:`~llmcourse.transformer.TransformerLM` with GPT-2's choices
  (pre-LN, GELU, learned or sinusoidal positions, a full softmax) is a ``GPT2LMHeadModel`` (notebook 04):
  the configuration maps one for one (``d_model`` → ``n_embd``, ``max_context`` → ``n_positions``, ...) and the
  weights are copied, GPT-2's ``Conv1D`` matrices transposed;
* :func:`to_llama` / :func:`from_llama`: with notebook 06's options (RoPE, RMSNorm, SwiGLU, grouped-query
  attention, no biases) it is a ``LlamaForCausalLM``.

``transformers``' names stay at this boundary; the course's own config keeps the course's names. Tests prove
that each export computes the same logits and that the round trip gives back every weight.
``llmcourse.transformer`` names these four functions too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .transformer import TransformerConfig, TransformerLM

__all__ = ["to_gpt2", "from_gpt2", "to_llama", "from_llama"]


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
    A model without biases (``bias=False``) gets zero biases. Notebook 06's Llama options have no
    counterpart in GPT-2 and are refused (export such a model with :func:`to_llama`).
    Save with ``.save_pretrained(folder)``; load with ``GPT2LMHeadModel.from_pretrained(folder)``.
    """
    from transformers import GPT2LMHeadModel

    c = model.config
    if not c.causal:
        raise ValueError("GPT-2 is always causal: export a model built with causal=True.")
    unlike_gpt2 = [f"{name}={getattr(c, name)!r}" for name, gpt2 in (("norm", "layernorm"), ("ffn", "gelu"))
                   if getattr(c, name) != gpt2]
    if c.positional == "rope":
        unlike_gpt2.insert(0, "positional='rope'")
    if c.kv_heads != c.n_heads:
        unlike_gpt2.append(f"n_kv_heads={c.n_kv_heads}")
    if unlike_gpt2:
        raise ValueError(f"This model has options GPT-2's block does not have ({', '.join(unlike_gpt2)}): GPT-2 "
                         "adds learned positions, normalises with LayerNorm, uses a GELU feed-forward network and "
                         "one key/value head per query head. Export it with to_llama instead.")
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
            if bias is None:  # bias=False: GPT-2's Conv1D always has one, and zero adds nothing
                conv1d.bias.zero_()
            else:
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


# --------------------------------------------------------------------------------------------
# Into the ecosystem: LlamaForCausalLM (notebook 06)
# --------------------------------------------------------------------------------------------
def _llama_config(config: TransformerConfig, **overrides):
    from transformers import LlamaConfig

    kwargs = dict(vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.d_ff,
                  num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
                  num_key_value_heads=config.kv_heads, head_dim=config.d_head, hidden_act="silu",
                  max_position_embeddings=config.max_context, initializer_range=config.init_std,
                  rms_norm_eps=config.layer_norm_eps, tie_word_embeddings=config.tie_weights,
                  rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
                  attention_bias=config.bias, mlp_bias=config.bias, attention_dropout=config.attn_dropout,
                  bos_token_id=None, eos_token_id=None, pad_token_id=None)
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def _check_llama_export(c: TransformerConfig) -> None:
    """Refuse, with the reason, a model whose computation a LlamaForCausalLM cannot reproduce."""
    if not c.causal:
        raise ValueError("Llama is always causal: export a model built with causal=True.")
    if not c.norm_first:
        raise ValueError("This model is post-norm (norm_first=False): LN(x + Attention(x)). Llama's blocks are "
                         "pre-norm, x + Attention(RMSNorm(x)), so the same weights would compute something else "
                         "there. Export a pre-norm model (norm_first=True).")
    if c.adaptive_cutoffs is not None:
        raise ValueError("This model has an adaptive softmax (adaptive_cutoffs is set); Llama's output layer is one "
                         "full softmax over the vocabulary. Export a model with adaptive_cutoffs=None.")
    unlike_llama = [f"{name}={getattr(c, name)!r} (Llama: {llama!r})"
                    for name, llama in (("positional", "rope"), ("norm", "rmsnorm"), ("ffn", "swiglu"))
                    if getattr(c, name) != llama]
    if unlike_llama:
        raise ValueError(f"This model is not built like Llama: {', '.join(unlike_llama)}. Llama rotates queries and "
                         "keys (no position table), normalises with RMSNorm and uses a SwiGLU feed-forward network. "
                         "Build the model with TransformerConfig.llama(vocab_size, ...), or export a GPT-2-style "
                         "model with to_gpt2.")


@torch.no_grad()
def to_llama(model: TransformerLM, **config_overrides):
    """A ``transformers.LlamaForCausalLM`` computing exactly what ``model`` computes (eval mode; notebook 06).

    The model must be built the Llama way (:meth:`TransformerConfig.llama`: ``positional="rope"``,
    ``norm="rmsnorm"``, ``ffn="swiglu"``, pre-norm, causal, a full softmax); anything else is refused
    with the reason. The configuration maps one for one (``d_model`` → ``hidden_size``, ``d_ff`` →
    ``intermediate_size``, ``n_kv_heads`` → ``num_key_value_heads``, ``max_context`` →
    ``max_position_embeddings``, ``rope_theta`` → ``rope_parameters["rope_theta"]``, ``bias`` →
    ``attention_bias`` and ``mlp_bias``); ``config_overrides`` set other ``LlamaConfig`` fields, such as
    ``eos_token_id``. The weights are copies, since both keep ``nn.Linear`` layouts and RoPE's
    two-halves pairing: q/k/v (split from a fused projection) → ``q_proj``/``k_proj``/``v_proj``,
    ``out_proj`` → ``o_proj``, the SwiGLU matrices by their names, ``ln1``/``ln2``/``ln_f`` →
    ``input_layernorm``/``post_attention_layernorm``/``norm``. Llama has no dropout on its residual
    branches: ``dropout`` is not exported. Save with ``.save_pretrained(folder)``.
    """
    from transformers import LlamaForCausalLM

    c = model.config
    _check_llama_export(c)
    hf = LlamaForCausalLM(_llama_config(c, **config_overrides))
    hf.eval()
    m = hf.model
    m.embed_tokens.weight.copy_(model.tok_embed.weight)
    sizes = [c.d_model, c.kv_heads * c.d_head, c.kv_heads * c.d_head]  # rows of q, k and v
    for ours, theirs in zip(model.blocks, m.layers):
        weight, bias = ours.attn.qkv_weight()
        a = theirs.self_attn
        for proj, w, b in zip((a.q_proj, a.k_proj, a.v_proj), weight.split(sizes),
                              [None] * 3 if bias is None else bias.split(sizes)):
            _copy_linear(proj, w, b)
        _copy_linear(a.o_proj, ours.attn.out_proj.weight, ours.attn.out_proj.bias)
        for name in ("gate_proj", "up_proj", "down_proj"):
            src = getattr(ours.ff, name)
            _copy_linear(getattr(theirs.mlp, name), src.weight, src.bias)
        theirs.input_layernorm.weight.copy_(ours.ln1.weight)
        theirs.post_attention_layernorm.weight.copy_(ours.ln2.weight)
    m.norm.weight.copy_(model.ln_f.weight)
    if not c.tie_weights:
        hf.lm_head.weight.copy_(model.head.linear.weight)
    return hf.to(model.tok_embed.weight.device)


def _copy_linear(dst: nn.Linear, weight: Tensor, bias: Tensor | None) -> None:
    dst.weight.copy_(weight)
    if bias is not None:
        dst.bias.copy_(bias)


@torch.no_grad()
def from_llama(hf_model) -> TransformerLM:
    """A :class:`TransformerLM` with the weights of a ``transformers.LlamaForCausalLM`` (the inverse of
    :func:`to_llama`; notebook 06). Only what the course's model can compute is accepted: silu, the
    original RoPE (``rope_type="default"``), ``head_dim = hidden_size / num_attention_heads``, and
    biases either everywhere or nowhere."""
    hc = hf_model.config
    if hc.hidden_act != "silu":
        raise ValueError(f"hidden_act={hc.hidden_act!r}: the course's SwiGLU uses silu, Llama's default.")
    rope = hc.rope_parameters or {}
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"rope_type={rope.get('rope_type')!r}: only the original RoPE ('default') is built here; "
                         "scaled variants (linear, dynamic, yarn, llama3) change the angles.")
    if hc.head_dim * hc.num_attention_heads != hc.hidden_size:
        raise ValueError(f"head_dim={hc.head_dim} with {hc.num_attention_heads} heads is not hidden_size="
                         f"{hc.hidden_size}: TransformerLM's heads split d_model evenly.")
    if hc.attention_bias != hc.mlp_bias:
        raise ValueError("attention_bias and mlp_bias differ; TransformerConfig has one bias switch for all its "
                         "linear layers.")
    kv = hc.num_key_value_heads
    config = TransformerConfig.llama(
        hc.vocab_size, max_context=hc.max_position_embeddings, d_model=hc.hidden_size, n_layers=hc.num_hidden_layers,
        n_heads=hc.num_attention_heads, n_kv_heads=None if kv == hc.num_attention_heads else kv,
        d_ff=hc.intermediate_size, attn_dropout=float(hc.attention_dropout), layer_norm_eps=hc.rms_norm_eps,
        init_std=hc.initializer_range, tie_weights=bool(hc.tie_word_embeddings),
        rope_theta=float(rope.get("rope_theta", 10000.0)), bias=bool(hc.attention_bias))
    model = TransformerLM(config)
    m = hf_model.model
    model.tok_embed.weight.copy_(m.embed_tokens.weight)
    for ours, theirs in zip(model.blocks, m.layers):
        a = theirs.self_attn
        ours.attn.load_qkv([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight],
                           None if a.q_proj.bias is None else [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
        ours.attn.load_out(a.o_proj.weight, a.o_proj.bias)
        for name in ("gate_proj", "up_proj", "down_proj"):
            src = getattr(theirs.mlp, name)
            _copy_linear(getattr(ours.ff, name), src.weight, src.bias)
        ours.ln1.weight.copy_(theirs.input_layernorm.weight)
        ours.ln2.weight.copy_(theirs.post_attention_layernorm.weight)
    model.ln_f.weight.copy_(m.norm.weight)
    if not config.tie_weights:
        model.head.linear.weight.copy_(hf_model.lm_head.weight)
    return model.to(m.embed_tokens.weight.device).eval()
