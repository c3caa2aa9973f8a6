"""Beyond one machine: the course's training loop on several processes, with PyTorch's
``DistributedDataParallel`` (DDP), launched by ``torchrun``.

Every process holds a whole copy of the model and reads its own share of each batch; in backward,
DDP averages the gradients of all processes, so that every copy takes the same step and the copies
stay equal. :func:`llmcourse.training.train` does this by itself once the process group exists.
What a learner changes in a training script:

* **the launch**: ``torchrun --nproc_per_node=2 -m llmcourse.distributed --steps 200 --batch-size 16
  --out runs/ddp`` starts two processes and gives each its ``RANK``, ``LOCAL_RANK`` and
  ``WORLD_SIZE``; :func:`setup` joins them into one process group (gloo on CPUs, NCCL on GPUs);
* **the sampler**: :func:`distributed_loader` gives process ``r`` of ``N`` the windows
  ``perm[r::N]`` of one shuffle that all processes draw alike; the loop calls ``set_epoch`` on it
  so that each epoch is shuffled anew, the same way on every process;
* **the effective batch** is ``batch_size × N``: to keep a recipe's batch, give each process
  ``batch // N`` (:func:`per_process_batch`); to grow it instead, the learning rate usually has to
  grow too;
* **rank 0 alone** shows the progress bar, prints and saves (:func:`is_main_process`); every
  process keeps the same :class:`~llmcourse.training.History`.

Only PyTorch's own pieces are used: ``torchrun`` starts and watches the processes,
``torch.distributed`` joins them, ``DistributedSampler`` shares the data. Taught in notebook 07.
"""

from __future__ import annotations

import argparse
import hashlib
import numbers
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from .config import get_device, seed_everything
from .data import LMWindowDataset
from .training import History, TrainConfig, save_checkpoint, train
from .transformer import TransformerConfig, TransformerLM

__all__ = [
    "setup",
    "cleanup",
    "rank",
    "local_rank",
    "world_size",
    "is_main_process",
    "device",
    "placement",
    "processes_per_machine",
    "per_process_batch",
    "distributed_loader",
    "synthetic_ids",
    "main",
]

# what torchrun sets in every process it starts; init_process_group("env://") reads them
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def setup(backend: str | None = None) -> bool:
    """Join the processes that ``torchrun`` started: ``init_process_group`` from its environment
    variables, with ``backend`` ``"nccl"`` on CUDA GPUs (each process on GPU ``LOCAL_RANK``) and
    ``"gloo"`` on CPUs by default. Returns True when this process is one of a group, False (and does
    nothing) when it was not launched by ``torchrun``: the same script then trains on one process."""
    found = [name for name in TORCHRUN_VARIABLES if name in os.environ]
    if not found:
        return False
    if len(found) < len(TORCHRUN_VARIABLES):
        missing = ", ".join(name for name in TORCHRUN_VARIABLES if name not in os.environ)
        raise RuntimeError(f"{', '.join(found)} set but {missing} missing: launch the script with torchrun "
                           "(torchrun --nproc_per_node=2 -m llmcourse.distributed ...), which sets all of them, "
                           "or unset them to train on one process.")
    if not dist.is_available():
        raise RuntimeError("This PyTorch build has no torch.distributed: install a standard build to train "
                           "on several processes.")
    if dist.is_initialized():
        return True
    backend = backend or ("nccl" if device().type == "cuda" else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank())  # before the group, so that NCCL binds each process to its GPU
    dist.init_process_group(backend)
    return True


def cleanup() -> None:
    """Leave the process group (at the end of a script launched by ``torchrun``); nothing without one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _in_group() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's number in the group, 0 to ``world_size() - 1``; 0 without a group."""
    return dist.get_rank() if _in_group() else 0


def local_rank() -> int:
    """This process's number on its machine (the GPU it uses), from ``torchrun``'s ``LOCAL_RANK``; 0 without it."""
    return int(os.environ.get("LOCAL_RANK", 0))


def world_size() -> int:
    """How many processes train together; 1 without a group."""
    return dist.get_world_size() if _in_group() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that prints and saves (and on a process without a group)."""
    return rank() == 0


def processes_per_machine() -> int:
    """How many processes ``torchrun`` started on this machine (its ``LOCAL_WORLD_SIZE``); 1 without it."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))


def placement(nproc: int) -> tuple[str, str]:
    """Where ``nproc`` processes on this machine train, and why: ``("cuda", why)`` when each can have a
    GPU of its own (NCCL), else ``("cpu", why)`` (gloo): no GPU, one GPU for two processes (Colab), or an
    Apple GPU, which no DDP backend serves. Every process decides alike, so they all agree."""
    chosen = get_device()
    if chosen.type == "cuda":
        count = torch.cuda.device_count()
        if count >= nproc:
            return "cuda", f"{nproc} processes on {nproc} of this machine's {count} GPUs (NCCL)"
        return "cpu", (f"{nproc} processes on the CPU (gloo): this machine has {count} GPU{'s' * (count != 1)}, and "
                       "DDP gives each process a GPU of its own")
    if chosen.type == "mps":
        return "cpu", f"{nproc} processes on the CPU (gloo): no DDP backend serves an Apple GPU"
    return "cpu", f"{nproc} processes on the CPU (gloo)"


