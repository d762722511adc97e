"""A sweep's pictures stay readable whatever the grid's shape: a curve for one setting, a heatmap
for two (cell labels only when few), the pair named for more; built from columns, never per row."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np

from jaxopt_lab import plots


def grid_columns(axes: dict[str, list], seeds: int, *, diverged=lambda columns: False) -> dict:
    """Columns of a full grid with made-up results: accuracy and cost from the settings."""
    mesh = np.meshgrid(*axes.values(), np.arange(seeds), indexing="ij")
    columns = {name: m.ravel() for name, m in zip([*axes, "seed"], mesh, strict=True)}
    lr = columns[next(iter(axes))].astype(float)
    columns["final_cost"] = 0.3 + 0.1 * np.abs(np.log10(lr) + 2) + 0.01 * columns["seed"]
    columns["accuracy"] = 1 - columns["final_cost"] / 2
    lost = diverged(columns)
    columns["diverged_at_epoch"] = np.where(lost, 5, -1)
    for metric in ("final_cost", "accuracy"):
        columns[metric] = np.where(lost, np.nan, columns[metric])
    return columns


def test_one_setting_is_a_curve_on_a_log_axis_with_its_band_and_diverged_points_marked():
    rates = np.geomspace(1e-4, 10, 64).tolist()
    columns = grid_columns({"learning_rate": rates, "b1": [0.9]}, 4,
                           diverged=lambda c: c["learning_rate"] > 2)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.plot_sweep(columns, ["learning_rate", "b1"], title="t")
        fig.canvas.draw()
    accuracy, cost = fig.axes
    assert accuracy.get_xscale() == "log" and accuracy.get_ylabel() == "accuracy"
    assert not accuracy.get_images()  # a curve, not a 64-cell strip
    mean = next(line for line in accuracy.get_lines() if line.get_label() == "mean")
    expected = np.array([np.mean(columns["accuracy"][i * 4 : i * 4 + 4]) for i in range(64)])
    np.testing.assert_allclose(mean.get_ydata(), expected)  # NaN where every seed diverged
    marks = next(line for line in accuracy.get_lines() if line.get_label().startswith("diverged"))
    assert marks.get_xdata().tolist() == [r for r in rates if r > 2]
    assert marks.get_label() == f"diverged ({4 * sum(r > 2 for r in rates)} runs)"
    assert accuracy.collections  # the band over seeds
    width, height = fig.get_size_inches()
    assert width <= 12 and height <= 6


def test_two_settings_are_a_heatmap_labelled_only_when_its_cells_are_few():
    few = grid_columns({"learning_rate": [1e-3, 1e-2, 1e-1], "b1": [0.8, 0.9]}, 2)
    fig = plots.plot_sweep(few, ["learning_rate", "b1"])
    assert len(fig.axes[0].texts) == 6 and fig.axes[0].texts[0].get_text().count("±") == 1

    many = grid_columns({"learning_rate": np.geomspace(1e-4, 1, 1000).tolist(),
                         "b1": np.linspace(0.5, 0.99, 1000).tolist()}, 1)  # fmt: skip
    fig = plots.plot_sweep(many, ["learning_rate", "b1"])
    fig.canvas.draw()  # a million cells: one image, about a dozen tick labels, no text
    heatmap = fig.axes[0]
    assert not heatmap.texts and heatmap.get_images()[0].get_array().shape == (1000, 1000)
    assert len(heatmap.get_xticklabels()) <= plots.TICKS
    width, height = fig.get_size_inches()
    assert width <= 16 and height <= 6.5


def test_more_settings_show_the_two_with_most_values_and_name_the_rest():
    columns = grid_columns({"learning_rate": [1e-3, 1e-2, 1e-1, 1.0], "b1": [0.8, 0.9, 0.95],
                            "b2": [0.99, 0.999], "eps": [1e-8]}, 1)  # fmt: skip
    fig = plots.plot_sweep(columns, ["learning_rate", "b1", "b2", "eps"], title="adam")
    assert fig.axes[0].get_xlabel() == "learning_rate" and fig.axes[0].get_ylabel() == "b1"
    assert "averaged over b2 (2 values)" in fig._suptitle.get_text()
    assert "eps" not in fig._suptitle.get_text()  # one value: not varied
    assert matplotlib.get_backend()  # drawn with Agg, no display needed
