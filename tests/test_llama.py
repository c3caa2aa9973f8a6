"""Tests for notebook 06's Llama-style options of llmcourse.transformer: RMSNorm, rotary positions, SwiGLU and
grouped-query attention from their formulas, each against PyTorch or transformers' Llama on the same weights;
the config's checks; export to LlamaForCausalLM and back."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.attention import capture_attention
from llmcourse.decoding import generate
from llmcourse.training import TrainConfig, load_checkpoint, save_checkpoint, train
from llmcourse.transformer import (
    RMSNorm,
    SelfAttention,
    SwiGLU,
    TransformerConfig,
    TransformerLM,
    apply_rope,
    from_llama,
    parameter_counts,
    model_flops_per_token,
    rms_norm,
    rope_tables,
    rotate_half,
    to_gpt2,
    to_llama,
)

VOCAB = 50


def tiny_llama(**kwargs) -> TransformerLM:
    torch.manual_seed(0)
    config = TransformerConfig.llama(VOCAB, **{"max_context": 12, "d_model": 16, "n_layers": 2, "n_heads": 4,
                                               **kwargs})
    return TransformerLM(config)


def randomise(model: nn.Module, std: float = 0.3) -> nn.Module:
    """Random weights everywhere (norm gains and biases included), so that a wrong copy cannot hide."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model.eval()


