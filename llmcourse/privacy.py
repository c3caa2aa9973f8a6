"""What a language model memorises of its training text: planted canaries, their exposure and their extraction.

Carlini et al. (2019, "The Secret Sharer") measure memorisation with **canaries**: random secrets,
such as ``my pin is 3 1 4 1 5 9``, planted in the training text a chosen number of times. A model that
has not memorised a canary finds it no likelier than any other secret of the same form; one that has
ranks it first. The **exposure** of a canary is ``log2 |R| - log2 rank``, where ``R`` is the set of
possible secrets and ``rank`` the canary's place among them by the model's likelihood (1 = the
likeliest): 0 bits for a canary ranked last, ``log2 |R|`` for one ranked first. With ``|R| = 10^6``
every secret cannot be scored on a CPU, so, as in the paper, the rank is estimated from a random
sample of the other secrets (:func:`exposure`; the estimate saturates at ``log2`` of the sample).
**Extraction** asks more: does greedy decoding after the prefix write the secret out
(:func:`extracted`)? Carlini et al. (2021, "Extracting Training Data from Large Language Models")
found the same with real data: what is repeated is what comes out, which is why deduplicating the
training text (:func:`deduplicate`; Kandpal et al. 2022) is the first defence.

Taught in notebook 07 (section 8): :func:`plant` canaries repeated 0 to 32 times in WikiText-2, train the
course's model on the clock, then :func:`audit` (:func:`exposure` and :func:`extracted` of every canary)
against the number of repetitions, with and without :func:`deduplicate`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from . import checks
from .protocols import forward_step, scores

__all__ = ["Canary", "make_canaries", "plant", "deduplicate", "sequence_nll", "exposure", "extracted", "audit",
           "by_repeats"]

DIGITS = tuple("0123456789")


@dataclass(frozen=True)
class Canary:
    """A planted secret: ``prefix`` (the words before it, the same for every canary) and ``secret``
    (``length`` random digits), as words; ``repeats``: how many times it is planted."""

    prefix: tuple[str, ...]
    secret: tuple[str, ...]
    repeats: int

    @property
    def words(self) -> tuple[str, ...]:
        return self.prefix + self.secret

    @property
    def line(self) -> str:
        return " ".join(self.words)


def make_canaries(repeats: Sequence[int], *, prefix: str = "my pin number is", length: int = 6,
                  seed: int = 0) -> list[Canary]:
    """One canary per entry of ``repeats`` (how many times each is planted), with distinct random
    secrets of ``length`` digits after the same ``prefix``."""
    rng = random.Random(seed)
    checks.whole("length", length)
    seen, out = set(), []
    for r in checks.listed("repeats", repeats):
        checks.whole("repeats", r, least=0)
        secret = tuple(rng.choice(DIGITS) for _ in range(length))
        while secret in seen:
            secret = tuple(rng.choice(DIGITS) for _ in range(length))
        seen.add(secret)
        out.append(Canary(tuple(prefix.split()), secret, r))
    return out


def plant(lines: Sequence[str], canaries: Sequence[Canary], *, seed: int = 0) -> list[str]:
    """The training ``lines`` with every canary inserted ``repeats`` times, each copy at a random place
    between two lines (the text's own lines keep their order)."""
    rng = random.Random(seed)
    out = list(checks.listed("lines", lines, strings=True))
    copies = [c.line for c in canaries for _ in range(c.repeats)]
    places = sorted((rng.randrange(len(out) + 1) for _ in copies), reverse=True)
    rng.shuffle(copies)
    for place, line in zip(places, copies):
        out.insert(place, line)
    return out


def deduplicate(lines: Sequence[str]) -> list[str]:
    """``lines`` with every repeated non-blank line kept once, at its first place (exact-match
    deduplication, the simplest kind: Lee et al. 2022 also remove near-duplicates)."""
    seen, out = set(), []
    for line in checks.listed("lines", lines, strings=True):
        if line.strip() and line in seen:
            continue
        seen.add(line)
        out.append(line)
    return out


@torch.no_grad()
def sequence_nll(model: nn.Module, ids: Tensor, score_from: int, *, batch_size: int = 512) -> Tensor:
    """The negative log-likelihood (nats) a language model gives to the tokens of each row of ``ids``
    ``(n, t)`` from position ``score_from`` on, each predicted from everything before it: ``(n,)``.
    Works for every course model (:func:`llmcourse.protocols.forward_step`, ``scores``)."""
    ids = checks.token_ids("sequence_nll", ids, getattr(getattr(model, "config", None), "vocab_size", None))
    if ids.dim() != 2 or not 1 <= score_from < ids.size(1):
        raise ValueError(f"ids must be (n, t) with 1 <= score_from < t; got {tuple(ids.shape)} and {score_from}.")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for i in range(0, len(ids), batch_size):
            x = ids[i:i + batch_size].to(device)
            output, _ = forward_step(model, x[:, :-1])
            logp = scores(model, output).float().log_softmax(-1)
            picked = logp.gather(-1, x[:, 1:, None]).squeeze(-1)[:, score_from - 1:]
            out.append(-picked.sum(-1).cpu())
    finally:
        model.train(was)
    return torch.cat(out)


def _ids(words: Sequence[str], vocab) -> list[int]:
    return [vocab[w] for w in words]


def exposure(model: nn.Module, canary: Canary, vocab, *, samples: int = 10_000, seed: int = 0,
             context: Sequence[str] = ("<eos>",)) -> dict:
    """The canary's exposure in bits, estimated from ``samples`` random secrets of the same form
    (Carlini et al. 2019, section 4): ``log2 |R| - log2 rank``, the rank being 1 + the number of sampled
    secrets the model finds at least as likely, scaled up to the ``|R| = 10^length`` possible secrets.
    ``vocab`` maps words to ids (the model's). Returns ``exposure``, ``rank`` (estimated), ``max``
    (``log2 |R|``), ``saturated`` (no sampled secret is as likely as the canary: the exposure is then
    ``max`` as estimated, but the sample shows only that it is ``at_least`` the exposure one such secret
    would give) and the canary's ``nll``. Each row is ``context + prefix + secret``,
    scored on the secret only."""
    checks.whole("samples", samples)
    rng = random.Random(seed)
    head = list(context) + list(canary.prefix)
    length = len(canary.secret)
    others = set()
    while len(others) < min(samples, 10 ** length - 1):
        secret = tuple(rng.choice(DIGITS) for _ in range(length))
        if secret != canary.secret:
            others.add(secret)
    rows = [canary.secret, *sorted(others)]
    ids = torch.tensor([_ids(head + list(s), vocab) for s in rows])
    nll = sequence_nll(model, ids, len(head))
    beaten_by = int((nll[1:] <= nll[0]).sum())
    space = 10 ** length
    rank = 1 + beaten_by * (space - 1) / len(others)  # the sample's fraction, scaled to every secret
    top = math.log2(space)
    return {"exposure": top - math.log2(rank), "rank": rank, "max": top, "saturated": beaten_by == 0,
            "at_least": top - math.log2(1 + (space - 1) / len(others)) if beaten_by == 0 else None,
            "nll": float(nll[0])}


@torch.no_grad()
def extracted(model: nn.Module, canary: Canary, vocab, *, context: Sequence[str] = ("<eos>",)) -> tuple[bool, list[str]]:
    """Whether greedy decoding after ``context + prefix`` writes the canary's secret, and what it writes
    (as many words as the secret has)."""
    from .decoding import generate

    prompt = torch.tensor(_ids(list(context) + list(canary.prefix), vocab))
    out = generate(model, prompt, len(canary.secret), temperature=0.0)[len(prompt):]
    words = [vocab.lookup_token(int(i)) for i in out]
    return tuple(words) == canary.secret, words


def audit(model: nn.Module, canaries: Sequence[Canary], vocab, *, samples: int = 10_000, seed: int = 0,
          context: Sequence[str] = ("<eos>",)) -> list[dict]:
    """One row per canary: its ``repeats``, ``secret`` (as a string), :func:`exposure` (``exposure``,
    ``saturated``, ``at_least``, ``nll``), ``shown``: the exposure the sample can vouch for (``at_least``
    where it saturated, else ``exposure``), and :func:`extracted` (``extracted``, and what greedy decoding
    ``wrote``)."""
    rows = []
    for canary in checks.listed("canaries", canaries):
        e = exposure(model, canary, vocab, samples=samples, seed=seed, context=context)
        hit, words = extracted(model, canary, vocab, context=context)
        rows.append({"repeats": canary.repeats, "secret": " ".join(canary.secret), "exposure": e["exposure"],
                     "saturated": e["saturated"], "at_least": e["at_least"],
                     "shown": e["at_least"] if e["saturated"] else e["exposure"], "nll": e["nll"],
                     "extracted": hit, "wrote": " ".join(words)})
    return rows


def by_repeats(rows: Sequence[dict]) -> dict[int, dict]:
    """:func:`audit`'s rows grouped by how often their canary was planted: for each number of
    ``repeats`` (ascending), the ``canaries``, their ``mean_exposure`` (of ``shown``: a saturated canary counts
    as its lower bound, so a mean is never more than the sample shows) and how many were ``extracted``."""
    groups: dict[int, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["repeats"], []).append(row)
    return {r: {"canaries": len(g), "mean_exposure": sum(x["shown"] for x in g) / len(g),
                "extracted": sum(x["extracted"] for x in g)} for r, g in sorted(groups.items())}
