"""How far the seeds' results can be trusted: robust locations (median, interquartile mean),
percentile bootstrap intervals that stay inside the values' range, and the paired evidence
between two runs (wins, ties and losses, the probability of improvement, the mean difference and
the sign test).

Every bootstrap here resamples the seeds. Resample ``r`` of ``n`` values is the values at
``numpy.random.default_rng(seed).integers(0, n, (resamples, n))[r]``: the draw
``scipy.stats.bootstrap`` makes for one sample, or for paired samples, with the same generator,
so the percentile intervals here are SciPy's for the same ``resamples`` and ``seed``. Every
statistic with ``n`` values sees the same resamples, as it would with a fresh generator in SciPy.

Diverged runs are NaN (see :mod:`jaxopt_lab.stats`). The locations are over the finished runs.
Between two runs, a diverged run loses to a finished one and ties with a diverged one, as in
:func:`jaxopt_lab.stats.beats`; the mean difference needs both numbers, so it is over the seeds
on which both runs finished.

Plain NumPy; nothing here depends on JAX or SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from jaxopt_lab.stats import CONFIDENCE, as_values

RESAMPLES = 10_000  # bootstrap resamples of every interval (SciPy's default is 9,999)
SEED = 0  # of every bootstrap's generator: numpy.random.default_rng(SEED)
MIN_VALUES = 5  # below this many values an interval over seeds is not informative
TRIM = 0.25  # the interquartile mean leaves out this share of the values at each end
BLOCK = 2**21  # resamples x values handled at once: any number of seeds in bounded memory


def method(resamples: int = RESAMPLES, seed: int = SEED) -> str:
    """How the bootstrap intervals are made, in words for a table or a JSON file."""
    return (f"{CONFIDENCE:.0%} percentile bootstrap over the seeds, {resamples} resamples, "
            f"generator numpy.random.default_rng({seed})")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Resamples and percentile intervals
# ---------------------------------------------------------------------------------------------


def resample_indices(n: int, *, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Which of ``n`` values each bootstrap resample holds: row ``r`` is resample ``r``, drawn
    with replacement as ``scipy.stats.bootstrap`` draws with ``rng=default_rng(seed)``.

    Returns:
      Shape (resamples, n), int64, values in ``[0, n)``: ``default_rng(seed).integers(0, n,
      (resamples, n))``.
    """
    return np.concatenate(list(_blocks(n, resamples, seed)))


