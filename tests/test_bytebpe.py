"""llmcourse.bytebpe: the byte table, GPT-2's pre-tokenization, merges, ids and encodings equal to Hugging
Face tokenizers' byte-level BpeTrainer (hand-made ties, seeded random Unicode corpora, WikiText-2), exact round
trips, GPT-2's vocab.json + merges.txt read the same way as tokenizers reads them, lazy streaming in bounded
memory, and a clear error for each kind of bad input."""

import doctest
import json
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

import llmcourse.bytebpe as bytebpe_module
from llmcourse.bytebpe import (GPT2_PATTERN, ByteBPETokenizer, bytes_to_unicode, pretokenize, tokenizers_byte_bpe,
                               tokenizers_merges, train_byte_bpe, unicode_to_bytes)

EOT = "<|endoftext|>"
TRICKY = ["don't we'll they're I'm she's it'd you've", "DON'T 'S 'll", "abc123 4,5 6.78e9 1/2",
          "Hello, world!!! (yes) -- [no] {maybe} <tag> @-@", "a  b\n\n c", "a   b    c\t\td", "\t tab\tsep\t",
          "   leading and trailing   ", " ", "", "\n", "\n\n\n", "x\r\ny\r\n", "emoji 🙂👍🏽 flags 🇫🇷 family 👨‍👩‍👧",
          "中文文本，标点。混合English", "日本語のテキスト", "Ελληνικά και русский", "عربي", "naïve café résumé Ångström",
          "\x00\x01\x7f control", "zero\u200bwidth no\u00a0break", "a<|endoftext|>b", "<|endoftext|><|endoftext|>",
          " <|endoftext|> x", "'''s ''ll", "ﬁ ligature Ⅻ ½ ²"]
CORPUS = ["The quick brown fox doesn't jump over the lazy dog; it's 3 o'clock.",
          "Der Fuchs springt über den faulen Hund. Ça va très bien, merci !",
          "机器学习是人工智能的一个分支。机器学习很有趣。", "Emoji: 🙂🙂 👍🏽 🚀 — and   runs   of    spaces.",
          "def f(x):\n\treturn x ** 2  # square\n\n", "We'll see; they're here, you've won, I'd say 12,345.67%",
          "naïve café, naïve café <|endoftext|> the end"] * 3


def _text(pieces) -> list[str]:
    """tokenizers' pieces (byte symbols) back to text."""
    table = unicode_to_bytes()
    return [bytes(table[c] for c in piece).decode("utf-8") for piece, _ in pieces]


def _same_as_tokenizers(ours: ByteBPETokenizer, theirs) -> None:
    assert ours.merges == tokenizers_merges(theirs)
    assert ours.vocab == theirs.get_vocab()  # the ids too, not only the tokens


def _random_corpus(seed: int, n_lines: int = 40) -> list[str]:
    """Lines of words from a small pool (so that pairs tie and repeat), multi-byte letters, digits,
    contractions, punctuation, uneven white space and the odd special token."""
    rng = random.Random(seed)
    letters = "aab" + "cdeé" * (seed % 2) + "中文" * (seed % 3 == 0) + "🙂" * (seed % 4 == 1)
    pool = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 6))) for _ in range(25)]
    pool += ["'s", "'ll", "12", "3.5", "!!", ",", "--"]
    weights = [1 / (k + 1) for k in range(len(pool))]
    lines = []
    for _ in range(n_lines):
        words = rng.choices(pool, weights, k=rng.randint(0, 10))
        if rng.random() < 0.2:
            words.insert(rng.randint(0, len(words)), EOT)
        gaps = [rng.choice(["", " ", " ", " ", "  ", "\t", "\n", " \n "]) for _ in words]
        lines.append("".join(g + w for g, w in zip(gaps, words)) + rng.choice(["", "\n", "  "]))
    return lines


def _hf_from_files(vocab, merges, specials=(EOT,)):
    tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(specials))
    return tok


@pytest.fixture(scope="module")
def small():
    return train_byte_bpe(CORPUS, vocab_size=400)


def test_the_docstring_examples_hold():
    assert doctest.testmod(bytebpe_module).failed == 0


# ----------------------------------------------------------------------------------------------
# (a) the byte table, (b) pre-tokenization
# ----------------------------------------------------------------------------------------------
def test_the_byte_table_is_a_bijection_onto_tokenizers_alphabet():
    table, inverse = bytes_to_unicode(), unicode_to_bytes()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(inverse[table[b]] == b for b in range(256))
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert (table[ord("A")], table[32], table[10], table[0], table[255]) == ("A", "Ġ", "Ċ", "Ā", "ÿ")


