"""Time to target: how many epochs each run takes to reach a cost or an accuracy, and which method
gets there first, seed by seed (performance profiles).

A run's *epochs to target* is ``e + 1`` for the first epoch ``e`` (counted from 0, as
``diverged_at_epoch`` is) at which it reached the target: the epochs it had trained when the
target was first seen.

- A cost target is reached at the first epoch whose reported cost (the course's ``cost_avg``,
  measured during the epoch) is at most the target, found by scanning the run's cost history.
- An accuracy target is reached at the first epoch after which the network's accuracy on the
  training set is at least the target: the engine measures it at the end of every epoch when asked
  (``engine.train_grid(target_accuracy=...)``); no accuracy history is kept.

A run that never reaches the target takes infinitely many epochs (``inf`` here, None in rows and
JSON). So does a run that diverged, even one that passed the target before its cost stopped being
finite: its training failed.

Per method, over the seeds: the median epochs to target (infinite when half the seeds or more
never reached it) with a percentile-bootstrap interval, and the share of seeds that never did.
Between methods, the performance profile (Dolan and Moré, 2002; AlgoPerf's time-to-result
comparison): on each seed, each method's epochs divided by the fewest any method needed on that
seed, ``r = t / min(t)``; ``rho(tau)`` is the share of seeds with ``r <= tau``. ``rho(1)`` is
how often a method is the fastest (ties count for each); its height as ``tau`` grows, how often
it gets there within a factor ``tau`` of the fastest; it stays below 1 by the share of seeds on
which it never got there.

Plain NumPy; nothing here depends on JAX.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from jaxopt_lab import evidence
from jaxopt_lab.settings import InvalidValue, check
from jaxopt_lab.stats import CONFIDENCE

BOOTSTRAP_ELEMENTS = 2**23  # resampled values held at once (64 MiB of float64)
# Above this many seeds the median's interval is the order statistics the bootstrap's tends to
# (:func:`median_interval`): resampling would hold resamples x seeds draws and take as long.
BOOTSTRAP_MOST_SEEDS = 1000
PROFILE_POINTS = 1000  # most points of a profile kept (JSON, picture): exact steps up to this many


MEANS = (
    "per target, each method's epochs to target over the seeds: the epochs trained when the "
    "target was first reached (cost: an epoch's reported cost at most the target; accuracy: the "
    "training accuracy after an epoch at least the target); a run that never reached it or "
    "diverged counts as never (infinitely many epochs, None). median: over all seeds, never "
    "included (None when half or more never reached it); ci95: its percentile bootstrap interval "
    "(order statistics; None for never, or with too few seeds); never: share of seeds that never "
    "reached it; fastest: share of seeds on which no method took fewer epochs. profile: the "
    "performance profile, rho[method][k] the share of seeds on which the method took at most "
    "tau[k] times the fewest epochs any method took on that seed"
)


class TimeToTarget(NamedTuple):
    """Every run's epochs to one target."""

    metric: str  # "cost" (reached when at most the target) or "accuracy" (at least)
    target: float
    epochs: np.ndarray  # shape=(methods, seeds), float64: epochs to target, inf for never

    @property
    def label(self) -> str:
        """``cost <= 0.2``, ``accuracy >= 0.9``."""
        return f"{self.metric} {'<=' if self.metric == 'cost' else '>='} {self.target:g}"


def correct_needed(target_accuracy: float | None, m: int) -> int | None:
    """The fewest correct predictions ``k`` of ``m`` examples whose accuracy ``k / m`` (float64,
    as :class:`jaxopt_lab.table.RunTable` computes it) is at least ``target_accuracy``; the
    engine compares counts, so no float rounding of the target decides a run. None for None.

    Raises:
      InvalidValue: a target outside ``(0, 1]``, naming ``target_accuracy``.
    """
    if target_accuracy is None:
        return None
    check("target_accuracy", target_accuracy)
    k = min(m, math.ceil(target_accuracy * m))
    while k > 0 and (k - 1) / m >= target_accuracy:
        k -= 1
    while k < m and k / m < target_accuracy:
        k += 1
    return k