# --------------------------------------------------------------------------------------------
# RMSNorm
# --------------------------------------------------------------------------------------------
def test_rms_norm_from_its_formula_equals_torch_and_llama():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 4 + 2
    ours = RMSNorm(16, eps=1e-5)
    theirs_torch, theirs_hf = nn.RMSNorm(16, eps=1e-5), LlamaRMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        theirs_torch.weight.copy_(ours.weight)
        theirs_hf.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), theirs_torch(x), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours(x), theirs_hf(x), atol=1e-6, rtol=1e-6)
    # the formula: unit root mean square, no recentring, invariant to the scale of the input
    plain = rms_norm(x, eps=0.0)
    torch.testing.assert_close(plain.pow(2).mean(-1), torch.ones(3, 5))
    assert plain.mean(-1).abs().min() > 0.1  # the mean is kept (LayerNorm would remove it)
    torch.testing.assert_close(rms_norm(7.0 * x, eps=0.0), plain)
    assert not torch.allclose(rms_norm(x), F.layer_norm(x, (16,)), atol=1e-2)
    # squares of float16 inputs above 256 overflow: the mean is taken in float32
    big = torch.full((2, 8), 1000.0, dtype=torch.float16)
    naive = big * torch.rsqrt(big.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert float(naive.abs().max()) == 0.0  # 1000² is inf in float16, and 1 / sqrt(inf) = 0
    out = rms_norm(big)
    assert out.dtype == torch.float16 and torch.allclose(out.float(), torch.ones(2, 8), atol=1e-3)


# --------------------------------------------------------------------------------------------
# Rotary position embeddings
# --------------------------------------------------------------------------------------------
def test_rope_tables_and_rotation_equal_transformers_llama():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
    from transformers.models.llama.modeling_llama import rotate_half as hf_rotate_half

    d_head, t, theta = 8, 20, 500000.0
    hf_config = LlamaConfig(hidden_size=32, num_attention_heads=4, max_position_embeddings=t,
                            rope_parameters={"rope_type": "default", "rope_theta": theta})
    torch.manual_seed(0)
    q, k = torch.randn(2, 4, t, d_head), torch.randn(2, 4, t, d_head)
    hf_cos, hf_sin = LlamaRotaryEmbedding(hf_config)(q, torch.arange(t)[None])
    cos, sin = rope_tables(t, d_head, theta)
    assert cos.shape == sin.shape == (t, d_head)
    torch.testing.assert_close(cos, hf_cos[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, hf_sin[0], atol=1e-6, rtol=0)
    assert torch.equal(rotate_half(q), hf_rotate_half(q))
    hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    torch.testing.assert_close(apply_rope(q, cos, sin), hf_q, atol=1e-6, rtol=0)
    torch.testing.assert_close(apply_rope(k, cos, sin), hf_k, atol=1e-6, rtol=0)


def test_rope_is_a_rotation_that_makes_scores_depend_on_relative_position():
    d_head = 16
    cos, sin = rope_tables(64, d_head)
    # pair i is (feature i, feature i + d/2), turned by m * 10000^(-2i/d) at position m
    m, i = 5, 3
    angle = m * 10000 ** (-2 * i / d_head)
    assert math.isclose(float(cos[m, i]), math.cos(angle), abs_tol=1e-6)
    assert math.isclose(float(sin[m, i + d_head // 2]), math.sin(angle), abs_tol=1e-6)
    assert torch.equal(cos[0], torch.ones(d_head)) and torch.equal(sin[0], torch.zeros(d_head))  # position 0 stays
    torch.manual_seed(0)
    q, k = torch.randn(d_head), torch.randn(d_head)
    x = torch.randn(3, 64, d_head)
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))  # lengths unchanged
    assert torch.equal(rotate_half(rotate_half(x)), -x)  # two quarter turns are a half turn

    def score(m: int, n: int) -> float:
        return float(apply_rope(q, cos[m], sin[m]) @ apply_rope(k, cos[n], sin[n]))

    for m, n in ((7, 3), (20, 2), (9, 9)):
        for shift in (1, 13, 40):
            assert math.isclose(score(m + shift, n + shift), score(m, n), rel_tol=1e-4, abs_tol=1e-4)
    assert not math.isclose(score(7, 3), score(3, 7), abs_tol=1e-3)  # the order of the two positions matters
    with pytest.raises(ValueError, match="even"):
        rope_tables(10, 7)


# --------------------------------------------------------------------------------------------
# SwiGLU
# --------------------------------------------------------------------------------------------
def test_swiglu_from_its_formula_equals_llama_mlp():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    torch.manual_seed(0)
    ours = SwiGLU(16, 40).eval()
    assert all(m.bias is None for m in (ours.gate_proj, ours.up_proj, ours.down_proj))
    theirs = LlamaMLP(LlamaConfig(hidden_size=16, intermediate_size=40, num_attention_heads=4, hidden_act="silu",
                                mlp_bias=False))
    theirs.load_state_dict(ours.state_dict())  # the same names: gate_proj, up_proj, down_proj
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=1e-6)
        gate, up = x @ ours.gate_proj.weight.T, x @ ours.up_proj.weight.T
        by_hand = (gate * torch.sigmoid(gate) * up) @ ours.down_proj.weight.T  # down(silu(gate x) * up x)
        torch.testing.assert_close(ours(x), by_hand, atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Grouped-query attention
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_grouped_query_attention_is_attention_with_shared_key_value_heads(n_kv_heads):
    torch.manual_seed(0)
    gqa = SelfAttention(16, 4, n_kv_heads, bias=True).eval()
    assert gqa.k_proj.weight.shape == (n_kv_heads * 4, 16)
    # the same attention with one key/value head per query head, each a copy of its group's
    full = SelfAttention(16, 4, bias=True).eval()
    group = 4 // n_kv_heads

    def repeat(t):  # (kv_heads * d_head, ...) -> (heads * d_head, ...): consecutive query heads share a head
        return t.unflatten(0, (n_kv_heads, 4)).repeat_interleave(group, dim=0).flatten(0, 1)

    full.load_qkv([gqa.q_proj.weight, repeat(gqa.k_proj.weight), repeat(gqa.v_proj.weight)],
                  [gqa.q_proj.bias, repeat(gqa.k_proj.bias), repeat(gqa.v_proj.bias)])
    full.load_out(gqa.out_proj.weight, gqa.out_proj.bias)
    x = torch.randn(2, 9, 16)
    cos, sin = rope_tables(9, 4)
    with torch.no_grad():
        for rope in (None, (cos, sin)):
            a, wa = gqa(x, rope=rope, need_weights=True)
            b, wb = full(x, rope=rope, need_weights=True)
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(wa, wb, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="divide"):
        SelfAttention(16, 4, 3)


# --------------------------------------------------------------------------------------------
# The config and the model
# --------------------------------------------------------------------------------------------
def test_the_default_is_gpt2s_block_and_llama_sets_the_modern_options():
    gpt = TransformerConfig(vocab_size=10)
    assert (gpt.positional, gpt.norm, gpt.ffn, gpt.bias, gpt.n_kv_heads, gpt.kv_heads, gpt.d_ff) == (
        "learned", "layernorm", "gelu", True, None, 4, 1024)
    llama = TransformerConfig.llama(10, d_model=48, n_heads=4, n_kv_heads=2)
    assert (llama.positional, llama.norm, llama.ffn, llama.bias, llama.dropout, llama.attn_dropout) == (
        "rope", "rmsnorm", "swiglu", False, 0.0, 0.0)
    assert (llama.kv_heads, llama.d_head, llama.rope_theta) == (2, 12, 10000.0)
    # SwiGLU's d_ff: 8/3 d rounded up to a multiple of 8, so that three matrices hold about GELU's two
    assert llama.d_ff == 128 and TransformerConfig.llama(10, d_model=16).d_ff == 48
    assert abs(3 * 48 * 128 - 2 * 48 * 192) / (2 * 48 * 192) < 0.01
    assert TransformerConfig.llama(10, d_ff=100, positional="learned").positional == "learned"  # overrides win
    model = tiny_llama()
    block = model.blocks[0]
    assert isinstance(block.ln1, RMSNorm) and isinstance(block.ff, SwiGLU) and isinstance(model.ln_f, RMSNorm)
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert not any("pos" in name for name, _ in model.named_parameters())
    assert "rope_cos" not in model.state_dict()  # derived from the config, not saved


def test_bad_llama_options_are_clear_errors():
    with pytest.raises(ValueError, match="RoPE rotates each head's features in pairs.*= 5 is odd"):
        TransformerConfig.llama(10, d_model=20, n_heads=4)
    TransformerConfig(vocab_size=10, d_model=20, n_heads=4)  # an odd head size is fine without RoPE
    with pytest.raises(ValueError, match="n_kv_heads=3 does not divide n_heads=4"):
        TransformerConfig(vocab_size=10, d_model=16, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="n_kv_heads=0"):
        TransformerConfig(vocab_size=10, d_model=16, n_heads=4, n_kv_heads=0)
    with pytest.raises(ValueError, match="norm='batchnorm'.*'rmsnorm'"):
        TransformerConfig(vocab_size=10, norm="batchnorm")
    with pytest.raises(ValueError, match="ffn='relu'.*'swiglu'"):
        TransformerConfig(vocab_size=10, ffn="relu")
    with pytest.raises(ValueError, match="positional='rotary'.*'rope'"):
        TransformerConfig(vocab_size=10, positional="rotary")
    with pytest.raises(ValueError, match="rope_theta"):
        TransformerConfig.llama(10, rope_theta=0.0)
    with pytest.raises(ValueError, match="n_heads must be at least 1"):
        TransformerConfig(vocab_size=10, n_heads=0)


@pytest.mark.parametrize("kwargs", [{}, {"n_kv_heads": 2}, {"n_kv_heads": 1, "bias": True}, {"tie_weights": False},
                                    {"positional": "rope"}, {"norm": "rmsnorm"}, {"ffn": "swiglu", "bias": False}])
def test_parameter_counts_and_flops_follow_the_options(kwargs):
    llama = "positional" not in kwargs and "norm" not in kwargs and "ffn" not in kwargs
    torch.manual_seed(0)
    config = (TransformerConfig.llama(VOCAB, max_context=12, d_model=16, n_layers=2, n_heads=4, **kwargs) if llama
              else TransformerConfig(VOCAB, max_context=12, d_model=16, n_layers=2, n_heads=4, **kwargs))
    model = TransformerLM(config)
    counts = parameter_counts(config)
    assert counts["total"] == model.num_parameters()
    assert counts["attention (all blocks)"] == sum(p.numel() for b in model.blocks for p in b.attn.parameters())
    assert counts["feed-forward (all blocks)"] == sum(p.numel() for b in model.blocks for p in b.ff.parameters())
    # FLOPs: 6 per weight of every matrix product (no biases, no norms) plus attention's scores
    matmuls = sum(m.weight.numel() for m in model.blocks.modules() if isinstance(m, nn.Linear)) + VOCAB * 16
    assert model_flops_per_token(config) == 6 * matmuls + 12 * 2 * 12 * 16


@pytest.mark.parametrize("kwargs", [{}, {"n_kv_heads": 2}, {"norm_first": False}, {"positional": "learned"}])
def test_a_llama_model_never_looks_at_the_future(kwargs):
    model = randomise(tiny_llama(**kwargs), std=0.2)
    x = torch.randint(0, VOCAB, (2, 10))
    with torch.no_grad():
        base = model(x)
        for t in range(10):
            changed = x.clone()
            changed[:, t] = (changed[:, t] + 1) % VOCAB
            out = model(changed)
            assert torch.equal(out[:, :t], base[:, :t]), f"changing position {t} changed earlier logits"
            assert not torch.allclose(out[:, t], base[:, t])


def test_rope_alone_tells_the_order_of_tokens():
    """Without position vectors, RoPE is the model's only source of order (besides the causal mask): a
    one-layer model reading the same tokens in another order at its last position gives other logits."""
    x = torch.randint(0, VOCAB, (1, 8))
    perm = torch.tensor([3, 1, 4, 0, 6, 2, 5, 7])  # the last token stays last
    with torch.no_grad():
        rope = randomise(tiny_llama(n_layers=1), std=0.5)
        assert not torch.allclose(rope(x[:, perm])[:, -1], rope(x)[:, -1], atol=1e-4)
        none = randomise(tiny_llama(n_layers=1, positional="none"), std=0.5)
        torch.testing.assert_close(none(x[:, perm])[:, -1], none(x)[:, -1], atol=1e-5, rtol=1e-5)


def test_a_llama_model_trains_saves_and_shows_its_attention(tmp_path):
    torch.manual_seed(0)
    stream = torch.arange(400) % 7
    windows, targets = stream[:-1].unfold(0, 8, 8)[:40], stream[1:].unfold(0, 8, 8)[:40]
    batches = [(windows[i : i + 8], targets[i : i + 8]) for i in range(0, 40, 8)]
    model = tiny_llama(max_context=8, n_kv_heads=2)
    history = train(model, batches, batches, TrainConfig(epochs=6, lr=3e-3, warmup_steps=2, log_every=1,
                                                         progress=False, restore_best=False), device="cpu")
    assert history.train[-1]["loss"] < history.train[0]["loss"] - 1.0
    save_checkpoint(model, tmp_path)
    loaded = load_checkpoint(tmp_path).eval()
    assert loaded.config == model.config
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(windows[:2]), model(windows[:2]))
    with capture_attention(model) as maps:
        model(windows[:2])
    w = maps["blocks.1.attn"]
    assert w.shape == (2, 4, 8, 8) and float(w.triu(diagonal=1).abs().max()) == 0.0


# --------------------------------------------------------------------------------------------
# Export to transformers' LlamaForCausalLM
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{}, {"tie_weights": False, "n_kv_heads": 2}, {"n_kv_heads": 1, "bias": True},
                                    {"rope_theta": 500000.0, "d_ff": 40}])
