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


def test_relative_data_and_cache_folders_are_made_absolute_once_for_every_kernel(tmp_path):
    """`LLMCOURSE_DATA=../shared/data python3 course.py test` from the checkout: the kernels run in notebooks/,
    where the same relative path would name another folder."""
    import subprocess
    import sys

    env = course.absolute_folders({"LLMCOURSE_DATA": "../shared/data", "LLMCOURSE_CACHE": "~/c", "OTHER": "x"},
                                  start=ROOT)
    assert env == {"LLMCOURSE_DATA": str((ROOT / "../shared/data").resolve()),
                   "LLMCOURSE_CACHE": str(Path("~/c").expanduser().resolve()), "OTHER": "x"}
    seen = subprocess.run([sys.executable, "-c", "from llmcourse.config import data_dir; print(data_dir())"],
                          cwd=ROOT / "notebooks", env={**__import__("os").environ, **env}, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert seen == str((ROOT / "../shared/data").resolve())
    assert course.absolute_folders({"LLMCOURSE_DATA": ""}) == {"LLMCOURSE_DATA": ""}  # unset stays unset


def test_an_environment_that_has_everything_needs_no_pip_and_one_that_lacks_something_says_what(tmp_path):
    """A second `course.py lab` offline: nothing to install, so pip (and the network) is not called."""
    import sys

    python = Path(sys.executable)
    if course.unmet_requirements(python):  # this process does not run in the course's own environment
        pytest.skip("tests run outside an environment made by course.py from this checkout")
    text = (ROOT / "pyproject.toml").read_text()
    wanting = tmp_path / "pyproject.toml"
    wanting.write_text(text.replace('"numpy>=1.26",', '"numpy>=99",\n    "no-such-package-here>=1",'))
    assert course.unmet_requirements(python, wanting) == [
        f"numpy {__import__('numpy').__version__} (pyproject.toml asks for >=99)", "no-such-package-here (not installed)"]


def test_lab_opens_with_the_data_there_is_and_names_what_each_notebook_lacks(tmp_path):
    """Only WikiText-2 here: `lab` names SST-2 and the notebooks that need it, and opens; `test` stops."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "data"
    (folder / "wikitext-2").mkdir(parents=True)
    for name in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
        (folder / "wikitext-2" / name).write_text("")  # present is all the check asks; loading checks contents
    env = {**os.environ, "LLMCOURSE_DATA": str(folder)}
    run = lambda mode: subprocess.run([sys.executable, "-c", course.DATA_CHECK, mode], env=env,  # noqa: E731
                                      capture_output=True, text=True)
    lab = run("lab")
    assert lab.returncode == 0, lab.stderr
    assert "has no sst2/SST-2/train.tsv (sst2 train)" in lab.stdout
    assert "JupyterLab opens anyway: notebooks 05, 07 need sst2 and will say so; notebooks 00, 01, 02, 03, 04, " \
           "06 can run." in lab.stdout
    strict = run("strict")
    assert strict.returncode == 2 and "JupyterLab" not in strict.stdout and "sst2" in strict.stdout
