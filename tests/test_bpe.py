"""llmcourse.bpe: merges, ids and encodings equal to Hugging Face tokenizers' BpeTrainer (hand-made ties,
seeded random corpora, WikiText-2), the plain loop equal to the fast one, round trips, the prefix property,
save / load, and a clear error for each kind of bad input."""

import doctest
import json
import random

import pytest

import llmcourse.bpe as bpe_module
from llmcourse.bpe import (WORD_START, BPETokenizer, count_words, learn_merges, learn_merges_fast, merge_pair,
                           tokenizers_bpe, tokenizers_merges, tokens_per_word, train_bpe, vocab_size_tradeoff)

W = WORD_START


def _same_as_tokenizers(ours: BPETokenizer, theirs) -> None:
    assert ours.merges == tokenizers_merges(theirs)
    assert ours.vocab == theirs.get_vocab()  # the ids too, not only the tokens


def _random_corpus(seed: int, letters: str, n_lines: int = 40, n_words: int = 30) -> list[str]:
    """Lines of words drawn from a pool of ``n_words`` with Zipf-like repetition (so that pairs tie and
    repeat), with <unk> as a word, glued to a word, and <eos>, and uneven white space."""
    rng = random.Random(seed)
    pool = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 8))) for _ in range(n_words)]
    weights = [1 / (k + 1) for k in range(len(pool))]
    lines = []
    for _ in range(n_lines):
        words = rng.choices(pool, weights, k=rng.randint(0, 12))
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), rng.choice(["<unk>", "<eos>", f"{pool[0]}<unk>{pool[1]}"]))
        lines.append(rng.choice([" ", "  ", "\t"]).join(words) + rng.choice(["", " ", " \n"]))
    return lines


@pytest.fixture(scope="module")
def wikitext(shared_data):
    if not (shared_data / "wikitext-2" / "wiki.train.tokens").is_file():
        pytest.skip(f"WikiText-2 is not in {shared_data}")
    from llmcourse.data import WikiText2

    return WikiText2(("train", "valid"))


def test_the_docstring_examples_hold():
    assert doctest.testmod(bpe_module).failed == 0


# ----------------------------------------------------------------------------------------------
# Words and one merge
# ----------------------------------------------------------------------------------------------
def test_count_words_splits_on_white_space_and_cuts_special_tokens_out():
    counts = count_words([" the cat <unk> the <eos> ", "the\tcat  sat\n", "", " ", "a<unk>b"])
    assert counts == {"the": 3, "cat": 2, "sat": 1, "a": 1, "b": 1}
    assert count_words("x y x", special_tokens=()) == {"x": 2, "y": 1}
    assert count_words(["<unk>x"], special_tokens=["<unk>", "<unk>x"]) == {}  # the longest special wins


def test_merge_pair_merges_every_occurrence_left_to_right():
    assert merge_pair([W, "l", "o", "w", "l", "o"], ("l", "o")) == [W, "lo", "w", "lo"]
    assert merge_pair(["a", "a", "a"], ("a", "a")) == ["aa", "a"]  # overlaps go to the left
    assert merge_pair(["a", "a", "a", "a"], ("a", "a")) == ["aa", "aa"]
    assert merge_pair([3, 4, 3, 4], (3, 4), new=9) == [9, 9]
    assert merge_pair(["a", "b"], ("b", "a")) == ["a", "b"]


