"""A pretrained GPT-2 where the network allows: loaded with ``AutoModelForCausalLM``, scored on
WikiText-2 with the results table's per-word convention, and prompted with a few examples.

Taught in notebook 07. Offline (an offline switch set, or the Hub out of reach: :mod:`llmcourse.hub`) the notebook's
cell says it skipped and why: :func:`try_load_causal_lm` returns the reason instead of raising.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from . import hub
from .weights import ModelNotFound
from .heads import lm_loss
from .lm import per_word_perplexity as _per_word
from .training import stream_nll

__all__ = ["DEFAULT_CAUSAL_LM", "FEW_SHOT_PROMPT", "load_causal_lm", "try_load_causal_lm", "per_word_perplexity",
           "few_shot"]

DEFAULT_CAUSAL_LM = "gpt2"  # 124 M parameters: OpenAI's smallest GPT-2 (Radford et al. 2019)
#: The licences of the checkpoints notebook 07 loads by name (their model cards), printed when one is loaded.
LICENCES = {DEFAULT_CAUSAL_LM: "MIT (OpenAI's GPT-2 licence)"}
FEW_SHOT_PROMPT = ("France: Paris\nJapan: Tokyo\nItaly: Rome\nEgypt: Cairo\nSpain:")


def _where(name: str) -> str:
    """``name`` if it can be loaded here, else :class:`~llmcourse.weights.ModelNotFound` saying why not."""
    if Path(name).expanduser().exists():
        if not (Path(name).expanduser() / "config.json").is_file():
            raise ModelNotFound(f"The folder {name} has no config.json: it is not a model saved by save_pretrained().")
        return str(Path(name).expanduser())
    if name.startswith((".", "/", "~")):
        raise ModelNotFound(f"The model folder {name!r} does not exist.")
    if hub.cached(name):
        return name
    if (why := hub.unreachable()):
        raise ModelNotFound(f"{name!r} is not in the local cache and it cannot be downloaded: {why}.")
    return name


def load_causal_lm(name: str = DEFAULT_CAUSAL_LM, *, device: torch.device | str | None = None):
    """``(model, tokenizer)`` of a causal language model: a folder written by ``save_pretrained`` or a
    Hugging Face Hub name (downloaded once, then cached). The model is in evaluation mode on ``device``
    (default :func:`llmcourse.config.get_device`). Raises :class:`~llmcourse.weights.ModelNotFound`, quickly
    and saying why, when it cannot be had here."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .config import get_device

    path = _where(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFound(f"Could not load {name!r}: {first}") from None
    _check_causal(name, model, tokenizer)
    if name in LICENCES:
        print(f"{name}: licence {LICENCES[name]}")
    return model.to(get_device(device)).eval(), tokenizer


# model types that are encoders: AutoModelForCausalLM gives them an LM head, but each position sees the word it
# would predict, so they cannot be scored or sampled as causal language models
_ENCODERS = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "albert", "deberta",
             "deberta-v2", "mpnet", "modernbert"}


def _check_causal(name: str, model: nn.Module, tokenizer) -> None:
    """The wrong model, said at once: an encoder loaded as a causal LM, a folder whose tokenizer encodes nothing."""
    config = model.config
    if config.model_type in _ENCODERS and not getattr(config, "is_decoder", False):
        raise ModelNotFound(f"{name!r} is a {config.model_type} encoder: every position sees the whole text, the "
                            "word it would predict included, so it cannot be scored or sampled as a causal language "
                            "model. Load a decoder (gpt2, a Llama) instead.")
    if len(tokenizer) == 0 or not tokenizer("the cat").input_ids:
        raise ModelNotFound(f"{name!r} has no usable tokenizer (it encodes text to nothing): save the tokenizer with "
                            "the model (tokenizer.save_pretrained(folder)) or load it from its hub name.")


def try_load_causal_lm(name: str = DEFAULT_CAUSAL_LM, **kwargs):
    """``(model, tokenizer, None)``, or ``(None, None, reason)`` where the model cannot be had: what a
    notebook cell uses to say it skipped, and why, instead of failing."""
    try:
        model, tokenizer = load_causal_lm(name, **kwargs)
    except ModelNotFound as exc:
        return None, None, str(exc)
    return model, tokenizer, None


def _logits_loss(output, y: Tensor) -> tuple[Tensor, Tensor]:
    return lm_loss(output.logits, y)  # a transformers model returns an output object, not logits


def per_word_perplexity(model: nn.Module, tokenizer, lines: Sequence[str], *, seq_len: int = 1024,
                        batch_size: int = 4) -> dict[str, float]:
    """Per-word perplexity of a Hugging Face causal LM on ``lines`` (``data.WikiText2("test")``), with the
    results table's convention: every line is followed by a line break (the model's own way to end a
    line, where the course's models read ``<eos>``), the whole text is read in consecutive windows of
    ``seq_len`` tokens of the model's tokenizer with every token after the first scored once
    (:func:`llmcourse.training.stream_nll`), and the total negative log-likelihood is divided by the
    words: the line's words (``str.split``) plus one for its end, as in notebook 06. Returns
    ``per_word``, ``per_token``, ``tokens`` (scored) and ``words``.

    **The caveat.** WikiText-2 here is the tokenised text: ``<unk>`` for rare words, `` @-@ `` for
    hyphens, spaces before punctuation. GPT-2 never saw text written that way, so it pays for the
    form as well as the content. GPT-2's paper reports 29.41 on WikiText-2 with de-tokenisers and
    overlapping windows; the figure here is not comparable with it, only with the course's rows
    (and even there, GPT-2 read 40 GB of web text, not WikiText-2's 2 million words).
    """
    if isinstance(lines, str):
        raise TypeError("lines must be a list of lines (WikiText2('test')), not one string.")
    if not lines:
        raise ValueError("lines is empty: give the lines of text to score.")
    if not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"seq_len={seq_len!r}: a window needs at least 2 tokens (one to read, one to predict).")
    limit = getattr(getattr(model, "config", None), "n_positions", None)
    if limit is not None and seq_len > limit:
        raise ValueError(f"seq_len={seq_len} is longer than the model's {limit} positions: use seq_len <= {limit}.")
    text = "".join(f"{line}\n" for line in lines)
    ids = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    if len(ids) < 2:
        raise ValueError("the text has fewer than 2 tokens: nothing to score.")
    device = next(model.parameters()).device
    nll, scored = stream_nll(model, ids, seq_len, batch_size=batch_size, loss_fn=_logits_loss, device=device)
    words = sum(len(line.split()) + 1 for line in lines)
    return {"per_word": _per_word(nll, words), "per_token": float(torch.tensor(nll / scored).exp()),
            "tokens": scored, "words": words}


@torch.no_grad()
def few_shot(model: nn.Module, tokenizer, prompt: str = FEW_SHOT_PROMPT, *, max_new_tokens: int = 5) -> str:
    """The greedy continuation of ``prompt`` (``model.generate`` with ``do_sample=False``): the text
    after the prompt only."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("give a non-empty prompt string.")
    device = next(model.parameters()).device
    enc = tokenizer(prompt, return_tensors="pt").to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
