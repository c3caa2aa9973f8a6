"""BERT from scratch: masked language modelling and an encoder that *is* BERT (notebook 05).

* :func:`mask_tokens` is BERT's pre-training corruption: pick 15% of the (non-special) tokens to
  predict; of those, 80% become ``[MASK]``, 10% a random token and 10% stay as they are
  (:func:`apply_mask_rule` is the 80/10/10 rule on its own, and an exercise); :class:`MLMBatches`
  masks windows of a stream afresh at every pass.
* :class:`BertEncoder` is a post-LN Transformer encoder (GELU feed-forward, word + position +
  token-type embeddings) built on :class:`llmcourse.attention.MultiHeadAttention`. It loads the
  weights of any Hugging Face ``BertModel`` (:meth:`BertEncoder.from_pretrained`) and then gives
  the same hidden states (tests prove it to 1e-4). :class:`BertForMaskedLM` adds the MLM head for
  the small pre-training run of the notebook, trained with :func:`llmcourse.training.train`.
  :class:`BertConfig` names its fields as :class:`llmcourse.transformer.TransformerConfig` does
  (``d_model``, ``d_ff``, ``max_context``, ``attn_dropout``); :meth:`BertConfig.from_hf` maps
  ``transformers``' names.

Which checkpoint, and loading it with ``transformers`` (``choose_model``, ``resolve_model``,
``load_tokenizer``, ``load_encoder``, ``load_classifier``, ``missing_mlm_head``), are
:mod:`llmcourse.weights`, whose names this module also gives; fine-tuning on SST-2 with ``Trainer`` and
probing the frozen features are :mod:`llmcourse.finetune`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .attention import MultiHeadAttention
from .weights import (DEFAULT_MODEL, ENV_MODEL, GPU_MODEL, LICENCES, ModelChoice, ModelNotFound,  # noqa: F401
                      choose_model, load_classifier, load_encoder, load_tokenizer, missing_mlm_head, resolve_model)

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
    "load_encoder",
    "load_classifier",
    "missing_mlm_head",
    "apply_mask_rule",
    "mask_tokens",
    "MLMBatches",
    "BertConfig",
    "BertEncoder",
    "BertForMaskedLM",
    "mlm_from_pretrained",
    "masked_features",
    "masked_states",
    "train_mlm_head",
    "fill_mask_accuracy",
    "frequency_baseline",
]

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
    max_context: int = 512  # positions (max_position_embeddings)
    d_model: int = 384  # hidden_size
    n_layers: int = 6
    n_heads: int = 12
    d_ff: int = 1536  # intermediate_size
    dropout: float = 0.1  # on embeddings and sub-layer outputs (hidden_dropout_prob)
    attn_dropout: float = 0.1  # on attention weights (attention_probs_dropout_prob)
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    # the names of transformers' BertConfig, which this class used before it took TransformerConfig's
    RENAMED: ClassVar[dict[str, str]] = {"hidden_size": "d_model", "intermediate_size": "d_ff",
                                         "max_position": "max_context", "attention_dropout": "attn_dropout"}

    @classmethod
    def from_hf(cls, hf_config: Any) -> "BertConfig":
        """From a ``transformers`` ``BertConfig`` (absolute positions and GELU only)."""
        if getattr(hf_config, "position_embedding_type", "absolute") != "absolute":
            raise ValueError("Only absolute position embeddings are built here.")
        if hf_config.hidden_act not in {"gelu", "gelu_new", "gelu_pytorch_tanh"}:
            raise ValueError(f"hidden_act={hf_config.hidden_act!r}: only GELU is built here.")
        return cls(vocab_size=hf_config.vocab_size, max_context=hf_config.max_position_embeddings,
                   d_model=hf_config.hidden_size, n_layers=hf_config.num_hidden_layers,
                   n_heads=hf_config.num_attention_heads, d_ff=hf_config.intermediate_size,
                   dropout=hf_config.hidden_dropout_prob, attn_dropout=hf_config.attention_probs_dropout_prob,
                   type_vocab_size=hf_config.type_vocab_size, layer_norm_eps=hf_config.layer_norm_eps,
                   pad_token_id=hf_config.pad_token_id or 0)


class BertEmbeddings(nn.Module):
    """word + position + token type, then LayerNorm and dropout: ``(batch, time)`` ids -> ``(batch, time, hidden)``."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.position = nn.Embedding(c.max_context, c.d_model)
        self.token_type = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
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
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, dropout=c.attn_dropout)
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.ff_in = nn.Linear(c.d_model, c.d_ff)
        self.ff_out = nn.Linear(c.d_ff, c.d_model)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
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

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None, *,
                n_layers: int | None = None) -> Tensor:
        """The hidden states after the first ``n_layers`` layers (all by default; 0: the embeddings)."""
        x = self.embeddings(ids, token_type_ids)  # ids: (batch, time) -> x: (batch, time, hidden)
        mask = None if attention_mask is None else attention_mask.bool()  # (batch, time), True at real tokens
        for layer in self.layers[:n_layers]:
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
        return cls.from_hf(load_encoder(name))


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
        self.transform = nn.Linear(config.d_model, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.read_layer: int | None = None  # the head reads the states after this many layers (None: the last)
        self.apply(self._init)

    def reset_head(self, seed: int = 0) -> "BertForMaskedLM":
        """Draw the head (dense layer, LayerNorm, output bias) afresh, as at construction, from ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in (self.transform, self.norm):
                module.reset_parameters()
            self._init(self.transform)
            nn.init.zeros_(self.bias)
        return self

    @staticmethod
    def _init(m: nn.Module) -> None:  # BERT's initialisation: N(0, 0.02)
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.encoder(ids, attention_mask, n_layers=self.read_layer)

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
# Filling masks with a pretrained encoder: a new MLM head trained on its frozen features
# --------------------------------------------------------------------------------------------
def mlm_from_pretrained(name: str | None = None) -> BertForMaskedLM:
    """A :class:`BertForMaskedLM` whose encoder is the pretrained checkpoint's (``name`` as in
    :func:`resolve_model`), frozen, and whose head is new: all-MiniLM-L6-v2 ships no masked-LM head
    (:func:`missing_mlm_head`), so it cannot fill a mask until one is trained (:func:`train_mlm_head`)."""
    encoder = BertEncoder.from_pretrained(name)
    model = BertForMaskedLM(encoder.config)
    model.encoder = encoder.requires_grad_(False)
    return model


@torch.no_grad()
def masked_states(model: BertForMaskedLM, batches: Iterable, layers: Sequence[int], *, mask_id: int | None = None,
                  max_batches: int | None = None, progress: bool = False) -> tuple[dict[int, Tensor], Tensor]:
    """The encoder's hidden states after each number of layers in ``layers`` (0: the embeddings) at every
    position to predict, ``{layer: (n, d_model)}``, and the words there, ``(n,)``, from masked batches
    ``(inputs, labels)`` (:class:`MLMBatches`), in one pass. With the encoder frozen they are computed once,
    and a head trains on them in seconds.

    ``mask_id``: keep only the positions whose input is that id (``[MASK]``), where the word is truly hidden;
    without it every selected position counts, the 10% left unchanged (the word in plain sight) included."""
    from tqdm.auto import tqdm

    layers = [checks.whole("layer", k, least=0) for k in layers]
    if not layers or max(layers) > model.config.n_layers:
        raise ValueError(f"layers must name at least one layer, each from 0 (the embeddings) to "
                         f"{model.config.n_layers} (the encoder's last); got {list(layers)}.")
    was = model.training
    model.eval()
    device = model.bias.device
    states, words = {k: [] for k in layers}, []
    total = len(batches) if max_batches is None else min(len(batches), max_batches)
    for b, (inputs, labels) in enumerate(tqdm(batches, total=total, desc="encoding", disable=not progress)):
        if max_batches is not None and b >= max_batches:
            break
        inputs, labels = inputs.to(device), labels.to(device)
        keep = labels != -100
        if mask_id is not None:
            keep &= inputs == mask_id
        hidden = model.encoder.embeddings(inputs)
        for k in range(max(layers) + 1):
            if k:
                hidden = model.encoder.layers[k - 1](hidden, None)
            if k in states:
                states[k].append(hidden[keep].float().cpu())
        words.append(labels[keep].cpu())
    model.train(was)
    return {k: torch.cat(v) for k, v in states.items()}, torch.cat(words)


def masked_features(model: BertForMaskedLM, batches: Iterable, *, max_batches: int | None = None,
                    mask_id: int | None = None, progress: bool = False) -> tuple[Tensor, Tensor]:
    """:func:`masked_states` at the layer the head reads (``model.read_layer``; the last by default)."""
    layer = model.config.n_layers if model.read_layer is None else model.read_layer
    states, words = masked_states(model, batches, [layer], mask_id=mask_id, max_batches=max_batches,
                                  progress=progress)
    return states[layer], words


def train_mlm_head(model: BertForMaskedLM, features: Tensor, words: Tensor, *, steps: int = 500,
                   batch_size: int = 256, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train the MLM head (dense, LayerNorm, output bias; the output matrix is the frozen word embeddings)
    on precomputed ``features`` and ``words`` with AdamW; returns the loss of each step."""
    checks.whole("steps", steps)
    head = [model.transform.weight, model.transform.bias, model.norm.weight, model.norm.bias, model.bias]
    for p in head:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(head, lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    device = model.bias.device
    losses = []
    for _ in range(steps):
        pick = torch.randint(len(words), (batch_size,), generator=g)
        logits = model.logits(features[pick].to(device))
        loss = F.cross_entropy(logits, words[pick].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def fill_mask_accuracy(model: BertForMaskedLM, features: Tensor, words: Tensor, ks: Sequence[int] = (1, 5),
                       batch_size: int = 1024) -> dict[int, float]:
    """The fraction of masked positions whose word is among the head's ``k`` best guesses, for each ``k``."""
    hits = {k: 0 for k in ks}
    for i in range(0, len(words), batch_size):
        top = model.logits(features[i:i + batch_size].to(model.bias.device)).topk(max(ks), dim=-1).indices.cpu()
        for k in ks:
            hits[k] += int((top[:, :k] == words[i:i + batch_size, None]).any(-1).sum())
    return {k: hits[k] / len(words) for k in ks}


def frequency_baseline(train_words: Tensor, test_words: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """The same accuracies for the guess that ignores the context: the ``k`` words most often masked in training."""
    top = torch.bincount(train_words).topk(max(ks)).indices
    return {k: float(torch.isin(test_words, top[:k]).float().mean()) for k in ks}
