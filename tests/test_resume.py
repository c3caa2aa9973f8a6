"""Resuming training after a disconnect: a training process is killed midway, started again, and ends
with the same weights as a run that was never interrupted (CPU, bit for bit)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from llmcourse import resume
from llmcourse.config import seed_everything
from llmcourse.rnn import RNNConfig, RNNLM
from llmcourse.training import TrainConfig, train
from llmcourse.transformer import TransformerConfig, TransformerLM

# One script for the three runs: the whole run, the run killed (SIGKILL, as a lost Colab runtime) when it
# asks for its KILL_AT-th batch, and the run started again from what the killed one saved.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    from torch.utils.data import DataLoader
    from llmcourse.config import seed_everything
    from llmcourse.data import BPTTIterator, LMWindowDataset, batchify
    from llmcourse.rnn import RNNConfig, RNNLM
    from llmcourse.training import TrainConfig, train
    from llmcourse.transformer import TransformerConfig, TransformerLM

    kind, resume_dir, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seed_everything(0)
    ids = torch.randint(0, 50, (3000,), generator=torch.Generator().manual_seed(1))
    if kind == "lstm":  # a stateful model: the state carried from batch to batch must come back too
        model = RNNLM(RNNConfig(50, "lstm", d_embed=16, d_hidden=16, n_layers=2, dropout=0.3, tie_weights=False))
        data = BPTTIterator(batchify(ids, 8), 10)  # 38 batches an epoch
    else:  # shuffled windows and dropout: the random numbers must come back
        model = TransformerLM(TransformerConfig(50, max_context=16, d_model=16, n_layers=2, n_heads=2, dropout=0.2,
                                                attn_dropout=0.1))
        data = DataLoader(LMWindowDataset(ids, 16), batch_size=8, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(0))  # 23 batches an epoch

    class Killed:  # the data, with the process killed when it asks for batch kill_at
        def __init__(self, data):
            self.data, self.served = data, 0
            self.generator = getattr(data, "generator", None)
        def __len__(self):
            return len(self.data)
        def __iter__(self):
            for batch in self.data:
                self.served += 1
                if self.served == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield batch

    config = TrainConfig(max_steps=60, lr=3e-3, warmup_steps=5, eval_every=None, progress=False,
                         resume_dir=resume_dir if resume_dir != "-" else None, resume_every=7)
    history = train(model, Killed(data) if kill_at else data, None, config, device="cpu")
    torch.save({"weights": model.state_dict(), "steps": history.steps, "tokens": history.train_tokens,
                "records": len(history.train)}, out)
""")


def _run(tmp_path, *args) -> subprocess.CompletedProcess:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "LLMCOURSE_QUICK": "1"})


@pytest.mark.parametrize("kind, kill_at", [("transformer", 40), ("lstm", 40), ("lstm", 30)])
def test_a_killed_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, kind, kill_at):
    """Killed at batch 40 (in the second epoch: the Transformer's windows shuffled anew, the LSTM's state
    carried from the start of that epoch) or 30 (the LSTM's first epoch); saved every 7 steps, so the
    resumed run repeats the steps after the last save."""
    whole = _run(tmp_path, kind, "-", tmp_path / "whole.pt", 0)
    assert whole.returncode == 0, whole.stderr
    killed = _run(tmp_path, kind, tmp_path / "state", tmp_path / "killed.pt", kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # really killed, midway
    assert not (tmp_path / "killed.pt").exists()
    saved = torch.load(tmp_path / "state" / resume.STATE_FILE, weights_only=True)
    assert 0 < saved["step"] < 60 and saved["step"] % 7 == 0
    resumed = _run(tmp_path, kind, tmp_path / "state", tmp_path / "resumed.pt", 0)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {tmp_path / 'state'}" in resumed.stdout and f"step {saved['step']}," in resumed.stdout
    a, b = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("whole", "resumed"))
    assert a["steps"] == b["steps"] == 60 and a["tokens"] == b["tokens"] and a["records"] == b["records"]
    for key, value in a["weights"].items():
        assert torch.equal(value, b["weights"][key]), key


def _tiny():
    seed_everything(0)
    return TransformerLM(TransformerConfig(30, max_context=8, d_model=8, n_layers=1, n_heads=2))


def _batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 30, (2, 8), generator=g), torch.randint(0, 30, (2, 8), generator=g)) for _ in range(5)]


def test_a_finished_run_started_again_returns_at_once_with_its_weights_and_history(tmp_path):
    config = TrainConfig(max_steps=5, progress=False, resume_dir=str(tmp_path))
    model = _tiny()
    first = train(model, _batches(), _batches(), config, device="cpu")
    again_model = _tiny()  # freshly initialised: the saved weights must replace these
    again = train(again_model, _batches(), _batches(), config, device="cpu")
    assert again.steps == 5 and again.train == first.train and again.valid == first.valid
    for key, value in model.state_dict().items():
        assert torch.equal(value, again_model.state_dict()[key]), key


def test_a_state_from_another_model_or_recipe_is_refused_by_name(tmp_path):
    train(_tiny(), _batches(), None, TrainConfig(max_steps=2, progress=False, resume_dir=str(tmp_path)), device="cpu")
    with pytest.raises(ValueError, match=r"lr: saved 0.001, now 0.002.*Delete .*train_state.pt"):
        train(_tiny(), _batches(), None, TrainConfig(max_steps=2, lr=2e-3, progress=False, resume_dir=str(tmp_path)))
    other = RNNLM(RNNConfig(30, "lstm", d_embed=8, d_hidden=8, n_layers=1))
    with pytest.raises(ValueError, match="model_class"):
        train(other, _batches(), None, TrainConfig(max_steps=2, progress=False, resume_dir=str(tmp_path)))
    # what does not change the computation may differ: progress, how often the state is saved
    train(_tiny(), _batches(), None, TrainConfig(max_steps=2, progress=True, resume_every=1,
                                                 resume_dir=str(tmp_path)), device="cpu")


def test_a_damaged_state_is_a_clear_error_and_a_save_is_atomic(tmp_path):
    (tmp_path / resume.STATE_FILE).write_bytes(b"not a state")
    with pytest.raises(ValueError, match="cannot be read as a training state.*Delete"):
        train(_tiny(), _batches(), None, TrainConfig(max_steps=2, progress=False, resume_dir=str(tmp_path)))
    assert [p.name for p in tmp_path.iterdir()] == [resume.STATE_FILE]  # no temporary file left behind


@pytest.mark.parametrize("field, value", [("resume_every", 0), ("resume_every", 1.5), ("resume_every_seconds", 0),
                                          ("resume_every_seconds", float("nan"))])
def test_resume_intervals_are_checked(field, value):
    with pytest.raises(TypeError if value == 1.5 else ValueError, match=field):
        TrainConfig(max_steps=2, **{field: value})
