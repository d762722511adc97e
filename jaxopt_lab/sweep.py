"""Grids of training runs as one program: :func:`train.run_chunk` vmapped over configurations.

A sweep trains every (hyperparameters, seed) pair of a grid at once. The runs are laid out as a
``(seeds, hyperparameters)`` array of configurations: the outer ``vmap`` is over seeds (each seed
has its own initial parameters and epoch shuffles), the inner one over hyperparameter settings
that share those shuffles, so one epoch's mini-batches are gathered once per seed, not once per
run. The larger of the two axes is split across a :class:`jax.sharding.Mesh` of all devices.
Epochs run in chunks, as in :func:`train.fit`, so memory does not grow with the number of epochs.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxopt_lab import model, optimizers, train

AXIS = "configs"  # the mesh axis the configurations are split over
PERMUTATION_BUDGET = 2**24  # int32 entries of a chunk's shuffles per device (64 MiB)

OptimizerFactory = Callable[..., optax.GradientTransformation]


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of a grid, last key fastest: ``{"a": [1, 2], "b": [3]}`` ->
    ``[{"a": 1, "b": 3}, {"a": 2, "b": 3}]``."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def _check_grid(grid) -> None:
    if not isinstance(grid, Mapping):
        raise ValueError(f"grid must map argument names to lists of values, got {grid!r}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise ValueError(
                f"grid[{name!r}] must be a list of values to try, e.g. [{values!r}], got {values!r}"
            )


def _check_seeds(seeds) -> list:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise ValueError(f"seeds must be a list of integer seeds, e.g. [0, 1], got {seeds!r}")
    return list(seeds)


def _factory(optimizer) -> tuple[str, OptimizerFactory]:
    if isinstance(optimizer, str):
        if optimizer not in optimizers.OPTIMIZERS:
            names = ", ".join(optimizers.OPTIMIZERS)
            raise ValueError(f"optimizer must be one of {names} or a factory, got {optimizer!r}")
        return optimizer, optimizers.OPTIMIZERS[optimizer]
    if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
        raise ValueError(
            "optimizer must be a name or a factory called with each grid point's keyword "
            f"arguments (e.g. optimizers.adam, or lambda learning_rate: ...), got {optimizer!r}"
        )
    return getattr(optimizer, "__name__", type(optimizer).__name__), optimizer


def _build(factory: OptimizerFactory, name: str, config: dict) -> optax.GradientTransformation:
    try:
        built = factory(**config)
    except TypeError as error:  # a grid key the factory does not take, most often
        raise ValueError(f"grid: optimizer {name} cannot be built from {config}: {error}") from None
    if not isinstance(built, optax.GradientTransformation):
        raise ValueError(
            f"optimizer factory {name} must return an optax.GradientTransformation, got {built!r}"
        )
    return built


def _first_bad_epoch(diverged_at, costs, first_epoch, n_epochs):
    """Carry each run's first non-finite epoch (-1: none yet) over one chunk's costs."""
    bad = ~jnp.isfinite(costs) & (jnp.arange(costs.shape[-1]) < n_epochs)
    found = jnp.where(jnp.any(bad, axis=-1), first_epoch + jnp.argmax(bad, axis=-1), -1)
    return jnp.where(diverged_at < 0, found, diverged_at)


def _pad(values: Sequence, multiple: int) -> list:
    """Repeat the last value so the length is a multiple of ``multiple`` (rows dropped later)."""
    values = list(values)
    return values + values[-1:] * (-len(values) % multiple)


def _global(tree, sharding: NamedSharding):
    """Place host values on the mesh. Every process holds the same full values (they follow from
    the grid and seeds), and each hands over only its own devices' rows, so this also works when
    the mesh spans several processes (``jax.distributed``)."""

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def _host(x: jax.Array) -> np.ndarray:
    """A sharded result as one NumPy array on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _initial_states(layers_dims, seeds, settings, numbers, structure):
    """``fit``'s starting point of every run, shape (seeds, settings, ...).

    Parameters depend on the seed only. The optimizer's initial state is taken from the first
    setting and shared by all (the lesson's optimizers start from zeros and a zero count, whatever
    their hyperparameters). The programs are ``fit``'s own start; the stacking is on the host,
    where it compiles nothing.
    """
    first = train.join_optimizer([n[0, 0] for n in numbers], structure)
    states = [train.init_state(list(layers_dims), first, seed) for seed in seeds]
    return jax.tree.map(
        lambda *leaves: np.repeat(np.stack([np.asarray(x) for x in leaves])[:, None], settings, 1),
        *[(state.params, state.opt_state) for state in states],
    )


