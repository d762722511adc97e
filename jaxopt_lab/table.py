"""The one result of many runs: :class:`RunTable`, every run's settings, seed and outcomes as
columns, from which rows, files and pictures are made; and the rule that picks the best run.

A run's outcomes are the table's fields made with :func:`outcome`: ``diverged_at_epoch`` and the
metrics (:meth:`RunTable.metrics`: ``final_cost``, ``accuracy``), each with the formula that
computes it from what the engine measured (:class:`Measured`). Rows, the CSV file, the JSON file
and the pictures' columns iterate over them, so a new metric is one field here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np


class Measured(NamedTuple):
    """What the engine measures of every run, the raw matter of the outcomes; shape=(runs,)."""

    final_cost: np.ndarray  # the last epoch's cost, the run's float dtype
    diverged_at: np.ndarray  # int64: the first epoch whose cost is not finite, -1 for none
    correct: np.ndarray  # int64: correct predictions on the training set after the last epoch
    examples: int  # the training set's size
    costs: np.ndarray | None  # shape=(runs, epochs) with keep_costs
    reached_at: np.ndarray | None = None  # int64: first epoch at the target accuracy, -1 for none


def outcome(measure: Callable[[Measured], np.ndarray], *, metric: bool = True):
    """A per-run field of :class:`RunTable`, computed by ``measure`` from what the engine
    measured: a metric (NaN, shown as None, where a run diverged) or, with ``metric=False``, the
    divergence marker itself."""
    kind = "metric" if metric else "marker"
    return dataclasses.field(kw_only=True, metadata={"outcome": kind, "measure": measure})


@dataclasses.dataclass(frozen=True)
class RunTable:
    """The results of a grid of runs as arrays, one entry per run, seeds fastest.

    The configurations are a cartesian product of ``grid`` (last axis fastest) unless
    ``config_codes`` lists them: then configuration ``i`` takes, for every axis, the value at
    ``config_codes[i, axis]`` (a table joining several grids, :meth:`join`). A setting's column
    is computed from the grid's values (:meth:`column`), never stored per run.
    """

    optimizer: str
    grid: dict[str, list]  # every axis and its values, in grid order (last fastest)
    seeds: np.ndarray  # shape=(seeds,), int64
    costs: np.ndarray | None = None  # shape=(runs, epochs) with keep_costs (NaN where not finite)
    config_codes: np.ndarray | None = None  # shape=(configs, axes), int64; None: the product
    # With a target accuracy (engine.train_grid): each run's first epoch whose end-of-epoch
    # training accuracy reached it, -1 for none; int64, shape=(runs,). Not an outcome column.
    target_epoch: np.ndarray | None = None
    # The outcomes, one entry per run; every one of them flows to rows, files and pictures.
    diverged_at_epoch: np.ndarray = outcome(lambda m: m.diverged_at, metric=False)  # -1: none
    final_cost: np.ndarray = outcome(lambda m: m.final_cost)  # the run's float dtype
    accuracy: np.ndarray = outcome(lambda m: m.correct / m.examples)  # float64: mean(pred == Y)

    def __len__(self) -> int:
        return len(self.diverged_at_epoch)

    @classmethod
    def metrics(cls) -> tuple[str, ...]:
        """The per-run metrics, in column order: ``("final_cost", "accuracy")``."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("outcome") == "metric")

    @classmethod
    def outcomes(cls) -> tuple[str, ...]:
        """``diverged_at_epoch`` and the metrics: every result column."""
        return tuple(f.name for f in dataclasses.fields(cls) if "outcome" in f.metadata)

    @classmethod
    def measure(cls, measured: Measured) -> dict[str, np.ndarray]:
        """Every outcome of every run from what the engine measured; metrics NaN where a run
        diverged."""
        diverged = measured.diverged_at >= 0
        values = {}
        for f in dataclasses.fields(cls):
            if "outcome" in f.metadata:
                value = f.metadata["measure"](measured)
                metric = f.metadata["outcome"] == "metric"
                values[f.name] = np.where(diverged, np.nan, value) if metric else value
        return values

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's axis lengths, then the number of seeds (a joined table: configurations,
        seeds)."""
        if self.config_codes is not None:
            return (len(self.config_codes), len(self.seeds))
        return (*(len(v) for v in self.grid.values()), len(self.seeds))

    @property
    def diverged(self) -> np.ndarray:
        """Whether each run diverged (its cost stopped being finite)."""
        return self.diverged_at_epoch >= 0

    def codes(self, name: str) -> np.ndarray:
        """For every run, the position of its value among the values of a setting (or ``"seed"``)."""
        runs, n_seeds = np.arange(len(self)), len(self.seeds)
        if name == "seed":
            return runs % n_seeds
        axis = list(self.grid).index(name)
        if self.config_codes is not None:
            return self.config_codes[runs // n_seeds, axis]
        shape = self.shape
        return (runs // math.prod(shape[axis + 1 :])) % shape[axis]

    def column(self, name: str) -> np.ndarray:
        """A setting's value (or ``"seed"``) for every run, from the grid in one vectorised pass."""
        values = self.seeds if name == "seed" else _values_array(self.grid[name])
        return values[self.codes(name)]

    def columns(self) -> dict[str, np.ndarray]:
        """Every column by name: the settings, ``seed``, then the outcomes."""
        settings = {name: self.column(name) for name in (*self.grid, "seed")}
        return {**settings, **{name: getattr(self, name) for name in self.outcomes()}}

    def best(self) -> int | None:
        """The index of the best run (:func:`best_index`), None if every run diverged."""
        return best_index(self.accuracy, self.final_cost, self.diverged)

    def rows(self, indices: Sequence[int] | np.ndarray | None = None) -> list[dict[str, Any]]:
        """The runs as dicts (all, or those at ``indices``), in one pass over columns:
        ``{"optimizer", **config, "seed", "diverged_at_epoch", **metrics}`` (plus ``"costs"``
        with keep_costs), None where a run diverged or a cost is not finite."""
        pick = slice(None) if indices is None else np.asarray(indices, dtype=np.int64)
        diverged = self.diverged[pick]
        columns: dict[str, list] = {
            name: self.column(name)[pick].tolist() for name in (*self.grid, "seed")
        }
        columns["diverged_at_epoch"] = _none_where(self.diverged_at_epoch[pick], ~diverged)
        for name in self.metrics():
            columns[name] = _none_where(getattr(self, name)[pick].astype(np.float64), diverged)
        if self.costs is not None:
            costs = self.costs[pick].astype(np.float64)
            columns["costs"] = [
                [None if math.isnan(c) else c for c in run] for run in costs.tolist()
            ]
        names, optimizer = list(columns), self.optimizer
        return [
            {"optimizer": optimizer, **dict(zip(names, values, strict=True))}
            for values in zip(*columns.values(), strict=True)
        ]

    @classmethod
    def join(cls, tables: Sequence[RunTable]) -> RunTable:
        """Tables of the same seeds and axes as one, their runs one table after another; each
        axis's values are those of every table, in order of first appearance. Tables of several
        optimizers get an ``optimizer`` axis (the table's own name is the first one's)."""
        first = tables[0]
        if len(tables) == 1:
            return first
        named = len({t.optimizer for t in tables}) > 1 and "optimizer" not in first.grid
        grid: dict[str, list] = {name: [] for name in (["optimizer"] if named else []) + [*first.grid]}
        codes = []
        for table in tables:
            per_config = np.arange(0, len(table), len(table.seeds))
            columns = []
            for name, values in grid.items():
                if named and name == "optimizer":  # each table's optimizer becomes a column
                    columns.append(np.full(len(per_config), _index_of(values, table.optimizer)))
                    continue
                own = table.codes(name)[per_config]
                where = [_index_of(values, value) for value in table.grid[name]]
                columns.append(np.asarray(where, np.int64)[own])
            codes.append(np.stack(columns, axis=1))
        joined = {
            name: np.concatenate([getattr(t, name) for t in tables]) for name in cls.outcomes()
        }
        costs = None if first.costs is None else np.concatenate([t.costs for t in tables])
        reached = None if first.target_epoch is None else np.concatenate(
            [t.target_epoch for t in tables]
        )
        return cls(first.optimizer, grid, first.seeds, costs, np.concatenate(codes), reached,
                   **joined)  # fmt: skip


