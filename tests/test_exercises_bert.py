"""The exercises of notebook 05: each checker accepts a right answer and rejects wrong ones."""

import pytest
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


def test_mean_pool_checker_accepts_the_solution_and_rejects_padding_mistakes():
    from llmcourse.finetune import mean_pool
    from llmcourse.exercises.bert import mean_pool_exercise

    assert mean_pool_exercise.check(mean_pool, verbose=False)

    def with_padding(hidden, mask):  # the mean over every position, padding included
        return hidden.mean(dim=1)

    def divides_by_time(hidden, mask):  # padding zeroed, but divided by the padded length
        return (hidden * mask.unsqueeze(-1)).sum(dim=1) / hidden.shape[1]

    def first_token(hidden, mask):  # [CLS] pooling instead of the mean
        return hidden[:, 0]

    def keeps_time(hidden, mask):  # forgets to reduce over time
        m = mask.unsqueeze(-1).float()
        return hidden * m / m.sum(dim=1, keepdim=True)

    def as_numpy(hidden, mask):
        return mean_pool(hidden, mask).numpy()

    for wrong in (with_padding, divides_by_time, first_token, keeps_time, as_numpy):
        assert not mean_pool_exercise.check(wrong, verbose=False), wrong.__name__


def test_compare_predictions_reports_the_error_and_asks_for_a_guess(capsys):
    from llmcourse.exercises.bert import compare_predictions

    rows = compare_predictions({"mean": 0.7, "cls": None}, {"mean": 0.78, "cls": 0.71}, reference={"mean": 0.87})
    assert rows[0]["error"] == pytest.approx(0.08) and rows[0]["reference"] == 0.87
    assert rows[1]["predicted"] is None and rows[1]["error"] is None
    out = capsys.readouterr().out
    assert "you predicted 0.700, off by +0.080" in out and "no prediction" in out and "compare: 0.870" in out
    compare_predictions({"gap": 0.1}, {"gap": 0.05}, reference={"gap": 0.2}, what="measured", reference_label="original")
    assert "gap: measured 0.050; you predicted 0.100, off by -0.050   (original: 0.200)" in capsys.readouterr().out
    assert "predict first" not in out
    assert compare_predictions({"mean": None}, {"mean": 0.5}, reference={"mean": 0.9}) == []
    out = capsys.readouterr().out
    assert "predict first" in out and "0.5" not in out and "0.9" not in out  # no answer before a guess


def test_notebook_05_measures_nothing_before_a_prediction_is_written():
    """Every "predict, then measure" cell of notebook 05 measures inside ``if predicted(my_prediction, ...)``, and
    so a committed notebook shows the question, not the answer (tests/test_claims.py reads the outputs)."""
    import ast
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).parents[1] / "notebooks" / "05_bert.ipynb").read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and "my_prediction = " in "".join(c["source"])]
    assert len(cells) == 2
    for cell in cells:
        tree = ast.parse("".join(cell["source"]))
        gates = [node for node in tree.body if isinstance(node, ast.If) and isinstance(node.test, ast.Call)
                 and getattr(node.test.func, "id", None) == "predicted"]
        assert len(gates) == 1, "".join(cell["source"])
        outside = [ast.unparse(node) for node in tree.body if node is not gates[0]]
        assert not any("compare_predictions" in s or "linear_probe" in s or "run_probe" in s for s in outside)
