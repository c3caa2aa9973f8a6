import math

import pytest
import torch
from torch import nn

from llmcourse.attention import (MultiHeadAttention, capture_attention,
                                 causal_mask, combine_masks, padding_mask,
                                 scaled_dot_product_attention)
from llmcourse.config import seed_everything
from llmcourse.seq2seq import EOS, PAD, SEP, ReversalTask, Seq2Seq, Seq2SeqConfig, accuracy_by_length
from llmcourse.training import TrainConfig, evaluate, train

ATOL = 1e-5


def _qkv(b=2, h=3, tq=5, tk=7, d=8, dv=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, tq, d, generator=g), torch.randn(b, h, tk, d, generator=g),
            torch.randn(b, h, tk, dv, generator=g))


# ---------------------------------------------------------------------------------------------
# scaled_dot_product_attention
# ---------------------------------------------------------------------------------------------
def test_sdpa_matches_the_formula_and_rows_sum_to_one():
    q, k, v = _qkv()
    out, w = scaled_dot_product_attention(q, k, v)
    expected_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(out, expected_w @ v)
    assert out.shape == (2, 3, 5, 6) and w.shape == (2, 3, 5, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))


@pytest.mark.parametrize("kind", ["none", "causal", "bool", "float", "padding+causal"])
def test_naive_and_fused_paths_agree(kind):
    q, k, v = _qkv(tq=6, tk=6)
    mask, is_causal = None, False
    if kind == "causal":
        is_causal = True
    elif kind == "bool":
        mask = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1)) > 0.4
        mask[..., 0] = True  # every query sees at least one key
    elif kind == "float":
        mask = torch.randn(2, 3, 6, 6)
    elif kind == "padding+causal":
        mask, is_causal = padding_mask(torch.zeros(2, 6), lengths=[6, 3])[:, None], True
    naive, w = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal)
    fused, none = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, need_weights=False)
    assert w is not None and none is None
    torch.testing.assert_close(naive, fused, atol=ATOL, rtol=1e-5)


def test_falls_back_to_the_naive_path_where_the_fused_kernel_fails(monkeypatch):
    q, k, v = _qkv(tq=6, tk=6)
    expected, _ = scaled_dot_product_attention(q, k, v, is_causal=True)

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this input")

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", broken)
    with pytest.warns(UserWarning, match="naive path"):
        out, w = scaled_dot_product_attention(q, k, v, is_causal=True, need_weights=False)
    assert w is None
    torch.testing.assert_close(out, expected)


def test_masked_positions_get_exactly_zero_weight():
    q, k, v = _qkv(tq=6, tk=6)
    _, w = scaled_dot_product_attention(q, k, v, is_causal=True)
    future = ~causal_mask(6)
    assert torch.all(w[..., future] == 0.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 6))
    keep = padding_mask(torch.tensor([[5, 6, 7, 0, 0, 0, 0], [5, 6, 7, 8, 9, 1, 0]]), pad_id=0)  # (2, 1, 7)
    _, w = scaled_dot_product_attention(*_qkv(), keep[:, None])
    assert torch.all(w[0, :, :, 3:] == 0.0) and torch.all(w[1, :, :, 6] == 0.0)
    assert torch.all(w[0, :, :, :3] > 0.0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))


def test_padding_changes_nothing_when_masked():
    """Appending padded keys/values must not change the output when they are masked."""
    q, k, v = _qkv(tk=4)
    out, _ = scaled_dot_product_attention(q, k, v)
    k_pad = torch.cat([k, torch.randn(2, 3, 3, 8)], dim=2)
    v_pad = torch.cat([v, torch.randn(2, 3, 3, 6)], dim=2)
    keep = padding_mask(torch.zeros(2, 7), lengths=[4, 4])[:, None]
    for need in (True, False):
        out_pad, _ = scaled_dot_product_attention(q, k_pad, v_pad, keep, need_weights=need)
        torch.testing.assert_close(out_pad, out, atol=ATOL, rtol=1e-5)
    unmasked, _ = scaled_dot_product_attention(q, k_pad, v_pad)
    assert not torch.allclose(unmasked, out, atol=1e-3)  # what goes wrong without the mask


