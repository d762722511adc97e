"""Pictures of sweeps: accuracy and final cost over a grid of settings, as curves or heatmaps.

Sweep results arrive as columns (one array per setting or result, a value per run) and every
picture is computed over them (``np.unique``, ``np.bincount``), never row by row. Built on
:class:`matplotlib.figure.Figure` directly, as in :mod:`jaxopt_lab.plots`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SWEEP_RESULTS = (  # not grid axes
    "optimizer", "seed", "diverged_at_epoch", "final_cost", "accuracy", "costs",
)  # fmt: skip
METRICS = (("accuracy", "viridis"), ("final_cost", "viridis_r"))  # what a sweep's pictures show
LABELLED_CELLS = 144  # a heatmap writes mean ± std in its cells up to this many cells
TICKS = 12  # tick labels per axis at most
MARKED_POINTS = 2000  # diverged points marked one by one at most (evenly picked beyond)


@contextlib.contextmanager
def float_ends_quiet() -> Iterator[None]:
    """Axes that reach the ends of the float range (learning rates of 1e300, a cost of 1e38) make
    matplotlib's tick placement overflow while it lays out or renders: the picture is right, and
    inside this block (a decorator too) the floating-point warnings of that arithmetic are not
    shown, so that a command's stderr carries only its own lines."""
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"matplotlib\.")
        yield


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


@float_ends_quiet()
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
