"""The engine of many runs: a grid of configurations x seeds trained as one compiled program per
structure, block by block (:mod:`jaxopt_lab.blocks`), with one result (:class:`RunTable`).

Everything the experiments share lives here once: the memory rule (:func:`check_fits`), the seed
check (:func:`check_seeds`), progress as a running total of run-epochs (``on_progress(done,
total)``), stops at every chunk boundary (:func:`runtime.deferred_stops`), the peers of a
multi-process run (:func:`distributed.check_peers`) and worker threads in the caller's precision
(:func:`in_threads`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxopt_lab import blocks, distributed, grids, runtime, settings, targets, train
from jaxopt_lab.settings import InvalidValue
from jaxopt_lab.table import Measured, RunTable

ROW_BYTES = 700  # a run as a Python dict (a dozen keys, their values and the list's pointer), measured
RESULT_BYTES = 16  # a run's results as columns: final cost, accuracy (float64), diverged epoch
PEER_CHECK_SECONDS = 0.5  # a multi-process run asks after its peers at most this often
WAIT_SECONDS = 0.05  # the calling thread looks for a stop this often while workers train

ChunkCallback = Callable[[int, jax.Array], None]
ProgressCallback = Callable[[int, int], None]


class Job(NamedTuple):
    """One program structure of a grid: an optimizer (a name in :data:`optimizers.OPTIMIZERS` or
    a factory of keyword arguments) and the candidate values of those arguments."""

    optimizer: str | grids.OptimizerFactory
    grid: Mapping[str, Sequence[Any]]


# ---------------------------------------------------------------------------------------------
# The memory rule and the seed check
# ---------------------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of memory this machine can still give (Linux: MemAvailable), or 8 GiB if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 * 2**30


def budget_bytes(given: int | None = None) -> int:
    """The bytes many runs' results may take: ``given``, or half the available memory."""
    return given if given is not None else available_memory() // 2


def run_bytes(num_epochs: int, *, keep_costs: bool, as_rows: bool) -> int:
    """One run's results: :data:`RESULT_BYTES` as columns, ``num_epochs`` floats more with
    ``keep_costs``, :data:`ROW_BYTES` more as a dict (and a float and a list slot per epoch's
    cost there)."""
    per_run = RESULT_BYTES + (8 * num_epochs if keep_costs else 0) + (ROW_BYTES if as_rows else 0)
    return per_run + (32 * num_epochs if as_rows and keep_costs else 0)


def runs_that_fit(
    num_epochs: int, *, keep_costs: bool, as_rows: bool, memory_budget: int | None = None
) -> int:
    """How many runs' results the memory budget holds (:func:`run_bytes` each)."""
    per_run = run_bytes(num_epochs, keep_costs=keep_costs, as_rows=as_rows)
    return budget_bytes(memory_budget) // per_run


def check_fits(
    runs: int, *, num_epochs: int, keep_costs: bool, as_rows: bool, memory_budget: int | None = None
) -> None:
    """Refuse, before any training, runs whose results would not fit in the memory budget.

    Raises:
      InvalidValue: naming ``grid``, with the number of runs that would fit.
    """
    budget = budget_bytes(memory_budget)
    per_run = run_bytes(num_epochs, keep_costs=keep_costs, as_rows=as_rows)
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


