"""The lesson's pictures: cost curves, decision boundaries, and optimizer paths on 2-D functions.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``, so they
render with Agg, need no display and leave matplotlib's global state alone. Each ``plot_*`` function
returns the figure; :func:`save_png` writes it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.ticker
import numpy as np
import optax
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure

from jaxopt_lab import model, optimizers, runtime

# Class 0 / class 1: the same two colours for the points and the regions they are predicted in.
CLASS_COLORS = ("#d1495b", "#2e86ab")
REGION_COLORS = ListedColormap(["#f6d5d9", "#d3e8f2"])
DPI = 100


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG, atomically (creating the parent folder), and return the path."""
    return runtime.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"))


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


# ---------------------------------------------------------------------------------------------
# What one seed cannot tell: runs over many seeds, learning-rate curves
# ---------------------------------------------------------------------------------------------

SEED_COLOR, COURSE_COLOR = "#2e86ab", "#d1495b"


def plot_seed_distributions(
    methods: Sequence[str],
    accuracy: np.ndarray,
    final_cost: np.ndarray,
    course: Sequence[Mapping],
    *,
    title: str = "The lesson's runs over seeds",
) -> Figure:
    """Each run's accuracy and final cost over the seeds, side by side, the course's run marked.

    Every seed is a dot (spread sideways so that equal values stay visible), the median a black
    bar, the course's own run (its randomness) a red diamond; the seeds that diverged have no
    value and are counted under their run.

    Args:
      methods: the runs' labels.
      accuracy, final_cost: shape (runs, seeds), NaN where a run diverged.
      course: per run a mapping with the course run's ``accuracy`` and ``final_cost``.
      title: the figure's title.
    """
    fig = Figure(figsize=(max(8.0, 1.25 * len(methods) + 2), 7.5))
    axes = fig.subplots(2, 1, sharex=True)
    jitter = np.random.default_rng(0).uniform(-0.28, 0.28, np.shape(accuracy)[1])
    for ax, metric, values in zip(axes, ("accuracy", "final_cost"), (accuracy, final_cost),
                                  strict=True):  # fmt: skip
        for i, row in enumerate(np.asarray(values, np.float64)):
            finished = ~np.isnan(row)
            ax.scatter(i + jitter[finished], row[finished], s=9, color=SEED_COLOR, alpha=0.45,
                       linewidths=0, label="a seed" if i == 0 else None)  # fmt: skip
            if finished.any():
                ax.plot([i - 0.35, i + 0.35], [np.median(row[finished])] * 2, color="black",
                        linewidth=1.6, label="median" if i == 0 else None)  # fmt: skip
            ax.scatter([i], [course[i][metric]], marker="D", s=46, color=COURSE_COLOR,
                       edgecolors="white", zorder=3,
                       label="the course's run" if i == 0 else None)  # fmt: skip
            if not finished.all():
                ax.annotate(f"{np.sum(~finished)} diverged", (i, 0), xycoords=("data", "axes fraction"),
                            xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7,
                            color=COURSE_COLOR)  # fmt: skip
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right", framealpha=0.9)
    axes[1].set_xticks(range(len(methods)), [m.replace(", ", ",\n") for m in methods], fontsize=8)
    fig.suptitle(f"{title}: {np.shape(accuracy)[1]} seeds each", fontsize=11)
    fig.tight_layout()
    return fig


