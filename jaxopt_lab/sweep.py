"""Grids of training runs as one program: :func:`train.run_chunk` vmapped over configurations, run
block by block.

A sweep trains every (hyperparameters, seed) pair of a grid. The runs are laid out as a ``(seeds,
configurations)`` array: the outer ``vmap`` is over seeds (each seed has its own initial parameters
and epoch shuffles), the inner one over configurations that share those shuffles, so one epoch's
mini-batches are gathered once per seed, not once per run. The longer of the two axes is split
across a :class:`jax.sharding.Mesh` of all devices.

Wide grids run in blocks: a block holds about :func:`runs_per_block` runs per device, few enough
that one mini-batch step of the whole block stays in the core's cache (measured here: 2.2 M
config-steps per second at 512 runs per core, 0.75 M at 8,192). Every block has the same shape, so
one compiled program runs them all, and a grid of any size reuses it. Epochs run in chunks, as in
:func:`train.fit`, so memory does not grow with the number of epochs.

Nothing is done per configuration in Python: the grid's numbers come from one call of the optimizer
factory on arrays (:func:`grid_numbers`), initial states are made inside the block's program, and
results come back as arrays (:class:`SweepTable`); rows as dicts are made only when asked for.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jaxopt_lab import optimizers, settings, train
from jaxopt_lab.blocks import (  # noqa: F401  (re-exported: sweep.plan_blocks and friends)
    ACCELERATOR_BLOCK,
    AXIS,
    CACHE_BYTES,
    PERMUTATION_BUDGET,
    Blocks,
    _ceil_pow2,
    _Chunk,
    _cutter,
    _empty_state,
    _floor_pow2,
    _global,
    _host,
    _program,
    plan_blocks,
    runs_per_block,
)
from jaxopt_lab.settings import InvalidValue

ROW_BYTES = 700  # a row as a Python dict (9 keys, their floats and the list's pointer), measured
RESULT_BYTES = 16  # a run's results as columns: final cost, accuracy (float64), diverged epoch

OptimizerFactory = Callable[..., optax.GradientTransformation]
ChunkCallback = Callable[[int, jax.Array], None]
ProgressCallback = Callable[[int, int], None]


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of a grid, last key fastest: ``{"a": [1, 2], "b": [3]}`` ->
    ``[{"a": 1, "b": 3}, {"a": 2, "b": 3}]``."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


# ---------------------------------------------------------------------------------------------
# Results as columns
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepTable:
    """A sweep's results as arrays, one entry per run, runs in grid order with seeds fastest.

    The grid is a cartesian product, so a setting's column is computed from its values
    (:meth:`column`) and never stored per run; ``final_cost.reshape(*shape)`` puts the runs on the
    grid's axes, seeds last.
    """

    optimizer: str
    grid: dict[str, list]  # every axis and its values, in grid order (last fastest)
    seeds: np.ndarray  # shape=(seeds,), int64
    diverged_at_epoch: np.ndarray  # shape=(runs,), int64: first non-finite epoch, -1 for none
    final_cost: np.ndarray  # shape=(runs,), the run's float dtype; NaN where diverged
    accuracy: np.ndarray  # shape=(runs,), float64: np.mean(pred == Y); NaN where diverged
    costs: np.ndarray | None  # shape=(runs, epochs) with keep_costs (NaN where not finite)

    def __len__(self) -> int:
        return len(self.final_cost)

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's axis lengths, then the number of seeds."""
        return (*(len(v) for v in self.grid.values()), len(self.seeds))

    @property
    def diverged(self) -> np.ndarray:
        """Whether each run diverged (its cost stopped being finite)."""
        return self.diverged_at_epoch >= 0

    def codes(self, name: str) -> np.ndarray:
        """For every run, the position of its value among the values of a setting (or ``"seed"``)."""
        shape = self.shape
        axis = [*self.grid, "seed"].index(name)
        return (np.arange(len(self)) // math.prod(shape[axis + 1 :])) % shape[axis]

    def column(self, name: str) -> np.ndarray:
        """A setting's value (or ``"seed"``) for every run, from the grid in one vectorised pass."""
        values = self.seeds if name == "seed" else _values_array(self.grid[name])
        return values[self.codes(name)]

    def columns(self) -> dict[str, np.ndarray]:
        """Every column by name: the settings, ``seed``, ``diverged_at_epoch``, ``final_cost``,
        ``accuracy``."""
        return {
            **{name: self.column(name) for name in self.grid},
            "seed": self.column("seed"),
            "diverged_at_epoch": self.diverged_at_epoch,
            "final_cost": self.final_cost,
            "accuracy": self.accuracy,
        }

    def best(self) -> int | None:
        """The index of the run with the highest accuracy, ties broken by the lower final cost;
        diverged runs never count (None if every run diverged)."""
        finished = ~self.diverged & np.isfinite(self.final_cost) & np.isfinite(self.accuracy)
        if not finished.any():
            return None
        order = np.lexsort((self.final_cost, -self.accuracy))  # last key is the primary one
        return int(order[np.argmax(finished[order])])

    def rows(self, indices: Sequence[int] | np.ndarray | None = None) -> list[dict[str, Any]]:
        """The runs as dicts (all, or those at ``indices``), in one pass over columns:
        ``{"optimizer", **config, "seed", "diverged_at_epoch", "final_cost", "accuracy"}`` (plus
        ``"costs"`` with keep_costs), None where a run diverged or a cost is not finite."""
        pick = slice(None) if indices is None else np.asarray(indices, dtype=np.int64)
        diverged = self.diverged[pick]
        columns: dict[str, list] = {
            name: self.column(name)[pick].tolist() for name in self.grid
        }
        columns["seed"] = self.column("seed")[pick].tolist()
        columns["diverged_at_epoch"] = _none_where(self.diverged_at_epoch[pick], ~diverged)
        columns["final_cost"] = _none_where(self.final_cost[pick].astype(np.float64), diverged)
        columns["accuracy"] = _none_where(self.accuracy[pick], diverged)
        if self.costs is not None:
            costs = self.costs[pick].astype(np.float64)
            columns["costs"] = [
                [None if math.isnan(c) else c for c in run] for run in costs.tolist()
            ]
        names = list(columns)
        optimizer = self.optimizer
        return [
            {"optimizer": optimizer, **dict(zip(names, values, strict=True))}
            for values in zip(*columns.values(), strict=True)
        ]


def _values_array(values: Sequence) -> np.ndarray:
    """An axis's values as an array that gives back the very objects of the grid (``tolist``)."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    if all(_is_real(v) for v in values):
        return np.asarray(values)
    return array


def _none_where(values: np.ndarray, mask: np.ndarray) -> list:
    out = values.astype(object)
    out[mask] = None
    return out.tolist()


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def _check_grid(grid) -> dict[str, list]:
    if not isinstance(grid, Mapping):
        raise InvalidValue("grid", f"must map argument names to lists of values, got {grid!r}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise InvalidValue(
                str(name),
                f"(a grid axis) must be a list of values to try, e.g. [{values!r}], got {values!r}",
            )
    return {name: list(values) for name, values in grid.items()}


def _check_seeds(seeds) -> np.ndarray:
    """The seeds as an int64 array: integers in the ``seed`` range (None, the course's randomness,
    is one run, not a sweep; ``train.fit(..., seed=None)`` trains it)."""
    wanted = f"must be a list of integer seeds in [0, {settings.MAX_SEED}], e.g. [0, 1]"
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise InvalidValue("seeds", f"{wanted}, got {seeds!r}")
    array = np.asarray(seeds) if len(seeds) else np.zeros(0, np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        shown = [s for s in np.asarray(seeds, dtype=object).ravel() if not _is_integer(s)][:3]
        raise InvalidValue("seeds", f"{wanted}, got {shown or seeds!r} among them")
    bad = (array < 0) | (array > settings.MAX_SEED)
    if bad.any():
        raise InvalidValue("seeds", f"{wanted}, got {array[bad][:3].tolist()} among them")
    return array.astype(np.int64)


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _factory(optimizer) -> tuple[str, OptimizerFactory]:
    if isinstance(optimizer, str):
        if optimizer not in optimizers.OPTIMIZERS:
            names = ", ".join(optimizers.OPTIMIZERS)
            raise InvalidValue("optimizer", f"must be one of {names} or a factory, got {optimizer!r}")
        return optimizer, optimizers.OPTIMIZERS[optimizer]
    if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
        raise InvalidValue(
            "optimizer",
            "must be a name or a factory called with each grid point's keyword arguments (e.g. "
            f"optimizers.adam, or lambda learning_rate: ...), got {optimizer!r}",
        )
    return getattr(optimizer, "__name__", type(optimizer).__name__), optimizer


def _build(factory: OptimizerFactory, name: str, config: dict) -> optax.GradientTransformation:
    try:
        built = factory(**config)
    except TypeError as error:  # a grid key the factory does not take, most often
        raise InvalidValue("grid", f": optimizer {name} cannot be built from {config}: {error}") from None
    if not isinstance(built, optax.GradientTransformation):
        raise InvalidValue(
            "optimizer",
            f"factory {name} must return an optax.GradientTransformation, got {built!r}",
        )
    return built


def available_memory() -> int:
    """Bytes of memory this machine can still give (Linux: MemAvailable), or 8 GiB if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 * 2**30


def check_fits(
    runs: int, *, num_epochs: int, keep_costs: bool, as_rows: bool, memory_budget: int | None = None
) -> None:
    """Refuse, before any training, a grid whose results would not fit in memory.

    A run's results take :data:`RESULT_BYTES` as columns, ``num_epochs`` floats more with
    ``keep_costs``, and about :data:`ROW_BYTES` more as a dict (``as_rows``). The budget is half
    the machine's available memory unless given.

    Raises:
      InvalidValue: naming ``grid``, with the number of runs that would fit.
    """
    budget = memory_budget if memory_budget is not None else available_memory() // 2
    per_run = RESULT_BYTES + (8 * num_epochs if keep_costs else 0) + (ROW_BYTES if as_rows else 0)
    if as_rows and keep_costs:
        per_run += 32 * num_epochs  # a Python float and a list slot per epoch
    fits = budget // per_run
    if runs > fits:
        how = (
            "as dicts with every epoch's cost" if as_rows and keep_costs
            else "as dicts" if as_rows
            else "with every epoch's cost" if keep_costs
            else "as columns"
        )  # fmt: skip
        hint = "; sweep_table keeps them as columns (far less memory)" if as_rows else ""
        raise InvalidValue(
            "grid",
            f"has {runs:,} runs (configurations x seeds), whose results {how} need "
            f"{runs * per_run / 2**30:.1f} GiB, more than the {budget / 2**30:.1f} GiB memory "
            f"budget: at most {fits:,} runs fit{hint}",
        )


# ---------------------------------------------------------------------------------------------
# The grid's numbers, built as arrays
# ---------------------------------------------------------------------------------------------


class _NotVectorised(Exception):
    """The factory did not give per-configuration arrays when called on arrays."""


def grid_numbers(
    factory: OptimizerFactory, name: str, grid: Mapping[str, list]
) -> tuple[list[np.ndarray], train.Structure, optax.GradientTransformation]:
    """The traced numbers of every configuration, stacked (leading axis: configurations in grid
    order), their shared structure, and the first configuration's optimizer.

    The factory is called once per combination of the grid's non-numeric values (a decay's name,
    say), with every numeric axis as an array over the configurations: the hand-rolled optimizers
    compute their numbers elementwise, so a million configurations cost one call. The result is
    checked against the factory called on the first and last configurations alone; a factory that
    does not work on arrays (``if learning_rate > 0.1``, ``float(b1)``) is called once per
    configuration instead.

    Raises:
      InvalidValue: a configuration the factory refuses, or configurations that do not share one
        structure (the numbers vary, the functions must not).
    """
    names, values = list(grid), list(grid.values())
    shape = tuple(len(v) for v in values)
    count = math.prod(shape)
    first = _build(factory, name, {n: v[0] for n, v in zip(names, values, strict=True)})
    if count == 1:
        numbers, structure = train.stack_optimizers([first])
        return numbers, structure, first
    try:
        numbers, structure = _numbers_from_arrays(factory, name, names, values, first)
        last = _build(factory, name, {n: v[-1] for n, v in zip(names, values, strict=True)})
        for at, built in ((0, first), (count - 1, last)):
            alone, _ = train.stack_optimizers([built])
            if not all(np.array_equal(a[at], b[0]) for a, b in zip(numbers, alone, strict=True)):
                raise _NotVectorised
        return numbers, structure, first
    except (_NotVectorised, TypeError, ValueError, ArithmeticError):
        pass
    built = [_build(factory, name, config) for config in grid_points(grid)]
    try:
        numbers, structure = train.stack_optimizers(built)
    except ValueError as error:
        hint = "" if all(train.is_elementwise(b) for b in built) else (
            "; an Optax transformation keeps its hyperparameters in closures, so sweep one "
            "configuration per call"
        )  # fmt: skip
        raise InvalidValue("grid", f": {error}{hint}") from None
    return numbers, structure, first


def _numbers_from_arrays(factory, name, names, values, first):
    shape = tuple(len(v) for v in values)
    numeric = [i for i, v in enumerate(values) if all(_is_real(x) for x in v)]
    fixed = [i for i in range(len(values)) if i not in numeric]
    alone, structure = train.stack_optimizers([first])
    numbers = [np.empty((math.prod(shape), *a.shape[1:]), a.dtype) for a in alone]
    # Each numeric axis's index for every configuration of one combination of the fixed values.
    sub = np.indices([shape[i] for i in numeric]).reshape(len(numeric), -1)
    for combo in itertools.product(*(range(shape[i]) for i in fixed)):
        index = [None] * len(shape)
        for k, i in enumerate(numeric):
            index[i] = sub[k]
        for k, i in enumerate(fixed):
            index[i] = np.full(sub.shape[1], combo[k])
        where = np.ravel_multi_index(index, shape)
        config = {names[i]: np.asarray(values[i])[sub[k]] for k, i in enumerate(numeric)}
        config.update({names[i]: values[i][combo[k]] for k, i in enumerate(fixed)})
        leaves, other = train.split_optimizer(_build(factory, name, config))
        if other != structure:
            raise _NotVectorised
        for target, leaf, one in zip(numbers, leaves, alone, strict=True):
            leaf = np.asarray(leaf).astype(one.dtype)
            if leaf.shape not in (one.shape[1:], (len(where), *one.shape[1:])):
                raise _NotVectorised
            target[where] = leaf
    return numbers, structure


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------


def sweep_table(
    X,
    Y,
    layers_dims: Sequence[int],
    optimizer: str | OptimizerFactory,
    grid: Mapping[str, Sequence[Any]],
    *,
    seeds: Sequence[int] = (0,),
    num_epochs: int = 1000,
    mini_batch_size: int = 64,
    chunk_epochs: int | None = None,
    keep_costs: bool = False,
    devices: Sequence[jax.Device] | None = None,
    on_chunk: ChunkCallback | None = None,
    on_progress: ProgressCallback | None = None,
    block_runs: int | None = None,
    memory_budget: int | None = None,
    as_rows: bool = False,
) -> SweepTable:
    """Train every point of ``grid`` for every seed, block by block; the results as columns.

    Args:
      X, Y: features (n_x, m) and 0/1 labels (1, m), examples as columns.
      layers_dims: layer widths, e.g. ``[2, 5, 2, 1]``.
      optimizer: a name in :data:`optimizers.OPTIMIZERS`, or a factory returning an
        ``optax.GradientTransformation`` from keyword arguments. Every configuration must build
        the same structure (numbers vary, functions do not): a float learning rate in one and a
        schedule in another cannot share a program. An Optax transformation keeps its
        hyperparameters in closures, so it sweeps one configuration (any number of seeds) per
        call; it trains on the parameter tree, exactly as in ``fit``.
      grid: the factory's keyword arguments, each with the values to try; the runs are the
        cartesian product, e.g. ``{"learning_rate": [1e-3, 1e-2], "b1": [0.8, 0.9]}``.
      seeds: JAX seeds (as ``fit``'s ``seed``, integers); every configuration runs with each.
      num_epochs, mini_batch_size: as in :func:`train.fit`.
      chunk_epochs: epochs per compiled call (default up to 1024, fewer for many seeds so a
        chunk's shuffles fit in memory). Results do not depend on it.
      keep_costs: also return every epoch's cost per run (``"costs"``; num_epochs floats a run).
      devices: devices to split the runs over (default: all of ``jax.devices()``).
      on_chunk: called after every chunk of every block with the epochs the block has done and
        the chunk's costs, shape (block seeds, block configurations, chunk), padding included.
        A grid that fits in one block (up to :func:`runs_per_block` runs per device) is one
        block, so the epochs count up once to ``num_epochs``.
      on_progress: called after every chunk of every block with ``(done, total)``: run-epochs
        trained so far and in all (e.g. for a progress bar).
      block_runs: runs per device in one block (default :func:`runs_per_block`). Results do not
        depend on it.
      memory_budget: bytes the results may take (default: half the available memory); a grid
        whose results would not fit is refused before training (:func:`check_fits`).
      as_rows: the caller will make a dict of every run (:meth:`SweepTable.rows`): count them in
        the memory the results take.

    Returns:
      A :class:`SweepTable`.
    """
    name, factory = _factory(optimizer)
    grid = _check_grid(grid)
    seeds = _check_seeds(seeds)
    n_configs = math.prod(len(v) for v in grid.values())
    if n_configs == 0 or len(seeds) == 0:
        raise InvalidValue("grid", "and seeds need at least one configuration and one seed")
    for callback, label in ((on_chunk, "on_chunk"), (on_progress, "on_progress")):
        if callback is not None and not callable(callback):
            raise InvalidValue(label, f"must be a function or None, got {callback!r}")
    train.check_fit_args(
        X, Y, layers_dims, num_epochs=num_epochs, mini_batch_size=mini_batch_size, seed=None,
        chunk_epochs=chunk_epochs,
    )  # fmt: skip
    if block_runs is not None:
        settings.check("block_runs", block_runs)
    check_fits(len(seeds) * n_configs, num_epochs=num_epochs, keep_costs=keep_costs,
               as_rows=as_rows, memory_budget=memory_budget)  # fmt: skip

    devices = list(devices if devices is not None else jax.devices())
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise InvalidValue("devices", f"must be a non-empty list of jax devices, got {devices!r}")
    mesh = Mesh(np.asarray(devices), (AXIS,))
    dtype = jnp.result_type(float)
    XY_host = np.concatenate([np.asarray(X, dtype), np.asarray(Y, dtype)], axis=0)
    m = XY_host.shape[1]

    numbers, structure, first = grid_numbers(factory, name, grid)
    per_device = block_runs or runs_per_block(layers_dims, mini_batch_size, devices[0].platform)
    blocks = plan_blocks(len(seeds), n_configs, len(devices), per_device)
    seeds_per_device = blocks.seeds // len(devices) if blocks.shard_seeds else blocks.seeds
    if chunk_epochs is None:  # a power of two: one program for many epoch counts
        length = _ceil_pow2(min(train.DEFAULT_CHUNK_EPOCHS, num_epochs))
        length = max(1, min(length, _floor_pow2(PERMUTATION_BUDGET // (seeds_per_device * m))))
    else:
        length = min(chunk_epochs, num_epochs)
    program = train.Program(structure, train.layout_of(first), mini_batch_size, length)
    run_block, start, (runs, seed_axis, config_axis, replicated) = _program(
        program, tuple(layers_dims), m, mesh, blocks.shard_seeds
    )

    XY = _global(XY_host, replicated)
    # The whole grid goes to the devices once; a small program cuts each block out of it.
    padded = [n * k for n, k in zip((blocks.seeds, blocks.configs), blocks.counts, strict=True)]
    pad_s, pad_c = (np.minimum(np.arange(p), n - 1) for p, n in zip(padded, (len(seeds), n_configs), strict=True))
    everything = _global(
        (seeds.astype(np.uint32)[pad_s], (pad_c.astype(np.int32), [x[pad_c] for x in numbers])),
        replicated,
    )  # fmt: skip
    cut = _cutter(mesh, blocks)
    n_seeds, total = len(seeds), len(seeds) * n_configs * num_epochs
    final_cost = np.empty((n_seeds, n_configs), dtype)
    diverged_at = np.empty((n_seeds, n_configs), np.int64)
    correct = np.empty((n_seeds, n_configs), np.int64)
    history = np.empty((n_seeds, n_configs, num_epochs), dtype) if keep_costs else None
    done = 0

    def retire(chunk: _Chunk) -> None:
        """Read back a finished chunk (the next one is already queued: no idle device)."""
        nonlocal done
        s, c, (first, n) = chunk.seeds, chunk.configs, chunk.epochs
        height, width = s.stop - s.start, c.stop - c.start
        if history is not None:
            history[s, c, first : first + n] = _host(chunk.costs)[:height, :width, :n]
        if chunk.results is not None:
            for target, result in zip((final_cost, diverged_at, correct), chunk.results, strict=True):
                target[s, c] = _host(result)[:height, :width]
        done += height * width * n
        if on_chunk is not None:
            on_chunk(first + n, chunk.costs.block_until_ready())
        if on_progress is not None:
            chunk.costs.block_until_ready()
            on_progress(done, total)

    state, queue = None, collections.deque()
    for b_seed, b_config in itertools.product(*(range(c) for c in blocks.counts)):
        at = (b_seed * blocks.seeds, b_config * blocks.configs)
        block_seeds, block_configs = cut(*everything, at)
        if state is None:
            state = _empty_state(start, block_configs, block_seeds, runs)
        seed_rows = slice(at[0], min(at[0] + blocks.seeds, n_seeds))
        config_rows = slice(at[1], min(at[1] + blocks.configs, n_configs))
        epoch = 0
        while epoch < num_epochs:
            n = min(length, num_epochs - epoch)
            last = epoch + n == num_epochs
            state, costs, results = run_block(state, block_configs, block_seeds, XY, (epoch, n), last)
            queue.append(_Chunk(seed_rows, config_rows, (epoch, n), costs, results if last else None))
            if len(queue) > 1:
                retire(queue.popleft())
            epoch += n
    while queue:
        retire(queue.popleft())

    diverged = diverged_at >= 0
    accuracy = np.where(diverged, np.nan, correct / m)
    final_cost = np.where(diverged, np.nan, final_cost)

    def by_run(a):  # (seeds, configs, ...) -> runs in grid order, seeds fastest
        return np.swapaxes(a, 0, 1).reshape(n_seeds * n_configs, *a.shape[2:])

    if history is not None:
        with np.errstate(invalid="ignore"):
            history = np.where(np.isfinite(history), history, np.nan)
    return SweepTable(
        optimizer=name,
        grid=grid,
        seeds=seeds,
        diverged_at_epoch=by_run(diverged_at),
        final_cost=by_run(final_cost),
        accuracy=by_run(accuracy),
        costs=None if history is None else by_run(history),
    )




def sweep(
    X, Y, layers_dims: Sequence[int], optimizer: str | OptimizerFactory,
    grid: Mapping[str, Sequence[Any]], **options,
) -> list[dict[str, Any]]:
    """Train every point of ``grid`` for every seed, as one sharded, vmapped program; one dict a run.

    Row ``(config, seed)`` is the run ``train.fit(X, Y, layers_dims, factory(**config),
    seed=seed, ...)`` to float tolerance: the same epoch loop (:func:`train.run_chunk`), the same
    initial parameters and the same shuffles. A run that diverges is not an error here: its row
    says at which epoch (``diverged_at_epoch``) and has no ``final_cost`` or ``accuracy`` (None),
    so rows stay valid JSON and no diverged run can rank as the best. For large grids use
    :func:`sweep_table` (the same runs, results as arrays: a dict per run costs ~0.7 KB).

    Args:
      X, Y, layers_dims, optimizer, grid: as in :func:`sweep_table`.
      **options: ``seeds``, ``num_epochs``, ``mini_batch_size``, ``chunk_epochs``,
        ``keep_costs``, ``devices``, ``on_chunk`` (and the rest) of :func:`sweep_table`.

    Returns:
      One dict per run, configurations in grid order with seeds fastest: ``{"optimizer",
      **config, "seed", "diverged_at_epoch", "final_cost", "accuracy"}`` (plus ``"costs"`` with
      ``keep_costs``, None for a non-finite epoch), where ``diverged_at_epoch`` is the first epoch
      whose cost is not finite (None if none), ``final_cost`` the last epoch's cost and
      ``accuracy`` ``float(np.mean(pred == Y))``; both None for a diverged run.

    Raises:
      InvalidValue: an argument is invalid (a ``ValueError`` naming it), the configurations do
        not share one structure, or the rows would not fit in memory (refused before training).

    Example:
      >>> from jaxopt_lab import data
      >>> X, Y = data.load_moons()
      >>> rows = sweep(X, Y, [2, 5, 2, 1], "adam", {"learning_rate": [0.001, 0.01]},
      ...              seeds=[0, 1], num_epochs=10)
      >>> [(r["learning_rate"], r["seed"]) for r in rows]
      [(0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)]
    """
    return sweep_table(X, Y, layers_dims, optimizer, grid, as_rows=True, **options).rows()

