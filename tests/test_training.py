import json
import math

import pytest
import torch
from torch import nn

from llmcourse.config import seed_everything
from llmcourse.data import LMWindowDataset, BPTTIterator, batchify
from llmcourse.lm import BigramConfig, BigramLM
from llmcourse.training import (History, TrainConfig, evaluate, evaluate_perplexity, load_checkpoint, lm_loss,
                                lr_at_fraction,
                                lr_at, save_checkpoint, train, train_simple)


def _stream(n=4000, vocab=50, seed=0):
    """A stream where token t+1 = (3 t + noise) mod vocab: a bigram model can learn it."""
    g = torch.Generator().manual_seed(seed)
    ids = [0]
    for _ in range(n - 1):
        ids.append((3 * ids[-1] + int(torch.randint(0, 3, (1,), generator=g))) % vocab)
    return torch.tensor(ids)


def _loader(ids, seq=16, batch=8):
    return torch.utils.data.DataLoader(LMWindowDataset(ids, seq), batch_size=batch, shuffle=False)


def test_training_lowers_loss_and_is_repeatable():
    ids = _stream()
    losses = []
    for _ in range(2):
        seed_everything(123)
        model = BigramLM(BigramConfig(vocab_size=50, d_model=16))
        before = evaluate(model, _loader(ids))[0]
        history = train(model, _loader(ids), _loader(ids[:800]),
                        TrainConfig(epochs=2, lr=3e-2, warmup_steps=5, progress=False, log_every=5), device="cpu")
        after = evaluate(model, _loader(ids))[0]
        losses.append(history.train[-1]["loss"])
        assert after < before - 1.0  # from ~log(50)=3.9 towards log(3)=1.1
    assert losses[0] == losses[1]  # same seed, same loss, bit for bit on CPU
    assert len(history.valid) == 2 and history.best_step is not None
    assert all(r["tokens_per_sec"] > 0 for r in history.train)


def test_train_is_the_simple_loop_grown_up():
    """With its extras off (constant rate, no clipping, no weight decay, no validation), train() makes exactly
    the updates of notebook 00's five-line loop, train_simple, with Adam (AdamW without decay is Adam)."""
    ids, models = _stream(), []
    for _ in range(2):
        seed_everything(0)
        models.append(BigramLM(BigramConfig(vocab_size=50, d_model=16)))
    losses = train_simple(models[0], _loader(ids), steps=12, lr=3e-2)
    history = train(models[1], _loader(ids), None, TrainConfig(max_steps=12, lr=3e-2, schedule="constant",
                                                               grad_clip=None, weight_decay=0.0, progress=False,
                                                               log_every=1, compile=False), device="cpu")
    assert len(losses) == 12 and losses[-1] < losses[0]
    assert [r["loss"] for r in history.train] == pytest.approx(losses, rel=1e-6)
    for ours, theirs in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_evaluate_perplexity_is_token_weighted():
    """Two batches of 3 and 1 tokens: the exact perplexity weighs tokens, not batches."""

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):  # uniform over 4 words except token 0 which predicts word 0 surely
            logits = torch.zeros(*x.shape, 4)
            logits[x == 0] = torch.tensor([100.0, 0, 0, 0])
            return logits

    batches = [(torch.tensor([[0, 0, 0]]), torch.tensor([[0, 0, 0]])), (torch.tensor([[1]]), torch.tensor([[2]]))]
    ppl = evaluate_perplexity(Fixed(), batches)
    exact = math.exp((3 * 0.0 + math.log(4)) / 4)
    assert ppl == pytest.approx(exact, rel=1e-5)
    batch_average = math.exp((0.0 + math.log(4)) / 2)
    assert abs(ppl - batch_average) > 0.1


def test_ignore_index_not_counted():
    logits = torch.zeros(1, 3, 5)
    total, n = lm_loss(logits, torch.tensor([[1, -100, 2]]))
    assert int(n) == 2 and float(total) == pytest.approx(2 * math.log(5))


def test_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(0, cfg, 110) == pytest.approx(0.1)
    assert lr_at(9, cfg, 110) == pytest.approx(1.0)
    assert lr_at(60, cfg, 110) == pytest.approx(0.55)
    assert lr_at(110, cfg, 110) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")


