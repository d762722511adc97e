"""The compiled block program of a grid of runs: :func:`train.run_chunk` vmapped over seeds and
configurations, sharded over a mesh, and how a grid is cut into blocks of one shape."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxopt_lab import data, model, train

AXIS = "configs"  # the mesh axis the configurations are split over
# Run-epochs of one device in one chunk: about 0.2 s of the lesson's network on a core.
CHUNK_RUN_EPOCHS = 2**16
CACHE_BYTES = 2**20  # a core's L2 cache when the machine does not say (1 MiB)
ACCELERATOR_BLOCK = 2**16  # runs per device per block on a GPU or TPU: wide vmaps suit them


def _cache_bytes() -> int:
    """The L2 cache of one core (Linux sysfs), or :data:`CACHE_BYTES` if the machine does not say."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    try:
        for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    except (OSError, ValueError):
        pass
    return CACHE_BYTES


def floor_pow2(n: int) -> int:
    return 1 << (max(1, int(n)).bit_length() - 1)


def ceil_pow2(n: int) -> int:
    return 1 << (max(1, int(n)) - 1).bit_length()


def runs_per_block(layers_dims: Sequence[int], mini_batch_size: int, platform: str | None = None) -> int:
    """How many runs one device trains at once: on a CPU, as many as keep one mini-batch step's
    activations in a core's L2 cache, ``L2 / (mini_batch_size * sum(layers_dims[1:]) *
    itemsize)`` as a power of two (the lesson's network in float32 with 1 MiB: 512 runs); on an
    accelerator :data:`ACCELERATOR_BLOCK`."""
    if (platform or jax.default_backend()) != "cpu":
        return ACCELERATOR_BLOCK
    itemsize = np.dtype(jnp.result_type(float)).itemsize
    step_bytes = min(mini_batch_size, 2**20) * sum(layers_dims[1:]) * itemsize
    return int(np.clip(floor_pow2(_cache_bytes() // step_bytes), 8, 8192))


class Blocks(NamedTuple):
    """How a ``(seeds, configurations)`` grid is cut: blocks of ``(seeds, configs)`` runs (the
    sharded axis a multiple of the device count), ``counts`` blocks along each axis."""

    shard_seeds: bool
    seeds: int
    configs: int
    counts: tuple[int, int]


def plan_blocks(n_seeds: int, n_configs: int, devices: int, per_device: int) -> Blocks:
    """Blocks of at most about ``per_device`` runs per device. The longer axis is split over the
    devices; the shorter one is taken whole when it fits. An axis cut into several blocks is cut
    into equal ones, and every block side is rounded up to four significant bits
    (:func:`_round_up_coarse`): at most 1/16 of the work is padding (700 seeds on 2 devices: 704
    runs; powers of two made it 1024, 46% of the work thrown away), and a few sizes per octave
    still let one compiled program serve many grid sizes."""
    shard_seeds = n_seeds > n_configs
    long, short = (n_seeds, n_configs) if shard_seeds else (n_configs, n_seeds)
    short_block = _even_blocks(short, floor_pow2(per_device))
    long_block = _even_blocks(-(-long // devices), floor_pow2(max(1, per_device // short_block)))
    long_block *= devices
    counts = (-(-long // long_block), -(-short // short_block))
    if shard_seeds:
        return Blocks(True, long_block, short_block, counts)
    return Blocks(False, short_block, long_block, counts[::-1])


def _even_blocks(n: int, most: int) -> int:
    """The side of the equal blocks that cut ``n`` runs into as few blocks of at most ``most``
    (a power of two) as possible, rounded up coarsely."""
    pieces = -(-n // most)
    return min(most, _round_up_coarse(-(-n // pieces)))


def _round_up_coarse(n: int) -> int:
    """``n`` rounded up to its four leading bits: 350 -> 352, 1100 -> 1152; at most n/16 more."""
    step = 1 << max(0, int(n).bit_length() - 4)
    return -(-int(n) // step) * step


def _first_bad_epoch(diverged_at, costs, first_epoch, n_epochs):
    """Carry each run's first non-finite epoch (-1: none yet) over one chunk's costs."""
    bad = ~jnp.isfinite(costs) & (jnp.arange(costs.shape[-1]) < n_epochs)
    found = jnp.where(jnp.any(bad, axis=-1), first_epoch + jnp.argmax(bad, axis=-1), -1)
    return jnp.where(diverged_at < 0, found, diverged_at)


def on_mesh(tree, sharding: NamedSharding):
    """Place host values on the mesh. Every process holds the same full values (they follow from
    the grid and seeds), and each hands over only its own devices' rows, so this also works when
    the mesh spans several processes (``jax.distributed``)."""

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def to_host(x: jax.Array) -> np.ndarray:
    """A sharded result as one NumPy array on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


@functools.cache
def block_program(
    program: train.Program, layers: tuple, mesh: Mesh, shard_seeds: bool, tracked: bool = False
):
    """The jitted program of one block's chunk, cached across calls and grid sizes.

    ``(state, numbers, seeds, XY, epochs, last) -> (state, costs, results)``: on a block's first
    chunk (``epochs[0] == 0``) the runs start from the seeds' initial parameters and the
    optimizer's initial state, made here; on its last (``last``) the results are the final costs,
    first diverged epochs and correct predictions per run.

    With ``tracked`` the program takes one more argument, ``need`` (int32: correct predictions
    that reach a target accuracy, traced: no program per target), measures every run's training
    accuracy at the end of every epoch (:func:`_tracked_chunks`) and adds to the results the
    first epoch at which it reached ``need`` (-1: not yet). Untracked grids run the program as
    before, with no accuracy pass.
    """
    runs = NamedSharding(mesh, PartitionSpec(AXIS) if shard_seeds else PartitionSpec(None, AXIS))
    seed_axis = NamedSharding(mesh, PartitionSpec(AXIS) if shard_seeds else PartitionSpec())
    config_axis = NamedSharding(mesh, PartitionSpec() if shard_seeds else PartitionSpec(AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())
    dtype = jnp.result_type(float)

    def start(seeds, configs):
        # fit's own starting point for every run: the seed's parameters, the optimizer's state.
        ids, numbers = configs
        params = jax.vmap(lambda s: model.seeded_params(s, layers, dtype))(seeds)

        def opt_state(params, numbers, _):
            return train._initial_opt_state(numbers, params, structure=program.structure,
                                            layout=program.layout)  # fmt: skip

        per_config = jax.vmap(opt_state, in_axes=(None, 0, 0))
        state = jax.vmap(per_config, in_axes=(0, None, None))(params, numbers, ids)
        params = jax.tree.map(
            lambda p: jnp.broadcast_to(p[:, None], (len(p), len(ids), *p.shape[1:])), params
        )
        return params, state

    # The inner vmap shares the seed's key across its configurations: each epoch's order is drawn
    # once a seed, not once a run.
    run_configs = jax.vmap(functools.partial(train.run_chunk, program), in_axes=(0, 0, None, None, None))
    chunk_seeds = jax.vmap(run_configs, in_axes=(0, None, None, 0, None))
    if tracked:  # the carry holds each run's first epoch at the target: -1 at the start
        chunk_seeds, start = _tracked_chunks(program), _with_reached(start)

    def correct(params, XY):
        return jnp.sum(model.predict(params, XY[:-1]) == XY[-1:], dtype=jnp.int32)

    predict = jax.vmap(jax.vmap(correct, in_axes=(0, None)), in_axes=(0, None))

    def block_chunk(state, configs, seeds, XY, epochs, last, *need):
        (carry, diverged_at), (first, n), numbers = state, epochs, configs[1]
        fresh = start(seeds, configs)
        begin = first == 0
        carry = jax.tree.map(lambda a, b: jnp.where(begin, a, b), fresh, carry)
        diverged_at = jnp.where(begin, -1, diverged_at)
        keys = jax.vmap(train.seeded_shuffle_key)(seeds)  # fit's own start, traced here
        carry, costs = chunk_seeds(carry, numbers, XY, keys, epochs, *need)
        # Each run's first non-finite epoch is carried inside the program: on the devices, with
        # no gather per chunk and no program of its own to compile.
        diverged_at = _first_bad_epoch(diverged_at, costs, first, n)

        params = carry[0][0] if tracked else carry[0]

        def finish(_):
            return jnp.take(costs, n - 1, axis=-1), predict(params, XY)

        empty = (jnp.zeros(diverged_at.shape, costs.dtype), jnp.zeros(diverged_at.shape, jnp.int32))
        final_cost, correct_count = jax.lax.cond(last, finish, lambda _: empty, None)
        reached = (carry[1],) if tracked else ()
        return (carry, diverged_at), costs, (final_cost, diverged_at, correct_count, *reached)

    return jax.jit(
        block_chunk,
        in_shardings=(runs, config_axis, seed_axis, replicated, replicated, replicated)
        + ((replicated,) if tracked else ()),
        out_shardings=runs, donate_argnums=(0,),
        compiler_options=train.compiler_options(mesh.devices.flat[0].platform),
    ), start, (runs, seed_axis, config_axis, replicated)  # fmt: skip


def _with_reached(start):
    """``start`` whose carry also holds every run's first epoch at the target accuracy, -1."""

    def tracked_start(seeds, configs):
        return start(seeds, configs), jnp.full((len(seeds), len(configs[0])), -1, jnp.int32)

    return tracked_start


def _correct_if_finite(params, XY):
    """Correct predictions on the examples; -1 where a logit is not finite (a diverged network's
    NaN logits predict class 0 everywhere, which is no accuracy reached)."""
    logits = model.forward(params, XY[:-1])
    correct = jnp.sum((logits > 0).astype(jnp.int32) == XY[-1:], dtype=jnp.int32)
    return jnp.where(jnp.all(jnp.isfinite(logits)), correct, -1)


def _tracked_chunks(program: train.Program):
    """``chunk_seeds`` with every run's training accuracy after every epoch: per seed, a loop of
    one-epoch :func:`train.run_chunk` calls over the block's configurations (the seed's order
    drawn once per epoch for all of them, one epoch ahead, as ``run_chunk`` draws it), each
    followed by the configurations' correct predictions on the training set; a run's first epoch
    with at least ``need`` of them is carried (-1: none yet). The epochs run exactly as in
    ``run_chunk``'s own loop, so the costs are the same runs'."""
    one_epoch = program._replace(length=1)
    run = jax.vmap(functools.partial(train.run_chunk, one_epoch), in_axes=(0, 0, None, None, None))
    count = jax.vmap(_correct_if_finite, in_axes=(0, None))

    def seed_chunk(carry, numbers, XY, key, epochs, need):
        (runs, reached), (first, n), m = carry, epochs, XY.shape[1]

        def order(i):
            return data.epoch_permutation(key, first + i, m)

        def body(i, loop):
            runs, reached, costs, perm = loop
            runs, cost = run(runs, numbers, XY, perm[None], (first + i, 1))
            hit = (reached < 0) & (count(runs[0], XY) >= need)
            reached = jnp.where(hit, first + i, reached)
            return runs, reached, costs.at[:, i].set(cost[:, 0]), order(i + 1)

        costs = jnp.full((len(reached), program.length), jnp.nan, XY.dtype)
        runs, reached, costs, _ = jax.lax.fori_loop(0, n, body, (runs, reached, costs, order(0)))
        return (runs, reached), costs

    return jax.vmap(seed_chunk, in_axes=(0, None, None, 0, None, None))


class Chunk(NamedTuple):
    """A dispatched chunk of one block, read back once the next one is queued."""

    seeds: slice  # the block's real runs (padding excluded) along each axis
    configs: slice
    epochs: tuple[int, int]  # (first, n)
    costs: jax.Array
    # (final cost, first diverged epoch, correct predictions[, first epoch at the target accuracy])
    results: tuple | None  # on a last chunk


@functools.cache
def cutter(mesh: Mesh, blocks: Blocks):
    """``(seeds, configs, at) -> (block seeds, block configs)``: a block of the whole grid (held
    on every device), each device keeping its share. One dispatch a block, not one transfer per
    number; the block's program does not depend on the grid's size."""
    seed_axis = NamedSharding(mesh, PartitionSpec(AXIS) if blocks.shard_seeds else PartitionSpec())
    config_axis = NamedSharding(mesh, PartitionSpec() if blocks.shard_seeds else PartitionSpec(AXIS))

    def cut(seeds, configs, at):
        def take(x, start, size):
            return jax.lax.dynamic_slice_in_dim(x, start, size)

        return take(seeds, at[0], blocks.seeds), jax.tree.map(
            lambda x: take(x, at[1], blocks.configs), configs
        )

    return jax.jit(cut, out_shardings=(seed_axis, config_axis))


def empty_state(start, numbers, seeds, runs: NamedSharding):
    """A state of the block's shape for its first chunk, which starts afresh and ignores it."""
    carry = jax.eval_shape(start, seeds, numbers)
    width = (seeds.shape[0], numbers[0].shape[0])
    zeros = (jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), carry), np.zeros(width, np.int32))
    return on_mesh(zeros, runs)