# ----------------------------------------------------------------------------------------------
# Training: ties by hand, then equal to tokenizers
# ----------------------------------------------------------------------------------------------
def test_ties_go_to_the_smallest_ids_left_then_right_not_to_string_order():
    # Characters: ids by code point (a < b < ... < ▁). Every pair below occurs once: all tie.
    assert train_bpe(["ba ab"], num_merges=4).merges == [("a", "b"), ("b", "a"), (W, "ab"), (W, "ba")]
    # (a, z) and (b, a) tie: the left id decides before the right one.
    assert train_bpe(["az ba"], num_merges=2).merges == [("a", "z"), ("b", "a")]
    # After ('a','b') and ('▁','ab'), six pairs tie at 1. 'ab' is the newest token, so ('b','d') and
    # ('p','ab') come before ('ab','c'), although "ab" < "b" as strings.
    tok = train_bpe(["pabc qbd ab ab ab ab ab"], vocab_size=20)
    assert tok.merges == [("a", "b"), (W, "ab"), ("b", "d"), ("p", "ab"), ("q", "bd"), (W, "pab"), (W, "qbd"),
                          (W + "pab", "c")]
    # Ids: special tokens, the alphabet in code-point order, then one token per merge in merge order.
    assert tok.tokens[:10] == ["<unk>", "<eos>", "a", "b", "c", "d", "p", "q", W, "ab"]
    assert len(tok) == 2 + 7 + 8  # the corpus has no more pairs: training stopped below vocab_size


@pytest.mark.parametrize("corpus", [["ba ab"], ["az ba"], ["pabc qbd ab ab ab ab ab"],
                                    ["low " * 5 + "lower " * 2 + "newest " * 6 + "widest " * 3]])
def test_hand_corpora_give_the_merges_and_ids_of_tokenizers(corpus):
    ours = train_bpe(corpus, vocab_size=40)
    _same_as_tokenizers(ours, tokenizers_bpe(corpus, 40))


@pytest.mark.parametrize("seed,letters", [(0, "ab"), (1, "abc"), (2, "abcde"), (3, "etaoinshrdlu"),
                                          (4, "abcdefghijklmnopqrstuvwxyz"), (5, "aäbßc中文-")])
@pytest.mark.parametrize("min_frequency", [1, 3])
def test_random_corpora_give_the_merges_ids_and_encodings_of_tokenizers(seed, letters, min_frequency):
    corpus = _random_corpus(seed, letters)
    size = len(set(letters)) + 3 + 60  # special tokens, alphabet and marker, 60 merges at most
    ours = train_bpe(corpus, vocab_size=size, min_frequency=min_frequency, unk_token="<unk>")
    theirs = tokenizers_bpe(corpus, size, min_frequency=min_frequency, unk_token="<unk>")
    _same_as_tokenizers(ours, theirs)
    assert len(ours.merges) > 30  # 39 to 60 merges, about two in three chosen among pairs of equal count
    held_out = _random_corpus(seed + 100, letters + "xyz", n_lines=10)  # xyz: maybe outside the alphabet
    for line in held_out:
        assert ours.encode(line) == theirs.encode(line).ids, line


def test_initial_alphabet_adds_characters_and_shifts_the_ids_as_tokenizers_does():
    corpus = _random_corpus(7, "bcd")
    ours = train_bpe(corpus, vocab_size=30, initial_alphabet="aé", unk_token="<unk>")
    _same_as_tokenizers(ours, tokenizers_bpe(corpus, 30, initial_alphabet="aé", unk_token="<unk>"))
    assert ours.encode("é") == [ours.vocab[W], ours.vocab["é"]]


def test_the_plain_loop_and_the_fast_loop_give_the_same_merges():
    for seed, letters in [(0, "ab"), (1, "abcde"), (2, "etaoinshrdlu"), (3, "aäbßc中文-")]:
        words = {(W, *w): c for w, c in count_words(_random_corpus(seed, letters, n_lines=80)).items()}
        for min_frequency in (1, 2):
            plain = learn_merges(words, 200, min_frequency)
            assert plain == learn_merges_fast(words, 200, min_frequency)
            assert len(plain) > 30
    corpus = _random_corpus(4, "abcdefgh")
    assert train_bpe(corpus, vocab_size=80, fast=False).merges == train_bpe(corpus, vocab_size=80).merges