def plot_cost_bands(
    methods: Sequence[str],
    quantiles: np.ndarray,
    course_costs: Sequence[np.ndarray],
    *,
    columns: int = 4,
) -> Figure:
    """Each run's cost per epoch over the seeds: the median and the band from the 10% to the 90%
    quantile, with the course's own run dashed; one panel per run, the same axes for all.

    Args:
      methods: the runs' labels.
      quantiles: shape (runs, 3, epochs): the 10%, 50% and 90% quantiles per epoch
        (``stats.quantile_curves``), NaN where every seed had diverged.
      course_costs: per run, the course run's cost per epoch.
    """
    rows = math.ceil(len(methods) / columns)
    fig = Figure(figsize=(3.4 * columns, 2.7 * rows))
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    epochs = np.arange(np.shape(quantiles)[-1])
    for ax, method, (low, median, high), course in zip(axes, methods, quantiles, course_costs,
                                                       strict=False):  # fmt: skip
        ax.fill_between(epochs, low, high, color=SEED_COLOR, alpha=0.25, linewidth=0,
                        label="10-90% of seeds")  # fmt: skip
        ax.plot(epochs, median, color=SEED_COLOR, linewidth=1.4, label="median")
        ax.plot(np.arange(len(course)), course, "--", color=COURSE_COLOR, linewidth=1.1,
                label="the course's run")  # fmt: skip
        ax.set_title(method, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[len(methods) :]:
        ax.set_axis_off()
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=7, frameon=False)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("cost (cross-entropy)", fontsize=9)
    fig.tight_layout()
    return fig


LR_COLORS = {"gd": "#444444", "momentum": "#e07a1f", "rmsprop": "#2a9d8f", "adam": "#7b2cbf"}


def plot_lr_curves(
    curves: Mapping[str, Mapping], marks: Mapping[float, str] | None = None, *, title: str = ""
) -> Figure:
    """Final cost and accuracy against the learning rate (log axis), one curve per optimizer.

    Each curve is the median over the seeds with a band from the 10% to the 90% quantile; a rate
    at which seeds diverged is an ``x`` at the top of the axes (larger for more of them), never a
    number on the curve. ``marks`` are learning rates to draw as dotted lines, with a label (the
    course's 0.0007, 0.01 and 0.1). The best rate of each optimizer is a circle.

    Args:
      curves: optimizer -> :func:`jaxopt_lab.stats.lr_curves`'s summary.
      marks: learning rate -> label.
      title: the figure's title.
    """
    fig = Figure(figsize=(12, 4.8))
    axes = fig.subplots(1, 2, sharex=True)
    for ax, metric in zip(axes, ("final_cost", "accuracy"), strict=True):
        for name, curve in curves.items():
            rates, color = np.asarray(curve["learning_rate"]), LR_COLORS.get(name)
            band = {k: np.array(v, dtype=np.float64) for k, v in curve[metric].items()}
            ax.fill_between(rates, band["p10"], band["p90"], color=color, alpha=0.18, linewidth=0)
            line = ax.plot(rates, band["p50"], color=color, linewidth=1.5, label=name)[0]
            diverged = np.asarray(curve["diverged"])
            if diverged.any():
                ax.scatter(rates[diverged > 0], np.ones(np.sum(diverged > 0)),
                           s=12 + 40 * diverged[diverged > 0] / curve["seeds"], marker="x",
                           color=line.get_color(), transform=ax.get_xaxis_transform(),
                           clip_on=False)  # fmt: skip
            if curve["best"] is not None:
                best = curve["best"]
                ax.plot(best["learning_rate"], best[metric], "o", color=line.get_color(),
                        markersize=6, markeredgecolor="white")  # fmt: skip
        for rate, label in (marks or {}).items():
            ax.axvline(rate, color="#999999", linestyle=":", linewidth=1)
            ax.annotate(label, (rate, 0.02), xycoords=("data", "axes fraction"), rotation=90,
                        ha="right", va="bottom", fontsize=7, color="#666666")  # fmt: skip
        ax.set(xscale="log", xlabel="learning rate", ylabel=metric.replace("_", " "))
        if metric == "final_cost":  # a saturated network's cost runs into the hundreds
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(curves),
               fontsize=8, frameon=False,
               title="median over the seeds, 10-90% band; x at the top: seeds diverged there")  # fmt: skip
    seeds = max((curve["seeds"] for curve in curves.values()), default=0)
    fig.suptitle(title or f"Final cost and accuracy against the learning rate, {seeds} seeds",
                 fontsize=11)  # fmt: skip
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