@pytest.mark.parametrize("text", TRICKY)
def test_pretokenize_cuts_text_as_tokenizers_byte_level_does(text):
    theirs = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str(text)
    assert pretokenize(text) == _text(theirs)
    assert "".join(pretokenize(text)) == text


def test_pretokenize_examples():
    assert pretokenize("don't we'll") == ["don", "'t", " we", "'ll"]
    assert pretokenize("abc123 4,5") == ["abc", "123", " 4", ",", "5"]
    assert pretokenize("a  b\n\n c") == ["a", " ", " b", "\n\n", " c"]  # the last space goes with the word
    assert "'s|'t|'re|'ve|'m|'ll|'d" in GPT2_PATTERN


# ----------------------------------------------------------------------------------------------
# (c) training equal to tokenizers; ties
# ----------------------------------------------------------------------------------------------
def test_ties_go_to_the_smallest_ids_and_ids_follow_the_symbols_code_points():
    # All three pairs occur once: the left token with the smallest id wins: a < b < Ġ (the space, U+0120).
    assert train_byte_bpe(["ba ab"], vocab_size=260).merges == [("a", "b"), ("b", "a"), ("Ġ", "ab")]
    # Code points of the symbols, not byte values: é is bytes C3 A9 (symbols Ã ©, U+00C3 U+00A9) and wins over
    # the bytes 01 02 (symbols ā Ă, U+0101 U+0102), although 0x01 < 0xC3.
    assert train_byte_bpe(["\x01\x02é"], vocab_size=259).merges == [("Ã", "©"), ("ā", "Ă")]
    # A merged token is newer than every byte: after ('a', 'b') and ('Ġ', 'ab'), three pairs tie at 1 and
    # ('b', 'd'), then ('Ġ', 'bd'), come before ('ab', 'c'), although "ab" < "b" < "Ġ" as strings.
    tok = train_byte_bpe(["abc bd ab ab ab"], vocab_size=300)
    assert tok.merges == [("a", "b"), ("Ġ", "ab"), ("b", "d"), ("Ġ", "bd"), ("ab", "c")]
    # Ids: the special tokens, the 256 byte symbols in code-point order, then one token per merge.
    assert tok.tokens[:4] == [EOT, "!", '"', "#"] and tok.tokens[1:257] == sorted(bytes_to_unicode().values())
    assert tok.tokens[257:] == [a + b for a, b in tok.merges] and len(tok) == 257 + len(tok.merges)
    for corpus in (["ba ab"], ["\x01\x02é"], ["abc bd ab ab ab"]):
        _same_as_tokenizers(train_byte_bpe(corpus, vocab_size=300), tokenizers_byte_bpe(corpus, 300))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_frequency", [1, 3])
def test_random_corpora_give_the_merges_ids_and_encodings_of_tokenizers(seed, min_frequency):
    corpus = _random_corpus(seed)
    ours = train_byte_bpe(corpus, vocab_size=257 + 80, min_frequency=min_frequency)
    theirs = tokenizers_byte_bpe(corpus, 257 + 80, min_frequency=min_frequency)
    _same_as_tokenizers(ours, theirs)
    assert len(ours.merges) > 25
    for line in _random_corpus(seed + 100, n_lines=10) + TRICKY:
        assert ours.encode(line) == theirs.encode(line).ids, line


def test_a_unicode_text_gives_the_merges_ids_and_encodings_of_tokenizers(small):
    theirs = tokenizers_byte_bpe(CORPUS, 400)
    _same_as_tokenizers(small, theirs)
    assert len(small) == 400 and small.vocab[EOT] == 0
    assert not any("<|" in a + b for a, b in small.merges)  # the special token's characters are never counted
    for text in TRICKY + [" ".join(CORPUS)]:
        assert small.encode(text) == theirs.encode(text).ids, text
        assert small.decode(small.encode(text)) == theirs.decode(theirs.encode(text).ids, skip_special_tokens=False)


