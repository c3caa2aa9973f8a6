"""Adapting a pretrained model cheaply: LoRA (Hu et al. 2021, *Low-Rank Adaptation of Large Language
Models*) on notebook 05's BERT classifier, through the `peft` library.

LoRA freezes a pretrained weight ``W`` (``d_out × d_in``) and learns a low-rank change beside it:
``W x + (alpha / r) · B A x``, with ``A`` (``r × d_in``) and ``B`` (``d_out × r``), ``r`` a few.
``B`` starts at zero, so training starts from the pretrained model exactly; after training,
``B A`` can be merged into ``W`` and inference costs nothing more. Taught in notebook 07:
:func:`lora_forward` and :func:`merged_weight` are the formula, and a test proves them equal to
what `peft` computes on the same weights.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from . import checks

__all__ = ["TARGET_MODULES", "lora_forward", "merged_weight", "add_lora", "trainable_parameters",
           "training_state_bytes", "finetune", "score", "choose_learning_rate"]

# Hu et al. adapt the query and value projections of every attention layer; on SST-2 with MiniLM,
# adding the key and the feed-forward layers trains 3-4x more weights for no measured gain here.
TARGET_MODULES = ("query", "value")


def _check_rank(r: Any, alpha: Any) -> None:
    checks.whole("r", r, hint="LoRA's rank: 4, 8 and 16 are usual")
    checks.number("alpha", alpha, low=0.0, low_open=True, hint="the update is scaled by alpha / r")


def lora_forward(x: Tensor, weight: Tensor, bias: Tensor | None, A: Tensor, B: Tensor, *, alpha: float,
                 r: int) -> Tensor:
    """A linear layer with a LoRA update: ``x W^T + b + (alpha / r) x A^T B^T``.

    ``x: (..., d_in)``, ``weight: (d_out, d_in)``, ``bias: (d_out,)`` or None, ``A: (r, d_in)``,
    ``B: (d_out, r)``; returns ``(..., d_out)``. Only ``A`` and ``B`` are trained."""
    _check_rank(r, alpha)
    if A.shape != (r, weight.shape[1]) or B.shape != (weight.shape[0], r):
        raise ValueError(f"A {tuple(A.shape)} and B {tuple(B.shape)} do not fit a weight of {tuple(weight.shape)} "
                         f"at rank {r}: A must be (r, d_in) = ({r}, {weight.shape[1]}), B (d_out, r) = "
                         f"({weight.shape[0]}, {r}).")
    out = x @ weight.T + (alpha / r) * (x @ A.T) @ B.T
    return out if bias is None else out + bias


def merged_weight(weight: Tensor, A: Tensor, B: Tensor, *, alpha: float, r: int) -> Tensor:
    """The weight after merging: ``W + (alpha / r) B A``, ``(d_out, d_in)``: the adapted layer as one matrix."""
    _check_rank(r, alpha)
    return weight + (alpha / r) * B @ A


def add_lora(model: nn.Module, *, r: int = 8, alpha: float = 16, dropout: float = 0.0,
             target_modules: Sequence[str] = TARGET_MODULES):
    """``model`` (a ``transformers`` sequence classifier) with LoRA adapters on ``target_modules`` and
    every other weight frozen, except the new classification head, which trains in full (`peft`'s
    ``task_type="SEQ_CLS"``). Returns `peft`'s ``PeftModel``."""
    from peft import LoraConfig, TaskType, get_peft_model

    _check_rank(r, alpha)
    checks.probability("dropout", dropout, one=False)
    target_modules = checks.listed("target_modules", target_modules, strings=True)
    checks.no_merged_adapters(model, "add_lora")
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    missing = [t for t in target_modules if t not in names]
    if missing or not target_modules:
        raise ValueError(f"target_modules {list(target_modules)}: {missing or 'none given'} not among this model's "
                         f"linear layers ({', '.join(sorted(names))}).")
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(target_modules))
    with warnings.catch_warnings():  # peft reads a transformers attribute deprecated in 5.x: nothing to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameters of ``model``."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def training_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """The memory that training holds besides the activations, in bytes: ``weights_bytes`` (every
    parameter, frozen or not), ``gradients_bytes`` (one per trainable parameter: what backward
    allocates) and ``optimizer_bytes`` (the tensors in ``optimizer.state``: AdamW's two moments per
    trained weight), and their sum ``state_bytes``. Activations, which grow with the batch and the sequence, are not counted."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    gradients = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    state = 0
    if optimizer is not None:
        for values in optimizer.state.values():
            state += sum(v.numel() * v.element_size() for v in values.values() if torch.is_tensor(v) and v.dim() > 0)
    return {"weights_bytes": weights, "gradients_bytes": gradients, "optimizer_bytes": state,
            "state_bytes": weights + gradients + state}


