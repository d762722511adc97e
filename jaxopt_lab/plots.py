"""The lesson's pictures: cost curves, decision boundaries, and optimizer paths on 2-D functions.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``, so they
render with Agg, need no display and leave matplotlib's global state alone. Each ``plot_*`` function
returns the figure; :func:`save_png` writes it (also those of many runs: :mod:`jaxopt_lab.seed_plots`
for runs over seeds and learning rates, :mod:`jaxopt_lab.sweep_plots` for sweeps, whose pictures
are named here too, where the command, the results' writers and the notebook find them).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure

from jaxopt_lab import model, optimizers, runtime
from jaxopt_lab.seed_plots import plot_cost_bands as plot_cost_bands
from jaxopt_lab.seed_plots import plot_lr_curves as plot_lr_curves
from jaxopt_lab.seed_plots import plot_seed_distributions as plot_seed_distributions
from jaxopt_lab.sweep_plots import TICKS as TICKS
from jaxopt_lab.sweep_plots import float_ends_quiet as float_ends_quiet
from jaxopt_lab.sweep_plots import plot_sweep as plot_sweep

# Class 0 / class 1: the same two colours for the points and the regions they are predicted in.
CLASS_COLORS = ("#d1495b", "#2e86ab")
REGION_COLORS = ListedColormap(["#f6d5d9", "#d3e8f2"])
DPI = 100


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG, atomically (creating the parent folder), and return the path
    (quiet at the float range's ends: :func:`float_ends_quiet`)."""

    @float_ends_quiet()
    def render(f) -> None:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")

    return runtime.atomic_write(path, render)


# ---------------------------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------------------------


def plot_cost_curves(
    curves: Mapping[str, Sequence[float] | np.ndarray], *, title: str = "Cost per epoch"
) -> Figure:
    """The reported cost of every epoch, one line per run.

    Args:
      curves: run label -> the run's cost per epoch (``FitResult.costs``).
      title: the axes title.

    Returns:
      A figure with epochs on x and the cost (mean cross-entropy) on y.
    """
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    for i, (label, costs) in enumerate(curves.items()):
        costs = np.asarray(costs)
        # Alternate solid and dashed so that runs with near-equal costs stay visible.
        style = "-" if i % 2 == 0 else "--"
        ax.plot(np.arange(costs.size), costs, style, label=label, linewidth=1.4)
    ax.set(title=title, xlabel="epoch", ylabel="cost (cross-entropy)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _draw_boundary(
    ax: Axes, params: model.Params, X: np.ndarray, Y: np.ndarray, steps: int, point_size: float
) -> None:
    X, labels = np.asarray(X), np.asarray(Y).reshape(-1)
    margin = 0.5
    xs = np.linspace(X[0].min() - margin, X[0].max() + margin, steps)
    ys = np.linspace(X[1].min() - margin, X[1].max() + margin, steps)
    gx, gy = np.meshgrid(xs, ys)
    dtype = params["W1"].dtype
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()]), dtype)
    regions = np.asarray(model.predict(params, grid)).reshape(gx.shape)
    ax.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5], cmap=REGION_COLORS)
    ax.contour(gx, gy, regions, levels=[0.5], colors="#555555", linewidths=0.8)
    for label, color in enumerate(CLASS_COLORS):
        mine = labels == label
        ax.scatter(X[0, mine], X[1, mine], s=point_size, c=color, edgecolors="white",
                   linewidths=0.4, label=f"y = {label}")  # fmt: skip
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")


