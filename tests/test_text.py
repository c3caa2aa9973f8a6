"""The torchtext API without torchtext: cases taken from torchtext 0.18's own test suite."""

import pytest

from llmcourse.text import SPECIALS, Vocab, basic_english, build_vocab_from_iterator, get_tokenizer


def test_basic_english_matches_torchtext():
    # torchtext test/test_utils.py::test_get_tokenizer_basic_english
    sample = "'\".<br />,()!?;:   Basic English Normalization for a Line of Text   '\".<br />,()!?;:"
    expected = ["'", ".", ",", "(", ")", "!", "?", "basic", "english", "normalization", "for", "a", "line",
                "of", "text", "'", ".", ",", "(", ")", "!", "?"]
    assert get_tokenizer("basic_english")(sample) == expected


def test_basic_english_details():
    assert basic_english("Don't STOP; go: (now)!") == ["don", "'", "t", "stop", "go", "(", "now", ")", "!"]
    assert basic_english("a\tb\n\nc") == ["a", "b", "c"]
    assert basic_english("") == []


def test_get_tokenizer_choices():
    assert get_tokenizer(None)("a  b\tc") == ["a", "b", "c"]
    assert get_tokenizer(str.upper)("x") == "X"
    with pytest.raises(ValueError, match="Unknown tokenizer 'spacy'"):
        get_tokenizer("spacy")
    with pytest.raises(ValueError, match="English only"):
        get_tokenizer("basic_english", language="de")


UNICODE = "ᑌᑎIᑕOᗪᕮ_Tᕮ᙭T"
ITERATOR = [["hello", "hello", "hello", "freq_low", "hello", "world", "world", "world", UNICODE, UNICODE,
             UNICODE, "freq_low", UNICODE, UNICODE]]


def test_build_vocab_from_iterator_matches_torchtext():
    # torchtext test/test_vocab.py::test_vocab_from_iterator and its min_freq / special_first variants
    specials = ["<unk>", "<s>", "</s>"]
    v = build_vocab_from_iterator(ITERATOR, specials=specials)
    assert v.get_itos() == ["<unk>", "<s>", "</s>", UNICODE, "hello", "world", "freq_low"]
    v = build_vocab_from_iterator(ITERATOR, specials=specials, min_freq=3, special_first=False)
    assert v.get_itos() == [UNICODE, "hello", "world", "<unk>", "<s>", "</s>"]
    v = build_vocab_from_iterator(ITERATOR, specials=["<unk>"], max_tokens=3)
    assert v.get_itos() == ["<unk>", UNICODE, "hello"]


def test_ties_are_broken_alphabetically():
    v = build_vocab_from_iterator([["b", "a", "c", "a", "b"]])
    assert v.get_itos() == ["a", "b", "c"]


def test_specials_already_in_the_text_are_not_duplicated():
    v = build_vocab_from_iterator([["<unk>", "x", "<eos>", "x"]], specials=list(SPECIALS))
    assert v.get_itos() == ["<unk>", "<pad>", "<sos>", "<eos>", "x"]


def test_vocab_lookups_and_default_index():
    v = build_vocab_from_iterator([["a", "b", "b"]], specials=["<unk>"])
    assert v["b"] == 1 and v.lookup_token(2) == "a" and "a" in v and "z" not in v
    with pytest.raises(RuntimeError, match="set_default_index"):
        v["z"]
    v.set_default_index(v["<unk>"])
    assert v.lookup_indices(["a", "z"]) == [2, 0] and v(["b"]) == [1]
    assert v.lookup_tokens([1, 2]) == ["b", "a"]
    with pytest.raises(RuntimeError, match="outside the vocabulary"):
        v.lookup_token(3)
    with pytest.raises(IndexError):
        v.set_default_index(10)
    v.insert_token("new", 0)
    assert v["new"] == 0 and v["b"] == 2 and v["never"] == v["<unk>"] == 1
    with pytest.raises(RuntimeError, match="already in the vocabulary"):
        v.append_token("a")


def test_vocab_save_and_load(tmp_path):
    v = build_vocab_from_iterator([["é", "ß", "ß"]], specials=["<unk>"])
    v.set_default_index(0)
    path = v.save(tmp_path / "vocab.json")
    assert Vocab.load(path) == v and Vocab.load(path)["never seen"] == 0
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json is not a readable vocabulary"):
        Vocab.load(tmp_path / "bad.json")


def test_a_string_instead_of_token_lists_is_refused():
    with pytest.raises(TypeError, match="Tokenize each line first"):
        build_vocab_from_iterator(["hello world", "again"])


def test_a_lookup_by_the_wrong_type_is_a_clear_error():
    vocab = Vocab(["<unk>", "the", "cat"], default_index=0)
    with pytest.raises(TypeError, match=r"looks up a token, a str; got int 5.*vocab.lookup_token\(5\)"):
        vocab[5]  # used to return the default index, 0, silently
    with pytest.raises(TypeError, match="tokens as str"):
        vocab.append_token(3)


def test_check_token_ids():
    import torch

    from llmcourse.text import check_token_ids

    check_token_ids(torch.tensor([0, 4]), 5, "A model")  # in range: nothing to say
    check_token_ids(torch.tensor([], dtype=torch.long), 5, "A model")
    with pytest.raises(ValueError, match=r"A model got token id 5, outside the model's vocabulary \(0 to 4\)"):
        check_token_ids(torch.tensor([0, 5]), 5, "A model")
    with pytest.raises(TypeError, match="torch.bool"):
        check_token_ids(torch.tensor([True]), 5, "A model")