def first_epoch_at_most(costs: np.ndarray, target: float) -> np.ndarray:
    """Per run, the first epoch whose cost is at most ``target``; -1 if none (NaN never is).

    Args:
      costs: shape (..., epochs), NaN (or inf) once a run diverged.

    Returns:
      int64, shape ``costs.shape[:-1]``.
    """
    costs = np.asarray(costs)
    with np.errstate(invalid="ignore"):
        hit = costs <= target
    if costs.shape[-1] == 0:
        return np.full(costs.shape[:-1], -1, np.int64)
    return np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), -1).astype(np.int64)


def epochs_to_target(first_epoch: np.ndarray, diverged_at: np.ndarray) -> np.ndarray:
    """Epochs to target from the first epoch at the target (-1: never) and the first diverged
    epoch (-1: none): ``first_epoch + 1``, inf for a run that never reached it or diverged."""
    first_epoch, diverged_at = np.asarray(first_epoch), np.asarray(diverged_at)
    reached = (first_epoch >= 0) & (diverged_at < 0)
    return np.where(reached, first_epoch + 1.0, np.inf)


def cost_target(costs: np.ndarray, diverged_at: np.ndarray, target: float) -> TimeToTarget:
    """Every run's epochs to a cost of at most ``target``, from its cost history.

    Args:
      costs: shape (methods, seeds, epochs), NaN once diverged.
      diverged_at: shape (methods, seeds), -1 for a run that did not diverge.
      target: a cost > 0 (the ``target_cost`` setting).
    """
    check("target_cost", target, dtype="float64")
    first = first_epoch_at_most(costs, target)
    return TimeToTarget("cost", float(target), epochs_to_target(first, diverged_at))


def accuracy_target(first_epoch, diverged_at, target: float) -> TimeToTarget:
    """Every run's epochs to a training accuracy of at least ``target``, from the first epoch the
    engine saw it there (``RunTable.target_epoch``), shape (methods, seeds)."""
    check("target_accuracy", target, dtype="float64")
    return TimeToTarget("accuracy", float(target), epochs_to_target(first_epoch, diverged_at))


def check_targets(target_cost: float | None, target_accuracy: float | None) -> None:
    """Refuse a target outside its setting's range (None: no such target) before any training.

    Raises:
      InvalidValue: naming ``target_cost`` or ``target_accuracy``.
    """
    if target_cost is not None:
        check("target_cost", target_cost)
    if target_accuracy is not None:
        check("target_accuracy", target_accuracy)


def time_to_targets(
    costs: np.ndarray,
    diverged_at: np.ndarray,
    *,
    target_cost: float | None = None,
    target_accuracy: float | None = None,
    accuracy_epoch: np.ndarray | None = None,
) -> list[TimeToTarget]:
    """The cost target's (from ``costs``) and the accuracy target's (from ``accuracy_epoch``,
    the engine's first epoch at it), each where given, in that order; shapes (methods, seeds)."""
    found = []
    if target_cost is not None:
        found.append(cost_target(costs, diverged_at, target_cost))
    if target_accuracy is not None:
        found.append(accuracy_target(accuracy_epoch, diverged_at, target_accuracy))
    return found


def row_fields(found: Sequence[TimeToTarget], runs: int) -> list[dict]:
    """Per run (``runs`` of them: methods in order, seeds fastest) its epochs to each target as a
    row's fields, ``epochs_to_cost_target`` and ``epochs_to_accuracy_target``: an int, None for
    never; empty dicts without a target."""
    columns = {f"epochs_to_{t.metric}_target": row_values(t.epochs) for t in found}
    if not columns:
        return [{} for _ in range(runs)]
    runs_values = zip(*columns.values(), strict=True)
    return [dict(zip(columns, values, strict=True)) for values in runs_values]


# ---------------------------------------------------------------------------------------------
# Over the seeds
# ---------------------------------------------------------------------------------------------


