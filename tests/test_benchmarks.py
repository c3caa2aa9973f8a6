"""The benchmark scripts import and parse their arguments, and save their figures atomically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(script):
    run = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout


def test_save_writes_everything_prints_the_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from _common import save, stamp

    result = stamp("demo", kind="cpu") | {"ppl": 123.4, "valid_curve": [[1, 500.0], [2, 300.0]]}
    assert list(result)[:4] == ["benchmark", "kind", "machine", "date"]
    path = save(result, tmp_path / "results" / "demo.json", hide=("valid_curve",))
    assert json.loads(path.read_text()) == result
    printed = capsys.readouterr().out
    assert '"ppl": 123.4' in printed and "valid_curve" not in printed
    assert [p.name for p in path.parent.iterdir()] == ["demo.json"]  # no temporary file left behind


def test_plot_results_reads_the_saved_figures_and_skips_shortened_and_quick_runs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from plot_results import bars

    ngram = {"machine": "CPU x86_64, 2 cores", "orders": [
        {"order": o, "smoothing": "mkn", "test_ppl": p, "fit_seconds": 2.0} for o, p in ((2, 264.0), (3, 226.1), (5, 220.1))]}
    lstm = {"note": "one GPU", "model_config": {"n_layers": 2, "d_hidden": 650}, "test_ppl": 85.0, "train_seconds": 540.0}
    short = {"note": "SHORTENED to 200 steps", "model_config": {"n_layers": 4, "d_model": 128}, "test_ppl": 531.6,
             "train_seconds": 297.1}
    races = {"race_nvidia-h100.json": {"kind": "gpu", "machine": "GPU NVIDIA H100", "models": {"lstm": lstm, "transformer": short}},
             "race_cpu_quick.json": {"kind": "quick", "machine": "CPU", "models": {"lstm": lstm}}}
    for name, result in (("ngram.json", ngram), *races.items()):
        (tmp_path / name).write_text(json.dumps(result))
    assert bars(tmp_path) == [("3-gram\nKneser-Ney", 226.1, "2.0 s, CPU"), ("5-gram\nKneser-Ney", 220.1, "2.0 s, CPU"),
                              ("LSTM\n2×650", 85.0, "9.0 min, GPU")]


def test_a_quick_race_trains_both_models_and_saves_its_figures(tmp_path, shared_data, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import race

    out = tmp_path / "race.json"
    result = race.main(["--kind", "quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert set(saved["models"]) == {"lstm", "transformer"} and saved["kind"] == "quick"
    for r in saved["models"].values():
        assert r["steps"] == 40 and r["train_tokens"] > 0 and r["test_ppl"] > 1
        assert [p["step"] for p in r["valid_curve"]] == [20, 40] and r["valid_curve"][-1]["seconds"] > 0
    assert saved["models"]["transformer"]["mfu"] > 0
    assert saved["calibration"]["seconds"] is None and list(saved["races"]) == ["1"]  # quick mode counts steps


def test_a_quick_block_race_scores_both_blocks_per_word(tmp_path, shared_data, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import blocks

    out = tmp_path / "blocks.json"
    result = blocks.main(["--kind", "quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result)) and saved["bpe_vocab_size"] == 1_000
    assert set(saved["models"]) == {"gpt-bpe", "llama-bpe"}
    for r in saved["models"].values():
        assert r["steps"] == 40 and r["valid_ppl_per_word"] > r["valid_ppl"] > 1  # a word is > 1 token


def test_a_quick_search_runs_the_same_six_trials_and_names_the_best(tmp_path, shared_data, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import tune

    out = tmp_path / "tune.json"
    result = tune.main(["--kind", "quick", "--models", "transformer", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    search = saved["searches"]["transformer"]
    centre = search["centre"]
    assert [t["lr"] for t in search["trials"]] == [centre["lr"] * f for f in tune.LR_FACTORS
                                                   for _ in tune.WARMUP_FACTORS]
    assert tune.grid("transformer", "cpu")[1] == (2.5e-3, 0.15)  # half the lr, five times the warm-up
    best = min(search["trials"], key=lambda t: t["valid_ppl"])
    assert search["winner"] == {"lr": best["lr"], "warmup_fraction": best["warmup_fraction"],
                                "valid_ppl": best["valid_ppl"]}


RESULTS = BENCHMARKS / "results"


def test_the_cpu_race_recipes_are_the_winners_of_one_equal_search():
    from llmcourse.recipes import recipe_for

    tune = json.loads((RESULTS / "tune_cpu.json").read_text())
    searches = tune["searches"]
    assert set(searches) == {"lstm", "transformer"}
    assert len({len(s["trials"]) for s in searches.values()}) == 1  # the same number of trials for each
    for name, search in searches.items():
        assert {t["train_seconds"] >= tune["trial_seconds"] for t in search["trials"]} == {True}
        recipe = recipe_for(name, "cpu")
        winner = search["winner"]
        assert (recipe.train.lr, recipe.train.warmup_fraction) == (winner["lr"], winner["warmup_fraction"])


def test_the_cpu_race_recipes_take_the_batch_size_of_one_equal_second_search():
    """The second stage (``tune.py --stage batch``): three batch sizes each, at the first stage's winners."""
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    import tune as tune_script
    from llmcourse.recipes import recipe_for

    tune = json.loads((RESULTS / "tune_batch_cpu.json").read_text())
    assert tune["stage"] == "batch" and set(tune["searches"]) == {"lstm", "transformer"}
    for name, search in tune["searches"].items():
        recipe = recipe_for(name, "cpu")
        trials = search["trials"]
        assert [t["batch_size"] for t in trials] == tune_script.batch_grid(name, "cpu")
        assert {(t["lr"], t["warmup_fraction"]) for t in trials} == {(recipe.train.lr, recipe.train.warmup_fraction)}
        assert all(t["train_seconds"] >= tune["trial_seconds"] for t in trials)
        best = min(trials, key=lambda t: t["valid_ppl"])
        assert search["winner"] == {"batch_size": best["batch_size"], "valid_ppl": best["valid_ppl"]}
        assert recipe.batch_size == best["batch_size"]


def test_the_cpu_race_recipes_need_the_tokens_of_the_shortest_race_they_won():
    """``tokens_needed``: what each runner read in the shortest race where it beat the model before it."""
    from llmcourse.recipes import recipe_for

    race = json.loads((RESULTS / "race_cpu.json").read_text())
    won = {name: [r for r in race["races"].values() if r["targets"][target]["met"]]
           for name, target in (("lstm", "lstm_below_ngram"), ("transformer", "transformer_below_lstm"))}
    for name, races in won.items():
        shortest = min(races, key=lambda r: r["budget_seconds"])
        assert recipe_for(name, "cpu").tokens_needed == shortest["models"][name]["train_tokens"]
