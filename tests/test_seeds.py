"""What one seed cannot tell: ``compare --seeds`` and ``lr-find``, their rows against ``fit`` and
``sweep``, their statistics against NumPy and SciPy computed from the rows, and their refusals.

The tests share one module fixture (one worker), and its runs are shaped so that the learning-rate
runs reuse a program the seeds comparison compiled: 3 seeds x 5 runs of the momentum structure (GD
at 5 learning rates). A sweep program takes seconds to compile; training these runs takes less.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import signal

import numpy as np
import pytest
from scipy import stats as scipy_stats

from jaxopt_lab import cli, data, evidence, runs, runtime, train
from jaxopt_lab.settings import InvalidValue

SEEDS = 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GD_RATES = [0.01, 0.1, 1.0, 1e30, 1e36]  # float32 overflows at the last two: diverged rows


@pytest.fixture(scope="module")
def command_runs(tmp_path_factory):
    """``compare --seeds 3 --out`` and ``lr-find --optimizer gd --out``, with what they print."""
    root, printed = tmp_path_factory.mktemp("seeds"), {}
    commands = {
        "compare": ["compare", "--seeds", str(SEEDS)],
        "lr_gd": ["lr-find", "--optimizer", "gd", "--from", "0.01", "--to", "1", "--points", "5",
                  "--seeds", str(SEEDS)],
    }  # fmt: skip
    for name, argv in commands.items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main([*argv, "--no-progress", "--out", str(root / name)]) == 0
        printed[name] = out.getvalue()
    return root, printed


@pytest.fixture(scope="module")
def compared(command_runs):
    root, _ = command_runs
    return json.loads((root / "compare" / "compare_seeds.json").read_text())


@pytest.fixture(scope="module")
def fits():
    """``train.fit(seed=s)`` with run ``i``'s configuration for seed ``i % 3`` (each run and each
    seed once), and Adam's for every seed: what the rows must equal.

    The optimizers are built in the shared-structure form, the same numbers bit for bit
    (test_runs.py), so these fits reuse the programs the comparison compiled.
    """
    X, Y = data.load_moons()
    wanted = [(i, i % SEEDS) for i in range(len(runs.COURSE_RUNS))] + [(2, 0), (2, 1)]
    fitted = {}
    for i, seed in wanted:
        label, config = runs.COURSE_RUNS[i]
        optimizer = config.make_optimizer(X.shape[1], shared_structure=True)
        fitted[(label, seed)] = train.fit(X, Y, runs.LAYERS_DIMS, optimizer, seed=seed)
    return fitted


def rows_of(compared, method: str) -> list[dict]:
    return [row for row in compared["rows"] if row["method"] == method]


def values(rows, field: str) -> np.ndarray:
    return np.array([np.nan if row[field] is None else row[field] for row in rows])


# ---------------------------------------------------------------------------------------------
# compare --seeds
# ---------------------------------------------------------------------------------------------


def test_every_seed_row_is_fit_with_that_seed(compared, fits):
    X, Y = data.load_moons()
    assert len(compared["rows"]) == len(runs.COURSE_RUNS) * SEEDS
    assert compared["seeds"] == list(range(SEEDS)) and compared["epochs"] == 5000
    for label, config in runs.COURSE_RUNS:
        mine = rows_of(compared, label)
        assert [row["seed"] for row in mine] == list(range(SEEDS))
        for row in mine:
            assert (row["optimizer"], row["decay"], row["learning_rate"]) == (
                config.optimizer, config.decay, config.learning_rate,
            )  # fmt: skip
            assert row["diverged_at_epoch"] is None
            fit = fits.get((label, row["seed"]))
            if fit is not None:  # float32 over 5000 epochs: see the float64 test below
                assert row["final_cost"] == pytest.approx(float(fit.costs[-1]), rel=1e-3)
                assert row["accuracy"] == pytest.approx(runs.accuracy_of(fit.params, X, Y),
                                                        abs=1.5 / X.shape[1])  # fmt: skip
    assert {seed for _, seed in fits} == set(range(SEEDS))


def test_every_seed_row_and_cost_curve_is_fit_with_that_seed_in_float64(x64):
    # In float32 a run in the sweep's batched program can leave fit's by one rounding, and 5000
    # epochs of chaotic training grow that to 1e-3 (measured); in float64 the two are one run.
    # The runs of one program structure (GD and momentum, with and without decay): one sweep.
    X, Y = data.load_moons()
    chosen = [runs.COURSE_RUNS[i] for i in (0, 1, 4, 5)]
    comparison = runs.compare_seeds([0, 5], chosen, epochs=300)
    for i, (label, config) in enumerate(chosen):
        optimizer = config.make_optimizer(X.shape[1], shared_structure=True)
        for j, seed in enumerate([0, 5]):
            fit = train.fit(X, Y, runs.LAYERS_DIMS, optimizer, num_epochs=300, seed=seed)
            row = comparison.rows[i * 2 + j]
            assert (row["method"], row["seed"]) == (label, seed)
            np.testing.assert_allclose(comparison.costs[i, j], fit.costs, rtol=1e-12)
            assert row["final_cost"] == pytest.approx(float(fit.costs[-1]), rel=1e-12)
            assert row["accuracy"] == runs.accuracy_of(fit.params, X, Y)


def test_the_cost_bands_are_the_quantiles_of_fit_s_costs(compared, fits):
    (band,) = [band for band in compared["cost_quantiles"] if band["method"] == "Adam"]
    costs = np.stack([fits[("Adam", seed)].costs for seed in range(SEEDS)])
    # In float32 a seed's run in the sweep's batched program leaves fit's by one rounding (one
    # seed here at epoch 55) and the gap grows over 5000 epochs: 1.4e-4 at worst for these
    # seeds, while under x64 the two agree to 2e-15. A wrong run, seed or epoch order is off by
    # far more than 1e-3.
    for name, q in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
        np.testing.assert_allclose(band[name], np.quantile(costs, q, axis=0), rtol=1e-3)
    assert len(compared["cost_quantiles"]) == len(runs.COURSE_RUNS)


def test_statistics_are_numpy_s_and_scipy_s_from_the_rows(compared):
    course = {row["method"]: row for row in compared["course"]}
    for s in compared["statistics"]:
        mine = rows_of(compared, s["method"])
        assert s["seeds"] == SEEDS
        assert s["diverged"] == np.mean([row["diverged_at_epoch"] is not None for row in mine])
        for field in ("accuracy", "final_cost"):
            x = values(mine, field)
            summary = s[field]
            assert summary["n"] == x.size
            assert summary["mean"] == pytest.approx(np.mean(x), rel=1e-12)
            assert summary["std"] == pytest.approx(np.std(x, ddof=1), rel=1e-12)
            if np.std(x) > 0:
                low, high = scipy_stats.t.interval(0.95, x.size - 1, loc=np.mean(x),
                                                   scale=scipy_stats.sem(x))  # fmt: skip
                assert summary["ci95"] == pytest.approx([low, high], rel=1e-9)
            ours = s["course"][f"{field}_percentile"]
            assert s["course"][field] == course[s["method"]][field]
            assert ours == pytest.approx(
                scipy_stats.percentileofscore(x, course[s["method"]][field], kind="mean")
            )


def test_medians_iqms_and_bootstrap_intervals_are_scipy_s_from_the_rows(compared):
    assert compared["bootstrap"]["resamples"] == evidence.RESAMPLES
    assert compared["bootstrap"]["seed"] == evidence.SEED
    assert compared["bootstrap"]["method"] == "percentile"
    trim = functools.partial(scipy_stats.trim_mean, proportiontocut=0.25)
    for s in compared["statistics"]:
        for field in ("accuracy", "final_cost"):
            x, summary = values(rows_of(compared, s["method"]), field), s[field]
            assert summary["median"] == np.median(x)
            assert summary["iqm"] == pytest.approx(trim(x), rel=1e-12)
            for name, statistic in (("mean", np.mean), ("median", np.median), ("iqm", trim)):
                theirs = scipy_stats.bootstrap(
                    (x,), statistic, n_resamples=evidence.RESAMPLES, method="percentile",
                    rng=np.random.default_rng(evidence.SEED),
                ).confidence_interval  # fmt: skip
                assert summary["bootstrap"][name] == pytest.approx([theirs.low, theirs.high],
                                                                   rel=1e-12)  # fmt: skip


def test_the_pairs_are_scipy_s_from_the_rows(compared, command_runs):
    methods = compared["beats"]["methods"]
    pairs = compared["pairs"]["pairs"]
    assert len(pairs) == len(methods) * (len(methods) - 1) // 2
    for pair in pairs:
        x = values(rows_of(compared, pair["first"]), "accuracy")
        y = values(rows_of(compared, pair["second"]), "accuracy")
        wins, losses = int(np.sum(x > y)), int(np.sum(x < y))
        assert (pair["wins"], pair["ties"], pair["losses"]) == (wins, SEEDS - wins - losses, losses)
        expected_p = scipy_stats.binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
        assert pair["sign_test_p"] == pytest.approx(expected_p)
        u = scipy_stats.mannwhitneyu(x, y).statistic
        assert pair["probability_of_improvement"] == pytest.approx(u / SEEDS**2)
        assert pair["mean_difference"] == pytest.approx(np.mean(x - y))
    _, printed = command_runs
    text = printed["compare"]
    assert "| first vs second, accuracy on the same seeds | wins / ties / losses |" in text
    # 3 seeds: no interval is printed, the values are
    assert "Fewer than 5 finished seeds: intervals over so few values are not informative" in text
    assert not re.search(r"\d to \d", text)


def test_the_win_table_counts_the_rows_seed_by_seed(compared):
    methods = compared["beats"]["methods"]
    share = np.array(compared["beats"]["share"])
    for i, a in enumerate(methods):
        for j, b in enumerate(methods):
            wins = 0
            for row_a, row_b in zip(rows_of(compared, a), rows_of(compared, b), strict=True):
                assert row_a["seed"] == row_b["seed"]
                wins += row_a["accuracy"] > row_b["accuracy"]
            assert share[i, j] == wins / SEEDS, (a, b)
    assert np.all(share + share.T <= 1)


def test_the_command_prints_the_tables_and_writes_files(command_runs, compared):
    root, printed = command_runs
    text = printed["compare"]
    assert text.startswith("| method | accuracy, mean ± std over 3 seeds |")
    assert "| row more accurate than column, same seed |" in text
    assert f"21 runs (7 x {SEEDS} seeds) and the course's own 7\nin " in text
    for s in compared["statistics"]:
        assert f"| {s['method']} | {s['accuracy']['mean']:.3f} ± " in text
    assert (root / "compare" / "compare_seeds.md").read_text().startswith(text.split("\nin ")[0])
    for picture in ("seeds_accuracy.png", "seeds_cost_curves.png"):
        assert (root / "compare" / picture).read_bytes()[:8] == PNG_MAGIC


def test_a_signal_stops_the_comparison_at_a_chunk_boundary(command_runs):
    said = []

    def on_epochs(epochs):
        if not said:
            said.append(epochs)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(runtime.Stopped) as stop:
        runs.compare_seeds(range(SEEDS), on_epochs=on_epochs)
    assert stop.value.signum == signal.SIGINT and said


@pytest.mark.parametrize(
    ("seeds", "says"),
    [
        ([], "must hold at least one seed"),
        ([1, 2, 1], "must not repeat a seed"),
        ([0, -1], r"must be None \(course randomness\) or an integer"),
        (range(10**12), "is more seeds than fit the memory budget"),
        (5, "must be a sequence of seeds"),
    ],
)
def test_bad_seeds_are_refused_before_training(seeds, says):
    with pytest.raises(InvalidValue, match=says) as caught:
        runs.compare_seeds(seeds)
    assert caught.value.setting in ("seed_count", "seed")


BAD = [
    (["compare", "--seeds", "0"], "--seeds"),
    (["compare", "--seeds", "-3"], "--seeds"),
    (["compare", "--seeds", "1000000000"], "--seeds 1000000000"),
    (["lr-find", "--from", "0.1", "--to", "0.01"], "--from must be below --to"),
    (["lr-find", "--points", "1000000000"], "--points 1000000000 with --seeds 8"),
    (["lr-find", "--optimizer", "sgd"], "--optimizer"),
]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_bad_flags_exit_2_with_one_line(argv, says, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and says in captured.err, captured.err


# ---------------------------------------------------------------------------------------------
# lr-find
# ---------------------------------------------------------------------------------------------


def test_lr_curve_rows_are_sweep_rows(command_runs):
    rows = runs.lr_curve(["gd"], GD_RATES, range(SEEDS), epochs=1000)
    swept = runs.sweep_runs(runs.RunConfig("gd", epochs=1000),
                            {"learning_rate": GD_RATES, "decay": ["none"]}, range(SEEDS))  # fmt: skip
    assert len(rows) == len(swept) == len(GD_RATES) * SEEDS
    for row, expected in zip(rows, swept, strict=True):
        assert {k: row[k] for k in ("optimizer", "learning_rate", "seed", "diverged_at_epoch")} == {
            k: expected[k] for k in ("optimizer", "learning_rate", "seed", "diverged_at_epoch")
        }
        for field in ("final_cost", "accuracy"):
            if expected[field] is None:
                assert row[field] is None
            else:
                assert row[field] == pytest.approx(expected[field], rel=1e-6)
    diverged = [row for row in rows if row["diverged_at_epoch"] is not None]
    assert {row["learning_rate"] for row in diverged} == {1e30, 1e36}
    assert all(row["final_cost"] is None and row["accuracy"] is None for row in diverged)


def test_lr_find_reports_each_rate_over_the_seeds(command_runs):
    root, printed = command_runs
    result = json.loads((root / "lr_gd" / "lr_find.json").read_text())
    curve = result["curves"]["gd"]
    assert curve["learning_rate"] == pytest.approx(np.geomspace(0.01, 1.0, 5).tolist())
    for k, rate in enumerate(curve["learning_rate"]):
        mine = [row for row in result["rows"] if row["learning_rate"] == rate]
        assert [row["seed"] for row in mine] == list(range(SEEDS))
        for field in ("final_cost", "accuracy"):
            x = values(mine, field)
            assert curve[field]["p50"][k] == pytest.approx(np.median(x))
            assert curve[field]["p10"][k] == pytest.approx(np.quantile(x, 0.1))
        assert curve["diverged"][k] == 0
    medians = np.array(curve["accuracy"]["p50"])
    best = curve["best"]
    assert best["accuracy"] == medians.max()
    low, high = curve["within"]["low"], curve["within"]["high"]
    inside = (np.array(curve["learning_rate"]) >= low) & (np.array(curve["learning_rate"]) <= high)
    assert np.all(medians[inside] >= best["accuracy"] - 0.01)
    assert low <= best["learning_rate"] <= high
    assert printed["lr_gd"].startswith("| optimizer | best learning rate |")
    assert f"| gd | {best['learning_rate']:.3g} | {best['accuracy']:.3f} |" in printed["lr_gd"]
    assert (root / "lr_gd" / "lr_find.png").read_bytes()[:8] == PNG_MAGIC
    assert list(result["curves"]) == ["gd"] and len(result["rows"]) == 5 * SEEDS
