"""Classifying SST-2's sentences with a pretrained encoder (notebook 05): fine-tuned whole, or probed frozen.

* Fine-tuning with Hugging Face's ``Trainer``: :func:`sst2_datasets` (``datasets`` tokenised with ``map``),
  :func:`compute_metrics` (accuracy and F1, from :func:`accuracy_f1`) and :func:`training_arguments`; the
  checkpoint itself comes from :mod:`llmcourse.weights` (``load_tokenizer``, ``load_classifier``).
* Reading a classifier's predictions: :func:`predict_proba`, :func:`confusion_matrix` and
  :func:`most_confidently_wrong` (the widget and the plot live in :mod:`llmcourse.widgets` and
  :mod:`llmcourse.plotting`; the bias probe in :mod:`llmcourse.probes`).
* What the frozen encoder's features hold: :func:`mean_pool`, :func:`sentence_features` (sentence vectors,
  mean or ``[CLS]``) and :func:`linear_probe` (logistic regression on them, the encoder unchanged).

The encoder built from scratch, and masked-LM pre-training, are :mod:`llmcourse.bert`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks

__all__ = [
    "sst2_datasets",
    "accuracy_f1",
    "compute_metrics",
    "training_arguments",
    "predict_proba",
    "confusion_matrix",
    "most_confidently_wrong",
    "mean_pool",
    "sentence_features",
    "linear_probe",
]


# --------------------------------------------------------------------------------------------
# Fine-tuning with Hugging Face's Trainer, and reading its predictions
# --------------------------------------------------------------------------------------------
def sst2_datasets(tokenizer, *, n_train: int | None = None, n_dev: int | None = None, seed: int = 0,
                  max_length: int = 128, held_out: int = 0):
    """SST-2 as a ``datasets.DatasetDict`` with ``train`` and ``dev``, tokenised with ``map`` (no padding:
    the data collator pads each batch to its longest sentence; a ``length`` column lets ``Trainer`` group
    phrases of similar length, and the dev set is sorted by it). ``n_train`` takes a random subset.

    ``held_out``: that many training phrases set aside as a ``select`` split, on which to choose a
    checkpoint or a learning rate, so that ``dev`` is only ever reported, never chosen on. SST-2's
    training phrases are the nodes of parse trees, each a substring of its sentence: every training
    phrase that contains a held-out phrase or is contained in one is dropped from ``train``, so that
    ``select`` does not grade the model on its own training text."""
    from datasets import Dataset, DatasetDict

    from .data import SST2

    def build(rows):
        return Dataset.from_dict({"sentence": [s for s, _ in rows], "label": [l for _, l in rows]})

    checks.whole("held_out", held_out, least=0)
    rows, splits = SST2("train"), {}
    if held_out:
        rows, chosen = _hold_out(rows, held_out, seed)
        splits["select"] = build(chosen)
    train, dev = build(rows), build(SST2("dev"))
    if n_train is not None and n_train < len(train):
        train = train.shuffle(seed=seed).select(range(n_train))
    if n_dev is not None and n_dev < len(dev):
        dev = dev.select(range(n_dev))

    def tokenize(batch):
        enc = tokenizer(batch["sentence"], truncation=True, max_length=max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    data = DatasetDict(train=train, **splits, dev=dev).map(tokenize, batched=True, desc="tokenising")
    with warnings.catch_warnings():  # a pyarrow deprecation inside datasets, nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        for name in ("select", "dev"):  # evaluation batches of similar lengths: less padding, same metrics
            if name in data:
                data[name] = data[name].sort("length")
    return data


def _hold_out(rows: list, n: int, seed: int) -> tuple[list, list]:
    """``n`` random phrases of 8 words or more set aside (near-sentences, as the dev set's are whole sentences),
    and the other rows less the phrases of the same trees: each that contains a held-out phrase, and each of
    3 words or more inside one (shorter phrases, "the film", recur across unrelated sentences and stay)."""
    import bisect
    import random
    import re

    long_enough = [i for i, (s, _) in enumerate(rows) if len(s.split()) >= 8]
    if n > len(long_enough):
        raise ValueError(f"held_out={n}: SST-2's training set has only {len(long_enough):,} phrases of 8 words or more.")
    picked = set(random.Random(seed).sample(long_enough, n))
    chosen = [rows[i] for i in sorted(picked)]
    rest = [r for i, r in enumerate(rows) if i not in picked]
    held = "\n".join(s for s, _ in chosen)  # no phrase holds a newline: a match never spans two
    joined = "\n".join(s for s, _ in rest)
    starts = [0]
    for s, _ in rest[:-1]:
        starts.append(starts[-1] + len(s) + 1)
    related = {i for i, (s, _) in enumerate(rest) if len(s.split()) >= 3 and s in held}
    for s, _ in chosen:
        for m in re.finditer(re.escape(s), joined):
            related.add(bisect.bisect_right(starts, m.start()) - 1)
    return [r for i, r in enumerate(rest) if i not in related], chosen


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
    checks.writable_dir("output_dir", output_dir)  # now, not at the first checkpoint after minutes of training
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
# What the frozen features are worth: a linear probe
# --------------------------------------------------------------------------------------------
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
