"""The engine of many runs (jaxopt_lab.engine) and its one result (jaxopt_lab.table): one running
progress over several program structures, joined results equal to each structure's own, one
best-run rule, one seed check, one memory rule, and a new metric as one field."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from jaxopt_lab import data, engine, results, runs, sweep
from jaxopt_lab.settings import InvalidValue
from jaxopt_lab.table import Measured, RunTable, best_row, outcome

LAYERS = [2, 5, 2, 1]
X, Y = data.load_moons()
EPOCHS, CHUNK, SEEDS = 6, 4, [0, 3]
JOBS = [("adam", {"learning_rate": [0.01, 0.1]}), ("gd", {"learning_rate": [0.1, 1e30]})]


@pytest.fixture(scope="module")
def joined():
    """Two program structures in one call, with every progress report."""
    progress = []
    table = engine.train_grid(
        X, Y, LAYERS, JOBS, seeds=SEEDS, num_epochs=EPOCHS, chunk_epochs=CHUNK,
        on_progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    return table, progress


def test_progress_is_one_running_total_over_every_structure(joined):
    table, progress = joined
    total = len(table) * EPOCHS
    assert len(table) == 4 * len(SEEDS)
    assert {t for _, t in progress} == {total}
    done = [d for d, _ in progress]
    assert done == sorted(done) and done.count(total) == 1 and done[-1] == total
    # two structures x (4 + 2 epochs): one report per chunk of each
    assert len(progress) == 2 * 2


def test_joined_rows_are_each_structure_s_own_rows(joined):
    table, _ = joined
    alone = [
        row for optimizer, grid in JOBS
        for row in sweep.sweep(X, Y, LAYERS, optimizer, grid, seeds=SEEDS, num_epochs=EPOCHS,
                               chunk_epochs=CHUNK)
    ]  # fmt: skip
    assert table.rows() == alone
    assert table.column("optimizer").tolist() == [r["optimizer"] for r in alone]
    assert table.rows()[-1]["diverged_at_epoch"] == 0  # GD at 1e30 overflows at once


def test_progress_reports_the_old_deltas_through_from_deltas():
    deltas = []
    on_progress = engine.from_deltas(deltas.append)
    for done in (10, 25, 40):
        on_progress(done, 40)
    assert deltas == [10, 15, 15]
    shifted = []
    engine.shifted(lambda d, t: shifted.append((d, t)), 100, 140)(40, 40)
    assert shifted == [(140, 140)]


def made_table(accuracy, final_cost, diverged_at) -> RunTable:
    n = len(accuracy)
    return RunTable(
        "adam", {"learning_rate": list(np.arange(n) / 10 + 0.1)}, np.array([0]),
        diverged_at_epoch=np.asarray(diverged_at), final_cost=np.asarray(final_cost, float),
        accuracy=np.asarray(accuracy, float),
    )  # fmt: skip


def test_the_best_run_rule_is_one_rule_for_tables_and_rows():
    # run 2 ties run 1 on accuracy with a lower cost; run 3 is more accurate but diverged;
    # run 4 has a NaN cost without the marker; run 5 repeats run 2 (the earlier one wins).
    table = made_table(
        accuracy=[0.5, 0.9, 0.9, 1.0, 1.0, 0.9],
        final_cost=[0.3, 0.2, 0.1, 0.05, np.nan, 0.1],
        diverged_at=[-1, -1, -1, 7, -1, -1],
    )  # fmt: skip
    rows = table.rows()
    assert table.best() == 2
    assert best_row(rows) is rows[2] and runs.best_run(rows) is rows[2]
    every_one_diverged = made_table([0.5], [0.1], [3])
    assert every_one_diverged.best() is None and runs.best_run(every_one_diverged.rows()) is None


@dataclasses.dataclass(frozen=True)
class WithErrors(RunTable):
    """The one edit a new metric takes: a field and its formula."""

    errors: np.ndarray = outcome(lambda m: m.examples - m.correct)


def test_a_new_metric_is_one_field_and_flows_to_rows_columns_and_csv(tmp_path):
    measured = Measured(
        final_cost=np.array([0.25, 0.5, np.nan], np.float32), diverged_at=np.array([-1, -1, 2]),
        correct=np.array([270, 240, 0]), examples=300, costs=None,
    )  # fmt: skip
    table = WithErrors("gd", {"learning_rate": [0.1, 0.2, 0.3]}, np.array([5]),
                       **WithErrors.measure(measured))  # fmt: skip
    assert WithErrors.metrics() == ("final_cost", "accuracy", "errors")
    assert [row["errors"] for row in table.rows()] == [30.0, 60.0, None]
    assert table.columns()["errors"][:2].tolist() == [30.0, 60.0]
    assert [row["accuracy"] for row in table.rows()] == [0.9, 0.8, None]
    with results.write_sweep_csv(tmp_path / "sweep.csv", table).open() as f:
        read = list(csv.DictReader(f))
    assert [row["errors"] for row in read] == ["30.0", "60.0", ""]
    assert list(read[0]) == ["optimizer", "learning_rate", "seed", "diverged_at_epoch",
                             "final_cost", "accuracy", "errors"]  # fmt: skip


@pytest.mark.parametrize(
    ("seeds", "says", "setting"),
    [
        (5, "must be a sequence of seeds", "seed_count"),
        ([], "must hold at least one seed", "seed_count"),
        (range(10**12), "is more seeds than fit the memory budget", "seed_count"),
        ([0, None], "None \\(the course's randomness\\) is one run", "seed"),
        ([0, 1.5], "seeds", "seed"),
        ([0, -1], "must be None \\(course randomness\\) or an integer", "seed"),
        ([2**64], "seeds", "seed"),
    ],
)
def test_one_seed_check_refuses_naming_seeds(seeds, says, setting):
    with pytest.raises(InvalidValue, match=says) as caught:
        engine.check_seeds(seeds, most=1000)
    assert caught.value.name == "seeds" and caught.value.setting == setting


def test_repeated_seeds_are_refused_only_where_they_would_count_twice():
    assert engine.check_seeds([1, 1]).tolist() == [1, 1]
    with pytest.raises(InvalidValue, match="must not repeat a seed"):
        engine.check_seeds([1, 1], distinct=True)


def test_the_memory_rule_is_one_rule(monkeypatch):
    # The machine's free memory moves between two calls (other processes): hold it still.
    monkeypatch.setattr(engine, "available_memory", lambda: 3 * 2**30)
    for keep_costs in (False, True):
        for as_rows in (False, True):
            fits = engine.runs_that_fit(100, keep_costs=keep_costs, as_rows=as_rows,
                                        memory_budget=10**7)  # fmt: skip
            engine.check_fits(fits, num_epochs=100, keep_costs=keep_costs, as_rows=as_rows,
                              memory_budget=10**7)  # fmt: skip
            with pytest.raises(InvalidValue, match=f"at most {fits:,} runs fit"):
                engine.check_fits(fits + 1, num_epochs=100, keep_costs=keep_costs,
                                  as_rows=as_rows, memory_budget=10**7)  # fmt: skip
    assert runs.seeds_that_fit(7, 5000) == engine.runs_that_fit(
        5000, keep_costs=True, as_rows=True
    ) // 7