def test_wikitext2_train_gives_the_merges_ids_and_encodings_of_tokenizers(wikitext):
    train, valid = wikitext
    ours = train_bpe(train, vocab_size=2000, unk_token="<unk>")
    theirs = tokenizers_bpe(train, 2000, unk_token="<unk>")
    assert len(ours.merges) == 2000 - 2 - len(ours.alphabet) > 1000
    _same_as_tokenizers(ours, theirs)
    assert ours.merges[:3] == [(W, "t"), ("h", "e"), (W, "a")]
    ids = [ours.encode(line) for line in valid]
    assert ids == [e.ids for e in theirs.encode_batch(valid)]
    # The round trip: every word of the valid text back, with single spaces between them.
    assert all(ours.decode(line_ids) == " ".join(line.split()) for line_ids, line in zip(ids, valid))
    assert ours.decode_lines(ours.encode_lines(valid)) == [" ".join(line.split()) for line in valid]
    # The plain loop agrees on the first merges of the real data too.
    few = {(W, *w): c for w, c in count_words(train[:300]).items()}
    assert learn_merges(few, 60) == learn_merges_fast(few, 60)


# ----------------------------------------------------------------------------------------------
# Encoding and decoding
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return train_bpe(["the cat sat on the mat <unk> the hat", "a cat and a hat <eos>"], vocab_size=40)


def test_encode_replays_the_merges_and_decode_restores_the_words(small):
    tokens = small.tokenize("the cat")
    assert "".join(tokens) == W + "the" + W + "cat" and all(t in small.vocab for t in tokens)
    assert small.encode("the cat") == [small.vocab[t] for t in tokens]
    for text in ["the cat sat", "  the\tcat <unk> hat\n", "act", "<eos>", ""]:
        assert small.decode(small.encode(text)) == " ".join(text.split())
    # Special tokens stay whole even inside a word, and come back as words of their own.
    assert small.tokenize("cat<unk>hat") == small.tokenize("cat") + ["<unk>"] + small.tokenize("hat")
    assert small.decode(small.encode("cat<unk>hat")) == "cat <unk> hat"
    # A word is cached once and gives the same ids every time.
    assert small.encode("anthem") == small.encode("anthem")
    assert "anthem" in small._cache


def test_encode_lines_ends_every_line_with_eos(small):
    ids = small.encode_lines(["the cat", "", "a hat"])
    eos = small.vocab["<eos>"]
    assert ids == small.encode("the cat") + [eos, eos] + small.encode("a hat") + [eos]
    assert small.decode_lines(ids) == ["the cat", "", "a hat"]
    assert small.decode_lines(ids[:-1]) == ["the cat", "", "a hat"]


def test_decode_takes_lists_tensors_and_numpy_arrays(small):
    import numpy as np
    import torch

    ids = small.encode("the cat sat")
    assert small.decode(torch.tensor(ids)) == small.decode(np.array(ids)) == small.decode(tuple(ids)) == "the cat sat"


def test_an_unknown_character_is_an_error_naming_it_or_maps_to_unk():
    closed = train_bpe(["abc abd"], num_merges=3)
    with pytest.raises(ValueError, match=r"character 'é' \(U\+00E9\) at position 6 .*'abé'.*unk_token='<unk>'"):
        closed.encode("ab  abé")
    opened = train_bpe(["abc abd"], num_merges=3, unk_token="<unk>")
    unk = opened.vocab["<unk>"]
    assert opened.encode("aéb") == [opened.vocab[W], opened.vocab["a"], unk, opened.vocab["b"]]
    assert opened.encode("é") == [opened.vocab[W], unk]
    theirs = tokenizers_bpe(["abc abd"], len(opened), unk_token="<unk>")  # tokenizers maps it the same way
    _same_as_tokenizers(opened, theirs)
    for text in ["aéb", "é", "abé abd", "ab<unk>é"]:
        assert opened.encode(text) == theirs.encode(text).ids
    with pytest.raises(ValueError, match="unk_token '<pad>' must be one of the special tokens"):
        BPETokenizer(opened.merges, opened.alphabet, unk_token="<pad>")