def test_early_stopping_and_best_restored(tmp_path):
    seed_everything(0)
    ids = _stream()
    model = BigramLM(BigramConfig(vocab_size=50, d_model=16))
    # A huge learning rate makes validation worse after the first epoch: training stops early.
    history = train(model, _loader(ids), _loader(ids[:800]),
                    TrainConfig(epochs=30, lr=3e-2, patience=1, schedule="constant", progress=False,
                                checkpoint_dir=str(tmp_path / "ckpt")), device="cpu")
    best = min(r["loss"] for r in history.valid)
    assert history.best_valid_loss == best
    assert evaluate(model, _loader(ids[:800]))[0] == pytest.approx(best, rel=1e-5)
    restored = load_checkpoint(tmp_path / "ckpt")
    assert evaluate(restored, _loader(ids[:800]))[0] == pytest.approx(best, rel=1e-5)
    if history.stopped_early:
        assert len(history.valid) < 30


def test_checkpoint_round_trip_without_pickle(tmp_path):
    model = BigramLM(BigramConfig(vocab_size=30, d_model=8, tie_weights=True))
    save_checkpoint(model, tmp_path, history=History(best_valid_loss=1.5))
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["model_class"] == "llmcourse.lm.BigramLM" and meta["config"] == {"vocab_size": 30, "d_model": 8, "tie_weights": True}
    loaded = load_checkpoint(tmp_path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.out.weight is loaded.embed.weight  # tied weights stored once, tied again on load
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_damaged_or_mismatched_checkpoints_are_clear_errors(tmp_path):
    from llmcourse.transformer import TransformerConfig, TransformerLM

    config = TransformerConfig(vocab_size=40, max_context=8, d_model=16, n_layers=1, n_heads=2)
    save_checkpoint(TransformerLM(config), tmp_path / "gpt")
    # same shapes, another meaning: a causal model's weights in a model that sees the future
    with pytest.raises(ValueError, match="different config.*causal: saved True, this model False"):
        load_checkpoint(tmp_path / "gpt", TransformerLM(TransformerConfig(**{**config.__dict__, "causal": False})))
    load_checkpoint(tmp_path / "gpt", TransformerLM(TransformerConfig(**{**config.__dict__, "dropout": 0.0})))
    meta = json.loads((tmp_path / "gpt" / "config.json").read_text())
    del meta["config"]["norm_first"]  # a checkpoint saved before the field existed: its default applies
    del meta["content_sha256"], meta["weights_sha256"]  # (and before checkpoints recorded their hashes)
    (tmp_path / "gpt" / "config.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="saved without the sha256"):
        load_checkpoint(tmp_path / "gpt", TransformerLM(config))
    with pytest.raises(ValueError, match="holds a llmcourse.transformer.TransformerLM, not a llmcourse.lm.BigramLM"), \
            pytest.warns(UserWarning):
        load_checkpoint(tmp_path / "gpt", BigramLM(BigramConfig(vocab_size=40, d_model=16)))
    weights = (tmp_path / "gpt" / "model.safetensors").read_bytes()
    (tmp_path / "gpt" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match="model.safetensors is damaged.*Save the model again"), pytest.warns(UserWarning):
        load_checkpoint(tmp_path / "gpt")
    (tmp_path / "gpt" / "config.json").write_text('{"model_class": ')
    with pytest.raises(ValueError, match="config.json is not a readable checkpoint configuration"):
        load_checkpoint(tmp_path / "gpt")
    (tmp_path / "gpt" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no 'model_class' and 'config'"), pytest.warns(UserWarning):
        load_checkpoint(tmp_path / "gpt")


def test_stateful_models_get_their_state_back_detached():
    class Counter(nn.Module):
        stateful = True

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.seen = []

        def forward(self, x, state=None):
            self.seen.append(state)
            h = self.emb(x).sum() if state is None else state + self.emb(x).sum()
            return self.emb(x) @ self.emb.weight.T + 0 * h, h

    model = Counter()
    source = batchify(torch.arange(10).repeat(20), 4)
    train(model, BPTTIterator(source, 5), None, TrainConfig(epochs=1, progress=False), device="cpu")
    assert model.seen[0] is None
    assert all(s is not None and not s.requires_grad for s in model.seen[1:])


# ---------------------------------------------------------------------------------------------
# Time budgets
# ---------------------------------------------------------------------------------------------
def test_budget_run_stops_on_time_ends_at_the_minimum_lr_and_records_seconds():
    seed_everything(0)
    ids = _stream()
    model = BigramLM(BigramConfig(vocab_size=50, d_model=16))
    config = TrainConfig(budget_seconds=1.5, lr=1e-2, warmup_fraction=0.1, min_lr_ratio=0.1, log_every=1,
                         eval_every_seconds=0.5, max_eval_batches=2, progress=False)
    history = train(model, _loader(ids), _loader(ids[:800]), config, device="cpu")
    assert 1.5 <= history.train_seconds < 2.5  # one step past the budget at most
    assert history.steps == history.train[-1]["step"] > 10 and history.budget_seconds == 1.5
    assert history.steps > len(_loader(ids))  # the budget, not epochs=1, decides: it cycles the data
    seconds = [r["seconds"] for r in history.train]
    assert seconds == sorted(seconds) and seconds[-1] <= history.train_seconds + 1e-3  # rounded to ms
    lrs = [r["lr"] for r in history.train]
    assert lrs[0] < 1e-2 * 0.5  # warming up
    assert max(lrs) == pytest.approx(1e-2, rel=0.05)
    assert lrs[-1] == pytest.approx(1e-3, rel=0.05)  # the decay reached lr * min_lr_ratio at the end
    curve = history.valid_curve()
    assert len(curve) >= 3 and all(0 < s <= history.train_seconds + 1e-3 for s, _ in curve)
    assert history.valid[-1]["step"] == history.steps  # the final weights are validated
    assert history.precision == "fp32" and history.compiled is False


def test_validation_time_does_not_count_against_the_budget():
    class SlowValidation:
        def __iter__(self):
            import time
            time.sleep(0.4)
            yield torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]])

    seed_everything(0)
    model = BigramLM(BigramConfig(vocab_size=50, d_model=8))
    history = train(model, _loader(_stream()), SlowValidation(),
                    TrainConfig(budget_seconds=1.0, eval_every=5, progress=False), device="cpu")
    assert len(history.valid) >= 3  # at least 1.2 s of validating ...
    assert history.train_seconds < 1.4  # ... outside the 1 s of training


