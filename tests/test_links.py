"""The repository's address is written once, in pyproject.toml: badges and install cells must agree with it."""

from pathlib import Path

import nbformat
import pytest

import subprocess

from tools.links import (WEIGHTS_NOTEBOOKS, install_block, pinned_commit, repository_url, rewrite_notebook,
                              rewrite_text, without_dependencies)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def test_the_readme_badges_agree_with_pyproject():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert rewrite_text(text, repository_url()) == text, "run `python3 course.py links`"
    assert text.count("colab.research.google.com/github/") == len(NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_installs_from_pyprojects_address(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    commit = pinned_commit(first.source)
    assert commit, "the install is not pinned to a commit: run `python3 course.py links`"
    no_deps = without_dependencies() if path.name.startswith(WEIGHTS_NOTEBOOKS) else []
    assert install_block(repository_url(), commit, no_deps) in first.source, "run `python3 course.py links`"
    for cell in nb.cells:
        assert rewrite_text(cell.source, repository_url()) == cell.source


def _git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_pins_a_commit_of_this_history(path):
    """The pinned commit is one of this repository's (where the history is here: not in a shallow clone)."""
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() != "false":
        pytest.skip("no whole git history here")
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    commit = pinned_commit(first.source)
    assert _git("merge-base", "--is-ancestor", commit, "HEAD").returncode == 0, f"{commit} is not in HEAD's history"


def test_rewriting_follows_a_new_address_and_keeps_the_pin(tmp_path):
    source = next(p for p in NOTEBOOKS)
    copy = tmp_path / source.name
    copy.write_bytes(source.read_bytes())
    commit = pinned_commit(next(c for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code").source)
    assert rewrite_notebook(copy, "https://github.com/someone/fork")
    nb = nbformat.read(copy, as_version=4)
    text = "".join(c.source for c in nb.cells)
    assert f"git+https://github.com/someone/fork@{commit}" in text
    assert "github/someone/fork/blob/main/notebooks/" in text
    assert not rewrite_notebook(copy, "https://github.com/someone/fork")  # a second run changes nothing
    assert rewrite_notebook(copy, "https://github.com/someone/fork", "0" * 40)
    assert "fork@" + "0" * 40 in "".join(c.source for c in nbformat.read(copy, as_version=4).cells)
    with pytest.raises(ValueError, match="40 hexadecimal"):
        install_block("https://github.com/someone/fork", "main")