# ----------------------------------------------------------------------------------------------
# Smaller vocabularies from one training
# ----------------------------------------------------------------------------------------------
def test_a_smaller_vocabulary_is_a_prefix_of_the_merges_of_a_larger_one():
    corpus = _random_corpus(11, "etaoinshrdlucmfw", n_lines=120, n_words=300)
    large = train_bpe(corpus, vocab_size=300, unk_token="<unk>")
    assert len(large) == 300
    for size in (len(large.special_tokens) + len(large.alphabet), 60, 150, 300):
        direct = train_bpe(corpus, vocab_size=size, unk_token="<unk>")
        cut = large.truncated(size)
        assert cut.merges == direct.merges and cut.vocab == direct.vocab and len(cut) == size
        assert cut.encode(corpus[0]) == direct.encode(corpus[0])
    with pytest.raises(ValueError, match="between 19 .* and 300"):
        large.truncated(301)
    with pytest.raises(ValueError, match="between 19"):
        large.truncated(10)


def test_vocab_size_tradeoff_gives_fewer_tokens_per_word_for_larger_vocabularies():
    corpus = _random_corpus(12, "etaoinshrdlucmfw", n_lines=200, n_words=300)
    held_out = _random_corpus(13, "etaoinshrdlucmfw", n_lines=50, n_words=300)
    result = vocab_size_tradeoff(corpus, held_out, vocab_sizes=(200, 40, 100), unk_token="<unk>")
    assert list(result) == [40, 100, 200]
    assert result[40] > result[100] > result[200] >= 1.0
    separately = train_bpe(corpus, vocab_size=100, unk_token="<unk>")
    assert result[100] == tokens_per_word(separately, held_out)
    words = sum(len(line.split()) for line in held_out)
    assert result[100] == sum(len(separately.encode(line)) for line in held_out) / words
    with pytest.raises(ValueError, match="allows only"):
        vocab_size_tradeoff(["ab ab"], ["ab"], vocab_sizes=(100,))
    with pytest.raises(ValueError, match="vocab_sizes is empty"):
        vocab_size_tradeoff(corpus, held_out, vocab_sizes=())
    with pytest.raises(ValueError, match="no words"):
        tokens_per_word(separately, ["", " "])


# ----------------------------------------------------------------------------------------------
# Save and load
# ----------------------------------------------------------------------------------------------
def test_save_and_load_give_the_same_tokenizer(small, tmp_path):
    path = small.save(tmp_path / "bpe" / "tok.json")
    assert [p.name for p in path.parent.iterdir()] == ["tok.json"]  # no temporary file left behind
    again = BPETokenizer.load(path)
    assert again.merges == small.merges and again.vocab == small.vocab and again.unk_token == small.unk_token
    assert again.encode("the cat <unk> sat") == small.encode("the cat <unk> sat")
    assert json.loads(path.read_text(encoding="utf-8"))["alphabet"][-1] == W  # readable JSON, not escaped


