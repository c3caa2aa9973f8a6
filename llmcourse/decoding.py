"""Decoding: turning a language model's next-token distribution into text (notebooks 02 and 04).

One next-token step is :func:`sample_next`: logits ``(batch, vocab)`` → ids ``(batch,)``, by greedy
choice (``temperature=0``), or by sampling after temperature scaling and optional top-k / top-p
(nucleus) filtering. :func:`generate` runs any course model on a prompt:

* a *stateful* model (``model.stateful = True``, like :class:`llmcourse.rnn.RNNLM`) reads the prompt
  once and then one new token per step, carrying its recurrent state;
* a *stateless* model (a Transformer) re-reads a window of the most recent ``max_context`` ids at
  every step (a sliding window: the model cannot see further back than its context length);
* with ``use_cache=True``, a model with a key-value cache (:class:`Cacheable`, such as
  :class:`llmcourse.transformer.TransformerLM`) reads the prompt once and then only the new token,
  keeping every layer's keys and values (notebook 06): the same tokens, without recomputing the past,
  up to ``max_context`` positions.

A model whose output is not logits exposes ``log_probs(output)`` (the RNN's adaptive softmax does);
otherwise the output is taken as logits. Taught in notebook 02; reused unchanged in notebook 04.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from . import checks
from .protocols import Cacheable, is_stateful, scores
from .protocols import max_context as model_context
from .text import check_token_ids

__all__ = [
    "greedy",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "sample_next",
    "Cacheable",
    "generate",
    "generate_text",
]


def _check_logits(logits: Tensor) -> None:
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"Decoding expects next-token logits of shape (batch, vocab), got {shape}; "
                         "take the last time step with logits[:, -1].")
    if logits.dtype.is_floating_point and bool(torch.isnan(logits).any()):
        raise FloatingPointError("The next-token logits hold NaN: the model's weights or its input went wrong "
                                 "(a NaN has no largest value to pick, nor a probability to draw from).")


def greedy(logits: Tensor) -> Tensor:
    """The most likely next token of each row: ``(batch, vocab)`` → ``(batch,)``."""
    _check_logits(logits)
    return logits.argmax(dim=-1)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide logits by ``temperature``: below 1 sharpens the distribution, above 1 flattens it."""
    checks.number("temperature", temperature, low=0.0, low_open=True, hint="for 0, call greedy()")
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of each row, set the others to ``-inf`` (ties at the k-th value kept)."""
    _check_logits(logits)
    checks.whole("top_k", k)
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probabilities add up to at
    least ``p``, set the others to ``-inf``. The most likely token is always kept."""
    _check_logits(logits)
    checks.probability("top_p", p, zero=False)
    if p >= 1:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # drop a token when the tokens before it already reach p
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """The next token of each row: ``(batch, vocab)`` logits (or log-probabilities) → ``(batch,)`` ids.

    ``temperature=0`` is greedy decoding; otherwise temperature, then top-k, then top-p, then a draw.
    """
    _check_logits(logits)
    checks.number("temperature", temperature, low=0.0)
    if temperature == 0:
        return greedy(logits)
    logits = apply_temperature(logits.float(), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _next_logits(model: nn.Module, output: Tensor) -> Tensor:
    """The last position's scores from a model's output ``(batch, time, ...)``."""
    return scores(model, output[:, -1])


def _check_ids(ids: Tensor, model: nn.Module) -> None:
    """Token ids must be integers inside the model's vocabulary (else PyTorch fails deep in an embedding)."""
    check_token_ids(ids, getattr(getattr(model, "config", None), "vocab_size", None), "The prompt")


def _check_cache_use(model: nn.Module, prompt_len: int, max_new_tokens: int, max_context: int | None) -> None:
    """Clear errors for a cache that cannot work, before any work is done."""
    if is_stateful(model):
        raise ValueError(f"{type(model).__name__} is stateful: it already reads each token once and carries the past "
                         "in its state, which is what a cache does for a Transformer. Drop use_cache=True.")
    if not isinstance(model, Cacheable):
        raise TypeError(f"use_cache=True needs a model with a key-value cache (new_cache() and model(ids, cache=...)), "
                        f"such as llmcourse.transformer.TransformerLM; {type(model).__name__} has none. Use "
                        "use_cache=False.")
    if max_context is not None:
        raise ValueError("max_context slides a window over the last ids, which a cache cannot do (it keeps every "
                         "position it has read). Pass use_cache=True or max_context, not both.")
    limit = model_context(model)
    # the prompt and every new token but the last are read, each at its own position
    needed = prompt_len + max_new_tokens - 1
    if limit is None or needed <= limit:
        return
    if prompt_len > limit:
        raise ValueError(f"The prompt has {prompt_len} ids, more than the model's max_context={limit}, and a cache "
                         f"cannot slide a window. Keep its last {limit} ids (prompt[..., -{limit}:]), or use "
                         "use_cache=False, which slides the window by itself.")
    raise ValueError(f"With a cache, a prompt of {prompt_len} ids and {max_new_tokens} new tokens need {needed} "
                     f"positions, more than the model's max_context={limit} (it has no position beyond: learned "
                     f"positions stop there). Generate at most {limit - prompt_len + 1} new tokens with this prompt, "
                     f"or use use_cache=False, which slides a window over the last {limit} ids.")


def _prepared_prompt(model: nn.Module, prompt: Tensor, max_new_tokens: int, max_context: int | None,
                     use_cache: bool) -> tuple[Tensor, bool, int | None]:
    """The prompt checked, as ``(batch, time)`` on the model's device; whether it was 1-D; the window."""
    checks.whole("max_new_tokens", max_new_tokens, least=0)
    checks.whole("max_context", max_context, least=1, none=True)
    if not isinstance(prompt, Tensor):
        raise TypeError(f"The prompt must be a tensor of token ids, (time,) or (batch, time); got "
                        f"{type(prompt).__name__}. Build it with torch.tensor(ids, dtype=torch.long).")
    squeeze = prompt.dim() == 1
    ids = prompt.unsqueeze(0) if squeeze else prompt
    if ids.dim() != 2 or ids.size(1) == 0:
        raise ValueError(f"The prompt must hold at least one id, shape (time,) or (batch, time); got {tuple(prompt.shape)}.")
    _check_ids(ids, model)
    if use_cache:
        _check_cache_use(model, ids.size(1), max_new_tokens, max_context)
    elif max_context is None:
        max_context = model_context(model)
    if max_context is not None and max_context < 1:
        raise ValueError(f"max_context must be at least 1, got {max_context}.")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = ids.device
    return ids.to(device), squeeze, max_context


@torch.no_grad()
def generate(model: nn.Module, prompt: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, max_context: int | None = None,
             eos_id: int | None = None, generator: torch.Generator | None = None, use_cache: bool = False) -> Tensor:
    """Continue ``prompt`` (ids ``(time,)`` or ``(batch, time)``) by ``max_new_tokens`` tokens.

    Returns the prompt and its continuation, ``(batch, time + new)`` (or ``(time + new,)`` for a 1-D
    prompt). Stateful models read each token once and carry their state; stateless models re-read the
    last ``max_context`` ids at every step (default: ``model.max_context`` if the model has it, else the
    whole sequence). With ``use_cache=True`` a :class:`Cacheable` model reads the prompt once and then
    only each new token, keeping every layer's keys and values (notebook 06): the same tokens as
    without the cache, for ``time + max_new_tokens - 1 <= model.max_context`` (beyond that it is an
    error: there is no window to slide). With ``eos_id``, generation stops once every row has
    produced it. The model is put in eval mode (no dropout) and restored afterwards.
    """
    ids, squeeze, max_context = _prepared_prompt(model, prompt, max_new_tokens, max_context, use_cache)
    device = ids.device
    stateful = is_stateful(model)
    was_training = model.training
    model.eval()
    try:
        state, finished = None, torch.zeros(ids.size(0), dtype=torch.bool, device=device)
        cache = model.new_cache() if use_cache else None
        feed = ids if max_context is None else ids[:, -max_context:]
        for _ in range(max_new_tokens):
            if stateful:
                output, state = model(feed, state)
            elif use_cache:
                output = model(feed, cache=cache)
            else:
                output = model(feed)
            next_id = sample_next(_next_logits(model, output), temperature, top_k, top_p, generator).to(device)
            if eos_id is not None:
                next_id = next_id.masked_fill(finished, eos_id)
                finished |= next_id == eos_id
            ids = torch.cat([ids, next_id[:, None]], dim=1)
            if eos_id is not None and bool(finished.all()):
                break
            # a stateful model has the past in its state, a cached one in its keys and values: it only
            # needs the new token
            if stateful or use_cache:
                feed = next_id[:, None]
            else:
                feed = ids if max_context is None else ids[:, -max_context:]
    finally:
        model.train(was_training)
    return ids[0] if squeeze else ids


def generate_text(model: nn.Module, vocab, prompt: str | Sequence[str], max_new_tokens: int = 50, *,
                  eos_as_newline: bool = True, **kwargs) -> str:
    """Words in, words out: split ``prompt`` on white space, look the words up in ``vocab`` (unknown
    words become ``<unk>``), :func:`generate`, and join the words back (``<eos>`` as a line break).
    Keyword arguments go to :func:`generate` (``temperature``, ``top_k``, ``top_p``, ``generator``, ...)."""
    words = prompt.split() if isinstance(prompt, str) else list(prompt)
    if not words:
        raise ValueError("The prompt is empty: give at least one word (for instance '<eos>').")
    ids = torch.tensor(vocab(words), dtype=torch.long)
    out = generate(model, ids, max_new_tokens, **kwargs).tolist()
    tokens = vocab.lookup_tokens(out)
    text = " ".join(tokens)
    return text.replace(" <eos> ", "\n").replace(" <eos>", "\n") if eos_as_newline else text
