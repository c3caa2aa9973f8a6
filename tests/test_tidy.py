"""tools.tidy: committed notebooks show finished bars, static widget fallbacks and no machine paths."""

from pathlib import Path

import nbformat

from tools.tidy import KERNELSPEC, WIDGET_NOTE, machine_paths, tidy, tidy_file

VIEW = "application/vnd.jupyter.widget-view+json"


def _model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def _ref(*ids):
    return [f"IPY_MODEL_{i}" for i in ids]


def _view(model_id, text):
    return nbformat.v4.new_output("display_data", data={VIEW: {"model_id": model_id, "version_major": 2,
                                                                "version_minor": 0}, "text/plain": text})


def _notebook():
    state = {
        "bar": _model("HBoxModel", children=_ref("left", "progress", "right")),
        "left": _model("HTMLModel", value="training:\u2007100%"),
        "progress": _model("FloatProgressModel", value=600.0, max=600.0),
        "right": _model("HTMLModel", value="\u2007600/600\u2007s\u2007[10:00&lt;00:00]"),
        "box": _model("VBoxModel", children=_ref("slider", "layer", "html", "out")),
        "layer": _model("DropdownModel", description="layer", index=1, _options_labels=["enc", "dec"]),
        "slider": _model("FloatSliderModel", description="temperature", value=0.8),
        "html": _model("HTMLModel", value="<b>positive</b> 91.0%"),
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}, "metadata": {}}]}},
    }
    cell = nbformat.v4.new_code_cell("train()")
    cell.outputs = [_view("bar", "training:   0%|          | 0/600 s"),
                    nbformat.v4.new_output("stream", name="stdout", text="saved to /home/learner/course/data/x\n"),
                    _view("box", "VBox(children=(FloatSlider(value=0.8...")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    return nb


def test_bars_become_their_final_line_and_widgets_a_static_view():
    nb = tidy(_notebook(), pairs=[("/home/learner/course", "<repo>"), ("/home/learner", "~")])
    outputs = nb.cells[0].outputs
    assert outputs[0].output_type == "stream" and outputs[0].text == "training: 100%|██████████| 600/600 s [10:00<00:00]\n"
    assert outputs[1].text == "saved to <repo>/data/x\n" + WIDGET_NOTE + "\ntemperature: 0.8\nlayer: dec\npositive 91.0%\n"
    assert outputs[2].data["image/png"] == "iVBOR"  # the picture the explorer showed when saved
    assert all(VIEW not in o.get("data", {}) for o in outputs)
    assert "widgets" not in nb.metadata and nb.metadata["kernelspec"] == KERNELSPEC


def test_a_widget_without_saved_state_keeps_its_text_only(tmp_path):
    nb = _notebook()
    del nb.metadata["widgets"]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    tidy_file(path)
    outputs = nbformat.read(path, 4).cells[0].outputs
    assert [list(o.get("data", {})) for o in outputs] == [["text/plain"], [], ["text/plain"]]
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed


def test_machine_paths_longest_first(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_DATA", str(tmp_path / "data"))
    pairs = machine_paths(Path("/srv/course"))
    assert (str(tmp_path / "data"), "<data folder>") in pairs and ("/srv/course", "<repo>") in pairs
    assert [len(p) for p, _ in pairs] == sorted((len(p) for p, _ in pairs), reverse=True)