def profile_ratios(epochs: np.ndarray) -> np.ndarray:
    """The performance ratios ``r[i, s] = t[i, s] / min_j t[j, s]``: how many times the fewest
    epochs any method took on seed ``s`` method ``i`` took; inf where it never reached the target
    (on a seed no method reached, every method's).

    Args:
      epochs: shape (methods, seeds), inf for never.
    """
    epochs = np.asarray(epochs, np.float64)
    best = np.min(epochs, axis=0, initial=np.inf)
    with np.errstate(invalid="ignore"):
        ratios = epochs / best
    return np.where(np.isfinite(ratios), ratios, np.inf)


def profile_taus(ratios: np.ndarray, most: int = PROFILE_POINTS) -> np.ndarray:
    """Where ``rho`` steps: 1 and every distinct finite ratio, in order (``rho`` is constant
    between them, so a step drawing over these is exact); at least ``[1.0]``. With more than
    ``most`` of them, ``most`` points evenly spaced in ``log tau`` from 1 to the largest ratio
    instead (``rho`` exact at each, its steps between them drawn at the next point)."""
    finite = np.asarray(ratios, np.float64)
    taus = np.unique(np.concatenate([[1.0], finite[np.isfinite(finite)]]))
    if len(taus) <= most:
        return taus
    return np.geomspace(1.0, taus[-1], most)  # both ends exact


