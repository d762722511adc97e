"""What many runs of one configuration say together: the statistics of the seeds comparison and of
the learning-rate finder, over arrays of results (one row per run, one column per seed).

A diverged run has no accuracy and no final cost: it is NaN in these arrays (``None`` in rows and
JSON). It is left out of every mean, spread, quantile and percentile, and counted instead.
Functions return Python floats, or None where a figure is undefined (no finished run, or fewer
than two for a spread), so that results stay strict JSON.

Plain NumPy (and SciPy's t quantile, ``scipy.special.stdtrit``); nothing here depends on JAX.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95  # of every interval reported
BAND = (0.1, 0.5, 0.9)  # the quantiles a band is drawn with: 10%, median, 90%


def as_values(values) -> np.ndarray:
    """Results as float64, None (a diverged run) and non-finite values as NaN."""
    array = np.asarray(values)
    if array.dtype == object:
        array = np.where(np.equal(array, None), np.nan, array)
    array = array.astype(np.float64)
    return np.where(np.isfinite(array), array, np.nan)


def _number(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def summary(values: Sequence[float | None]) -> dict:
    """Mean, standard deviation and a 95% t interval of the mean, over the finished runs.

    With ``n`` finished values ``x``, mean ``x̄`` and sample standard deviation
    ``s = sqrt(Σ (x - x̄)² / (n - 1))``, the interval is ``x̄ ± t_{0.975, n-1} s / sqrt(n)``
    (Student's t with ``n - 1`` degrees of freedom): it covers the mean over seeds in 95% of
    repetitions if the values are roughly normal, and for any shape as ``n`` grows.

    Returns:
      ``{"n", "mean", "std", "ci95"}``; ``ci95`` is ``[low, high]``. Mean is None with no
      finished run, std and interval with fewer than two.
    """
    x = as_values(values)
    x = x[~np.isnan(x)]
    n = int(x.size)
    result = {"n": n, "mean": _number(x.mean()) if n else None, "std": None, "ci95": None}
    if n >= 2:
        from scipy import special  # imported here: 0.2 s of start-up otherwise (scipy.stats: 0.6)

        std = float(x.std(ddof=1))
        half = float(special.stdtrit(n - 1, 0.5 + CONFIDENCE / 2)) * std / math.sqrt(n)
        result["std"], result["ci95"] = std, [result["mean"] - half, result["mean"] + half]
    return result


def percentile_of(value: float | None, values: Sequence[float | None]) -> float | None:
    """Where ``value`` falls among the finished ``values``, in percent: the share below it plus
    half the share equal to it (so a value equal to all of them is at 50). None if ``value`` is
    missing or no run finished."""
    x = as_values(values)
    x = x[~np.isnan(x)]
    if value is None or not math.isfinite(value) or x.size == 0:
        return None
    return float(100.0 * (np.sum(x < value) + 0.5 * np.sum(x == value)) / x.size)


def beats(accuracy: np.ndarray) -> np.ndarray:
    """How often run ``i`` beats run ``j`` on the same seed: the paired comparison.

    ``i`` beats ``j`` on a seed when it reached a higher accuracy there; a finished run beats a
    diverged one, and a diverged run beats nothing. Equal accuracies (common: 300 points make
    steps of 1/300) are ties, counted for neither.

    Args:
      accuracy: shape (runs, seeds), NaN where a run diverged.

    Returns:
      Shape (runs, runs): the fraction of seeds on which run ``i`` (row) beats run ``j``
      (column); ``1 - beats[i, j] - beats[j, i]`` is the share of ties.
    """
    accuracy = as_values(accuracy)
    a_i, a_j = accuracy[:, None, :], accuracy[None, :, :]
    finished_i, finished_j = ~np.isnan(a_i), ~np.isnan(a_j)
    return np.mean(finished_i & (~finished_j | (a_i > a_j)), axis=-1)  # NaN > x is False


def quantile_curves(costs: np.ndarray, quantiles: Sequence[float] = BAND) -> np.ndarray:
    """Per epoch, the given quantiles of the cost over the runs that have not diverged by then.

    Args:
      costs: shape (seeds, epochs); NaN or inf where a run had diverged.

    Returns:
      Shape (len(quantiles), epochs), NaN at an epoch where every run had diverged.
    """
    costs = np.where(np.isfinite(costs), costs, np.nan).astype(np.float64)
    # np.nanquantile's linear method, for every epoch at once (it takes one epoch at a time: 2 s
    # for the seven runs' 5000 epochs): sorted, NaN last; the q-quantile of the n finite values
    # lies at position q (n - 1), between the values either side of it.
    ordered = np.sort(costs, axis=0)
    last = np.maximum(np.sum(~np.isnan(costs), axis=0) - 1, 0)
    position = np.asarray(quantiles, dtype=np.float64)[:, None] * last
    below = np.floor(position).astype(np.int64)
    low = np.take_along_axis(ordered, below, axis=0)
    high = np.take_along_axis(ordered, np.minimum(below + 1, last), axis=0)
    t = position - below
    return np.where(t >= 0.5, high - (high - low) * (1 - t), low + (high - low) * t)


def iqm_curve(costs: np.ndarray) -> np.ndarray:
    """Per epoch, the interquartile mean of the cost over the runs that have not diverged by then:
    of the ``n`` finite values, the mean of what is left when the lowest and the highest
    ``floor(n / 4)`` are left out (``scipy.stats.trim_mean(x, 0.25)``, rliable's IQM;
    ``evidence.iqm`` of one epoch's values), for every epoch at once.

    Args:
      costs: shape (seeds, epochs); NaN or inf where a run had diverged.

    Returns:
      Shape (epochs,), NaN at an epoch where every run had diverged.
    """
    costs = np.where(np.isfinite(costs), costs, np.nan).astype(np.float64)
    ordered = np.sort(costs, axis=0)  # NaN last
    n = np.sum(~np.isnan(costs), axis=0)
    cut = n // 4
    rank = np.arange(costs.shape[0])[:, None]
    kept = (rank >= cut) & (rank < n - cut)
    total = np.sum(np.where(kept, ordered, 0.0), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / (n - 2 * cut), np.nan)


def iqm_band(costs: np.ndarray) -> np.ndarray:
    """Per epoch, the IQM (:func:`iqm_curve`) between the 25% and 75% quantiles of the finished
    runs (:func:`quantile_curves`), the values it averages: shape (3, epochs)."""
    low, high = quantile_curves(costs, (0.25, 0.75))
    return np.stack([low, iqm_curve(costs), high])


def json_numbers(array) -> list:
    """An array as nested lists of floats, None for NaN: strict JSON."""
    return [json_numbers(a) for a in array] if np.ndim(array) > 1 else [
        _number(float(v)) for v in np.asarray(array, dtype=np.float64)
    ]


# ---------------------------------------------------------------------------------------------
# Learning-rate curves
# ---------------------------------------------------------------------------------------------

WITHIN = 0.01  # accuracy (one point in a hundred) that still counts as as good as the best


def lr_curves(rows: Sequence[dict], *, within: float = WITHIN) -> dict[str, dict]:
    """Each optimizer's results against the learning rate, over seeds, from sweep rows.

    Per learning rate: the 10%, 50% and 90% quantiles over the finished seeds of the final cost
    and of the accuracy, and how many seeds diverged. Then the best learning rate: among rates at
    which no seed diverged, the highest median accuracy, ties to the lower median final cost. And
    how forgiving the optimizer is: the widest run of neighbouring rates around the best, none
    diverged, whose median accuracy is within ``within`` of the best's.

    Args:
      rows: rows with ``optimizer``, ``learning_rate``, ``seed``, ``final_cost`` and ``accuracy``
        (None for a diverged run), e.g. :func:`jaxopt_lab.runs.lr_curve`'s.
      within: the accuracy margin of the forgiving range.

    Returns:
      optimizer -> ``{"learning_rate": [...], "final_cost": {"p10", "p50", "p90"},
      "accuracy": {...}, "seeds", "diverged": [...], "best": {"learning_rate", "accuracy",
      "final_cost"} or None, "within": {"margin", "low", "high", "factor"} or None}``.
    """
    names = np.array([r["optimizer"] for r in rows])
    rates = np.array([r["learning_rate"] for r in rows], dtype=np.float64)
    seeds = np.array([r["seed"] for r in rows])
    costs = as_values([r["final_cost"] for r in rows])
    accuracies = as_values([r["accuracy"] for r in rows])
    curves = {}
    for name in dict.fromkeys(names.tolist()):
        mine = names == name
        grid, at = np.unique(rates[mine], return_inverse=True)
        seed_grid, seed_at = np.unique(seeds[mine], return_inverse=True)
        table = {}
        for metric, values in (("final_cost", costs[mine]), ("accuracy", accuracies[mine])):
            matrix = np.full((grid.size, seed_grid.size), np.nan)
            matrix[at, seed_at] = values
            table[metric] = matrix
        diverged = np.isnan(table["accuracy"]).sum(axis=1)
        bands = {metric: quantile_curves(matrix.T) for metric, matrix in table.items()}
        curves[name] = {
            "learning_rate": grid.tolist(),
            "seeds": int(seed_grid.size),
            "diverged": diverged.tolist(),
            **{metric: _named_band(band) for metric, band in bands.items()},
            **_best_and_range(grid, bands["accuracy"][1], bands["final_cost"][1], diverged, within),
        }
    return curves


def _named_band(band: np.ndarray) -> dict[str, list]:
    """The BAND quantile curves as ``{"p10": [...], "p50": [...], "p90": [...]}``."""
    return {f"p{round(100 * q)}": json_numbers(curve) for q, curve in zip(BAND, band, strict=True)}


def _best_and_range(grid, accuracy, final_cost, diverged, within) -> dict:
    candidates = np.flatnonzero((diverged == 0) & ~np.isnan(accuracy))
    if candidates.size == 0:
        return {"best": None, "within": None}
    # highest median accuracy, then lowest median final cost
    best = candidates[np.lexsort((final_cost[candidates], -accuracy[candidates]))[0]]
    # the run of neighbouring good rates that holds the best: from just after the last bad rate
    # below it to just before the first bad rate above it
    bad = np.flatnonzero(~((diverged == 0) & (accuracy >= accuracy[best] - within)))
    below, above = bad[bad < best], bad[bad > best]
    low = below[-1] + 1 if below.size else 0
    high = above[0] - 1 if above.size else grid.size - 1
    return {
        "best": {
            "learning_rate": float(grid[best]),
            "accuracy": float(accuracy[best]),
            "final_cost": _number(final_cost[best]),
        },
        "within": {
            "margin": within,
            "low": float(grid[low]),
            "high": float(grid[high]),
            "factor": float(grid[high] / grid[low]),
        },
    }
