"""Sweeps (jaxopt_lab.sweep): every row is the standalone ``fit`` of its configuration and seed,
whatever the number of devices, padding and chunking.

Compiling the vmapped program dominates, so the tests use few epochs and share one grid shape.
Several host devices only exist if XLA is told before JAX starts, hence the subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.tree_util import Partial

from jaxopt_lab import data, model, optimizers, runs, sweep, train
from jaxopt_lab.settings import InvalidValue

LAYERS = [2, 5, 2, 1]
X, Y = data.load_moons()
EPOCHS = 12
GRID = {"learning_rate": [0.002, 0.02, 0.2], "b1": [0.8, 0.9]}
SEEDS = [0, 7]
CHUNK = 5


def standalone(config: dict, seed: int, epochs: int = EPOCHS) -> tuple[np.ndarray, float]:
    """``fit`` of one configuration, and its accuracy as the course computes it."""
    result = train.fit(
        X, Y, LAYERS, optimizers.adam(**config), num_epochs=epochs, seed=seed, chunk_epochs=epochs
    )
    predictions = np.asarray(model.predict(result.params, jax.numpy.asarray(X, "float32")))
    return result.costs, float(np.mean(predictions == Y))


def test_grid_points_are_the_cartesian_product_last_key_fastest():
    points = sweep.grid_points({"a": [1, 2], "b": [3, 4, 5]})
    assert points[:3] == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 1, "b": 5}]
    assert len(points) == 6


@pytest.fixture(scope="module")
def rows():
    # chunk_epochs=5 cuts 12 epochs as 5 + 5 + 2: a short last chunk, shuffles drawn per chunk.
    return sweep.sweep(
        X, Y, LAYERS, "adam", GRID, seeds=SEEDS, num_epochs=EPOCHS, chunk_epochs=CHUNK,
        keep_costs=True,
    )  # fmt: skip


def test_rows_equal_standalone_fits(rows):
    assert [(r["learning_rate"], r["b1"], r["seed"]) for r in rows] == [
        (lr, b1, s) for lr in GRID["learning_rate"] for b1 in GRID["b1"] for s in SEEDS
    ]
    for row in rows:
        config = {"learning_rate": row["learning_rate"], "b1": row["b1"]}
        costs, accuracy = standalone(config, row["seed"])
        np.testing.assert_allclose(row["costs"], costs, rtol=2e-5, atol=1e-6)
        assert row["final_cost"] == row["costs"][-1]
        assert row["accuracy"] == accuracy
        assert row["optimizer"] == "adam"


def test_without_history_rows_keep_only_the_final_cost(rows):
    plain = sweep.sweep(X, Y, LAYERS, "adam", GRID, seeds=SEEDS, num_epochs=EPOCHS,
                        chunk_epochs=CHUNK)  # fmt: skip
    assert all("costs" not in row for row in plain)
    assert [r["final_cost"] for r in plain] == [r["final_cost"] for r in rows]


def test_configurations_must_share_one_structure():
    def decayed_gd(learning_rate, decay_rate):
        # A new lambda per configuration is a new function, not a traced number: refused early.
        return optimizers.gd(lambda step: learning_rate / (1 + decay_rate * step))

    with pytest.raises(ValueError, match="same structure"):
        sweep.sweep(X, Y, LAYERS, decayed_gd, {"learning_rate": [0.1], "decay_rate": [0, 1]})


FOUR_DEVICES = textwrap.dedent(
    """
    import json, sys
    import jax
    from jaxopt_lab import data, sweep
    assert len(jax.devices()) == 4, jax.devices()
    X, Y = data.load_moons()
    grid, seeds, epochs, chunk = json.loads(sys.argv[1])
    # 6 settings x 2 seeds: the settings axis is split, padded from 6 to 8.
    rows = sweep.sweep(X, Y, [2, 5, 2, 1], "adam", grid, seeds=seeds, num_epochs=epochs,
                       chunk_epochs=chunk)
    print(json.dumps(rows))
    """
)


def test_four_host_devices_give_the_rows_of_one_with_padding(rows):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES, json.dumps([GRID, SEEDS, EPOCHS, CHUNK])],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    many_settings = json.loads(out.stdout.splitlines()[-1])

    assert len(many_settings) == len(rows) == 12
    for four, one in zip(many_settings, rows, strict=True):
        assert {k: four[k] for k in ("learning_rate", "b1", "seed", "accuracy")} == {
            k: one[k] for k in ("learning_rate", "b1", "seed", "accuracy")
        }
        np.testing.assert_allclose(four["final_cost"], one["final_cost"], rtol=2e-5)


def test_cli_sweep_writes_results_and_heatmap_and_rows_match_train(tmp_path, capsys):
    from jaxopt_lab import cli

    out = tmp_path / "sweep"
    status = cli.main([
        "sweep", "--optimizer", "momentum", "--learning-rate", "0.05", "0.5", "--beta", "0.8",
        "0.9", "--decay", "none", "inverse-time", "--decay-rate", "0.3", "--seed", "0", "2",
        "--epochs", str(EPOCHS), "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert status == 0
    written = json.loads((out / "sweep.json").read_text())
    assert written["devices"] == len(jax.devices())
    results = written["results"]
    assert len(results) == 2 * 2 * 2 * 2
    assert set(results[0]) == {"optimizer", "learning_rate", "beta", "decay", "decay_rate",
                               "seed", "diverged_at_epoch", "final_cost", "accuracy"}  # fmt: skip
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    row = next(r for r in results if r["decay"] == "inverse-time" and r["seed"] == 2)
    status = cli.main([
        "train", "--optimizer", "momentum", "--learning-rate", str(row["learning_rate"]),
        "--beta", str(row["beta"]), "--decay", row["decay"], "--decay-rate",
        str(row["decay_rate"]), "--seed", str(row["seed"]), "--epochs", str(EPOCHS),
        "--out", str(tmp_path / "train"), "--no-progress",
    ])  # fmt: skip
    assert status == 0
    trained = json.loads((tmp_path / "train" / "result.json").read_text())
    np.testing.assert_allclose(row["final_cost"], trained["final_cost"], rtol=2e-5)
    assert row["accuracy"] == trained["accuracy"]
    assert f"Accuracy: {row['accuracy']!r}" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Diverged runs: marked, never best, valid JSON, drawn as diverged
# ---------------------------------------------------------------------------------------------

STEPS_PER_EPOCH = len(data.batch_sizes(X.shape[1], 64))


def _blow_up_after(switch_step, step):
    # 0.01 until the switch, then a learning rate that overflows the parameters
    return jnp.where(step < switch_step, 0.01, 1e38)


def blow_up_gd(switch_step):
    """Gradient descent whose schedule jumps at a traced step (a number, so configs share one
    program): the run diverges in the epoch holding ``switch_step``."""
    return optimizers.gd(Partial(_blow_up_after, switch_step))


@pytest.fixture(scope="module")
def diverging_rows():
    # chunks of 3 epochs: the blow-up at epoch 4 lands in the second chunk
    grid = {"switch_step": [4 * STEPS_PER_EPOCH, 10**6]}
    return sweep.sweep(
        X, Y, LAYERS, blow_up_gd, grid, seeds=[0], num_epochs=6, chunk_epochs=3, keep_costs=True
    )


def test_a_diverged_row_names_its_first_bad_epoch_and_has_no_result(diverging_rows):
    diverged, fine = diverging_rows
    with pytest.raises(train.DivergenceError) as caught:
        train.fit(X, Y, LAYERS, blow_up_gd(4 * STEPS_PER_EPOCH), num_epochs=6, seed=0)
    assert diverged["diverged_at_epoch"] == caught.value.epoch == 4
    assert diverged["final_cost"] is None and diverged["accuracy"] is None
    assert diverged["costs"][:4] == pytest.approx(fine["costs"][:4])
    assert diverged["costs"][4] is None
    assert fine["diverged_at_epoch"] is None
    assert fine["final_cost"] == fine["costs"][-1] and 0 < fine["accuracy"] <= 1
    json.dumps(diverging_rows, allow_nan=False)  # raises on a bare NaN


def test_best_run_never_picks_a_diverged_row(diverging_rows):
    assert runs.best_run(diverging_rows) is diverging_rows[1]
    # a row from before this change, NaN cost but no marker, is skipped too
    legacy = [dict(diverging_rows[1], accuracy=1.0, final_cost=math.nan), diverging_rows[1]]
    assert runs.best_run(legacy) is diverging_rows[1]
    assert runs.best_run([diverging_rows[0]]) is None


def test_cli_sweep_reports_diverged_runs_and_writes_valid_json(tmp_path, capsys):
    from jaxopt_lab import cli

    status = cli.main([
        "sweep", "--learning-rate", "1e15", "0.00001", "--seed", "1", "--epochs", "3",
        "--out", str(tmp_path), "--no-progress",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0
    assert "diverged: 1 of 2 runs" in printed
    assert "best: learning_rate 1e-05" in printed and "nan" not in printed.lower()
    text = (tmp_path / "sweep.json").read_text()
    results = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    big = next(r for r in results["results"] if r["learning_rate"] == 1e15)
    assert big["diverged_at_epoch"] == 0 and big["final_cost"] is None


# ---------------------------------------------------------------------------------------------
# Bad input: one ValueError naming the argument
# ---------------------------------------------------------------------------------------------

BAD_SWEEP_ARGS = [
    ("optimizer", {"optimizer": "adamw"}),
    ("optimizer", {"optimizer": optimizers.adam(0.1)}),
    ("optimizer", {"optimizer": 3}),
    ("devices", {"devices": []}),
    ("devices", {"devices": ["cpu"]}),
    ("learning_rate", {"grid": {"learning_rate": 0.01}}),
    ("learning_rate", {"grid": {"learning_rate": "0.01"}}),
    ("grid", {"grid": [0.01]}),
    ("grid", {"grid": {"lr": [0.01]}}),  # not an argument of adam
    ("seeds", {"seeds": None}),
    ("seeds", {"seeds": 3}),
    ("seeds", {"seeds": [None]}),  # course randomness is one run (train.fit), not a sweep
    ("seeds", {"seeds": [0, 1.5]}),
    ("seeds", {"seeds": [2**63]}),
    ("seeds", {"seeds": [2**64]}),
    ("block_runs", {"block_runs": 0}),
    ("on_chunk", {"on_chunk": 5}),
    ("GradientTransformation", {"optimizer": lambda learning_rate: "adam"}),
    (
        "one configuration per call",
        {"optimizer": optax.adam, "grid": {"learning_rate": [0.01, 0.1]}},
    ),
]


@pytest.mark.parametrize(("name", "change"), BAD_SWEEP_ARGS)
def test_sweep_refuses_bad_input_naming_it(name, change):
    args = {"optimizer": "adam", "grid": {"learning_rate": [0.01]}}
    kwargs = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    function = sweep.sweep_table if "block_runs" in kwargs else sweep.sweep
    with pytest.raises(InvalidValue, match=name) as caught:
        function(X, Y, LAYERS, args["optimizer"], args["grid"], num_epochs=2, **kwargs)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Sweeps at scale: blocks, columns, the grid's numbers as arrays, refusals before training
# ---------------------------------------------------------------------------------------------


def test_a_blocked_sweep_gives_the_rows_of_one_block(rows):
    # 4 runs a block on one device: (2 seeds, 2 configurations), three blocks, the programs of
    # another shape.
    progress = []
    table = sweep.sweep_table(
        X, Y, LAYERS, "adam", GRID, seeds=SEEDS, num_epochs=EPOCHS, chunk_epochs=CHUNK,
        keep_costs=True, block_runs=4, on_progress=lambda done, total: progress.append((done, total)),
        devices=jax.devices()[:1],
    )  # fmt: skip
    assert sweep.plan_blocks(2, 6, 1, 4).counts == (1, 3)
    np.testing.assert_allclose(table.costs, [r["costs"] for r in rows], rtol=1e-6, atol=1e-7)
    assert table.rows() == pytest.approx(rows, rel=1e-6)
    assert [r["accuracy"] for r in table.rows()] == [r["accuracy"] for r in rows]
    # progress in run-epochs: after every chunk of every block, rising to the total once
    total = 12 * EPOCHS
    assert [t for _, t in progress] == [total] * 9 and progress[-1][0] == total
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_the_table_has_the_rows_columns_and_best_run_in_grid_order(rows):
    table = sweep.sweep_table(X, Y, LAYERS, "adam", GRID, seeds=SEEDS, num_epochs=EPOCHS,
                              chunk_epochs=CHUNK, keep_costs=True)  # fmt: skip
    assert len(table) == 12 and table.shape == (3, 2, 2)
    columns = table.columns()
    assert columns["learning_rate"].tolist() == [r["learning_rate"] for r in rows]
    assert columns["b1"].tolist() == [r["b1"] for r in rows]
    assert columns["seed"].tolist() == [r["seed"] for r in rows]
    assert table.rows([3, 0]) == [rows[3], rows[0]]
    assert rows[table.best()] is runs.best_run(rows)


def test_the_grid_is_built_from_one_factory_call_per_text_value():
    calls = []

    def counted(**config):
        calls.append(config)
        return runs.sweep_factory(runs.RunConfig("momentum"), X.shape[1])(**config)

    grid = {"learning_rate": [0.1, 0.01, 0.5], "beta": [0.8, 0.9],
            "decay": ["none", "inverse-time"], "decay_rate": [0.3, 2.0]}  # fmt: skip
    numbers, structure, _ = sweep.grid_numbers(counted, "momentum", grid)
    # the first configuration alone, once per decay on arrays of the 12 others, the last alone
    assert len(calls) == 4 and [c["decay"] for c in calls[1:3]] == ["none", "inverse-time"]
    assert np.shape(calls[1]["learning_rate"]) == np.shape(calls[1]["decay_rate"]) == (12,)
    one_by_one, same = train.stack_optimizers(
        [counted(**point) for point in sweep.grid_points(grid)]
    )
    assert same == structure
    for a, b in zip(numbers, one_by_one, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_factory_that_needs_plain_numbers_is_called_per_configuration():
    def picky(learning_rate):
        return optimizers.gd(float(learning_rate))  # float() of an array fails: one by one

    numbers, _, _ = sweep.grid_numbers(picky, "picky", {"learning_rate": [0.1, 0.2, 0.3]})
    np.testing.assert_array_equal(numbers[0], np.float32([0.1, 0.2, 0.3]))


def test_a_grid_whose_results_do_not_fit_is_refused_before_training():
    huge = {"learning_rate": np.geomspace(1e-4, 1, 10**4), "b1": np.linspace(0, 0.9, 10**4)}
    with pytest.raises(InvalidValue, match=r"10\^8|100,000,000 runs") as caught:
        sweep.sweep(X, Y, LAYERS, "adam", huge, seeds=[0], num_epochs=2, devices=None)
    message = str(caught.value)
    assert caught.value.name == "grid" and "\n" not in message
    fits = int(message.split("at most ")[1].split(" runs")[0].replace(",", ""))
    assert fits == sweep.available_memory() // 2 // (sweep.RESULT_BYTES + sweep.ROW_BYTES)
    # as columns the same grid fits; under a small budget it says how many would
    with pytest.raises(InvalidValue, match="at most 1,000 runs fit"):
        sweep.check_fits(10**8, num_epochs=2, keep_costs=False, as_rows=False,
                         memory_budget=1000 * sweep.RESULT_BYTES)  # fmt: skip


def test_blocks_split_the_longer_axis_and_stay_near_the_target():
    for seeds, configs, devices, per_device in [(1, 10**6, 2, 512), (3, 40_000, 2, 512),
                                                (10**5, 2, 4, 256), (2000, 2000, 2, 512)]:  # fmt: skip
        blocks = sweep.plan_blocks(seeds, configs, devices, per_device)
        along = (blocks.seeds, blocks.configs)[not blocks.shard_seeds]
        assert along % devices == 0
        assert blocks.seeds * blocks.configs <= 2 * devices * per_device
        assert blocks.counts[0] * blocks.seeds >= seeds and blocks.counts[1] * blocks.configs >= configs
        assert blocks.shard_seeds == (seeds > configs)


def test_the_csv_holds_every_row_and_reads_back_exactly(tmp_path, rows):
    import csv

    from jaxopt_lab import results

    table = sweep.sweep_table(X, Y, LAYERS, "adam", GRID, seeds=SEEDS, num_epochs=EPOCHS,
                              chunk_epochs=CHUNK)  # fmt: skip
    bad = np.arange(len(table)) == 1  # a diverged run writes empty fields
    table = dataclasses.replace(
        table, diverged_at_epoch=np.where(bad, 3, table.diverged_at_epoch),
        final_cost=np.where(bad, np.nan, table.final_cost),
        accuracy=np.where(bad, np.nan, table.accuracy),
    )  # fmt: skip
    path = results.write_sweep_csv(tmp_path / "sweep.csv", table)
    with path.open() as f:
        read = list(csv.DictReader(f))
    assert len(read) == len(rows)
    for got, row in zip(read, table.rows(), strict=True):
        assert got["optimizer"] == "adam" and int(got["seed"]) == row["seed"]
        assert float(got["learning_rate"]) == row["learning_rate"] and float(got["b1"]) == row["b1"]
        if row["diverged_at_epoch"] is None:
            assert got["diverged_at_epoch"] == ""
            assert np.float32(got["final_cost"]) == np.float32(row["final_cost"])
            assert float(got["accuracy"]) == row["accuracy"]
        else:
            assert (got["diverged_at_epoch"], got["final_cost"], got["accuracy"]) == ("3", "", "")


def test_cli_refuses_a_grid_too_large_for_memory_in_one_line_before_training(capsys):
    from jaxopt_lab import cli

    def values(low, high, n):
        return [f"{v:.9g}" for v in np.linspace(low, high, n)]

    status = cli.main(["sweep", "--learning-rate", *values(1e-4, 1, 4000), "--beta1",
                       *values(0.1, 0.9, 4000), "--beta2", *values(0.9, 0.999, 1000),
                       "--epochs", "2", "--no-progress"])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("jaxopt-lab: error: grid has 16,000,000,000 runs")
    assert "runs fit" in line
