"""The plots draw what they are given: the lines' data are the numbers passed in."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from llmcourse.plotting import plot_kv_cache, plot_vocab_tradeoff  # noqa: E402


def test_plot_vocab_tradeoff_draws_both_curves():
    fig = plot_vocab_tradeoff([500, 1000, 2000], [2.0, 1.6, 1.3], embedding_params=[64_000, 128_000, 256_000])
    main, twin = fig.axes
    assert list(main.lines[0].get_ydata()) == [2.0, 1.6, 1.3]
    assert np.allclose(twin.lines[0].get_ydata(), [0.064, 0.128, 0.256])
    assert main.get_xscale() == "log"


def test_plot_kv_cache_shows_the_speed_up_and_the_memory():
    fig = plot_kv_cache([32, 64], [1.0, 3.0], [0.5, 0.75], cache_bytes=[2**20, 2**21])
    times, speed_up, memory = fig.axes
    assert np.allclose(speed_up.lines[0].get_ydata(), [2.0, 4.0])
    assert np.allclose(memory.lines[0].get_ydata(), [1.0, 2.0])
    assert len(plot_kv_cache([32], [1.0], [0.5]).axes) == 2
