"""Exercises of notebook 06, each with a checker and a hidden solution (see :mod:`llmcourse.exercises`).

Two are functions to write, and their checkers fail an answer that calls the course's own version:
one BPE merge (:data:`merge_exercise`) and rotary position embeddings from their angles
(:data:`rope_exercise`). :data:`kv_cache_experiment` is an experiment: predict the memory of a
key-value cache with and without grouped-query attention, then measure it (:func:`measure_kv_cache`).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from . import Exercise, predicted as exercise_predicted
from .transformer_lm import Experiment

__all__ = ["merge_exercise", "rope_exercise", "kv_cache_experiment", "measure_kv_cache"]


# --------------------------------------------------------------------------------------------
# One BPE merge
# --------------------------------------------------------------------------------------------
def _merge_solution(symbols: tuple, pair: tuple) -> tuple:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == tuple(pair):
            out.append(symbols[i] + symbols[i + 1])  # the pair becomes one symbol; skip both
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


merge_exercise = Exercise(
    title="one BPE merge",
    task="""
    Write `my_merge(symbols, pair)`: `symbols` is a word as a tuple of symbols, such as
    `('▁', 'l', 'o', 'w', 'e', 'r')`, and `pair` two symbols, such as `('l', 'o')`. Return the tuple with
    every occurrence of the pair, read left to right, replaced by one symbol, the two joined:
    `('▁', 'lo', 'w', 'e', 'r')`. Where occurrences overlap (`('a', 'a')` in `a a a`), the leftmost
    wins: `('aa', 'a')`. (Not with `llmcourse.bpe.merge_pair`: the checker refuses it.)
    """,
    solution_fn=_merge_solution,
    cases=[(("▁", "l", "o", "w"), ("l", "o")), (("▁", "l", "o", "w", "e", "r"), ("e", "r")),
           (("a", "a", "a"), ("a", "a")), (("a", "a", "a", "a"), ("a", "a")), (("▁", "n", "e", "w"), ("x", "y")),
           (("▁", "lo", "w", "lo", "w"), ("lo", "w")), (("▁",), ("▁", "a")), (("b", "a", "b", "a"), ("a", "b"))],
    hint_text="Walk with an index i: if symbols[i] and symbols[i + 1] are the pair, append their join and step "
              "by 2; otherwise append symbols[i] and step by 1. Stepping by 2 is what makes the leftmost of two "
              "overlapping occurrences win.",
    forbidden=("llmcourse.bpe.merge_pair",),
)


# --------------------------------------------------------------------------------------------
# Rotary position embeddings
# --------------------------------------------------------------------------------------------
def _rope_solution(x: Tensor, theta: float) -> Tensor:
    t, d = x.shape[-2], x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # one speed per pair
    angles = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]  # (t, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., : d // 2], x[..., d // 2:]  # pair i is features i and i + d/2
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def _rope_cases() -> list[tuple]:
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(1, 1, 4, 2, generator=g, dtype=torch.float64), 10000.0),
            (torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64), 10000.0),
            (torch.randn(1, 2, 7, 16, generator=g, dtype=torch.float64), 500.0),
            (torch.randn(1, 1, 1, 6, generator=g, dtype=torch.float64), 10000.0)]  # position 0: unchanged


rope_exercise = Exercise(
    title="rotary position embeddings from their angles",
    task="""
    Write `my_rope(x, theta)`: `x` holds queries or keys, `(batch, heads, time, d_head)` with `d_head`
    even. Feature pair `i` of a vector at position `m` is features `i` and `i + d_head/2` (the two
    halves, Llama's layout); turn it by the angle `m · theta^(-2i/d_head)`: `(a, b)` becomes
    `(a cos θ - b sin θ, b cos θ + a sin θ)`. Position 0 is unchanged, and no vector changes length.
    (Not with `llmcourse.transformer`'s `apply_rope`, `rope_tables` or `rotate_half`: the checker refuses them.)
    """,
    solution_fn=_rope_solution,
    cases=_rope_cases(),
    hint_text="torch.arange(0, d, 2) / d gives the 2i/d of each pair; theta ** (-that) its speed. An outer product "
              "with torch.arange(time) gives a (time, d/2) table of angles, which broadcasts over batch and heads. "
              "Split x into its two halves with x[..., :d//2] and x[..., d//2:], rotate, and torch.cat them back.",
    forbidden=("llmcourse.transformer.apply_rope", "llmcourse.transformer.rope_tables",
               "llmcourse.transformer.rotate_half"),
)


# --------------------------------------------------------------------------------------------
# An experiment: the memory of a key-value cache, with and without grouped-query attention
# --------------------------------------------------------------------------------------------
kv_cache_experiment = Experiment(
    title="how much memory does the key-value cache take?",
    task="""
    A model generating with a cache keeps, in every layer, the keys and the values of every position it
    has read. Take a Llama-style `TransformerLM` with `d_model=256`, `n_layers=4` and `n_heads=8` (so
    `d_head=32`), weights in float32, one sequence. Predict the cache's size in MiB after it has read
    1,024 positions, first with plain multi-head attention (`n_kv_heads=8`), then with grouped-query
    attention (`n_kv_heads=2`: four query heads share each key and value head). Write your two numbers
    in `my_prediction = {8: ..., 2: ...}`, then run `measure_kv_cache(my_prediction)`: it builds both
    models, reads 1,024 random ids with a cache, and sums the bytes the cache holds.
    """,
    hint_text="Per layer, per position: one key and one value vector per key-value head, of d_head numbers each, "
              "4 bytes a number. Multiply by the positions and the layers; 1 MiB is 2**20 bytes. Then ask what "
              "changes when four query heads share a key-value head, and what does not (the queries are not "
              "kept: each is used once).",
)


@torch.no_grad()
def measure_kv_cache(predicted: dict | None = None, *, positions: int = 1024, d_model: int = 256, n_layers: int = 4,
                     n_heads: int = 8, kv_heads: tuple[int, ...] = (8, 2), vocab_size: int = 512) -> dict[int, float]:
    """Build one Llama-style :class:`llmcourse.transformer.TransformerLM` per ``n_kv_heads`` in ``kv_heads``, read
    ``positions`` random ids with a key-value cache, and return the cache's size in MiB for each (the bytes of the
    keys and values every layer holds). Prints each beside ``predicted[n_kv_heads]``.

    With no prediction at all it measures nothing and returns ``{}``: predict, then measure."""
    from ..transformer import TransformerConfig, TransformerLM

    predicted = predicted or {}
    if not exercise_predicted({k: predicted.get(k) for k in kv_heads},
                              what=f"the cache's size in MiB for n_kv_heads in {list(kv_heads)} in my_prediction"):
        return {}
    base = TransformerConfig.llama(vocab_size, max_context=positions, d_model=d_model, n_layers=n_layers,
                                   n_heads=n_heads)
    measured = {}
    for kv in kv_heads:
        torch.manual_seed(0)
        model = TransformerLM(replace(base, n_kv_heads=kv)).eval()
        cache = model.new_cache()
        model(torch.randint(vocab_size, (1, positions)), cache=cache)
        measured[kv] = sum(layer.nbytes for layer in cache) / 2 ** 20
    for kv, mib in measured.items():
        guess = predicted.get(kv)
        said = "no prediction" if guess is None else f"you predicted {float(guess):.2f} MiB"
        print(f"n_kv_heads={kv}: the cache holds {mib:.2f} MiB after {positions:,} positions   ({said})")
    return measured
