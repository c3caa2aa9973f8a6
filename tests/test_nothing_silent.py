"""Nothing silently wrong (issue 28): every case the probe of bad inputs found, one test each, by class.

Training never reports success on nothing; every file the course reads is verified; types and ranges
are checked at the public entry points with one message per mistake; fits say when they cannot be
trusted; the wrong model is a clear word.
"""

import json
import math
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from llmcourse import checks, results, scaling
from llmcourse.checkpoints import load_checkpoint, save_checkpoint
from llmcourse.training import TrainConfig, evaluate, train
from llmcourse.transformer import TransformerConfig, TransformerLM

VOCAB = 40


def tiny(seed: int = 0) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(TransformerConfig(VOCAB, max_context=8, d_model=16, n_layers=1, n_heads=2))


def batches(n: int = 12, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(VOCAB, (4, 8), generator=g), torch.randint(VOCAB, (4, 8), generator=g)) for _ in range(n)]


class Counting:
    """Batches that count how many were drawn, and can poison the model's weights when batch ``poison`` is drawn."""

    def __init__(self, data, model=None, poison: int | None = None):
        self.data, self.model, self.poison, self.drawn = data, model, poison, 0

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        for batch in self.data:
            self.drawn += 1
            if self.drawn == self.poison:
                with torch.no_grad():
                    self.model.blocks[0].ff.fc.weight.fill_(float("nan"))
            yield batch


# --------------------------------------------------------------------------------------------
# Training never reports success on nothing
# --------------------------------------------------------------------------------------------
def test_a_nan_injected_into_the_weights_mid_run_stops_training_at_once():
    model = tiny()
    data = Counting(batches(), model, poison=7)
    with pytest.raises(FloatingPointError, match=r"at step 6.*Lower the learning rate"):
        train(model, data, batches(2, seed=1), TrainConfig(epochs=3, eval_every=5, progress=False))
    assert data.drawn == 7  # stopped on the poisoned batch, not at the end of three epochs


class NanWhenEvaluated(nn.Module):
    """A model whose training loss is finite but whose validation loss is NaN (in eval mode only)."""

    def __init__(self):
        super().__init__()
        self.inner = tiny()

    def forward(self, x):
        out = self.inner(x)
        return out if self.training else out * float("nan")


def test_a_nan_validation_loss_stops_the_run_at_that_validation():
    data = Counting(batches())
    with pytest.raises(FloatingPointError, match=r"Validation at step 4: the loss over 64 tokens is nan"):
        train(NanWhenEvaluated(), data, batches(2, seed=1), TrainConfig(epochs=3, eval_every=4, progress=False))
    assert data.drawn == 4


def test_evaluate_refuses_a_nan_loss_instead_of_returning_it():
    model = tiny()
    with torch.no_grad():
        model.tok_embed.weight[3] = float("nan")
    x = torch.full((2, 8), 3)
    with pytest.raises(FloatingPointError, match="the loss over 16 tokens is nan"):
        evaluate(model, [(x, x)])


def test_empty_data_and_no_trainable_weight_are_errors_before_anything_runs():
    with pytest.raises(ValueError, match="train_data has no batch"):
        train(tiny(), [], config=TrainConfig(progress=False))
    frozen = tiny().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        train(frozen, batches(), config=TrainConfig(progress=False))
    with pytest.raises(TypeError, match="train_data must give batches"):
        train(tiny(), "some text", config=TrainConfig(progress=False))


@pytest.mark.parametrize("bad, error", [
    (dict(budget_seconds=True), TypeError), (dict(budget_seconds=0), ValueError),
    (dict(budget_seconds=math.nan), ValueError), (dict(lr=math.nan), ValueError), (dict(max_steps=2.5), TypeError),
    (dict(betas=(0.9, 1.0)), ValueError), (dict(eval_every_seconds=-1), ValueError),
    (dict(checkpoint_dir=3), TypeError), (dict(warmup_fraction=1.0), ValueError),
])
def test_train_config_names_each_bad_number(bad, error):
    name = next(iter(bad))
    with pytest.raises(error, match=name):
        TrainConfig(**bad)


def test_a_tiny_budget_still_trains_whole_steps_and_never_nothing():
    history = train(tiny(), batches(), batches(2), TrainConfig(budget_seconds=0.01, progress=False))
    assert history.steps >= 1 and history.train_tokens > 0 and history.valid