def performance_profile(ratios: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """``rho[i, k]``: the share of seeds on which method ``i``'s ratio is at most ``taus[k]``.

    Args:
      ratios: shape (methods, seeds) (:func:`profile_ratios`).
      taus: shape (points,), increasing.

    Returns:
      Shape (methods, points), float64, non-decreasing along the points.
    """
    ratios = np.asarray(ratios, np.float64)
    if ratios.shape[-1] == 0:
        return np.zeros((ratios.shape[0], len(taus)))
    ordered = np.sort(ratios, axis=-1)
    below = np.stack([np.searchsorted(row, taus, side="right") for row in ordered])
    return below / ratios.shape[-1]


def bootstrap_median_interval(
    epochs: np.ndarray, *, resamples: int = evidence.RESAMPLES, seed: int = evidence.SEED
) -> np.ndarray:
    """A percentile-bootstrap interval of each method's median over the seeds, never counted
    as infinitely many epochs.

    The resamples are :func:`jaxopt_lab.evidence.resample_indices`'s (the same draws for every
    method, as every bootstrap of the project makes them); the interval runs from the
    ``(1 - CONFIDENCE) / 2`` to the ``(1 + CONFIDENCE) / 2`` quantile of the resampled medians,
    taken as order statistics (NumPy's ``lower`` and ``higher`` methods) rather than
    interpolated as ``evidence.percentile_interval`` does: an infinite median stays infinite
    instead of becoming ``inf - inf``, NaN.

    Args:
      epochs: shape (methods, seeds), inf for never.

    Returns:
      Shape (methods, 2): low, high (inf where the resampled medians were).
    """
    epochs = np.asarray(epochs, np.float64)
    methods, n = epochs.shape
    indices = evidence.resample_indices(n, resamples=resamples, seed=seed)
    medians = np.empty((methods, resamples))
    step = max(1, BOOTSTRAP_ELEMENTS // max(1, methods * n))
    for start in range(0, resamples, step):  # blocks of resamples: bounded memory
        picks = indices[start : start + step]
        medians[:, start : start + len(picks)] = np.median(epochs[:, picks], axis=-1)
    tail = (1 - CONFIDENCE) / 2
    low = np.quantile(medians, tail, axis=-1, method="lower")
    high = np.quantile(medians, 1 - tail, axis=-1, method="higher")
    return np.stack([low, high], axis=-1)


def median_interval(epochs: np.ndarray) -> np.ndarray:
    """Each method's 95% interval of the median over the seeds: the percentile bootstrap's
    (:func:`bootstrap_median_interval`) up to :data:`BOOTSTRAP_MOST_SEEDS` seeds; above, the
    order statistics it tends to as the seeds grow, ``x_(k)`` for ``k = (n - 1) / 2 -+ z
    sqrt(n) / 2`` (0-based, rounded outwards; ``z`` the normal quantile): a resampled median is
    at most ``x_(k)`` when at least half the draws are, a binomial count of mean ``n / 2`` and
    standard deviation ``sqrt(n) / 2``.

    Returns:
      Shape (methods, 2): low, high (inf for never).
    """
    epochs = np.asarray(epochs, np.float64)
    n = epochs.shape[1]
    if n <= BOOTSTRAP_MOST_SEEDS:
        return bootstrap_median_interval(epochs)
    half = NormalDist().inv_cdf((1 + CONFIDENCE) / 2) * math.sqrt(n) / 2
    low, high = max(0, math.floor((n - 1) / 2 - half)), min(n - 1, math.ceil((n - 1) / 2 + half))
    ordered = np.sort(epochs, axis=1)
    return np.stack([ordered[:, low], ordered[:, high]], axis=-1)


def summary(methods: Sequence[str], result: TimeToTarget) -> dict:
    """One target's figures, strict JSON (None for never or undefined).

    Returns:
      ``{"metric", "target", "methods": [{"method", "median", "ci95", "never",
      "fastest"}], "profile": {"tau", "rho"}}``: per method the median epochs to target over
      the seeds, its interval (:func:`median_interval`; None with fewer than
      ``evidence.MIN_VALUES`` seeds, too few to say anything), the share of seeds that never
      reached it and ``rho(1)``, the share on which it was the fastest; the profile at every
      step point.
    """
    epochs = np.asarray(result.epochs, np.float64)
    if epochs.ndim != 2 or epochs.shape[0] != len(methods):
        raise InvalidValue("epochs", f"must have shape (methods, seeds), got {epochs.shape}")
    n = epochs.shape[1]
    ratios = profile_ratios(epochs)
    taus = profile_taus(ratios)
    rho = performance_profile(ratios, taus)
    medians = np.median(epochs, axis=1) if n else np.full(len(methods), np.inf)
    intervals = median_interval(epochs) if n >= evidence.MIN_VALUES else None
    rows = [
        {
            "method": method,
            "median": _finite(medians[i]),
            "ci95": None if intervals is None else [_finite(v) for v in intervals[i]],
            "never": float(np.mean(np.isinf(epochs[i]))) if n else None,
            "fastest": float(rho[i, 0]),
        }
        for i, method in enumerate(methods)
    ]
    return {
        "metric": result.metric,
        "target": result.target,
        "methods": rows,
        "profile": {"tau": taus.tolist(), "rho": rho.tolist()},
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def row_values(epochs: np.ndarray) -> list:
    """Epochs to target as row values: ints, None for never."""
    flat = np.asarray(epochs, np.float64).ravel()
    return [int(v) if math.isfinite(v) else None for v in flat.tolist()]


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def targets_table(summaries: Sequence[dict], seeds: int) -> str:
    """Per method and target: the median epochs to target with its 95% bootstrap interval, the
    share of the seeds that never reached it, and the share on which the method was the fastest;
    Markdown, readable as text."""
    if not summaries:
        return ""

    def epochs(value) -> str:  # a whole number of epochs, or a median halfway between two
        return "never" if value is None else f"{value:.1f}".removesuffix(".0")

    def interval(ci) -> str:
        if ci is None or ci[0] is None:  # too few seeds, or never at both ends
            return "-"
        return f"{epochs(ci[0])} to {epochs(ci[1])}"

    columns = "median epochs | 95% interval (bootstrap) | never | fastest"
    head = f"| time to target, {seeds} seeds | " + " | ".join(
        f"{target_label(s)}: {columns}" for s in summaries
    ) + " |"
    lines = [head, "|---|" + "---:|---:|---:|---:|" * len(summaries)]
    for i, first in enumerate(summaries[0]["methods"]):
        cells = []
        for s in summaries:
            m = s["methods"][i]
            never = "-" if m["never"] is None else f"{m['never']:.0%}"
            cells += [epochs(m["median"]), interval(m["ci95"]), never, f"{m['fastest']:.0%}"]
        lines.append(f"| {first['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_label(summary: Mapping) -> str:
    """A :func:`summary`'s target in words: ``cost <= 0.2``, ``accuracy >= 0.9``."""
    return TimeToTarget(summary["metric"], summary["target"], np.zeros((0, 0))).label