def test_wikitext2_gives_the_merges_ids_and_encodings_of_tokenizers(shared_data):
    if not (shared_data / "wikitext-2" / "wiki.valid.tokens").is_file():
        pytest.skip(f"WikiText-2 is not in {shared_data}")
    from llmcourse.data import WikiText2

    lines = WikiText2("valid")
    train, held_out = "\n".join(lines[:3000]), "\n".join(lines[3000:])
    specials = (EOT, "<unk>")
    ours = train_byte_bpe([train], vocab_size=1500, special_tokens=specials)
    theirs = tokenizers_byte_bpe([train], 1500, special_tokens=specials)
    _same_as_tokenizers(ours, theirs)
    assert len(ours) == 1500 and ours.merges[0] == ("Ġ", "t")
    ids = ours.encode(held_out)
    assert ids == theirs.encode(held_out).ids
    assert ours.decode(ids) == held_out


# ----------------------------------------------------------------------------------------------
# (d) round trips, unseen characters
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", TRICKY + ["".join(TRICKY)])
def test_decode_restores_every_string_exactly(small, text):
    assert small.decode(small.encode(text)) == text
    if EOT not in text:  # the tokens, joined, are the text's bytes written as byte symbols
        assert "".join(small.tokenize(text)) == "".join(bytes_to_unicode()[b] for b in text.encode("utf-8"))


def test_characters_never_seen_in_training_still_encode(small):
    unseen = "Ωμέγα ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010FFFF ქართული"
    ids = small.encode(unseen)
    assert small.decode(ids) == unseen and len(ids) >= len(unseen.encode("utf-8")) // 2
    assert all(0 <= i < len(small) for i in ids)


def test_tokens_are_byte_symbols_and_a_cut_character_decodes_as_tokenizers_does(small):
    assert small.tokenize(" the") == ["Ġthe"] and small.encode(EOT) == [0]
    assert small.tokenize("a<|endoftext|>b") == ["a", EOT, "b"]
    half = [small.vocab["Ã"]]  # the first byte of é alone
    theirs = tokenizers_byte_bpe(CORPUS, 400)
    assert small.decode(half) == theirs.decode(half) == "\ufffd"
    assert "400 tokens: 1 special, 256 bytes, 143 merges" in repr(small)


# ----------------------------------------------------------------------------------------------
# (e) GPT-2's files, own JSON
# ----------------------------------------------------------------------------------------------
def test_gpt2_files_load_into_ours_and_into_tokenizers_with_the_same_ids(small, tmp_path):
    vocab, merges = small.save_gpt2_files(tmp_path / "gpt2")
    assert merges.read_text(encoding="utf-8").splitlines()[:2] == ["#version: 0.2", " ".join(small.merges[0])]
    ours = ByteBPETokenizer.from_gpt2_files(vocab, merges)
    assert ours.vocab == small.vocab and ours.merges == small.merges
    theirs = _hf_from_files(vocab, merges)
    for text in TRICKY:
        assert ours.encode(text) == theirs.encode(text).ids == small.encode(text), text


def test_a_vocabulary_numbered_in_another_order_encodes_as_tokenizers_does(small, tmp_path):
    others = [t for t in small.tokens if t != EOT]
    shuffled = others[:]
    random.Random(0).shuffle(shuffled)
    vocab = {EOT: 0} | {t: i for i, t in enumerate(shuffled, start=1)}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("".join(f"{a} {b}\n" for a, b in small.merges), encoding="utf-8")
    ours = ByteBPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    theirs = _hf_from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert ours.vocab == vocab
    for text in TRICKY:
        ids = ours.encode(text)
        assert ids == theirs.encode(text).ids and ours.decode(ids) == text, text
        assert [ours.tokens[i] for i in ids] == small.tokenize(text)  # the same tokens, other ids


def test_a_special_token_missing_from_vocab_json_gets_the_next_id(small, tmp_path):
    vocab, merges = small.save_gpt2_files(tmp_path)
    ours = ByteBPETokenizer.from_gpt2_files(vocab, merges, special_tokens=[EOT, "<pad>"])
    assert ours.vocab["<pad>"] == len(small) and ours.encode("x<pad>") == small.encode("x") + [len(small)]
    assert ours.decode(ours.encode("x<pad>")) == "x<pad>"


def test_save_and_load_give_the_same_tokenizer(small, tmp_path):
    path = small.save(tmp_path / "tok" / "bytebpe.json")
    assert [p.name for p in path.parent.iterdir()] == ["bytebpe.json"]  # no temporary file left behind
    again = ByteBPETokenizer.load(path)
    assert again.merges == small.merges and again.vocab == small.vocab and again.special_tokens == small.special_tokens
    assert again.encode(TRICKY[0]) == small.encode(TRICKY[0])
    assert "Ġ" in path.read_text(encoding="utf-8")  # readable JSON, not escaped


