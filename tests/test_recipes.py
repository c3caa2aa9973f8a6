"""One recipe shape for the LSTM, the Transformer and BERT: every kind builds, batches and trains."""

import subprocess
import sys

import pytest
import torch

from llmcourse import recipes
from llmcourse.recipes import KINDS, RACE_SECONDS, Recipe, recipe_for, recipe_kind
from llmcourse.rnn import RNNLM
from llmcourse.training import train
from llmcourse.transformer import TransformerLM


def _ids(n=6000, vocab=500):
    g = torch.Generator().manual_seed(0)
    return {s: torch.randint(0, vocab, (n,), generator=g) for s in ("train", "valid", "test")}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["lstm", "transformer", "gpt-bpe", "llama-bpe"])
def test_every_language_model_recipe_builds_its_model(name, kind):
    recipe = recipe_for(name, kind, vocab_size=12_000)
    assert isinstance(recipe, Recipe) and recipe.kind == kind and recipe.note
    model = recipe.model()
    assert isinstance(model, RNNLM if name == "lstm" else TransformerLM)
    assert model.config.vocab_size == 12_000
    if kind == "gpu-fp16":
        assert recipe.train.precision == "fp16"
    if kind in RACE_SECONDS:
        assert recipe.train.budget_seconds == RACE_SECONDS[kind]  # the race's clock, the same for both


def test_the_cpu_race_is_fair_same_clock_same_output_layer():
    lstm, transformer = recipe_for("lstm", "cpu"), recipe_for("transformer", "cpu")
    assert lstm.train.budget_seconds == transformer.train.budget_seconds == 600
    for attr in ("adaptive_cutoffs", "adaptive_div_value"):
        assert getattr(lstm.model_config, attr) == getattr(transformer.model_config, attr)
    assert lstm.train.precision == transformer.train.precision == "fp32"


@pytest.mark.parametrize("name", ["lstm", "transformer", "gpt-bpe", "llama-bpe"])
def test_quick_recipes_batch_train_and_score(name):
    torch.manual_seed(0)
    recipe = recipe_for(name, "quick", vocab_size=12_000)
    recipe.train.max_steps, recipe.train.progress = 6, False
    recipe.train.eval_every = 3
    loaders = recipe.loaders(_ids())
    x, y = next(iter(loaders["train"]))
    assert x.shape == (recipe.batch_size, recipe.seq_len) and torch.equal(x[:, 1:], y[:, :-1])
    model = recipe.model()
    history = train(model, loaders["train"], loaders["valid"], recipe.train, device="cpu")
    assert history.steps == 6 and len(history.valid) == 2
    ppl = recipe.perplexities(model, loaders)
    # the adaptive softmax of the word-level recipes starts near the unigram; the tied full softmax of the
    # BPE ones at the uniform guess over 12,000 tokens, which six steps must have left well behind
    limit = 2_000 if name in ("lstm", "transformer") else 0.7 * 12_000
    assert set(ppl) == {"valid", "test"} and all(1 < p < limit for p in ppl.values()), ppl


@pytest.mark.parametrize("kind", KINDS)
def test_the_two_bpe_blocks_race_fairly(kind):
    """Notebook 06's block comparison: the same sizes, parameters (to 1%), training and batches."""
    gpt, llama = recipe_for("gpt-bpe", kind, vocab_size=8_192), recipe_for("llama-bpe", kind, vocab_size=8_192)
    for attr in ("max_context", "d_model", "n_layers", "n_heads", "tie_weights", "dropout", "vocab_size"):
        assert getattr(gpt.model_config, attr) == getattr(llama.model_config, attr), attr
    assert gpt.train == llama.train and (gpt.batch_size, gpt.seq_len) == (llama.batch_size, llama.seq_len)
    assert (gpt.model_config.positional, gpt.model_config.norm, gpt.model_config.ffn) == ("learned", "layernorm", "gelu")
    assert (llama.model_config.positional, llama.model_config.norm, llama.model_config.ffn) == ("rope", "rmsnorm",
                                                                                                 "swiglu")
    n_gpt, n_llama = gpt.model().num_parameters(), llama.model().num_parameters()
    assert abs(n_gpt - n_llama) / n_gpt < 0.01


def test_transformer_batches_are_shuffled_repeatably():
    recipe = recipe_for("transformer", "quick", vocab_size=12_000)
    first = [next(iter(recipe.loaders(_ids(), seed=s)["train"]))[0] for s in (0, 0, 1)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])


