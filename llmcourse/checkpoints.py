"""Checkpoints: a model's weights as safetensors and its configuration as JSON, loaded back without pickle.

:func:`save_checkpoint` writes ``model.safetensors`` (tied weights stored once) and ``config.json`` (the
model's class, its config dataclass, a training history if given, and the sha256 of the weights file,
the whole sealed by the sha256 of its own content), each file whole or not at all; :func:`load_checkpoint`
rebuilds a course model from them, or fills a model given, refusing a file changed since it was saved
(one flipped byte of the weights) and weights saved from another class or config. The training loop saves the best weights here (``TrainConfig.checkpoint_dir``);
notebooks 02 and 04 save their trained models. ``llmcourse.training`` re-exports both functions.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .files import atomic_write, file_sha256, read_json, write_json

if TYPE_CHECKING:
    from .training import History

__all__ = ["WEIGHTS", "CONFIG", "save_checkpoint", "load_checkpoint"]

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save_checkpoint(model: nn.Module, directory: str | os.PathLike, *, history: History | None = None,
                    extra: dict | None = None) -> Path:
    """Save ``model`` to ``directory``: ``model.safetensors`` (tied weights stored once) and
    ``config.json`` (the model's class, its config dataclass, and the history if given)."""
    from safetensors.torch import save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cls = type(getattr(model, "_orig_mod", model))  # the model itself, not a torch.compile wrapper
    config = getattr(model, "config", None)
    meta = {
        "model_class": f"{cls.__module__}.{cls.__qualname__}",
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None,
        "history": history.to_dict() if history is not None else None,
        **(extra or {}),
    }
    atomic_write(directory / WEIGHTS, lambda tmp: save_model(getattr(model, "_orig_mod", model), str(tmp)))
    meta["weights_sha256"] = file_sha256(directory / WEIGHTS)  # checked on load: a flipped byte is refused
    write_json(directory / CONFIG, meta, sealed=True, indent=2)
    return directory


def load_checkpoint(directory: str | os.PathLike, model: nn.Module | None = None, *,
                    device: torch.device | str = "cpu") -> nn.Module:
    """Load a checkpoint saved by :func:`save_checkpoint`.

    With ``model`` given, its weights are replaced. Otherwise the model is rebuilt from
    ``config.json``: its class must live in ``llmcourse`` and take its config dataclass
    (``cls.config_class``); no pickle is ever read.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    directory = Path(directory)
    for name in (WEIGHTS, CONFIG):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a checkpoint: {name} is missing.")
    damaged = f"Save the model again, or restore {directory} from where you saved it."
    meta = read_json(directory / CONFIG, _checked_meta, "checkpoint configuration (written by save_checkpoint)",
                     f"save the model again, or restore {directory} from where you saved it", sealed=True)
    model_class, saved_config = meta["model_class"], meta["config"]
    if meta.get("weights_sha256") is not None and file_sha256(directory / WEIGHTS) != meta["weights_sha256"]:
        raise ValueError(f"{directory / WEIGHTS} has been changed since it was saved: its sha256 is not the one "
                         f"{directory / CONFIG} records, so its weights are not the saved ones. {damaged}")
    if model is None:
        module_name, _, class_name = model_class.rpartition(".")
        if not module_name.startswith("llmcourse."):
            raise ValueError(f"{directory} holds a {model_class}; only llmcourse models can be rebuilt "
                             "from their config. Build the model yourself and pass it as model=.")
        cls = getattr(importlib.import_module(module_name), class_name)
        if saved_config is None or not hasattr(cls, "config_class"):
            raise ValueError(f"{model_class} has no config dataclass to rebuild it from.")
        try:
            config = cls.config_class(**_current_names(cls.config_class, saved_config))
        except (TypeError, ValueError) as exc:  # a field this llmcourse does not know, a value it refuses
            raise ValueError(f"{directory / CONFIG} does not describe a {class_name} this llmcourse can build "
                             f"({exc}): was it saved by another version, or edited? {damaged}") from None
        model = cls(config)
    else:
        _check_same_model(directory, model, model_class, saved_config)
    try:
        load_model(model, str(directory / WEIGHTS), device=str(device))
    except SafetensorError as exc:
        raise ValueError(f"{directory / WEIGHTS} is damaged ({exc}). {damaged}") from None
    except RuntimeError as exc:  # missing or unexpected weights, or shapes that differ
        raise ValueError(f"The weights in {directory} do not fit this {type(model).__name__}: "
                         f"{str(exc).splitlines()[0]}. Build the model from the checkpoint's config.json "
                         "(load_checkpoint(directory) without model=).") from None
    return model.to(device)


def _checked_meta(meta: Any) -> dict:
    if not isinstance(meta, dict) or "model_class" not in meta or "config" not in meta:
        raise ValueError("it has no 'model_class' and 'config'")
    if not (meta["config"] is None or isinstance(meta["config"], dict)):
        raise TypeError(f"its config is a {type(meta['config']).__name__}, not an object")
    return meta


def _check_same_model(directory: Path, model: nn.Module, model_class: str, saved_config: dict | None) -> None:
    """Refuse weights saved from another class or config, even where the shapes would not show it
    (a causal model's weights loaded into a non-causal one, a different positional encoding)."""
    cls = type(getattr(model, "_orig_mod", model))
    if f"{cls.__module__}.{cls.__qualname__}" != model_class:
        raise ValueError(f"{directory} holds a {model_class}, not a {cls.__module__}.{cls.__qualname__}: "
                         "pass a model of the saved class, or none to rebuild it.")
    config = getattr(model, "config", None)
    if saved_config is None or not dataclasses.is_dataclass(config):
        return
    saved_config = _current_names(type(config), saved_config)
    try:  # fields added since the checkpoint was saved take their defaults, as when rebuilding it
        saved = dataclasses.asdict(type(config)(**saved_config))
    except TypeError:  # a field this config no longer has: compare what was written
        saved = saved_config
    saved, ours = (json.loads(json.dumps(c)) for c in (saved, dataclasses.asdict(config)))  # tuples as lists
    # dropout and initialisation do not change what the saved weights compute: they may differ
    differ = {k: (saved.get(k), ours.get(k)) for k in sorted(set(saved) | set(ours))
              if saved.get(k) != ours.get(k) and "dropout" not in k and not k.startswith("init")}
    if differ:
        listed = ", ".join(f"{k}: saved {a!r}, this model {b!r}" for k, (a, b) in differ.items())
        raise ValueError(f"The checkpoint in {directory} was saved from a different config ({listed}). "
                         "Load it without model= to rebuild the saved model, or build yours with that config.")


def _current_names(config_class: type, saved_config: dict) -> dict:
    """A config saved before some of its fields were renamed, under today's names (``config_class.RENAMED``:
    old name -> new), so that a learner's earlier checkpoints still load."""
    renamed = getattr(config_class, "RENAMED", {})
    return {renamed.get(k, k): v for k, v in saved_config.items()}
