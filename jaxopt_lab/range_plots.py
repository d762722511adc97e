"""The range test's picture: each optimizer's full-run accuracy against the learning rate (the
truth) with every suggestion rule's picks marked on it, above the range test's smoothed loss.

Built on :class:`matplotlib.figure.Figure` directly, as in :mod:`jaxopt_lab.plots` (which writes
it with ``save_png``). It draws any finished result: runs that all diverged, a curve of one rate,
rules that suggested nothing; a missing number is left out, never drawn as a value.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.seed_plots import LR_COLORS

RULE_COLORS = {"valley": "#1d4ed8", "steep": "#c1121f", "minimum/10": "#b8860b"}  # not LR_COLORS
RULE_MARKERS = {"valley": "v", "steep": "^", "minimum/10": "s"}


def _values(numbers) -> np.ndarray:
    """JSON numbers (None for a missing one) as float64, NaN where missing or not finite."""
    array = np.array(numbers if numbers is not None else [], dtype=np.float64)
    return np.where(np.isfinite(array), array, np.nan)


def plot_range_test(curves: Mapping[str, Mapping], summary: Mapping, *, title: str = "") -> Figure:
    """One column per optimizer: on top the full runs' median accuracy against the learning rate
    (10-90% band over the seeds, the best rate a circle), each rule's suggestion for every seed
    a small mark near the bottom (one row of marks per rule) and the median suggestion a dashed
    line; below, the range test's smoothed loss against the rate of its step (median over the
    seeds, 10-90% band), the same lines, and an ``x`` at the top at each seed's divergence.

    Args:
      curves: optimizer -> :func:`jaxopt_lab.stats.lr_curves`'s summary (the full runs).
      summary: :func:`jaxopt_lab.experiments.range_test.range_test_summary`'s dict.
      title: the figure's title.
    """
    optimizers = summary["optimizers"]
    fig = Figure(figsize=(3.6 * max(1, len(optimizers)) + 0.6, 6.4))
    axes = fig.subplots(2, max(1, len(optimizers)), squeeze=False, sharex=True)
    rates = _values(summary["rates"])
    for column, (name, found) in enumerate(optimizers.items()):
        top, bottom = axes[0, column], axes[1, column]
        _draw_truth(top, curves.get(name), LR_COLORS.get(name, "#444444"))
        _draw_finder(bottom, rates, found, LR_COLORS.get(name, "#444444"))
        for rule, color in RULE_COLORS.items():
            _draw_rule(top, found, rule, color, row=list(RULE_COLORS).index(rule))
            median = found["rules"].get(rule, {}).get("median")
            if median is not None:
                bottom.axvline(median, color=color, linestyle="--", linewidth=1.1)
        top.set_title(name, fontsize=10)
        bottom.set_xscale("log")
        bottom.set_xlim(rates[0], rates[-1])
        bottom.set_xlabel("learning rate", fontsize=8)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("full runs: accuracy", fontsize=8)
    axes[1, 0].set_ylabel("range test: smoothed loss", fontsize=8)
    handles = [axes[0, 0].plot([], [], linestyle="--", marker=RULE_MARKERS[rule], color=color,
                               label=rule)[0] for rule, color in RULE_COLORS.items()]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               title="each seed's suggestion (marks) and their median (dashed); circle: the "
                     "best rate of the full runs; x: a seed's range test diverged")  # fmt: skip
    fig.suptitle(title or f"The range test's suggestions against the full runs, "
                          f"{len(summary['seeds'])} seeds, {summary['steps']} steps",
                 fontsize=11)  # fmt: skip
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def _draw_truth(ax, curve: Mapping | None, color: str) -> None:
    """The full runs' median accuracy and its band; the best rate a circle."""
    if curve is None:
        return
    rates = _values(curve["learning_rate"])
    band = {k: _values(v) for k, v in curve["accuracy"].items()}
    ax.fill_between(rates, band["p10"], band["p90"], color=color, alpha=0.18, linewidth=0)
    ax.plot(rates, band["p50"], color=color, linewidth=1.5)
    if curve.get("best") is not None:
        best = curve["best"]
        ax.plot(best["learning_rate"], best["accuracy"], "o", color=color, markersize=6,
                markeredgecolor="white", zorder=3)  # fmt: skip


def _draw_rule(ax, found: Mapping, rule: str, color: str, *, row: int) -> None:
    """A rule's suggestion for every seed as marks in its own row near the bottom of the axes,
    and their median as a dashed line."""
    picks = _values(found["suggestions"].get(rule))
    picks = picks[~np.isnan(picks)]
    if picks.size:
        ax.scatter(picks, np.full(picks.size, 0.04 + 0.06 * row), s=16, color=color,
                   marker=RULE_MARKERS[rule], alpha=0.7, linewidths=0,
                   transform=ax.get_xaxis_transform(), clip_on=False)  # fmt: skip
    median = found["rules"].get(rule, {}).get("median")
    if median is not None:
        ax.axvline(median, color=color, linestyle="--", linewidth=1.1)


def _draw_finder(ax, rates: np.ndarray, found: Mapping, color: str) -> None:
    """The smoothed loss's median and band against the rate of each step; an ``x`` at the top
    at the rate where each seed diverged (larger where several did)."""
    band = {k: _values(v) for k, v in found["smoothed"].items()}
    ax.fill_between(rates, band["p10"], band["p90"], color=color, alpha=0.18, linewidth=0)
    ax.plot(rates, band["p50"], color=color, linewidth=1.3)
    diverged = np.array([d for d in found["diverged_at"] if d is not None], dtype=np.int64)
    if diverged.size:
        steps, counts = np.unique(diverged, return_counts=True)
        ax.scatter(rates[steps], np.ones(steps.size), s=14 + 10 * counts, marker="x",
                   color=color, transform=ax.get_xaxis_transform(), clip_on=False)  # fmt: skip