def check_seeds(seeds, *, most: int | None = None, distinct: bool = False) -> np.ndarray:
    """The seeds as an int64 array: a sequence (e.g. ``range(100)``) of at least one integer in
    the ``seed`` range, at most ``most`` of them (checked before any seed is read), none repeated
    with ``distinct``. None, the course's randomness, is one run (``train.fit(seed=None)``),
    not a seed of many.

    Raises:
      InvalidValue: naming ``seeds``.
    """

    def refuse(reason: str, setting: str = "seed_count"):
        raise InvalidValue("seeds", reason, setting=setting)

    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        refuse(f"must be a sequence of seeds such as range(100), got {seeds!r}")
    if len(seeds) == 0:
        refuse("must hold at least one seed")
    if most is not None and len(seeds) > most:  # before reading a seed: range(10**12) is refused
        refuse(f"{len(seeds)} is more seeds than fit the memory budget: at most {most} here")
    array = np.asarray(seeds)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        flat = np.asarray(seeds, dtype=object).ravel()
        odd = next((s for s in flat if not isinstance(s, (int, np.integer))
                    or isinstance(s, (bool, np.bool_))), flat[0])  # fmt: skip
        if odd is None:
            refuse("must be integer seeds: None (the course's randomness) is one run, trained by "
                   "train.fit(seed=None)", "seed")  # fmt: skip
        settings.check("seed", odd, name="seeds")
        refuse(f"must be integer seeds, got {odd!r} among them", "seed")
    bad = (array < 0) | (array > settings.MAX_SEED)
    if bad.any():
        settings.check("seed", int(array[bad][0]), name="seeds")
    if distinct and len(np.unique(array)) != len(array):
        refuse("must not repeat a seed (it would count twice)")
    return array.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Progress, stops and peers; threads
# ---------------------------------------------------------------------------------------------


class Progress:
    """Run-epochs done so far, from every thread: each :meth:`add` reports the running total to
    ``on_progress(done, total)``, asks after the peers of a multi-process run (at most every
    :data:`PEER_CHECK_SECONDS`) and honours a stop (:class:`runtime.Stopped`)."""

    def __init__(self, total: int, on_progress: ProgressCallback | None, stops):
        self.total, self.done, self._on_progress, self.stops = total, 0, on_progress, stops
        self._lock, self._checked = threading.Lock(), -math.inf

    def add(self, run_epochs: int, state=None) -> None:
        with self._lock:
            self.done += run_epochs
            if self._on_progress is not None:
                self._on_progress(self.done, self.total)
            if time.monotonic() - self._checked > PEER_CHECK_SECONDS:
                distributed.check_peers()  # a lost peer ends this process too
                self._checked = time.monotonic()
        self.stops.check(state)


@contextlib.contextmanager
def tracking(total: int, on_progress: ProgressCallback | None = None) -> Iterator[Progress]:
    """A :class:`Progress` of ``total`` run-epochs for the block; signals become stops at the
    next chunk boundary."""
    if on_progress is not None and not callable(on_progress):
        raise InvalidValue("on_progress", f"must be a function or None, got {on_progress!r}")
    with runtime.deferred_stops() as stops:
        yield Progress(total, on_progress, stops)