def test_an_unwritable_folder_is_refused_before_the_first_step(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data = Counting(batches())
    for name in ("checkpoint_dir", "resume_dir"):
        with pytest.raises(ValueError, match=f"{name}=.*cannot be written"):
            train(tiny(), data, batches(2), TrainConfig(progress=False, **{name: str(blocker / "sub")}))
    assert data.drawn == 0


def test_the_clock_starts_after_the_first_step_so_the_first_run_of_a_process_gets_its_whole_budget():
    """In a fresh process the first train() pays for imports and allocations; that is set-up, not training."""
    script = """
import json, torch
from llmcourse.training import TrainConfig, train
from llmcourse.transformer import TransformerConfig, TransformerLM
torch.manual_seed(0)
model = TransformerLM(TransformerConfig(40, max_context=8, d_model=16, n_layers=1, n_heads=2))
data = [(torch.randint(40, (4, 8)), torch.randint(40, (4, 8))) for _ in range(50)]
h = train(model, data, None, TrainConfig(budget_seconds=1.0, progress=False))
print(json.dumps({"train": h.train_seconds, "setup": h.setup_seconds, "steps": h.steps,
                  "last": h.train[-1]["seconds"]}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    assert out["setup"] > 0 and out["steps"] > 1
    assert 1.0 <= out["train"] < 1.5  # the whole budget on the clock, and not the set-up as well


# --------------------------------------------------------------------------------------------
# Every file the course reads is verified
# --------------------------------------------------------------------------------------------
@pytest.fixture
def data_copy(shared_data, tmp_path, monkeypatch):
    """A writable copy of the real data folder, pointed to by LLMCOURSE_DATA."""
    copy = tmp_path / "data"
    shutil.copytree(shared_data, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    monkeypatch.setenv("LLMCOURSE_DATA", str(copy))
    return copy


def _edit(path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


@pytest.mark.parametrize("relative, old, new", [
    ("wikitext-2/wiki.train.tokens", b" the ", b" The "),  # one character, t -> T
    ("wikitext-2/wiki.train.tokens", b" king ", b" queen "),  # a word for a word: the counts do not change
    ("wikitext-2/wiki.valid.tokens", b" the ", b" tha "),
    ("wikitext-2/wiki.test.tokens", b" of ", b" af "),
    ("sst2/SST-2/train.tsv", b"the ", b"thx "),
    ("sst2/SST-2/dev.tsv", b"\t1\n", b"\t0\n"),  # a flipped label
    ("sst2/SST-2/test.tsv", b"the ", b"tha "),
])
def test_a_one_character_edit_of_any_data_split_is_refused_naming_the_file(data_copy, relative, old, new):
    from llmcourse.data import DataError, dataset_path

    path = data_copy / relative
    _edit(path, old, new)
    name = "sst2" if relative.startswith("sst2") else "wikitext-2"
    split = {"wiki.train.tokens": "train", "wiki.valid.tokens": "valid", "wiki.test.tokens": "test",
             "train.tsv": "train", "dev.tsv": "dev", "test.tsv": "test"}[path.name]
    with pytest.raises(DataError, match=path.name):
        dataset_path(name, split)


def test_the_official_files_in_another_line_order_still_load(data_copy):
    """CI's WikiText-2 train file has the official lines in another article order: its sorted lines match."""
    from llmcourse.data import dataset_path

    path = data_copy / "wikitext-2" / "wiki.train.tokens"
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    path.write_text("\n".join(lines[1000:] + lines[:1000]) + "\n", encoding="utf-8")
    assert dataset_path("wikitext-2", "train") == path


def test_a_cache_file_copied_by_hand_is_verified_then_noted(shared_data, tmp_path, monkeypatch):
    from llmcourse.data import DataError, dataset_path

    monkeypatch.delenv("LLMCOURSE_DATA", raising=False)
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "sst2" / "SST-2" / "dev.tsv"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(shared_data / "sst2" / "SST-2" / "dev.tsv", cached)
    cached.chmod(0o644)
    assert dataset_path("sst2", "dev", download=False) == cached  # the official content: accepted ...
    note = cached.with_name(".dev.tsv.sha256")
    assert note.is_file()  # ... and noted, so that it is checked by its own hash from here on
    note.unlink()
    _edit(cached, b" film ", b" flim ")  # rows and labels as before; the content is not
    with pytest.raises(DataError, match="without the hash note"):
        dataset_path("sst2", "dev", download=False)


def test_a_checkpoint_with_one_flipped_byte_is_refused_naming_the_file(tmp_path):
    model = tiny()
    save_checkpoint(model, tmp_path)
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors has been changed"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="model.safetensors has been changed"):
        load_checkpoint(tmp_path, model=tiny())


def test_a_checkpoint_config_edited_by_hand_is_refused_naming_the_file(tmp_path):
    save_checkpoint(tiny(), tmp_path)
    config = tmp_path / "config.json"
    meta = json.loads(config.read_text())
    meta["config"]["n_heads"] = 4  # the weights would still load: the shapes do not show it
    config.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="config.json has been changed since it was saved"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_config_with_a_field_this_version_lacks_names_the_file(tmp_path):
    from llmcourse.files import write_json

    save_checkpoint(tiny(), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["n_experts"] = 8  # written by another version: sealed, so only the field is wrong
    del meta["content_sha256"]
    write_json(tmp_path / "config.json", meta, sealed=True)
    with pytest.raises(ValueError, match=r"config.json does not describe a TransformerLM.*n_experts"):
        load_checkpoint(tmp_path)


def test_an_unwritable_trainer_output_folder_is_refused_before_training(tmp_path):
    from llmcourse.finetune import training_arguments

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="output_dir=.*cannot be written"):
        training_arguments(blocker / "out")


def test_a_truncated_checkpoint_names_the_file(tmp_path):
    save_checkpoint(tiny(), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="model.safetensors"):
        load_checkpoint(tmp_path)


def _small_bpe():
    from llmcourse.bpe import train_bpe

    return train_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3, "quiz": 1}, num_merges=6)


