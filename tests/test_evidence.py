"""The seeds' evidence (jaxopt_lab.evidence) against SciPy: the bootstrap's draws and percentile
intervals against ``scipy.stats.bootstrap``, the IQM against ``trim_mean``, the probability of
improvement against the Mann-Whitney U, the sign test against ``binomtest``; intervals inside the
values on adversarial inputs; and the printed seeds tables for 2, 3, 10 and 100 seeds, built from
synthetic rows (nothing trains here).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from jaxopt_lab import evidence, stats
from jaxopt_lab.config import COURSE_RUNS
from jaxopt_lab.experiments import seeds as seeds_experiment

NAN = float("nan")
FEW = 2000  # resamples where a test compares with SciPy many times: cheaper, the same code
GRID = np.arange(301) / 300  # the accuracies 300 points can give: ties are common


def scipy_interval(data, statistic, *, paired=False, resamples=FEW, seed=evidence.SEED):
    """SciPy's percentile interval. Its resamples are ours exactly (see the first test); the
    interval's ends may differ in the last bits, as scipy.stats.quantile and numpy.quantile
    interpolate between the same two order statistics with different rounding."""
    result = scipy_stats.bootstrap(
        data, statistic, n_resamples=resamples, paired=paired, vectorized=True,
        method="percentile", confidence_level=stats.CONFIDENCE,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return [result.confidence_interval.low, result.confidence_interval.high]


def trim_mean(x, axis=-1):
    return scipy_stats.trim_mean(x, 0.25, axis=axis)


def improvement(x, y, axis=-1):
    """P(X > Y) + P(X = Y) / 2 over every pair of the last axes' values, straight from the
    definition."""
    a, b = x[..., :, None], y[..., None, :]
    return np.mean((a > b) + 0.5 * (a == b), axis=(-2, -1))


def mean_difference(x, y, axis=-1):
    return np.mean(x - y, axis=axis)


# ---------------------------------------------------------------------------------------------
# The bootstrap
# ---------------------------------------------------------------------------------------------


def test_the_resamples_are_the_ones_scipy_draws():
    # Every resample of 0, 1, ..., n-1 written as one number in base n: SciPy's bootstrap
    # distribution of that statistic spells out which values each of its resamples holds.
    n, resamples, seed = 5, 300, 7
    weights = n ** np.arange(n)
    theirs = scipy_stats.bootstrap(
        (np.arange(n, dtype=np.float64),), lambda x, axis=-1: np.sum(x * weights, axis=axis),
        n_resamples=resamples, vectorized=True, method="percentile",
        rng=np.random.default_rng(seed),
    ).bootstrap_distribution  # fmt: skip
    ours = evidence.resample_indices(n, resamples=resamples, seed=seed)
    assert ours.shape == (resamples, n)
    np.testing.assert_array_equal(ours @ weights, theirs)


def sample(n: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "accuracy":  # on the grid, most of the mass on a few plateaus
        return rng.choice(GRID[150:], size=n, p=None)
    return rng.lognormal(-2, 1, size=n)  # final costs: positive, skewed, no ties


@pytest.mark.parametrize("n", [2, 3, 10, 100])
@pytest.mark.parametrize("kind", ["accuracy", "final_cost"])
def test_location_intervals_are_scipy_bootstrap_s(n, kind):
    x = sample(n, kind, seed=n)
    ours = evidence.locations(x, resamples=FEW, seed=3)
    assert ours["median"] == np.median(x)
    assert ours["iqm"] == pytest.approx(trim_mean(x), rel=1e-12)
    for name, statistic in (("mean", np.mean), ("median", np.median), ("iqm", trim_mean)):
        expected = scipy_interval((x,), statistic, seed=3)
        assert ours["bootstrap"][name] == pytest.approx(expected, rel=1e-12, abs=1e-15), name


def test_resamples_taken_block_by_block_are_the_same_resamples(monkeypatch):
    # Many seeds are resampled a block at a time (evidence.BLOCK bounds the memory); cut into
    # blocks of 3, 7 and 64 indices, the intervals are still SciPy's over one whole draw.
    x = sample(10, "final_cost", seed=4)
    y = x[::-1] + 0.01
    expected = {
        "mean": scipy_interval((x,), np.mean), "iqm": scipy_interval((x,), trim_mean),
        "probability": scipy_interval((x, y), improvement, paired=True),
        "difference": scipy_interval((x, y), mean_difference, paired=True),
    }  # fmt: skip
    for block in (3, 7, 64):
        monkeypatch.setattr(evidence, "BLOCK", block)
        np.testing.assert_array_equal(evidence.resample_indices(10, resamples=FEW),
                                      np.random.default_rng(0).integers(0, 10, (FEW, 10)))
        located = evidence.locations(x, resamples=FEW)["bootstrap"]
        pair = evidence.pairwise(np.stack([x, y]), resamples=FEW)[0]
        assert located["mean"] == pytest.approx(expected["mean"], rel=1e-12)
        assert located["iqm"] == pytest.approx(expected["iqm"], rel=1e-12)
        assert pair["probability_interval"] == pytest.approx(expected["probability"], rel=1e-12)
        assert pair["difference_interval"] == pytest.approx(expected["difference"], rel=1e-12)


def test_the_module_s_resamples_and_seed_are_the_ones_used():
    x = sample(10, "final_cost", seed=1)
    ours = evidence.locations(x)["bootstrap"]["mean"]
    assert ours == pytest.approx(scipy_interval((x,), np.mean, resamples=evidence.RESAMPLES),
                                 rel=1e-12)  # fmt: skip
    assert f"{evidence.RESAMPLES} resamples" in evidence.method()
    assert f"default_rng({evidence.SEED})" in evidence.method()


def test_locations_leave_out_diverged_runs():
    values = [0.9, None, 0.7, NAN, 0.8, 0.95, float("inf"), 0.85]
    finished = np.array([0.9, 0.7, 0.8, 0.95, 0.85])  # in their order: the draws index them so
    ours = evidence.locations(values, resamples=FEW)
    assert ours["median"] == np.median(finished)
    assert ours["iqm"] == pytest.approx(trim_mean(finished))
    assert ours["bootstrap"]["median"] == pytest.approx(scipy_interval((finished,), np.median))
    json.dumps(ours, allow_nan=False)


@pytest.mark.parametrize(
    ("values", "median", "iqm"), [([], None, None), ([None, NAN], None, None), ([0.5], 0.5, 0.5)]
)
def test_locations_of_too_few_runs_are_none_where_undefined(values, median, iqm):
    ours = evidence.locations(values)
    assert (ours["median"], ours["iqm"]) == (median, iqm)
    assert ours["bootstrap"] == {"mean": None, "median": None, "iqm": None}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1,
                max_size=40))  # fmt: skip
def test_the_iqm_is_scipy_s_trim_mean(values):
    assert evidence.iqm(values) == pytest.approx(trim_mean(np.array(values)), rel=1e-9, abs=1e-9)


values_lists = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, 0.1, 1 / 3, 0.7]),
              st.floats(min_value=-1e300, max_value=1e300, allow_nan=False)),
    min_size=2, max_size=30,
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(values_lists, st.integers(0, 2**32 - 1))
def test_every_location_interval_lies_inside_the_values(values, seed):
    # Repeated values such as [0.1, 0.1, 0.1] sum to a mean one rounding above them; the
    # interval still may not leave [min, max].
    ours = evidence.locations(values, resamples=200, seed=seed)
    for name, (low, high) in ours["bootstrap"].items():
        assert min(values) <= low <= high <= max(values), name


# ---------------------------------------------------------------------------------------------
# Two runs
# ---------------------------------------------------------------------------------------------

accuracies = st.lists(st.sampled_from(list(GRID[240:])), min_size=1, max_size=25)


@settings(max_examples=80, deadline=None)
@given(accuracies, accuracies)
def test_the_probability_of_improvement_is_the_mann_whitney_u(x, y):
    u = scipy_stats.mannwhitneyu(x, y).statistic  # pairs x ahead, ties counted as half
    assert evidence.probability_of_improvement(x, y) == pytest.approx(u / (len(x) * len(y)))


def test_a_diverged_run_is_below_every_finished_one_and_ties_another():
    x, y = [0.9, None, NAN, 0.5], [None, 0.6, 0.9, 0.1]
    # the definition, pair by pair: a diverged run is lower than any number, equal to another
    def key(v):
        return -np.inf if v is None or np.isnan(v) else v

    expected = np.mean([(key(a) > key(b)) + 0.5 * (key(a) == key(b)) for a in x for b in y])
    assert evidence.probability_of_improvement(x, y) == expected


@pytest.mark.parametrize("wins", [0, 1, 2, 5, 9, 10, 17, 30])
@pytest.mark.parametrize("losses", [0, 1, 3, 10, 30])
def test_the_sign_test_is_binomtest(wins, losses):
    if wins + losses == 0:
        assert evidence.sign_test(0, 0) == 1.0  # nothing but ties: no evidence either way
        return
    expected = scipy_stats.binomtest(wins, wins + losses).pvalue
    assert evidence.sign_test(wins, losses) == pytest.approx(expected, rel=1e-12)


def test_the_sign_test_holds_for_many_seeds():
    # 2^n does not fit a float from n = 1024 on; the exact integers do not mind
    for wins, losses in ((600, 500), (2000, 1900), (5, 4000)):
        expected = scipy_stats.binomtest(wins, wins + losses).pvalue
        assert evidence.sign_test(wins, losses) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n", [2, 3, 10, 100])
def test_the_paired_intervals_are_scipy_s_paired_bootstrap(n):
    rng = np.random.default_rng(n)
    x = rng.choice(GRID[200:], size=n)
    y = np.clip(x + rng.choice([-2, -1, 0, 0, 1, 3], size=n) / 300, 0, 1)
    ours = evidence.paired(x, y, resamples=FEW, seed=5)
    assert ours["probability_of_improvement"] == improvement(x, y)
    assert ours["probability_interval"] == pytest.approx(
        scipy_interval((x, y), improvement, paired=True, seed=5), rel=1e-12)
    assert ours["mean_difference"] == pytest.approx(np.mean(x - y))
    assert ours["difference_interval"] == pytest.approx(
        scipy_interval((x, y), mean_difference, paired=True, seed=5), rel=1e-12, abs=1e-15)
    wins, losses = int(np.sum(x > y)), int(np.sum(x < y))
    assert (ours["wins"], ours["ties"], ours["losses"]) == (wins, n - wins - losses, losses)


def test_paired_runs_with_diverged_seeds():
    x = np.array([0.9, NAN, NAN, 0.5, 0.8, 0.7, 0.95])
    y = np.array([NAN, 0.6, NAN, 0.5, 0.85, 0.6, 0.9])
    ours = evidence.paired(x, y, resamples=FEW)
    # seed by seed, as stats.beats counts them: x wins 0 (y diverged), 5, 6; y wins 1 (x
    # diverged), 4; 2 (both diverged) and 3 (equal) tie
    beats = stats.beats(np.stack([x, y]))
    assert ours["wins"] == round(beats[0, 1] * 7) == 3
    assert ours["losses"] == round(beats[1, 0] * 7) == 2
    assert ours["ties"] == 2
    assert ours["sign_test_p"] == pytest.approx(scipy_stats.binomtest(3, 5).pvalue)
    both = ~np.isnan(x) & ~np.isnan(y)
    assert ours["both_finished"] == 4
    assert ours["mean_difference"] == pytest.approx(np.mean(x[both] - y[both]))
    assert ours["difference_interval"] == pytest.approx(
        scipy_interval((x[both], y[both]), mean_difference, paired=True))
    ranked = (np.nan_to_num(x, nan=-np.inf), np.nan_to_num(y, nan=-np.inf))
    assert ours["probability_interval"] == pytest.approx(
        scipy_interval(ranked, improvement, paired=True), rel=1e-12)
    json.dumps(ours, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from([0.0, 0.5, 1.0, NAN]), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.0, 0.5, 1.0, NAN]), min_size=n, max_size=n),
)))  # fmt: skip
def test_paired_intervals_lie_inside_what_they_can_be(xy):
    x, y = np.array(xy[0]), np.array(xy[1])
    ours = evidence.paired(x, y, resamples=200)
    assert ours["wins"] + ours["ties"] + ours["losses"] == x.size
    if ours["probability_interval"] is not None:
        low, high = ours["probability_interval"]
        assert 0 <= low <= high <= 1
    if ours["difference_interval"] is not None:
        d = (x - y)[~np.isnan(x - y)]
        low, high = ours["difference_interval"]
        assert d.min() <= low <= high <= d.max()


def test_pairwise_is_paired_for_every_two_runs():
    rng = np.random.default_rng(0)
    accuracy = rng.choice(GRID[200:], size=(4, 12))
    accuracy[1, [0, 5]] = NAN
    accuracy[3, 5] = NAN
    pairs = evidence.pairwise(accuracy, resamples=FEW)
    assert [(p["first"], p["second"]) for p in pairs] == [
        (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)
    ]
    for p in pairs:
        alone = evidence.paired(accuracy[p["first"]], accuracy[p["second"]], resamples=FEW)
        assert {k: v for k, v in p.items() if k not in ("first", "second")} == alone


# ---------------------------------------------------------------------------------------------
# The printed seeds tables
# ---------------------------------------------------------------------------------------------

RUNS = COURSE_RUNS[:3]


def comparison_of(accuracy: np.ndarray, final_cost: np.ndarray):
    """A SeedsComparison of the first three course runs with these results (runs, seeds) and its
    statistics, as compare_seeds computes them from its rows."""
    methods, configs = [label for label, _ in RUNS], [config for _, config in RUNS]
    n_seeds = accuracy.shape[1]
    rows = [
        {"method": methods[i], "seed": s,
         "accuracy": None if np.isnan(accuracy[i, s]) else float(accuracy[i, s]),
         "final_cost": None if np.isnan(final_cost[i, s]) else float(final_cost[i, s])}
        for i in range(len(RUNS)) for s in range(n_seeds)
    ]  # fmt: skip
    course = [{"method": m, "accuracy": 0.9, "final_cost": 0.2} for m in methods]
    return seeds_experiment.with_statistics(seeds_experiment.SeedsComparison(
        methods, configs, list(range(n_seeds)), rows, np.zeros((len(RUNS), n_seeds, 1)),
        statistics=[], beats=np.zeros(0), pairs=[], course=course,
        course_costs=[np.zeros(1)] * len(RUNS),
    ))  # fmt: skip


def adversarial(n_seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracies at the ends of [0, 1], where a t interval spills over: one run at 1 on every
    seed but one at 0, one at 0 on every seed but one at 1, one spread with a diverged seed."""
    accuracy = np.ones((3, n_seeds))
    accuracy[0, 0] = 0.0
    accuracy[1] = 0.0
    accuracy[1, -1] = 1.0
    accuracy[2] = np.random.default_rng(n_seeds).choice([1 / 300, 0.5, 299 / 300, 1.0], n_seeds)
    accuracy[2, 0] = NAN
    final_cost = np.where(np.isnan(accuracy), NAN, 1.0 - accuracy + 0.01)
    return accuracy, final_cost