def best_index(accuracy, final_cost, diverged) -> int | None:
    """The best run: the highest accuracy, ties broken by the lower final cost, then by the
    earlier run. A diverged run, or one without a finite cost and accuracy, never counts (None if
    no run does)."""
    accuracy, final_cost = np.asarray(accuracy, float), np.asarray(final_cost, float)
    finished = ~np.asarray(diverged, bool) & np.isfinite(final_cost) & np.isfinite(accuracy)
    if not finished.any():
        return None
    order = np.lexsort((final_cost, -accuracy))  # last key is the primary one; stable
    return int(order[np.argmax(finished[order])])


def best_row(rows: Sequence[dict]) -> dict | None:
    """The row of :func:`best_index` among result rows (``diverged_at_epoch``, ``final_cost``,
    ``accuracy``; None or NaN where missing), or None."""

    def values(name: str) -> np.ndarray:
        return np.array([np.nan if r.get(name) is None else r[name] for r in rows], float)

    diverged = np.array([r.get("diverged_at_epoch") is not None for r in rows], bool)
    best = best_index(values("accuracy"), values("final_cost"), diverged)
    return None if best is None else rows[best]


def _index_of(values: list, value) -> int:
    """``value``'s position in ``values``, appended when new."""
    for i, known in enumerate(values):
        if known == value and type(known) is type(value):
            return i
    values.append(value)
    return len(values) - 1


def _values_array(values: Sequence) -> np.ndarray:
    """An axis's values as an array that gives back the very objects of the grid (``tolist``)."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    if all(is_real(v) for v in values):
        return np.asarray(values)
    return array


def _none_where(values: np.ndarray, mask: np.ndarray) -> list:
    out = values.astype(object)
    out[mask] = None
    return out.tolist()


def is_real(value) -> bool:
    """A real number (not a bool)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
