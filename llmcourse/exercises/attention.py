"""Exercises of notebook 03, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`)."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import torch
from torch import Tensor

from . import Exercise, filling_in

__all__ = ['attention_exercise', 'padding_mask_exercise', 'scaling_experiment']


def _attention_solution(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    d_k = q.shape[-1]
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_k), dim=-1)
    return weights @ v


def _attention_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(3)
    shapes = [((1, 3, 4), (1, 3, 4), (1, 3, 4)), ((2, 5, 8), (2, 7, 8), (2, 7, 3)), ((2, 4, 6, 16),) * 3]
    return [tuple(torch.randn(*s, generator=g) for s in case) for case in shapes]


attention_exercise = Exercise(
    title="scaled dot-product attention",
    task="""
    Write `my_attention(q, k, v)` that returns `softmax(q k^T / sqrt(d_k)) v` for batched inputs
    `q: (..., t_q, d_k)`, `k: (..., t_k, d_k)`, `v: (..., t_k, d_v)`; the result is `(..., t_q, d_v)`.
    Use only `@`, `.transpose`, `torch.softmax` and `math.sqrt` (no masks, no dropout).
    """,
    solution_fn=_attention_solution,
    cases=_attention_cases(),
    hint_text="Transpose the last two dimensions of k, divide the scores by sqrt(d_k) where d_k = q.shape[-1], "
              "take the softmax over the keys (the last dimension), then multiply by v.",
)


def _padding_mask_solution(lengths: Tensor, t: int) -> Tensor:
    return (torch.arange(t)[None, :] < lengths[:, None])[:, None, :]


padding_mask_exercise = Exercise(
    title="a padding mask from lengths",
    task="""
    Write `my_padding_mask(lengths, t)`: `lengths` is a 1-D integer tensor, the number of real tokens
    of each sequence in a batch padded to `t` positions. Return the `(batch, 1, t)` **boolean** mask
    that is True at the real tokens (the first `lengths[b]` positions of row `b`) and False at the
    padding, the shape that broadcasts over the queries of `(batch, t_q, t)` scores. (The course's
    convention: True = may attend. A float mask of 0s and 1s will not do: `masked_fill(~mask, ...)`
    needs booleans, and a float mask is *added* to the scores.)
    """,
    solution_fn=_padding_mask_solution,
    cases=[(torch.tensor([3]), 3), (torch.tensor([1, 4]), 4), (torch.tensor([2, 5, 1]), 6),
           (torch.tensor([7, 7]), 7), (torch.tensor([1, 2, 3, 4, 5]), 5)],
    hint_text="torch.arange(t) compared with lengths[:, None] broadcasts to (batch, t) booleans; "
              "add the middle dimension with [:, None, :].",
)


def _mean_entropy(power: float, d_k: int, n_keys: int = 16, n_queries: int = 2000, seed: int = 0) -> float:
    """Mean entropy (nats) of ``softmax(q . k * d_k ** -power)`` over ``n_keys`` random keys, ``q, k ~ N(0, I)``."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(n_queries, 1, d_k, generator=g), torch.randn(n_queries, n_keys, d_k, generator=g)
    weights = ((q @ k.transpose(-2, -1)).squeeze(1) * d_k ** -power).softmax(-1)
    return float(-(weights * weights.clamp(min=1e-30).log()).sum(-1).mean())


_WIDTHS = (4, 16, 64, 256, 1024)
_TREND_TOLERANCE = 0.05  # nats: a change smaller than this, from d_k = 4 to 1024, "stays"


def _scaling_truth(powers) -> dict[float, tuple[str, list[float]]]:
    """For each power ``p`` (scale ``1 / d_k ** p``): the trend of the weights' entropy as ``d_k`` grows,
    and the entropies at :data:`_WIDTHS`."""
    out = {}
    for p in powers:
        entropies = [_mean_entropy(p, d) for d in _WIDTHS]
        change = entropies[-1] - entropies[0]
        out[p] = ("rises" if change > _TREND_TOLERANCE else "falls" if change < -_TREND_TOLERANCE else "stays",
                  entropies)
    return out