def test_llama_export_matches_and_round_trips(kwargs, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = randomise(tiny_llama(**kwargs))
    x = torch.randint(0, VOCAB, (3, 12))
    hf = to_llama(model)
    assert isinstance(hf, transformers.LlamaForCausalLM)
    hc = hf.config
    assert (hc.hidden_size, hc.intermediate_size, hc.num_key_value_heads, hc.max_position_embeddings) == (
        16, model.config.d_ff, model.config.kv_heads, 12)
    assert (hf.lm_head.weight is hf.model.embed_tokens.weight) == model.config.tie_weights
    with torch.no_grad():
        ours, theirs = model(x), hf(x).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    back = from_llama(hf)
    assert back.config == model.config
    assert list(back.state_dict()) == list(model.state_dict())
    for (name, a), b in zip(model.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
    hf.save_pretrained(tmp_path)
    reloaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, ours, atol=1e-5, rtol=1e-5)
    # Hugging Face's greedy generate() (with its own cache) continues as the course's generate() does
    prompt = x[:2, :4]
    hf_ids = reloaded.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(hf_ids, generate(model, prompt, 8, temperature=0))
    assert torch.equal(hf_ids, generate(model, prompt, 8, temperature=0, use_cache=True))


def test_llama_export_refuses_what_llama_cannot_compute():
    pytest.importorskip("transformers")
    gpt = TransformerLM(TransformerConfig(VOCAB, max_context=12, d_model=16, n_layers=1, n_heads=4))
    with pytest.raises(ValueError, match=r"positional='learned' \(Llama: 'rope'\).*norm='layernorm'.*to_gpt2"):
        to_llama(gpt)
    with pytest.raises(ValueError, match="ffn='gelu'"):
        to_llama(tiny_llama(ffn="gelu"))
    with pytest.raises(ValueError, match="post-norm"):
        to_llama(tiny_llama(norm_first=False))
    with pytest.raises(ValueError, match="causal"):
        to_llama(tiny_llama(causal=False))
    with pytest.raises(ValueError, match="adaptive softmax"):
        to_llama(tiny_llama(tie_weights=False, adaptive_cutoffs=(10, 30)))
    # and GPT-2 refuses Llama's options, pointing to to_llama
    for kwargs in ({}, {"positional": "learned"}, {"positional": "learned", "norm": "layernorm", "ffn": "gelu",
                                                     "n_kv_heads": 2}):
        with pytest.raises(ValueError, match="to_llama"):
            to_gpt2(tiny_llama(**kwargs))


def test_gpt2_export_of_a_model_without_biases_uses_zero_biases():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = randomise(TransformerLM(TransformerConfig(VOCAB, max_context=12, d_model=16, n_layers=2, n_heads=4,
                                                      bias=False)))
    assert model.blocks[0].attn.qkv_proj.bias is None and model.blocks[0].ln1.bias is not None
    x = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(to_gpt2(model)(x).logits, model(x), atol=1e-4, rtol=1e-4)


def test_from_llama_refuses_what_the_course_model_cannot_compute():
    transformers = pytest.importorskip("transformers")
    base = dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=4)
    for extra, match in (({"hidden_act": "gelu"}, "silu"),
                         ({"rope_parameters": {"rope_type": "linear", "factor": 2.0}}, "rope_type"),
                         ({"head_dim": 8}, "head_dim"),
                         ({"attention_bias": True}, "bias")):
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**base, **extra))
        with pytest.raises(ValueError, match=match):
            from_llama(hf)
