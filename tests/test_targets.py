"""Time to target: the first epoch at a target against plain scans of the histories (the cost's,
and an accuracy history taken from ``train.fit`` one epoch at a time), the profiles and medians
against loops over a hand-made matrix, the interquartile mean against SciPy, the refusals of bad
targets, and the picture of any result."""

from __future__ import annotations

import json
import math
import warnings

import jax
import numpy as np
import pytest
from scipy import stats as scipy_stats

from jaxopt_lab import cli, data, evidence, model, runs, stats, target_plots, targets, train
from jaxopt_lab.settings import InvalidValue

INF = math.inf
EPOCHS = 40
SEEDS = [0, 7]
TARGET_COST, TARGET_ACCURACY = 0.66, 0.8  # reached by some of these 40-epoch runs, not all


def scan_first_at_most(history, target) -> int:
    """The first epoch whose cost is at most ``target``, a plain loop; -1 for none."""
    for epoch, cost in enumerate(history):
        if cost <= target:  # NaN <= target is False
            return epoch
    return -1


# ---------------------------------------------------------------------------------------------
# The first epoch at a target
# ---------------------------------------------------------------------------------------------


def test_the_first_epoch_at_a_cost_is_a_scan_of_the_history():
    rng = np.random.default_rng(1)
    costs = np.cumsum(-rng.uniform(0, 0.05, (3, 4, 30)), axis=-1) + 1.0  # falling from 1
    costs[0, 1, 12:] = np.nan  # diverged at epoch 12
    costs[1, 2, :] = np.nan  # diverged at once
    costs[2, 3, 5] = np.inf
    for target in (0.2, 0.6, 0.9, 2.0):
        found = targets.first_epoch_at_most(costs, target)
        expected = [[scan_first_at_most(run, target) for run in method] for method in costs]
        np.testing.assert_array_equal(found, expected)
    assert targets.first_epoch_at_most(np.zeros((2, 0)), 0.5).tolist() == [-1, -1]


def test_epochs_to_target_count_the_epochs_trained_and_a_diverged_run_never_gets_there():
    first = np.array([0, 9, -1, 3])
    diverged = np.array([-1, -1, -1, 50])  # the last passed the target, then diverged
    assert targets.epochs_to_target(first, diverged).tolist() == [1.0, 10.0, INF, INF]


@pytest.mark.parametrize("m", [1, 3, 7, 300, 301])
def test_correct_needed_is_the_fewest_predictions_at_the_target(m):
    for target in (1e-9, 1 / 3, 0.5, 0.8, 0.9, 0.95, 2 / 3, 1.0):
        k = targets.correct_needed(target, m)
        assert k / m >= target and (k == 0 or (k - 1) / m < target), (target, m, k)


# ---------------------------------------------------------------------------------------------
# Over the seeds: profiles, medians, intervals
# ---------------------------------------------------------------------------------------------

# 3 methods x 5 seeds; seed 4 is reached by no method, seed 3 by one.
HAND = np.array([
    [10.0, 20.0, 30.0, INF, INF],
    [20.0, 10.0, 30.0, INF, INF],
    [40.0, INF, 15.0, 8.0, INF],
])  # fmt: skip


def test_the_performance_profile_of_a_hand_made_matrix():
    ratios = targets.profile_ratios(HAND)
    methods, seeds = HAND.shape
    for s in range(seeds):
        finite = [HAND[i, s] for i in range(methods) if HAND[i, s] < INF]
        for i in range(methods):
            expected = HAND[i, s] / min(finite) if finite and HAND[i, s] < INF else INF
            assert ratios[i, s] == expected, (i, s)
    taus = targets.profile_taus(ratios)
    assert taus.tolist() == sorted({1.0} | {r for r in ratios.ravel().tolist() if r < INF})
    rho = targets.performance_profile(ratios, np.array([1.0, 1.5, 2.0, 4.0, 100.0]))
    for i in range(methods):
        for k, tau in enumerate([1.0, 1.5, 2.0, 4.0, 100.0]):
            assert rho[i, k] == sum(ratios[i, s] <= tau for s in range(seeds)) / seeds
    # by hand: the fastest on seed 0 is method 0, on seed 1 method 1, on seeds 2 and 3 method 2
    assert rho[:, 0].tolist() == [1 / 5, 1 / 5, 2 / 5]
    assert rho[:, -1].tolist() == [3 / 5, 3 / 5, 3 / 5]  # within 4 times, each on 3 seeds


