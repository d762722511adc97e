"""Sweeps of :class:`RunConfig` settings: the grid of an optimizer's own settings, the factory
that builds each point as ``jaxopt-lab train`` would, one engine call over seeds, and the best run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optax

from jaxopt_lab import data, engine, optimizers
from jaxopt_lab.config import LAYERS_DIMS, RunConfig
from jaxopt_lab.settings import InvalidValue, factory_settings
from jaxopt_lab.table import RunTable, best_row


def sweep_axes(optimizer: str) -> tuple[str, ...]:
    """The settings a sweep of ``optimizer`` varies: its learning rate and the hyperparameters its
    factory takes (``adam``: ``learning_rate, beta1, beta2, epsilon``)."""
    factory = optimizers.OPTIMIZERS[optimizer]
    return ("learning_rate", *(s.name for s in factory_settings(factory)))


def sweep_grid(optimizer: str, values: Mapping[str, Sequence[Any]]) -> dict[str, list]:
    """The grid of a sweep of ``optimizer``: its learning rate and own hyperparameters (and the
    decay, when any value asks for one) with the candidate ``values`` of each, duplicates dropped.

    Args:
      optimizer: a name in ``optimizers.OPTIMIZERS``.
      values: candidate values per :class:`RunConfig` field (others are ignored).
    """
    names = sweep_axes(optimizer)
    if any(decay != "none" for decay in values.get("decay", ["none"])):
        names += ("decay", "decay_rate")
    return {name: list(dict.fromkeys(values[name])) for name in names}


def sweep_factory(base: RunConfig, m: int) -> Callable[..., optax.GradientTransformation]:
    """``**grid_point -> optimizer``: ``base`` with the point's fields, in the shared-structure
    form ``train`` uses (decays differ in numbers only, so the whole grid is one program)."""

    def make_optimizer(**config) -> optax.GradientTransformation:
        return base._replace(**config).make_optimizer(m, shared_structure=True)

    return make_optimizer


def sweep_table(
    base: RunConfig,
    values: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    on_progress: Callable[[int, int], None] | None = None,
    block_runs: int | None = None,
    as_rows: bool = False,
) -> RunTable:
    """A sweep of ``base.optimizer`` over candidate ``values`` of its settings, for every seed;
    the results as columns (:class:`RunTable`), settings named by
    ``RunConfig`` fields, ``optimizer`` set to ``base.optimizer``.

    The grid is :func:`sweep_grid` of ``values`` (lists per :class:`RunConfig` field; a field
    left out takes ``base``'s value, a name that is no field is refused); epochs, batch size and
    interval come from ``base``. Runs on every device of every process, block by
    block (:func:`engine.train_grid`); in a multi-process sweep a lost peer stops this
    process at the next chunk boundary (:class:`distributed.DistributedError`), and so does a
    signal (:class:`runtime.Stopped`). A grid whose results would not fit in memory is refused
    before training (an :class:`InvalidValue` naming ``grid`` with the number that fits).

    Args:
      on_progress: called after every chunk of every block with ``(done, total)`` run-epochs.
      block_runs: runs per device per block (default: sized to the cache).
      as_rows: the caller will turn every run into a dict (counted in the memory check).
    """
    unknown = sorted(set(values) - set(RunConfig._fields))
    if unknown:
        raise InvalidValue("values", f"names no RunConfig field: {', '.join(map(repr, unknown))}")
    values = {name: [getattr(base, name)] for name in RunConfig._fields} | dict(values)
    X, Y = data.load_moons()
    table = engine.train_grid(
        X, Y, LAYERS_DIMS, [(sweep_factory(base, X.shape[1]), sweep_grid(base.optimizer, values))],
        seeds=seeds, num_epochs=base.epochs, mini_batch_size=base.mini_batch_size,
        on_progress=on_progress, block_runs=block_runs, as_rows=as_rows,
    )  # fmt: skip
    return dataclasses.replace(table, optimizer=base.optimizer)


def sweep_runs(
    base: RunConfig,
    values: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    on_epochs: Callable[[int], None] | None = None,
) -> list[dict]:
    """:func:`sweep_table` as one dict per run (the rows of :func:`jaxopt_lab.sweep.sweep`).

    ``on_epochs`` is called after every chunk with the epochs done so far, counted over the
    whole grid (the share of run-epochs done, times ``base.epochs``): it rises to
    ``base.epochs`` once, however many blocks the grid takes.
    """

    def progress(done: int, total: int) -> None:
        on_epochs(done * base.epochs // total)

    table = sweep_table(
        base, values, seeds, on_progress=progress if on_epochs is not None else None, as_rows=True
    )
    return table.rows()


def best_run(rows: Sequence[dict]) -> dict | None:
    """The sweep row with the highest accuracy, ties broken by the lower final cost
    (:func:`table.best_index`, the rule :meth:`RunTable.best` follows).

    Diverged rows (``diverged_at_epoch`` set, or no finite final cost) never count: the result
    is None when every run diverged.
    """
    return best_row(rows)