def _blocks(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """:func:`resample_indices` in consecutive blocks of whole resamples, at most
    :data:`BLOCK` indices each: the same draws, as numpy's stream does not depend on how the
    draws are cut."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need at least one value and one resample, got n={n}, {resamples=}")
    rng = np.random.default_rng(seed)
    rows = max(1, BLOCK // n)
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, (min(rows, resamples - start), n))


def _counts(indices: np.ndarray) -> np.ndarray:
    """How often each of the ``n`` values is drawn in each resample: shape (resamples, n),
    int32 (int64 where ``2 n^2`` would not fit); every row sums to ``n``."""
    resamples, n = indices.shape
    flat = (indices + n * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * n).reshape(resamples, n)
    return counts.astype(np.int32 if 2 * n * n < 2**31 else np.int64)


def percentile_interval(estimates: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """The percentile bootstrap interval: the ``(1 - confidence) / 2`` and ``(1 + confidence) /
    2`` quantiles (linear interpolation between order statistics) of each row's estimates.

    Args:
      estimates: shape (..., resamples): a statistic of every resample.

    Returns:
      Shape (..., 2): ``[low, high]`` per row; inside the row's range.
    """
    alpha = (1 - confidence) / 2
    return np.moveaxis(np.quantile(estimates, [alpha, 1 - alpha], axis=-1), 0, -1)


def _interval(estimates: np.ndarray, low: float, high: float) -> list[float]:
    """A percentile interval held inside ``[low, high]``: the bound a statistic cannot leave,
    which summation order can cross by one rounding."""
    return np.clip(percentile_interval(estimates), low, high).tolist()


# ---------------------------------------------------------------------------------------------
# Locations of one run's values
# ---------------------------------------------------------------------------------------------


def iqm(values: Sequence[float | None]) -> float | None:
    """The interquartile mean of the finished values: the mean of what is left when the lowest
    and the highest ``floor(0.25 n)`` of the ``n`` values are left out (``scipy.stats.trim_mean(x,
    0.25)``, rliable's IQM). None with no finished value."""
    x = np.sort(_finished(values))
    cut = int(TRIM * x.size)
    return float(x[cut : x.size - cut].mean()) if x.size else None


def locations(values: Sequence[float | None], *, resamples: int = RESAMPLES,
              seed: int = SEED) -> dict:  # fmt: skip
    """Median and interquartile mean of the finished values, and the percentile bootstrap
    interval of the mean, the median and the IQM.

    Each interval lies inside ``[min, max]`` of the values, as every resample's statistic does.
    It equals ``scipy.stats.bootstrap((x,), statistic, n_resamples=resamples,
    method="percentile", rng=numpy.random.default_rng(seed))`` over the finished values ``x``
    in their given order, with ``statistic`` ``numpy.mean``, ``numpy.median`` or
    ``scipy.stats.trim_mean(., 0.25)``.

    Returns:
      ``{"median", "iqm", "bootstrap": {"mean", "median", "iqm"}}``, each interval ``[low,
      high]``; the median and IQM None with no finished value, the intervals with fewer than two.
    """
    return locations_of([values], resamples=resamples, seed=seed)[0]


def locations_of(rows: Sequence[Sequence[float | None]], *, resamples: int = RESAMPLES,
                 seed: int = SEED) -> list[dict]:  # fmt: skip
    """:func:`locations` of every row (e.g. an array of shape (runs, seeds)). Rows with as many
    finished values see the same resamples, so each block of them is drawn once for all."""
    finished = [_finished(row) for row in rows]
    results = [
        {"median": float(np.median(x)) if x.size else None, "iqm": iqm(x),
         "bootstrap": {"mean": None, "median": None, "iqm": None}}
        for x in finished
    ]  # fmt: skip
    for n in sorted({x.size for x in finished if x.size >= 2}):
        alike = [k for k, x in enumerate(finished) if x.size == n]
        estimates = {k: [] for k in alike}
        for block in _blocks(n, resamples, seed):
            for k in alike:
                estimates[k].append(_resampled_locations(finished[k], block))
        for k in alike:
            x, rows_estimates = finished[k], np.concatenate(estimates[k], axis=1)
            results[k]["bootstrap"] = {
                name: _interval(row, x.min(), x.max())
                for name, row in zip(("mean", "median", "iqm"), rows_estimates, strict=True)
            }
    return results


def _resampled_locations(x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Mean, median and IQM of every resample ``x[indices[r]]``, shape (3, resamples).

    The mean is numpy.mean of each resample, as SciPy takes it. For the others each resample is
    sorted as the ranks of its values (small integers, quick to sort): ``ascending[ranks[r, k]]``
    is its ``k``-th lowest value.
    """
    n = x.size
    order = np.argsort(x, kind="stable")
    ascending = x[order]
    rank = np.empty(n, dtype=np.int16 if n <= 2**15 else np.int32)  # small: quicker to sort
    rank[order] = np.arange(n)
    ranks = np.sort(rank[indices], axis=1)
    cut = int(TRIM * n)
    return np.stack([
        x[indices].mean(axis=1),
        (ascending[ranks[:, (n - 1) // 2]] + ascending[ranks[:, n // 2]]) / 2,  # numpy.median's
        ascending[ranks[:, cut : n - cut]].mean(axis=1),
    ])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Two runs, seed by seed
# ---------------------------------------------------------------------------------------------


def probability_of_improvement(x: Sequence[float | None], y: Sequence[float | None]) -> float:
    """rliable's probability of improvement of ``x`` over ``y``: ``P(X > Y) + P(X = Y) / 2`` for
    ``X`` one of ``x``'s values and ``Y`` one of ``y``'s, every pair counted (not only the same
    seed's): the Mann-Whitney ``U`` of ``x`` over ``len(x) * len(y)``. A diverged run (NaN) is
    below every finished value and equal to another diverged one."""
    a, b = np.sort(_ranked(x)), np.sort(_ranked(y))
    if a.size == 0 or b.size == 0:
        raise ValueError("both runs need at least one seed")
    below = np.searchsorted(b, a, side="left")  # y's values below each of x's
    upto = np.searchsorted(b, a, side="right")  # ... and those equal to it
    return float(np.sum(below + upto) / (2 * a.size * b.size))


def sign_test(wins: int, losses: int) -> float:
    """The exact two-sided sign test: the probability, were either run as likely to win a seed
    that is not a tie, of a split at least as uneven as ``wins`` to ``losses``. Ties are left
    out before (they say nothing of which is better); with none left the p-value is 1.

    With ``n = wins + losses`` and ``k = min(wins, losses)``: ``p = min(1, 2 sum_{i <= k}
    C(n, i) / 2^n)``, in exact integers (``scipy.stats.binomtest(wins, n).pvalue``).
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"counts must not be negative, got {wins=}, {losses=}")
    n, k = wins + losses, min(wins, losses)
    term, tail = 1, 1  # C(n, 0), and the sum so far
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**n)  # int / int: correctly rounded however large


def paired(x: Sequence[float | None], y: Sequence[float | None], *, resamples: int = RESAMPLES,
           seed: int = SEED) -> dict:  # fmt: skip
    """What two runs' results on the same seeds say about which is better.

    Args:
      x, y: one value per seed, the same seeds in the same order; NaN (or None) for a diverged
        run.

    Returns:
      ``{"seeds", "wins", "ties", "losses", "sign_test_p", "probability_of_improvement",
      "probability_interval", "both_finished", "mean_difference", "difference_interval"}``:
      seed by seed ``x`` wins (higher), ties or loses (a diverged run loses to a finished one,
      two diverged runs tie); the sign test over the wins and losses (:func:`sign_test`); the
      probability of improvement of ``x`` over ``y`` (:func:`probability_of_improvement`) and
      its percentile bootstrap interval, resampling seeds with both runs' results together
      (``scipy.stats.bootstrap((x, y), ..., paired=True)``); and over the seeds on which both
      finished, the mean of ``x - y`` and its paired percentile bootstrap interval (the same,
      over those seeds). Intervals are None with fewer than two seeds, the mean difference
      with none.
    """
    return _paired(x, y, resamples, seed)


def pairwise(accuracy: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED) -> list[dict]:
    """:func:`paired` for every two runs ``i < j`` (``x`` run ``i``, ``y`` run ``j``), each dict
    with ``"first": i`` and ``"second": j``, in the order (0, 1), (0, 2), ..., (1, 2), ...

    Args:
      accuracy: shape (runs, seeds), NaN where a run diverged.
    """
    accuracy = as_values(accuracy)
    if accuracy.ndim != 2 or accuracy.shape[1] == 0:
        raise ValueError(f"accuracy must have shape (runs, seeds), got {accuracy.shape}")
    ranked = _ranked(accuracy)
    runs, seeds = ranked.shape
    together = [(i, j) for i in range(runs) for j in range(i + 1, runs)]
    finished = ~np.isnan(accuracy).any(axis=1)  # the mean difference of two such runs: all seeds
    improvements = {pair: [] for pair in together}
    differences = {(i, j): [] for i, j in together if finished[i] and finished[j]}
    for block in _blocks(seeds, resamples, seed) if seeds >= 2 else ():
        counts = _counts(block)
        for j in range(1, runs):  # run j's cumulated draws serve every pair (i, j)
            below = _Below.of(ranked[j], counts)
            for i in range(j):
                improvements[i, j].append(below.improvement(ranked[i]))
                if (i, j) in differences:
                    differences[i, j].append((ranked[i] - ranked[j])[block].mean(axis=1))
    return [
        {"first": i, "second": j, **_paired(accuracy[i], accuracy[j], resamples, seed,
                                             improvements[i, j], differences.get((i, j)))}
        for i, j in together
    ]  # fmt: skip


def _paired(x, y, resamples: int, seed: int, improvements: list | None = None,
            differences: list | None = None) -> dict:  # fmt: skip
    """:func:`paired`; ``improvements`` and ``differences``, where given, the probability of
    improvement and the mean difference of every resample (block by block, drawn over the
    seeds the statistic is over), else computed here."""
    a, b = _ranked(x), _ranked(y)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"x and y must hold one value per seed each, got {a.shape}, {b.shape}")
    wins, losses = int(np.sum(a > b)), int(np.sum(a < b))
    both = np.isfinite(a) & np.isfinite(b)
    d = a[both] - b[both]
    result = {
        "seeds": a.size, "wins": wins, "ties": a.size - wins - losses, "losses": losses,
        "sign_test_p": sign_test(wins, losses),
        "probability_of_improvement": probability_of_improvement(x, y),
        "probability_interval": None, "both_finished": d.size,
        "mean_difference": float(d.mean()) if d.size else None, "difference_interval": None,
    }  # fmt: skip
    if a.size >= 2:
        if improvements is None:
            improvements = [_Below.of(b, _counts(block)).improvement(a)
                            for block in _blocks(a.size, resamples, seed)]  # fmt: skip
        result["probability_interval"] = _interval(np.concatenate(improvements), 0.0, 1.0)
    if d.size >= 2:
        if not differences:
            differences = [d[block].mean(axis=1) for block in _blocks(d.size, resamples, seed)]
        result["difference_interval"] = _interval(np.concatenate(differences), d.min(), d.max())
    return result


class _Below(NamedTuple):
    """One run's draws in a block of paired resamples, cumulated over its values sorted
    ascending: what any other run's probability of improvement over it needs."""

    counts: np.ndarray  # shape=(resamples, n), int: the draws of each seed
    values: np.ndarray  # shape=(n,), float64: the run's values, ascending (-inf: diverged)
    cumulative: np.ndarray  # shape=(resamples, n + 1), int: draws of the k lowest values

    @classmethod
    def of(cls, b: np.ndarray, counts: np.ndarray) -> _Below:
        order = np.argsort(b, kind="stable")
        cumulative = np.zeros((counts.shape[0], b.size + 1), dtype=counts.dtype)
        np.cumsum(counts[:, order], axis=1, out=cumulative[:, 1:])
        return cls(counts, b[order], cumulative)

    def improvement(self, a: np.ndarray) -> np.ndarray:
        """The probability of improvement of ``a`` over this run in every paired resample:
        ``sum_k c_k (drawn values below a_k + half those equal to it) / n^2``, ``c_k`` the draws
        of seed ``k``; exact in integers until the one division."""
        twice = self.cumulative[:, np.searchsorted(self.values, a, side="left")]
        twice += self.cumulative[:, np.searchsorted(self.values, a, side="right")]
        twice *= self.counts
        return np.sum(twice, axis=1, dtype=np.int64) / (2 * a.size * a.size)


def _finished(values) -> np.ndarray:
    """The finished values, in their given order (the order the draws index)."""
    x = as_values(values).ravel()
    return x[~np.isnan(x)]


def _ranked(values) -> np.ndarray:
    """Values for comparing runs: a diverged run (NaN) as ``-inf``, below every finished one."""
    x = as_values(values)
    return np.where(np.isnan(x), -math.inf, x)
