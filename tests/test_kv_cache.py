"""Tests for the key-value cache (notebook 06): TransformerLM's forward with a cache equals re-reading the whole
sequence, generate(use_cache=True) produces exactly the tokens of generate() without it, the cache stops at
max_context with a clear error, and kv_cache_bytes is the memory of the real tensors."""

import pytest
import torch
from torch import nn

from llmcourse.decoding import Cacheable, generate, generate_text
from llmcourse.rnn import RNNLM, RNNConfig
from llmcourse.text import Vocab
from llmcourse.transformer import KVCache, TransformerConfig, TransformerLM, kv_cache_bytes

VOCAB = 50

# Both blocks, every kind of position, grouped-query attention, post-LN and an adaptive softmax.
CONFIGS = {
    "gpt2": {},
    "gpt2-sinusoidal": {"positional": "sinusoidal"},
    "gpt2-none": {"positional": "none"},
    "gpt2-post-ln": {"norm_first": False},
    "gpt2-adaptive": {"tie_weights": False, "adaptive_cutoffs": (10, 30)},
    "llama": {"llama": True},
    "llama-gqa": {"llama": True, "n_kv_heads": 2},
    "llama-mqa-learned": {"llama": True, "n_kv_heads": 1, "positional": "learned"},
}


def build(name: str, **extra) -> TransformerLM:
    kwargs = {"max_context": 16, "d_model": 16, "n_layers": 2, "n_heads": 4, **CONFIGS[name], **extra}
    llama = kwargs.pop("llama", False)
    config = TransformerConfig.llama(VOCAB, **kwargs) if llama else TransformerConfig(VOCAB, **kwargs)
    torch.manual_seed(0)
    model = TransformerLM(config)
    with torch.no_grad():  # weights far from initialisation, so that every position matters
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("name", CONFIGS)
def test_reading_with_a_cache_equals_rereading_everything(name):
    model = build(name).eval()
    x = torch.randint(0, VOCAB, (3, 16))
    with torch.no_grad():
        full = model.log_probs(model(x))
        cache = model.new_cache()
        steps = [model.log_probs(model(x[:, :5], cache=cache))]  # a prompt of 5, 3 more, then one at a time
        assert [layer.length for layer in cache] == [5, 5]
        steps.append(model.log_probs(model(x[:, 5:8], cache=cache)))  # 3 queries see 8 keys: a shifted mask
        for t in range(8, 16):
            steps.append(model.log_probs(model(x[:, t : t + 1], cache=cache)))
    cached = torch.cat(steps, dim=1)
    assert cached.shape == full.shape
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    kv_heads, d_head = model.config.kv_heads, model.config.d_head
    assert all(layer.keys.shape == layer.values.shape == (3, kv_heads, 16, d_head) for layer in cache)


@pytest.mark.parametrize("name", ["gpt2", "gpt2-sinusoidal", "gpt2-adaptive", "llama", "llama-gqa",
                                  "llama-mqa-learned"])
def test_generation_with_a_cache_gives_exactly_the_same_tokens(name):
    model = build(name)
    model.train()
    prompt = torch.randint(0, VOCAB, (3, 4))
    plain = generate(model, prompt, 12, temperature=0)
    cached = generate(model, prompt, 12, temperature=0, use_cache=True)
    assert cached.shape == (3, 16) and torch.equal(cached, plain)
    assert model.training  # dropout was off while generating, and the mode is restored
    for seed in (0, 1):
        kwargs = dict(temperature=1.3, top_k=20, top_p=0.95)
        a = generate(model, prompt, 12, generator=torch.Generator().manual_seed(seed), **kwargs)
        b = generate(model, prompt, 12, generator=torch.Generator().manual_seed(seed), use_cache=True, **kwargs)
        assert torch.equal(a, b)
    # one row alone continues as it does in the batch; eos stops both paths alike
    assert torch.equal(generate(model, prompt[1], 12, temperature=0, use_cache=True), plain[1])
    eos = int(plain[0, 6])
    assert torch.equal(generate(model, prompt, 12, temperature=0, eos_id=eos, use_cache=True),
                       generate(model, prompt, 12, temperature=0, eos_id=eos))


class CountingCache(nn.Module):
    """A cacheable 'model' that predicts (last id + 1) mod vocab and records how many ids it is fed."""

    def __init__(self, vocab: int = 10):
        super().__init__()
        self.vocab, self.seen = vocab, []
        self.dummy = nn.Parameter(torch.zeros(1))

    def new_cache(self) -> list:
        return []

    def forward(self, x, cache=None):
        self.seen.append(x.size(1))
        if cache is not None:
            cache.append(x)
        return nn.functional.one_hot((x + 1) % self.vocab, self.vocab).float() * 10