def test_fully_masked_row_is_a_clear_error_not_nan():
    q, k, v = _qkv(tq=3, tk=3)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    for need in (True, False):
        with pytest.raises(ValueError, match="fully masked"):
            scaled_dot_product_attention(q, k, v, mask, need_weights=need)
    float_mask = torch.zeros(3, 3)
    float_mask[2] = float("-inf")
    with pytest.raises(ValueError, match="fully masked"):
        scaled_dot_product_attention(q, k, v, float_mask)
    # left padding + causal: the padded first query sees nothing
    left = torch.tensor([[False, True, True]])[:, None, None]
    with pytest.raises(ValueError, match="fully masked"):
        scaled_dot_product_attention(q[:1], k[:1], v[:1], left, is_causal=True)


def test_mismatched_shapes_are_clear_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="same feature size"):
        scaled_dot_product_attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="Every key needs a value"):
        scaled_dot_product_attention(q, k, v[..., :6, :])
    with pytest.raises(ValueError, match="leading"):
        scaled_dot_product_attention(q, k[:, :2], v[:, :2])
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 7, dtype=torch.long))


def test_scaling_keeps_softmax_from_saturating():
    """The reason for 1/sqrt(d_k): without it, weights become nearly one-hot as d_k grows."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(256, 1, 512, generator=g), torch.randn(256, 16, 512, generator=g)
    v = torch.zeros(256, 16, 1)
    _, scaled = scaled_dot_product_attention(q, k, v)
    _, unscaled = scaled_dot_product_attention(q, k, v, scale=1.0)
    assert unscaled.max(-1).values.mean() > 0.9
    assert scaled.max(-1).values.mean() < 0.5


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------
def test_mask_builders():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # the last 2 queries of 4 positions see their whole past
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match="fewer keys"):
        causal_mask(4, 2)
    ids = torch.tensor([[4, 5, 0], [4, 0, 0]])
    assert torch.equal(padding_mask(ids, pad_id=0), torch.tensor([[[1, 1, 0]], [[1, 0, 0]]], dtype=torch.bool))
    assert torch.equal(padding_mask(ids, lengths=[2, 1]), padding_mask(ids, pad_id=0))
    with pytest.raises(ValueError, match="pad_id"):
        padding_mask(ids)
    both = combine_masks(causal_mask(3), padding_mask(ids, pad_id=0))
    assert both.shape == (2, 3, 3) and not bool(both[1, 2, 1]) and bool(both[1, 2, 0])
    assert combine_masks(None, None) is None


# ---------------------------------------------------------------------------------------------
# MultiHeadAttention against torch.nn.MultiheadAttention
# ---------------------------------------------------------------------------------------------
def _torch_mha(d=16, h=4, bias=True, kdim=None, vdim=None, seed=0):
    seed_everything(seed)
    mha = nn.MultiheadAttention(d, h, bias=bias, batch_first=True, kdim=kdim, vdim=vdim).eval()
    with torch.no_grad():  # torch zeroes the biases at init: randomise them so they are tested too
        for name, p in mha.named_parameters():
            if "bias" in name:
                p.normal_()
    return mha


@pytest.mark.parametrize("fused_qkv", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masks", ["none", "padding", "causal", "causal+padding", "attn_mask3d", "float"])
def test_equals_torch_multihead_attention_self(fused_qkv, bias, masks):
    b, t, d, h = 3, 6, 16, 4
    torch_mha = _torch_mha(d, h, bias)
    ours = MultiHeadAttention.from_torch(torch_mha, fused_qkv=fused_qkv).eval()
    x = torch.randn(b, t, d)
    keep = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4]).bool()  # True at real tokens
    kw_torch, kw_ours = {}, {}
    if "padding" in masks:
        kw_torch["key_padding_mask"], kw_ours["padding_mask"] = ~keep, keep  # torch: True = ignore
    if "causal" in masks:
        kw_torch["attn_mask"], kw_ours["is_causal"] = ~causal_mask(t), True
    if masks == "attn_mask3d":
        allowed = torch.rand(b * h, t, t, generator=torch.Generator().manual_seed(2)) > 0.5
        allowed[..., 0] = True
        kw_torch["attn_mask"], kw_ours["mask"] = ~allowed, allowed.view(b, h, t, t)
    if masks == "float":
        additive = torch.randn(t, t)
        kw_torch["attn_mask"], kw_ours["mask"] = additive, additive
    expected, expected_w = torch_mha(x, x, x, need_weights=True, average_attn_weights=False, **kw_torch)
    for need in (True, False):
        out, w = ours(x, need_weights=need, **kw_ours)
        torch.testing.assert_close(out, expected, atol=ATOL, rtol=1e-5)
        if need:
            torch.testing.assert_close(w, expected_w, atol=ATOL, rtol=1e-5)
        else:
            assert w is None
    _, w_mean = ours(x, need_weights=True, average_heads=True, **kw_ours)
    torch.testing.assert_close(w_mean, expected_w.mean(1), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("same_dims", [True, False])
def test_equals_torch_multihead_attention_cross(same_dims):
    b, tq, tk, d, h = 2, 4, 7, 16, 2
    kdim, vdim = (None, None) if same_dims else (12, 10)
    torch_mha = _torch_mha(d, h, kdim=kdim, vdim=vdim)
    ours = MultiHeadAttention.from_torch(torch_mha).eval()
    query = torch.randn(b, tq, d)
    key, value = torch.randn(b, tk, kdim or d), torch.randn(b, tk, vdim or d)
    keep = torch.tensor([[1] * 7, [1] * 3 + [0] * 4]).bool()
    expected, expected_w = torch_mha(query, key, value, key_padding_mask=~keep, average_attn_weights=False)
    out, w = ours(query, key, value, padding_mask=keep.long(), need_weights=True)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(w, expected_w, atol=ATOL, rtol=1e-5)
    assert torch.all(w[1, :, :, 3:] == 0)


def test_fused_and_separate_layouts_load_each_others_weights():
    """GPT-2 keeps q/k/v fused (c_attn), BERT separate (query/key/value): both load into either layout."""
    seed_everything(0)
    separate = MultiHeadAttention(16, 4, fused_qkv=False).eval()
    fused = MultiHeadAttention(16, 4, fused_qkv=True).eval()
    w, b = separate.qkv_weight()
    fused.load_qkv(w, b)  # one (3d, d) tensor, like GPT-2's c_attn.weight.T
    fused.load_out(separate.out_proj.weight, separate.out_proj.bias)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(fused(x, is_causal=True)[0], separate(x, is_causal=True)[0], atol=ATOL, rtol=1e-5)
    back = MultiHeadAttention(16, 4).eval()
    back.load_qkv(fused.qkv_proj.weight.chunk(3), fused.qkv_proj.bias.chunk(3))  # three tensors, like BERT
    back.load_out(fused.out_proj.weight, fused.out_proj.bias)
    torch.testing.assert_close(back(x)[0], separate(x)[0], atol=ATOL, rtol=1e-5)
    # cross-attention through a fused module splits its weight
    memory = torch.randn(2, 3, 16)
    torch.testing.assert_close(fused(x, memory)[0], separate(x, memory)[0], atol=ATOL, rtol=1e-5)
    no_bias = MultiHeadAttention(16, 4, bias=False)
    with pytest.raises(ValueError, match="Bias mismatch"):
        no_bias.load_qkv(w, b)
    with pytest.raises(ValueError, match="cannot load"):
        fused.load_qkv(w.T, b)  # GPT-2's Conv1D layout, not transposed


def test_multihead_attention_errors_and_dropout():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="batch-first"):
        mha(torch.randn(5, 8))
    with pytest.raises(ValueError, match="Feature sizes"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="padding_mask"):
        mha(torch.randn(2, 5, 8), padding_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="padding_mask must be boolean"):
        mha(torch.randn(2, 5, 8), padding_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="fully masked"):
        mha(torch.randn(2, 3, 8), padding_mask=torch.tensor([[1, 1, 1], [0, 0, 0]]))
    drop = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    drop.eval()
    torch.testing.assert_close(drop(x)[0], drop(x)[0])
    drop.train()
    assert not torch.allclose(drop(x)[0], drop(x)[0])


def test_capture_attention_records_every_layer():
    model = nn.Sequential(MultiHeadAttention(8, 2), nn.Identity())
    x = torch.randn(3, 4, 8)
    plain, _ = model[0](x)
    with capture_attention(model) as maps:
        captured, _ = model[0](x)
    assert list(maps) == ["0"] and maps["0"].shape == (3, 2, 4, 4)
    torch.testing.assert_close(captured, plain, atol=ATOL, rtol=1e-5)
    assert model[0].capture is False and model[0].last_weights is None
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        with capture_attention(nn.Linear(2, 2)):
            pass


# ---------------------------------------------------------------------------------------------
# the synthetic task and the encoder-decoder
# ---------------------------------------------------------------------------------------------
def test_reversal_task_and_packing():
    task = ReversalTask(n_symbols=5, min_len=2, max_len=4)
    pairs = task.sample(50, seed=3)
    assert pairs == task.sample(50, seed=3)
    assert all(tgt == src[::-1] + [EOS] and 2 <= len(src) <= 4 for src, tgt in pairs)
    x, y = task.collate([([3, 4, 5], [5, 4, 3, EOS]), ([6, 7], [7, 6, EOS])])
    assert x.tolist() == [[3, 4, 5, SEP, 5, 4, 3], [6, 7, PAD, SEP, 7, 6, PAD]]
    assert y.tolist() == [[5, 4, 3, EOS], [7, 6, EOS, -100]]
    assert task.decode([5, 4, EOS, PAD]) == ["c", "b", "<eos>"]


@pytest.mark.parametrize("attention", [False, True])
def test_seq2seq_teacher_forcing_matches_step_by_step_decoding(attention):
    """The parallel teacher-forced forward and a token-by-token decoder give the same logits,
    and padding the source does not change anything for the shorter example."""
    seed_everything(0)
    task = ReversalTask(n_symbols=6, min_len=3, max_len=6)
    model = Seq2Seq(Seq2SeqConfig(task.vocab_size, d_embed=8, d_hidden=12, attention=attention, n_heads=2)).eval()
    pairs = [([3, 4, 5, 6, 7], [7, 6, 5, 4, 3, EOS]), ([8, 3, 4], [4, 3, 8, EOS])]
    x, y = task.collate(pairs)
    logits = model(x)
    assert logits.shape == (2, 6, task.vocab_size)
    source, decoder_input = model.split(x)
    memory, state, mask = model.encode(source)
    for t in range(decoder_input.shape[1]):
        step, state = model.decode(decoder_input[:, t: t + 1], state, memory, mask)
        torch.testing.assert_close(step[:, 0], logits[:, t], atol=ATOL, rtol=1e-5)
    alone = model(task.collate(pairs[1:])[0])
    torch.testing.assert_close(alone[0, :4], logits[1, :4], atol=ATOL, rtol=1e-5)
    assert model.generate(source, max_len=6).shape == (2, 6)


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than on two that fight over a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_seq2seq_with_attention_learns_reversal_with_the_shared_loop(one_thread):
    seed_everything(0)
    task = ReversalTask(n_symbols=6, min_len=3, max_len=6)
    model = Seq2Seq(Seq2SeqConfig(task.vocab_size, d_embed=16, d_hidden=32, attention=True))
    valid = task.loader(200, 100, seed=1, shuffle=False)
    before = evaluate(model, valid)[0]
    train(model, task.loader(3000, 32, seed=0), valid,
          TrainConfig(epochs=1, lr=5e-3, warmup_steps=10, progress=False), device="cpu")
    after = evaluate(model, valid)[0]
    assert after < before - 1.0
    acc = accuracy_by_length(model, task, [3, 6], n=50)
    assert acc[3]["token"] > 0.8 and 0 <= acc[6]["sequence"] <= 1
    with capture_attention(model) as maps:
        model(next(iter(valid))[0])
    w = maps["cross_attention"]
    assert w.shape[:2] == (100, 1)
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
