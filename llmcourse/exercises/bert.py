"""Exercises of notebook 05, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..bert import apply_mask_rule
from ..finetune import mean_pool
from . import Exercise, predicted as exercise_predicted

__all__ = ['mask_rule_exercise', 'accuracy_exercise', 'mean_pool_exercise', 'compare_predictions']


def _mask_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(5)
    cases = []
    for shape in [(1, 8), (3, 12), (4, 40)]:
        ids = torch.randint(5, 100, shape, generator=g)
        selected = torch.rand(shape, generator=g) < 0.3
        u = torch.rand(shape, generator=g)
        random_ids = torch.randint(5, 100, shape, generator=g)
        cases.append((ids, selected, u, random_ids, 4))
    return cases


mask_rule_exercise = Exercise(
    title="BERT's 80/10/10 rule",
    task="""
    Write `my_mask_rule(ids, selected, u, random_ids, mask_id)` returning `(inputs, labels)`.
    Every tensor has the shape of `ids`. Where `selected` is True the model must predict the token:
    its label is the original id (elsewhere the label is -100, which the loss ignores). A selected
    token becomes `mask_id` when `u < 0.8`, becomes `random_ids` when `0.8 <= u < 0.9`, and is left
    unchanged when `u >= 0.9`. Tokens not selected never change.
    """,
    solution_fn=apply_mask_rule,
    cases=_mask_cases(),
    hint_text="torch.where(condition, a, b) picks a where the condition holds, b elsewhere; build the inputs in two "
              "steps (first [MASK], then the random ids) and combine conditions with & .",
)


def _accuracy_from_logits(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(dim=-1) == labels).float().mean())


def _accuracy_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(n, c, generator=g), torch.randint(c, (n,), generator=g)) for n, c in [(4, 2), (50, 2), (30, 5)]]


accuracy_exercise = Exercise(
    title="Accuracy from logits",
    task="""
    Write `my_accuracy(logits, labels)`: `logits` is `(n, n_classes)`, `labels` is `(n,)` of class ids.
    Return the fraction of rows whose highest logit is the true class, as a Python float.
    """,
    solution_fn=_accuracy_from_logits,
    cases=_accuracy_cases(),
    hint_text="The predicted class is logits.argmax(dim=-1); compare with labels, then take the mean of a float tensor.",
)


def _mean_pool_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(11)
    cases = []
    for b, t, d, lengths in [(1, 4, 3, [4]), (2, 5, 4, [5, 2]), (3, 7, 6, [3, 7, 1])]:
        hidden = torch.randn(b, t, d, generator=g)
        mask = torch.zeros(b, t, dtype=torch.long)  # Hugging Face's attention_mask: 1 real, 0 padding
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        hidden[mask == 0] += 5.0  # padding states are not zero in a real model: an answer that counts them shows
        cases.append((hidden, mask))
    return cases


mean_pool_exercise = Exercise(
    title="Mean pooling with a padding mask",
    task="""
    Write `my_mean_pool(hidden, attention_mask)`: `hidden` is `(batch, time, hidden)`, the encoder's last
    hidden states; `attention_mask` is `(batch, time)` of 1 (a real token) and 0 (padding), integers as
    the tokenizer returns them. Return `(batch, hidden)`: for each sentence, the mean of the hidden
    states of its real tokens only. Padding positions have hidden states too (the model computes them):
    they must not enter the mean.
    """,
    solution_fn=mean_pool,
    cases=_mean_pool_cases(),
    hint_text="Turn the mask into floats of shape (batch, time, 1), multiply, sum over time (dim=1), and divide by "
              "the number of real tokens of each sentence (the mask summed over time), not by `time`.",
)


def compare_predictions(predicted: dict, measured: dict, reference: dict | None = None,
                        what: str = "dev accuracy", reference_label: str = "compare") -> list[dict]:
    """For the "predict, then measure" exercises: your prediction beside the measurement, and how far off it was.

    ``predicted`` and ``measured`` map a setting (e.g. ``"mean"``) to a number; a prediction left as
    None is shown as missing. ``reference`` adds a column to compare with (the fine-tuned model, the
    template you started from), printed after ``reference_label``. Prints one line per setting and
    returns the rows; with no prediction at all it shows nothing measured and returns ``[]``: predict,
    then measure (a guess made after seeing the answer teaches nothing).
    """
    if not exercise_predicted({key: predicted.get(key) for key in measured}, then="shows the measurements",
                              what=f"your guess for {', '.join(map(repr, measured))} in my_prediction"):
        return []
    rows = []
    for key, value in measured.items():
        guess = predicted.get(key)
        row = {"setting": key, "predicted": guess, "measured": float(value),
               "error": None if guess is None else float(value) - float(guess)}
        if reference is not None:
            row["reference"] = reference.get(key)
        rows.append(row)
        ref = "" if reference is None or reference.get(key) is None else f"   ({reference_label}: {reference[key]:.3f})"
        said = "no prediction" if guess is None else f"you predicted {float(guess):.3f}"
        off = "" if guess is None else f", off by {row['error']:+.3f}"
        print(f"{key:>12}: {what} {float(value):.3f}; {said}{off}{ref}")
    return rows