def test_medians_count_never_as_infinite_and_the_interval_is_the_bootstrap_s_order_statistics():
    epochs = np.array([[5.0, 7.0, 9.0, 11.0, 13.0, 8.0], [5.0, INF, INF, INF, 6.0, 7.0]])
    summary = targets.summary(["a", "b"], targets.TimeToTarget("cost", 0.5, epochs))
    assert [m["median"] for m in summary["methods"]] == [np.median(epochs[0]), None]
    assert [m["never"] for m in summary["methods"]] == [0.0, 0.5]
    resamples, indices = 500, evidence.resample_indices(6, resamples=500)
    ours = targets.bootstrap_median_interval(epochs, resamples=resamples)
    for i, row in enumerate(epochs):
        medians = sorted(float(np.median(row[pick])) for pick in indices)
        low = medians[math.floor(0.025 * (resamples - 1))]
        high = medians[math.ceil(0.975 * (resamples - 1))]
        assert ours[i].tolist() == [low, high]
    assert summary["methods"][1]["ci95"][1] is None  # never, as JSON says it


def test_the_summary_of_too_few_seeds_has_no_interval_and_the_table_says_never():
    epochs = np.array([[3.0, INF], [INF, INF]])
    summary = targets.summary(["a", "b"], targets.TimeToTarget("accuracy", 0.9, epochs))
    assert all(m["ci95"] is None for m in summary["methods"])
    text = targets.targets_table([summary], seeds=2)
    assert "| accuracy >= 0.9: median epochs |" in text.splitlines()[0]
    assert "| a | never | - | 50% | 50% |" in text and "| b | never | - | 100% | 0% |" in text


def test_the_iqm_per_epoch_is_scipy_s_trimmed_mean_of_the_finished_seeds():
    rng = np.random.default_rng(3)
    costs = rng.uniform(0.1, 1.0, (11, 6))
    costs[[0, 4, 5], 2] = np.nan
    costs[:, 4] = np.nan  # every seed diverged
    costs[3, 5] = np.inf
    iqm = stats.iqm_curve(costs)
    for epoch in range(costs.shape[1]):
        finished = costs[:, epoch][np.isfinite(costs[:, epoch])]
        if finished.size:
            assert iqm[epoch] == pytest.approx(scipy_stats.trim_mean(finished, 0.25), rel=1e-12)
            assert iqm[epoch] == pytest.approx(evidence.iqm(finished), rel=1e-12)
        else:
            assert np.isnan(iqm[epoch])


# ---------------------------------------------------------------------------------------------
# compare_seeds: rows against the histories, and the files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compared():
    """Four of the course's runs (one program structure) for two seeds, 40 epochs, both targets,
    in float64 (the engine's run is then fit's to the last digits, so the accuracy after each
    epoch decides the same way in both); each (run, seed)'s accuracy after every epoch taken
    from ``train.fit`` one epoch per chunk."""
    chosen = [runs.COURSE_RUNS[i] for i in (0, 1, 4, 5)]
    X, Y = data.load_moons()
    with jax.enable_x64(True):
        comparison = runs.compare_seeds(SEEDS, chosen, epochs=EPOCHS, target_cost=TARGET_COST,
                                        target_accuracy=TARGET_ACCURACY)  # fmt: skip
        accuracy = np.empty((len(chosen), len(SEEDS), EPOCHS))
        for i, (_, config) in enumerate(chosen):
            optimizer = config.make_optimizer(X.shape[1], shared_structure=True)
            for j, seed in enumerate(SEEDS):
                after = []
                train.fit(X, Y, runs.LAYERS_DIMS, optimizer, num_epochs=EPOCHS, seed=seed,
                          chunk_epochs=1, on_chunk=lambda state, after=after: after.append(
                              np.sum(np.asarray(model.predict(state.params, X)) == Y)))  # fmt: skip
                accuracy[i, j] = np.array(after) / X.shape[1]  # as the rows compute it
    return comparison, accuracy


