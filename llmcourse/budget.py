"""The race's clock, sized to the machine it runs on.

A race gives every model the same wall-clock budget on the same device. A fixed budget tells a
different story on a slower machine: ten minutes on a laptop a quarter slower than the one the recipes
were tuned on is not enough for the LSTM to beat the 5-gram. So before a race, :func:`race_budget`
spends a few seconds measuring what this machine trains per second for each runner's recipe
(:func:`measure_rate`), and chooses the budget so that each runner gets at least the training tokens
its recipe needs (``Recipe.tokens_needed``: what it read in the shortest race on the reference
machine in which it beat the model before it), never less than the recipe's own budget and never
more than a stated cap::

    budget = race_budget(["lstm", "transformer"], ids)   # measures, chooses, explains
    print(budget)                                        # the budget and why
    recipe = budget.recipe("lstm")                       # the LSTM's recipe on that clock

``LLMCOURSE_BUDGET_SCALE`` multiplies the chosen budget (``0.5`` stands for a machine half as fast:
the check that a notebook still reads true there). In quick mode the recipes count steps and no
budget is chosen.

Taught in notebook 02 (used by 04 and 06, and by ``benchmarks/race.py`` and ``benchmarks/blocks.py``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
from torch import Tensor

from .config import get_device
from .recipes import Recipe, recipe_for
from .training import train

__all__ = ["CAP_FACTOR", "SCALE_VARIABLE", "RaceBudget", "budget_scale", "measure_rate", "race_budget"]

CAP_FACTOR = 2.0  # the budget never grows past twice the recipe's own (20 minutes for 10)
SCALE_VARIABLE = "LLMCOURSE_BUDGET_SCALE"


def budget_scale() -> float:
    """``LLMCOURSE_BUDGET_SCALE`` as a positive number (1 when unset)."""
    raw = os.environ.get(SCALE_VARIABLE, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{SCALE_VARIABLE}={raw!r}: give a positive number (0.5 halves every race budget), "
                         "or unset it.")
    return scale


def measure_rate(recipe: Recipe, ids: Mapping[str, Tensor], *, device: torch.device | str | None = None,
                 steps: int = 12, seed: int = 0) -> float:
    """Training tokens per second of ``recipe`` on this machine: a fresh model trained ``steps`` steps by
    :func:`llmcourse.training.train` on ``ids["train"]``, the first quarter of them (allocation, warm
    caches) not counted. A few seconds on a CPU; the model is thrown away."""
    if steps < 4:
        raise ValueError(f"steps={steps}: measure at least 4 steps (the first ones are not counted).")
    loader = recipe.loaders(ids, seed=seed)["train"]
    config = dataclasses.replace(recipe.train, budget_seconds=None, max_steps=steps, warmup_steps=0,
                                 eval_every=None, eval_every_seconds=None, log_every=max(1, steps // 4),
                                 checkpoint_dir=None, progress=False)
    with torch.random.fork_rng(devices=[]):  # the caller's random numbers are left as they were
        torch.manual_seed(seed)
        history = train(recipe.model(), loader, None, config, device=device)
    first = history.train[0]  # the first window of log_every steps holds the warm-up
    tokens = history.train_tokens - first["tokens_per_sec"] * first["seconds"]
    return tokens / (history.train_seconds - first["seconds"])


@dataclass
class RaceBudget:
    """The budget a race chose on this machine, and why."""

    seconds: float | None  # None: quick mode (the recipes count steps)
    recipes: dict[str, Recipe]  # each runner's recipe, before the budget is applied
    rates: dict[str, float] = field(default_factory=dict)  # training tokens per second measured here
    floor: float | None = None  # the recipes' own budget
    cap: float | None = None
    scale: float = 1.0
    wanted: float | None = None  # what the tokens needed would take here, before the floor and the cap

    def recipe(self, name: str) -> Recipe:
        """``name``'s recipe on the chosen clock (unchanged in quick mode)."""
        recipe = self.recipes[name]
        return recipe if self.seconds is None else recipe.with_budget(self.seconds)

    def tokens(self, name: str) -> float | None:
        """The training tokens ``name`` should read in the chosen budget at the measured rate."""
        return None if self.seconds is None else self.rates[name] * self.seconds

    def seconds_for(self, name: str, tokens: float) -> float:
        """The budget that would give ``name`` ``tokens`` training tokens at the rate measured here."""
        return tokens / self.rates[name]

    def verdict(self, scores: Mapping[str, float], tokens_read: Mapping[str, int] | None = None) -> str:
        """Whether the race shows the course's order, in words. ``scores``: test perplexities in the order
        the course expects them to fall (e.g. 5-gram, ``"lstm"``, ``"transformer"``); ``tokens_read``: what
        each runner of this race read. Where the order fails, it says which runner read fewer tokens
        than its recipe needs and what budget (and ``LLMCOURSE_BUDGET_SCALE``) would give it them here."""
        names = list(scores)
        broken = [(a, b) for a, b in zip(names, names[1:]) if not scores[b] < scores[a]]
        listed = " > ".join(f"{n} {scores[n]:.1f}" for n in names)
        if not broken:
            return f"the order holds on this machine: {listed}"
        lines = [f"the order does NOT hold on this machine: {listed} (each should be below the one before)"]
        for worse, better in broken:
            lines.append(f"  {better} ({scores[better]:.1f}) is not below {worse} ({scores[worse]:.1f})")
        for name, read in (tokens_read or {}).items():
            recipe = self.recipes.get(name)
            if recipe is None or not recipe.tokens_needed or self.seconds is None:
                continue
            if read < recipe.tokens_needed:
                seconds = 60 * math.ceil(self.seconds_for(name, recipe.tokens_needed) / 60)
                base = self.seconds / self.scale
                lines.append(f"  {name} read {read:,} training tokens, fewer than the {recipe.tokens_needed:,} its "
                             f"recipe needs: at the {self.rates[name]:,.0f} tokens/s measured here that takes "
                             f"{seconds:.0f} s (run the race with {SCALE_VARIABLE}={seconds / base:.2f})")
            else:
                lines.append(f"  {name} read {read:,} training tokens, the {recipe.tokens_needed:,} its recipe needs: "
                             "a longer budget is not the answer here (one seed; a different machine or library)")
        return "\n".join(lines)

    @property
    def capped(self) -> bool:
        """True when the cap kept a runner from the tokens its recipe needs."""
        return self.wanted is not None and self.cap is not None and self.wanted > self.cap

    def __str__(self) -> str:
        if self.seconds is None:
            return "quick mode: the recipes count steps, no time budget is chosen"
        lines = [f"race budget: {self.seconds:.0f} s of training per model"
                 + (f" ({self.scale:g} x the chosen {self.seconds / self.scale:.0f} s: {SCALE_VARIABLE})"
                    if self.scale != 1 else "")]
        for name, recipe in self.recipes.items():
            need = recipe.tokens_needed
            lines.append(f"  {name:>12}: {self.rates[name]:,.0f} training tokens/s measured here"
                         + (f"; its recipe needs {need:,} tokens = {need / self.rates[name]:.0f} s here"
                            if need else "; its recipe states no token need"))
        if self.wanted is None or self.wanted <= self.floor:
            lines.append(f"  the recipes' own {self.floor:.0f} s already give every model the tokens it needs")
        elif self.capped:
            lines.append(f"  the tokens needed would take {self.wanted:.0f} s here: held at the cap of "
                         f"{self.cap:.0f} s, so the race may not show the course's order on this machine")
        else:
            lines.append(f"  longer than the recipes' {self.floor:.0f} s so that every model gets the tokens "
                         "it needs (rounded up to a whole minute)")
        return "\n".join(lines)