@dataclass(repr=False)
class _ScalingExperiment(Exercise):
    """An experiment, not a function to write: the answer is a prediction, checked against a measurement."""

    def check(self, prediction: dict, verbose: bool = True) -> bool:
        """Measure the entropy for each power in ``prediction``, print it, say which predictions held."""
        if not isinstance(prediction, dict) or not prediction:
            return self._say(False, verbose, "pass a dict {power p: 'rises', 'falls' or 'stays'}.")
        bad = [p for p in prediction if not isinstance(p, (int, float))]
        if bad:
            return self._say(False, verbose, f"each key is the power p of the scale 1 / d_k**p; got {bad}.")
        unsure = [p for p, guess in prediction.items() if guess not in ("rises", "falls", "stays")]
        if unsure and not filling_in(unsure):
            return self._say(False, verbose, f"predict first: for p = {unsure}, write 'rises', 'falls' or "
                             "'stays', then run the cell again.")
        prediction = {p: "stays" if p in unsure else guess for p, guess in prediction.items()}
        truth = self.solution_fn(sorted(prediction))
        if verbose:
            print(f"mean entropy of the weights over 16 keys (uniform = log 16 = {math.log(16):.2f} nats)")
            print("scale        " + "".join(f"d_k={d:<6}" for d in _WIDTHS) + " trend     you said")
        wrong = []
        for p in sorted(prediction):
            trend, entropies = truth[p]
            held = prediction[p] == trend
            wrong += [] if held else [p]
            if verbose:
                print(f"1/d_k**{p:<5g} " + "".join(f"{e:<10.2f}" for e in entropies)
                      + f" {trend:<9} {prediction[p]:<6} {'✅' if held else '❌'}")
        return self._say_predictions(wrong, len(prediction), "p =", verbose)

    def solution(self) -> None:
        print(textwrap.dedent("""
            With q and k of independent unit-variance entries, q . k has standard deviation sqrt(d_k), so the
            scaled scores have standard deviation d_k ** (0.5 - p).
              p = 0 (no scaling): the scores spread more and more, the softmax saturates, the entropy falls
                towards 0 (one key takes all the weight).
              p = 0.5 (the Transformer's 1/sqrt(d_k)): the spread is 1 at every width, the entropy stays put.
              p = 1 (dividing by d_k): the scores shrink towards 0, every key gets nearly 1/16, the entropy
                rises to log 16: attention can no longer pick anything out at initialisation.
            Any p < 0.5 falls, any p > 0.5 rises; only 0.5 keeps the softmax's input the same at every width.""").strip())


scaling_experiment = _ScalingExperiment(
    title="predict, then measure: how the scale sets the weights' entropy",
    task="""
    The entropy of a row of attention weights, `-sum_j w_j log w_j`, is 0 when one key takes all the
    weight and `log 16 = 2.77` nats when 16 keys share it equally. Scale the scores `q . k` by
    `1 / d_k**p` and let `d_k` grow from 4 to 1024 (random unit-variance queries and keys, 16 keys per
    query, as in section 2). For `p = 0` (no scaling), `p = 0.5` (`1/sqrt(d_k)`) and `p = 1` (`1/d_k`),
    predict whether the mean entropy **rises**, **falls** or **stays** (changes by less than 0.05 nats).
    Write your predictions in `my_prediction`, then run the cell: it measures and tells you which held.
    Add other powers (0.25? 0.75?) if you like.
    """,
    solution_fn=_scaling_truth,
    hint_text="The standard deviation of q . k is sqrt(d_k) (section 2 printed it). What is the standard "
              "deviation of q . k / d_k**p, and what does a softmax do with scores that are all near 0?",
)
