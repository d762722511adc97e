"""Pictures of any finished result are drawn: every run diverged, one point, values at the ends of
the float range, NaN and inf; no library warning reaches stderr."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from jaxopt_lab import cli, plots, result_sets, results, runs, stats


def test_float64_lr_find_where_every_run_diverges_draws_its_picture_quietly(tmp_path, command_process):
    """The issue's case 3 as a real process: every run diverges (no lr_find.png, exit 2)."""
    proc = command_process(tmp_path, "lr-find", "--x64", "--optimizer", "gd", "--from", "1e100", "--to",
                    "1e300", "--points", "3", "--seeds", "1", "--epochs", "10")  # fmt: skip
    out, err = proc.communicate(timeout=180)
    assert (proc.returncode, err) == (0, ""), err
    assert "lr_find.png" in json.loads((tmp_path / result_sets.MANIFEST).read_text())["files"]
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((tmp_path / "lr_find.json").read_text())["rows"]
    assert len(rows) == 3 and all(row["diverged_at_epoch"] is not None for row in rows)


def test_a_float64_sweep_to_1e300_draws_its_picture_without_a_warning(tmp_path, x64):
    """The issue's case 6 (``sweep --x64 --optimizer gd --learning-rate 0.001 0.1 1e30 1e300
    --seed 0 1 --epochs 30 --out o`` printed matplotlib's overflow warnings), through the library
    calls the command makes."""
    base = runs.RunConfig("gd", epochs=30)
    table = runs.sweep_table(base, {"learning_rate": [0.001, 0.1, 1e30, 1e300]}, [0, 1])
    assert table.diverged.any() and not table.diverged.all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results.write_sweep(tmp_path, base, table, 1.0, 1)
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_float32_lr_find_where_every_run_diverges_draws_its_picture(tmp_path, capsys):
    argv = ["lr-find", "--optimizer", "gd", "--from", "1e30", "--to", "1e37", "--points", "3",
            "--seeds", "1", "--epochs", "10", "--no-progress", "--out", str(tmp_path)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli.main(argv) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "lr_find.png").stat().st_size > 0


def _all_diverged_curve(rates):
    nothing = [None] * len(rates)
    band = {"p10": nothing, "p50": nothing, "p90": nothing}
    return {"learning_rate": rates, "final_cost": band, "accuracy": band, "seeds": 2,
            "diverged": [2] * len(rates), "best": None}  # fmt: skip


@pytest.mark.parametrize("rates", [[1e-3], [1e30, 1e300], [1e-300, 1.0]])
def test_lr_curves_draw_with_one_rate_no_finished_run_and_the_float_ends(tmp_path, rates):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = plots.plot_lr_curves({"gd": _all_diverged_curve(rates)}, {1e-3: "a mark"})
        plots.save_png(figure, tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0
    (cost_axis, _) = figure.axes[:2]
    assert cost_axis.get_yscale() == "linear"  # no cost to show on a log axis


@pytest.mark.parametrize("values", [[0.1], [1e30, 1e300], [1e-300, 1e300]])
@pytest.mark.parametrize("finished", [True, False])
def test_sweep_pictures_draw_one_point_every_run_diverged_and_the_float_ends(tmp_path, values, finished):
    n = len(values)
    columns = {
        "learning_rate": np.array(values), "seed": np.zeros(n, np.int64),
        "diverged_at_epoch": np.full(n, -1 if finished else 3),
        "final_cost": np.full(n, 0.5 if finished else np.nan),
        "accuracy": np.full(n, 0.8 if finished else np.nan),
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.save_png(plots.plot_sweep(columns, ["learning_rate"]), tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_seed_pictures_draw_when_every_seed_diverged_and_costs_are_inf(tmp_path):
    nan = np.full((2, 3), np.nan)
    costs = np.array([[1.0, np.inf, np.nan], [np.nan] * 3])
    course = [{"accuracy": 0.8, "final_cost": 0.4}, {"accuracy": 0.7, "final_cost": 0.5}]
    quantiles = np.stack([stats.quantile_curves(costs[:, None, :][i]) for i in range(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.save_png(plots.plot_seed_distributions(["a", "b"], nan, nan, course), tmp_path / "s.png")
        plots.save_png(plots.plot_cost_bands(["a", "b"], quantiles, [costs[0], costs[1]]),
                       tmp_path / "c.png")  # fmt: skip
        plots.save_png(plots.plot_cost_curves({"a": costs[0]}), tmp_path / "k.png")
    assert all((tmp_path / name).stat().st_size > 0 for name in ("s.png", "c.png", "k.png"))
