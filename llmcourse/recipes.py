"""One recipe shape for every model the course trains: the LSTM (notebook 02), the Transformer
(notebook 04), BERT fine-tuning (notebook 05), and the Transformer on BPE tokens with GPT-2's block
or Llama's (notebook 06).

A :class:`Recipe` holds the model's config, the training config, the batch shape and the data
slice, and builds what a notebook or a benchmark needs with the same calls::

    recipe = recipe_for("transformer")            # the recipe for this device and mode
    model = recipe.model()
    loaders = recipe.loaders(ids)                  # {"train", "valid", "test"} from WikiText-2's ids
    history = train(model, loaders["train"], loaders["valid"], recipe.train)
    recipe.perplexities(model, loaders)            # {"valid": ..., "test": ...}

:func:`recipe_kind` picks the kind for the device: ``"quick"`` (CI, ``LLMCOURSE_QUICK=1``: tiny
models, a few steps), ``"cpu"`` (what 2 cores train in a notebook's 15 minutes), ``"gpu"`` (a CUDA
GPU with bf16: A100, H100, L4) and ``"gpu-fp16"`` (a CUDA GPU without bf16, such as Colab's T4:
float16 with a gradient scaler). The two language models of the race train under the same time
budget (:data:`RACE_SECONDS`) on the same device, with the same output layer on a CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .config import get_device, is_quick
from .data import BPTTIterator, LMWindowDataset, batchify
from .precision import bf16_supported
from .training import TrainConfig, evaluate_perplexity
from .transformer import TransformerConfig, TransformerLM

if TYPE_CHECKING:
    from .bert import BertConfig
    from .rnn import RNNConfig

__all__ = ["KINDS", "MODELS", "RACE_SECONDS", "ClassifierConfig", "Recipe", "recipe_kind", "recipe_for"]

KINDS = ("quick", "cpu", "gpu", "gpu-fp16")
MODELS = ("lstm", "transformer", "bert-mlm", "bert", "bert-lora", "gpt-bpe", "llama-bpe")
# The race's clock: both language models train this many seconds on the learner's device.
RACE_SECONDS = {"cpu": 600.0, "gpu": 600.0, "gpu-fp16": 600.0}


def _duration(seconds: float) -> str:
    """A clock as a recipe's note writes it: ``"10 minutes"``, ``"1 minute"``, ``"90 s"``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{round(seconds)} s" if rest or not minutes else f"{minutes} minute{'s' if minutes > 1 else ''}"


@dataclass
class ClassifierConfig:
    """BERT fine-tuning's model: a pretrained checkpoint (None: the course's default, all-MiniLM-L6-v2,
    or ``LLMCOURSE_BERT_MODEL``) with a new classification layer of ``num_labels`` outputs."""

    checkpoint: str | None = None
    num_labels: int = 2
    lora_r: int | None = None  # LoRA's rank (notebook 07): adapters on lora_targets, the rest frozen; None: all trained
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("query", "value")


