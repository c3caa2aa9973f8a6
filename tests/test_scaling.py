"""The scaling sweep, the power-law fits (on synthetic data with known exponents) and the completion probe."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from llmcourse import bpe, scaling
from llmcourse.transformer import TransformerLM, parameter_counts


# --------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("e, a, alpha", [(1.7, 400.0, 0.34), (3.2, 12.0, 0.076), (0.5, 3e3, 0.7)])
def test_fit_power_law_recovers_known_exponents(e, a, alpha):
    n = np.geomspace(1e4, 1e8, 9)
    law = scaling.fit_power_law(n, e + a * n ** -alpha)
    assert law.alpha == pytest.approx(alpha, rel=1e-4)
    assert law.e == pytest.approx(e, rel=1e-4)
    np.testing.assert_allclose(law(n), e + a * n ** -alpha, rtol=1e-6)
    assert law.a * law.scale ** law.alpha == pytest.approx(a, rel=1e-3)


def test_fit_power_law_under_noise_stays_close():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e4, 1e7, 15)
    y = (2.0 + 50.0 * n ** -0.3) * np.exp(rng.normal(0, 0.003, n.size))  # 0.3% noise on the loss
    law = scaling.fit_power_law(n, y)
    assert law.alpha == pytest.approx(0.3, abs=0.05)
    assert law.e == pytest.approx(2.0, abs=0.1)


def test_fit_without_irreducible_term_is_a_line_in_log_log():
    c = np.geomspace(1e10, 1e15, 6)
    law = scaling.fit_power_law(c, 30.0 * c ** -0.05, irreducible=False)
    assert law.e == 0.0 and law.alpha == pytest.approx(0.05, rel=1e-9)
    assert "x^-0.050" in str(law)
    k, b = scaling.fit_proportional(c, 0.1 * c ** 0.5)
    assert b == pytest.approx(0.5, rel=1e-9) and k == pytest.approx(0.1, rel=1e-6)


@pytest.mark.parametrize("x, y, match", [
    ([1, 2, 3], [1, 2], "differ in length"),
    ([1, 2, 3], [1, 2, 3], "at least 4 points"),
    ([1, 2, 3, 4], [1, 2, float("nan"), 4], "finite"),
    ([1, 0, 3, 4], [1, 2, 3, 4], "x > 0"),
])
def test_fit_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        scaling.fit_power_law(x, y)


# --------------------------------------------------------------------------------------------
# The compute frontier and the compute-optimal size
# --------------------------------------------------------------------------------------------
def test_compute_frontier_by_hand():
    flops = [1, 2, 3, 4, 5]
    losses = [5.0, 5.5, 4.0, 4.2, 3.9]
    assert scaling.compute_frontier(flops, losses).tolist() == [0, 2, 4]


def _grid(sizes, tokens, law):
    return [{"size": f"n{n}", "params": n, "flops": 6.0 * n * d, "valid_loss": law(n, d)} for n in sizes for d in tokens]


def test_compute_optimal_follows_the_law_it_was_built_on():
    """On runs drawn from Hoffmann et al.'s form L = E + A/N^a + B/D^b, the optimal size grows with compute
    as the law says, N_opt ~ C^(b / (a + b))."""
    a, b = 0.34, 0.28

    def law(n, d):
        return 1.69 + 406.4 / n ** a + 410.7 / d ** b

    sizes = np.geomspace(1e5, 1e9, 25).astype(int)
    rows = _grid(sizes, np.geomspace(1e6, 1e12, 25), law)
    best = scaling.compute_optimal(rows, budgets=np.geomspace(1e16, 1e20, 5))
    params = [r["params"] for r in best]
    assert params == sorted(params) and params[-1] > 10 * params[0]
    _, exponent = scaling.fit_proportional([r["flops"] for r in best], params)
    assert exponent == pytest.approx(b / (a + b), abs=0.05)


def test_compute_optimal_by_hand_and_no_extrapolation():
    rows = [{"size": "small", "params": 1, "flops": f, "valid_loss": l} for f, l in [(1, 5.0), (4, 4.0)]]
    rows += [{"size": "big", "params": 10, "flops": f, "valid_loss": l} for f, l in [(2, 6.0), (8, 1.0)]]  # at C = 4: 3.5 against 4.0
    best = scaling.compute_optimal(rows, budgets=[1, 2, 4, 8])
    assert [r["size"] for r in best] == ["small", "small", "big", "big"]
    assert [r["candidates"] for r in best] == [1, 2, 2, 1]
    assert best[1]["loss"] == pytest.approx(4.5)  # halfway in log C between the small model's runs
    with pytest.raises(ValueError, match="two or more sizes"):
        scaling.compute_optimal(rows[:2])


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["quick", "cpu", "gpu"])
def test_each_sweep_spans_ten_times_in_parameters_with_five_sizes_and_three_budgets(kind):
    sweep = scaling.sweep_for(kind)
    assert len(sweep.sizes) >= 5 and len(sweep.tokens) >= 3
    params = []
    for size in sweep.sizes:
        counts = parameter_counts(scaling.sweep_recipe(size, max(sweep.tokens), sweep).model_config)
        params.append(counts["attention (all blocks)"] + counts["feed-forward (all blocks)"] + counts["layer norms"])
    assert max(params) >= 10 * min(params)


def test_non_embedding_parameters_match_the_formula():
    sweep = scaling.sweep_for("quick")
    recipe = scaling.sweep_recipe(sweep.sizes[-1], max(sweep.tokens), sweep)
    model = recipe.model()
    counts = parameter_counts(recipe.model_config)
    expected = counts["attention (all blocks)"] + counts["feed-forward (all blocks)"] + counts["layer norms"]
    assert scaling.non_embedding_parameters(model) == expected == model.num_parameters(non_embedding=True)


def test_sweep_recipe_steps_and_schedule():
    sweep = scaling.sweep_for("cpu")
    recipe = scaling.sweep_recipe(sweep.sizes[0], 300_000, sweep)
    assert recipe.train.max_steps == 300_000 // (16 * 64) and recipe.train.warmup_steps == recipe.train.max_steps // 20
    assert recipe.train.schedule == "cosine" and recipe.seq_len == 64
    with pytest.raises(ValueError, match="at least one step of 1,024 tokens"):
        scaling.sweep_recipe(sweep.sizes[0], 1000, sweep)
    with pytest.raises(ValueError, match="choose one of"):
        scaling.sweep_for("tpu")


def test_run_sweep_trains_every_run_and_counts_its_compute():
    sweep = scaling.Sweep("quick", scaling.SWEEPS["quick"].sizes[:2], tokens=(512, 1024), vocab_size=64, seq_len=16,
                          batch_size=4, lr=5e-3, eval_batches=2, eval_batch_size=4)
    g = torch.Generator().manual_seed(0)
    ids = {s: torch.randint(0, 64, (n,), generator=g) for s, n in [("train", 4000), ("valid", 600), ("test", 600)]}
    result = scaling.run_sweep(ids, sweep, progress=False)
    assert len(result.rows) == 4 and set(result.models) == {s.name for s in sweep.sizes}
    for r in result.rows:
        assert r["tokens"] == r["budget"]  # whole steps of 64 tokens
        assert r["flops"] == r["flops_per_token"] * r["tokens"] > 0
        assert math.isfinite(r["valid_loss"])
    again = scaling.run_sweep(ids, sweep, progress=False)
    assert [r["valid_loss"] for r in again.rows] == [r["valid_loss"] for r in result.rows]  # seeded: repeatable
    assert result.column("params", result.select(budget=1024)).tolist() == [r["params"] for r in result.rows[1::2]]
    with pytest.raises(ValueError, match="outside the sweep's vocabulary of 64"):
        scaling.run_sweep({**ids, "valid": ids["valid"] + 64}, sweep, progress=False)


# --------------------------------------------------------------------------------------------
# The completion probe
# --------------------------------------------------------------------------------------------
TEXT = [" ".join(["the cat sat on the mat and the dog ran to the park", "while birds sang songs"] * 3)
        for _ in range(6)] + ["apples pears plums grapes melons lemons cherries"] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return bpe.train_bpe(TEXT, vocab_size=60)


def test_cloze_items_ask_the_text_with_matched_distractors(tokenizer):
    counts = Counter(w for line in TEXT for w in line.split())
    items = scaling.cloze_items(tokenizer, TEXT, counts, n_items=20, n_choices=3, context_tokens=8, rank_range=(0, 30))
    assert items and items == scaling.cloze_items(tokenizer, TEXT, counts, n_items=20, n_choices=3, context_tokens=8,
                                                  rank_range=(0, 30))
    stream = tokenizer.encode_lines(TEXT)
    text = " ".join(tokenizer.decode(stream).split())
    for item in items:
        assert len(item.context) == 8 and len({len(c) for c in item.choices}) == 1 and len(set(item.words)) == 3
        true = item.choices[item.answer]
        assert tokenizer.decode(list(item.context) + list(true)).split()[-1] == item.words[item.answer]
        assert " ".join(tokenizer.decode(list(item.context) + list(true)).split()) in text
    assert scaling.cloze_chance(items) == pytest.approx(1 / 3)
    with pytest.raises(TypeError, match="list of lines"):
        scaling.cloze_items(tokenizer, "one string", counts)
    with pytest.raises(ValueError, match="widen rank_range"):
        scaling.cloze_items(tokenizer, TEXT, counts, rank_range=(1000, 2000))


def test_cloze_accuracy_equals_scoring_each_choice_alone(tokenizer):
    counts = Counter(w for line in TEXT for w in line.split())
    items = scaling.cloze_items(tokenizer, TEXT, counts, n_items=15, n_choices=3, context_tokens=12, rank_range=(0, 30))
    sweep = scaling.Sweep("quick", scaling.SWEEPS["quick"].sizes[:1], tokens=(64,), vocab_size=len(tokenizer),
                          seq_len=10, batch_size=2, lr=1e-3, eval_batches=1)
    torch.manual_seed(0)
    model = TransformerLM(scaling.sweep_recipe(sweep.sizes[0], 64, sweep).model_config).eval()
    correct = 0
    for item in items:
        scores = []
        for choice in item.choices:
            row = (list(item.context) + list(choice))[-(10 + 1):]  # at most 10 positions in
            x = torch.tensor([row])
            with torch.no_grad():
                logp = model.log_probs(model(x[:, :-1]))[0]
            scores.append(sum(float(logp[len(row) - len(choice) - 1 + j, t]) for j, t in enumerate(choice)))
        correct += int(np.argmax(scores) == item.answer)
    assert scaling.cloze_accuracy(model, items, batch_size=4) == pytest.approx(correct / len(items))
    with pytest.raises(ValueError, match="no items"):
        scaling.cloze_accuracy(model, [])
