import pytest
import torch
from torch import nn

from llmcourse.decoding import (apply_temperature, generate, generate_text, greedy, sample_next, top_k_filter,
                                top_p_filter)
from llmcourse.rnn import RNNLM, RNNConfig
from llmcourse.text import Vocab


def test_greedy_and_temperature_zero():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    assert greedy(logits).tolist() == [1, 0]
    assert sample_next(logits, temperature=0).tolist() == [1, 0]
    with pytest.raises(ValueError, match="batch, vocab"):
        greedy(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, -1.0)


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = top_k_filter(logits, 2)
    assert torch.isfinite(kept).tolist() == [[False, True, False, True, False]]
    assert torch.equal(top_k_filter(logits, 10), logits)
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(logits, 0)


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.9)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 0.01)).tolist() == [[True, False, False, False]]
    shuffled = logits[:, [2, 0, 3, 1]]  # order in the vocabulary does not matter
    assert torch.isfinite(top_p_filter(shuffled, 0.7)).tolist() == [[False, True, False, True]]
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(logits, 1.5)


def test_sampling_follows_the_distribution_and_its_filters():
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = probs.log().expand(20000, 3)
    g = torch.Generator().manual_seed(0)
    freq = torch.bincount(sample_next(logits, generator=g), minlength=3) / 20000
    torch.testing.assert_close(freq, probs, atol=0.02, rtol=0)
    # temperature 0.5 squares the probabilities (then renormalises)
    freq = torch.bincount(sample_next(logits, temperature=0.5, generator=g), minlength=3) / 20000
    torch.testing.assert_close(freq, probs**2 / (probs**2).sum(), atol=0.02, rtol=0)
    assert set(sample_next(logits, top_k=2, generator=g).tolist()) == {0, 1}
    assert set(sample_next(logits, top_p=0.5, generator=g).tolist()) == {0}


class Counter(nn.Module):
    """A stateless 'model' that always predicts (last id + 1) mod vocab and records what it was fed."""

    def __init__(self, vocab=10, max_context=None):
        super().__init__()
        self.vocab, self.seen = vocab, []
        self.dummy = nn.Parameter(torch.zeros(1))
        if max_context is not None:
            self.max_context = max_context

    def forward(self, x):
        self.seen.append(x.size(1))
        return nn.functional.one_hot((x + 1) % self.vocab, self.vocab).float() * 10


def test_generate_stateless_with_sliding_window():
    model = Counter()
    out = generate(model, torch.tensor([3, 4]), 5, temperature=0)
    assert out.tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert model.seen == [2, 3, 4, 5, 6]  # the whole sequence each step
    model = Counter(max_context=3)
    out = generate(model, torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]]), 4, temperature=0)
    assert out[:, 4:].tolist() == [[5, 6, 7, 8], [1, 2, 3, 4]]
    assert model.seen == [3, 3, 3, 3]  # never more than max_context ids
    model = Counter()
    generate(model, torch.tensor([1]), 4, temperature=0, max_context=2)
    assert model.seen == [1, 2, 2, 2]


def test_generate_stops_at_eos_and_checks_its_input():
    out = generate(Counter(), torch.tensor([[5], [8]]), 10, temperature=0, eos_id=9)
    assert out.tolist() == [[5, 6, 7, 8, 9], [8, 9, 9, 9, 9]]
    with pytest.raises(ValueError, match="at least one id"):
        generate(Counter(), torch.tensor([], dtype=torch.long), 3)


@pytest.mark.parametrize("adaptive", [False, True])
def test_generate_stateful_equals_rereading_the_whole_sequence(adaptive):
    """The RNN reads each token once and carries its state; a stateless wrapper that re-reads
    everything at every step must produce the same tokens: the state is handled right."""
    torch.manual_seed(0)
    model = RNNLM(RNNConfig(vocab_size=30, d_embed=16, d_hidden=16, n_layers=2, dropout=0.5,
                            tie_weights=not adaptive, adaptive_cutoffs=(5, 12) if adaptive else None))
    model.train()

    class Reread(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner.log_probs(self.inner(x)[0])

    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    a = generate(model, prompt, 12, temperature=0)
    b = generate(Reread(model), prompt, 12, temperature=0)
    assert torch.equal(a, b) and a.shape == (2, 15)
    assert model.training  # dropout was off while generating, and the mode is restored
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s1 = generate(model, prompt, 12, temperature=1.0, top_k=10, generator=g1)
    s2 = generate(Reread(model), prompt, 12, temperature=1.0, top_k=10, generator=g2)
    assert torch.equal(s1, s2)


def test_generate_text_round_trip():
    vocab = Vocab(["<unk>", "<eos>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran"])
    vocab.set_default_index(0)
    model = Counter(vocab=10)
    assert generate_text(model, vocab, "the cat", 3, temperature=0) == "the cat sat on mat"
    assert generate_text(model, vocab, "zebra", 2, temperature=0) == "<unk>\nthe"
    with pytest.raises(ValueError, match="empty"):
        generate_text(model, vocab, "   ", 2)


def test_bad_prompts_and_temperatures_are_clear_errors():
    model = RNNLM(RNNConfig(vocab_size=20, d_embed=8, d_hidden=8, n_layers=1))
    with pytest.raises(ValueError, match="token id 20, outside the model's vocabulary \\(0 to 19\\)"):
        generate(model, torch.tensor([1, 20]), 3)
    with pytest.raises(ValueError, match="token id -1"):
        generate(model, torch.tensor([-1, 2]), 3)
    with pytest.raises(TypeError, match="integer token ids"):
        generate(model, torch.tensor([1.0, 2.0]), 3)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match=r"temperature=.*: give a finite number >= 0"):
            generate(model, torch.tensor([1, 2]), 3, temperature=bad)