@dataclass
class Recipe:
    """A trained model of the course: what to build, how to train it, on what batches of which data.

    ``seq_len`` is the window of truncated BPTT (LSTM), the context (Transformer) or the longest
    sentence in tokens (BERT). ``train_limit`` is the data slice: the first tokens of the training
    stream (language models) or a random subset of sentences (BERT); None for all of it.
    ``eval_limit``: validation and test on their first batches only (language models, quick mode) or
    the first dev sentences (BERT); None for all of them. ``tokens_needed``: the training tokens a race
    must give this model for the course's order to show (what it read in the shortest race of
    ``benchmarks/results/race_cpu.json`` in which it beat the model before it); :func:`llmcourse.budget.race_budget` lengthens the budget on a machine too slow
    to read them in the recipe's own.
    """

    name: str
    kind: str
    model_config: RNNConfig | TransformerConfig | BertConfig | ClassifierConfig
    train: TrainConfig
    batch_size: int
    seq_len: int
    eval_batch_size: int = 32
    eval_seq_len: int | None = None  # None: seq_len
    train_limit: int | None = None
    eval_limit: int | None = None
    note: str = ""
    tokens_needed: int | None = None  # the training tokens a race must give it (llmcourse.budget)

    def model(self) -> nn.Module:
        """A freshly initialised model (language models) or the pretrained classifier (BERT)."""
        c = self.model_config  # what a recipe builds is all it imports: a sweep of Transformers loads no other model
        if isinstance(c, TransformerConfig):
            return TransformerLM(c)
        if isinstance(c, ClassifierConfig):  # a pretrained checkpoint and a new head, LoRA's adapters if asked
            from .weights import load_classifier

            model = load_classifier(c.checkpoint, num_labels=c.num_labels)
            if c.lora_r is None:
                return model
            from .lora import add_lora

            return add_lora(model, r=c.lora_r, alpha=c.lora_alpha, target_modules=c.lora_targets)
        from . import rnn

        if isinstance(c, rnn.RNNConfig):
            return rnn.RNNLM(c)
        from . import bert

        if isinstance(c, bert.BertConfig):  # a small encoder of our own, for masked-LM pre-training
            return bert.BertForMaskedLM(c)
        raise TypeError(f"{type(c).__name__}: a recipe builds from a TransformerConfig, RNNConfig, BertConfig or "
                        "ClassifierConfig.")

    def loaders(self, data: Any, *, seed: int = 0) -> dict[str, Any]:
        """The batches of each split.

        Language models: ``data`` maps ``"train"``, ``"valid"`` and ``"test"`` to streams of ids
        ``(n,)`` (what each model reads follows from its config's type, not the recipe's name). The LSTM
        reads the training stream batchified into ``batch_size`` rows, in windows
        of ``seq_len``, state carried across; the Transformer reads shuffled windows of ``seq_len``
        (the generator seeded with ``seed``). Validation and test are read in order, every token
        scored once. BERT: ``data`` is the tokenizer, and the result is SST-2's tokenised ``train``
        and ``dev`` datasets (the ``Trainer`` batches them).
        """
        if isinstance(self.model_config, ClassifierConfig):
            from .finetune import sst2_datasets

            return sst2_datasets(data, n_train=self.train_limit, n_dev=self.eval_limit, seed=seed,
                                 max_length=self.seq_len)
        if not isinstance(self.model_config, TransformerConfig) and isinstance(self.model_config, _bert_config()):
            return self._mlm_loaders(data, seed)
        missing = {"train", "valid", "test"} - set(data)
        if missing:
            raise ValueError(f"loaders() needs the id streams of train, valid and test; {sorted(missing)} missing.")
        train_ids = data["train"] if self.train_limit is None else data["train"][: self.train_limit]
        eval_len = self.eval_seq_len or self.seq_len
        if not isinstance(self.model_config, TransformerConfig):  # the LSTM, stateful: one stream per row, state carried
            return {"train": BPTTIterator(batchify(train_ids, self.batch_size), self.seq_len),
                    **{s: BPTTIterator(batchify(data[s], self.eval_batch_size), eval_len) for s in ("valid", "test")}}
        pin = torch.cuda.is_available()
        generator = torch.Generator().manual_seed(seed)
        return {"train": DataLoader(LMWindowDataset(train_ids, self.seq_len), batch_size=self.batch_size, shuffle=True,
                                    drop_last=True, generator=generator, pin_memory=pin),
                **{s: DataLoader(LMWindowDataset(data[s], eval_len), batch_size=self.eval_batch_size, pin_memory=pin)
                   for s in ("valid", "test")}}

    def _mlm_loaders(self, data: dict[str, Any], seed: int) -> dict[str, Any]:
        """Masked-LM batches of WordPiece ids: ``data`` holds the ``"train"`` and ``"valid"`` id streams and
        the ``"tokenizer"`` whose special ids frame and mask the windows (:class:`llmcourse.bert.MLMBatches`:
        fresh masks every pass, the validation masks fixed by their seed)."""
        from . import bert

        missing = {"train", "valid", "tokenizer"} - set(data)
        if missing:
            raise ValueError(f"The masked-LM recipe's loaders() needs train and valid id streams and the tokenizer; "
                             f"{sorted(missing)} missing.")
        tok = data["tokenizer"]
        special = dict(cls_id=tok.cls_token_id, sep_id=tok.sep_token_id, mask_id=tok.mask_token_id,
                       vocab_size=tok.vocab_size, special_ids=tok.all_special_ids)
        return {"train": bert.MLMBatches(data["train"], seq_len=self.seq_len, batch_size=self.batch_size, seed=seed,
                                         **special),
                "valid": bert.MLMBatches(data["valid"], seq_len=self.seq_len, batch_size=self.eval_batch_size,
                                         shuffle=False, seed=seed + 1, **special)}

    def perplexities(self, model: nn.Module, loaders: dict[str, Any]) -> dict[str, float]:
        """Exact validation and test perplexity (their first ``eval_limit`` batches, if set)."""
        if isinstance(self.model_config, ClassifierConfig):
            raise ValueError("BERT fine-tuning is scored by accuracy, not perplexity: use Trainer.evaluate().")
        return {s: evaluate_perplexity(model, loaders[s], max_batches=self.eval_limit,
                                       precision=self.train.precision) for s in ("valid", "test")}

    def with_budget(self, seconds: float) -> "Recipe":
        """The same recipe trained for ``seconds`` of wall-clock time (the race's clock); its note says
        the new clock where it named the old one."""
        train = dataclasses.replace(self.train, budget_seconds=float(seconds), max_steps=None,
                                    warmup_steps=0, warmup_fraction=self.train.warmup_fraction or 0.02)
        note = self.note
        if self.train.budget_seconds and _duration(self.train.budget_seconds) in note:
            note = note.replace(_duration(self.train.budget_seconds), _duration(seconds))
        return dataclasses.replace(self, train=train, note=note)

    def trainer_arguments(self, output_dir: str | None = None, **overrides):
        """BERT: ``transformers.TrainingArguments`` (:func:`llmcourse.finetune.training_arguments`) with this
        recipe's learning rate, epochs, batch, evaluation interval, warm-up, decay and precision."""
        from .finetune import training_arguments
        from .precision import resolve_precision

        if not isinstance(self.model_config, ClassifierConfig):
            raise ValueError(f"trainer_arguments() is for the BERT recipes; the {self.name} trains with "
                             "llmcourse.training.train.")
        t = self.train
        precision = resolve_precision(t.precision, get_device())
        args = dict(learning_rate=t.lr, num_train_epochs=t.epochs, per_device_train_batch_size=self.batch_size,
                    per_device_eval_batch_size=self.eval_batch_size, eval_strategy="steps", eval_steps=t.eval_every,
                    logging_steps=max(1, t.eval_every // 2), warmup_steps=t.warmup_fraction,
                    weight_decay=t.weight_decay, lr_scheduler_type=t.schedule, bf16=precision == "bf16",
                    fp16=precision == "fp16")
        return training_arguments(output_dir, **(args | overrides))


def recipe_kind(device: torch.device | str | None = None) -> str:
    """``"quick"`` in quick mode; else ``"gpu"`` on a CUDA GPU with bf16, ``"gpu-fp16"`` on one without
    (Colab's T4), ``"cpu"`` elsewhere (an Apple GPU included: it gets the CPU sizes, in fp32)."""
    if is_quick():
        return "quick"
    device = get_device(device)
    if device.type != "cuda":
        return "cpu"
    return "gpu" if bf16_supported(device) else "gpu-fp16"


def recipe_for(name: str, kind: str | None = None, *, vocab_size: int = 33_278,
               device: torch.device | str | None = None) -> Recipe:
    """The course's recipe for ``name`` (one of :data:`MODELS`) of ``kind`` (default: :func:`recipe_kind`
    for ``device``). ``vocab_size`` is the language models' vocabulary: WikiText-2's 33,278 words, or
    the BPE tokenizer's size for ``"gpt-bpe"`` and ``"llama-bpe"``."""
    if name not in MODELS:
        raise ValueError(f"name={name!r}: choose one of {', '.join(map(repr, MODELS))}.")
    kind = kind or recipe_kind(device)
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: choose one of {', '.join(map(repr, KINDS))}.")
    recipe = _RECIPES[name](kind, vocab_size)
    if kind == "gpu-fp16":  # the GPU recipe in float16 with a gradient scaler
        recipe.train.precision = "fp16"
        recipe.note += "; float16 with a gradient scaler (no bf16 on this GPU)"
    return recipe


# --------------------------------------------------------------------------------------------
# The recipes
# --------------------------------------------------------------------------------------------
ADAPTIVE = dict(adaptive_cutoffs=(2_000, 10_000), adaptive_div_value=4.0)  # both CPU models' output layer


def _lstm(kind: str, vocab_size: int) -> Recipe:
    from .rnn import RNNConfig

    if kind == "quick":
        return Recipe("lstm", kind,
                      RNNConfig(vocab_size, "lstm", d_embed=64, d_hidden=64, n_layers=1, dropout=0.1, tie_weights=False,
                                **ADAPTIVE),
                      TrainConfig(max_steps=40, lr=3e-3, warmup_steps=10, eval_every=20, max_eval_batches=20,
                                  log_every=10), batch_size=32, seq_len=35, eval_seq_len=70, train_limit=100_000,
                      eval_limit=60, note="quick mode: a tiny LSTM on the first 100k training tokens")
    if kind == "cpu":
        return Recipe("lstm", kind,
                      # no dropout, as the Transformer: within the race's 1.5 to 3 epochs it slowed learning
                      # (a 300-s probe, 2026-12-07: test 252.1 without, 260.8 with 0.2)
                      RNNConfig(vocab_size, "lstm", d_embed=256, d_hidden=256, n_layers=2, dropout=0.0, tie_weights=False,
                                **ADAPTIVE),
                      # lr and warm-up: the winners of benchmarks/tune.py (the same six trials as the Transformer's)
                      TrainConfig(budget_seconds=RACE_SECONDS["cpu"], lr=3e-3, warmup_fraction=0.1, weight_decay=0.01,
                                  eval_every_seconds=60, log_every=25, precision="fp32"),
                      # batch: the winner of tune.py's second stage (16 sequences: twice the steps of 32 and
                      # four times those of 64 in the same seconds, for 30% fewer tokens a second)
                      batch_size=16, seq_len=35, eval_seq_len=70,
                      note="2 CPU cores: 2-layer 256-unit LSTM, adaptive softmax, 10 minutes of training",
                      # benchmarks/results/race_cpu.json: below the 5-gram already after the 1.94 M tokens of
                      # half the budget (test 204.3 against 220.1)
                      tokens_needed=1_941_520)
    return Recipe("lstm", kind,
                  RNNConfig(vocab_size, "lstm", d_embed=650, d_hidden=650, n_layers=2, dropout=0.5, tie_weights=True),
                  TrainConfig(budget_seconds=RACE_SECONDS["gpu"], lr=2e-3, warmup_fraction=0.02, weight_decay=0.1,
                              eval_every_seconds=30, log_every=50, precision="auto"),
                  batch_size=32, seq_len=35, eval_seq_len=70,
                  note="one GPU: tied 2-layer 650-unit LSTM (PyTorch word-language-model sizes), AdamW, 10 minutes")


def _transformer(kind: str, vocab_size: int) -> Recipe:
    if kind == "quick":
        return Recipe("transformer", kind,
                      TransformerConfig(vocab_size, max_context=32, d_model=64, n_layers=2, n_heads=2, dropout=0.1,
                                        attn_dropout=0.1, tie_weights=False, **ADAPTIVE),
                      TrainConfig(max_steps=40, lr=3e-3, warmup_steps=5, eval_every=20, max_eval_batches=5,
                                  log_every=5), batch_size=16, seq_len=32, train_limit=200_000, eval_limit=8,
                      note="quick mode: a tiny Transformer on the first 200k training tokens")
    if kind == "cpu":
        return Recipe("transformer", kind,
                      TransformerConfig(vocab_size, max_context=128, d_model=128, n_layers=4, n_heads=4, dropout=0.0,
                                        attn_dropout=0.0, tie_weights=False, **ADAPTIVE),
                      # lr and warm-up: the winners of benchmarks/tune.py (the same six trials as the LSTM's)
                      TrainConfig(budget_seconds=RACE_SECONDS["cpu"], lr=5e-3, warmup_fraction=0.15, weight_decay=0.1,
                                  betas=(0.9, 0.98), eval_every_seconds=60, log_every=25, precision="fp32"),
                      # batch: the winner of tune.py's second stage, as for the LSTM
                      batch_size=16, seq_len=128, eval_batch_size=32,
                      note="2 CPU cores: 4 layers, d_model 128, context 128, the LSTM's adaptive softmax, "
                           "no dropout, 10 minutes of training",
                      # benchmarks/results/race_cpu.json: below the LSTM already at half the budget (191.6)
                      tokens_needed=2_646_016)
    return Recipe("transformer", kind,
                  TransformerConfig(vocab_size, max_context=256, d_model=512, n_layers=6, n_heads=8, dropout=0.3,
                                    attn_dropout=0.2),
                  TrainConfig(budget_seconds=RACE_SECONDS["gpu"], lr=1e-3, warmup_fraction=0.05, weight_decay=0.1,
                              betas=(0.9, 0.95), eval_every_seconds=30, log_every=50, precision="auto", compile="auto"),
                  batch_size=32, seq_len=256, eval_batch_size=64,
                  note="one GPU: 6 layers, d_model 512, context 256, tied, dropout 0.3, torch.compile where it works, "
                       "10 minutes")


def _bert(kind: str, vocab_size: int) -> Recipe:
    del vocab_size  # the checkpoint's tokenizer decides
    sizes = {  # n_train (None: all 67,349 phrases), epochs, batch, lr, eval every, dev phrases (None: all 872)
        "quick": (256, 1, 16, 2e-4, 8, 128),
        "cpu": (20_000, 1, 16, 1e-4, 250, None),
        "gpu": (None, 3, 32, 2e-5, 500, None),  # bert-base-uncased on a GPU: Devlin et al.'s SST-2 settings
    }
    n_train, epochs, batch, lr, eval_every, n_dev = sizes["gpu" if kind == "gpu-fp16" else kind]
    notes = {"quick": "quick mode: 256 phrases, one epoch",
             "cpu": "2 CPU cores: a random 20,000 of the 67,349 training phrases, one epoch",
             "gpu": "one GPU: the whole training set, three epochs", "gpu-fp16": "one GPU: the whole training set, "
                                                                           "three epochs"}
    return Recipe("bert", kind, ClassifierConfig(),
                  TrainConfig(epochs=epochs, lr=lr, weight_decay=0.01, warmup_fraction=0.1, eval_every=eval_every,
                              schedule="linear", min_lr_ratio=0.0, precision="auto" if kind.startswith("gpu") else "fp32"),
                  batch_size=batch, seq_len=128, eval_batch_size=128, train_limit=n_train, eval_limit=n_dev,
                  note=notes[kind])


def _bert_config() -> type:
    """:class:`llmcourse.bert.BertConfig`, imported when a recipe asks (the language models' never do)."""
    from .bert import BertConfig

    return BertConfig


def _bert_mlm(kind: str, vocab_size: int) -> Recipe:
    """Notebook 05's small masked-LM pre-training run on WikiText-2 (WordPiece ids): an encoder of our own from
    random weights. ``train_limit`` is the lines of the training text read (None: all); ``vocab_size`` is the
    tokenizer's."""
    sizes = {  # lines, seq_len, batch, steps, hidden size, layers, heads, lr
        "quick": (2_000, 64, 16, 40, 64, 2, 2, 3e-3),
        "cpu": (12_000, 64, 32, 400, 192, 3, 3, 1e-3),
        "gpu": (None, 128, 128, 5_000, 256, 4, 4, 1e-3),
    }
    lines, seq_len, batch, steps, hidden, layers, heads, lr = sizes["gpu" if kind.startswith("gpu") else kind]
    config = _bert_config()(vocab_size=vocab_size, max_context=seq_len, d_model=hidden, n_layers=layers,
                        n_heads=heads, d_ff=4 * hidden)
    train = TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, steps // 10), eval_every=max(10, steps // 4),
                        max_eval_batches=10, log_every=max(1, steps // 40),
                        precision="auto" if kind.startswith("gpu") else "fp32")
    where = {"quick": "quick mode", "cpu": "2 CPU cores", "gpu": "one GPU", "gpu-fp16": "one GPU"}[kind]
    return Recipe("bert-mlm", kind, config, train, batch_size=batch, seq_len=seq_len, eval_batch_size=64,
                  train_limit=lines, note=f"{where}: {f'{lines:,} lines' if lines else 'all'} of WikiText-2's training "
                                         f"text, {steps:,} steps of {batch} windows of {seq_len} WordPiece tokens")


def _bpe(block: str):
    """Notebook 06's Transformer on BPE tokens: notebook 04's sizes and training (the race's clock), with
    a tied full softmax over the BPE vocabulary (small enough not to need an adaptive one, and what
    ``to_gpt2`` / ``to_llama`` export). ``block``: ``"gpt"`` (GPT-2's: learned positions, LayerNorm, GELU)
    or ``"llama"`` (rotary positions, RMSNorm, SwiGLU whose hidden size keeps the parameter count)."""

    def recipe(kind: str, vocab_size: int) -> Recipe:
        base = _transformer(kind, 33_278)  # its sizes and training; the output layer is replaced below
        c = base.model_config
        sizes = dict(max_context=c.max_context, d_model=c.d_model, n_layers=c.n_layers, n_heads=c.n_heads,
                     dropout=c.dropout, attn_dropout=c.attn_dropout, tie_weights=True)
        if block == "llama":  # SwiGLU's d_ff defaults to 8/3 d_model: three matrices with GPT-2's two's weights
            config = TransformerConfig.llama(vocab_size, **sizes)
            what = "Llama's block (RoPE, RMSNorm, SwiGLU)"
        else:
            config = TransformerConfig(vocab_size, **sizes)
            what = "GPT-2's block"
        note = base.note.replace("the LSTM's adaptive softmax", "a tied softmax")
        train = base.train
        if kind == "cpu":  # validate on the first 20 batches (82k tokens): the whole split costs 12 s a time
            train = dataclasses.replace(train, max_eval_batches=20)  # (validation is off the clock either way)
            note += ", validation during training on its first 20 batches"
        return dataclasses.replace(base, name=f"{block}-bpe", model_config=config, train=train, tokens_needed=None,
                                   note=f"{note}; BPE tokens ({vocab_size:,}); {what}")  # no BPE race measured a need

    return recipe


def _bert_lora(kind: str, vocab_size: int) -> Recipe:
    """Notebook 07: notebook 05's recipe with LoRA (rank 8 on the query and value projections, the head
    trained in full) and a higher learning rate, as usual for LoRA: the adapters start at zero and few
    weights move. Data, epochs and batch are the full fine-tuning's. On 4,000 phrases with MiniLM (2-core
    CPU, 2026-12-02), dev accuracy was 78.3% at lr 5e-4, 80.3% at 1e-3 and 81.3% at 2e-3: 2e-3 it is.
    The GPU's 2e-4 (bert-base-uncased) is the LoRA paper's order for models of that size, not measured."""
    base = _bert(kind, vocab_size)
    train = dataclasses.replace(base.train, lr=2e-3 if kind in ("quick", "cpu") else 2e-4)
    return dataclasses.replace(base, name="bert-lora", model_config=ClassifierConfig(lora_r=8), train=train,
                               note=base.note + "; LoRA rank 8 on query and value, the head trained in full")


_RECIPES = {"lstm": _lstm, "transformer": _transformer, "bert-mlm": _bert_mlm, "bert": _bert, "bert-lora": _bert_lora, "gpt-bpe": _bpe("gpt"),
            "llama-bpe": _bpe("llama")}
