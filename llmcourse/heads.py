"""The output layer of the course's language models: features → a distribution over the vocabulary.

Both neural language models (the LSTM of notebook 02, the Transformer of notebook 04) end with the
same :class:`OutputLayer`, so that a race between them compares their bodies, not their heads:

* a **full softmax**: one linear layer scoring every word, optionally tied to the input embedding
  (the output is then the logits, ``(..., vocab)``);
* an **adaptive softmax** (Grave et al. 2017, ``nn.AdaptiveLogSoftmaxWithLoss``): frequent words in
  a small head, rare words in cheaper tail clusters, several times faster over a 33,278-word
  vocabulary on a CPU. The vocabulary must be sorted by frequency (``wikitext2_vocab`` is). The
  output is then the features themselves, ``(..., d)``, and the layer turns them into
  log-probabilities or a loss. Both are exact: the log-probabilities over the vocabulary sum to 1.

The layer's two methods are what the training loop, perplexity and decoding use:
:meth:`OutputLayer.loss` (summed negative log-likelihood and the count of scored tokens, positions
holding ``-100`` ignored) and :meth:`OutputLayer.log_probs`. :func:`lm_loss` is the full-softmax
loss on its own. Taught in notebook 02 (the adaptive softmax) and used unchanged in notebook 04.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["lm_loss", "check_cutoffs", "output_layer_size", "OutputLayer"]


def lm_loss(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy over the positions whose target is not ``-100``, and their count.

    ``logits``: ``(batch, time, vocab)``; ``y``: ``(batch, time)``. Computed in float32 even under
    autocast, so that perplexities do not depend on the precision of the forward pass.
    """
    total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1),
                            ignore_index=-100, reduction="sum")
    return total, (y != -100).sum()


def check_cutoffs(cutoffs: tuple[int, ...] | list[int] | None, vocab_size: int, tie_weights: bool) -> tuple[int, ...] | None:
    """Validate a model config's ``adaptive_cutoffs`` (a JSON list comes back as a tuple)."""
    if cutoffs is None:
        return None
    cutoffs = tuple(int(c) for c in cutoffs)
    if list(cutoffs) != sorted(set(cutoffs)) or not (0 < cutoffs[0] and cutoffs[-1] < vocab_size):
        raise ValueError(f"adaptive_cutoffs={cutoffs} must increase strictly, between 1 and "
                         f"vocab_size - 1 = {vocab_size - 1}.")
    if tie_weights:
        raise ValueError("tie_weights=True needs the full softmax: the adaptive softmax has its own "
                         "output projections. Set tie_weights=False or adaptive_cutoffs=None.")
    return cutoffs


def output_layer_size(d: int, vocab_size: int, cutoffs: tuple[int, ...] | None = None, div_value: float = 4.0,
                      bias: bool = True) -> int:
    """Weights of an untied :class:`OutputLayer`, from the formula: ``d · V (+ V)`` for a full softmax;
    for an adaptive one a head of ``d · (c_0 + n_clusters)`` and, for tail cluster ``i`` of ``n_i``
    words, a projection to ``d_i = d / div^(i+1)`` features and a layer ``d_i · n_i``.

    Each weight is used once per token (the tails only for tokens of their cluster, and for every
    token when all log-probabilities are computed), so this is also the output layer's share of the
    ``N`` in "2 N FLOPs per token, forward".
    """
    if cutoffs is None:
        return d * vocab_size + (vocab_size if bias else 0)
    edges = [*cutoffs, vocab_size]
    total = d * (edges[0] + len(cutoffs))
    for i in range(len(cutoffs)):
        d_i = int(d // (div_value ** (i + 1)))
        total += d * d_i + d_i * (edges[i + 1] - edges[i])
    return total


class OutputLayer(nn.Module):
    """A full softmax (``cutoffs=None``) or an adaptive softmax over ``vocab_size`` words.

    ``forward(features)``: ``(..., d)`` → logits ``(..., vocab)`` (full softmax) or the features
    unchanged (adaptive). ``tie_to`` (an ``nn.Embedding`` of shape ``(vocab, d)``) shares the full
    softmax's weight with the input embedding.
    """

    def __init__(self, d: int, vocab_size: int, cutoffs: tuple[int, ...] | None = None, *, div_value: float = 4.0,
                 bias: bool = True, tie_to: nn.Embedding | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.linear: nn.Linear | None = None
        self.adaptive: nn.AdaptiveLogSoftmaxWithLoss | None = None
        if cutoffs is not None:
            if tie_to is not None:
                raise ValueError("An adaptive softmax cannot be tied to the embedding: it has its own projections.")
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(d, vocab_size, list(cutoffs), div_value=div_value)
        else:
            self.linear = nn.Linear(d, vocab_size, bias=bias)
            if tie_to is not None:
                self.linear.weight = tie_to.weight  # one matrix: word vectors in and out

    @property
    def is_adaptive(self) -> bool:
        return self.adaptive is not None

    def forward(self, features: Tensor) -> Tensor:
        return features if self.linear is None else self.linear(features)

    def loss(self, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Summed negative log-likelihood of the targets ``y`` (``-100`` ignored) and their count.

        ``output`` is :meth:`forward`'s; ``y`` has its shape less the last dimension.
        """
        if self.adaptive is None:
            return lm_loss(output, y)
        flat, targets = output.reshape(-1, output.size(-1)).float(), y.reshape(-1)
        keep = targets != -100
        if not bool(keep.all()):
            flat, targets = flat[keep], targets[keep]
        if targets.numel() == 0:
            return flat.sum() * 0.0, keep.sum()
        # .output is log P(target) under the full (adaptive) distribution: exact, not an approximation
        return -self.adaptive(flat, targets).output.sum(), keep.sum()

    def log_probs(self, output: Tensor) -> Tensor:
        """Log-probabilities over the whole vocabulary: ``(..., vocab)``, each row summing to 1 in probability."""
        if self.adaptive is None:
            return F.log_softmax(output.float(), dim=-1)
        flat = output.reshape(-1, output.size(-1)).float()
        return self.adaptive.log_prob(flat).view(*output.shape[:-1], self.vocab_size)
