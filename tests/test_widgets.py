"""Tests for llmcourse.plotting and llmcourse.widgets: they build, and refuse bad input clearly."""

import pytest
import torch


def test_plot_attention_and_explorer_build():
    import matplotlib

    matplotlib.use("Agg")
    from llmcourse.plotting import plot_attention
    from llmcourse.widgets import attention_explorer

    w = torch.softmax(torch.randn(2, 3, 4, 5), -1)
    fig = plot_attention(w[0, 1], list("abcde"), list("wxyz"), title="t")
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    with pytest.raises(ValueError, match="one \\(t_q, t_k\\) matrix"):
        plot_attention(w[0])
    with pytest.raises(ValueError, match="labels"):
        plot_attention(w[0, 0], list("abc"))
    widget = attention_explorer({"layer 0": w, "layer 1": w[:, :1]}, keys=[list("abcde"), list("abc")],
                                queries=[list("wxyz"), list("wx")])
    example, layer, head = widget.children[0].children
    assert example.max == 1 and list(layer.options) == ["layer 0", "layer 1"] and list(head.options) == ["mean", 0, 1, 2]
    example.value, layer.value, head.value = 1, "layer 1", 2  # a head this layer lacks: shows the mean, no error
    with pytest.raises(ValueError, match="batch, heads, t_q, t_k"):
        attention_explorer(w[0], keys=[list("abcde")])
