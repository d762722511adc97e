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
factory on arrays (:func:`grids.grid_numbers`), initial states are made inside the block's
program, and results come back as arrays (:class:`SweepTable`); rows as dicts are made only when
asked for. The work is :func:`engine.train_grid`'s; this module is its one-optimizer face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxopt_lab import engine
from jaxopt_lab.blocks import (  # noqa: F401  (their names here before blocks.py existed)
    ACCELERATOR_BLOCK,
    AXIS,
    CACHE_BYTES,
    Blocks,
    plan_blocks,
    runs_per_block,
)
from jaxopt_lab.engine import (  # noqa: F401
    RESULT_BYTES,
    ROW_BYTES,
    ChunkCallback,
    ProgressCallback,
    available_memory,
    check_fits,
)
from jaxopt_lab.grids import OptimizerFactory, grid_numbers, grid_points  # noqa: F401
from jaxopt_lab.table import RunTable

SweepTable = RunTable  # a sweep's results: the one result type of many runs


def sweep_table(
    X, Y, layers_dims: Sequence[int], optimizer: str | OptimizerFactory,
    grid: Mapping[str, Sequence[Any]], **options,
) -> SweepTable:
    """Train every point of ``grid`` for every seed, block by block; the results as columns
    (:func:`engine.train_grid` of one job).

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
      **options: :func:`engine.train_grid`'s ``seeds`` (default ``(0,)``), ``num_epochs``
        (1000), ``mini_batch_size``, ``chunk_epochs``, ``keep_costs``, ``devices``,
        ``on_chunk``, ``on_progress`` (``(done, total)`` run-epochs), ``block_runs``,
        ``memory_budget`` (default: half the available memory, :func:`check_fits`) and
        ``as_rows``. Results do not depend on the chunk or block sizes.

    Returns:
      A :class:`SweepTable`.
    """
    return engine.train_grid(X, Y, layers_dims, [(optimizer, grid)], **options)


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