def finetune(recipe, tokenizer, data, *, output_dir: str | None = None, evaluate_on: str = "dev",
             **overrides) -> dict[str, Any]:
    """Fine-tune ``recipe.model()`` (the ``"bert"`` or ``"bert-lora"`` recipe) with ``transformers.Trainer``
    on ``data`` (:func:`llmcourse.finetune.sst2_datasets`: ``train`` and ``dev``), as notebook 05 does, and
    measure it: one row with ``method``, ``trainable``, ``total``, ``fraction``, ``accuracy`` and ``f1`` on
    the split ``evaluate_on`` (named in the row's ``split``: ``"dev"``, or ``"select"`` while a learning
    rate is being chosen, :func:`choose_learning_rate`), ``seconds`` of training, the
    :func:`training_state_bytes` and, on CUDA, the peak memory.
    ``overrides`` go to :meth:`~llmcourse.recipes.Recipe.trainer_arguments`."""
    from transformers import DataCollatorWithPadding, Trainer

    from .finetune import compute_metrics

    if evaluate_on not in data:
        raise ValueError(f"evaluate_on={evaluate_on!r}: data has {', '.join(map(repr, data))}; a select split comes "
                         "from llmcourse.finetune.sst2_datasets(..., held_out=872).")
    model = recipe.model()
    checks.no_merged_adapters(model, "finetune")
    trainable, total = trainable_parameters(model)
    args = recipe.trainer_arguments(output_dir, **({"save_strategy": "no", "load_best_model_at_end": False}
                                                   | overrides))
    trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data[evaluate_on],
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    metrics = trainer.evaluate()
    row = {"method": "LoRA" if recipe.model_config.lora_r else "full fine-tuning", "trainable": trainable,
           "total": total, "fraction": trainable / total, "split": evaluate_on, "accuracy": metrics["eval_accuracy"],
           "f1": metrics["eval_f1"], "seconds": seconds, "steps": trainer.state.global_step,
           "lr": args.learning_rate, **training_state_bytes(model, trainer.optimizer)}
    if torch.cuda.is_available():
        row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    row["model"] = model
    return row


def score(model: nn.Module, tokenizer, dataset) -> dict[str, float]:
    """``accuracy`` and ``f1`` of a sequence classifier on a tokenised split of
    :func:`llmcourse.finetune.sst2_datasets` (its ``sentence`` and ``label`` columns)."""
    from .finetune import accuracy_f1, predict_proba

    probs = predict_proba(model, tokenizer, dataset["sentence"])
    return accuracy_f1(probs.argmax(-1), dataset["label"])


def choose_learning_rate(recipe, tokenizer, data, lrs: Sequence[float], **overrides) -> tuple[dict[str, Any], list]:
    """Fine-tune ``recipe`` once per learning rate of ``lrs`` on ``data["train"]``, score each on
    ``data["select"]`` (training phrases held out: :func:`llmcourse.finetune.sst2_datasets` with
    ``held_out``), keep the best there, and only then score that one on ``dev``, once: the dev accuracy
    is then a report, not a choice. Returns ``(chosen, rows)``: ``rows`` the :func:`finetune` rows on
    ``select`` (their models dropped), ``chosen`` the best of them with its model and ``select_accuracy``,
    its ``accuracy`` and ``f1`` now on ``dev`` (``split`` says so)."""
    import dataclasses

    if "select" not in data or "dev" not in data:
        raise ValueError("choose_learning_rate needs a select split beside dev, held out from training: "
                         "llmcourse.finetune.sst2_datasets(tokenizer, ..., held_out=872).")
    lrs = checks.listed("lrs", lrs)
    if not lrs:
        raise ValueError("lrs is empty: give the learning rates to choose among, e.g. [5e-4, 1e-3, 2e-3].")
    for lr in lrs:
        checks.number("lr", lr, low=0.0, low_open=True)
    rows, best = [], None
    for lr in lrs:
        row = finetune(dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, lr=lr)), tokenizer, data,
                       evaluate_on="select", **overrides)
        if best is None or row["accuracy"] > best["accuracy"]:
            best = row
        rows.append({k: v for k, v in row.items() if k != "model"})
    chosen = dict(best, select_accuracy=best["accuracy"], split="dev", **score(best["model"], tokenizer, data["dev"]))
    return chosen, rows
