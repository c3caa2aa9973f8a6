"""Adam's update rule written from scratch (notebook 00, "Adam, from scratch").

Adam (Kingma & Ba, 2015) keeps two running averages for every parameter: ``m``, of its gradient
(the *first moment*: which way to go), and ``v``, of its squared gradient (the *second moment*: how
large the gradients usually are). Each step moves the parameter by ``lr * m_hat / (sqrt(v_hat) + eps)``:
about ``lr`` in the direction of the average gradient, whatever the gradient's scale, so a rarely
updated embedding row moves as fast as a busy one. Both averages start at zero, so early on they
are too small; dividing by ``1 - beta ** t`` (the *bias correction*) undoes exactly that.

:func:`adam_step` is one update of one tensor; :class:`ScratchAdam` is a ``torch.optim.Optimizer``
built on it, equal step for step to ``torch.optim.Adam`` (weight decay added to the gradient, as
an L2 penalty) or, with ``decoupled_weight_decay=True``, to ``torch.optim.AdamW`` (the parameter
shrunk by ``lr * weight_decay`` directly, outside the adaptive scaling). ``tests/test_optim.py``
proves both equalities. The course's training loop (:func:`llmcourse.training.train`) uses
``torch.optim.AdamW``: the same rule, in a faster implementation.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["adam_step", "ScratchAdam"]


@torch.no_grad()
def adam_step(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: int, *, lr: float = 1e-3,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
              decoupled_weight_decay: bool = False, bias_correction: bool = True) -> None:
    """One Adam update of ``param`` in place, given its gradient and its moments ``m`` and ``v``
    (updated in place too); ``t`` is the number of this step, counting from 1.

    All tensors have the parameter's shape. ``bias_correction=False`` leaves out the division by
    ``1 - beta ** t`` (an experiment of notebook 00: it is not Adam any more).
    """
    beta1, beta2 = betas
    if weight_decay and decoupled_weight_decay:  # AdamW: shrink the weight itself
        param.mul_(1 - lr * weight_decay)
    elif weight_decay:  # Adam: an L2 penalty, i.e. weight_decay * param added to the gradient
        grad = grad + weight_decay * param
    m.mul_(beta1).add_((1 - beta1) * grad)  # m = beta1 m + (1 - beta1) g
    v.mul_(beta2).add_((1 - beta2) * grad * grad)  # v = beta2 v + (1 - beta2) g²
    if bias_correction:
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    else:
        m_hat, v_hat = m, v
    param.sub_(lr * m_hat / (v_hat.sqrt() + eps))


class ScratchAdam(torch.optim.Optimizer):
    """``torch.optim.Adam`` rewritten on :func:`adam_step`; ``decoupled_weight_decay=True`` makes it AdamW.

    Takes parameters or parameter groups like any optimizer; its state per parameter is ``step``,
    ``m`` and ``v``.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
                 bias_correction: bool = True):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"lr={lr}, eps={eps}, weight_decay={weight_decay} must be >= 0 and betas={betas} "
                             "in [0, 1).")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      bias_correction=bias_correction))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:  # no gradient this step (set_to_none): no update, as in torch.optim.Adam
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ScratchAdam does not take sparse gradients.")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                adam_step(p, p.grad, state["m"], state["v"], state["step"], lr=group["lr"], betas=group["betas"],
                          eps=group["eps"], weight_decay=group["weight_decay"],
                          decoupled_weight_decay=group["decoupled_weight_decay"],
                          bias_correction=group["bias_correction"])
        return loss
