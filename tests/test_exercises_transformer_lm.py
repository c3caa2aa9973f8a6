"""The exercises of notebook 04: each checker accepts a right answer and rejects wrong ones."""

import torch

from llmcourse.decoding import top_k_filter
from llmcourse.exercises.transformer_lm import causal_attention_exercise, top_k_exercise


def test_transformer_lm_exercise_checkers_accept_the_solution_and_reject_wrong_answers():
    assert causal_attention_exercise.check(causal_attention_exercise.solution_fn, verbose=False)
    assert not causal_attention_exercise.check(lambda s: s.softmax(-1), verbose=False)  # no mask
    assert not causal_attention_exercise.check(  # the mask the wrong way round: sees only the future
        lambda s: s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).tril(-1), float("-inf")).softmax(-1),
        verbose=False)
    assert top_k_exercise.check(top_k_exercise.solution_fn, verbose=False)
    assert top_k_exercise.check(top_k_filter, verbose=False)  # the shared decoding helper agrees
    assert not top_k_exercise.check(lambda logits, k: logits, verbose=False)

    def not_written(*args):
        raise NotImplementedError

    assert not top_k_exercise.check(not_written, verbose=False)
