"""The course's interactive widgets (ipywidgets), kept apart from the maths they show.

Each function returns a widget: a notebook displays it, and a committed notebook keeps a static
picture beside it for readers without a live kernel.
"""

from __future__ import annotations

from typing import Callable, Sequence

import matplotlib.pyplot as plt
from torch import Tensor

from .plotting import plot_attention

__all__ = ["attention_explorer", "sentiment_widget"]


def attention_explorer(weights: dict[str, Tensor] | Tensor, keys: Sequence[Sequence[str]],
                       queries: Sequence[Sequence[str]] | None = None):
    """An ipywidgets explorer: pick an example, a layer and a head; see its weights over the tokens.

    ``weights``: ``{layer name: (batch, heads, t_q, t_k)}`` as :func:`capture_attention` gives, or one
    ``(batch, heads, t_q, t_k)`` tensor. ``keys[b]`` / ``queries[b]``: the tokens of example ``b``
    (queries default to the keys: self-attention). Padding beyond an example's tokens is cut off.
    Returns the widget (display it, or let it be a cell's last line).
    """
    import ipywidgets as widgets

    layers = weights if isinstance(weights, dict) else {"attention": weights}
    layers = {name: w.detach().float().cpu() for name, w in layers.items()}
    queries = keys if queries is None else queries
    for name, w in layers.items():
        if w.dim() != 4:
            raise ValueError(f"Layer {name!r}: expected (batch, heads, t_q, t_k) weights, got {tuple(w.shape)}.")
        if w.shape[0] < len(keys):
            raise ValueError(f"Layer {name!r} has {w.shape[0]} examples but {len(keys)} token lists were given.")
    example = widgets.IntSlider(value=0, min=0, max=len(keys) - 1, description="example")
    layer = widgets.Dropdown(options=list(layers), description="layer")
    n_heads = max(w.shape[1] for w in layers.values())
    head = widgets.Dropdown(options=["mean"] + list(range(n_heads)), value=0, description="head")
    out = widgets.Output()

    def draw(*_):
        from IPython.display import display

        w = layers[layer.value][example.value]
        use_mean = head.value == "mean" or head.value >= w.shape[0]  # layers may differ in their number of heads
        matrix = w.mean(0) if use_mean else w[head.value]
        ks, qs = list(keys[example.value]), list(queries[example.value])
        matrix = matrix[: len(qs), : len(ks)]
        with out:
            out.clear_output(wait=True)
            fig = plot_attention(matrix, ks, qs, title=f"{layer.value}, head {'mean' if use_mean else head.value}, "
                                                       f"example {example.value}")
            display(fig)
            plt.close(fig)

    for control in (example, layer, head):
        control.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([example, layer, head]), out])


def sentiment_widget(classify: Callable[[str], dict[str, float]], value: str = "A gorgeous, witty, seductive movie."):
    """A text box and a result line: type a sentence, see ``classify(sentence)`` (label -> probability)."""
    import ipywidgets as widgets

    box = widgets.Text(value=value, description="Sentence:", layout=widgets.Layout(width="90%"),
                       continuous_update=False)
    out = widgets.HTML()

    def show(_=None):
        scores = classify(box.value)
        out.value = " &nbsp; ".join(f"<b>{k}</b> {v:.1%}" for k, v in scores.items())

    box.observe(show, names="value")
    show()
    return widgets.VBox([box, out])