def plot_decision_boundary(
    params: model.Params, X, Y, *, title: str = "Decision boundary", grid_steps: int = 300
) -> Figure:
    """The regions the network predicts as 0 and 1, with the training points over them.

    Args:
      params: trained network parameters.
      X: features, shape (2, m); Y: 0/1 labels, shape (1, m).
      title: the axes title.
      grid_steps: resolution of the prediction grid along each axis.

    Returns:
      A figure: ``model.predict`` on a grid covering the data, the boundary line, the points.
    """
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    _draw_boundary(ax, params, X, Y, grid_steps, point_size=18)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_decision_boundaries(
    runs: Mapping[str, model.Params], X, Y, *, columns: int = 4, grid_steps: int = 200
) -> Figure:
    """A grid of decision boundaries, one panel per run (titled with its label)."""
    rows = math.ceil(len(runs) / columns)
    fig = Figure(figsize=(3.4 * columns, 2.8 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (label, params) in zip(axes, runs.items(), strict=False):
        _draw_boundary(ax, params, X, Y, grid_steps, point_size=8)
        ax.set_title(label, fontsize=9)
        ax.set_aspect("auto")
        ax.tick_params(labelsize=7)
    for ax in axes[len(runs) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Optimizer paths on two-dimensional functions
# ---------------------------------------------------------------------------------------------


def elongated_bowl(p: jax.Array) -> jax.Array:
    """An ill-conditioned quadratic, 50 times steeper across than along: ``(x^2 + 50 y^2) / 2``."""
    return 0.5 * (p[0] ** 2 + 50.0 * p[1] ** 2)


def rosenbrock(p: jax.Array) -> jax.Array:
    """Rosenbrock's banana valley ``(1 - x)^2 + 100 (y - x^2)^2``, minimum at (1, 1)."""
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


@functools.partial(jax.jit, static_argnames=("fn", "steps"))
def _scan_path(optimizer, start, key, noise, *, fn, steps):
    grad = jax.grad(fn)

    def step(carry, i):
        point, state = carry
        # Noise in the point's dtype: under x64 a float64 draw would promote the float32 state.
        draw = jax.random.normal(jax.random.fold_in(key, i), point.shape, point.dtype)
        g = grad(point) + noise * draw
        updates, state = optimizer.update(g, state, point)
        point = optax.apply_updates(point, updates)
        return (point, state), point

    _, points = jax.lax.scan(step, (start, optimizer.init(start)), jnp.arange(steps))
    return jnp.concatenate([start[None], points])


def optimizer_path(
    fn: Callable[[jax.Array], jax.Array],
    start: Sequence[float],
    optimizer: optax.GradientTransformation,
    steps: int,
    *,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """The points an optimizer visits while minimising ``fn`` from ``start``.

    All steps run in one jitted ``lax.scan``; the optimizer is a traced argument, so methods of the
    same structure share the compiled program.

    Args:
      fn: a scalar function of a point of shape (2,) (a module-level function: it is a static arg).
      start: the first point.
      optimizer: e.g. ``optimizers.adam(0.1)``.
      steps: number of updates.
      noise: standard deviation of Gaussian noise added to every gradient, a stand-in for the
        sampling noise of mini-batch gradients.
      seed: seed of that noise.

    Returns:
      Array of shape (steps + 1, 2): ``start`` then the point after each update.
    """
    start = jnp.asarray(start, jnp.float32)
    key = jax.random.PRNGKey(seed)
    return np.asarray(_scan_path(optimizer, start, key, noise, fn=fn, steps=steps))


class PathMethod:
    """One trajectory to draw: a label, an optimizer and the gradient noise it sees."""

    def __init__(self, label: str, optimizer: optax.GradientTransformation, noise: float = 0.0):
        self.label, self.optimizer, self.noise = label, optimizer, noise


def lesson_methods(surface: str) -> list[PathMethod]:
    """The five methods of the lesson with step sizes that suit ``surface`` ("bowl" or "rosenbrock").

    Each method gets the step size that shows its character on that surface, not a shared one:
    the point of the picture is the shape of the paths.
    """
    if surface not in _STEP_SIZES:
        raise ValueError(f"surface must be 'bowl' or 'rosenbrock', got {surface!r}")
    gd_lr, noise, momentum_lr, rmsprop_lr, adam_lr = _STEP_SIZES[surface]
    return [
        PathMethod(f"GD (lr {gd_lr:g})", optimizers.gd(gd_lr)),
        PathMethod(f"noisy mini-batch GD (lr {gd_lr:g})", optimizers.gd(gd_lr), noise=noise),
        PathMethod(f"momentum (lr {momentum_lr:g}, β 0.9)", optimizers.momentum(momentum_lr, 0.9)),
        PathMethod(f"RMSprop (lr {rmsprop_lr:g})", optimizers.rmsprop(rmsprop_lr)),
        PathMethod(f"Adam (lr {adam_lr:g})", optimizers.adam(adam_lr)),
    ]


_STEP_SIZES = {  # surface: GD's rate, noisy GD's gradient noise, momentum's, RMSprop's, Adam's rate
    "bowl": (0.038, 3.0, 0.038, 0.2, 0.3),
    "rosenbrock": (0.001, 15.0, 0.005, 0.01, 0.05),
}


_SURFACES = {
    # name: (function, start, steps, x range, y range, minimum, title)
    "bowl": (elongated_bowl, (-9.0, 1.2), 60, (-10, 2), (-2, 2), (0.0, 0.0),
             "elongated bowl $(x^2 + 50y^2)/2$, 60 steps"),
    "rosenbrock": (rosenbrock, (-1.2, 1.0), 500, (-1.6, 1.6), (-0.6, 1.8), (1.0, 1.0),
                   "Rosenbrock $(1-x)^2 + 100(y-x^2)^2$, 500 steps"),
}  # fmt: skip

PATH_COLORS = ("#444444", "#9a9a9a", "#e07a1f", "#2a9d8f", "#7b2cbf")


def plot_paths(seed: int = 0) -> Figure:
    """Trajectories of GD, noisy mini-batch GD, momentum, RMSprop and Adam on two surfaces.

    Left: an elongated quadratic bowl, where GD zig-zags across the steep direction and crawls
    along the flat one, momentum averages the zig-zag away, and RMSprop/Adam rescale each
    coordinate. Right: the Rosenbrock valley. Contours are log-spaced levels of the function.
    """
    fig = Figure(figsize=(13, 5.2))
    axes = fig.subplots(1, 2)
    for ax, surface in zip(axes, _SURFACES, strict=True):
        fn, start, steps, (x0, x1), (y0, y1), minimum, title = _SURFACES[surface]
        gx, gy = np.meshgrid(np.linspace(x0, x1, 400), np.linspace(y0, y1, 400))
        values = np.asarray(jax.vmap(fn, in_axes=1)(jnp.asarray(np.stack([gx, gy]))))
        levels = np.geomspace(max(values.min(), 1e-3), values.max(), 18)
        ax.contour(gx, gy, values, levels=levels, norm=LogNorm(), colors="#c4c4c4", linewidths=0.7)
        for method, color in zip(lesson_methods(surface), PATH_COLORS, strict=True):
            points = optimizer_path(
                fn, start, method.optimizer, steps, noise=method.noise, seed=seed
            )
            ax.plot(points[:, 0], points[:, 1], "-", color=color, linewidth=1.3,
                    label=method.label, alpha=0.9, marker="." if steps <= 100 else None,
                    markersize=3)  # fmt: skip
            ax.plot(*points[-1], "o", color=color, markersize=7, markeredgecolor="white")
        ax.plot(*start, "o", color="black", markersize=6, label="start")
        ax.plot(*minimum, "*", color="gold", markeredgecolor="black", markersize=14,
                label="minimum")  # fmt: skip
        ax.set(title=title, xlabel="$x$", ylabel="$y$", xlim=(x0, x1), ylim=(y0, y1))
        ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    return fig
