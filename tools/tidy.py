"""Make an executed notebook read well where no kernel runs it (GitHub, a fresh JupyterLab), as committed.

``python3 course.py refresh`` runs each notebook, then this module (``python -m tools.tidy PATH...``):

* a finished **progress bar** (tqdm's widget) becomes its final line of text, ``training: 100%|██████████| 600/600 s
  [...]``, instead of the widget's first repr (``0%``), which is all that shows without the widget state;
* any other **widget** (sliders, explorers) becomes a static fallback: its controls' values, its HTML text and
  the pictures its output area held when it was saved, under a one-line note saying it is live in a kernel;
* **machine paths** (the repository, the home folder, the data folder, the temporary folder) in outputs become
  placeholders (``<repo>``, ``~``, ``<data folder>``, ``<tmp>``);
* the **kernelspec** is the one JupyterLab writes (``Python 3 (ipykernel)``), so opening a notebook does not
  change it, and the widget state, which churns every diff, is dropped.

Not part of the course's teaching: it is how the committed notebooks are kept.
"""

from __future__ import annotations

import html
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

__all__ = ["tidy", "tidy_file", "machine_paths", "KERNELSPEC", "WIDGET_NOTE"]

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
WIDGET_NOTE = "[interactive widget: it is live when you run the notebook; below, what it showed when saved]"
_VIEW = "application/vnd.jupyter.widget-view+json"
_STATE = "application/vnd.jupyter.widget-state+json"
_CONTROLS = ("Slider", "Dropdown", "Text", "Checkbox", "ToggleButtons", "RadioButtons", "Select", "Textarea")


def machine_paths(repo: Path | None = None) -> list[tuple[str, str]]:
    """(path, placeholder) pairs, longest path first, for this machine's folders that outputs may show."""
    repo = repo or Path(__file__).resolve().parent.parent
    pairs = [(str(repo), "<repo>"), (tempfile.gettempdir(), "<tmp>"), (str(Path.home()), "~")]
    data = os.environ.get("LLMCOURSE_DATA")
    if data:
        pairs += [(str(Path(data).resolve()), "<data folder>"), (data.rstrip("/"), "<data folder>")]
    pairs = [(p, r) for p, r in pairs if len(p) > 1]
    return sorted(set(pairs), key=lambda pr: -len(pr[0]))


def _text(value: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", value)).replace("\u2007", " ")


def _children(state: dict, model_id: str) -> list[str]:
    return [c.removeprefix("IPY_MODEL_") for c in state.get(model_id, {}).get("state", {}).get("children", [])]


def _progress_line(state: dict, model_id: str) -> str | None:
    """tqdm's notebook bar (an HBox of HTML, FloatProgress, HTML) as the line tqdm prints in a terminal."""
    kids = _children(state, model_id)
    names = [state.get(k, {}).get("model_name") for k in kids]
    if names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (state[k]["state"] for k in kids)
    total, value = bar.get("max") or 0, bar.get("value") or 0
    filled = int(10 * value / total) if total else 0
    return f"{_text(left.get('value', ''))}|{'█' * filled}{' ' * (10 - filled)}|{_text(right.get('value', ''))}"


def _static(state: dict, model_id: str, lines: list[str], outputs: list[dict]) -> None:
    """Walk a widget tree: controls and HTML become lines of text; output areas give their outputs."""
    model = state.get(model_id)
    if model is None:
        return
    name, s = model.get("model_name", ""), model.get("state", {})
    line = _progress_line(state, model_id)
    if line is not None:
        lines.append(line)
    elif name == "OutputModel":
        outputs.extend(s.get("outputs", []))
    elif name in ("HTMLModel", "LabelModel", "HTMLMathModel"):
        if s.get("value"):
            lines.append(_text(s["value"]))
    elif any(c in name for c in _CONTROLS):
        value = s.get("value")
        labels, index = s.get("_options_labels"), s.get("index")
        if value is None and labels is not None and isinstance(index, int) and 0 <= index < len(labels):
            value = labels[index]  # selection widgets save the index of the chosen label
        lines.append(f"{s.get('description') or name.removesuffix('Model')}: {value}")
    for child in _children(state, model_id):
        _static(state, child, lines, outputs)


def _replace_paths(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for path, placeholder in pairs:
            value = value.replace(path, placeholder)
        return value
    if isinstance(value, list):
        return [_replace_paths(v, pairs) for v in value]
    return value


def _tidy_output(output: dict, state: dict, pairs: list[tuple[str, str]]) -> list[dict]:
    data = output.get("data", {})
    if _VIEW in data:
        model_id = data[_VIEW]["model_id"]
        if model_id not in state:  # no state saved: keep the text repr only, never a dangling widget
            data.pop(_VIEW)
            return [output]
        line = _progress_line(state, model_id)
        if line is not None:
            return [nbformat.v4.new_output("stream", name="stderr", text=_replace_paths(line, pairs) + "\n")]
        lines, inner = [WIDGET_NOTE], []
        _static(state, model_id, lines, inner)
        return [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")] + [
            o for item in inner for o in _tidy_output(nbformat.from_dict(item), state, pairs)]
    if "text" in output:
        output["text"] = _replace_paths(output["text"], pairs)
    for mime in ("text/plain", "text/html", "text/markdown"):
        if mime in data:
            data[mime] = _replace_paths(data[mime], pairs)
    return [output]


def tidy(nb: nbformat.NotebookNode, pairs: list[tuple[str, str]] | None = None) -> nbformat.NotebookNode:
    """The notebook, tidied as the module docstring says (in place; also returned)."""
    pairs = machine_paths() if pairs is None else pairs
    state = nb.metadata.pop("widgets", {}).get(_STATE, {}).get("state", {})
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams([o for out in cell.outputs for o in _tidy_output(out, state, pairs)])
    return nb


def _merge_streams(outputs: list[dict]) -> list[dict]:
    """Adjacent stream outputs of the same name as one, the way a live notebook shows them."""
    merged: list[dict] = []
    for o in outputs:
        if merged and o.get("output_type") == "stream" == merged[-1].get("output_type") and o.get("name") == merged[-1].get("name"):
            merged[-1]["text"] += o["text"]
        else:
            merged.append(o)
    return merged


def tidy_file(path: str | os.PathLike) -> None:
    """Tidy the notebook at ``path`` in place (written whole to a temporary file, then renamed)."""
    path = Path(path)
    nb = tidy(nbformat.read(path, as_version=4))
    tmp = path.with_name(path.name + ".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(path)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        tidy_file(arg)
