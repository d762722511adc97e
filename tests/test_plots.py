"""Pictures: figures with the right panels and lines, PNG files, and the optimizer paths' maths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure

from jaxopt_lab import data, model, optimizers, plots, sweep_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def moons():
    return data.load_moons()


@pytest.fixture(scope="module")
def params():
    return model.init_params([2, 5, 2, 1])


def test_cost_curves_one_line_per_run(tmp_path):
    curves = {"a": np.linspace(0.7, 0.1, 50), "b": [0.7, 0.5, 0.4]}
    fig = plots.plot_cost_curves(curves, title="t")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [0.7, 0.5, 0.4])
    assert ax.get_xlabel() == "epoch" and ax.get_title() == "t"
    assert ax.get_legend() is not None
    path = plots.save_png(fig, tmp_path / "nested" / "cost.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_a_single_curve_has_no_legend():
    (ax,) = plots.plot_cost_curves({"only": [1.0, 0.5]}).axes
    assert ax.get_legend() is None


def test_decision_boundary_covers_the_data(moons, params, tmp_path):
    X, Y = moons
    fig = plots.plot_decision_boundary(params, X, Y, title="init", grid_steps=50)
    (ax,) = fig.axes
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < X[0].min() and X[0].max() < x1 and y0 < X[1].min() and X[1].max() < y1
    points = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets"))
    assert points >= X.shape[1]
    assert ax.get_title() == "init"
    assert plots.save_png(fig, tmp_path / "b.png").read_bytes()[:8] == PNG_MAGIC


def test_boundary_grid_has_one_panel_per_run(moons, params):
    X, Y = moons
    runs = {f"run {i}": params for i in range(7)}
    fig = plots.plot_decision_boundaries(runs, X, Y, columns=4, grid_steps=20)
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:7]] == list(runs)
    assert not fig.axes[7].axison


def test_gd_path_on_the_bowl_is_the_closed_form():
    # GD on (x^2 + 50 y^2)/2: x_k = (1 - lr)^k x_0, y_k = (1 - 50 lr)^k y_0.
    lr, steps, start = 0.038, 60, np.array([-9.0, 1.2])
    path = plots.optimizer_path(plots.elongated_bowl, start, optimizers.gd(lr), steps)
    k = np.arange(steps + 1)[:, None]
    expected = start * np.array([1 - lr, 1 - 50 * lr]) ** k
    np.testing.assert_allclose(path, expected, rtol=1e-4, atol=1e-6)


def test_momentum_path_is_the_ema_recursion():
    lr, beta, steps, start = 0.038, 0.9, 60, np.array([-9.0, 1.2])
    path = plots.optimizer_path(plots.elongated_bowl, start, optimizers.momentum(lr, beta), steps)
    point, velocity, expected = start.copy(), np.zeros(2), [start.copy()]
    for _ in range(steps):
        velocity = beta * velocity + (1 - beta) * point * np.array([1.0, 50.0])
        point = point - lr * velocity
        expected.append(point.copy())
    np.testing.assert_allclose(path, expected, rtol=1e-4, atol=1e-5)


def test_gradient_noise_is_seeded():
    def path(seed, noise):
        opt = optimizers.gd(0.038)
        return plots.optimizer_path(
            plots.elongated_bowl, (-9.0, 1.2), opt, 60, noise=noise, seed=seed
        )

    np.testing.assert_array_equal(path(0, 3.0), path(0, 3.0))
    assert not np.array_equal(path(0, 3.0), path(1, 3.0))
    assert not np.array_equal(path(0, 3.0), path(0, 0.0))


def test_adam_finds_the_rosenbrock_minimum():
    path = plots.optimizer_path(plots.rosenbrock, (-1.2, 1.0), optimizers.adam(0.05), 500)
    assert float(plots.rosenbrock(path[0])) > 20 * float(plots.rosenbrock(path[-1]))
    assert np.all(np.isfinite(path))


def test_paths_figure_draws_five_methods_on_two_surfaces():
    fig = plots.plot_paths()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax, surface in zip(fig.axes, ("bowl", "rosenbrock"), strict=True):
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        methods = [m.label for m in plots.lesson_methods(surface)]
        assert labels == [*methods, "start", "minimum"]
        assert ["GD", "noisy", "momentum", "RMSprop", "Adam"] == [m.split()[0] for m in methods]


def test_unknown_surface_is_refused():
    with pytest.raises(ValueError, match="surface"):
        plots.lesson_methods("saddle")


def test_optimizer_paths_stay_float32_under_x64(x64):
    # The paths are drawn in float32 whatever the precision; noise must not promote the state.
    points = plots.optimizer_path(
        plots.elongated_bowl, (-9.0, 1.2), optimizers.momentum(0.038, 0.9), 5, noise=3.0
    )
    assert points.dtype == np.float32 and points.shape == (6, 2)
    assert np.all(np.isfinite(points))


def _sweep_row(learning_rate, seed, cost, accuracy, diverged_at=None):
    return {"optimizer": "adam", "learning_rate": learning_rate, "b1": 0.9, "seed": seed,
            "diverged_at_epoch": diverged_at, "final_cost": cost, "accuracy": accuracy}  # fmt: skip


def test_sweep_heatmap_masks_diverged_cells_without_numpy_warnings():
    rows = [
        _sweep_row(0.01, 0, 0.4, 0.8),
        _sweep_row(0.01, 1, 0.2, 0.9),
        _sweep_row(0.1, 0, 0.3, 0.85),
        _sweep_row(0.1, 1, None, None, diverged_at=7),  # one of the cell's two runs diverged
        _sweep_row(1e15, 0, None, None, diverged_at=0),  # every run of the cell diverged
        _sweep_row(1e15, 1, None, None, diverged_at=0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = sweep_plots.plot_sweep_heatmap(rows, title="t")
        fig.canvas.draw()
    accuracy_ax = fig.axes[0]
    texts = [t.get_text() for t in accuracy_ax.texts]
    assert texts[0] == f"{np.mean([0.8, 0.9]):.3f}\n±{np.std([0.8, 0.9]):.3f}"
    assert texts[1] == f"{0.85:.3f}\n±{0.0:.3f}\n1 diverged"
    assert texts[2] == "diverged"
    (image,) = accuracy_ax.get_images()
    assert list(np.ma.getmaskarray(image.get_array())[0]) == [False, False, True]
