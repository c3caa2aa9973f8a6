"""The output layer both language models share: exact log-probabilities, the loss they imply, decoding."""

import pytest
import torch

from llmcourse.decoding import generate
from llmcourse.heads import OutputLayer, lm_loss, output_layer_size
from llmcourse.rnn import RNNConfig, RNNLM
from llmcourse.transformer import TransformerConfig, TransformerLM, to_gpt2

VOCAB = 60


@pytest.mark.parametrize("cutoffs", [None, (10, 30)])
def test_log_probs_are_a_distribution_and_the_loss_is_their_negative(cutoffs):
    torch.manual_seed(0)
    layer = OutputLayer(16, VOCAB, cutoffs)
    features = torch.randn(3, 5, 16)
    out = layer(features)
    assert out.shape == ((3, 5, VOCAB) if cutoffs is None else (3, 5, 16))
    log_p = layer.log_probs(out)
    assert log_p.shape == (3, 5, VOCAB)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(3, 5), atol=1e-5, rtol=0)
    y = torch.randint(0, VOCAB, (3, 5))
    y[0, 1] = -100  # ignored: neither scored nor counted
    total, n = layer.loss(out, y)
    keep = y != -100
    expected = -log_p[keep].gather(-1, y[keep][:, None]).sum()
    assert int(n) == 14
    torch.testing.assert_close(total, expected, atol=1e-4, rtol=1e-5)


def test_full_softmax_loss_is_cross_entropy_and_all_ignored_is_zero():
    torch.manual_seed(1)
    layer = OutputLayer(8, VOCAB, (20,))
    total, n = layer.loss(torch.randn(2, 3, 8), torch.full((2, 3), -100))
    assert float(total) == 0.0 and int(n) == 0
    logits = torch.randn(2, 4, VOCAB)
    y = torch.randint(0, VOCAB, (2, 4))
    torch.testing.assert_close(OutputLayer(8, VOCAB).loss(logits, y)[0], lm_loss(logits, y)[0])


def test_parameter_formula_matches_the_layer():
    for cutoffs, div in [(None, 4.0), ((10, 30), 4.0), ((5, 20, 40), 2.0)]:
        layer = OutputLayer(32, VOCAB, cutoffs, div_value=div)
        assert output_layer_size(32, VOCAB, cutoffs, div) == sum(p.numel() for p in layer.parameters())


def test_tying_shares_the_embedding_and_refuses_an_adaptive_head():
    embed = torch.nn.Embedding(VOCAB, 16)
    assert OutputLayer(16, VOCAB, tie_to=embed).linear.weight is embed.weight
    with pytest.raises(ValueError, match="tied"):
        OutputLayer(16, VOCAB, (10,), tie_to=embed)


def _models():
    torch.manual_seed(0)
    adaptive = dict(tie_weights=False, adaptive_cutoffs=(10, 30))
    return {"lstm": RNNLM(RNNConfig(VOCAB, d_embed=16, d_hidden=16, n_layers=1, **adaptive)),
            "transformer": TransformerLM(TransformerConfig(VOCAB, max_context=8, d_model=16, n_layers=1, n_heads=2,
                                                           **adaptive))}


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_both_models_decode_with_the_adaptive_head(name):
    model = _models()[name].eval()
    x = torch.randint(0, VOCAB, (2, 6))
    out = model(x)[0] if name == "lstm" else model(x)
    torch.testing.assert_close(model.log_probs(out).exp().sum(-1), torch.ones(2, 6), atol=1e-5, rtol=0)
    greedy = generate(model, x[0], 12, temperature=0)
    assert greedy.shape == (18,) and int(greedy.max()) < VOCAB
    again = generate(model, x[0], 12, temperature=0)
    assert torch.equal(greedy, again)
    # greedy's first new token is the argmax of the exact log-probabilities
    first = (model(x[:1])[0] if name == "lstm" else model(x[:1]))
    assert int(greedy[6]) == int(model.log_probs(first[:, -1]).argmax())


def test_gpt2_export_refuses_an_adaptive_head_with_the_reason():
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="adaptive softmax"):
        to_gpt2(_models()["transformer"])