def test_a_cached_model_is_fed_the_prompt_once_then_one_token_per_step():
    model = CountingCache()
    assert isinstance(model, Cacheable) and isinstance(build("gpt2"), Cacheable)
    assert not isinstance(RNNLM(RNNConfig(vocab_size=20, d_embed=8, d_hidden=8, n_layers=1)), Cacheable)
    out = generate(model, torch.tensor([[3, 4, 5], [0, 1, 2]]), 5, temperature=0, use_cache=True)
    assert out[:, 3:].tolist() == [[6, 7, 8, 9, 0], [3, 4, 5, 6, 7]]
    assert model.seen == [3, 1, 1, 1, 1]
    vocab = Vocab(["<unk>", "<eos>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran"])
    assert generate_text(CountingCache(), vocab, "the cat", 3, temperature=0, use_cache=True) == "the cat sat on mat"


def test_the_cache_stops_at_max_context_with_a_clear_error():
    model = build("llama-gqa", max_context=10)
    prompt = torch.randint(0, VOCAB, (2, 4))
    # the prompt and every token but the last are read: 4 + 7 - 1 = 10 positions fit, exactly as without a cache
    assert torch.equal(generate(model, prompt, 7, temperature=0, use_cache=True),
                       generate(model, prompt, 7, temperature=0))
    with pytest.raises(ValueError, match=r"need 11 positions, more than the model's max_context=10.*at most 7 new "
                                         r"tokens.*use_cache=False"):
        generate(model, prompt, 8, temperature=0, use_cache=True)
    with pytest.raises(ValueError, match=r"The prompt has 12 ids, more than the model's max_context=10"):
        generate(model, torch.randint(0, VOCAB, (12,)), 1, use_cache=True)
    # without the cache the window slides on, as it always has
    assert generate(model, prompt, 20, temperature=0).shape == (2, 24)
    # the model itself refuses to extend a cache past its context
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(0, VOCAB, (2, 9)), cache=cache)
        model(torch.randint(0, VOCAB, (2, 1)), cache=cache)
        with pytest.raises(ValueError, match=r"The cache holds 10 positions and the input adds 1: 11 is more than "
                                             r"this model's max_context=10.*use_cache=False"):
            model(torch.randint(0, VOCAB, (2, 1)), cache=cache)


def test_misused_caches_are_clear_errors():
    model = build("gpt2")
    with pytest.raises(ValueError, match="stateful"):
        generate(RNNLM(RNNConfig(vocab_size=VOCAB, d_embed=8, d_hidden=8, n_layers=1)), torch.tensor([1, 2]), 3,
                 use_cache=True)

    class NoCache(nn.Module):
        def forward(self, x):
            return torch.zeros(*x.shape, VOCAB)

    with pytest.raises(TypeError, match="key-value cache.*NoCache has none"):
        generate(NoCache(), torch.tensor([1, 2]), 3, use_cache=True)
    with pytest.raises(ValueError, match="max_context slides a window"):
        generate(model, torch.tensor([1, 2]), 3, use_cache=True, max_context=4)
    with pytest.raises(ValueError, match="causal model"):
        build("gpt2", causal=False)(torch.tensor([[1, 2]]), cache=[KVCache(), KVCache()])
    with pytest.raises(ValueError, match=r"one KVCache per layer \(2\).*new_cache"):
        model(torch.tensor([[1, 2]]), cache=[KVCache()])
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.tensor([[1, 2], [3, 4]]), cache=cache)
        with pytest.raises(ValueError, match="holds 2 rows but the input has 3"):
            model(torch.tensor([[1], [2], [3]]), cache=cache)


@pytest.mark.parametrize("name, dtype", [("gpt2", torch.float32), ("llama-gqa", torch.float32),
                                         ("llama-mqa-learned", torch.bfloat16)])
def test_kv_cache_bytes_is_the_memory_of_the_real_tensors(name, dtype):
    model = build(name).to(dtype).eval()
    c = model.config
    cache = model.new_cache()
    with torch.no_grad():
        model(torch.randint(0, VOCAB, (3, 7)), cache=cache)
        model(torch.randint(0, VOCAB, (3, 2)), cache=cache)
    assert cache[0].keys.dtype == dtype
    real = sum(layer.nbytes for layer in cache)
    assert real == kv_cache_bytes(c, batch=3, seq_len=9, dtype=dtype)
    assert real == 2 * c.n_layers * c.kv_heads * c.d_head * 9 * 3 * (4 if dtype == torch.float32 else 2)
    assert kv_cache_bytes(c, 3, 0) == 0 and KVCache().nbytes == 0
    # grouped-query attention divides the cache by n_heads // n_kv_heads
    assert kv_cache_bytes(build("llama-gqa").config, 1, 100) * 2 == kv_cache_bytes(build("llama").config, 1, 100)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        kv_cache_bytes(c, 0, 10)


def test_kv_cache_bytes_of_a_known_model():
    # Llama 2 7B: 32 layers, 32 heads of 128, no grouping; 4096 positions in float16 take 2 GiB per sequence
    config = TransformerConfig.llama(32000, max_context=4096, d_model=4096, n_layers=32, n_heads=32, d_ff=11008)
    assert kv_cache_bytes(config, 1, 4096, torch.float16) == 2 * 2**30
