"""The long table (``runs.csv``, ``runs.parquet``, ``runs.meta.json``): pandas reads both files
back equal to the rows they were written from, with the dtypes the module promises, and the
metadata says what produced them. Expected frames are built here by pandas from plain lists."""

from __future__ import annotations

import json
import math
import sys

import jax
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import jaxopt_lab
from jaxopt_lab import data, long_table, model, results, train
from jaxopt_lab.config import COURSE_RUNS, LAYERS_DIMS, RunConfig
from jaxopt_lab.experiments.lr_find import lr_find
from jaxopt_lab.settings import InvalidValue
from jaxopt_lab.table import RunTable


def read_both(folder):
    """``(csv_frame, parquet_frame, csv_metadata, parquet_schema_metadata)``."""
    schema = pq.read_schema(folder / long_table.PARQUET_NAME).metadata
    return (
        pd.read_csv(folder / long_table.CSV_NAME),
        pd.read_parquet(folder / long_table.PARQUET_NAME),
        json.loads((folder / long_table.META_NAME).read_text()),
        schema,
    )


def assert_reads_back(folder, expected: pd.DataFrame) -> dict:
    """Both files read back equal to ``expected``; the metadata, the same in both, returned."""
    csv, parquet, meta, schema = read_both(folder)
    pd.testing.assert_frame_equal(csv, expected)
    pd.testing.assert_frame_equal(parquet, expected)
    assert json.loads(schema[long_table.META_KEY]) == meta
    assert parquet.attrs == meta  # pandas' PANDAS_ATTRS key
    return meta


# Floats whose shortest text is long, tiny, huge or subnormal: a lossy writer or reader fails.
FLOATS = [0.1, 1 / 3, 5e-324, 1.7976931348623157e308, -2.5e-300, float(np.float32(0.7)),
          2.0**-1074 * 3, 123456789.12345678, -0.5, 1e16]  # fmt: skip
TEXTS = ['run "a", fast', "plain", "two\nlines", "β₁ = 0.9", "", "x", ",", '"', "a,b", "z"]


def mixed_rows() -> list[dict]:
    rows = []
    for i, (number, text) in enumerate(zip(FLOATS, TEXTS, strict=True)):
        row = {
            "method": text,
            "seed": None if i % 3 == 0 else i,
            "final_cost": None if i == 4 else number,
            "accuracy": np.float32(i / 7),  # a NumPy scalar: its float64 value
            "flag": i % 2 == 0,
            "maybe": None if i == 1 else i % 2 == 1,
            "big": np.int64(2**62 + i),
            "cost_at_epoch": {"0": number * 2, "1000": float(i)},
            "odd": [math.nan, math.inf, -math.inf][i % 3],
        }
        if i >= 5:
            row["late"] = i * 10
        rows.append(row)
    return rows


def test_rows_read_back_equal_from_csv_and_parquet(tmp_path):
    rows = mixed_rows()
    long_table.write_long_table(tmp_path, rows, experiment="mixed")
    expected = pd.DataFrame({
        "method": pd.Series([None if t == "" else t for t in TEXTS]),  # empty text is missing
        "seed": [math.nan if r["seed"] is None else float(r["seed"]) for r in rows],
        "final_cost": [math.nan if r["final_cost"] is None else r["final_cost"] for r in rows],
        "accuracy": [float(r["accuracy"]) for r in rows],
        "flag": [r["flag"] for r in rows],
        "maybe": [math.nan if r["maybe"] is None else float(r["maybe"]) for r in rows],
        "big": np.array([2**62 + i for i in range(len(rows))], dtype=np.int64),
        "cost_at_epoch.0": [r["cost_at_epoch"]["0"] for r in rows],
        "cost_at_epoch.1000": [r["cost_at_epoch"]["1000"] for r in rows],
        "odd": [r["odd"] for r in rows],
        "late": [float(r["late"]) if "late" in r else math.nan for r in rows],
    })  # fmt: skip
    meta = assert_reads_back(tmp_path, expected)
    assert meta["columns"] == {
        "method": "text", "seed": "int", "final_cost": "float", "accuracy": "float",
        "flag": "bool", "maybe": "float", "big": "int", "cost_at_epoch.0": "float",
        "cost_at_epoch.1000": "float", "odd": "float", "late": "int",
    }  # fmt: skip
    assert meta["rows"] == len(rows)


