"""Canaries, exposure and extraction (llmcourse.privacy) on a small model that memorises one and not another."""

import math

import pytest
import torch
from torch.utils.data import DataLoader

from llmcourse import privacy
from llmcourse.data import LMWindowDataset, numericalize, tokenize_lines
from llmcourse.text import build_vocab_from_iterator
from llmcourse.training import TrainConfig, train
from llmcourse.transformer import TransformerConfig, TransformerLM


def test_canaries_are_planted_as_often_as_asked_and_deduplication_keeps_one():
    canaries = privacy.make_canaries([0, 1, 5], length=4, seed=1)
    assert len({c.secret for c in canaries}) == 3 and all(len(c.secret) == 4 for c in canaries)
    lines = [f"line {i}" for i in range(50)]
    planted = privacy.plant(lines, canaries, seed=2)
    assert [planted.count(c.line) for c in canaries] == [0, 1, 5]
    assert [l for l in planted if l.startswith("line")] == lines  # the text's own order is kept
    deduped = privacy.deduplicate(planted)
    assert [deduped.count(c.line) for c in canaries] == [0, 1, 1] and len(deduped) == 52
    with pytest.raises(TypeError, match="letter by letter"):
        privacy.plant("one string", canaries)


@pytest.fixture(scope="module")
def memorised():
    """A small Transformer trained on filler text with one canary planted 40 times and one never."""
    torch.manual_seed(0)
    canaries = privacy.make_canaries([40, 0], length=4, seed=3)
    g = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(30)]
    filler = [" ".join(words[j] for j in torch.randint(30, (8,), generator=g).tolist()) for _ in range(400)]
    lines = privacy.plant(filler, canaries, seed=0)
    tokens = tokenize_lines(lines)
    vocab = build_vocab_from_iterator(tokens + [list(privacy.DIGITS)], specials=["<unk>"])
    vocab.set_default_index(0)
    ids = numericalize(tokens, vocab)
    model = TransformerLM(TransformerConfig(len(vocab), max_context=16, d_model=48, n_layers=2, n_heads=4,
                                            dropout=0.0, attn_dropout=0.0))
    loader = DataLoader(LMWindowDataset(ids, 16), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    train(model, loader, None, TrainConfig(max_steps=400, lr=3e-3, warmup_steps=20, progress=False))
    return model, vocab, canaries


def test_a_repeated_canary_is_exposed_and_extracted_and_an_unplanted_one_is_not(memorised):
    model, vocab, (seen, unseen) = memorised
    hot, cold = (privacy.exposure(model, c, vocab, samples=2_000) for c in (seen, unseen))
    assert hot["max"] == pytest.approx(math.log2(10 ** 4))
    assert hot["saturated"] and hot["exposure"] == hot["max"] > hot["at_least"] > 10  # above every sampled secret
    assert cold["exposure"] < 4 < hot["exposure"]  # an unplanted secret: no likelier than most
    assert privacy.extracted(model, seen, vocab) == (True, list(seen.secret))
    assert privacy.extracted(model, unseen, vocab)[0] is False


def test_sequence_nll_is_the_models_own_loss(memorised):
    model, vocab, (seen, _) = memorised
    ids = torch.tensor([[vocab[w] for w in ("<eos>", *seen.words)]])
    nll = privacy.sequence_nll(model, ids, 1)
    with torch.no_grad():
        logits = model.eval()(ids[:, :-1])
    expected = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:], reduction="sum")
    assert float(nll[0]) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="score_from"):
        privacy.sequence_nll(model, ids, 0)


def test_audit_is_exposure_and_extraction_of_every_canary_and_groups_by_repeats(memorised):
    model, vocab, (seen, unseen) = memorised
    rows = privacy.audit(model, [seen, unseen], vocab, samples=500)
    assert [r["repeats"] for r in rows] == [40, 0]
    for row, canary in zip(rows, (seen, unseen)):
        e = privacy.exposure(model, canary, vocab, samples=500)
        assert row["exposure"] == e["exposure"] and row["nll"] == e["nll"] and row["saturated"] == e["saturated"]
        assert row["shown"] == (e["at_least"] if e["saturated"] else e["exposure"])
        hit, words = privacy.extracted(model, canary, vocab)
        assert (row["extracted"], row["wrote"], row["secret"]) == (hit, " ".join(words), " ".join(canary.secret))
    assert rows[0]["extracted"] and rows[0]["saturated"] and rows[0]["shown"] == rows[0]["at_least"] < rows[0]["exposure"]
    assert not rows[1]["extracted"] and not rows[1]["saturated"] and rows[1]["shown"] == rows[1]["exposure"]
    twice = privacy.by_repeats(rows + [dict(rows[0], shown=0.0, extracted=False)])
    assert list(twice) == [0, 40]
    assert twice[40] == {"canaries": 2, "mean_exposure": rows[0]["at_least"] / 2, "extracted": 1}
    assert twice[0] == {"canaries": 1, "mean_exposure": rows[1]["exposure"], "extracted": 0}