def test_budget_and_schedule_settings_are_checked():
    with pytest.raises(ValueError, match="warmup_fraction"):
        TrainConfig(budget_seconds=60, warmup_steps=10)
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="budget_seconds"):
            TrainConfig(budget_seconds=bad)
    with pytest.raises(ValueError, match="warmup_fraction"):
        TrainConfig(budget_seconds=60, warmup_fraction=1.0)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="compile"):
        TrainConfig(compile="yes")


def test_lr_at_fraction():
    cfg = TrainConfig(lr=1.0, budget_seconds=10, warmup_fraction=0.1, min_lr_ratio=0.1)
    assert lr_at_fraction(0.05, cfg) == pytest.approx(0.5)
    assert lr_at_fraction(0.1, cfg) == pytest.approx(1.0)
    assert lr_at_fraction(0.55, cfg) == pytest.approx(0.55)
    assert lr_at_fraction(1.0, cfg) == pytest.approx(0.1)
    assert lr_at_fraction(1.2, cfg) == pytest.approx(0.1)  # a step that starts past the budget


def test_an_empty_training_set_is_a_clear_error():
    model = BigramLM(BigramConfig(vocab_size=10, d_model=4))
    with pytest.raises(ValueError, match="no batch"):
        train(model, [], None, TrainConfig(max_steps=5, progress=False), device="cpu")


def test_targets_all_ignored_are_a_clear_error_not_perplexity_one():
    model = BigramLM(BigramConfig(vocab_size=10, d_model=4))
    x = torch.randint(10, (4, 8))
    ignored = [(x, torch.full_like(x, -100))] * 3
    with pytest.raises(ValueError, match="Every target in train_data is -100"):
        train(model, ignored, None, TrainConfig(max_steps=5, progress=False), device="cpu")
    with pytest.raises(ValueError, match="every target is -100"):
        evaluate(model, ignored)


def test_step_runs_record_seconds_and_steps():
    seed_everything(0)
    model = BigramLM(BigramConfig(vocab_size=50, d_model=8))
    history = train(model, _loader(_stream()), None, TrainConfig(max_steps=7, log_every=2, progress=False),
                    device="cpu")
    assert history.steps == 7 and [r["step"] for r in history.train] == [2, 4, 6, 7]
    assert all(r["seconds"] > 0 for r in history.train) and history.budget_seconds is None


