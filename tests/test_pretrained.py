"""The pretrained-LM code, offline, on a small randomly initialised GPT-2 saved locally."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse import pretrained

TEXT = ["the cat sat on the mat .", "a dog ran in the park", "", "the park is <unk> @-@ green ."] * 5


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXT, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                       eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id))
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_load_from_a_folder(saved):
    model, tokenizer = pretrained.load_causal_lm(str(saved), device="cpu")
    assert type(model).__name__ == "GPT2LMHeadModel" and not model.training
    assert tokenizer.decode(tokenizer("the cat")["input_ids"]) == "the cat"


def test_offline_or_missing_gives_a_reason_and_never_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    model, tokenizer, reason = pretrained.try_load_causal_lm("gpt2")
    assert model is None and tokenizer is None and "offline (HF_HUB_OFFLINE=1)" in reason
    _, _, reason = pretrained.try_load_causal_lm(str(tmp_path / "nowhere"))
    assert "does not exist" in reason
    (tmp_path / "not-a-model").mkdir()
    _, _, reason = pretrained.try_load_causal_lm(str(tmp_path / "not-a-model"))
    assert "no config.json" in reason


def test_per_word_perplexity_in_one_window_equals_the_models_own_loss(saved):
    model, tokenizer = pretrained.load_causal_lm(str(saved), device="cpu")
    lines = TEXT[:4]
    ids = torch.tensor([tokenizer("".join(f"{l}\n" for l in lines))["input_ids"]])
    assert ids.shape[1] <= 64
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()  # mean over the n - 1 predicted tokens
    words = sum(len(l.split()) + 1 for l in lines)  # 7 + 6 + 0 + 7 words, and one end per line
    assert words == 24
    got = pretrained.per_word_perplexity(model, tokenizer, lines, seq_len=64)
    assert got["tokens"] == ids.shape[1] - 1 and got["words"] == words
    assert got["per_word"] == pytest.approx(math.exp(loss * (ids.shape[1] - 1) / words), rel=1e-5)
    assert got["per_token"] == pytest.approx(math.exp(loss), rel=1e-5)


def test_per_word_perplexity_across_windows_scores_each_token_once(saved):
    model, tokenizer = pretrained.load_causal_lm(str(saved), device="cpu")
    ids = torch.tensor(tokenizer("".join(f"{l}\n" for l in TEXT))["input_ids"])
    seq_len, total = 16, 0.0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, seq_len):  # consecutive windows, the last one shorter
            y = ids[start + 1:start + seq_len + 1]
            x = ids[start:start + len(y)]
            total += F.cross_entropy(model(x[None]).logits[0], y, reduction="sum").item()
    got = pretrained.per_word_perplexity(model, tokenizer, TEXT, seq_len=seq_len, batch_size=3)
    assert got["tokens"] == len(ids) - 1
    assert got["per_word"] == pytest.approx(math.exp(total / got["words"]), rel=1e-5)


def test_few_shot_continues_after_the_prompt_deterministically(saved):
    model, tokenizer = pretrained.load_causal_lm(str(saved), device="cpu")
    first = pretrained.few_shot(model, tokenizer, "the cat sat", max_new_tokens=4)
    assert first == pretrained.few_shot(model, tokenizer, "the cat sat", max_new_tokens=4)
    full = tokenizer.decode(model.generate(**tokenizer("the cat sat", return_tensors="pt"), max_new_tokens=4,
                                           do_sample=False, pad_token_id=tokenizer.eos_token_id)[0])
    assert full == "the cat sat" + first
    assert pretrained.FEW_SHOT_PROMPT.endswith("Spain:")


def test_bad_input_is_a_clear_error(saved):
    model, tokenizer = pretrained.load_causal_lm(str(saved), device="cpu")
    with pytest.raises(TypeError, match="list of lines"):
        pretrained.per_word_perplexity(model, tokenizer, "one string")
    with pytest.raises(ValueError, match="empty"):
        pretrained.per_word_perplexity(model, tokenizer, [])
    with pytest.raises(ValueError, match="at least 2 tokens"):
        pretrained.per_word_perplexity(model, tokenizer, TEXT, seq_len=1)
    with pytest.raises(ValueError, match="longer than the model's 64 positions"):
        pretrained.per_word_perplexity(model, tokenizer, TEXT, seq_len=1024)
    with pytest.raises(ValueError, match="non-empty prompt"):
        pretrained.few_shot(model, tokenizer, "")