# ----------------------------------------------------------------------------------------------
# (f) streaming
# ----------------------------------------------------------------------------------------------
def test_encode_iterable_equals_encode_however_the_text_is_cut(small, tmp_path):
    rng = random.Random(0)
    specials = ByteBPETokenizer(small.merges, special_tokens=[EOT, "<x>", "<x>y"])
    for trial in range(300):
        text = "".join(rng.choice(TRICKY + ["don'", "t", "'l", "l ", "<x", ">y", "<|endof", "text|>", "  "])
                       for _ in range(rng.randint(0, 12)))
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 8))))
        chunks = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
        for tok in (small, specials):
            assert list(tok.encode_iterable(chunks)) == tok.encode(text), (chunks, trial)
    lines = [line + "\n" for line in " ".join(CORPUS).split("\n")]
    assert list(small.encode_iterable(iter(lines))) == small.encode("".join(lines))
    path = tmp_path / "text.txt"
    path.write_text("\n".join(TRICKY), encoding="utf-8", newline="")
    with open(path, encoding="utf-8", newline="") as f:  # a file, read line by line
        assert list(small.encode_iterable(f)) == small.encode("\n".join(TRICKY))
    assert list(small.encode_iterable([])) == []


def test_encode_iterable_is_lazy(small):
    taken = []

    def lines():
        for k in range(1000):
            assert k < 3 or taken, f"line {k} was read before the first id was taken"
            yield f"line {k} says: don't stop.\n"

    stream = small.encode_iterable(lines())
    taken.append(next(stream))
    assert [taken[0], *stream] == small.encode("".join(f"line {k} says: don't stop.\n" for k in range(1000)))


