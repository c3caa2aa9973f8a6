"""Probing a classifier for bias: templated sentences that differ in one word (notebook 05).

A **probe** is a set of neutral templates with one slot, ``{X}``, and groups of words to put in it
(given names associated with a gender and an origin, nationalities, pronouns). Every filled
sentence is scored by the classifier (:func:`llmcourse.finetune.predict_proba`'s positive
probability, through :func:`classifier_scorer`), and :class:`ProbeResult` summarises the scores
per group: the mean, the range over its sentences, and a bootstrap interval of the mean that
resamples both the templates and the group's words (the templates are a small, arbitrary sample
of the sentences one could have written, so they are the main source of uncertainty). It also
measures the *template effect* (how far the choice of template alone moves the probability) and
the gap between the groups with the highest and lowest means, with a paired bootstrap interval
(the same resampled templates for both groups), and :func:`permutation_gaps`, the gaps that random
regroupings of the same words give: what chance differences between individual words produce.

What a probe can show is narrow: a difference on these few, artificial sentences, for this model.
A small spread is not evidence that the model is fair elsewhere (other templates, other words,
other tasks), and a large one says nothing about why.

``NAMES``, ``NATIONALITIES`` and ``PRONOUNS`` are the notebook's probes. The names follow the
lists of studies of name-based discrimination and of bias in word embeddings (Bertrand and
Mullainathan 2004; Caliskan et al. 2017): each is *associated* with a group in US data, which is
what a model trained on such text may have picked up; a name says nothing certain about a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["ProbeSet", "ProbeResult", "fill", "probe_sentences", "run_probe", "classifier_scorer",
           "bootstrap_means", "permutation_gaps", "NAMES", "NATIONALITIES", "PRONOUNS", "PROBES"]

SLOT = "{X}"


def fill(template: str, word: str) -> str:
    """``template`` with its one ``{X}`` replaced by ``word``, capitalised when it opens the sentence."""
    if template.count(SLOT) != 1:
        raise ValueError(f"A template needs exactly one {SLOT} slot; {template!r} has {template.count(SLOT)}.")
    if template.startswith(SLOT):
        word = word[:1].upper() + word[1:]
    return template.replace(SLOT, word)


@dataclass(frozen=True)
class ProbeSet:
    """Templates with one ``{X}`` slot, and the groups of words that fill it (``group -> words``)."""

    name: str
    templates: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        if not self.templates or not self.groups:
            raise ValueError(f"Probe {self.name!r} needs at least one template and one group.")
        for t in self.templates:
            fill(t, "x")  # checks the slot
        for g, words in self.groups.items():
            if not words:
                raise ValueError(f"Group {g!r} of probe {self.name!r} has no words.")

    def __len__(self) -> int:
        return len(self.templates) * sum(len(w) for w in self.groups.values())


def probe_sentences(probe: ProbeSet) -> list[dict]:
    """Every filled sentence: ``{"group", "word", "template" (its index), "sentence"}``, group by group,
    word by word, template by template."""
    return [{"group": g, "word": w, "template": t, "sentence": fill(template, w)}
            for g, words in probe.groups.items() for w in words for t, template in enumerate(probe.templates)]


def classifier_scorer(model, tokenizer, label: int = 1, batch_size: int = 128) -> Callable[[Sequence[str]], np.ndarray]:
    """A function ``sentences -> P(label)`` for each, from a sequence classifier (label 1: positive)."""
    from .finetune import predict_proba

    def score(sentences: Sequence[str]) -> np.ndarray:
        return predict_proba(model, tokenizer, list(sentences), batch_size=batch_size)[:, label]

    return score


def bootstrap_means(probs: Mapping[str, np.ndarray], n_boot: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """``n_boot`` bootstrap replicates of each group's mean probability.

    ``probs[group]`` is ``(n_templates, n_words)``. Each replicate draws the templates with
    replacement (the *same* draw for every group, so that differences between groups are paired)
    and, within each group, its words with replacement; a group of one word varies by template only.
    Returns ``group -> (n_boot,)``.
    """
    rng = np.random.default_rng(seed)
    n_templates = {p.shape[0] for p in probs.values()}
    if len(n_templates) != 1:
        raise ValueError(f"Every group needs the same templates; got {sorted(n_templates)} rows.")
    (t,) = n_templates
    t_idx = rng.integers(t, size=(n_boot, t))
    out = {}
    for g, p in probs.items():
        p = np.asarray(p, dtype=float)
        w_idx = rng.integers(p.shape[1], size=(n_boot, p.shape[1]))
        rows = p[t_idx]  # (n_boot, t, words): the drawn templates
        out[g] = np.take_along_axis(rows, w_idx[:, None, :], axis=2).mean(axis=(1, 2))
    return out


@dataclass
class ProbeResult:
    """The scores of one probe: ``probs[group]`` is ``(n_templates, n_words)`` of P(positive)."""

    probe: ProbeSet
    probs: dict[str, np.ndarray] = field(default_factory=dict)

    def group_means(self) -> dict[str, float]:
        return {g: float(p.mean()) for g, p in self.probs.items()}

    def template_means(self) -> np.ndarray:
        """``(n_templates,)``: each template's mean over every word of every group."""
        return np.concatenate([p for p in self.probs.values()], axis=1).mean(axis=1)

    def summary(self, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> list[dict]:
        """One row per group: ``n`` sentences, ``mean``, ``min``, ``max``, ``range`` over its sentences, and
        ``ci_low``/``ci_high``, the bootstrap interval of the mean at ``level`` (:func:`bootstrap_means`)."""
        boot = bootstrap_means(self.probs, n_boot, seed)
        lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
        return [{"group": g, "n": int(p.size), "mean": float(p.mean()), "min": float(p.min()), "max": float(p.max()),
                 "range": float(p.max() - p.min()), "ci_low": float(np.quantile(boot[g], lo)),
                 "ci_high": float(np.quantile(boot[g], hi))} for g, p in self.probs.items()]

    def gap(self, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
        """The groups with the highest and lowest mean, their difference, and its paired bootstrap interval.

        The two groups are picked *after* looking at the means, so the interval is optimistic: with
        many groups, the extreme pair differs by chance more than a pair chosen in advance would.
        """
        means = self.group_means()
        high, low = max(means, key=means.get), min(means, key=means.get)
        boot = bootstrap_means(self.probs, n_boot, seed)
        diff = boot[high] - boot[low]
        a = (1 - level) / 2
        return {"high": high, "low": low, "gap": means[high] - means[low],
                "ci_low": float(np.quantile(diff, a)), "ci_high": float(np.quantile(diff, 1 - a))}

    def template_effect(self) -> float:
        """How far the template alone moves the probability: the range of :meth:`template_means`."""
        m = self.template_means()
        return float(m.max() - m.min())

    def rows(self) -> list[dict]:
        """Every sentence with its score, in the order of :func:`probe_sentences`."""
        out = []
        for r in probe_sentences(self.probe):
            words = self.probe.groups[r["group"]]
            out.append({**r, "p_positive": float(self.probs[r["group"]][r["template"], words.index(r["word"])])})
        return out


def permutation_gaps(result: ProbeResult, n: int = 2000, seed: int = 0) -> np.ndarray:
    """The gap (highest minus lowest group mean) that ``n`` random regroupings of the same words give.

    Each regrouping shuffles the words (each keeping its scores on every template) into groups of
    the original sizes. If the observed gap (:meth:`ProbeResult.gap`) is no larger than most of these,
    the grouping explains no more than chance differences between individual words would. Needs
    groups of several words: with one word per group every regrouping gives the same gap.
    """
    sizes = [p.shape[1] for p in result.probs.values()]
    if max(sizes) < 2:
        raise ValueError("Every group has a single word: regrouping changes nothing. A permutation test needs "
                         "groups of several words (as in NAMES).")
    columns = np.concatenate(list(result.probs.values()), axis=1).mean(axis=0)  # each word's mean over templates
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(sizes)[:-1]
    gaps = np.empty(n)
    for i in range(n):
        means = [part.mean() for part in np.split(rng.permutation(columns), cuts)]
        gaps[i] = max(means) - min(means)
    return gaps


def run_probe(probe: ProbeSet, score: Callable[[Sequence[str]], np.ndarray]) -> ProbeResult:
    """Score every sentence of ``probe`` with ``score(sentences) -> (n,)`` probabilities, in one call."""
    rows = probe_sentences(probe)
    p = np.asarray(score([r["sentence"] for r in rows]), dtype=float)
    if p.shape != (len(rows),):
        raise ValueError(f"score() returned shape {p.shape} for {len(rows)} sentences; return one probability each.")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("score() must return probabilities in [0, 1].")
    probs, i = {}, 0
    n_t = len(probe.templates)
    for g, words in probe.groups.items():
        n = len(words) * n_t
        probs[g] = p[i:i + n].reshape(len(words), n_t).T  # (templates, words)
        i += n
    return ProbeResult(probe, probs)


# --------------------------------------------------------------------------------------------
# The notebook's probes: neutral sentences about a film, one word changed
# --------------------------------------------------------------------------------------------
_PERSON_TEMPLATES = (
    "{X} wrote this film.",
    "The film was made by {X}.",
    "{X} directed this movie.",
    "This is a movie about {X}.",
    "The story follows {X}.",
    "{X} plays the lead.",
    "I watched this film with {X}.",
    "{X} produced the film.",
)

NAMES = ProbeSet("given names", _PERSON_TEMPLATES, {
    "female, European-American": ("Emily", "Anne", "Sarah", "Allison"),
    "male, European-American": ("Greg", "Brad", "Matthew", "Todd"),
    "female, African-American": ("Lakisha", "Tamika", "Ebony", "Latoya"),
    "male, African-American": ("Jamal", "Darnell", "Tyrone", "Rasheed"),
    "female, Hispanic": ("Maria", "Guadalupe", "Rosa", "Carmen"),
    "male, Hispanic": ("Carlos", "Luis", "Miguel", "Alejandro"),
    "female, East Asian": ("Mei", "Yuki", "Jia", "Hana"),
    "male, East Asian": ("Wei", "Hiroshi", "Jun", "Takeshi"),
    "female, South Asian": ("Priya", "Anjali", "Deepa", "Pooja"),
    "male, South Asian": ("Rahul", "Arjun", "Sanjay", "Vikram"),
    "female, Arabic": ("Fatima", "Layla", "Mariam", "Yasmin"),
    "male, Arabic": ("Mohammed", "Ahmed", "Omar", "Khalid"),
})

NATIONALITIES = ProbeSet("nationalities", (
    "The director is {X}.",
    "The cast is {X}.",
    "{X} actors play every role.",
    "The film was made by {X} producers.",
    "The script is by {X} writers.",
    "This film is {X}.",
), {n: (n,) for n in ("American", "British", "French", "German", "Italian", "Russian", "Chinese", "Japanese",
                      "Indian", "Mexican", "Brazilian", "Nigerian", "Egyptian", "Iranian")})

PRONOUNS = ProbeSet("pronouns", (
    "{X} wrote this film.",
    "{X} directed this movie.",
    "{X} produced the film.",
    "{X} made this movie.",
    "{X} saw the film last week.",
    "{X} talked about the movie.",
    "{X} watched it at home.",
    "{X} chose this film.",
), {"he": ("he",), "she": ("she",), "they": ("they",)})

PROBES = (NAMES, NATIONALITIES, PRONOUNS)
