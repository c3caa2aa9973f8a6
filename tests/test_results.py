"""The course's results table: one row per model and mode, shown for the mode a run is in."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from llmcourse import results  # noqa: E402


def _record(path, monkeypatch, quick: bool, model: str, ppl: float):
    monkeypatch.setenv("LLMCOURSE_QUICK", "1" if quick else "0")
    return results.record(model, valid_ppl=ppl + 10, test_ppl=ppl, train_seconds=1.0, notebook="nb", path=path)


def test_rows_are_kept_per_model_and_mode(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    _record(path, monkeypatch, False, "LSTM", 200.0)
    _record(path, monkeypatch, True, "LSTM", 1000.0)
    _record(path, monkeypatch, False, "LSTM", 190.0)  # a re-run replaces the full-mode row only
    rows = results.load(path)
    assert [(r["model"], r["mode"], r["test_ppl"]) for r in rows] == [("LSTM", "quick", 1000.0), ("LSTM", "full", 190.0)]
    assert [r["test_ppl"] for r in results.load(path, "full")] == [190.0]
    monkeypatch.setenv("LLMCOURSE_QUICK", "1")
    assert [r["test_ppl"] for r in results.load(path, "current")] == [1000.0]
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["results.json"]  # no temporaries
    json.loads(path.read_text())  # valid JSON


def test_show_and_plot_use_the_current_mode(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    _record(path, monkeypatch, True, "tiny LSTM", 1000.0)
    _record(path, monkeypatch, False, "5-gram", 220.1)
    _record(path, monkeypatch, False, "LSTM", 183.9)
    table = results.show(path)
    text = getattr(table, "data", table)
    assert "5-gram" in text and "LSTM" in text and "tiny LSTM" not in text
    assert "tiny LSTM" in getattr(results.show(path, mode=None), "data", "")
    fig = results.plot(path)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["5-gram", "LSTM"]
    assert fig.axes[0].get_yscale() == "linear" and fig.axes[0].get_ylim()[0] == 0  # bars from zero
    matplotlib.pyplot.close(fig)


def test_bad_mode_and_empty_table(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="mode='fast'"):
        results.show(tmp_path / "r.json", mode="fast")
    _record(tmp_path / "r.json", monkeypatch, True, "tiny", 1000.0)
    monkeypatch.setenv("LLMCOURSE_QUICK", "0")
    with pytest.raises(ValueError, match="No results recorded yet"):
        results.plot(tmp_path / "r.json")


def test_plot_uses_a_log_scale_only_for_a_wide_range(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    _record(path, monkeypatch, True, "unigram", 1000.0)
    _record(path, monkeypatch, True, "big model", 30.0)
    fig = results.plot(path)
    assert fig.axes[0].get_yscale() == "log"
    matplotlib.pyplot.close(fig)


def _record_ten(path: str, worker: int) -> None:
    import os

    os.environ["LLMCOURSE_QUICK"] = "1"
    for i in range(10):
        results.record(f"model {worker}.{i}", valid_ppl=100.0 + i, test_ppl=90.0 + i, notebook="nb", path=Path(path))


def test_eight_processes_recording_at_once_keep_every_row(tmp_path):
    import multiprocessing

    path = tmp_path / "results.json"
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate notebooks are
    workers = [context.Process(target=_record_ten, args=(str(path), w)) for w in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 8
    rows = results.load(path)
    assert len(rows) == 80 and len({r["model"] for r in rows}) == 80


@pytest.mark.parametrize("bad", [dict(valid_ppl=float("nan")), dict(test_ppl=float("inf")), dict(test_ppl=0.5),
                                 dict(valid_ppl=-3.0), dict(train_seconds=float("nan"))])
def test_impossible_numbers_are_refused(tmp_path, bad):
    args = dict(valid_ppl=200.0, test_ppl=190.0, train_seconds=1.0) | bad
    with pytest.raises(ValueError, match="finite number"):
        results.record("LSTM", path=tmp_path / "r.json", **args)
    assert not (tmp_path / "r.json").exists()


def test_a_damaged_table_is_a_clear_error(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('[{"model": "LSTM", ')
    with pytest.raises(ValueError, match="not a readable table.*move it aside"):
        results.load(path)


def test_a_notebook_alone_gets_reference_rows_labelled_and_its_own_rows_win(tmp_path, monkeypatch, capsys):
    """A fresh runtime (Colab) has no row from notebook 01 or 02: the committed benchmark figures of the
    same recipe kind stand in, labelled; once a notebook has recorded its own row here, that one is used."""
    path = tmp_path / "results.json"
    monkeypatch.setenv("LLMCOURSE_QUICK", "0")
    rows = results.by_notebook("01_ngrams", "02_rnn_lm", path=path, kind="cpu")
    assert set(rows) == {"01_ngrams", "02_rnn_lm"} and all(r["reference"] for r in rows.values())
    shipped = json.loads(results.REFERENCE.read_text())["cpu"]
    assert rows["02_rnn_lm"]["test_ppl"] == shipped["02_rnn_lm"]["test_ppl"]
    assert rows["02_rnn_lm"]["valid_curve"] and rows["02_rnn_lm"]["budget_seconds"]
    assert rows["02_rnn_lm"]["model"].endswith(" [reference]")
    assert shipped["02_rnn_lm"]["recorded"] in rows["02_rnn_lm"]["machine"] and "race_cpu.json" in rows["02_rnn_lm"]["machine"]
    said = capsys.readouterr().out
    assert "notebook 02_rnn_lm has not run here" in said and "race_cpu.json" in said
    results.record("LSTM mine", valid_ppl=190.0, test_ppl=180.0, notebook="02_rnn_lm", path=path)
    rows = results.by_notebook("01_ngrams", "02_rnn_lm", path=path, kind="cpu")
    assert rows["02_rnn_lm"]["model"] == "LSTM mine" and not rows["02_rnn_lm"].get("reference")
    assert rows["01_ngrams"]["reference"]
    table = getattr(results.show(path, reference=("01_ngrams",)), "data", "")
    assert "5-gram modified Kneser-Ney [reference]" in table and "ngram.json" in table and "LSTM mine" in table
    fig = results.plot(path, reference=("01_ngrams",))
    assert [b.get_hatch() for b in fig.axes[0].patches] == ["//", None]
    matplotlib.pyplot.close(fig)


def test_a_kind_never_benchmarked_has_no_reference_and_says_so(tmp_path, capsys):
    assert results.by_notebook("02_rnn_lm", path=tmp_path / "r.json", kind="gpu") == {}
    assert "run notebook 02_rnn_lm first" in capsys.readouterr().out


def test_the_shipped_reference_rows_are_the_committed_benchmarks():
    """llmcourse/reference_results.json is what benchmarks/reference.py makes of benchmarks/results/."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import reference

    assert json.loads(results.REFERENCE.read_text()) == json.loads(json.dumps(reference.build()))