def test_encode_iterable_streams_in_bounded_memory(small):
    rng = random.Random(1)
    sentences = [s.replace("\n", " ") + "\n" for s in CORPUS]

    def lines(n):
        for _ in range(n):
            yield rng.choice(sentences)

    n = 40_000  # about 2.5 MB of text
    size = sum(len(s.encode("utf-8")) for s in (rng.choice(sentences) for _ in range(n)))
    list(small.encode_iterable(lines(200)))  # warm the cache of pieces
    tracemalloc.start()
    try:
        count = sum(1 for _ in small.encode_iterable(lines(n)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > n * 5
    assert peak < size / 100, f"peak {peak:,} bytes while streaming {size:,} bytes"


# ----------------------------------------------------------------------------------------------
# (g) clear errors
# ----------------------------------------------------------------------------------------------
def test_decode_rejects_unknown_ids_and_non_integers(small):
    with pytest.raises(ValueError, match=rf"token id {len(small)} at position 1 is not in the vocabulary"):
        small.decode([0, len(small)])
    with pytest.raises(ValueError, match="token id -1 at position 0"):
        small.decode([-1])
    with pytest.raises(TypeError, match="decode takes token ids .* str 'the' at position 0.*encode"):
        small.decode(["the"])
    with pytest.raises(TypeError, match="float 1.5 at position 0"):
        small.decode([1.5])
    with pytest.raises(TypeError, match="bool True"):
        small.decode([True])
    with pytest.raises(TypeError, match=r"got list \[1, 2\] at position 0"):
        small.decode([[1, 2]])


@pytest.mark.parametrize("specials,error,message", [
    ([""], TypeError, "non-empty str, got str ''"),
    ([3], TypeError, "non-empty str, got int 3"),
    ([None], TypeError, "non-empty str, got NoneType"),
    (EOT, TypeError, "special_tokens is a list of tokens"),
    ([EOT, EOT], ValueError, "name a token twice"),
    (["!"], ValueError, r"special tokens \['!'\] are also byte symbols"),
])
def test_a_bad_special_token_is_a_clear_error(specials, error, message):
    with pytest.raises(error, match=message):
        train_byte_bpe(["ab ab"], vocab_size=300, special_tokens=specials)


def test_bad_training_arguments_and_non_str_text_are_clear_errors(small):
    with pytest.raises(ValueError, match=r"vocab_size must be a whole number >= 257 .* got 100"):
        train_byte_bpe(["ab"], vocab_size=100)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got int"):
        train_byte_bpe(["ab", 3], vocab_size=300)
    with pytest.raises(TypeError, match=r"texts\[0\] is bytes"):
        train_byte_bpe([b"ab"], vocab_size=300)
    with pytest.raises(TypeError, match="must be a str, got int"):
        small.encode(123)
    with pytest.raises(TypeError, match="bytes; decode it first"):
        small.encode(b"the cat")
    with pytest.raises(TypeError, match="must be a str, got NoneType"):
        pretokenize(None)
    with pytest.raises(TypeError, match="takes an iterable of str"):
        small.encode_iterable("the cat")
    with pytest.raises(TypeError, match="chunk 1 is not a str .bytes: open a file in text mode"):
        list(small.encode_iterable(["a", b"b"]))


def _write(folder: Path, vocab, merges: str) -> tuple[Path, Path]:
    (folder / "vocab.json").write_text(vocab if isinstance(vocab, str) else json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def test_a_vocabulary_that_disagrees_with_its_merges_is_a_clear_error(small, tmp_path):
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in small.merges)
    a, b = small.merges[0]
    cases = [
        ({k: v for k, v in small.vocab.items() if k != a + b} | {"zz": small.vocab[a + b]},
         rf"merge 0 \('{a}', '{b}'\): its result '{a + b}' is not in the vocabulary"),
        (small.vocab | {"x": 5}, "gives the id 5 to both"),
        ({k: (v + 1 if v > 300 else v) for k, v in small.vocab.items()}, "without gaps, but id 301 is missing"),
        ({k: v for k, v in small.vocab.items() if k != "Ā"} | {"zz": small.vocab["Ā"]},
         "lacks 1 of the 256 byte symbols"),
        (small.vocab | {"▁the": len(small)}, "'▁the' is not written in byte symbols"),
        ('{"a": ', "not a readable vocab.json"),
        ("[1, 2]", "should map tokens to ids .a JSON object., got list"),
    ]
    for vocab, message in cases:
        paths = _write(tmp_path, vocab, merges)
        with pytest.raises(ValueError, match=message) as info:
            ByteBPETokenizer.from_gpt2_files(*paths)
        assert "vocab.json" in str(info.value)
    paths = _write(tmp_path, small.vocab, merges + "zz Ġ\n")  # a part missing from vocab.json
    with pytest.raises(ValueError, match=rf"merge {len(small.merges)} \('zz', 'Ġ'\): its part 'zz' is not in"):
        ByteBPETokenizer.from_gpt2_files(*paths)
    paths = _write(tmp_path, small.vocab, merges + "a b c\n")
    with pytest.raises(ValueError, match=rf"line {len(small.merges) + 2}: 'a b c' is not two tokens"):
        ByteBPETokenizer.from_gpt2_files(*paths)


def test_a_merge_list_that_cannot_be_numbered_is_refused():
    with pytest.raises(ValueError, match="makes 'ab', which is already a token"):
        ByteBPETokenizer([("a", "b"), ("a", "b")])
    with pytest.raises(ValueError, match=r"merge 0 \('ab', 'c'\) uses 'ab'"):
        ByteBPETokenizer([("ab", "c"), ("a", "b")])
    with pytest.raises(ValueError, match="makes the special token 'ab'"):
        ByteBPETokenizer([("a", "b")], special_tokens=["ab"])
    with pytest.raises(ValueError, match="pair of non-empty tokens"):
        ByteBPETokenizer([("a",)])


@pytest.mark.parametrize("damage,message", [
    (lambda text: text[: len(text) // 2], "not a readable byte-level BPE tokenizer"),
    (lambda text: json.dumps({"merges": []}), "no \"format\""),
    (lambda text: text.replace('"version": 1', '"version": 9'), "version 9"),
    (lambda text: text.replace('"merges": [[', '"merges": [["zz", "t"], ['), "its part 'zz' is not in the vocabulary"),
])
def test_a_damaged_file_is_a_clear_error(small, tmp_path, damage, message, resealed):
    path = small.save(tmp_path / "tok.json")
    path.write_text(resealed(damage(path.read_text(encoding="utf-8"))), encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        ByteBPETokenizer.load(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------------------------
# The benchmark's quick mode
# ----------------------------------------------------------------------------------------------
def test_the_quick_benchmark_runs_and_saves_its_figures(shared_data, tmp_path):
    if not (shared_data / "wikitext-2" / "wiki.train.tokens").is_file():
        pytest.skip(f"WikiText-2 is not in {shared_data}")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bytebpe.py"
    out = tmp_path / "bytebpe_quick.json"
    run = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    saved = json.loads(out.read_text())
    assert saved["kind"] == "quick" and saved["merges_and_ids_identical"] and saved["machine"]
    assert all(e["ids_identical"] for e in saved["encoding"])
