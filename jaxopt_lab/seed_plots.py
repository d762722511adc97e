"""Pictures of one run over many seeds: what a single seed cannot tell.

Each run's accuracy and final cost over the seeds, its cost per epoch as a band of quantiles, and
final cost and accuracy against the learning rate. Built on :class:`matplotlib.figure.Figure`
directly, as in :mod:`jaxopt_lab.plots` (which writes them with ``save_png``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.sweep_plots import float_ends_quiet

SEED_COLOR, COURSE_COLOR = "#2e86ab", "#d1495b"


@float_ends_quiet()
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


@float_ends_quiet()
def plot_cost_bands(
    methods: Sequence[str],
    quantiles: np.ndarray,
    course_costs: Sequence[np.ndarray],
    *,
    columns: int = 4,
    iqm: np.ndarray | None = None,
) -> Figure:
    """Each run's cost per epoch over the seeds: the median and the band from the 10% to the 90%
    quantile, with the course's own run dashed; one panel per run, the same axes for all. With
    ``iqm``, the interquartile mean replaces the median, drawn with its band: the middle half of
    the seeds, whose mean it is.

    Args:
      methods: the runs' labels.
      quantiles: shape (runs, 3, epochs): the 10%, 50% and 90% quantiles per epoch
        (``stats.quantile_curves``), NaN where every seed had diverged.
      course_costs: per run, the course run's cost per epoch.
      iqm: shape (runs, 3, epochs): the 25% quantile, the IQM (``stats.iqm_curve``) and the 75%
        quantile per epoch, NaN where every seed had diverged.
    """
    rows = math.ceil(len(methods) / columns)
    fig = Figure(figsize=(3.4 * columns, 2.7 * rows))
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    epochs = np.arange(np.shape(quantiles)[-1])
    for i, (ax, method, (low, median, high), course) in enumerate(
        zip(axes, methods, quantiles, course_costs, strict=False)
    ):
        ax.fill_between(epochs, low, high, color=SEED_COLOR, alpha=0.25, linewidth=0,
                        label="10-90% of seeds")  # fmt: skip
        if iqm is None:
            ax.plot(epochs, median, color=SEED_COLOR, linewidth=1.4, label="median")
        else:
            q25, mean, q75 = iqm[i]
            ax.fill_between(epochs, q25, q75, color=SEED_COLOR, alpha=0.3, linewidth=0,
                            label="25-75% of seeds")  # fmt: skip
            ax.plot(epochs, mean, color=SEED_COLOR, linewidth=1.4,
                    label="IQM (mean of the middle half)")
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


def _any_positive(arrays) -> bool:
    """Whether any of the arrays holds a finite value above zero (a log axis can show it)."""
    return any(np.any(np.asarray(a, np.float64) > 0) for a in arrays)  # NaN > 0 is False


LR_COLORS = {"gd": "#444444", "momentum": "#e07a1f", "rmsprop": "#2a9d8f", "adam": "#7b2cbf"}


@float_ends_quiet()
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
        # a saturated network's cost runs into the hundreds: a log axis, where any cost is there
        if metric == "final_cost" and _any_positive(c[metric]["p50"] for c in curves.values()):
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
