"""What a language model is: the chain rule, next-token probabilities, perplexity (notebook 00).

A language model gives a probability to every sequence of tokens by the chain rule,
``P(w_1..w_n) = prod_t P(w_t | w_<t)``, so it is enough to predict the next token. Its quality on
held-out text is the perplexity: the exponential of the average negative log-likelihood per token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn


__all__ = [
    "sequence_log_prob",
    "perplexity",
    "per_word_perplexity",
    "BigramConfig",
    "BigramLM",
]


def sequence_log_prob(step_probs: Iterable[float]) -> float:
    """Natural log of a sequence's probability from the probability of each token given its past:
    ``log P(w_1..w_n) = sum_t log P(w_t | w_<t)``. A zero probability gives ``-inf``."""
    total = 0.0
    for p in step_probs:
        if p < 0 or p > 1:
            raise ValueError(f"{p} is not a probability.")
        if p == 0:
            return -math.inf
        total += math.log(p)
    return total


def perplexity(log_probs: Sequence[float] | Tensor) -> float:
    """Perplexity from per-token natural-log probabilities: ``exp(-mean(log_probs))``.

    A model that spreads its probability evenly over ``k`` words has perplexity ``k``; a token the
    model thought impossible (log-probability ``-inf``) makes the perplexity infinite.
    """
    values = torch.as_tensor(log_probs, dtype=torch.float64).flatten()
    if values.numel() == 0:
        raise ValueError("The perplexity of no tokens is undefined: pass at least one log-probability.")
    if values.isnan().any():
        raise ValueError(f"{int(values.isnan().sum())} of the {values.numel()} log-probabilities are NaN: the model "
                         "or the data produced an undefined score (a NaN weight, a 0 * log 0); find it before "
                         "reporting a perplexity.")
    if (values > 0).any():
        raise ValueError("Log-probabilities are at most 0; did you pass probabilities or losses instead?")
    return math.exp(-values.mean().item())


def per_word_perplexity(total_nll: float, n_words: int) -> float:
    """Perplexity per *word* of a text, whatever the model's tokens: ``exp(total_nll / n_words)``.

    ``total_nll`` is the negative log-likelihood (nats) the model gave the whole text, summed over its
    tokens (subwords, words or characters); ``n_words`` is the text's length in the course's words, one
    ``<eos>`` per line included. A text's probability does not depend on how it is cut into tokens, so
    this number is comparable across tokenizers; per-*token* perplexities are not (notebook 06).
    """
    if not (isinstance(total_nll, (int, float)) and math.isfinite(total_nll) and total_nll >= 0):
        raise ValueError(f"total_nll={total_nll!r}: a negative log-likelihood is a finite number >= 0 (nats).")
    if not (isinstance(n_words, int) and n_words >= 1):
        raise ValueError(f"n_words={n_words!r}: give the number of words scored (>= 1).")
    return math.exp(total_nll / n_words)


@dataclass
class BigramConfig:
    vocab_size: int
    d_model: int = 64
    tie_weights: bool = False  # share the input embedding with the output layer


class BigramLM(nn.Module):
    """The smallest neural language model: the next token depends on the current one only.

    An embedding of the current token followed by a linear layer over the vocabulary (a factorised
    bigram table). ``x: (batch, time)`` → ``logits: (batch, time, vocab_size)``.
    """

    config_class = BigramConfig

    def __init__(self, config: BigramConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.out = nn.Linear(config.d_model, config.vocab_size)
        if config.tie_weights:
            self.out.weight = self.embed.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.embed(x))
