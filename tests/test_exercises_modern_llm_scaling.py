"""The exercises of notebooks 06 and 07: each checker passes its solution, fails a wrong answer, and fails
the answer that calls the course's own function (which the solution is proven equal to here)."""

import numpy as np
import pytest
import torch

from llmcourse import bpe, lora, scaling, transformer
from llmcourse.exercises.modern_llm import kv_cache_experiment, measure_kv_cache, merge_exercise, rope_exercise
from llmcourse.exercises.scaling import (count_lora_parameters, lora_merge_exercise, lora_parameters_experiment,
                                         power_law_exercise)


def test_the_merge_checker():
    assert merge_exercise.check(merge_exercise.solution_fn, verbose=False)
    for symbols, pair in merge_exercise.cases:  # the solution is the course's merge_pair
        assert merge_exercise.solution_fn(symbols, pair) == tuple(bpe.merge_pair(list(symbols), pair))
    assert not merge_exercise.check(lambda s, p: tuple(bpe.merge_pair(list(s), p)), verbose=False)  # forbidden

    def rightmost_wins(symbols, pair):  # overlaps resolved from the right: ('a', 'aa') for a a a
        out = list(symbols)
        i = len(out) - 2
        while i >= 0:
            if (out[i], out[i + 1]) == tuple(pair):
                out[i:i + 2] = [out[i] + out[i + 1]]
                i -= 2
            else:
                i -= 1
        return tuple(out)

    assert not merge_exercise.check(rightmost_wins, verbose=False)


def test_the_rope_checker():
    assert rope_exercise.check(rope_exercise.solution_fn, verbose=False)
    for x, theta in rope_exercise.cases:  # the solution equals the course's apply_rope on rope_tables
        cos, sin = transformer.rope_tables(x.shape[-2], x.shape[-1], theta)
        torch.testing.assert_close(rope_exercise.solution_fn(x, theta),  # the tables are float32: 1e-6
                                   transformer.apply_rope(x, cos.double(), sin.double()), rtol=1e-6, atol=1e-6)
    library = lambda x, theta: transformer.apply_rope(x, *(t.double() for t in transformer.rope_tables(  # noqa: E731
        x.shape[-2], x.shape[-1], theta)))
    assert not rope_exercise.check(library, verbose=False)

    def adjacent_pairs(x, theta):  # GPT-NeoX's layout mistaken for interleaved pairs (2i, 2i + 1)
        d = x.shape[-1]
        inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        ang = torch.arange(x.shape[-2], dtype=torch.float64)[:, None] * inv
        a, b = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * ang.cos() - b * ang.sin(), b * ang.cos() + a * ang.sin()
        return out

    assert not rope_exercise.check(adjacent_pairs, verbose=False)


def test_the_lora_merge_checker():
    assert lora_merge_exercise.check(lora_merge_exercise.solution_fn, verbose=False)
    for W, A, B, alpha, r in lora_merge_exercise.cases:
        torch.testing.assert_close(lora_merge_exercise.solution_fn(W, A, B, alpha, r),
                                   lora.merged_weight(W, A, B, alpha=alpha, r=r))
    assert not lora_merge_exercise.check(lambda W, A, B, a, r: lora.merged_weight(W, A, B, alpha=a, r=r),
                                         verbose=False)
    assert not lora_merge_exercise.check(lambda W, A, B, a, r: W + a * (B @ A), verbose=False)  # forgot / r


def test_the_power_law_checker():
    assert power_law_exercise.check(power_law_exercise.solution_fn, verbose=False)
    for x, y in power_law_exercise.cases:  # the solution is the course's pure power law
        law = scaling.fit_power_law(x, y, irreducible=False)
        assert power_law_exercise.solution_fn(x, y) == pytest.approx((law.a * law.scale ** law.alpha, law.alpha))
    assert not power_law_exercise.check(lambda x, y: (lambda p: (p.a, p.alpha))(
        scaling.fit_power_law(x, y, irreducible=False)), verbose=False)
    assert not power_law_exercise.check(  # log10 for the intercept
        lambda x, y: (lambda s, c: (10 ** c, -s))(*np.polyfit(np.log10(x), np.log(y), 1)), verbose=False)


def test_the_experiments_measure_only_after_a_prediction(capsys):
    assert measure_kv_cache() == {} and count_lora_parameters() == {}
    assert capsys.readouterr().out.count("predict first") == 2
    measured = measure_kv_cache({4: 1.0}, positions=64, d_model=32, n_layers=2, n_heads=4, kv_heads=(4, 1))
    # 2 (keys and values) x layers x kv_heads x d_head x positions x 4 bytes
    assert measured == {kv: 2 * 2 * kv * 8 * 64 * 4 / 2 ** 20 for kv in (4, 1)}
    assert measured[4] == transformer.kv_cache_bytes(transformer.TransformerConfig.llama(
        512, max_context=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4), 1, 64) / 2 ** 20
    assert "n_kv_heads" in repr(kv_cache_experiment) and "predict" in repr(lora_parameters_experiment).lower()


def test_counting_lora_parameters_on_the_packaged_classifier():
    counted = count_lora_parameters({8: 0}, ranks=(1, 8))
    assert counted == {r: 6 * 2 * 2 * 384 * r + 384 * 2 + 2 for r in (1, 8)}  # the hint's arithmetic