@functools.cache
def _programs(program: train.Program, m: int, mesh: Mesh, shard_seeds: bool):
    """The jitted chunk and accuracy programs of one sweep shape, cached across calls."""
    spec = PartitionSpec(AXIS) if shard_seeds else PartitionSpec(None, AXIS)
    runs = NamedSharding(mesh, spec)  # arrays with leading (seeds, hyperparameters) axes
    seeds_only = NamedSharding(mesh, PartitionSpec(AXIS) if shard_seeds else PartitionSpec())
    replicated = NamedSharding(mesh, PartitionSpec())
    options = train.compiler_options(mesh.devices.flat[0].platform)

    # The inner vmap shares the seed's shuffles (perms) across its hyperparameter settings.
    run_settings = jax.vmap(
        functools.partial(train.run_chunk, program), in_axes=(0, 0, None, None, None)
    )

    def chunk_one_seed(carry, numbers, XY, key, epochs):
        perms = train.seed_orders(key, epochs[0], length=program.length, m=m)
        return run_settings(carry, numbers, XY, perms, epochs)

    chunk_seeds = jax.vmap(chunk_one_seed, in_axes=(0, 0, None, 0, None))

    def chunk_all(carry, numbers, XY, keys, epochs, diverged_at):
        # Each run's first non-finite epoch is carried inside the program: on the devices, with
        # no gather per chunk and no program of its own to compile.
        carry, costs = chunk_seeds(carry, numbers, XY, keys, epochs)
        return carry, costs, _first_bad_epoch(diverged_at, costs, *epochs)

    chunk = jax.jit(
        chunk_all,
        in_shardings=(runs, runs, replicated, seeds_only, replicated, runs),
        out_shardings=runs, donate_argnums=(0, 5), compiler_options=options,
    )  # fmt: skip

    predict = jax.jit(
        jax.vmap(jax.vmap(model.predict, in_axes=(0, None)), in_axes=(0, None)),
        in_shardings=(runs, replicated), out_shardings=runs, compiler_options=options,
    )  # fmt: skip
    return chunk, predict, (runs, seeds_only, replicated)


