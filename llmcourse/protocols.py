"""What the course's code may ask of a model, stated once: the training loop, evaluation, decoding, the
compute counts and the scaling sweep all go through these protocols and helpers, never through a model's
class or name.

* :class:`LanguageModel`: every language model of the course (``RNNLM``, ``TransformerLM``, ``MLPLM``...):
  ``config``, ``stateful`` (True: ``model(x, state) -> (output, state)``, an RNN; False: ``model(x) ->
  output``), ``max_context`` (the longest input it reads; None: no limit), ``log_probs(output)`` and
  ``num_parameters(non_embedding=False)``.
* :class:`OwnLoss`: a model that scores its own output (an adaptive softmax): ``loss_fn(output, y)``.
* :class:`Cacheable`: a model that generates with a key-value cache (notebook 06).

The helpers are the loop's own steps, public so that every file uses the same ones:
:func:`is_stateful`, :func:`forward_step`, :func:`default_loss`, :func:`detach_state`, :func:`scores`.
A model that is not a :class:`LanguageModel` (a plain ``nn.Module`` in an exercise) is treated as stateless,
scored by :func:`llmcourse.heads.lm_loss`, with its output taken as logits.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from torch import Tensor, nn

from .heads import lm_loss

__all__ = ["LanguageModel", "Stateful", "OwnLoss", "Cacheable", "LossFn", "is_stateful", "forward_step",
           "default_loss", "detach_state", "scores", "max_context"]

#: ``loss_fn(output, y) -> (summed loss, number of tokens scored)``: what the loop minimises.
LossFn = Callable[[Any, Tensor], tuple[Tensor, Tensor]]


@runtime_checkable
class Stateful(Protocol):
    """A model that returns a state to be fed back with the next window: ``model(x, state) -> (output, state)``
    when ``stateful`` is True (an RNN)."""

    stateful: bool


@runtime_checkable
class OwnLoss(Protocol):
    """A model that scores its own output: ``loss_fn(output, y) -> (summed loss, number of tokens)``."""

    def loss_fn(self, output: Any, y: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class LanguageModel(Stateful, Protocol):
    """A language model of the course: what the loop, decoding, the compute counts and the sweep rely on."""

    config: Any
    stateful: bool

    @property
    def max_context(self) -> int | None: ...

    def log_probs(self, output: Any) -> Tensor: ...

    def num_parameters(self, non_embedding: bool = False) -> int: ...


@runtime_checkable
class Cacheable(Protocol):
    """A model that generates with a key-value cache (notebook 06): ``new_cache()`` returns an empty cache,
    and ``model(ids, cache=cache)`` reads ``ids`` ``(batch, new)`` as the positions after those already
    in the cache, adds theirs to it, and returns their output ``(batch, new, ...)``."""

    def new_cache(self) -> Any: ...


def is_stateful(model: nn.Module) -> bool:
    """True for a model that carries a state from one window to the next (``stateful = True``)."""
    return isinstance(model, Stateful) and bool(model.stateful)


def forward_step(model: nn.Module, x: Tensor, state: Any = None, *, stateful: bool | None = None) -> tuple[Any, Any]:
    """One forward pass as the loop makes it: ``(output, new state)``, the state None for a stateless model.
    ``stateful``: the answer of :func:`is_stateful` when the caller has it already (a wrapped model)."""
    if is_stateful(model) if stateful is None else stateful:
        return model(x, state)
    return model(x), None


def default_loss(model: nn.Module) -> LossFn:
    """The model's own ``loss_fn`` where it has one (:class:`OwnLoss`), else :func:`llmcourse.heads.lm_loss`."""
    return model.loss_fn if isinstance(model, OwnLoss) else lm_loss


def detach_state(state: Any) -> Any:
    """Cut a recurrent state from the graph that produced it (truncated BPTT): a tensor, a tuple of
    tensors (LSTM), or None. The values stay; gradients no longer flow into earlier windows."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def scores(model: nn.Module, output: Tensor) -> Tensor:
    """Next-token scores from a model's output: its ``log_probs`` where it has them (an adaptive softmax's
    output is hidden features), else the output itself, taken as logits."""
    log_probs = getattr(model, "log_probs", None)
    return log_probs(output) if callable(log_probs) else output


def max_context(model: nn.Module) -> int | None:
    """The longest input ``model`` reads (``model.max_context``), None where it has no limit or says none."""
    return getattr(model, "max_context", None)
