"""The exercises of notebook 04: each checker accepts a right answer and rejects wrong ones."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.decoding import top_k_filter
from llmcourse.exercises.transformer_lm import (
    causal_attention_exercise,
    compare_positions,
    positions_experiment,
    rms_norm_exercise,
    top_k_exercise,
)
from llmcourse.transformer import layer_norm


def not_written(*args):
    raise NotImplementedError


def test_transformer_lm_exercise_checkers_accept_the_solution_and_reject_wrong_answers():
    assert causal_attention_exercise.check(causal_attention_exercise.solution_fn, verbose=False)
    assert not causal_attention_exercise.check(lambda s: s.softmax(-1), verbose=False)  # no mask
    assert not causal_attention_exercise.check(  # the mask the wrong way round: sees only the future
        lambda s: s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).tril(-1), float("-inf")).softmax(-1),
        verbose=False)
    assert top_k_exercise.check(top_k_exercise.solution_fn, verbose=False)
    assert top_k_exercise.check(top_k_filter, verbose=False)  # the shared decoding helper agrees
    assert not top_k_exercise.check(lambda logits, k: logits, verbose=False)
    assert not top_k_exercise.check(not_written, verbose=False)


def test_rms_norm_checker_agrees_with_pytorch_and_rejects_the_usual_slips():
    assert rms_norm_exercise.check(rms_norm_exercise.solution_fn, verbose=False)
    # the reference agrees with PyTorch's own RMSNorm, which the answer may not call
    for x, w, eps in rms_norm_exercise.cases:
        assert torch.allclose(rms_norm_exercise.solution_fn(x, w, eps), F.rms_norm(x, (x.shape[-1],), w, eps))
    assert not rms_norm_exercise.check(lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps), verbose=False)
    assert rms_norm_exercise.check(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w,
                                   verbose=False)
    wrong = {
        "LayerNorm (subtracts the mean)": lambda x, w, eps: layer_norm(x, w, None, eps),
        "eps left out": lambda x, w, eps: x / x.pow(2).mean(-1, keepdim=True).sqrt() * w,
        "eps outside the root": lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w,
        "no square root": lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps) * w,
        "no gain": lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps),
        "over the wrong dimension": lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-2, keepdim=True) + eps) * w,
        "the norm instead of the mean square": lambda x, w, eps: x / torch.sqrt(x.pow(2).sum(-1, keepdim=True)
                                                                               + eps) * w,
        "a list": lambda x, w, eps: (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w).tolist(),
    }
    for label, answer in wrong.items():
        assert not rms_norm_exercise.check(answer, verbose=False), label
    assert not rms_norm_exercise.check(not_written, verbose=False)


def test_positions_experiment_trains_and_scores_each_choice_alike(capsys):
    torch.manual_seed(0)
    stream = (torch.arange(3_000) * 7 + torch.arange(3_000) // 5) % 40  # an ordered pattern over 40 ids
    measured = compare_positions(stream[:2_400], stream[2_400:], ("learned", "none"), vocab_size=40, context=16,
                                 d_model=16, n_heads=2, n_layers=1, steps=30, batch_size=8, device="cpu",
                                 predicted={"learned": 5.0}, baseline=40.0)
    assert set(measured) == {"learned", "none"}
    assert all(math.isfinite(v) and 1.0 <= v < 40.0 for v in measured.values()), measured  # learnt something
    out = capsys.readouterr().out
    assert "you predicted 5.0" in out and "no prediction" in out and "40.0" in out
    again = compare_positions(stream[:2_400], stream[2_400:], ("learned",), vocab_size=40, context=16, d_model=16,
                              n_heads=2, n_layers=1, steps=30, batch_size=8, device="cpu", predicted={"learned": 9})
    assert again["learned"] == pytest.approx(measured["learned"], rel=1e-5)  # the same seed, the same run
    capsys.readouterr()
    unpredicted = compare_positions(stream[:2_400], stream[2_400:], ("learned", "none"), vocab_size=40, steps=30,
                                    predicted={"learned": None, "none": None})
    out = capsys.readouterr().out
    assert unpredicted == {} and "predict first" in out and "positional=" not in out  # no answer before a guess
    with pytest.raises(ValueError, match="below vocab_size"):
        compare_positions(stream, stream, vocab_size=10, steps=1)
    assert "positional" in repr(positions_experiment) and positions_experiment._repr_markdown_().startswith("**")
