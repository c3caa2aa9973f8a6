"""Tests for llmcourse.cost: the timing harness and the compute count (FLOPs, energy)."""

import math

import pytest
import torch

from llmcourse.cost import attention_cost, compute_table, energy_kwh, show_compute_table, training_flops_per_token
from llmcourse.rnn import RNNLM, RNNConfig
from llmcourse.transformer import TransformerConfig, TransformerLM, model_flops_per_token


def test_attention_cost_records_both_paths():
    rows = attention_cost([16, 32], batch=1, heads=2, d_head=8, repeats=2, memory=False, progress=False)
    assert [(r["t"], r["path"]) for r in rows] == [(16, "naive"), (16, "fused"), (32, "naive"), (32, "fused")]
    assert all(r["seconds"] > 0 for r in rows) and rows[2]["weights_bytes"] == 4 * rows[0]["weights_bytes"]

@pytest.mark.parametrize("llama", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_the_flops_formula_and_the_count_are_one_definition(llama, dropout):
    """6 N + 12 n_layers t d from the config is what FlopCounterMode counts on one real step, with or without
    dropout (without, PyTorch's fused CPU attention runs, which the counter would count as nothing)."""
    make = TransformerConfig.llama if llama else TransformerConfig
    config = make(vocab_size=200, max_context=16, d_model=32, n_layers=2, n_heads=4, dropout=dropout,
                  attn_dropout=dropout, **({"n_kv_heads": 2} if llama else {}))
    x = torch.randint(200, (3, 16))
    measured = training_flops_per_token(TransformerLM(config), x)
    assert measured == pytest.approx(model_flops_per_token(config, 16), rel=1e-9)


def test_lstm_flops_are_counted_from_the_gates():
    config = RNNConfig(vocab_size=100, d_embed=8, d_hidden=12, n_layers=2, tie_weights=False)
    model = RNNLM(config)
    x = torch.randint(100, (2, 5))
    per_token_lstm = 2 * 4 * 12 * (8 + 12) + 2 * 4 * 12 * (12 + 12)  # two layers' gate matmuls, forward
    measured = training_flops_per_token(model, x)
    output_layer = 3 * 2 * 12 * 100  # forward and backward of the logits' matmul
    assert measured == pytest.approx(3 * per_token_lstm + output_layer, rel=0.01)
    assert all(p.grad is None for p in model.parameters())  # no step left behind


def test_energy_and_the_compute_table():
    assert energy_kwh(3600, 30) == pytest.approx(0.03)
    for bad in (dict(seconds=-1, watts=30), dict(seconds=1, watts=0), dict(seconds=math.nan, watts=30)):
        with pytest.raises(ValueError, match="seconds >= 0 and watts > 0"):
            energy_kwh(**bad)
    rows = [{"model": "LSTM", "train_seconds": 600.0, "train_flops": 6e12, "machine": "CPU x86_64, 2 cores"},
            {"model": "5-gram", "train_seconds": 40.0, "machine": "CPU x86_64, 2 cores"},
            {"model": "BERT", "train_seconds": 100.0, "train_flops": 1e15, "machine": "GPU Tesla T4; torch 2.11"}]
    table = compute_table(rows)
    assert [r["device"] for r in table] == ["cpu", "cpu", "t4"]
    assert table[0]["flops_per_second"] == pytest.approx(1e10) and table[1]["flops_per_second"] is None
    assert table[0]["energy_kwh"] == pytest.approx(600 * 30 / 3.6e6)
    assert compute_table(rows, watts={"cpu": 10})[0]["watts"] == 10
    text = show_compute_table(rows)
    assert "counts, no FLOPs" in getattr(text, "data", text)


def test_record_and_load_compute_rows(tmp_path, monkeypatch):
    from llmcourse import cost

    monkeypatch.setenv("LLMCOURSE_QUICK", "1")
    path = tmp_path / "compute.json"
    cost.record("LSTM", train_seconds=60.0, train_flops=1e12, notebook="02", path=path)
    cost.record("5-gram", train_seconds=5.0, train_flops=None, notebook="01", path=path)
    cost.record("LSTM", train_seconds=61.0, train_flops=2e12, notebook="02", path=path)  # re-run: replaces
    rows = cost.load(path)
    assert [(r["model"], r["train_flops"]) for r in rows] == [("5-gram", None), ("LSTM", 2e12)]
    assert cost.load(path, mode="full") == []
    for bad in (dict(train_seconds=math.inf, train_flops=1.0), dict(train_seconds=1.0, train_flops=-5.0)):
        with pytest.raises(ValueError, match="finite number >= 0"):
            cost.record("bad", notebook="x", path=path, **bad)
    assert len(cost.load(path)) == 2  # nothing half-written by the refused calls
