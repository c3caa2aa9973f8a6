"""The course's loop under DDP: two CPU processes (gloo) started by torchrun train exactly as one process
on the doubled batch; one process without a group trains as before; bad input is a clear error."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset

from llmcourse import distributed
from llmcourse.config import seed_everything
from llmcourse.data import LMWindowDataset
from llmcourse.training import TrainConfig, train
from llmcourse.transformer import TransformerConfig, TransformerLM

REPO = Path(__file__).resolve().parent.parent
# a tiny run: 74 windows of 16 tokens, 9 steps of 8 windows an epoch, so 20 steps read three epochs
RUN = ["--synthetic", "--train-tokens", "1200", "--seq-len", "16", "--d-model", "32", "--n-layers", "2",
       "--n-heads", "2", "--warmup-steps", "4", "--eval-every", "8", "--seed", "3", "--no-progress"]


def _torchrun(args, timeout=120):
    """``torchrun --standalone --nproc_per_node 2 -m llmcourse.distributed ARGS`` on the CPU (gloo), one
    thread per process; returns (exit status, output). --standalone picks a free port itself."""
    env = {k: v for k, v in os.environ.items() if k not in distributed.TORCHRUN_VARIABLES}
    env.update(OMP_NUM_THREADS="1", LLMCOURSE_DEVICE="cpu", CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "llmcourse.distributed", *args]
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as run:
        try:
            output, _ = run.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:  # processes that disagree wait for each other for ever
            run.terminate()  # torchrun stops its workers (each in a session of its own) on SIGTERM
            try:
                output, _ = run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                output = "(torchrun did not stop on SIGTERM)"
            pytest.fail(f"torchrun did not finish in {timeout} s (processes waiting for each other?):\n{output}")
    return run.returncode, output


def _one_thread(function, *args):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process
    try:
        return function(*args)
    finally:
        torch.set_num_threads(threads)


def _saved(folder):
    meta = json.loads((folder / "config.json").read_text())
    return meta, load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("softmax, optimizer", [("full", "sgd"), ("adaptive", "adamw")])
def test_two_processes_train_as_one_process_on_the_doubled_batch(tmp_path, softmax, optimizer):
    # SGD's weights are the initial ones minus the sum of lr x gradient: equal weights mean equal gradients
    # (AdamW's steps hardly change when the gradients are scaled, and would hide a gradient off by a factor).
    # The adaptive softmax (Zipf-like synthetic ids, rare words >= 32) leaves its rare cluster without
    # gradient on one process or on both in many steps: DDP must then do what one process does.
    extra = ["--optimizer", optimizer, *(["--lr", "0.1"] if optimizer == "sgd" else []),
             *(["--adaptive-cutoffs", "8", "32"] if softmax == "adaptive" else [])]
    status, output = _torchrun([*RUN, *extra, "--steps", "20", "--batch-size", "4", "--out", str(tmp_path / "ddp")])
    assert status == 0, output
    _one_thread(distributed.main, [*RUN, *extra, "--steps", "20", "--batch-size", "8", "--out", str(tmp_path / "one")])
    ddp, ddp_weights = _saved(tmp_path / "ddp")
    one, one_weights = _saved(tmp_path / "one")
    assert (ddp["world_size"], ddp["batch_size"], ddp["effective_batch_size"]) == (2, 4, 8)
    assert (one["world_size"], one["effective_batch_size"]) == (1, 8)
    assert ddp["history"]["steps"] == one["history"]["steps"] == 20
    assert ddp["history"]["train_tokens"] == one["history"]["train_tokens"] == 20 * 8 * 16
    assert [r["epoch"] for r in ddp["history"]["train"]] == [0] * 9 + [1] * 9 + [2] * 2  # set_epoch was reached
    # the loss of every step, and every validation (every 8 steps and at the end), as one process saw them
    for part in ("train", "valid"):
        torch.testing.assert_close(torch.tensor([r["loss"] for r in ddp["history"][part]], dtype=torch.float32),
                                   torch.tensor([r["loss"] for r in one["history"][part]], dtype=torch.float32))
    assert [r["step"] for r in ddp["history"]["valid"]] == [8, 16, 20]
    assert ddp["history"]["train"][-1]["loss"] < ddp["history"]["train"][0]["loss"] - 0.5  # it learned something
    assert ddp_weights.keys() == one_weights.keys()
    for name in one_weights:  # the sums differ only in their order: float32's default tolerances
        torch.testing.assert_close(ddp_weights[name], one_weights[name], msg=lambda m: f"{name}: {m}")
    # every process kept the same history: rank 1 saw what rank 0 saved
    first, second = ddp["ranks"]
    assert (first["rank"], second["rank"]) == (0, 1)
    assert {k: v for k, v in first.items() if k != "rank"} == {k: v for k, v in second.items() if k != "rank"}


def test_a_budget_run_keeps_the_processes_on_rank_0s_clock(tmp_path):
    # each process's own clock would stop it, validate it and set its learning rate at other steps: the
    # run would hang (one process waiting in an all-reduce the other never joins) or train two models
    status, output = _torchrun([*RUN, "--budget-seconds", "3", "--eval-every-seconds", "0.7", "--patience", "2",
                                "--batch-size", "4", "--out", str(tmp_path / "ddp")])
    assert status == 0, output
    meta, _ = _saved(tmp_path / "ddp")
    history = meta["history"]
    assert history["budget_seconds"] == 3
    assert history["stopped_early"] or history["train_seconds"] >= 3
    assert len(history["valid"]) >= 2 and history["steps"] == len(history["train"])
    first, second = meta["ranks"]
    assert {k: v for k, v in first.items() if k != "rank"} == {k: v for k, v in second.items() if k != "rank"}
    assert output.count("valid loss") == len(history["valid"])  # printed by rank 0 alone


def test_a_global_batch_that_does_not_divide_among_the_processes_is_a_clear_error(tmp_path):
    status, output = _torchrun([*RUN, "--steps", "2", "--global-batch-size", "7", "--out", str(tmp_path / "ddp")])
    assert status != 0
    assert "A batch of 7 does not divide among 2 processes" in output
    assert not (tmp_path / "ddp").exists()
    with pytest.raises(ValueError, match="does not divide among 4 processes: choose a multiple of 4"):
        distributed.per_process_batch(10, world=4)
    assert distributed.per_process_batch(32, world=2) == 16
    assert distributed.per_process_batch(32) == 32  # no process group: one process reads the whole batch


def test_the_processes_batches_together_are_one_process_batch_of_the_same_shuffle():
    # what the equality above rests on, checked rather than trusted: rank r of 2 reads perm[r::2], so its
    # k-th batch of B and the other rank's are together perm[2kB : 2(k+1)B], one process's k-th batch of 2B
    ids = torch.arange(75 * 4 + 1)
    dataset = LMWindowDataset(ids, 4)  # window k starts at token 4k: its first id names it
    one = distributed.distributed_loader(dataset, 6, seed=5)  # no process group: world size 1
    ranks = [DataLoader(dataset, batch_size=3, drop_last=True,
                        sampler=DistributedSampler(dataset, num_replicas=2, rank=r, seed=5, drop_last=True))
             for r in range(2)]
    assert isinstance(one.sampler, DistributedSampler) and len(one) == len(ranks[0]) == 75 // 6
    for epoch in range(2):
        for loader in (one, *ranks):
            loader.sampler.set_epoch(epoch)
        for (x, _), (x0, _), (x1, _) in zip(one, *ranks):
            assert sorted((x[:, 0] // 4).tolist()) == sorted((torch.cat([x0, x1])[:, 0] // 4).tolist())
        assert torch.randperm(75, generator=torch.Generator().manual_seed(5 + epoch))[:6].tolist() == \
            (next(iter(one))[0][:, 0] // 4).tolist()  # the shuffle is seed + epoch, the same on every rank
    first = [(x[:, 0] // 4).tolist() for x, _ in one]
    one.sampler.set_epoch(0)
    assert first != [(x[:, 0] // 4).tolist() for x, _ in one]  # set_epoch reshuffles


def _tiny_run(data):
    seed_everything(0)
    model = TransformerLM(TransformerConfig(40, max_context=8, d_model=16, n_layers=1, n_heads=2, dropout=0.1,
                                            attn_dropout=0.1))
    loader = distributed.distributed_loader(LMWindowDataset(data, 8), 4, seed=1)
    valid = DataLoader(LMWindowDataset(data[:200], 8), batch_size=8)
    history = train(model, loader, valid, TrainConfig(epochs=2, lr=3e-3, eval_every=5, log_every=2,
                                                      progress=False), device="cpu")
    assert loader.sampler.epoch == 1  # the loop told the sampler that a second epoch began
    return model, history


def test_one_process_trains_bit_for_bit_alike_in_a_group_of_one_and_without_a_group(tmp_path):
    data = distributed.synthetic_ids(600, 40, seed=2)
    assert distributed.setup() is False  # not launched by torchrun: nothing to join
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    alone_model, alone = _tiny_run(data)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
        group_model, group = _tiny_run(data)
        with pytest.raises(ValueError, match=r"pass the plain model \(ddp_model.module\)"):
            train(nn.parallel.DistributedDataParallel(group_model), [], config=TrainConfig(max_steps=1))
    finally:
        distributed.cleanup()
    assert not torch.distributed.is_initialized()
    strip = lambda records: [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_sec")} for r in records]
    assert strip(alone.train) == strip(group.train) and strip(alone.valid) == strip(group.valid)
    assert alone.steps == group.steps == 2 * 18  # 74 windows of 8 tokens: 18 batches of 4 an epoch
    for (name, a), (_, b) in zip(alone_model.state_dict().items(), group_model.state_dict().items()):
        assert torch.equal(a, b), name


class _Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)


def test_bad_input_is_a_clear_error(monkeypatch):
    dataset = LMWindowDataset(torch.arange(41), 4)  # 10 windows
    with pytest.raises(TypeError, match="needs a dataset with a length and items by index.*not a _Stream"):
        distributed.distributed_loader(_Stream(), 4, seed=0)
    with pytest.raises(ValueError, match="10 windows are too few for one batch of 16 on each of 1 processes"):
        distributed.distributed_loader(dataset, 16, seed=0)
    with pytest.raises(ValueError, match="batch_size=0: give a whole number of windows per process"):
        distributed.distributed_loader(dataset, 0, seed=0)
    with pytest.raises(ValueError, match="give whole numbers"):
        distributed.per_process_batch(0)
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="RANK, WORLD_SIZE set but LOCAL_RANK, MASTER_ADDR, MASTER_PORT missing: "
                                           "launch the script with torchrun"):
        distributed.setup()
    assert not torch.distributed.is_initialized()


def _fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.delenv("LLMCOURSE_DEVICE", raising=False)


@pytest.mark.parametrize("gpus, where", [(0, "cpu"), (1, "cpu"), (2, "cuda"), (8, "cuda")])
def test_two_processes_use_gpus_only_where_each_has_its_own(monkeypatch, gpus, where):
    """Colab's one GPU cannot hold two DDP processes (rank 1 would ask for cuda:1): both then use the CPU."""
    _fake_gpus(monkeypatch, gpus)
    kind, why = distributed.placement(2)
    assert kind == where and ("gloo" if where == "cpu" else "NCCL") in why
    if gpus == 1:
        assert "1 GPU," in why
    for rank in ("0", "1"):  # every process of the group decides alike
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", rank)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        assert distributed.device() == (torch.device("cuda", int(rank)) if where == "cuda" else torch.device("cpu"))
