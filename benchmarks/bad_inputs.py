"""A probe of bad inputs: the public functions the notebooks call, each given something wrong, and what it gets.

Each probe is a call that should not succeed as written (a float where a count goes, NaN, a string read
letter by letter, the wrong model, a damaged file). The outcome is ``refused`` (an exception, its type and
the first line of its message), ``warned`` (it ran, with a warning) or ``ACCEPTED`` (it ran without a word:
silently wrong); a few probes are calls that must *work* (``works``), such as ``numericalize`` of a ``map``. ``names_it`` says whether the message names the argument or file at fault. Prints the
table and saves it, with the machine, to ``benchmarks/results/bad_inputs.json``. Runs in about ten seconds;
no data set is read except where LLMCOURSE_DATA is set (the file probes are then added).

    .venv/bin/python benchmarks/bad_inputs.py
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _common import save, stamp  # noqa: E402  (benchmarks/_common.py)
from llmcourse import attention, bpe, bytebpe, checkpoints, data, decoding, lm, ngram, results, scaling, text  # noqa: E402
from llmcourse.rnn import RNNConfig  # noqa: E402
from llmcourse.training import TrainConfig, evaluate, train  # noqa: E402
from llmcourse.transformer import TransformerConfig, TransformerLM  # noqa: E402


def _tiny() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(TransformerConfig(40, max_context=8, d_model=16, n_layers=1, n_heads=2))


def _nan_model() -> TransformerLM:
    model = _tiny()
    with torch.no_grad():
        model.tok_embed.weight.fill_(float("nan"))
    return model


def _batches(n: int = 4):
    g = torch.Generator().manual_seed(0)
    return [(torch.randint(40, (2, 8), generator=g), torch.randint(40, (2, 8), generator=g)) for _ in range(n)]


def _flipped_checkpoint(folder: Path) -> Path:
    checkpoints.save_checkpoint(_tiny(), folder)
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-5] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(weights))
    return folder


def _damaged_bpe(path: Path) -> Path:
    tok = bpe.train_bpe({"low": 5, "lower": 2, "newest": 6, "quiz": 1}, num_merges=4)
    tok.save(path)
    state = json.loads(path.read_text(encoding="utf-8"))
    state["alphabet"].remove("q")  # self-consistent: every later id shifts
    path.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    return path


def _edited_copy(tmp: Path, relative: str, old: bytes, new: bytes) -> Path:
    """A copy of LLMCOURSE_DATA with one edit, made the data folder."""
    import shutil

    copy = tmp / "data-copy"
    if not copy.exists():
        shutil.copytree(os.environ["LLMCOURSE_DATA"], copy)
        for p in copy.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
    path = copy / relative
    path.write_bytes(path.read_bytes().replace(old, new, 1))
    os.environ["LLMCOURSE_DATA"] = str(copy)
    return path


def probes(tmp: Path) -> list[tuple[str, str, object]]:
    """``(call, what should be named, thunk)``."""
    vocab = text.Vocab(["<unk>", "a", "b"])
    ids = torch.arange(100) % 40
    out = [
        ("Vocab.lookup_tokens([0, 1.7])", "token id", lambda: vocab.lookup_tokens([0, 1.7])),
        ("Vocab.lookup_tokens([True, 1])", "token id", lambda: vocab.lookup_tokens([True, 1])),
        ("Vocab.lookup_token(-1)", "Index -1", lambda: vocab.lookup_token(-1)),
        ("Vocab.set_default_index(True)", "set_default_index", lambda: vocab.set_default_index(True)),
        ("Vocab.from_dict(itos='abc')", "itos", lambda: text.Vocab.from_dict({"itos": "abc"})),
        ("Vocab.from_dict(itos with a repeat)", "twice", lambda: text.Vocab.from_dict({"itos": ["a", "a"]})),
        ("vocab[3]", "lookup_token", lambda: vocab[3]),
        ("build_vocab_from_iterator(['a b'])", "Tokenize", lambda: text.build_vocab_from_iterator(["a b"])),
        ("build_vocab_from_iterator(min_freq=0)", "min_freq", lambda: text.build_vocab_from_iterator([["a"]], min_freq=0)),
        ("get_tokenizer('spacy')", "spacy", lambda: text.get_tokenizer("spacy")),
        ("numericalize(map(str.split, lines)) == its list", "", lambda: _same(
            data.numericalize(map(str.split, ["a b", "b a"]), vocab), data.numericalize([["a", "b"], ["b", "a"]], vocab))),
        ("numericalize('a b', vocab)", "Tokenize", lambda: data.numericalize("a b", vocab)),
        ("tokenize_lines('one string')", "character", lambda: data.tokenize_lines("one string")),
        ("batchify(ids, 2.5)", "batch_size", lambda: data.batchify(ids, 2.5)),
        ("batchify(ids.float(), 4)", "integer token ids", lambda: data.batchify(ids.float(), 4)),
        ("batchify(list, 4)", "tensor", lambda: data.batchify(list(range(10)), 4)),
        ("BPTTIterator(x, 0)", "bptt", lambda: data.BPTTIterator(data.batchify(ids, 4), 0)),
        ("LMWindowDataset(ids, -1)", "seq_len", lambda: data.LMWindowDataset(ids, -1)),
        ("WikiText2('dev')", "dev", lambda: data.WikiText2("dev")),
        ("lm.perplexity([nan])", "NaN", lambda: lm.perplexity(torch.tensor([float("nan")]))),
        ("NGramLM.fit(order=0)", "order", lambda: ngram.NGramLM.fit([["a", "b"]], order=0)),
        ("NGramLM.fit(smoothing='foo')", "smoothing", lambda: ngram.NGramLM.fit([["a", "b"]], smoothing="foo")),
        ("NGramLM.generate(max_tokens=-1)", "max_tokens", lambda: _ngram().generate(max_tokens=-1)),
        ("NGramLM.generate(max_tokens=2.5)", "max_tokens", lambda: _ngram().generate(max_tokens=2.5)),
        ("NGramLM.generate(temperature=0)", "temperature", lambda: _ngram().generate(temperature=0)),
        ("sample_next(NaN logits, temperature=0)", "NaN", lambda: decoding.sample_next(
            torch.tensor([[0.0, float("nan")]]), temperature=0)),
        ("sample_next(top_k=2.5)", "top_k", lambda: decoding.sample_next(torch.zeros(1, 5), top_k=2.5)),
        ("sample_next(top_p=0)", "top_p", lambda: decoding.sample_next(torch.zeros(1, 5), top_p=0.0)),
        ("sample_next(temperature=True)", "temperature", lambda: decoding.sample_next(torch.zeros(1, 5), temperature=True)),
        ("generate(max_new_tokens=2.5)", "max_new_tokens", lambda: decoding.generate(_tiny(), torch.tensor([1]), 2.5)),
        ("generate(max_new_tokens=-1)", "max_new_tokens", lambda: decoding.generate(_tiny(), torch.tensor([1]), -1)),
        ("generate(prompt as a list)", "tensor", lambda: decoding.generate(_tiny(), [1, 2], 3)),
        ("generate(float prompt)", "integer token ids", lambda: decoding.generate(_tiny(), torch.tensor([1.0]), 3)),
        ("generate(prompt longer than max_context, use_cache=True)", "max_context", lambda: decoding.generate(
            _tiny(), torch.ones(12, dtype=torch.long), 3, use_cache=True)),
        ("TransformerLM(ids longer than max_context)", "max_context", lambda: _tiny()(torch.ones(1, 12, dtype=torch.long))),
        ("TransformerConfig(d_model=10, n_heads=3)", "n_heads", lambda: TransformerConfig(40, d_model=10, n_heads=3)),
        ("TransformerConfig(positional='abs')", "positional", lambda: TransformerConfig(40, positional="abs")),
        ("RNNConfig(cell='foo')", "cell", lambda: RNNConfig(vocab_size=40, cell="foo")),
        ("MultiHeadAttention(padding_mask=float)", "padding_mask", lambda: attention.MultiHeadAttention(8, 2)(
            torch.randn(1, 3, 8), torch.randn(1, 3, 8), torch.randn(1, 3, 8), padding_mask=torch.ones(1, 3))),
        ("padding_mask(lengths=[-1])", "lengths", lambda: attention.padding_mask(torch.zeros(1, 3), lengths=[-1])),
        ("causal_mask(0)", "causal_mask", lambda: attention.causal_mask(0)),
        ("TrainConfig(budget_seconds=True)", "budget_seconds", lambda: TrainConfig(budget_seconds=True)),
        ("TrainConfig(budget_seconds=0.01): steps", "", lambda: _steps(TrainConfig(budget_seconds=0.01, progress=False))),
        ("TrainConfig(max_steps=2.5)", "max_steps", lambda: TrainConfig(max_steps=2.5)),
        ("TrainConfig(lr=nan)", "lr", lambda: TrainConfig(lr=math.nan)),
        ("train(model, [])", "train_data", lambda: train(_tiny(), [], config=TrainConfig(progress=False))),
        ("train(frozen model)", "trainable", lambda: train(_tiny().requires_grad_(False), _batches(),
                                                          config=TrainConfig(progress=False))),
        ("train(checkpoint_dir=unwritable)", "checkpoint_dir", lambda: train(
            _tiny(), _batches(), _batches(1), TrainConfig(progress=False, checkpoint_dir="/proc/no/such"))),
        ("train(NaN weights)", "loss", lambda: train(_nan_model(), _batches(), config=TrainConfig(progress=False))),
        ("evaluate(NaN weights)", "loss", lambda: evaluate(_nan_model(), _batches(1))),
        ("train_bpe(vocab_size=2.5)", "vocab_size", lambda: bpe.train_bpe({"ab": 2}, vocab_size=2.5)),
        ("train_bpe('')", "corpus", lambda: bpe.train_bpe("", num_merges=3)),
        ("train_byte_bpe(vocab_size=100)", "vocab_size", lambda: bytebpe.train_byte_bpe(["ab"], vocab_size=100)),
        ("BPETokenizer.load(one alphabet character removed)", "bpe.json", lambda: bpe.BPETokenizer.load(
            _damaged_bpe(tmp / "bpe.json"))),
        ("load_checkpoint(one flipped byte)", "model.safetensors", lambda: checkpoints.load_checkpoint(
            _flipped_checkpoint(tmp / "ckpt"))),
        ("load_checkpoint(no such folder)", "missing", lambda: checkpoints.load_checkpoint(tmp / "none")),
        ("results.record(valid_ppl=True)", "valid_ppl", lambda: results.record(
            "m", valid_ppl=True, test_ppl=2.0, path=tmp / "r.json")),
        ("results.record(bleu=nan)", "bleu", lambda: results.record(
            "m", valid_ppl=2.0, test_ppl=2.0, bleu=math.nan, path=tmp / "r.json")),
        ("results.record(model='')", "model", lambda: results.record("", valid_ppl=2.0, test_ppl=2.0,
                                                                    path=tmp / "r.json")),
        ("fit_power_law(constant losses)", "do not change", lambda: scaling.fit_power_law(
            np.logspace(3, 8, 6), np.full(6, 3.0))),
        ("fit_power_law(rising losses)", "rise", lambda: scaling.fit_power_law(
            np.logspace(3, 8, 6), 2 + 0.1 * np.log(np.logspace(3, 8, 6)))),
        ("fit_power_law(every size equal)", "every x", lambda: scaling.fit_power_law(np.full(5, 1e6), np.arange(1, 6))),
        ("compute_optimal(budgets=[-1])", "budgets", lambda: scaling.compute_optimal(_rows(), budgets=[-1])),
        ("compute_optimal(a NaN loss)", "valid_loss", lambda: scaling.compute_optimal(_rows(nan=True))),
    ]
    try:
        import peft  # noqa: F401
        from transformers import BertConfig, BertForSequenceClassification

        from llmcourse import lora

        def clf():
            torch.manual_seed(0)
            return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                            num_attention_heads=2, intermediate_size=32))

        out += [("add_lora(r=0)", "r ", lambda: lora.add_lora(clf(), r=0)),
                ("add_lora(dropout=-0.1)", "dropout", lambda: lora.add_lora(clf(), dropout=-0.1)),
                ("add_lora(target_modules='query')", "target_modules", lambda: lora.add_lora(clf(),
                                                                                           target_modules="query")),
                ("train() after merge_adapter()", "merged", lambda: _merged_then_trained(lora, clf))]
    except ImportError:
        pass
    if os.environ.get("LLMCOURSE_DATA"):
        for relative, old, new in [("wikitext-2/wiki.train.tokens", b" the ", b" The "),
                                   ("wikitext-2/wiki.train.tokens", b" king ", b" queen "),
                                   ("sst2/SST-2/dev.tsv", b"\t1\n", b"\t0\n"),
                                   ("sst2/SST-2/train.tsv", b" film ", b" flim ")]:
            name, split = ("sst2", Path(relative).stem) if relative.startswith("sst2") else (
                "wikitext-2", Path(relative).name.split(".")[1])
            out.append((f"{relative}: {old.decode().strip()!r} -> {new.decode().strip()!r}", Path(relative).name,
                        lambda r=relative, o=old, n=new, a=name, s=split: (_edited_copy(tmp, r, o, n),
                                                                           data.dataset_path(a, s))))
    return out


def _same(a, b):
    if not torch.equal(a, b):
        raise AssertionError(f"{a.tolist()} != {b.tolist()}")
    return "equal"


def _ngram():
    return ngram.NGramLM.fit([["a", "b", "c", "<eos>"]] * 3, order=2)


def _steps(config):
    return f"{train(_tiny(), _batches(), _batches(1), config).steps} steps"


def _rows(nan: bool = False):
    rows = [{"size": s, "params": p, "flops": f, "valid_loss": 5.0 - p / 1e4 - f / 1e12}
            for s, p in (("a", 1000), ("b", 2000)) for f in (1e10, 1e11)]
    if nan:
        rows[1]["valid_loss"] = math.nan
    return rows


def _merged_then_trained(lora, clf):
    model = lora.add_lora(clf())
    model.merge_adapter()
    x = torch.randint(50, (2, 6))
    return train(model, [(x, torch.tensor([0, 1]))], config=TrainConfig(progress=False),
                 loss_fn=lambda out, y: (torch.nn.functional.cross_entropy(out.logits, y, reduction="sum"),
                                         torch.tensor(2)))


def run(tmp: Path) -> list[dict]:
    rows = []
    for call, name, thunk in probes(tmp):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = thunk()
                said = next((str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)), None)
                if not name:  # a call that should work, and did
                    outcome, message = "works", repr(value)[:80]
                else:
                    outcome, message = ("warned", said) if said else ("ACCEPTED", repr(value)[:80])
            except Exception as exc:  # the probe records whatever happens
                outcome, message = "refused", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        rows.append({"call": call, "outcome": outcome, "message": message[:300],
                     "names_it": None if not name else name.lower() in message.lower()})
    return rows


def main(argv: list[str] | None = None) -> dict:
    import argparse

    parser = argparse.ArgumentParser(description="Bad inputs to the notebooks' public functions, and what each gets.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bad_inputs.json")
    args = parser.parse_args(argv)
    data_folder = os.environ.get("LLMCOURSE_DATA")
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(Path(tmp))
    if data_folder:
        os.environ["LLMCOURSE_DATA"] = data_folder
    for r in rows:
        print(f"{r['outcome']:>8} {'(unnamed) ' if r['names_it'] is False else ''}{r['call']}: {r['message'][:150]}")
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("refused", "warned", "ACCEPTED", "works")}
    print(f"{len(rows)} probes: {counts}; messages naming what was wrong: {sum(bool(r['names_it']) for r in rows)} "
          f"of {sum(r['names_it'] is not None for r in rows)}")
    result = stamp("bad_inputs") | {"counts": counts, "probes": rows}
    save(result, args.out, echo=False)
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
