"""course.py, the README's entry point: how it names notebooks for `course.py refresh`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
course = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(course)


def test_notebook_names_by_prefix():
    assert [p.name for p in course.notebook_paths(["02", "04_transformer_lm.ipynb"])] == [
        "02_rnn_lm.ipynb", "04_transformer_lm.ipynb"]
    assert [p.name for p in course.notebook_paths([])] == sorted(p.name for p in (ROOT / "notebooks").glob("0*.ipynb"))


def test_an_ambiguous_or_unknown_name_is_a_clear_error():
    count = len(list((ROOT / "notebooks").glob("0*.ipynb")))
    with pytest.raises(SystemExit, match=f"'0' names {count} notebooks; choose one of: 00_language_models"):
        course.notebook_paths(["0"])
    with pytest.raises(SystemExit, match="'rnn' names 0 notebooks"):
        course.notebook_paths(["rnn"])