# ---------------------------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------------------------

SWEEP_RESULTS = (  # not grid axes
    "optimizer", "seed", "diverged_at_epoch", "final_cost", "accuracy", "costs",
)  # fmt: skip
METRICS = (("accuracy", "viridis"), ("final_cost", "viridis_r"))  # what a sweep's pictures show
LABELLED_CELLS = 144  # a heatmap writes mean ± std in its cells up to this many cells
TICKS = 12  # tick labels per axis at most
MARKED_POINTS = 2000  # diverged points marked one by one at most (evenly picked beyond)


def sweep_axes(rows: Sequence[Mapping]) -> list[str]:
    """The grid axes of sweep rows, most distinct values first (ties keep the rows' key order)."""
    names = [k for k in rows[0] if k not in SWEEP_RESULTS]
    counts = {k: len({repr(r[k]) for r in rows}) for k in names}
    return sorted(names, key=lambda k: -counts[k])


def sweep_columns(rows: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """Sweep rows (dicts) as columns: settings as given, results as float arrays (None is NaN,
    a missing ``diverged_at_epoch`` is -1)."""
    columns = {k: _column([r[k] for r in rows]) for k in rows[0] if k not in SWEEP_RESULTS}
    for metric, _ in METRICS:
        columns[metric] = np.array([np.nan if r[metric] is None else r[metric] for r in rows], float)
    columns["diverged_at_epoch"] = np.array(
        [-1 if r["diverged_at_epoch"] is None else r["diverged_at_epoch"] for r in rows], np.int64
    )
    columns["seed"] = np.asarray([r["seed"] for r in rows])
    return columns


def _column(values: list) -> np.ndarray:
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    out = np.empty(len(values), object)
    out[:] = values
    return out


def _groups(column: np.ndarray) -> tuple[list, np.ndarray]:
    """The distinct values of a column in order (numbers by value, others by text) and each
    row's position among them."""
    if column.dtype != object:
        values, where = np.unique(column, return_inverse=True)
        return values.tolist(), where
    text = column.astype(str)
    values, first, where = np.unique(text, return_index=True, return_inverse=True)
    return column[first].tolist(), where


def _cell_stats(where: np.ndarray, cells: int, values: np.ndarray, lost: np.ndarray):
    """Per cell: mean and std of the finite values of the runs not lost, and how many were lost."""
    ok = ~lost & np.isfinite(values)
    count = np.bincount(where[ok], minlength=cells)
    total = np.bincount(where[ok], weights=values[ok], minlength=cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        # two passes: the squares of deviations, not E[x^2] - mean^2 (which cancels)
        squares = np.bincount(where[ok], weights=(values[ok] - mean[where[ok]]) ** 2, minlength=cells)
        std = np.sqrt(squares / count)
    return mean, std, count > 0, np.bincount(where[lost], minlength=cells)


def _diverged(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    return (np.asarray(columns["diverged_at_epoch"]) >= 0) | ~np.isfinite(
        np.asarray(columns["final_cost"], float)
    )


def _ticks(ax: Axes, axis: str, values: list) -> None:
    """Tick labels for categorical positions: all when few, else about :data:`TICKS`."""
    where = np.unique(np.linspace(0, len(values) - 1, min(len(values), TICKS)).round().astype(int))
    labels = [_label(values[i]) for i in where]
    if axis == "x":
        ax.set_xticks(where, labels, fontsize=8, rotation=30 if len(values) > 4 else 0)
    else:
        ax.set_yticks(where, labels, fontsize=8)


def plot_sweep(
    columns: Mapping[str, np.ndarray], axes: Sequence[str], *, title: str = "Sweep"
) -> Figure:
    """A sweep's picture, chosen by how many settings it varies.

    One varied setting: :func:`plot_sweep_curve`. Two or more: :func:`plot_sweep_heatmap_of` the
    two with the most values, averaged over the others (the title names them).

    Args:
      columns: one array per column, a value per run: the settings in ``axes``, ``seed``,
        ``diverged_at_epoch`` (-1 for none), ``final_cost`` and ``accuracy`` (NaN if diverged),
        e.g. ``sweep.SweepTable.columns()``.
      axes: the grid's settings, in grid order.
      title: the figure's title.
    """
    counts = {name: len(_groups(np.asarray(columns[name]))[0]) for name in axes}
    varied = sorted((n for n in axes if counts[n] > 1), key=lambda n: -counts[n])
    if len(varied) <= 1:
        return plot_sweep_curve(columns, varied[0] if varied else axes[0], title=title)
    return plot_sweep_heatmap_of(columns, varied[0], varied[1], title=title,
                                 averaged=[(n, counts[n]) for n in varied[2:]])  # fmt: skip


def plot_sweep_curve(columns: Mapping[str, np.ndarray], name: str, *, title: str = "Sweep") -> Figure:
    """Accuracy and final cost against one setting: the mean over seeds as a line, their range
    as a band, runs that diverged marked with a red x at the bottom; a log axis when the values
    are positive and span two decades or more."""
    values, where = _groups(np.asarray(columns[name]))
    numeric = all(isinstance(v, (int, float)) for v in values)
    log = numeric and min(values) > 0 and max(values) / min(values) >= 100
    xs = np.asarray(values, float) if numeric else np.arange(len(values), dtype=float)
    lost = _diverged(columns)
    fig = Figure(figsize=(11, 4.2))
    panels = fig.subplots(1, 2)
    seeds = len(np.unique(np.asarray(columns["seed"])))
    for ax, (metric, _) in zip(panels, METRICS, strict=True):
        metric_values = np.asarray(columns[metric], float)
        mean, _, filled, lost_count = _cell_stats(where, len(values), metric_values, lost)
        ok = ~lost & np.isfinite(metric_values)
        low = np.full(len(values), np.inf)
        high = np.full(len(values), -np.inf)
        np.minimum.at(low, where[ok], metric_values[ok])
        np.maximum.at(high, where[ok], metric_values[ok])
        line = np.where(filled, mean, np.nan)
        if seeds > 1:
            ax.fill_between(xs, np.where(filled, low, np.nan), np.where(filled, high, np.nan),
                            alpha=0.25, color="#2e86ab", linewidth=0,
                            label=f"range over {seeds} seeds")  # fmt: skip
        ax.plot(xs, line, "-", color="#2e86ab", linewidth=1.3,
                marker="." if len(values) <= 60 else None, label="mean")  # fmt: skip
        bad = np.flatnonzero(lost_count > 0)
        if bad.size:
            shown = bad[np.unique(np.linspace(0, bad.size - 1, min(bad.size, MARKED_POINTS)).astype(int))]
            ax.plot(xs[shown], np.zeros(shown.size), "x", color="#d1495b", markersize=5,
                    transform=ax.get_xaxis_transform(),
                    label=f"diverged ({int(lost_count.sum())} runs)")  # fmt: skip
        if log:
            ax.set_xscale("log")
        if not numeric:
            _ticks(ax, "x", values)
        ax.set(xlabel=name, ylabel=metric.replace("_", " "), title=metric.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(f"{title}: {len(values)} values of {name}, {seeds} seed(s)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_sweep_heatmap(rows: Sequence[Mapping], *, title: str = "Sweep") -> Figure:
    """Accuracy and final cost of sweep rows (dicts) over the two axes with the most values; see
    :func:`plot_sweep_heatmap_of`."""
    x_name, y_name = (sweep_axes(rows) + [None, None])[:2]
    return plot_sweep_heatmap_of(sweep_columns(rows), x_name, y_name, title=title)


def plot_sweep_heatmap_of(
    columns: Mapping[str, np.ndarray],
    x_name: str,
    y_name: str | None,
    *,
    title: str = "Sweep",
    averaged: Sequence[tuple[str, int]] = (),
) -> Figure:
    """Accuracy and final cost over two settings, as two heatmaps side by side.

    Each cell averages the runs that share its two values (all seeds, and any other setting).
    Up to :data:`LABELLED_CELLS` cells, each says ``mean`` over ``± std`` across those runs and
    how many diverged; a cell whose runs all diverged is grey (and says "diverged"). The figure
    keeps a readable size whatever the grid: beyond about a dozen values per axis the cells
    shrink, the labels go and about :data:`TICKS` ticks are named; a 1,000 x 1,000 grid is one
    image. Everything is computed over columns (``np.unique``, ``np.bincount``), never per row.

    Args:
      columns: as for :func:`plot_sweep`.
      x_name, y_name: the settings on the two axes (``y_name`` None: one row of cells).
      title: the figure's title.
      averaged: ``(setting, number of values)`` of other varied settings, named in the title.
    """
    xs, x_at = _groups(np.asarray(columns[x_name]))
    if y_name is not None:
        ys, y_at = _groups(np.asarray(columns[y_name]))
    else:
        ys, y_at = [None], np.zeros(len(x_at), np.int64)
    cells = len(xs) * len(ys)
    where = y_at * len(xs) + x_at
    labelled = cells <= LABELLED_CELLS and max(len(xs), len(ys)) <= 12
    cell = 0.9 if labelled else 0.0
    width = float(np.clip(cell * len(xs) + 2.2, 5.0, 8.0))
    height = float(np.clip(cell * 0.7 * len(ys) + 1.8, 3.0, 6.5))
    fig = Figure(figsize=(2 * width, height))
    panels = fig.subplots(1, 2, squeeze=False)[0]
    lost = _diverged(columns)
    for ax, (metric, cmap) in zip(panels, METRICS, strict=True):
        mean, std, filled, lost_count = _cell_stats(
            where, cells, np.asarray(columns[metric], float), lost
        )
        shown = np.ma.masked_array(mean.reshape(len(ys), len(xs)), mask=~filled.reshape(len(ys), len(xs)))
        palette = matplotlib.colormaps[cmap].with_extremes(bad="0.8")  # masked cells: grey
        image = ax.imshow(shown, cmap=palette, aspect="auto", origin="lower", interpolation="nearest")
        if filled.any():
            fig.colorbar(image, ax=ax, shrink=0.85)
        if labelled:
            _label_cells(ax, image, mean, std, filled, lost_count, len(xs))
        _ticks(ax, "x", xs)
        if y_name is not None:
            _ticks(ax, "y", ys)
        else:
            ax.set_yticks([])
        ax.set(xlabel=x_name or "", ylabel=y_name or "", title=metric.replace("_", " "))
    seeds = len(np.unique(np.asarray(columns["seed"])))
    note = "" if labelled else "; grey: every run diverged"
    if averaged:
        note += "; averaged over " + ", ".join(f"{n} ({k} values)" for n, k in averaged)
    fig.suptitle(f"{title}: mean ± std over {seeds} seed(s){note}", fontsize=10)
    fig.tight_layout()
    return fig


def _label_cells(ax, image, mean, std, filled, lost, columns: int) -> None:
    for k in range(len(mean)):
        i, j = divmod(k, columns)
        if not filled[k]:
            text, dark = "diverged" if lost[k] else "", False
        else:
            r, g, b, _ = image.cmap(image.norm(mean[k]))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            text = f"{_short(mean[k])}\n±{_short(std[k])}"
            if lost[k]:
                text += f"\n{lost[k]} diverged"
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="white" if dark else "black")  # fmt: skip


def _short(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.3g}"


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