@pytest.mark.parametrize("damage", ["drop an unused character", "swap two merges"])
def test_a_damaged_but_self_consistent_bpe_tokenizer_is_refused(tmp_path, damage):
    from llmcourse.bpe import BPETokenizer

    path = _small_bpe().save(tmp_path / "bpe.json")
    state = json.loads(path.read_text(encoding="utf-8"))
    if damage == "drop an unused character":
        state["alphabet"].remove("q")  # every later id shifts by one, and the file still builds a tokenizer
    else:
        state["merges"][0], state["merges"][1] = state["merges"][1], state["merges"][0]
        state["merges"] = [state["merges"][2], *state["merges"][:2], *state["merges"][3:]]
    path.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match="bpe.json has been changed since it was saved"):
        BPETokenizer.load(path)


def test_a_damaged_byte_level_tokenizer_and_vocabulary_are_refused(tmp_path):
    from llmcourse.bytebpe import train_byte_bpe
    from llmcourse.text import Vocab

    path = train_byte_bpe(["low lower newest widest"] * 3, vocab_size=262).save(tmp_path / "bytes.json")
    state = json.loads(path.read_text(encoding="utf-8"))
    state["merges"] = state["merges"][1:]
    path.write_text(json.dumps(state), encoding="utf-8")
    from llmcourse.bytebpe import ByteBPETokenizer

    with pytest.raises(ValueError, match="bytes.json has been changed"):
        ByteBPETokenizer.load(path)
    vocab_path = Vocab(["<unk>", "a", "b"]).save(tmp_path / "vocab.json")
    state = json.loads(vocab_path.read_text(encoding="utf-8"))
    state["itos"] = "abc"
    vocab_path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.json"):
        Vocab.load(vocab_path)


def test_a_vocabulary_with_itos_as_a_string_or_a_repeated_token_is_refused():
    from llmcourse.text import Vocab

    with pytest.raises(ValueError, match="list of tokens"):
        Vocab.from_dict({"itos": "abc"})
    with pytest.raises(ValueError, match="'a' is listed twice"):
        Vocab.from_dict({"itos": ["a", "b", "a"]})


def test_files_saved_before_seals_load_with_a_warning(tmp_path):
    from llmcourse.bpe import BPETokenizer

    path = _small_bpe().save(tmp_path / "old.json")
    state = json.loads(path.read_text(encoding="utf-8"))
    del state["content_sha256"]
    path.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    with pytest.warns(UserWarning, match="saved without the sha256"):
        assert BPETokenizer.load(path).merges == _small_bpe().merges


# --------------------------------------------------------------------------------------------
# Types and ranges, one check per kind of mistake
# --------------------------------------------------------------------------------------------
def test_numericalize_reads_any_iterable_once():
    from llmcourse.data import numericalize
    from llmcourse.text import Vocab

    vocab = Vocab(["a", "b", "c"])
    lines = ["a b", "c a"]
    expected = torch.tensor([0, 1, 2, 0])
    assert torch.equal(numericalize(map(str.split, lines), vocab), expected)
    assert torch.equal(numericalize((line.split() for line in lines), vocab), expected)
    with pytest.raises(TypeError, match="not strings"):
        numericalize(iter(lines), vocab)


