"""Every sentence earned by its output (issue 29): no hand-typed measured number in the notebooks' prose, and
no committed "predict, then measure" cell that shows its answer under the question."""

import json
import re
from pathlib import Path

import pytest

from tools.claims import unearned

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def _notebook(tmp_path, markdown: str, printed: str) -> Path:
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [markdown]},
                    {"cell_type": "code", "metadata": {}, "source": ["print(x)"], "execution_count": 1,
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": [printed]}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_a_hand_typed_number_is_flagged_and_a_printed_or_cited_one_is_not(tmp_path):
    flagged = unearned(_notebook(tmp_path, "The model reaches a perplexity of 144.5 on the test set.", "test 150.2"))
    assert [row["number"] for row in flagged] == ["144.5"]
    assert unearned(_notebook(tmp_path, "The model reaches a perplexity of 144.5.", "test perplexity 144.5")) == []
    assert unearned(_notebook(tmp_path, "GPT-2 reached 29.41 (Radford et al., 2019).", "nothing")) == []
    assert unearned(_notebook(tmp_path, "It has 1,234 words.", "1234 words")) == []  # the same figure, printed plainly
    assert unearned(_notebook(tmp_path, "Two layers of `d_model=256` in section 4.", "")) == []  # code, choices


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_is_printed_or_cited(path):
    rows = unearned(path)
    assert not rows, "hand-typed numbers (print them from the run, cite them, or keep the sentence general):\n" + \
        "\n".join(f"cell {r['cell']}: {r['number']} in: {r['sentence']}" for r in rows)


_MEASURES = re.compile(r"\bmy_prediction\b(?!\s*=[^=])")  # a use of the prediction, not its assignment


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_committed_prediction_cell_shows_its_answer(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(nb["cells"]):
        code = "\n".join(line.split("#")[0] for line in "".join(cell["source"]).splitlines())  # comments left out
        if cell["cell_type"] != "code" or not _MEASURES.search(code):
            continue
        shown = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                        for o in cell.get("outputs", []))
        assert "predict first" in shown, f"{path.name} cell {index}: a prediction cell committed without its question"
        assert "you predicted" not in shown and "predictions held" not in shown, \
            f"{path.name} cell {index}: a prediction cell committed with its answer"
