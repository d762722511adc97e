"""The picture of time to target: which method gets there first, seed by seed (performance
profiles), and how many epochs each one takes (medians with their intervals).

Drawn from :func:`jaxopt_lab.targets.summary`'s figures (as written to JSON: None for never), on
:class:`matplotlib.figure.Figure` directly, as the other pictures are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab import targets
from jaxopt_lab.sweep_plots import float_ends_quiet

NEVER_COLOR = "#d1495b"


def _colors(n: int) -> list:
    """One colour per method: matplotlib's ten, then its twenty (no method shares one below 20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


@float_ends_quiet()
def plot_time_to_target(summaries: Sequence[Mapping], *, seeds: int, title: str = "") -> Figure:
    """One row per target: on the left the performance profiles, on the right each method's median
    epochs to target with its 95% bootstrap interval.

    Profile: ``rho(tau)``, the share of the seeds on which the method reached the target within
    ``tau`` times the epochs of the fastest method on that seed, a step curve over ``tau`` on a
    log axis from 1 to the largest finite ratio; where it ends below 1, the rest of the seeds
    never reached the target. Medians: a dot with its interval; a median of never (half the
    seeds or more) is an ``x`` at the right edge, an interval that runs to never runs to the edge
    and ends in an arrow; the share of seeds that never reached the target is written beside it.

    Args:
      summaries: :func:`jaxopt_lab.targets.summary` of each target (cost, accuracy).
      seeds: how many seeds (for the title).
      title: the figure's title (default: says the seeds).
    """
    rows = max(1, len(summaries))
    methods = [m["method"] for m in summaries[0]["methods"]] if summaries else []
    fig = Figure(figsize=(12.5, 0.9 + max(3.2, 0.42 * len(methods) + 1.2) * rows))
    axes = fig.subplots(rows, 2, squeeze=False, gridspec_kw={"width_ratios": [1.15, 1]})
    colors = _colors(len(methods))
    for (left, right), summary in zip(axes, summaries, strict=False):
        label = targets.target_label(summary)
        _draw_profile(left, summary, colors, label)
        _draw_medians(right, summary, colors, label)
    if not summaries:
        for ax in axes[0]:
            ax.set_axis_off()
        axes[0][0].text(0.5, 0.5, "no target asked for", ha="center", va="center",
                        transform=axes[0][0].transAxes)  # fmt: skip
    else:
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", fontsize=8,
                   ncol=min(4, len(methods)), frameon=False)  # fmt: skip
    fig.suptitle(title or f"Time to target over {seeds} seeds: who gets there first, and when",
                 fontsize=11)  # fmt: skip
    legend_rows = -(-len(methods) // 4) if summaries else 0
    fig.tight_layout(rect=(0, min(0.3, 0.035 * legend_rows / rows), 1, 1))
    return fig


def _draw_profile(ax, summary: Mapping, colors: list, label: str) -> None:
    """Every method's step curve ``rho(tau)``; x from 1 to the largest ratio (1 to 2 if none is
    above 1: an axis must have some width)."""
    taus = np.asarray(summary["profile"]["tau"], np.float64)
    rho = np.asarray(summary["profile"]["rho"], np.float64).reshape(len(summary["methods"]), -1)
    right = max(2.0, float(taus[-1]) * 1.15) if taus.size else 2.0
    edges = np.append(taus, right) if taus.size else np.array([1.0, right])
    for i, method in enumerate(summary["methods"]):
        values = np.append(rho[i], rho[i][-1]) if rho.shape[1] else np.zeros(2)
        ax.step(edges, values, where="post", color=colors[i], linewidth=1.5,
                label=method["method"])  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(1.0, right)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau: epochs within this many times the fastest method's, same seed", fontsize=8)
    ax.set_ylabel("share of seeds", fontsize=8)
    ax.set_title(f"{label}: performance profile", fontsize=9)
    if not np.any(rho > 0):
        ax.text(0.5, 0.5, "no method reached the target on any seed", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color=NEVER_COLOR)  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.tick_params(labelsize=7)


def _draw_medians(ax, summary: Mapping, colors: list, label: str) -> None:
    """Each method's median epochs to target with its interval, never at the right edge."""
    methods = summary["methods"]
    finite = [v for m in methods for v in [m["median"], *(m["ci95"] or [])] if v is not None]
    # A log axis: 20 epochs and 5000 both readable. Never sits at the right edge.
    start, edge = (min(finite) / 1.6, max(finite) * 1.6) if finite else (1.0, 10.0)
    for y, (m, color) in enumerate(zip(methods, colors, strict=True)):
        low, high = m["ci95"] if m["ci95"] is not None else (None, None)
        if low is not None:
            ax.plot([low, edge if high is None else high], [y, y], color=color, linewidth=2.2,
                    alpha=0.6, solid_capstyle="butt")  # fmt: skip
            if high is None:
                ax.annotate("", (edge, y), xytext=(-10, 0), textcoords="offset points",
                            arrowprops={"arrowstyle": "->", "color": color})  # fmt: skip
        if m["median"] is None:
            ax.plot([edge], [y], "x", color=NEVER_COLOR, markersize=8, clip_on=False)
        else:
            ax.plot([m["median"]], [y], "o", color=color, markersize=6, markeredgecolor="white")
        never = "" if m["never"] is None else f"never: {m['never']:.0%}"
        ax.annotate(never, (1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=7,
                    color=NEVER_COLOR if m["never"] else "#666666")  # fmt: skip
    ax.set_yticks(range(len(methods)), [m["method"] for m in methods], fontsize=7)
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlim(start, edge * 1.05)
    ax.set_xlabel("epochs to target: median over the seeds, 95% bootstrap interval; "
                  "x: never (median)", fontsize=8)  # fmt: skip
    ax.set_title(f"{label}: epochs to target", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=7)