@pytest.mark.parametrize("ids", [[0, 1.7], [True, 1], [0, 1.0]])
def test_lookup_tokens_refuses_float_and_bool_ids(ids):
    from llmcourse.text import Vocab

    with pytest.raises(TypeError, match="token id"):
        Vocab(["a", "b", "c"]).lookup_tokens(ids)


def test_lookup_tokens_takes_ints_numpy_ints_and_integer_tensors():
    from llmcourse.text import Vocab

    vocab = Vocab(["a", "b", "c"])
    assert vocab.lookup_tokens([0, np.int64(2)]) == vocab.lookup_tokens(torch.tensor([0, 2])) == ["a", "c"]


def test_decoding_refuses_nan_logits_and_impossible_sizes():
    from llmcourse.decoding import generate, sample_next

    logits = torch.zeros(2, 5)
    logits[1, 3] = float("nan")
    for temperature in (0.0, 1.0):
        with pytest.raises(FloatingPointError, match="NaN"):
            sample_next(logits, temperature=temperature)
    ok = torch.zeros(1, 5)
    for kwargs, error in [(dict(top_k=2.5), TypeError), (dict(top_k=0), ValueError), (dict(top_p=0.0), ValueError),
                          (dict(temperature=-1.0), ValueError), (dict(temperature=True), TypeError)]:
        with pytest.raises(error, match=next(iter(kwargs))):
            sample_next(ok, **kwargs)
    model = tiny()
    prompt = torch.tensor([1, 2])
    for kwargs, error in [(dict(max_new_tokens=2.5), TypeError), (dict(max_new_tokens=-1), ValueError),
                          (dict(max_new_tokens=3, max_context=0), ValueError)]:
        with pytest.raises(error, match="max_"):
            generate(model, prompt, **kwargs)
    with pytest.raises(TypeError, match="token ids"):
        generate(model, torch.tensor([1.0, 2.0]), 3)
    with pytest.raises(TypeError, match="tensor of token ids"):
        generate(model, [1, 2], 3)


def test_masks_are_boolean_and_lengths_whole():
    from llmcourse.attention import MultiHeadAttention, padding_mask

    attention = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    with pytest.raises(TypeError, match="padding_mask must be boolean"):
        attention(x, x, x, padding_mask=torch.tensor([[1.0, 1.0, 0.5], [1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="other values"):
        attention(x, x, x, padding_mask=torch.tensor([[1, 1, 2], [1, 1, 1]]))
    out, _ = attention(x, x, x, padding_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]))  # HF's attention_mask: fine
    assert torch.isfinite(out).all()
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="whole numbers >= 0"):
        padding_mask(ids, lengths=[2, -1])
    with pytest.raises(ValueError, match="whole numbers >= 0"):
        padding_mask(ids, lengths=[2.5, 1.0])


def test_ngram_generate_refuses_a_negative_length():
    from llmcourse.ngram import NGramLM

    lm = NGramLM.fit([["a", "b", "c", "<eos>"]] * 3, order=2)
    with pytest.raises(ValueError, match="max_tokens"):
        lm.generate(max_tokens=-1)
    with pytest.raises(TypeError, match="max_tokens"):
        lm.generate(max_tokens=2.5)


def test_add_lora_checks_its_dropout_and_target_modules():
    from llmcourse.lora import add_lora
    from transformers import BertConfig, BertForSequenceClassification

    def classifier():
        torch.manual_seed(0)
        return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=32))

    with pytest.raises(ValueError, match="dropout"):
        add_lora(classifier(), dropout=-0.1)
    with pytest.raises(TypeError, match="letter by letter"):
        add_lora(classifier(), target_modules="query")


def test_the_results_table_refuses_what_was_not_measured(tmp_path):
    path = tmp_path / "results.json"
    for kwargs, error, words in [
        (dict(model="m", valid_ppl=True, test_ppl=2.0), TypeError, "valid_ppl"),
        (dict(model="m", valid_ppl=2.0, test_ppl=2.0, bleu=math.nan), ValueError, "bleu"),
        (dict(model="", valid_ppl=2.0, test_ppl=2.0), ValueError, "name the model"),
        (dict(model="m", valid_ppl=0.5, test_ppl=2.0), ValueError, "valid_ppl"),
    ]:
        with pytest.raises(error, match=words):
            results.record(path=path, **kwargs)
    assert not path.exists()  # nothing half-written


