"""The statistics of many runs (jaxopt_lab.stats) on small arrays with diverged runs in them,
against NumPy and SciPy computed on the finished runs only, and a loop over seeds for the wins."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from jaxopt_lab import stats

NAN = float("nan")


def test_summary_is_over_the_finished_runs():
    values = [0.9, None, 0.7, NAN, 0.8, float("inf"), 0.95]
    finished = np.array([0.9, 0.7, 0.8, 0.95])
    summary = stats.summary(values)
    assert summary["n"] == 4
    assert summary["mean"] == pytest.approx(finished.mean())
    assert summary["std"] == pytest.approx(finished.std(ddof=1))
    # The 95% t interval's ends are the means a two-sided one-sample t test rejects at 5%.
    for end in summary["ci95"]:
        assert scipy_stats.ttest_1samp(finished, end).pvalue == pytest.approx(0.05)
    json.dumps(summary, allow_nan=False)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {"n": 0, "mean": None, "std": None, "ci95": None}),
        ([None, NAN], {"n": 0, "mean": None, "std": None, "ci95": None}),
        ([0.5, None], {"n": 1, "mean": 0.5, "std": None, "ci95": None}),
    ],
)
def test_summary_of_too_few_runs_is_none_where_undefined(values, expected):
    assert stats.summary(values) == expected


def test_percentile_of_counts_ties_half():
    values = [0.7, 0.8, 0.8, 0.9, None]
    for value in (0.6, 0.7, 0.8, 0.85, 0.9, 1.0):
        expected = scipy_stats.percentileofscore([0.7, 0.8, 0.8, 0.9], value, kind="mean")
        assert stats.percentile_of(value, values) == pytest.approx(expected)
    assert stats.percentile_of(None, values) is None
    assert stats.percentile_of(0.5, [None, NAN]) is None


def test_beats_is_the_paired_count_seed_by_seed():
    rng = np.random.default_rng(0)
    accuracy = rng.choice([0.7, 0.8, 0.9], size=(4, 50))  # many ties
    accuracy[1, :5] = NAN  # run 1 diverged on five seeds
    accuracy[2, 3] = NAN  # both run 1 and run 2 on seed 3
    share = stats.beats(accuracy)
    for i in range(4):
        for j in range(4):
            wins = 0
            for s in range(50):
                if not math.isnan(accuracy[i, s]):  # a diverged run beats nothing
                    wins += math.isnan(accuracy[j, s]) or accuracy[i, s] > accuracy[j, s]
            assert share[i, j] == wins / 50, (i, j)
    ties = 1 - share - share.T
    assert np.all(np.diag(share) == 0) and np.all(ties >= 0)
    assert ties[1, 2] >= 1 / 50  # seed 3: both diverged
    assert share[0, 1] >= 5 / 50


def test_quantile_curves_leave_diverged_runs_out():
    costs = np.array([[0.5, 0.4, NAN], [0.7, np.inf, NAN], [0.6, 0.2, NAN]])
    curves = stats.quantile_curves(costs)
    np.testing.assert_allclose(curves[:, 0], np.quantile([0.5, 0.7, 0.6], stats.BAND))
    np.testing.assert_allclose(curves[:, 1], np.quantile([0.4, 0.2], stats.BAND))
    assert np.all(np.isnan(curves[:, 2]))
    assert stats.json_numbers(curves[:, 2]) == [None, None, None]


def _rows(table):
    """Sweep-like rows from {rate: [(final cost, accuracy) or None per seed]}."""
    return [
        {"optimizer": "gd", "learning_rate": rate, "seed": seed,
         "final_cost": None if result is None else result[0],
         "accuracy": None if result is None else result[1]}  # fmt: skip
        for rate, results in table.items()
        for seed, result in enumerate(results)
    ]


def test_lr_curves_best_rate_and_forgiving_range():
    table = {
        0.001: [(0.60, 0.70), (0.62, 0.72)],
        0.01: [(0.20, 0.930), (0.22, 0.925)],
        0.1: [(0.15, 0.94), (0.13, 0.95)],
        1.0: [(0.14, 0.945), (0.13, 0.94)],
        10.0: [(0.13, 0.96), None],  # best median accuracy, but a seed diverged
        100.0: [None, None],
    }
    curve = stats.lr_curves(_rows(table))["gd"]
    assert curve["learning_rate"] == sorted(table)
    assert curve["diverged"] == [0, 0, 0, 0, 1, 2]
    assert curve["accuracy"]["p50"][:5] == pytest.approx([0.71, 0.9275, 0.945, 0.9425, 0.96])
    assert curve["final_cost"]["p50"][5] is None  # every seed diverged: no number
    # 0.1 and 1.0 reach 0.945 and 0.9425; a diverged seed rules 10.0 out.
    assert curve["best"] == pytest.approx({"learning_rate": 0.1, "accuracy": 0.945, "final_cost": 0.14})
    # within 0.01 of 0.945: 0.01 (0.9275) is not, 1.0 is; 10.0 had a diverged seed
    assert curve["within"] == pytest.approx(
        {"margin": 0.01, "low": 0.1, "high": 1.0, "factor": 10.0}
    )
    json.dumps(curve, allow_nan=False)


def test_lr_curves_with_every_rate_diverged_has_no_best():
    curve = stats.lr_curves(_rows({0.5: [None], 5.0: [None]}))["gd"]
    assert curve["best"] is None and curve["within"] is None
    assert curve["diverged"] == [1, 1]


def test_quantile_curves_are_numpy_s_nanquantile_epoch_by_epoch():
    rng = np.random.default_rng(7)
    costs = rng.lognormal(size=(9, 400))
    costs[rng.random(costs.shape) < 0.3] = np.nan  # runs that diverged, up to every run
    costs[:, 5] = np.nan
    costs[1:, 6] = np.inf
    quantiles = (0.0, 0.1, 0.25, 0.5, 0.9, 1.0)
    curves = stats.quantile_curves(costs, quantiles)
    finite = np.where(np.isfinite(costs), costs, np.nan)
    for epoch in range(costs.shape[1]):
        alive = finite[:, epoch][~np.isnan(finite[:, epoch])]
        expected = np.quantile(alive, quantiles) if alive.size else np.full(len(quantiles), np.nan)
        np.testing.assert_allclose(curves[:, epoch], expected, rtol=1e-15, atol=0)
