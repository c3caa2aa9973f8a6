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
    from _report import save, stamp

    result = stamp("demo", kind="cpu") | {"ppl": 123.4, "valid_curve": [[1, 500.0], [2, 300.0]]}
    assert list(result)[:4] == ["benchmark", "kind", "machine", "date"]
    path = save(result, tmp_path / "results" / "demo.json", hide=("valid_curve",))
    assert json.loads(path.read_text()) == result
    printed = capsys.readouterr().out
    assert '"ppl": 123.4' in printed and "valid_curve" not in printed
    assert [p.name for p in path.parent.iterdir()] == ["demo.json"]  # no temporary file left behind
