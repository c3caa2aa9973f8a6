"""The race's budget, sized to the machine: measured rates, the tokens each recipe needs, a floor, a cap."""

import dataclasses
import math

import pytest
import torch

from llmcourse import budget as budget_module
from llmcourse.budget import CAP_FACTOR, SCALE_VARIABLE, budget_scale, measure_rate, race_budget
from llmcourse.recipes import Recipe, recipe_for
from llmcourse.training import TrainConfig
from llmcourse.transformer import TransformerConfig


def _ids(n=4000, vocab=200):
    g = torch.Generator().manual_seed(0)
    return {s: torch.randint(0, vocab, (n,), generator=g) for s in ("train", "valid", "test")}


def _recipe(name, seconds=600.0, needed=None):
    config = TransformerConfig(200, max_context=16, d_model=16, n_layers=1, n_heads=2)
    return Recipe(name, "cpu", config, TrainConfig(budget_seconds=seconds, lr=1e-3, warmup_fraction=0.02,
                                                   progress=False), batch_size=4, seq_len=16, tokens_needed=needed)


@pytest.fixture
def rates(monkeypatch):
    """Fake measured rates (tokens per second) by recipe name."""
    measured = {}
    monkeypatch.setattr(budget_module, "measure_rate", lambda recipe, ids, **_: measured[recipe.name])
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    return measured


def test_the_scale_variable_is_read_and_bad_values_are_named(monkeypatch):
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    assert budget_scale() == 1.0
    monkeypatch.setenv(SCALE_VARIABLE, " 0.5 ")
    assert budget_scale() == 0.5
    for bad in ("half", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(SCALE_VARIABLE, bad)
        with pytest.raises(ValueError, match=SCALE_VARIABLE):
            budget_scale()


def test_a_fast_machine_keeps_the_recipes_budget(rates):
    rates |= {"a": 10_000.0, "b": 20_000.0}
    b = race_budget([_recipe("a", needed=3_000_000), _recipe("b", needed=6_000_000)], _ids())
    assert b.seconds == 600 and b.wanted == 300 and not b.capped
    assert b.recipe("a").train.budget_seconds == 600 and b.tokens("a") == 6_000_000
    assert "already give every model the tokens it needs" in str(b)


def test_a_slow_machine_gets_the_tokens_each_recipe_needs_rounded_up_to_a_minute(rates):
    rates |= {"a": 4_000.0, "b": 10_000.0}
    b = race_budget([_recipe("a", needed=3_000_000), _recipe("b", needed=6_000_000)], _ids())
    assert b.wanted == 750 and b.seconds == 780  # the slower need decides: 3 M / 4,000 = 750 s
    assert b.tokens("a") >= 3_000_000 and b.tokens("b") >= 6_000_000
    assert b.recipe("b").train.budget_seconds == 780
    assert "longer than the recipes' 600 s" in str(b)


def test_the_cap_holds_and_says_the_order_may_not_show(rates):
    rates |= {"a": 1_000.0}
    b = race_budget([_recipe("a", needed=3_000_000)], _ids())
    assert b.seconds == CAP_FACTOR * 600 and b.capped
    assert "held at the cap" in str(b)


def test_the_scale_multiplies_the_chosen_budget(rates, monkeypatch):
    rates |= {"a": 4_000.0}
    monkeypatch.setenv(SCALE_VARIABLE, "0.5")
    b = race_budget([_recipe("a", needed=3_000_000)], _ids())
    assert b.seconds == 390 and b.scale == 0.5  # half of 780 s
    assert f"{SCALE_VARIABLE}" in str(b)
    assert race_budget([_recipe("a", needed=3_000_000)], _ids(), scale=2).seconds == 1560


def test_quick_recipes_count_steps_and_no_budget_is_chosen():
    b = race_budget(["lstm", "transformer"], _ids(vocab=12_000), kind="quick", vocab_size=12_000)
    assert b.seconds is None and b.rates == {}
    assert b.recipe("lstm").train.max_steps == recipe_for("lstm", "quick").train.max_steps
    assert "quick mode" in str(b)


def test_runners_on_different_clocks_or_none_are_refused(rates):
    with pytest.raises(ValueError, match="different clocks"):
        race_budget([_recipe("a", 600), _recipe("b", 300)], _ids())
    with pytest.raises(ValueError, match="at least one runner"):
        race_budget([], _ids())
    with pytest.raises(ValueError, match="scale"):
        race_budget([_recipe("a")], _ids(), scale=math.nan)


def test_measure_rate_trains_a_few_steps_and_gives_a_rate():
    torch.manual_seed(0)
    rate = measure_rate(_recipe("a"), _ids(), device="cpu", steps=8)
    assert math.isfinite(rate) and rate > 0
    with pytest.raises(ValueError, match="at least 4 steps"):
        measure_rate(_recipe("a"), _ids(), steps=2)


def test_the_race_recipes_state_what_they_need():
    for name in ("lstm", "transformer"):
        recipe = recipe_for(name, "cpu")
        assert recipe.tokens_needed and recipe.tokens_needed > 0
    assert recipe_for("lstm", "quick").tokens_needed is None  # quick mode counts steps
    assert recipe_for("gpt-bpe", "cpu").tokens_needed is None  # a word-level need says nothing of BPE tokens


def test_the_verdict_says_whether_the_order_holds_and_what_budget_would_settle_it(rates):
    rates |= {"lstm": 5_000.0, "transformer": 10_000.0}
    b = race_budget([_recipe("lstm", needed=3_000_000), _recipe("transformer", needed=3_000_000)], _ids())
    assert b.seconds == 600
    holds = b.verdict({"5-gram": 220.1, "lstm": 200.0, "transformer": 150.0})
    assert holds.startswith("the order holds") and "5-gram 220.1 > lstm 200.0 > transformer 150.0" in holds
    fails = b.verdict({"5-gram": 220.1, "lstm": 235.0, "transformer": 190.0},
                      tokens_read={"lstm": 2_500_000, "transformer": 6_000_000})
    assert "does NOT hold" in fails and "lstm (235.0) is not below 5-gram (220.1)" in fails
    # 3 M tokens at 5,000/s = 600 s: the budget that settles it, and the scale that asks for it
    assert "fewer than the 3,000,000 its recipe needs" in fails and "600 s" in fails
    assert f"{SCALE_VARIABLE}=1.00" in fails
    assert "a longer budget is not the answer" in fails  # the Transformer read what it needs


def test_with_budget_keeps_the_token_need():
    recipe = dataclasses.replace(_recipe("a", needed=123), kind="cpu")
    assert recipe.with_budget(60).tokens_needed == 123


def test_a_recipe_on_another_clock_says_that_clock():
    """LLMCOURSE_BUDGET_SCALE=0.5 gives 300 s: the printed recipe must not still say 10 minutes."""
    recipe = recipe_for("lstm", "cpu", vocab_size=33_278)
    assert "10 minutes of training" in recipe.note
    assert "5 minutes of training" in recipe.with_budget(300).note and "10 minutes" not in recipe.with_budget(300).note
    assert "450 s of training" in recipe.with_budget(450).note
    assert recipe.with_budget(600).note == recipe.note
    assert recipe_for("lstm", "gpu", vocab_size=33_278).with_budget(60).note.endswith("1 minute")
