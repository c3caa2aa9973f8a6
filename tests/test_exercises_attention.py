"""The exercises of notebook 03: each checker accepts a right answer and rejects wrong ones."""

import torch

from llmcourse.attention import causal_mask, scaled_dot_product_attention
from llmcourse.exercises.attention import attention_exercise, causal_mask_exercise


def test_attention_exercises_accept_the_solution_and_reject_wrong_answers():
    assert attention_exercise.check(lambda q, k, v: scaled_dot_product_attention(q, k, v)[0], verbose=False)
    assert not attention_exercise.check(lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1) @ v,
                                        verbose=False)  # forgot the scaling
    assert causal_mask_exercise.check(causal_mask, verbose=False)
    assert not causal_mask_exercise.check(lambda t: torch.ones(t, t).triu().bool(), verbose=False)

    def stub(*args):
        raise NotImplementedError

    assert not attention_exercise.check(stub, verbose=False)
