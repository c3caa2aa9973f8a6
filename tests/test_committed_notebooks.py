"""The committed notebooks read well without a kernel: what `course.py refresh` (tools.tidy) guarantees."""

import re
from pathlib import Path

import nbformat
import pytest

from tools.tidy import KERNELSPEC

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))
MACHINE_PATH = re.compile(r"(?<![\w<])(/work/|/home/|/Users/|/tmp/|/root/|[A-Z]:\\\\Users)")


def _outputs(nb):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            yield index, output


def _texts(output):
    if "text" in output:
        yield output["text"]
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/"):
            yield value if isinstance(value, str) else "".join(value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_tidy(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec") == KERNELSPEC, "run `python3 course.py refresh` to save it as committed"
    assert "widgets" not in nb.metadata
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "outputs must come from one restart-and-run-all, in order"
    for index, output in _outputs(nb):
        where = f"{path.name}, cell {index}"
        assert output["output_type"] != "error", f"{where}: an error output"
        assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), f"{where}: a bare widget"
        for text in _texts(output):
            assert not MACHINE_PATH.search(text), f"{where}: a machine path: {MACHINE_PATH.search(text).group(0)}"
            assert not re.search(r"\b0%\|", text), f"{where}: a progress bar saved before it moved"