def in_threads(
    work: Callable, items: Sequence, stops: runtime.StopRequests | None = None
) -> list:
    """``work(item)`` for every item, two at a time in worker threads in the caller's precision
    (XLA releases the GIL: one compiles while the other trains); results in order. On a failure
    the items not started yet are not started at all.

    The calling thread only waits, :data:`WAIT_SECONDS` at a time, so that a signal reaches it
    whatever the workers do: with ``stops`` (the block's :class:`runtime.StopRequests`) a stop
    raises :class:`runtime.Stopped`, and the workers end at their next chunk boundary. A command
    (:data:`runtime.ENDS_ON_STOP`) does not wait for them: its process ends within that time,
    during an XLA compile as during a chunk. A library call waits, and leaves no thread behind."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    futures = [pool.submit(runtime.in_this_precision(work), item) for item in items]
    pending, stopped = set(futures), False
    try:
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=WAIT_SECONDS, return_when=concurrent.futures.FIRST_EXCEPTION
            )
            for future in done:
                future.result()  # the first failure, as it was raised
            if stops is not None and stops.requested:
                stopped = True
                stops.check()
        return [future.result() for future in futures]
    except runtime.Stopped:
        stopped = True
        raise
    finally:
        pool.shutdown(wait=not (stopped and runtime.ENDS_ON_STOP.is_set()), cancel_futures=True)


def from_deltas(on_epochs: Callable[[int], None] | None) -> ProgressCallback | None:
    """An ``on_progress(done, total)`` that hands ``on_epochs`` the run-epochs done since its
    last call (the older callback of the experiments)."""
    if on_epochs is None:
        return None
    reported = 0

    def on_progress(done: int, total: int) -> None:
        nonlocal reported
        on_epochs(done - reported)
        reported = done

    return on_progress


def shifted(on_progress: ProgressCallback | None, before: int, total: int) -> ProgressCallback | None:
    """``on_progress`` for one part of a larger piece of work: ``(done, _)`` of the part is
    reported as ``(before + done, total)``, one running total over the parts."""
    if on_progress is None:
        return None

    def part(done: int, _: int) -> None:
        on_progress(before + done, total)

    return part


# ---------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------


def train_grid(
    X,
    Y,
    layers_dims: Sequence[int],
    jobs: Sequence[Job | tuple],
    *,
    seeds: Sequence[int] = (0,),
    num_epochs: int = 1000,
    mini_batch_size: int = 64,
    chunk_epochs: int | None = None,
    keep_costs: bool = False,
    devices: Sequence[jax.Device] | None = None,
    on_progress: ProgressCallback | None = None,
    on_chunk: ChunkCallback | None = None,
    block_runs: int | None = None,
    memory_budget: int | None = None,
    as_rows: bool = False,
    target_accuracy: float | None = None,
) -> RunTable:
    """Train every job's grid for every seed; one :class:`RunTable`, the jobs' runs in order.

    Each job is one program structure (its configurations differ in numbers only); several jobs
    train two at a time in threads. Row ``(config, seed)`` is ``train.fit(X, Y, layers_dims,
    factory(**config), seed=seed, ...)`` to float tolerance.

    Args:
      X, Y: features (n_x, m) and 0/1 labels (1, m), examples as columns.
      layers_dims: layer widths, e.g. ``[2, 5, 2, 1]``.
      jobs: :class:`Job` ``(optimizer, grid)`` pairs; every job's grid has the same axes.
      seeds: JAX seeds (integers); every configuration runs with each.
      num_epochs, mini_batch_size: as in :func:`train.fit`.
      chunk_epochs: epochs per compiled call (default: up to 1024, fewer for a large block, at
        most :data:`blocks.CHUNK_RUN_EPOCHS` run-epochs per device). Results do not depend on it.
      keep_costs: also keep every epoch's cost per run.
      devices: devices to split the runs over (default: all of ``jax.devices()``).
      on_progress: called after every chunk of every block of every job with ``(done, total)``:
        run-epochs trained so far and in all; ``done`` reaches ``total`` once, at the end.
      on_chunk: called after every chunk of every block with the epochs the block has done and
        the chunk's costs, shape (block seeds, block configurations, chunk), padding included.
      block_runs: runs per device in one block (default :func:`blocks.runs_per_block`).
      memory_budget: bytes the results may take (default: :func:`budget_bytes`); runs whose
        results would not fit are refused before training (:func:`check_fits`).
      as_rows: the caller will make a dict of every run: count them in the memory.
      target_accuracy: keep each run's first epoch at this accuracy (``RunTable.target_epoch``).

    Raises:
      InvalidValue: an invalid argument (named), configurations of one job that do not share a
        structure, or results that would not fit in memory.
      runtime.Stopped: a signal stopped the runs at a chunk boundary.
      distributed.DistributedError: a peer process was lost.
    """
    jobs = [Job(*job) for job in jobs]
    checked = [(grids.factory_of(job.optimizer), grids.check_grid(job.grid)) for job in jobs]
    seeds = check_seeds(seeds)
    n_configs = sum(math.prod(len(v) for v in grid.values()) for _, grid in checked)
    if n_configs == 0:
        raise InvalidValue("grid", "needs at least one configuration")
    if on_chunk is not None and not callable(on_chunk):
        raise InvalidValue("on_chunk", f"must be a function or None, got {on_chunk!r}")
    train.check_fit_args(
        X, Y, layers_dims, num_epochs=num_epochs, mini_batch_size=mini_batch_size, seed=None,
        chunk_epochs=chunk_epochs,
    )  # fmt: skip
    if block_runs is not None:
        settings.check("block_runs", block_runs)
    need = targets.correct_needed(target_accuracy, X.shape[1])  # checked; None: no target
    check_fits(len(seeds) * n_configs, num_epochs=num_epochs, keep_costs=keep_costs,
               as_rows=as_rows, memory_budget=memory_budget)  # fmt: skip
    devices = list(devices if devices is not None else jax.devices())
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise InvalidValue("devices", f"must be a non-empty list of jax devices, got {devices!r}")
    plan = _Plan(tuple(layers_dims), num_epochs, mini_batch_size, chunk_epochs, keep_costs,
                 Mesh(np.asarray(devices), (blocks.AXIS,)), block_runs, need)  # fmt: skip
    with tracking(len(seeds) * n_configs * num_epochs, on_progress) as progress:

        def train_job(job) -> RunTable:
            (name, factory), grid = job
            return _train_structure(plan, X, Y, name, factory, grid, seeds, progress, on_chunk)

        return RunTable.join(in_threads(train_job, checked, progress.stops))


class _Plan(NamedTuple):
    """What every job of a :func:`train_grid` call shares."""

    layers: tuple
    num_epochs: int
    mini_batch_size: int
    chunk_epochs: int | None
    keep_costs: bool
    mesh: Mesh
    block_runs: int | None
    need: int | None  # correct predictions that reach the target accuracy; None: not measured


def _chunk_length(plan: _Plan, runs_per_device: int) -> int:
    """Epochs per compiled call: a power of two up to :data:`train.DEFAULT_CHUNK_EPOCHS` (one
    program serves many epoch counts), at most :data:`blocks.CHUNK_RUN_EPOCHS` run-epochs per
    device, so that progress, stops and lost peers are seen every fraction of a second however
    many runs a block holds."""
    if plan.chunk_epochs is not None:
        return min(plan.chunk_epochs, plan.num_epochs)
    length = blocks.ceil_pow2(min(train.DEFAULT_CHUNK_EPOCHS, plan.num_epochs))
    return max(1, min(length, blocks.floor_pow2(blocks.CHUNK_RUN_EPOCHS // runs_per_device)))


def _train_structure(plan: _Plan, X, Y, name, factory, grid, seeds, progress, on_chunk) -> RunTable:
    """One job: its grid's numbers, the block program, the blocks trained, the outcomes."""
    devices = list(plan.mesh.devices.flat)
    dtype = jnp.result_type(float)
    XY_host = np.concatenate([np.asarray(X, dtype), np.asarray(Y, dtype)], axis=0)
    numbers, structure, first = grids.grid_numbers(factory, name, grid)
    n_seeds, n_configs = len(seeds), math.prod(len(v) for v in grid.values())
    per_device = plan.block_runs or blocks.runs_per_block(plan.layers, plan.mini_batch_size,
                                                          devices[0].platform)  # fmt: skip
    cut = blocks.plan_blocks(n_seeds, n_configs, len(devices), per_device)
    length = _chunk_length(plan, cut.seeds * cut.configs // len(devices))
    program = train.Program(structure, train.layout_of(first), plan.mini_batch_size, length)
    compiled = blocks.block_program(program, plan.layers, plan.mesh, cut.shard_seeds,
                                    plan.need is not None)  # fmt: skip
    measured = _run_blocks(plan, compiled, cut, XY_host, (seeds, n_configs, numbers), length,
                           progress, on_chunk)  # fmt: skip

    def by_run(a):  # (seeds, configs, ...) -> runs in grid order, seeds fastest
        return np.swapaxes(a, 0, 1).reshape(n_seeds * n_configs, *a.shape[2:])

    costs = measured.costs
    if costs is not None:
        with np.errstate(invalid="ignore"):
            costs = by_run(np.where(np.isfinite(costs), costs, np.nan))
    measured = measured._replace(
        final_cost=by_run(measured.final_cost), diverged_at=by_run(measured.diverged_at),
        correct=by_run(measured.correct), costs=costs,
    )  # fmt: skip
    reached = None if measured.reached_at is None else by_run(measured.reached_at)
    return RunTable(name, grid, seeds, costs, target_epoch=reached, **RunTable.measure(measured))


def _run_blocks(plan, compiled, cut, XY_host, grid, length, progress, on_chunk):
    """Every block's chunks, each queued before the previous one is read back (no idle device);
    what was measured of every run, shape (seeds, configs, ...)."""
    run_block, start, (runs, _, _, replicated) = compiled
    seeds, n_configs, numbers = grid  # the seeds, the number of configurations, their numbers
    n_seeds, num_epochs = len(seeds), plan.num_epochs
    dtype = XY_host.dtype
    XY = blocks.on_mesh(XY_host, replicated)
    # The whole grid goes to the devices once; a small program cuts each block out of it.
    padded = [n * k for n, k in zip((cut.seeds, cut.configs), cut.counts, strict=True)]
    pad_s, pad_c = (np.minimum(np.arange(p), n - 1) for p, n in zip(padded, (n_seeds, n_configs), strict=True))
    everything = blocks.on_mesh(
        (seeds.astype(np.uint32)[pad_s], (pad_c.astype(np.int32), [x[pad_c] for x in numbers])),
        replicated,
    )  # fmt: skip
    cut_block = blocks.cutter(plan.mesh, cut)
    final_cost = np.empty((n_seeds, n_configs), dtype)
    diverged_at = np.empty((n_seeds, n_configs), np.int64)
    correct = np.empty((n_seeds, n_configs), np.int64)
    history = np.empty((n_seeds, n_configs, num_epochs), dtype) if plan.keep_costs else None
    measures = (final_cost, diverged_at, correct)
    extra = ()
    if plan.need is not None:  # and the first epoch at the target accuracy, a traced number
        measures += (np.empty((n_seeds, n_configs), np.int64),)
        extra = (blocks.on_mesh(np.int32(plan.need), replicated),)

    def retire(chunk: blocks.Chunk) -> None:
        """Read back a finished chunk (the next one is already queued)."""
        s, c, (first, n) = chunk.seeds, chunk.configs, chunk.epochs
        height, width = s.stop - s.start, c.stop - c.start
        if history is not None:
            history[s, c, first : first + n] = blocks.to_host(chunk.costs)[:height, :width, :n]
        if chunk.results is not None:
            for target, result in zip(measures, chunk.results, strict=True):
                target[s, c] = blocks.to_host(result)[:height, :width]
        chunk.costs.block_until_ready()
        if on_chunk is not None:
            on_chunk(first + n, chunk.costs)
        progress.add(height * width * n)

    state, queue = None, collections.deque()
    for b_seed, b_config in itertools.product(*(range(c) for c in cut.counts)):
        at = (b_seed * cut.seeds, b_config * cut.configs)
        block_seeds, block_configs = cut_block(*everything, at)
        if state is None:
            state = blocks.empty_state(start, block_configs, block_seeds, runs)
        seed_rows = slice(at[0], min(at[0] + cut.seeds, n_seeds))
        config_rows = slice(at[1], min(at[1] + cut.configs, n_configs))
        epoch = 0
        while epoch < num_epochs:
            n = min(length, num_epochs - epoch)
            last = epoch + n == num_epochs
            state, costs, results = run_block(state, block_configs, block_seeds, XY, (epoch, n), last,
                                              *extra)  # fmt: skip
            queue.append(blocks.Chunk(seed_rows, config_rows, (epoch, n), costs, results if last else None))
            if len(queue) > 1:
                retire(queue.popleft())
            epoch += n
    while queue:
        retire(queue.popleft())
    return Measured(final_cost, diverged_at, correct, XY_host.shape[1], history, *measures[3:])
