"""What the training loop does differently when it is one of several processes (``torchrun``, DDP): who it
is (:class:`Alone` or one of a :class:`Team`), how the loss of a batch is summed over the processes, which
process's clock and validation everyone follows. :func:`llmcourse.training.train` asks :func:`team` once and
runs the same code either way; :mod:`llmcourse.distributed` launches the processes (notebook 07).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["Alone", "Team", "team"]


class Alone:
    """One process: nothing to share with anyone. :class:`Team` is the same interface for a DDP run."""

    size, main = 1, True

    def wrap(self, step_loss: nn.Module) -> nn.Module:
        return step_loss

    def sum(self, loss_sum: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """The summed loss and the tokens of the whole batch (here: this process's)."""
        return loss_sum.detach(), n

    def mean_loss(self, loss_sum: Tensor, count: Tensor) -> Tensor:
        """What this process back-propagates: the mean loss per token of the whole batch."""
        return loss_sum / count.clamp(min=1)

    def agree(self, value: float) -> float:
        """Rank 0's ``value`` on every process (here: the value)."""
        return value


class Team(Alone):
    """The processes of a DDP run. Each reads its share of every batch; DDP averages their gradients in
    backward. Every decision that comes from a clock or a validation is rank 0's (:meth:`agree`): a process
    that stopped, validated or changed its learning rate on its own clock would leave the others waiting
    for it, or train with another schedule."""

    def __init__(self, device: torch.device):
        self.size, self.main, self.device = dist.get_world_size(), dist.get_rank() == 0, device

    def wrap(self, step_loss: nn.Module) -> nn.Module:
        # an adaptive softmax gives no gradient to a tail cluster when no target of a batch falls in it
        adaptive = any(isinstance(m, nn.AdaptiveLogSoftmaxWithLoss) for m in step_loss.modules())
        return nn.parallel.DistributedDataParallel(step_loss, find_unused_parameters=adaptive)

    def sum(self, loss_sum: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        both = torch.stack([loss_sum.detach().double(), n.double()])
        dist.all_reduce(both)
        return both[0], both[1].long()

    def mean_loss(self, loss_sum: Tensor, count: Tensor) -> Tensor:
        # DDP divides the summed gradients by the number of processes: multiply it back, so that the
        # gradient is that of the whole batch's mean loss, however the tokens are shared among processes
        return loss_sum * self.size / count.clamp(min=1)

    def agree(self, value: float) -> float:
        shared = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(shared, src=0)
        return shared.item()


def team(device: torch.device) -> Alone:
    """A :class:`Team` when this process is one of several (torchrun, process group initialised)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Team(device)
    return Alone()