def test_compute_optimal_refuses_a_nan_loss_and_impossible_budgets():
    rows = [{"size": s, "params": p, "flops": f, "valid_loss": 5.0 - p / 1e4 - f / 1e12}
            for s, p in (("a", 1000), ("b", 2000)) for f in (1e10, 1e11)]
    assert scaling.compute_optimal(rows, budgets=[3e10])
    with pytest.raises(ValueError, match="budgets"):
        scaling.compute_optimal(rows, budgets=[-1])
    rows[1]["valid_loss"] = math.nan
    with pytest.raises(ValueError, match="diverged"):
        scaling.compute_optimal(rows)


def test_power_law_fits_say_when_they_cannot_be_trusted():
    x = np.array([1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
    with pytest.warns(scaling.FitWarning, match="do not change with x"):
        scaling.fit_power_law(x, np.full(6, 3.0))
    with pytest.warns(scaling.FitWarning, match="rise with x"):
        scaling.fit_power_law(x, 2.0 + 0.1 * np.log(x))
    with pytest.warns(scaling.FitWarning, match="3 parameters fitted to 4 points"):
        scaling.fit_power_law(x[:4], 2.0 + 5 * x[:4] ** -0.3)
    with pytest.raises(ValueError, match="every x is"):
        scaling.fit_power_law(np.full(5, 1e6), [3.0, 3.1, 3.2, 3.3, 3.4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean law fits without a word
        law = scaling.fit_power_law(x, 2.0 + 5 * x ** -0.3)
    assert law.alpha == pytest.approx(0.3, rel=1e-3)


# --------------------------------------------------------------------------------------------
# The wrong model, a clear word
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["the cat sat on the mat"] * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=16, n_layer=1,
                               n_head=2)).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(folder)
    return folder


def test_a_bert_tokenizer_from_a_gpt2_folder_is_refused(gpt2_folder):
    from llmcourse.weights import ModelNotFound, load_tokenizer

    with pytest.raises(ModelNotFound, match="not a BERT tokenizer"):
        load_tokenizer(str(gpt2_folder))


def test_a_causal_lm_needs_a_decoder_and_a_tokenizer(gpt2_folder, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    from llmcourse.pretrained import load_causal_lm
    from llmcourse.weights import ModelNotFound, resolve_model

    model, tokenizer = load_causal_lm(str(gpt2_folder), device="cpu")  # the right model loads
    assert tokenizer("the cat").input_ids
    bare = tmp_path / "no-tokenizer"
    shutil.copytree(gpt2_folder, bare)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (bare / name).unlink(missing_ok=True)
    with pytest.raises(ModelNotFound):
        load_causal_lm(str(bare), device="cpu")
    encoder = tmp_path / "encoder"
    BertForMaskedLM(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(encoder)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(resolve_model()).save_pretrained(encoder)
    with pytest.raises(ModelNotFound, match="bert encoder"):
        load_causal_lm(str(encoder), device="cpu")


def test_training_a_lora_model_after_a_merge_is_refused_or_said(capsys):
    from peft import LoraConfig, get_peft_model

    class Adapted(nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = tiny()

        def forward(self, x):
            return self.lm(x)

    peft_model = get_peft_model(Adapted(), LoraConfig(r=2, lora_alpha=4, target_modules=["fc"]))
    peft_model.merge_adapter()
    with pytest.raises(ValueError, match="merged into the weights"):
        train(peft_model, batches(), config=TrainConfig(progress=False))
    peft_model.unmerge_adapter()
    train(peft_model, batches(3), config=TrainConfig(progress=False))
    out = capsys.readouterr().out
    assert "parameters;" in out and "are frozen" in out  # only the adapters train, and the loop says so
    merged = peft_model.merge_and_unload()  # the adapters gone, the base still frozen: nothing would train
    with pytest.raises(ValueError, match="no trainable parameter.*merged"):
        train(merged, batches(), config=TrainConfig(progress=False))


def test_the_shared_checks_name_the_argument():
    with pytest.raises(TypeError, match=r"steps=2.0: give a whole number \(an int, 2\)"):
        checks.whole("steps", 2.0)
    with pytest.raises(TypeError, match="steps=True"):
        checks.whole("steps", True)
    with pytest.raises(ValueError, match=r"p=1.5: give a finite number in \[0, 1\]"):
        checks.probability("p", 1.5)
    assert checks.listed("xs", (i for i in range(3))) == [0, 1, 2]