def race_budget(runners: Iterable[str | Recipe], ids: Mapping[str, Tensor], *,
                device: torch.device | str | None = None, kind: str | None = None, vocab_size: int = 33_278,
                cap_factor: float = CAP_FACTOR, scale: float | None = None, steps: int = 12) -> RaceBudget:
    """Measure each runner's training rate here and choose the race's budget (see the module docstring).

    ``runners``: recipe names (built by :func:`llmcourse.recipes.recipe_for` with ``kind`` and
    ``vocab_size``) or recipes. ``ids``: the token streams they train on (``"train"`` is read).
    ``scale`` defaults to ``LLMCOURSE_BUDGET_SCALE``."""
    device = get_device(device)
    recipes = {}
    for runner in runners:
        recipe = runner if isinstance(runner, Recipe) else recipe_for(runner, kind, vocab_size=vocab_size,
                                                                      device=device)
        recipes[recipe.name] = recipe
    if not recipes:
        raise ValueError("race_budget() needs at least one runner.")
    floors = {r.train.budget_seconds for r in recipes.values()}
    if floors == {None}:
        return RaceBudget(None, recipes)
    if None in floors or len(floors) > 1:
        raise ValueError(f"The runners' recipes have different clocks ({sorted(map(str, floors))}): a race needs "
                         "recipes of one kind with one budget.")
    floor = floors.pop()
    scale = budget_scale() if scale is None else scale
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale={scale!r}: give a positive number.")
    rates = {name: measure_rate(recipe, ids, device=device, steps=steps) for name, recipe in recipes.items()}
    needs = [r.tokens_needed / rates[name] for name, r in recipes.items() if r.tokens_needed]
    wanted = max(needs) if needs else None
    cap = cap_factor * floor
    chosen = floor if wanted is None or wanted <= floor else min(cap, 60 * math.ceil(wanted / 60))
    return RaceBudget(chosen * scale, recipes, rates, floor, cap, scale, wanted)