@pytest.mark.parametrize("damage,message", [
    (lambda text: text[: len(text) // 2], "not a readable BPE tokenizer"),
    (lambda text: "\x00\x01 not json", "not a readable BPE tokenizer"),
    (lambda text: json.dumps({"merges": []}), "no \"format\""),
    (lambda text: text.replace('"version": 1', '"version": 9'), "version 9"),
    (lambda text: text.replace('"merges": [[', '"merges": [["zz", "t"], ['), "merge 0 .* uses 'zz'"),
    (lambda text: text.replace('"alphabet": [', '"alphabet": ["ab", '), "single characters"),
])
def test_a_damaged_file_is_a_clear_error(small, tmp_path, damage, message, resealed):
    path = small.save(tmp_path / "tok.json")
    path.write_text(resealed(damage(path.read_text(encoding="utf-8"))), encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        BPETokenizer.load(path)
    assert str(path) in str(info.value)


def test_a_merge_list_that_makes_a_token_twice_or_uses_a_later_token_is_refused():
    with pytest.raises(ValueError, match="makes 'ab', which is already a token"):
        BPETokenizer([("a", "b"), ("a", "b")], [W, "a", "b"])
    with pytest.raises(ValueError, match=r"merge 0 \('ab', 'c'\) uses 'ab'"):
        BPETokenizer([("ab", "c"), ("a", "b")], [W, "a", "b", "c"])
    with pytest.raises(ValueError, match="word-start marker"):
        BPETokenizer([], ["a", "b"])


# ----------------------------------------------------------------------------------------------
# Bad input
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
    with pytest.raises(TypeError, match="got list at position 0"):
        small.decode([[1, 2]])


@pytest.mark.parametrize("kwargs,message", [
    ({"vocab_size": 0}, "vocab_size must be a positive whole number, got 0"),
    ({"vocab_size": -5}, "vocab_size must be a positive whole number"),
    ({"vocab_size": 2.5}, "vocab_size must be a positive whole number"),
    ({"vocab_size": 5}, r"vocab_size=5 is smaller than the 2 special tokens and the 4 characters .* >= 6"),
    ({}, "exactly one of vocab_size"),
    ({"vocab_size": 10, "num_merges": 3}, "exactly one of vocab_size"),
    ({"num_merges": -1}, "num_merges must be a whole number >= 0"),
    ({"num_merges": 2, "min_frequency": -1}, "min_frequency must be"),
    ({"num_merges": 2, "special_tokens": "<unk>"}, "special_tokens is a list"),
    ({"num_merges": 2, "special_tokens": ["<u nk>"]}, "no white space"),
    ({"num_merges": 2, "initial_alphabet": ["ab"]}, "single characters"),
])
def test_bad_training_arguments_are_clear_errors(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        train_bpe(["abc ab"], **kwargs)


@pytest.mark.parametrize("corpus", [[], [""], [" ", "\n\t"], ["<unk> <eos>", "<unk>"], {}])
def test_an_empty_corpus_is_a_clear_error(corpus):
    with pytest.raises(ValueError, match="the corpus has no words"):
        train_bpe(corpus, num_merges=10)


def test_non_string_input_is_a_clear_error(small):
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got int"):
        train_bpe(["ab", 3], num_merges=2)
    with pytest.raises(TypeError, match=r"texts\[0\] is bytes"):
        train_bpe([b"ab"], num_merges=2)
    with pytest.raises(TypeError, match="str keys; got int"):
        train_bpe({1: 2}, num_merges=2)
    with pytest.raises(ValueError, match="count of 'ab' must be a whole number >= 1"):
        train_bpe({"ab": 0}, num_merges=2)
    with pytest.raises(TypeError, match="must be a str, got int"):
        small.encode(123)
    with pytest.raises(TypeError, match="bytes; decode it first"):
        small.encode(b"the cat")
    with pytest.raises(TypeError, match="must be a str, got list"):
        small.encode(["the", "cat"])
    with pytest.raises(TypeError, match="takes a list of lines"):
        small.encode_lines("the cat")
    with pytest.raises(ValueError, match="eos='</s>' is not one of the special tokens"):
        small.encode_lines(["the cat"], eos="</s>")
    with pytest.raises(TypeError, match="tuples of symbols"):
        learn_merges({"ab": 1}, 2)


def test_the_word_start_marker_in_the_text_is_a_clear_error(small):
    with pytest.raises(ValueError, match=r"word-start marker '▁' \(U\+2581\) at position 4"):
        small.encode(f"the {W}cat")
    with pytest.raises(ValueError, match="corpus holds the word-start marker"):
        train_bpe([f"a {W}b"], num_merges=2)