def test_each_run_s_epochs_to_the_cost_target_are_a_scan_of_its_cost_history(compared):
    comparison, _ = compared
    reached = 0
    for k, row in enumerate(comparison.rows):
        history = comparison.costs[k // len(SEEDS), k % len(SEEDS)]
        first = scan_first_at_most(history, TARGET_COST)
        assert row["epochs_to_cost_target"] == (None if first < 0 else first + 1), row["method"]
        reached += first >= 0
    assert 0 < reached < len(comparison.rows)  # the target tells the runs apart


def test_each_run_s_epochs_to_the_accuracy_target_are_a_scan_of_fit_s_accuracy(compared):
    comparison, accuracy = compared
    reached = 0
    for k, row in enumerate(comparison.rows):
        after = accuracy[k // len(SEEDS), k % len(SEEDS)]
        first = next((e for e, a in enumerate(after) if a >= TARGET_ACCURACY), -1)
        assert row["epochs_to_accuracy_target"] == (None if first < 0 else first + 1), row
        assert row["accuracy"] == after[-1]  # the last epoch's is the row's own accuracy
        reached += first >= 0
    assert 0 < reached < len(comparison.rows)


def test_the_summaries_are_the_rows_medians_and_shares(compared):
    comparison, _ = compared
    for summary in comparison.targets:
        field = f"epochs_to_{summary['metric']}_target"
        for method in summary["methods"]:
            mine = [r[field] for r in comparison.rows if r["method"] == method["method"]]
            values = [INF if v is None else v for v in mine]
            assert method["never"] == mine.count(None) / len(mine)
            median = float(np.median(values))
            assert method["median"] == (None if median == INF else median)
    assert [s["metric"] for s in comparison.targets] == ["cost", "accuracy"]


def test_the_seeds_comparison_writes_the_time_to_target_picture_and_fields(compared, tmp_path):
    from jaxopt_lab import results

    comparison, _ = compared
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results.write_seeds_comparison(tmp_path, comparison, 1.0)
    assert caught == []
    assert (tmp_path / "time_to_target.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((tmp_path / "compare_seeds.json").read_text())
    assert written["time_to_target"]["targets"] == json.loads(json.dumps(comparison.targets))
    assert len(written["cost_iqm"]) == len(comparison.methods)
    assert "cost <= 0.66: median epochs" in (tmp_path / "compare_seeds.md").read_text()


# ---------------------------------------------------------------------------------------------
# The picture of any result
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "epochs",
    [
        np.full((3, 4), INF),  # nothing reached
        np.array([[12.0], [INF], [30.0]]),  # one seed
        np.array([[5.0, 5.0]]),  # one method, one ratio
        HAND,
    ],
    ids=["never", "one-seed", "one-method", "hand-made"],
)
def test_the_picture_draws_any_result_without_a_warning(tmp_path, epochs):
    from jaxopt_lab import plots

    methods = [f"method {i}" for i in range(len(epochs))]
    summaries = [targets.summary(methods, targets.TimeToTarget(metric, 0.5, epochs))
                 for metric in ("cost", "accuracy")]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = target_plots.plot_time_to_target(summaries, seeds=epochs.shape[1])
        plots.save_png(figure, tmp_path / "t.png")
    assert caught == []
    assert (tmp_path / "t.png").stat().st_size > 0


def test_the_cost_bands_draw_the_iqm_of_nan_and_inf_without_a_warning(tmp_path):
    from jaxopt_lab import plots

    costs = np.array([[[1.0, np.inf, np.nan], [0.5, 0.4, np.nan]], [[np.nan] * 3] * 2])
    quantiles = np.stack([stats.quantile_curves(c) for c in costs])
    iqm = np.stack([[stats.quantile_curves(c, (0.25,))[0], stats.iqm_curve(c),
                     stats.quantile_curves(c, (0.75,))[0]] for c in costs])  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = plots.plot_cost_bands(["a", "b"], quantiles, [costs[0, 0], costs[1, 0]], iqm=iqm)
        plots.save_png(figure, tmp_path / "c.png")
    assert caught == []
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "IQM (mean of the middle half)" in legend


# ---------------------------------------------------------------------------------------------
# Bad targets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--target-accuracy", v) for v in ("0", "1.5", "nan", "-1", "inf", "x")]
    + [("--target-cost", v) for v in ("0", "-1", "nan", "inf", "-inf")],
)
def test_a_bad_target_is_one_line_and_exit_2(flag, value, capsys):
    assert cli.main(["compare", "--seeds", "1", flag, value, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err, err


def test_the_command_hands_its_targets_to_the_comparison(monkeypatch, capsys):
    given = {}

    def compare_seeds(seeds, **kwargs):
        given.update(kwargs, seeds=list(seeds))
        raise InvalidValue("seeds", "stop here", setting="seed_count")

    monkeypatch.setattr(runs, "compare_seeds", compare_seeds)
    argv = ["compare", "--seeds", "2", "--target-cost", "0.3", "--target-accuracy", "1"]
    assert cli.main([*argv, "--no-progress"]) == 2
    assert given["seeds"] == [0, 1]
    assert (given["target_cost"], given["target_accuracy"]) == (0.3, 1.0)
    assert capsys.readouterr().err.strip() == "jaxopt-lab: error: --seeds stop here"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"target_cost": 0.0}, "target_cost"), ({"target_cost": math.nan}, "target_cost"),
     ({"target_accuracy": 1.01}, "target_accuracy"), ({"target_accuracy": 0}, "target_accuracy"),
     ({"target_accuracy": "high"}, "target_accuracy")],
)  # fmt: skip
def test_the_library_refuses_bad_targets_before_training_naming_them(kwargs, name):
    with pytest.raises(InvalidValue) as caught:
        runs.compare_seeds([0], **kwargs)
    assert caught.value.name == name
    X, Y = data.load_moons()
    if name == "target_accuracy":
        with pytest.raises(InvalidValue) as caught:
            from jaxopt_lab import engine

            engine.train_grid(X, Y, runs.LAYERS_DIMS, [("gd", {"learning_rate": [0.1]})],
                              num_epochs=2, **kwargs)  # fmt: skip
        assert caught.value.name == name