@pytest.mark.parametrize("field, value, message", [
    ("lr", float("nan"), "lr=nan: give a finite number > 0"),
    ("lr", -1e-3, "lr=-0.001"),
    ("lr", 0.0, "lr=0.0"),
    ("weight_decay", float("nan"), "weight_decay=nan"),
    ("weight_decay", -0.1, "weight_decay=-0.1"),
    ("betas", (0.9, 1.0), r"betas\[1\]=1.0: give a finite number in \[0, 1\)"),
    ("grad_clip", -1.0, "grad_clip=-1.0: give a finite number > 0, or None"),
    ("grad_clip", float("inf"), "grad_clip=inf"),
    ("max_steps", 0, "max_steps=0: give a whole number >= 1, or None"),
    ("patience", 0, "patience=0"),
    ("epochs", -1, "epochs=-1"),
    ("min_lr_ratio", 2.0, "min_lr_ratio=2.0"),
    ("log_every", 0, "log_every=0"),
])
def test_train_config_refuses_numbers_that_would_train_silently_wrong(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**({"max_steps": 10} | {field: value}))


@pytest.mark.parametrize("field, value", [("eval_every", 2.5), ("max_steps", True), ("budget_seconds", True),
                                          ("lr", "1e-3")])
def test_train_config_refuses_numbers_of_the_wrong_kind(field, value):
    with pytest.raises(TypeError, match=f"{field}="):
        TrainConfig(**({"max_steps": 10} | {field: value}))


def test_perplexity_of_nan_scores_is_an_error():
    from llmcourse.lm import perplexity

    assert perplexity([math.log(0.5)] * 3) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="1 of the 3 log-probabilities are NaN"):
        perplexity([-1.0, float("nan"), -2.0])


def test_per_word_perplexity():
    from llmcourse.lm import per_word_perplexity

    # a text of 4 words cut into 8 tokens that each cost log 2: per token 2, per word 4
    assert per_word_perplexity(8 * math.log(2), 4) == pytest.approx(4.0)
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="total_nll"):
            per_word_perplexity(bad, 4)
    with pytest.raises(ValueError, match="n_words=0"):
        per_word_perplexity(1.0, 0)


def test_stream_nll_scores_every_token_after_the_first_and_gives_the_per_word_perplexity():
    from llmcourse.lm import per_word_perplexity
    from llmcourse.training import stream_nll

    torch.manual_seed(0)
    model = BigramLM(BigramConfig(vocab_size=20, d_model=8)).eval()
    ids = torch.randint(0, 20, (103,))  # 102 targets: 12 windows of 8 and a padded one of 6
    total, count = stream_nll(model, ids, 8, batch_size=5)
    assert count == 102
    with torch.no_grad():  # a bigram's score of each token depends on the previous one only
        expected = -torch.log_softmax(model(ids[None, :-1])[0], dim=-1).gather(1, ids[1:, None]).sum()
    assert total == pytest.approx(float(expected), rel=1e-5)
    # word-level tokens: per word is per token
    assert per_word_perplexity(total, count) == pytest.approx(math.exp(float(expected) / 102), rel=1e-5)


def test_the_loops_adamw_is_fused_on_a_cpu_and_steps_like_the_default_one():
    from llmcourse.training import _optimizer

    ids = _stream(800)
    config = TrainConfig(max_steps=6, lr=1e-2, progress=False)
    models = []
    for fused in (True, False):
        seed_everything(0)
        model = BigramLM(BigramConfig(vocab_size=50, d_model=16))
        optimizer = _optimizer(model, config, torch.device("cpu")) if fused else torch.optim.AdamW(
            [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": config.weight_decay},
             {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}],
            lr=config.lr, betas=config.betas, foreach=False)
        assert optimizer.defaults.get("fused") is (True if fused else None)
        train(model, _loader(ids), None, config, device="cpu", optimizer=optimizer)
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_the_first_budget_run_of_a_process_is_not_charged_for_the_optimizers_set_up():
    # in a fresh process the optimizer's first construction imports torch._dynamo (seconds): the clock starts after
    script = """
import torch
from llmcourse.lm import BigramConfig, BigramLM
from llmcourse.data import LMWindowDataset
from llmcourse.training import TrainConfig, train
ids = torch.randint(0, 50, (4000,), generator=torch.Generator().manual_seed(0))
loader = torch.utils.data.DataLoader(LMWindowDataset(ids, 16), batch_size=8)
h = train(BigramLM(BigramConfig(vocab_size=50, d_model=16)), loader, None,
          TrainConfig(budget_seconds=0.5, lr=1e-2, progress=False, log_every=1), device="cpu")
print(h.steps, h.train[0]["seconds"])
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    steps, first = done.stdout.split()
    assert int(steps) > 10 and float(first) < 0.25  # a tiny model steps in milliseconds