def printed_intervals(text: str) -> list[tuple[float, float]]:
    return [(float(low), float(high))
            for low, high in re.findall(r"([-+]?\d+\.\d+) to ([-+]?\d+\.\d+)", text)]  # fmt: skip


def table_cells(text: str, header_start: str) -> list[list[str]]:
    """The body rows' cells of the Markdown table whose header starts so."""
    block = text[text.index(header_start):].split("\n\n")[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in block]


@pytest.mark.parametrize("n_seeds", [2, 3, 10, 100])
def test_every_printed_accuracy_interval_lies_inside_0_and_1(n_seeds):
    comparison = comparison_of(*adversarial(n_seeds))
    report = seeds_experiment.seeds_report(comparison)
    accuracy_rows = table_cells(report, "| method | accuracy, mean ± std")
    probability = [row[3] for row in table_cells(report, "| first vs second")]
    intervals = printed_intervals(" ".join(" ".join(row[1:6]) for row in accuracy_rows))
    intervals += printed_intervals(" ".join(probability))
    for low, high in intervals:
        assert 0 <= low <= high <= 1
    for row, pair in zip(table_cells(report, "| first vs second"), comparison.pairs, strict=True):
        for low, high in printed_intervals(row[4]):  # a difference of accuracies: inside theirs
            x = comparison.accuracy[[m == pair["first"] for m in comparison.methods]][0]
            y = comparison.accuracy[[m == pair["second"] for m in comparison.methods]][0]
            d = (x - y)[~np.isnan(x - y)]
            assert d.min() - 5e-4 <= low <= high <= d.max() + 5e-4
    if n_seeds >= evidence.MIN_VALUES:
        # all three kinds of interval are printed, and the t intervals that spill are cut
        assert len(intervals) == 4 * 3 + 3 and "(cut)" in report  # t, mean, median, IQM; P
        assert "(cut): the t interval reaches past what the accuracy can be (0 to 1)" in report
        ci95 = comparison.statistics[0]["accuracy"]["ci95"]
        assert ci95[1] > 1  # the JSON keeps it whole
        assert accuracy_rows[0][2] == f"{ci95[0]:.3f} to 1.000 (cut)"