def test_above_the_bootstrap_s_seeds_the_median_interval_is_the_order_statistics_it_tends_to(
    monkeypatch,
):
    rng = np.random.default_rng(5)
    epochs = np.concatenate([rng.gamma(3.0, 200.0, (2, 1001)), np.full((1, 1001), INF)])
    epochs[1, ::4] = INF  # a quarter never: the interval moves up the order, never to inf
    resampled = targets.median_interval(epochs)  # 1001 seeds: bootstrapped
    monkeypatch.setattr(targets, "BOOTSTRAP_MOST_SEEDS", 100)
    ordered = targets.median_interval(epochs)
    for i in range(2):
        ranks = np.searchsorted(np.sort(epochs[i]), np.stack([resampled[i], ordered[i]]))
        assert np.all(np.abs(ranks[0] - ranks[1]) <= 3), (ranks, i)  # within 3 of 1001 values
    assert np.all(np.isinf(ordered[2])) and np.all(np.isinf(resampled[2]))


def test_a_profile_of_many_steps_keeps_a_thousand_points_log_spaced_and_exact_at_each():
    ratios = np.concatenate([np.linspace(1.0, 500.0, 3000), [INF]])[None, :]
    taus = targets.profile_taus(ratios)
    assert len(taus) == targets.PROFILE_POINTS and taus[0] == 1.0 and taus[-1] == 500.0
    np.testing.assert_allclose(np.diff(np.log(taus)), np.log(500.0) / (len(taus) - 1), rtol=1e-9)
    rho = targets.performance_profile(ratios, taus)[0]
    np.testing.assert_array_equal(rho, [np.mean(ratios[0] <= tau) for tau in taus])
