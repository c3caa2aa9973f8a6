"""llmcourse.attribution: occlusion and gradient x input against plain computations, the decoder
re-run with its own weights equal to the model, permutations that keep each row, adversarial weights
that keep the output, Spearman's correlation, and the reversal alignment."""

import pytest
import torch

from llmcourse import attribution as attr
from llmcourse.seq2seq import PAD, ReversalTask, Seq2Seq, Seq2SeqConfig


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    task = ReversalTask(n_symbols=6, min_len=2, max_len=5)
    model = Seq2Seq(Seq2SeqConfig(task.vocab_size, d_embed=8, d_hidden=12, attention=True, n_heads=2)).eval()
    x, y = task.collate(task.sample(4, seed=3))  # mixed lengths: padding in the source and the target
    return task, model, x, y


def test_target_log_probs_are_the_teacher_forced_log_probabilities(setup):
    _, model, x, y = setup
    lp = attr.target_log_probs(model, x, y)
    with torch.no_grad():
        full = model(x).log_softmax(-1)
    b, t = 1, 0
    assert lp.shape == y.shape
    assert torch.isclose(lp[b, t], full[b, t, y[b, t]])
    assert torch.all(lp[y == -100] == 0) and torch.all(lp[y != -100] < 0)


def test_the_decoder_rerun_with_its_own_weights_is_the_model(setup):
    _, model, x, _ = setup
    weights = attr.cross_attention(model, x)
    assert weights.shape == (x.shape[0], 2, model.split(x)[1].shape[1], model.split(x)[0].shape[1])
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    with torch.no_grad():
        torch.testing.assert_close(attr.logits_with_attention(model, x, weights), model(x))
        changed = attr.logits_with_attention(model, x, weights.flip(-1).softmax(-1))
    assert not torch.allclose(changed, model(x))
    with pytest.raises(ValueError, match="weights must be"):
        attr.logits_with_attention(model, x, weights[:, :1])


def test_occlusion_is_the_drop_when_one_source_token_is_replaced(setup):
    task, model, x, y = setup
    drops = attr.occlusion(model, x, y)
    source = model.split(x)[0]
    assert drops.shape == (*y.shape, source.shape[1])
    b, j = 2, 1
    occluded = x.clone()
    occluded[b, j] = attr.next_letter(x[b, j], task.n_symbols)
    assert occluded[b, j] != x[b, j] and occluded[b, j] >= 3
    expected = attr.target_log_probs(model, x, y)[b] - attr.target_log_probs(model, occluded, y)[b]
    torch.testing.assert_close(drops[b, :, j], expected)
    assert torch.all(drops.permute(0, 2, 1)[source == PAD] == 0)  # padded source positions: no attribution
    assert torch.all(drops[y == -100] == 0)


def test_gradient_x_input_is_the_first_order_change(setup):
    _, model, x, y = setup
    gxi = attr.gradient_x_input(model, x, y)
    source = model.split(x)[0]
    assert gxi.shape == (*y.shape, source.shape[1]) and torch.all(gxi >= 0)
    assert torch.all(gxi.permute(0, 2, 1)[source == PAD] == 0)
    b, t, j, eps = 0, 1, 0, 1e-3
    model = model.double()
    try:
        def log_prob_with_scaled_embedding(scale):  # log P(y_t) when e_j is multiplied by scale
            calls = []

            def hook(module, inputs, output):
                calls.append(1)
                if len(calls) == 1:
                    output = output.clone()
                    output[b, j] *= scale
                    return output
            handle = model.embed.register_forward_hook(hook)
            try:
                with torch.no_grad():
                    return model(x).log_softmax(-1)[b, t, y[b, t]].item()
            finally:
                handle.remove()
        slope = (log_prob_with_scaled_embedding(1 + eps) - log_prob_with_scaled_embedding(1 - eps)) / (2 * eps)
        assert attr.gradient_x_input(model, x, y)[b, t, j].item() == pytest.approx(abs(slope), rel=1e-4, abs=1e-8)
    finally:
        model.float()


def test_permute_weights_shuffles_real_positions_only_and_keeps_each_row(setup):
    _, model, x, _ = setup
    weights = attr.cross_attention(model, x)
    real = model.split(x)[0] != PAD
    shuffled = attr.permute_weights(weights, real=real, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(shuffled.sort(-1).values, weights.sort(-1).values)  # same values in each row
    assert torch.all(shuffled.permute(0, 3, 1, 2)[~real] == 0)
    assert not torch.allclose(shuffled, weights)
    one_head = attr.permute_weights(weights, [1], real=real, generator=torch.Generator().manual_seed(0))
    assert torch.equal(one_head[:, 0], weights[:, 0]) and not torch.equal(one_head[:, 1], weights[:, 1])


def test_adversarial_attention_moves_weight_away_and_keeps_the_output(setup):
    _, model, x, y = setup
    right = attr.reversal_positions(x)
    weights = attr.cross_attention(model, x)
    adv = attr.adversarial_attention(model, x, y, right, steps=100, kl_weight=10.0)
    torch.testing.assert_close(adv.sum(-1), torch.ones(adv.shape[:-1]))
    real = model.split(x)[0] != PAD
    assert torch.all(adv.permute(0, 3, 1, 2)[~real] == 0)
    on_right = lambda w: (w * right[:, None]).sum(-1)[right.any(-1)[:, None].expand(-1, 2, -1)].mean()
    assert on_right(adv) < 0.7 * on_right(weights)
    with torch.no_grad():
        before, after = model(x).log_softmax(-1), attr.logits_with_attention(model, x, adv).log_softmax(-1)
    kl = (before.exp() * (before - after)).sum(-1)[y != -100].mean()
    assert kl < 0.05


def test_rank_correlation_is_spearmans():
    a = torch.tensor([[0.1, 0.5, 0.3, 0.9], [1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(attr.rank_correlation(a, a.exp()), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(attr.rank_correlation(a, -a), -torch.ones(2, dtype=torch.float64))
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(1)
    u, v = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    expected = [stats.spearmanr(u[i], v[i]).statistic for i in range(5)]
    assert torch.allclose(attr.rank_correlation(u, v), torch.tensor(expected, dtype=torch.float64))


def test_reversal_positions_mark_the_letter_each_step_copies():
    task = ReversalTask(n_symbols=5, min_len=2, max_len=4)
    x, y = task.collate([([3, 4, 5], [5, 4, 3, 2]), ([6, 7], [7, 6, 2])])
    right = attr.reversal_positions(x)
    assert right.shape == (2, 4, 3)
    assert right[0].nonzero().tolist() == [[0, 2], [1, 1], [2, 0]]  # <eos> step: nothing to copy
    assert right[1].nonzero().tolist() == [[0, 1], [1, 0]]
    source = x[:, :3]
    for b in range(2):  # the marked source letter is the target letter
        steps, positions = right[b].nonzero().T
        assert torch.equal(source[b, positions], y[b, steps])
