"""Tests for llmcourse.cost: the timing harnesses."""

from llmcourse.cost import attention_cost


def test_attention_cost_records_both_paths():
    rows = attention_cost([16, 32], batch=1, heads=2, d_head=8, repeats=2, memory=False, progress=False)
    assert [(r["t"], r["path"]) for r in rows] == [(16, "naive"), (16, "fused"), (32, "naive"), (32, "fused")]
    assert all(r["seconds"] > 0 for r in rows) and rows[2]["weights_bytes"] == 4 * rows[0]["weights_bytes"]
