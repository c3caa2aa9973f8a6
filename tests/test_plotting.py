"""The plots draw what they are given: the lines' data are the numbers passed in."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from llmcourse.plotting import plot_compute_optimal, plot_kv_cache, plot_scaling, plot_vocab_tradeoff  # noqa: E402
from llmcourse.scaling import PowerLaw  # noqa: E402


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


def test_plot_scaling_draws_each_budget_each_size_the_frontier_and_the_fits():
    rows = [{"size": f"s{n}", "params": n, "budget": d, "flops": 6.0 * n * d, "valid_loss": 2 + 10 / n ** 0.3 + 5 / d ** 0.2}
            for n in (10, 100, 1000) for d in (1e3, 1e4)]
    fig = plot_scaling(rows, law_n=PowerLaw(2.0, 1.0, 0.3), law_c=PowerLaw(2.0, 1.0, 0.1), frontier=[0, 2])
    by_size, by_compute = fig.axes
    assert len(by_size.lines) == 2 + 1 and len(by_compute.lines) == 3 + 2  # lines, the frontier, the fits
    assert list(by_size.lines[1].get_ydata()) == [r["valid_loss"] for r in rows if r["budget"] == 1e4]
    assert list(by_compute.lines[3].get_xdata()) == [rows[0]["flops"], rows[2]["flops"]]
    assert by_size.get_xscale() == by_compute.get_yscale() == "log"
    assert "N^-0.30" in by_size.get_legend().get_texts()[-1].get_text()


def test_plot_compute_optimal_draws_the_steps_and_the_fit():
    best = [{"flops": c, "params": n} for c, n in [(1e10, 10), (1e11, 10), (1e12, 100)]]
    fig = plot_compute_optimal(best, fit=(1e-4, 0.5), sizes={"s10": 10, "s100": 100})
    ax = fig.axes[0]
    assert list(ax.lines[0].get_ydata()) == [10, 10, 100]
    assert np.allclose(ax.lines[1].get_ydata(), 1e-4 * np.array([1e10, 1e11, 1e12]) ** 0.5)


def test_plot_ability_draws_accuracy_and_chance():
    from llmcourse.plotting import plot_ability

    ax = plot_ability([10, 100], [0.3, 0.5], 0.25, names=["a", "b"]).axes[0]
    assert list(ax.lines[0].get_ydata()) == [0.3, 0.5] and list(ax.lines[1].get_ydata()) == [0.25, 0.25]
