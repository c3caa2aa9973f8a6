"""Exercises of notebook 07, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`).

Two are functions to write, and their checkers fail an answer that calls the course's own version:
LoRA's merged weight (:data:`lora_merge_exercise`) and a power law fitted in log-log axes
(:data:`power_law_exercise`). :data:`lora_parameters_experiment` is an experiment: predict how many
weights LoRA trains at three ranks, then count them (:func:`count_lora_parameters`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import Exercise, predicted as exercise_predicted
from .transformer_lm import Experiment

__all__ = ["lora_merge_exercise", "power_law_exercise", "lora_parameters_experiment", "count_lora_parameters"]


# --------------------------------------------------------------------------------------------
# LoRA's update, merged into the weight
# --------------------------------------------------------------------------------------------
def _merge_solution(W: Tensor, A: Tensor, B: Tensor, alpha: float, r: int) -> Tensor:
    return W + (alpha / r) * (B @ A)


def _merge_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(8)
    cases = []
    for d_out, d_in, r, alpha in [(4, 3, 1, 1.0), (6, 5, 2, 16.0), (8, 8, 4, 8.0), (3, 7, 2, 0.5)]:
        cases.append((torch.randn(d_out, d_in, generator=g, dtype=torch.float64),
                      torch.randn(r, d_in, generator=g, dtype=torch.float64),
                      torch.randn(d_out, r, generator=g, dtype=torch.float64), alpha, r))
    return cases


lora_merge_exercise = Exercise(
    title="LoRA's update merged into the weight",
    task="""
    A LoRA layer computes `x W^T + (alpha / r) x A^T B^T`, with the frozen weight `W: (d_out, d_in)` and
    the trained `A: (r, d_in)` and `B: (d_out, r)`. After training, the update can be folded into one
    matrix, so that the adapted model runs as fast as the original. Write
    `my_merged_weight(W, A, B, alpha, r)` returning that matrix, `(d_out, d_in)`. (Not with
    `llmcourse.lora.merged_weight`: the checker refuses it.)
    """,
    solution_fn=_merge_solution,
    cases=_merge_cases(),
    hint_text="x A^T B^T = x (B A)^T, so the layer is x (W + (alpha / r) B A)^T. Mind the order: B @ A is "
              "(d_out, r) @ (r, d_in), the shape of W; A @ B would not even multiply unless d_in = d_out.",
    forbidden=("llmcourse.lora.merged_weight", "llmcourse.lora.lora_forward"),
)


# --------------------------------------------------------------------------------------------
# A power law in log-log axes
# --------------------------------------------------------------------------------------------
def _power_law_solution(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)  # log y = log a - alpha log x
    return float(np.exp(intercept)), float(-slope)


def _power_law_cases() -> list[tuple]:
    rng = np.random.default_rng(9)
    cases = []
    for a, alpha, lo, hi, noise in [(10.0, 0.5, 1e2, 1e6, 0.0), (400.0, 0.076, 1e5, 1e9, 0.01),
                                    (2.0, 1.2, 1.0, 1e3, 0.05), (55.0, 0.3, 1e6, 1e10, 0.02)]:
        x = np.geomspace(lo, hi, 7)
        y = a * x ** -alpha * np.exp(noise * rng.standard_normal(x.size))
        cases.append((x, y))
    return cases


power_law_exercise = Exercise(
    title="a power law fitted as a straight line",
    task="""
    Kaplan et al. read their laws off log-log plots: `y = a x^(-alpha)` is the straight line
    `log y = log a - alpha log x`. Write `my_power_law(x, y)`: for positive arrays `x` (sizes or
    compute) and `y` (losses), return `(a, alpha)` of the least-squares line through `(log x, log y)`.
    `np.polyfit` may draw the line; `llmcourse.scaling`'s `fit_power_law` and `fit_proportional` may not
    (the checker refuses them).
    """,
    solution_fn=_power_law_solution,
    cases=_power_law_cases(),
    hint_text="np.polyfit(np.log(x), np.log(y), 1) returns (slope, intercept): alpha is minus the slope and a is "
              "exp(intercept). Return plain floats: (float(a), float(alpha)).",
    forbidden=("llmcourse.scaling.fit_power_law", "llmcourse.scaling.fit_proportional"),
)


# --------------------------------------------------------------------------------------------
# An experiment: how many weights does LoRA train?
# --------------------------------------------------------------------------------------------
lora_parameters_experiment = Experiment(
    title="how many weights does LoRA train?",
    task="""
    The notebook's classifier is all-MiniLM-L6-v2 (6 layers, hidden size 384) with a new classification
    head, a 384 × 2 output layer with its bias (the pooler's dense layer before it is part of the
    pretrained encoder). `add_lora(model, r=r)` freezes every weight, adds `A: (r, 384)` and
    `B: (384, r)` to the query and the value projection of every layer, and trains the head in full. Predict the number of trained weights for `r = 1`, `8` and `64`, and
    what fraction of the model's 22.7 million that is. Write `my_prediction = {1: ..., 8: ..., 64: ...}`,
    then run `count_lora_parameters(my_prediction)`, which builds each model and counts.
    """,
    hint_text="Per adapted projection: r × 384 + 384 × r. Two projections a layer, six layers. Then add the head: "
              "384 × 2 + 2. The head does not depend on r; the adapters grow linearly with it.",
)


def count_lora_parameters(predicted: dict | None = None, ranks: tuple[int, ...] = (1, 8, 64),
                          name: str | None = None) -> dict[int, int]:
    """The trainable parameters of :func:`llmcourse.lora.add_lora` on the course's classifier
    (:func:`llmcourse.weights.load_classifier`, ``name`` as there) at each rank of ``ranks``, printed beside
    ``predicted[r]``. With no prediction at all it counts nothing and returns ``{}``: predict, then measure."""
    from ..lora import add_lora, trainable_parameters
    from ..weights import load_classifier

    predicted = predicted or {}
    if not exercise_predicted({r: predicted.get(r) for r in ranks}, then="counts",
                              what=f"the trained weights for r in {list(ranks)} in my_prediction"):
        return {}
    counted = {}
    for r in ranks:
        torch.manual_seed(0)
        trainable, total = trainable_parameters(add_lora(load_classifier(name), r=r, alpha=2 * r))
        counted[r] = trainable
        guess = predicted.get(r)
        said = "no prediction" if guess is None else f"you predicted {int(guess):,}"
        print(f"r={r:>3}: {trainable:,} trained weights of {total:,} ({trainable / total:.3%})   ({said})")
    return counted