def test_with_budget_turns_a_step_recipe_into_a_timed_one():
    recipe = recipe_for("transformer", "quick", vocab_size=12_000).with_budget(2)
    assert recipe.train.budget_seconds == 2.0 and recipe.train.max_steps is None
    assert recipe.train.warmup_steps == 0 and 0 < recipe.train.warmup_fraction < 1
    history = train(recipe.model(), recipe.loaders(_ids())["train"], None,
                    recipe.train.__class__(**{**vars(recipe.train), "progress": False}), device="cpu")
    assert history.train_seconds >= 2.0 and history.steps > 0


def test_recipe_kind_follows_the_device(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_QUICK", "1")
    assert recipe_kind("cpu") == "quick"
    monkeypatch.setenv("LLMCOURSE_QUICK", "0")
    assert recipe_kind("cpu") == "cpu"
    monkeypatch.setattr(recipes, "get_device", lambda device=None: torch.device("cuda", 0))
    monkeypatch.setattr(recipes, "bf16_supported", lambda device: True)
    assert recipe_kind() == "gpu"
    monkeypatch.setattr(recipes, "bf16_supported", lambda device: False)
    assert recipe_kind() == "gpu-fp16"


def test_bad_names_and_kinds_say_what_to_choose():
    with pytest.raises(ValueError, match="choose"):
        recipe_for("gru", "cpu")
    with pytest.raises(ValueError, match="choose"):
        recipe_for("lstm", "tpu")
    with pytest.raises(ValueError, match="train, valid and test"):
        recipe_for("lstm", "quick").loaders({"train": torch.arange(100)})


def test_bert_recipe_has_the_same_shape():
    pytest.importorskip("transformers")
    recipe = recipe_for("bert", "quick")
    assert recipe.train_limit == 256 and recipe.eval_limit == 128 and recipe.seq_len == 128
    args = recipe.trainer_arguments()
    assert args.learning_rate == recipe.train.lr and args.per_device_train_batch_size == recipe.batch_size
    assert args.eval_steps == recipe.train.eval_every and not args.bf16 and not args.fp16
    assert recipe_for("bert", "gpu-fp16").train.precision == "fp16"
    with pytest.raises(ValueError, match="trainer_arguments"):
        recipe_for("lstm", "quick").trainer_arguments()
    with pytest.raises(ValueError, match="accuracy"):
        recipe.perplexities(None, {})


def test_the_masked_lm_recipe_has_the_same_shape_and_trains():
    """Notebook 05's pre-training run: a recipe like every other (config, training, batch shape, data slice)."""
    from types import SimpleNamespace

    from llmcourse.bert import BertForMaskedLM

    recipe = recipe_for("bert-mlm", "quick", vocab_size=120)
    assert (recipe.train_limit, recipe.seq_len, recipe.batch_size, recipe.train.max_steps) == (2_000, 64, 16, 40)
    assert recipe_for("bert-mlm", "cpu", vocab_size=120).model_config.d_model == 192
    model = recipe.model()
    assert isinstance(model, BertForMaskedLM) and model.config.vocab_size == 120
    tokenizer = SimpleNamespace(cls_token_id=1, sep_token_id=2, mask_token_id=3, vocab_size=120,
                                all_special_ids=[0, 1, 2, 3])
    ids = torch.randint(4, 120, (3_000,), generator=torch.Generator().manual_seed(0))
    loaders = recipe.loaders({"train": ids, "valid": ids[:1_000], "tokenizer": tokenizer})
    x, y = next(iter(loaders["train"]))
    assert x.shape == (16, 64) and (x[:, 0] == 1).all() and 0 < (y != -100).sum() < y.numel()
    history = train(model, loaders["train"], loaders["valid"], recipe.train.__class__(
        **{**recipe.train.__dict__, "max_steps": 3, "eval_every": 3, "progress": False}), device="cpu")
    assert history.steps == 3 and history.valid
    with pytest.raises(ValueError, match=r"needs train and valid id streams and the tokenizer; \['tokenizer'\]"):
        recipe.loaders({"train": ids, "valid": ids})
    with pytest.raises(ValueError, match="accuracy"):
        recipe_for("bert", "quick").perplexities(None, {})


def test_models_do_not_import_the_training_loop():
    code = ("import sys, llmcourse.rnn, llmcourse.transformer, llmcourse.heads; "
            "print('llmcourse.training' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
