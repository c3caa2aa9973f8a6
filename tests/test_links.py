"""The repository's address is written once, in pyproject.toml: badges and install cells must agree with it."""

from pathlib import Path

import nbformat
import pytest

from llmcourse._links import install_block, repository_url, rewrite_notebook, rewrite_text

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
    assert install_block(repository_url()) in first.source, "run `python3 course.py links`"
    for cell in nb.cells:
        assert rewrite_text(cell.source, repository_url()) == cell.source


def test_rewriting_follows_a_new_address(tmp_path):
    source = next(p for p in NOTEBOOKS)
    copy = tmp_path / source.name
    copy.write_bytes(source.read_bytes())
    assert rewrite_notebook(copy, "https://github.com/someone/fork")
    nb = nbformat.read(copy, as_version=4)
    text = "".join(c.source for c in nb.cells)
    assert "git+https://github.com/someone/fork" in text and "github/someone/fork/blob/main/notebooks/" in text
    assert not rewrite_notebook(copy, "https://github.com/someone/fork")  # a second run changes nothing
