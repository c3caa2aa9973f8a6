"""The exercises of notebook 05: each checker accepts a right answer and rejects wrong ones."""

import torch

from llmcourse.bert import apply_mask_rule
from llmcourse.exercises.bert import accuracy_exercise, mask_rule_exercise


def test_bert_exercises_accept_the_solution_and_reject_a_wrong_answer():
    assert mask_rule_exercise.check(apply_mask_rule, verbose=False)

    def no_random(ids, selected, u, random_ids, mask_id):  # forgets the 10% random replacement
        labels = torch.where(selected, ids, torch.full_like(ids, -100))
        return torch.where(selected & (u < 0.8), torch.full_like(ids, mask_id), ids), labels

    assert not mask_rule_exercise.check(no_random, verbose=False)
    assert accuracy_exercise.check(lambda lg, y: float((lg.argmax(-1) == y).float().mean()), verbose=False)
    assert not accuracy_exercise.check(lambda lg, y: float((lg.argmax(-1) == y).sum()), verbose=False)

    def stub(*args):
        raise NotImplementedError

    assert not accuracy_exercise.check(stub, verbose=False)