def test_settings_fill_what_rows_lack_and_rows_win(tmp_path):
    rows = [{"method": "A", "learning_rate": 0.5, "seed": 1}, {"method": "B", "seed": 2},
            {"method": "C", "seed": 3}]  # fmt: skip
    by_method = {"A": {"decay": "none", "learning_rate": 0.2},
                 "B": RunConfig("adam", 0.01, decay="fixed-interval")}  # fmt: skip
    long_table.write_long_table(tmp_path, rows, experiment="x", settings={"epochs": 10,
                                "learning_rate": 0.1}, by_method=by_method)  # fmt: skip
    b = RunConfig("adam", 0.01, decay="fixed-interval")._asdict()
    shared = {"epochs": 10, "learning_rate": 0.1}
    expected = pd.DataFrame([{**shared, **by_method["A"], **rows[0]}, {**shared, **b, **rows[1]},
                             {**shared, **rows[2]}])  # fmt: skip
    meta = assert_reads_back(tmp_path, expected)
    csv = pd.read_csv(tmp_path / long_table.CSV_NAME)
    assert list(csv.columns[:4]) == ["epochs", "learning_rate", "decay", "method"]
    assert csv["learning_rate"].tolist() == [0.5, 0.01, 0.1]  # the row's, B's run's, the shared
    assert csv["epochs"].tolist() == [10, 5000, 10]
    assert meta["settings"] == {"epochs": 10, "learning_rate": 0.1}
    assert meta["methods"]["B"] == {**b, "seed": None}


def small_table(optimizer: str = "adam", *, all_diverged: bool = False) -> RunTable:
    """A 2 x 2 grid x 2 seeds of float32 outcomes, text settings with a comma and quotes."""
    grid = {"learning_rate": [0.1, 1 / 3], "decay": ["none", 'odd, "quoted"']}
    seeds = np.array([3, 7], dtype=np.int64)
    rng = np.random.default_rng(len(optimizer))
    diverged = np.full(8, 5) if all_diverged else np.array([-1, -1, 4, -1, -1, -1, -1, 0])
    cost = rng.random(8).astype(np.float32)
    return RunTable(optimizer, grid, seeds, diverged_at_epoch=diverged,
                    final_cost=np.where(diverged >= 0, np.nan, cost).astype(np.float32),
                    accuracy=np.where(diverged >= 0, np.nan, rng.integers(0, 300, 8) / 300))  # fmt: skip


@pytest.mark.parametrize("joined", [False, True])
def test_a_run_table_reads_back_as_its_rows(tmp_path, joined):
    """The column-wise path (no dict per run) equals the table's own rows with the shared
    settings, as pandas builds a frame from them."""
    table = small_table()
    if joined:
        table = RunTable.join([table, small_table("momentum")])
    base = RunConfig("adam", epochs=20)
    long_table.write_long_table(tmp_path, table, experiment="sweep", settings=base)
    expected = pd.DataFrame([{**base._asdict(), **row} for row in table.rows()])
    meta = assert_reads_back(tmp_path, expected)
    assert expected["final_cost"].dtype == np.float64 and expected["seed"].dtype == np.int64
    assert meta["seed_scheme"] == "seed mode" and meta["epoch_order"] == data.EPOCH_ORDER
    assert meta["rows"] == len(table)


def test_every_run_diverged(tmp_path):
    table = small_table(all_diverged=True)
    long_table.write_long_table(tmp_path, table, experiment="sweep")
    csv, parquet, _, _ = read_both(tmp_path)
    pd.testing.assert_frame_equal(csv, parquet)
    assert csv["diverged_at_epoch"].dtype == np.int64 and (csv["diverged_at_epoch"] == 5).all()
    assert csv["final_cost"].isna().all() and csv["accuracy"].isna().all()
    assert csv["final_cost"].dtype == np.float64


def test_an_empty_table_keeps_its_columns(tmp_path):
    long_table.write_long_table(tmp_path, [], experiment="none", settings={"epochs": 3, "lr": 0.1})
    csv, parquet, meta, _ = read_both(tmp_path)
    assert (tmp_path / long_table.CSV_NAME).read_text() == "epochs,lr\n"
    assert list(csv.columns) == list(parquet.columns) == ["epochs", "lr"]
    assert len(csv) == len(parquet) == 0 and meta["rows"] == 0


@pytest.mark.parametrize("seeds, scheme, order", [
    ([None, None], "course", None),
    ([1, 2], "seed mode", data.EPOCH_ORDER),
    ([None, 2], "course and seed mode", data.EPOCH_ORDER),
])  # fmt: skip
def test_metadata_names_package_jax_precision_and_seed_scheme(tmp_path, seeds, scheme, order):
    rows = [{"seed": seed, "accuracy": 0.5} for seed in seeds]
    long_table.write_long_table(tmp_path, rows, experiment="probe", settings={"epochs": 7})
    _, _, meta, _ = read_both(tmp_path)
    assert meta["jaxopt_lab_version"] == jaxopt_lab.__version__
    assert meta["jax_version"] == jax.__version__
    assert meta["precision"] == "float32" and meta["experiment"] == "probe"
    assert meta["seed_scheme"] == scheme and meta["epoch_order"] == order
    assert meta["settings"] == {"epochs": 7}