def sweep(
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
    on_chunk: Callable[[int, jax.Array], None] | None = None,
) -> list[dict[str, Any]]:
    """Train every point of ``grid`` for every seed, as one sharded, vmapped program.

    Row ``(config, seed)`` is the run ``train.fit(X, Y, layers_dims, factory(**config),
    seed=seed, ...)`` to float tolerance: the same epoch loop (:func:`train.run_chunk`), the same
    initial parameters and the same shuffles. A run that diverges is not an error here: its row
    says at which epoch (``diverged_at_epoch``) and has no ``final_cost`` or ``accuracy`` (None),
    so rows stay valid JSON and no diverged run can rank as the best.

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
      seeds: JAX seeds (as ``fit``'s ``seed``); every configuration runs with each.
      num_epochs, mini_batch_size: as in :func:`train.fit`.
      chunk_epochs: epochs per compiled call (default up to 1000, fewer for many seeds so a
        chunk's shuffles fit in memory). Results do not depend on it.
      keep_costs: also return every epoch's cost per run (``"costs"``; num_epochs floats a run).
      devices: devices to split the runs over (default: all of ``jax.devices()``).
      on_chunk: called after every chunk with the epochs done so far and the chunk's costs,
        shape (seeds, configurations, chunk), padding included (e.g. for a progress bar).

    Returns:
      One dict per run, configurations in grid order with seeds fastest: ``{"optimizer",
      **config, "seed", "diverged_at_epoch", "final_cost", "accuracy"}`` (plus ``"costs"`` with
      ``keep_costs``, None for a non-finite epoch), where ``diverged_at_epoch`` is the first epoch
      whose cost is not finite (None if none), ``final_cost`` the last epoch's cost and
      ``accuracy`` ``float(np.mean(pred == Y))``; both None for a diverged run.

    Raises:
      ValueError: an argument is invalid (the message names it), or the configurations do not
        share one structure.

    Example:
      >>> from jaxopt_lab import data
      >>> X, Y = data.load_moons()
      >>> rows = sweep(X, Y, [2, 5, 2, 1], "adam", {"learning_rate": [0.001, 0.01]},
      ...              seeds=[0, 1], num_epochs=10)
      >>> [(r["learning_rate"], r["seed"]) for r in rows]
      [(0.001, 0), (0.001, 1), (0.01, 0), (0.01, 1)]
    """
    name, factory = _factory(optimizer)
    _check_grid(grid)
    configs, seeds = grid_points(grid), _check_seeds(seeds)
    if not configs or not seeds:
        raise ValueError("a sweep needs at least one configuration (grid) and one seed (seeds)")
    if on_chunk is not None and not callable(on_chunk):
        raise ValueError(f"on_chunk must be a function or None, got {on_chunk!r}")
    for seed in seeds:
        train.check_fit_args(
            X, Y, layers_dims, num_epochs=num_epochs, mini_batch_size=mini_batch_size, seed=seed,
            chunk_epochs=chunk_epochs,
        )  # fmt: skip

    devices = list(devices if devices is not None else jax.devices())
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(f"devices must be a non-empty list of jax devices, got {devices!r}")
    mesh = Mesh(np.asarray(devices), (AXIS,))
    # Split the longer axis: a seed-only sweep shards seeds, a grid over one seed its settings.
    shard_seeds = len(seeds) > len(configs)
    padded_seeds = _pad(seeds, len(devices)) if shard_seeds else seeds
    padded_configs = configs if shard_seeds else _pad(configs, len(devices))

    dtype = jnp.result_type(float)
    XY_host = np.concatenate([np.asarray(X), np.asarray(Y)], axis=0).astype(dtype)
    m = XY_host.shape[1]
    # Padding repeats the last optimizer object, not its config: a second call of an Optax
    # factory makes new closures, which could not share the program with the first.
    built = [_build(factory, name, config) for config in configs]
    try:
        numbers, structure = train.stack_optimizers(_pad(built, len(padded_configs)))
    except ValueError as error:
        if all(train.is_elementwise(b) for b in built):
            raise
        raise ValueError(
            f"{error}; an Optax transformation keeps its hyperparameters in closures, so sweep "
            "one configuration per call"
        ) from None
    # (hyperparameters,) -> (seeds, hyperparameters): every seed runs every setting.
    numbers = [np.broadcast_to(n, (len(padded_seeds), *n.shape)) for n in numbers]

    seeds_per_device = len(padded_seeds) // len(devices) if shard_seeds else len(padded_seeds)
    length = min(chunk_epochs or train.DEFAULT_CHUNK_EPOCHS, num_epochs)
    if chunk_epochs is None:
        length = max(1, min(length, PERMUTATION_BUDGET // (seeds_per_device * m)))
    program = train.Program(structure, train.layout_of(built[0]), mini_batch_size, length)
    chunk, predict, (runs, seeds_only, replicated) = _programs(program, m, mesh, shard_seeds)

    carry = _initial_states(layers_dims, padded_seeds, len(padded_configs), numbers, structure)
    carry, numbers = _global((carry, numbers), runs)
    keys = _global(np.stack([train.shuffle_key(seed) for seed in padded_seeds]), seeds_only)
    XY = _global(XY_host, replicated)
    history = []
    epoch = 0
    diverged_at = _global(np.full((len(padded_seeds), len(padded_configs)), -1, np.int32), runs)
    while epoch < num_epochs:
        n = min(length, num_epochs - epoch)
        carry, costs, diverged_at = chunk(carry, numbers, XY, keys, (epoch, n), diverged_at)
        if keep_costs:
            history.append(_host(costs)[..., :n])
        epoch += n
        if on_chunk is not None:
            on_chunk(epoch, costs.block_until_ready())
    final_costs = _host(costs)[..., n - 1]
    diverged_at = _host(diverged_at)
    correct = _host(predict(carry[0], _global(XY_host[:-1], replicated))) == XY_host[-1:]
    accuracies = correct.mean(axis=(-2, -1))
    all_costs = np.concatenate(history, axis=-1) if keep_costs else None

    rows = []
    for c, config in enumerate(configs):
        for s, seed in enumerate(seeds):
            row = {"optimizer": name, **config, "seed": seed}
            bad = int(diverged_at[s, c])
            row["diverged_at_epoch"] = bad if bad >= 0 else None
            row["final_cost"] = float(final_costs[s, c]) if bad < 0 else None
            row["accuracy"] = float(accuracies[s, c]) if bad < 0 else None
            if keep_costs:
                row["costs"] = [float(v) if np.isfinite(v) else None for v in all_costs[s, c]]
            rows.append(row)
    return rows
