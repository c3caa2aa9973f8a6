"""Tests for llmcourse.transformer: LayerNorm and GELU from their formulas, shapes, causality, pre- and
post-LN, GPT-2 export, context limits, training."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.attention import MultiHeadAttention, capture_attention
from llmcourse.decoding import generate
from llmcourse.training import TrainConfig, load_checkpoint, save_checkpoint, train
from llmcourse.transformer import (
    TransformerConfig,
    TransformerLM,
    from_gpt2,
    gelu_tanh,
    layer_norm,
    model_flops_per_token,
    parameter_counts,
    sinusoidal_encoding,
    to_gpt2,
)

VOCAB = 50


def tiny(**kwargs) -> TransformerLM:
    torch.manual_seed(0)
    config = TransformerConfig(**{"vocab_size": VOCAB, "max_context": 12, "d_model": 16, "n_layers": 2,
                                  "n_heads": 4, **kwargs})
    return TransformerLM(config)


def test_layer_norm_from_its_formula_equals_nn_layer_norm():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 4 + 2
    ln = nn.LayerNorm(16, eps=1e-5)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    assert torch.allclose(layer_norm(x, ln.weight, ln.bias, eps=1e-5), ln(x), atol=1e-5)
    plain = layer_norm(x)  # no gain or shift: zero mean, unit (biased) variance per vector
    assert torch.allclose(plain.mean(-1), torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(plain.var(-1, unbiased=False), torch.ones(3, 5), atol=1e-3)
    # eps matters for vectors of small variance, and the variance is the biased one (divide by d)
    small = torch.randn(4, 8) * 1e-3
    assert torch.allclose(layer_norm(small, eps=1e-5), F.layer_norm(small, (8,), eps=1e-5), atol=1e-5)
    assert not torch.allclose(layer_norm(small, eps=1e-5), layer_norm(small, eps=1e-12), atol=1e-2)
    unbiased = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5)
    assert not torch.allclose(unbiased, layer_norm(x), atol=1e-3)


def test_gelu_tanh_equals_torch_and_stays_close_to_the_exact_gelu():
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    assert torch.allclose(gelu_tanh(x), F.gelu(x, approximate="tanh"), atol=1e-12)
    gap = (gelu_tanh(x) - F.gelu(x)).abs().max().item()  # against the erf form
    assert 1e-5 < gap < 1e-3, gap
    assert isinstance(tiny().blocks[0].ff.act, nn.GELU) and tiny().blocks[0].ff.act.approximate == "tanh"


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "none"])
def test_shapes_and_parameter_count(positional):
    model = tiny(positional=positional)
    x = torch.randint(0, VOCAB, (3, 7))
    assert model(x).shape == (3, 7, VOCAB)
    assert model.hidden_states(x).shape == (3, 7, 16)
    counts = parameter_counts(model.config)
    assert counts["total"] == model.num_parameters()
    assert model.head.linear.weight is model.tok_embed.weight  # tied
    untied = tiny(positional=positional, tie_weights=False)
    assert untied.num_parameters() == model.num_parameters() + VOCAB * 16
    assert parameter_counts(tiny(norm_first=False).config) == parameter_counts(tiny().config)
    assert untied.num_parameters(non_embedding=True) == model.num_parameters(non_embedding=True)
    assert sum(isinstance(m, MultiHeadAttention) for m in model.modules()) == 2


def test_sinusoidal_encoding_matches_its_formula():
    pe = sinusoidal_encoding(50, 8)
    pos, i = 17, 3
    assert pe.shape == (50, 8)
    assert math.isclose(float(pe[pos, 2 * i]), math.sin(pos / 10000 ** (2 * i / 8)), abs_tol=1e-5)
    assert math.isclose(float(pe[pos, 2 * i + 1]), math.cos(pos / 10000 ** (2 * i / 8)), abs_tol=1e-5)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(10, 7)


@pytest.mark.parametrize("positional, norm_first", [("learned", True), ("sinusoidal", True), ("none", True),
                                                     ("learned", False)])
def test_changing_a_future_token_never_changes_earlier_logits(positional, norm_first):
    model = tiny(positional=positional, norm_first=norm_first).eval()
    x = torch.randint(0, VOCAB, (2, 10))
    with torch.no_grad():
        base = model(x)
        for t in range(10):
            changed = x.clone()
            changed[:, t] = (changed[:, t] + 1) % VOCAB
            out = model(changed)
            assert torch.equal(out[:, :t], base[:, :t]), f"changing position {t} changed earlier logits"
            assert not torch.allclose(out[:, t], base[:, t])
    # the bug notebook 04 shows: without the mask the past does see the future
    leaky = tiny(positional=positional, causal=False).eval()
    with torch.no_grad():
        changed = x.clone()
        changed[:, -1] = (changed[:, -1] + 1) % VOCAB
        assert not torch.allclose(leaky(changed)[:, 0], leaky(x)[:, 0])


@pytest.mark.parametrize("tie", [True, False])
def test_gpt2_export_matches_and_round_trips(tie, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = tiny(tie_weights=tie, dropout=0.0, attn_dropout=0.0)
    with torch.no_grad():  # random weights everywhere, biases and layer norms included
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.eval()
    x = torch.randint(0, VOCAB, (3, 12))
    hf = to_gpt2(model)
    with torch.no_grad():
        ours, theirs = model(x), hf(x).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    back = from_gpt2(hf)
    assert back.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name
    hf.save_pretrained(tmp_path)
    reloaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(x).logits, ours, atol=1e-4)
    # Hugging Face's greedy generate() continues exactly as the course's generate() does
    prompt = x[:1, :4]
    hf_ids = reloaded.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(hf_ids, generate(model, prompt, 6, temperature=0))


def test_sinusoidal_model_exports_as_a_copy_of_its_table():
    pytest.importorskip("transformers")
    model = tiny(positional="sinusoidal").eval()
    x = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        assert torch.allclose(to_gpt2(model)(x).logits, model(x), atol=1e-4)


def test_export_refuses_a_model_without_causal_mask():
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="causal"):
        to_gpt2(tiny(causal=False))


def test_pre_ln_is_the_default_and_post_ln_is_the_other_order_of_the_same_weights():
    pre, post = tiny(dropout=0.0, attn_dropout=0.0).eval(), tiny(norm_first=False, dropout=0.0, attn_dropout=0.0).eval()
    assert pre.config.norm_first and all(b.norm_first for b in pre.blocks)
    assert not any(b.norm_first for b in post.blocks)
    post.load_state_dict(pre.state_dict())  # the same parameters, by name and shape
    block, h = pre.blocks[0], torch.randn(2, 5, 16)
    with torch.no_grad():
        a, _ = block.attn(block.ln1(h), is_causal=True)
        mid = h + a
        assert torch.equal(block(h), mid + block.ff(block.ln2(mid)))  # pre-LN: x + F(LN(x))
        a, _ = block.attn(h, is_causal=True)
        mid = block.ln1(h + a)
        assert torch.equal(post.blocks[0](h), block.ln2(mid + block.ff(mid)))  # post-LN: LN(x + F(x))
        x = torch.randint(0, VOCAB, (2, 9))
        assert not torch.allclose(pre(x), post(x), atol=1e-3)
        # post-LN ends each block on a layer norm: the stream has unit scale at every depth
        out = post.blocks[1](post.blocks[0](torch.randn(2, 5, 16) * 10))
        assert torch.allclose(out.std(-1, unbiased=False), torch.ones(2, 5), atol=1e-3)


def test_export_refuses_a_post_ln_model_and_keeps_pre_ln_exact():
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="post-LN"):
        to_gpt2(tiny(norm_first=False))
    model = tiny(norm_first=True).eval()
    x = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        assert torch.allclose(to_gpt2(model)(x).logits, model(x), atol=1e-4)


def test_a_model_without_positions_sees_order_only_through_its_mask():
    model = tiny(positional="none", dropout=0.0, attn_dropout=0.0).eval()
    assert not any("pos" in name for name, _ in model.named_parameters())
    assert torch.equal(model.positions(5), torch.zeros(5, 16))
    x = torch.randint(0, VOCAB, (1, 8))
    perm = torch.tensor([3, 1, 4, 0, 6, 2, 5, 7])  # the last token stays last
    with torch.no_grad():
        # without the causal mask either, the model cannot tell orders apart: outputs are permuted alike
        bag = tiny(positional="none", causal=False, dropout=0.0, attn_dropout=0.0).eval()
        assert torch.allclose(bag(x[:, perm]), bag(x)[:, perm], atol=1e-5)
        # with the mask, one layer's last position sees the same set of tokens in any order: the same logits;
        # the earlier positions see different prefixes, and a second layer reads order from them
        one = tiny(positional="none", n_layers=1, dropout=0.0, attn_dropout=0.0).eval()
        assert torch.allclose(one(x[:, perm])[:, -1], one(x)[:, -1], atol=1e-5)
        assert not torch.allclose(model(x[:, perm])[:, -1], model(x)[:, -1], atol=1e-5)
        assert not torch.allclose(tiny(n_layers=1)(x[:, perm])[:, -1], tiny(n_layers=1)(x)[:, -1], atol=1e-5)
    pytest.importorskip("transformers")
    with torch.no_grad():
        assert torch.allclose(to_gpt2(model)(x).logits, model(x), atol=1e-4)


def test_too_long_a_context_is_a_clear_error_and_generation_slides():
    model = tiny().eval()
    with pytest.raises(ValueError, match="max_context=12"):
        model(torch.randint(0, VOCAB, (1, 13)))
    out = generate(model, torch.randint(0, VOCAB, (20,)), 10, temperature=0)
    assert out.shape == (30,)
    # each new token is what the model predicts from the last 12 ids only
    with torch.no_grad():
        for t in range(20, 30):
            assert int(out[t]) == int(model(out[None, t - 12 : t])[0, -1].argmax())


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(vocab_size=10, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="positional"):
        TransformerConfig(vocab_size=10, positional="rotary")
    assert TransformerConfig(vocab_size=10).norm_first  # pre-LN unless asked
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        tiny()(torch.randint(0, VOCAB, (5,)))


def test_a_few_training_steps_lower_the_loss(tmp_path):
    torch.manual_seed(0)
    stream = torch.arange(400) % 7  # a repeating pattern a model can learn quickly
    windows = stream[:-1].unfold(0, 8, 8)[:40]
    targets = stream[1:].unfold(0, 8, 8)[:40]
    batches = [(windows[i : i + 8], targets[i : i + 8]) for i in range(0, 40, 8)]
    model = tiny(max_context=8)
    history = train(model, batches, batches, TrainConfig(epochs=6, lr=3e-3, warmup_steps=2, log_every=1,
                                                         progress=False, restore_best=False), device="cpu")
    first, last = history.train[0]["loss"], history.train[-1]["loss"]
    assert last < first - 1.0, (first, last)
    assert history.valid[-1]["loss"] < math.log(VOCAB) - 1.0
    # checkpoints rebuild the model from its config (config_class)
    save_checkpoint(model, tmp_path)
    loaded = load_checkpoint(tmp_path).eval()
    model.eval()
    x = windows[:2]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.head.linear.weight is loaded.tok_embed.weight


def test_attention_maps_can_be_captured():
    model = tiny().eval()
    with capture_attention(model) as maps:
        model(torch.randint(0, VOCAB, (2, 9)))
    assert set(maps) == {"blocks.0.attn", "blocks.1.attn"}
    w = maps["blocks.0.attn"]
    assert w.shape == (2, 4, 9, 9)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 9), atol=1e-5)
    assert float(w.triu(diagonal=1).abs().max()) == 0.0  # no weight on the future


def test_flops_per_token():
    config = TransformerConfig(vocab_size=1000, max_context=64, d_model=32, n_layers=2, n_heads=4)
    n = 2 * (4 * 32 * 32 + 2 * 32 * 128) + 1000 * 32
    assert model_flops_per_token(config) == 6 * n + 12 * 2 * 64 * 32
    adaptive = TransformerConfig(vocab_size=1000, max_context=64, d_model=32, n_layers=2, n_heads=4,
                                 tie_weights=False, adaptive_cutoffs=(100, 400))
    # head 32 * (100 + 2); tails 32 -> 8 -> 300 words and 32 -> 2 -> 600 words
    head = 32 * 102 + (32 * 8 + 8 * 300) + (32 * 2 + 2 * 600)
    assert model_flops_per_token(adaptive) == 6 * (n - 1000 * 32 + head) + 12 * 2 * 64 * 32
    assert parameter_counts(adaptive)["output layer"] == head
    assert parameter_counts(adaptive)["total"] == TransformerLM(adaptive).num_parameters()


def test_transformer_lm_names_ids_outside_its_vocabulary():
    model = TransformerLM(TransformerConfig(10, max_context=8, d_model=8, n_layers=1, n_heads=2))
    with pytest.raises(ValueError, match=r"TransformerLM got token id 10, outside the model's vocabulary \(0 to 9\)"):
        model(torch.full((1, 4), 10))
    with pytest.raises(TypeError, match=r"integer token ids \(torch.long\); got dtype torch.float32"):
        model(torch.zeros(1, 4))