def device() -> torch.device:
    """The device of this process. Under ``torchrun``: GPU ``LOCAL_RANK`` where every process on this
    machine can have a GPU of its own, else the CPU (:func:`placement`); without it, what
    :func:`llmcourse.config.get_device` picks."""
    chosen = get_device()
    if "RANK" not in os.environ:
        return chosen
    if placement(processes_per_machine())[0] == "cuda":
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def per_process_batch(global_batch_size: int, world: int | None = None) -> int:
    """The batch each of ``world`` processes (default: :func:`world_size`) reads so that together they
    read ``global_batch_size`` windows a step: a recipe's batch kept on several GPUs."""
    world = world_size() if world is None else world
    if not _whole(global_batch_size) or not _whole(world):
        raise ValueError(f"global_batch_size={global_batch_size!r}, world={world!r}: give whole numbers >= 1.")
    if global_batch_size % world:
        lower = global_batch_size - global_batch_size % world
        raise ValueError(f"A batch of {global_batch_size} does not divide among {world} processes: choose a "
                         f"multiple of {world} (e.g. {lower or world}), or give each process its own "
                         f"batch (--batch-size).")
    return global_batch_size // world


def distributed_loader(dataset: Dataset, batch_size: int, *, seed: int, shuffle: bool = True) -> DataLoader:
    """Batches of this process's share of ``dataset`` (items ``(x, y)``, each ``(time,)``): a
    ``DataLoader`` of ``batch_size`` windows ``(batch_size, time)`` over a ``DistributedSampler``.

    All processes draw the same permutation of the dataset (``seed`` plus the epoch, which
    :func:`~llmcourse.training.train` sets each epoch); process ``r`` of ``N`` takes ``perm[r::N]``,
    so that the ``k``-th batches of all processes are together ``perm[k·N·B : (k+1)·N·B]``: the batch
    of one process reading ``perm`` in order with ``N·B`` windows. The effective batch is
    ``batch_size × N``. Windows left over (fewer than ``N·B``) are dropped, so that every process
    takes the same number of steps. Without a process group (``N = 1``) it is a plain shuffled loader.
    """
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise TypeError(f"distributed_loader needs a dataset with a length and items by index (such as "
                        f"LMWindowDataset), not a {type(dataset).__name__}: a stream cannot be shared out by "
                        "index. Split the stream yourself, or build LMWindowDataset(ids, seq_len).")
    if not _whole(batch_size):
        raise ValueError(f"batch_size={batch_size!r}: give a whole number of windows per process >= 1.")
    world = world_size()
    if len(dataset) < batch_size * world:
        raise ValueError(f"{len(dataset)} windows are too few for one batch of {batch_size} on each of {world} "
                         "processes: use more data or a smaller batch_size.")
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank(), shuffle=shuffle, seed=seed,
                                 drop_last=True)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                      pin_memory=torch.cuda.is_available())


def synthetic_ids(n: int, vocab_size: int, *, seed: int = 0) -> Tensor:
    """A stream of ``n`` ids ``(n,)`` to train on without any data set: word ``k`` drawn with a
    probability that falls as ``1 / (k+1)²`` (frequent words first, as a frequency-sorted vocabulary
    has them), and followed by its fixed successor half the time, so that there is something to learn."""
    if not _whole(n) or not _whole(vocab_size):
        raise ValueError(f"n={n!r}, vocab_size={vocab_size!r}: give whole numbers >= 1.")
    g = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, vocab_size + 1, dtype=torch.float64) ** 2
    draws = torch.multinomial(weights, n, replacement=True, generator=g).tolist()
    successor = torch.multinomial(weights, vocab_size, replacement=True, generator=g).tolist()
    follow = (torch.rand(n, generator=g) < 0.5).tolist()
    ids = [draws[0]]
    for t in range(1, n):
        ids.append(successor[ids[-1]] if follow[t] else draws[t])
    return torch.tensor(ids, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# The script notebook 07 launches: torchrun --nproc_per_node=2 -m llmcourse.distributed ...
# --------------------------------------------------------------------------------------------
def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llmcourse.distributed",
                                     description="Train a small TransformerLM with llmcourse.training.train on "
                                                 "every process torchrun starts (or on this one).")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--batch-size", type=int, help="windows per process and step (default 8)")
    batch.add_argument("--global-batch-size", type=int, help="windows per step over all processes, shared out")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    parser.add_argument("--budget-seconds", type=float, help="train this long instead (rank 0's clock)")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--adaptive-cutoffs", type=int, nargs="+", help="an adaptive softmax with these cutoffs")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                        help="the course's AdamW, or plain SGD (whose steps are the gradients themselves)")
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--eval-every", type=int, help="validate every this many steps")
    parser.add_argument("--eval-every-seconds", type=float, help="or every this many seconds of training")
    parser.add_argument("--max-eval-batches", type=int, default=20)
    parser.add_argument("--patience", type=int, help="early stopping after this many validations without progress")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true",
                        help="train on synthetic_ids (64 words) instead of WikiText-2: no data set needed")
    parser.add_argument("--train-tokens", type=int, default=200_000, help="the first tokens of the training split")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", type=Path, required=True, help="folder for rank 0's checkpoint and history")
    return parser.parse_args(argv)