def test_without_pyarrow_only_the_parquet_file_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    written = long_table.write_long_table(tmp_path, [{"seed": 1}], experiment="x")
    assert sorted(p.name for p in written) == [long_table.CSV_NAME, long_table.META_NAME]
    assert not (tmp_path / long_table.PARQUET_NAME).exists()
    assert pd.read_csv(tmp_path / long_table.CSV_NAME)["seed"].tolist() == [1]


@pytest.mark.parametrize("runs, experiment, name", [
    ("abc", "x", "runs"), ({"seed": 1}, "x", "runs"), ([1, 2], "x", "runs"),
    ([{"seed": 1}], "", "experiment"), ([{"seed": 1}], None, "experiment"),
])  # fmt: skip
def test_refuses_what_is_not_a_table(tmp_path, runs, experiment, name):
    with pytest.raises(InvalidValue) as caught:
        long_table.write_long_table(tmp_path, runs, experiment=experiment)
    assert caught.value.name == name
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("settings, by_method, name", [
    ([1, 2], None, "settings"), ("lr", None, "settings"),
    (None, ["A"], "by_method"), (None, {"A": 0.1}, "by_method"),
])  # fmt: skip
def test_refuses_settings_that_are_not_mappings(tmp_path, settings, by_method, name):
    with pytest.raises(InvalidValue) as caught:
        long_table.write_long_table(tmp_path, [{"method": "A"}], experiment="x",
                                    settings=settings, by_method=by_method)  # fmt: skip
    assert caught.value.name == name
    assert not any(tmp_path.iterdir())


def test_lr_find_in_float64_writes_its_rows_exactly(tmp_path, x64):
    search = lr_find(["gd"], seeds=[5], epochs=10, points=2, lr_from=0.01, lr_to=10.0)
    results.write_lr_find(tmp_path, search, seconds=1.0)
    expected = pd.DataFrame([{**RunConfig(epochs=10)._asdict(), **row} for row in search.rows])
    expected = expected.astype({"seed": np.int64, "diverged_at_epoch": float})  # none diverged
    meta = assert_reads_back(tmp_path, expected)
    costs = [row["final_cost"] for row in search.rows]
    assert pd.read_csv(tmp_path / "runs.csv")["final_cost"].tolist() == costs  # bit for bit
    assert meta["precision"] == "float64" and meta["experiment"] == "lr_find"
    assert meta["seed_scheme"] == "seed mode"


def fake_fit(seed: int | None = None) -> train.FitResult:
    costs = np.array([0.7, 0.5, 0.25 + 1 / 3], dtype=np.float32)
    return train.FitResult(model.init_params(LAYERS_DIMS, seed), costs, None, 0.5, 1.5)


def test_train_writes_its_run_in_course_mode(tmp_path):
    config = RunConfig("momentum", 0.05, epochs=3, decay="inverse-time")
    results.write_run(tmp_path, config, fake_fit(), accuracy=0.75)
    row = {**config._asdict(), "diverged_at_epoch": None,
           "final_cost": float(np.float32(0.25 + 1 / 3)), "accuracy": 0.75}  # fmt: skip
    expected = pd.DataFrame([row]).astype({"seed": float, "diverged_at_epoch": float})
    meta = assert_reads_back(tmp_path, expected)
    assert meta["seed_scheme"] == "course" and meta["epoch_order"] is None


def test_sweep_writes_the_rows_of_sweep_csv_and_its_base(tmp_path):
    table, base = small_table(), RunConfig("adam", epochs=20, time_interval=7)
    results.write_sweep(tmp_path, base, table, seconds=1.0, devices=1)
    sweep, csv, _, meta, _ = pd.read_csv(tmp_path / "sweep.csv"), *read_both(tmp_path)
    pd.testing.assert_frame_equal(csv[sweep.columns], sweep)  # the other writer, the same runs
    assert (csv["time_interval"] == 7).all() and (csv["epochs"] == 20).all()
    assert meta["experiment"] == "sweep" and meta["settings"]["time_interval"] == 7


def test_compare_gives_each_row_its_course_run_settings(tmp_path):
    course = [COURSE_RUNS[3], COURSE_RUNS[6]]  # two runs: fewer boundaries to draw
    rows = [
        {"method": label, "optimizer": config.optimizer, "decay": config.decay,
         "learning_rate": config.learning_rate, "final_cost": 0.5, "accuracy": 0.9,
         "seconds": 1.0, "cost_at_epoch": {"0": 0.7}}
        for label, config in course
    ]  # fmt: skip
    results.write_comparison(tmp_path, rows, [fake_fit()] * len(rows), seconds=1.0)
    csv, *_ = read_both(tmp_path)
    for name in ("epochs", "decay_rate", "time_interval", "beta1", "learning_rate", "optimizer"):
        assert csv[name].tolist() == [getattr(config, name) for _, config in course]
    assert csv["seed"].isna().all() and csv["cost_at_epoch.0"].tolist() == [0.7, 0.7]