@pytest.mark.parametrize("n_seeds", [2, 3])
def test_below_five_seeds_the_table_shows_the_values_not_intervals(n_seeds):
    accuracy, final_cost = adversarial(n_seeds)
    comparison = comparison_of(accuracy, final_cost)
    report = seeds_experiment.seeds_report(comparison)
    assert not printed_intervals(report)
    assert "Fewer than 5 finished seeds: intervals over so few values are not informative" in report
    for i, method in enumerate(comparison.methods):
        listed = re.search(rf"^- {re.escape(method)}: (.+)$", report, flags=re.MULTILINE).group(1)
        shown = [None if v == "diverged" else tuple(map(float, v.split(" / ")))
                 for v in listed.split(", ")]  # fmt: skip
        for value, a, c in zip(shown, accuracy[i], final_cost[i], strict=True):
            assert value is None if np.isnan(a) else value == (round(a, 3), round(c, 4))
    for row in table_cells(report, "| method | accuracy, mean ± std"):
        assert row[2] == row[3] == "-"


def test_the_printed_pairs_are_the_evidence_s():
    accuracy, final_cost = adversarial(10)
    comparison = comparison_of(accuracy, final_cost)
    rows = table_cells(seeds_experiment.pairs_table(comparison), "| first vs second")
    assert len(rows) == len(comparison.pairs) == 3
    for row, pair in zip(rows, comparison.pairs, strict=True):
        assert row[0] == f"{pair['first']} vs {pair['second']}"
        assert row[1] == f"{pair['wins']} / {pair['ties']} / {pair['losses']}"
        assert float(row[2]) == pytest.approx(pair["sign_test_p"], rel=1e-2)
        assert row[3].startswith(f"{pair['probability_of_improvement']:.3f} (")