def _token_ids(args: argparse.Namespace) -> tuple[dict[str, Tensor], int]:
    """The training and validation streams, and the vocabulary's size."""
    if args.synthetic:
        ids = synthetic_ids(args.train_tokens + 10_000, 64, seed=args.seed)
        return {"train": ids[: args.train_tokens], "valid": ids[args.train_tokens:]}, 64
    from .data import WikiText2, numericalize, tokenize_lines, wikitext2_vocab

    vocab = wikitext2_vocab()
    ids = {s: numericalize(tokenize_lines(WikiText2(s)), vocab) for s in ("train", "valid")}
    return {"train": ids["train"][: args.train_tokens], "valid": ids["valid"]}, len(vocab)


def _fingerprint(model: nn.Module) -> str:
    """A hash of every weight's bytes: equal on two processes only if their copies are equal bit for bit."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> History:
    """Train a small :class:`~llmcourse.transformer.TransformerLM` with the course's
    :func:`~llmcourse.training.train` on WikiText-2 (or ``--synthetic`` ids), on every process that
    ``torchrun`` started, or on this one alone. Rank 0 writes ``--out``: the final weights and
    ``config.json``, whose ``history`` holds the loss of every step (``log_every=1``) and whose
    ``ranks`` lists what each process saw (steps, tokens, losses, a hash of its final weights), to
    show that they agree."""
    args = _arguments(argv)
    setup()
    try:
        if is_main_process() and "RANK" in os.environ:  # where the processes train, and why
            print(placement(processes_per_machine())[1], flush=True)
        batch_size = (per_process_batch(args.global_batch_size) if args.global_batch_size
                      else args.batch_size or 8)
        ids, vocab_size = _token_ids(args)
        seed_everything(args.seed)  # the same initial weights on every process (DDP also copies rank 0's)
        model = TransformerLM(TransformerConfig(
            vocab_size, max_context=args.seq_len, d_model=args.d_model, n_layers=args.n_layers,
            n_heads=args.n_heads, dropout=0.0, attn_dropout=0.0,
            **({"tie_weights": False, "adaptive_cutoffs": tuple(args.adaptive_cutoffs)} if args.adaptive_cutoffs
               else {})))
        train_data = distributed_loader(LMWindowDataset(ids["train"], args.seq_len), batch_size, seed=args.seed)
        valid_data = DataLoader(LMWindowDataset(ids["valid"], args.seq_len), batch_size=32)  # whole, on every rank
        by_time = args.budget_seconds is not None
        config = TrainConfig(
            max_steps=None if by_time else args.steps, budget_seconds=args.budget_seconds, lr=args.lr,
            warmup_steps=0 if by_time else args.warmup_steps, warmup_fraction=0.1 if by_time else 0.0,
            eval_every=args.eval_every, eval_every_seconds=args.eval_every_seconds,
            max_eval_batches=args.max_eval_batches, patience=args.patience, log_every=1,
            progress=not args.no_progress, precision="fp32")
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr) if args.optimizer == "sgd" else None
        history = train(model, train_data, valid_data, config, device=device(), optimizer=optimizer)
        seen = [None] * world_size()  # every process's view of the run, gathered on all of them
        mine = {"rank": rank(), "steps": history.steps, "tokens": history.train_tokens,
                "last_loss": history.train[-1]["loss"], "valid": [r["loss"] for r in history.valid],
                "weights_sha256": _fingerprint(model)}
        if world_size() > 1:
            dist.all_gather_object(seen, mine)
        else:
            seen = [mine]
        if is_main_process():
            save_checkpoint(model, args.out, history=history,
                            extra={"world_size": world_size(), "batch_size": batch_size,
                                   "effective_batch_size": batch_size * world_size(), "ranks": seen})
            print(f"{history.steps} steps of {batch_size} x {world_size()} windows; last loss "
                  f"{history.train[-1]['loss']:.4f}; saved to {args.out}")
        if world_size() > 1:  # leave together: a process that tore its group down while rank 0 was still saving
            dist.barrier()    # was once aborted by gloo (SIGABRT, "terminate called without an active exception")
        return history
    finally:
        cleanup()


if __name__ == "__main__":
    main()
