"""The fused training program: every epoch and mini-batch of a run inside one jitted XLA loop.

Top to bottom: what a run gives back (:class:`FitResult`, :class:`TrainState`), :func:`fit`, the
chunk program it jits and ``sweep`` vmaps (:func:`run_chunk`), one epoch, one mini-batch step. The
plumbing lives next door: the optimizer's numbers through jit in :mod:`jaxopt_lab.optimizer_split`,
argument checks in :mod:`jaxopt_lab.fit_checks`, compile-time accounting in
:mod:`jaxopt_lab.compile_time`.

``fit`` runs the epochs in chunks; each chunk is one call of the same compiled program (a
``fori_loop`` over epochs, a ``scan`` over each epoch's mini-batches inside it). Between chunks the
host only looks at the chunk's costs (divergence) and calls ``on_chunk`` (progress, checkpoints,
signals), so none of that costs the inner loop a host sync.

The optimizer sees the parameters in one of two layouts, chosen once per run by
:func:`layout_of`: ``"flat"`` (one vector: one fused kernel per step) for a transformation that
declares itself elementwise, ``"tree"`` (the user's params dict, as in a plain Optax loop) for any
other. The optimizer state, in results, states and checkpoints, is over that layout.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_lab import data, model, settings
from jaxopt_lab.compile_time import compile_clock
from jaxopt_lab.fit_checks import check_fit_args, check_optimizer
from jaxopt_lab.hyperparameters import ElementwiseTransformation

# Structure and stack_optimizers are named here too: sweep and the tests reach them as train.X.
from jaxopt_lab.optimizer_split import Structure as Structure
from jaxopt_lab.optimizer_split import join_optimizer, split_optimizer
from jaxopt_lab.optimizer_split import stack_optimizers as stack_optimizers
from jaxopt_lab.settings import InvalidValue

DEFAULT_CHUNK_EPOCHS = 1000
MAX_EPOCHS = settings.MAX_INT32  # epoch numbers are int32 inside the compiled loop
MAX_SEED = settings.MAX_SEED  # float32-mode keys keep 32 bits of a seed


# ---------------------------------------------------------------------------------------------
# What a run gives back
# ---------------------------------------------------------------------------------------------


class DivergenceError(FloatingPointError):
    """The reported cost became NaN or infinite; ``epoch`` is the first epoch where it did."""

    def __init__(self, epoch: int, state: TrainState | None = None):
        super().__init__(f"training diverged at epoch {epoch}: the cost is not finite")
        self.epoch = epoch
        self.state = state


class TrainState(NamedTuple):
    """Everything a run needs to continue: the randomness position is the epoch itself."""

    params: model.Params
    opt_state: Any  # over the run's layout (see layout_of): the flat vector, or the params tree
    epoch: int  # epochs completed
    costs: np.ndarray  # shape=(epoch,), the reported cost of each completed epoch


@dataclasses.dataclass
class FitResult:
    """A finished run.

    ``opt_state`` is over the parameters as the optimizer saw them: ``layout`` ``"flat"`` (one
    vector, ``jax.flatten_util.ravel_pytree`` of the params dict) for an elementwise optimizer,
    ``"tree"`` (the params dict) for any other. Seconds are this run's own, also when other runs
    compile or train in other threads.
    """

    params: model.Params
    costs: np.ndarray  # shape=(num_epochs,): the course's cost_avg of every epoch
    opt_state: Any
    compile_seconds: float  # tracing, lowering and XLA compilation caused by this run
    run_seconds: float  # the rest of its wall time
    layout: str = "flat"


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------

ChunkCallback = Callable[[TrainState], None]


def fit(
    X,
    Y,
    layers_dims: list[int],
    optimizer: optax.GradientTransformation,
    *,
    num_epochs: int = 5000,
    mini_batch_size: int = 64,
    seed: int | None = None,
    chunk_epochs: int | None = None,
    state: TrainState | None = None,
    on_chunk: ChunkCallback | None = None,
) -> FitResult:
    """Train the network with mini-batches, every epoch inside one compiled XLA loop.

    Args:
      X: features, shape (n_x, m), examples as columns.
      Y: 0/1 labels, shape (1, m).
      layers_dims: layer widths, ``layers_dims[0] == n_x`` and ``layers_dims[-1] == 1``.
      optimizer: any ``optax.GradientTransformation``, e.g. ``optimizers.adam(0.0007)`` or
        ``optax.lamb(0.01)``. It sees the params dict, as in a plain Optax loop, unless it is an
        :class:`~jaxopt_lab.hyperparameters.ElementwiseTransformation` (the hand-rolled ones),
        which runs over the parameters raveled into one vector: the same result, faster. One
        that takes Optax's extra arguments (``optax.lbfgs()``, ``optax.polyak_sgd()``) gets the
        batch's loss as ``value``, its gradient as ``grad`` and the loss as ``value_fn``; with
        ``mini_batch_size >= m`` that is full-batch L-BFGS.
      num_epochs: total epochs of the run (a resumed run counts the epochs already done).
      mini_batch_size: columns per mini-batch; the last batch of an epoch holds the remainder.
      seed: ``None`` for the course's randomness (NumPy seeds), an int for JAX randomness.
      chunk_epochs: epochs per compiled call (default 1000): the granularity of progress,
        divergence checks and checkpoints. Results do not depend on it.
      state: a :class:`TrainState` to continue from (see ``on_chunk``), made with the same
        optimizer and at most ``num_epochs`` epochs in; default: a fresh start.
      on_chunk: called with the :class:`TrainState` after every chunk, e.g. to save a checkpoint.

    Returns:
      A :class:`FitResult` with the final ``params``, ``costs`` (one per epoch) and timings.

    Raises:
      InvalidValue: an argument is invalid (a ``ValueError`` naming it).
      DivergenceError: at the end of the first chunk whose costs are not all finite.
    """
    check_fit_args(
        X, Y, layers_dims, num_epochs=num_epochs, mini_batch_size=mini_batch_size, seed=seed,
        chunk_epochs=chunk_epochs,
    )  # fmt: skip
    check_optimizer(optimizer)
    if on_chunk is not None and not callable(on_chunk):
        raise InvalidValue("on_chunk", f"must be a function of a TrainState or None, got {on_chunk!r}")
    compiled_before, wall_start = compile_clock.seconds, time.perf_counter()
    layout = layout_of(optimizer)
    XY = _data(X, Y)
    if state is None:
        state = init_state(layers_dims, optimizer, seed)
    else:
        _check_state(state, optimizer, layout, list(layers_dims), seed, num_epochs)
    numbers, structure = split_optimizer(optimizer)
    program = Program(structure, layout, mini_batch_size, min(chunk_epochs or DEFAULT_CHUNK_EPOCHS, num_epochs))
    key = shuffle_key(seed) if seed is not None else None
    carry, history = _run_chunks(program, numbers, XY, key, state, num_epochs, on_chunk)
    jax.block_until_ready(carry)
    compile_seconds = compile_clock.seconds - compiled_before
    return FitResult(
        params=carry[0],
        costs=history.view().copy(),  # the states given to on_chunk keep views of the buffer
        opt_state=carry[1],
        compile_seconds=compile_seconds,
        run_seconds=time.perf_counter() - wall_start - compile_seconds,
        layout=layout,
    )


def _run_chunks(program: Program, numbers, XY, key, state: TrainState, num_epochs: int, on_chunk):
    """Run ``state``'s epochs on to ``num_epochs``, one compiled call per chunk; after each chunk,
    stop at a cost that is not finite and hand the new state to ``on_chunk``.

    Returns:
      ``((params, opt_state), history)``: the last carry and every epoch's cost (a
      :class:`_CostHistory`, whose views the states given to ``on_chunk`` keep).

    Raises:
      DivergenceError: at the end of the first chunk whose costs are not all finite.
    """
    carry = (state.params, state.opt_state)
    history = _CostHistory(np.asarray(state.costs[: state.epoch]), XY.dtype)
    for first, n in _chunks(state.epoch, num_epochs, program.length):
        orders = _epoch_orders(XY.shape[1], key, first, n, program.length)
        carry, costs = _jitted_chunk(jax.default_backend())(
            program, carry, numbers, XY, orders, (first, n)
        )
        costs = np.asarray(costs)[:n]
        history.extend(costs)
        state = TrainState(*carry, first + n, history.view())
        bad = np.flatnonzero(~np.isfinite(costs))
        if bad.size:
            raise DivergenceError(first + int(bad[0]), state)
        if on_chunk is not None:
            on_chunk(state)
    return carry, history


def init_state(
    layers_dims: list[int], optimizer: optax.GradientTransformation, seed: int | None = None
) -> TrainState:
    """A fresh start; the optimizer state is over the parameters in the optimizer's layout."""
    check_optimizer(optimizer)
    params = model.init_params(layers_dims, seed)
    numbers, structure = split_optimizer(optimizer)
    opt_state = _initial_opt_state(numbers, params, structure=structure, layout=layout_of(optimizer))
    return TrainState(params, opt_state, 0, np.zeros((0,)))


def layout_of(optimizer: optax.GradientTransformation) -> str:
    """``"flat"`` if ``fit`` may run ``optimizer`` over one flat vector, else ``"tree"``.

    Only transformations that declare it (:class:`ElementwiseTransformation`: the hand-rolled ones
    and ``optimizers.chain`` of them) are flat. Anything else (an Optax transformation that masks
    by the tree, labels layers, or takes a norm per leaf) would become another optimizer if it saw
    one vector, so it sees the params dict, as in a plain Optax loop.
    """
    return "flat" if isinstance(optimizer, ElementwiseTransformation) else "tree"


def is_elementwise(optimizer: optax.GradientTransformation) -> bool:
    """Whether ``fit`` runs ``optimizer`` over one flat vector (:func:`layout_of` is ``"flat"``)."""
    return layout_of(optimizer) == "flat"


# ---------------------------------------------------------------------------------------------
# The chunk program: fit jits it, sweep vmaps it
# ---------------------------------------------------------------------------------------------


class Program(NamedTuple):
    """What makes one compiled chunk program (static and hashable): the optimizer's structure
    (:func:`split_optimizer`), the layout it sees, the batch size and the chunk's length."""

    structure: Any
    layout: str
    mini_batch_size: int
    length: int


def view_of(layout: str, params: model.Params):
    """``(view, to_params)``: the parameters as the optimizer sees them in ``layout``, and back."""
    if layout == "flat":
        return ravel_pytree(params)
    return params, _identity


def _identity(params):
    return params


def run_chunk(program: Program, carry, numbers, XY, orders, epochs):
    """Run ``n`` (traced, <= ``program.length``) epochs from ``first``: the body of every run.

    This pure function is what ``fit`` jits and what ``sweep`` vmaps; there is no second loop.

    Args:
      program: the static part (:class:`Program`).
      carry: ``(params, opt_state)``, ``opt_state`` over ``program.layout``.
      numbers: the optimizer's traced numbers (:func:`split_optimizer`).
      XY: features stacked over the label row, shape (n_x + 1, m).
      orders: the chunk's column orders, shape (length, m) int32 (``fit``'s, in both modes:
        :func:`_epoch_orders`); or seed mode's shuffling key (:func:`shuffle_key`, shape (2,)),
        from which each epoch's order is drawn inside the loop (:func:`data.epoch_permutation`):
        the sweep's block program, so no chunk of every seed's orders is held in memory, and
        runs vmapped over configurations with one key draw it once.
      epochs: ``(first, n)``: the epoch number the chunk starts at and how many to run.

    Returns:
      ``((params, opt_state), costs)``, costs of shape (length,), NaN past ``n``.
    """
    optimizer = join_optimizer(numbers, program.structure)
    (params, opt_state), (first, n) = carry, epochs
    view, to_params = view_of(program.layout, params)
    m = XY.shape[1]

    def order_of(i):  # from a key, each epoch's order is drawn here
        if orders.ndim == 1:
            return data.epoch_permutation(orders, first + i, m)
        return orders[jnp.minimum(i, program.length - 1)]

    # The order is taken one epoch ahead and carried, a loop value made whole once: drawn where
    # the gather used it, XLA:CPU fused the 12 shuffle rounds into the gather and redid them for
    # every element gathered (a seeds-only block at 13% of a plain vmapped step; RESULTS.md).
    def body(i, loop):
        view, opt_state, costs, perm = loop
        view, opt_state, cost = epoch_step(
            optimizer, to_params, view, opt_state, XY, perm, program.mini_batch_size
        )
        return view, opt_state, costs.at[i].set(cost), order_of(i + 1)

    costs = jnp.full((program.length,), jnp.nan, XY.dtype)
    loop = (view, opt_state, costs, order_of(0))
    view, opt_state, costs, _ = jax.lax.fori_loop(0, n, body, loop)
    return (to_params(view), opt_state), costs


def epoch_step(optimizer, to_params, view, opt_state, XY, perm, mini_batch_size: int):
    """One epoch over the columns of ``XY`` (features stacked over the label row) in ``perm`` order.

    ``view`` is the parameters as the optimizer sees them (:func:`view_of`), ``to_params`` rebuilds
    the network's dict from it. Shapes are static: the full mini-batches are slices of the shuffled
    data, the remainder is one smaller static slice, so no padding is computed and no batch ever
    recompiles. Each batch's cost is measured with the parameters before its update, as the course
    does.

    Returns:
      ``(view, opt_state, cost)``, cost the summed cross-entropy of the epoch over m.
    """
    n_rows, m = XY.shape
    shuffled = XY[:, perm]
    full, rest = divmod(m, mini_batch_size)

    def step(carry, batch):
        view, opt_state, total = carry
        view, opt_state, batch_total = batch_step(
            optimizer, to_params, view, opt_state, batch[:-1], batch[-1:]
        )
        return (view, opt_state, total + batch_total), None  # summed in batch order

    carry = (view, opt_state, jnp.zeros((), XY.dtype))
    if full:
        # A loop over the full batches rather than a copy of the step per batch: measured here, it
        # compiles in 1.3 s instead of 1.9 s and runs 2.2 instead of 3.0 us per Adam step; two
        # steps per iteration take another 7-9% off at the same compile time.
        batches = shuffled[:, : full * mini_batch_size].reshape(n_rows, full, mini_batch_size)
        carry, _ = jax.lax.scan(step, carry, batches.transpose(1, 0, 2), unroll=2)
    if rest:
        carry, _ = step(carry, shuffled[:, full * mini_batch_size :])
    view, opt_state, total = carry
    return view, opt_state, total / m


def batch_step(optimizer, to_params, view, opt_state, xb, yb):
    """One update on one mini-batch; returns the new view and state and the batch's summed cost.

    The gradient is that of the batch's mean cross-entropy. A transformation that takes Optax's
    extra arguments (``optax.GradientTransformationExtraArgs``: L-BFGS and its line search,
    ``polyak_sgd``, any ``optax.chain``) is also given, as in a plain Optax loop, ``value`` (that
    mean), ``grad`` (its gradient) and ``value_fn`` (the mean as a function of the parameters in
    the layout the optimizer sees). The hand-rolled ones ignore them: nothing is computed for them.
    """
    (value, total), grads = jax.value_and_grad(_batch_objective, has_aux=True)(
        view, to_params, xb, yb
    )
    if isinstance(optimizer, optax.GradientTransformationExtraArgs):
        value_fn = functools.partial(_batch_loss, to_params=to_params, xb=xb, yb=yb)
        updates, opt_state = optimizer.update(
            grads, opt_state, view, value=value, grad=grads, value_fn=value_fn
        )
    else:
        updates, opt_state = optimizer.update(grads, opt_state, view)
    return optax.apply_updates(view, updates), opt_state, total


def _batch_objective(view, to_params, xb, yb):
    per_example = model.cross_entropy(model.forward(to_params(view), xb), yb)
    return jnp.mean(per_example), jnp.sum(per_example)


def _batch_loss(view, *, to_params, xb, yb):
    return _batch_objective(view, to_params, xb, yb)[0]


# XLA:CPU hands small reductions to the YNNPACK library by default; for the lesson's tiny layers
# each library call costs more than its arithmetic (measured here: fit 3.30 -> 3.03 us per Adam
# step, a 256-run sweep 3-6x faster without them). LLVM's level 1 instead of 2 compiles a sweep's
# block program in 1.6 s instead of 2.2 and runs it as fast (1.07 against 1.04 M run-steps/s; fit
# 2.22 against 2.25 us per Adam step).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "", "xla_backend_optimization_level": 1}


def compiler_options(platform: str | None = None) -> dict | None:
    """Per-program XLA options for a platform (default: the default backend's; read lazily so
    that XLA_FLAGS such as a forced host device count take effect before the backend starts)."""
    return CPU_COMPILER_OPTIONS if (platform or jax.default_backend()) == "cpu" else None


@functools.cache
def _jitted_chunk(backend: str):
    return jax.jit(run_chunk, static_argnums=0, compiler_options=compiler_options(backend))


def _data(X, Y):
    dtype = jnp.result_type(float)
    # Joined and cast on the host: on the device each cast and the join compile a small program.
    return jax.device_put(np.concatenate([np.asarray(X, dtype), np.asarray(Y, dtype)], axis=0))


def _chunks(epoch: int, num_epochs: int, chunk: int):
    """``(first_epoch, n_epochs)`` of each chunk from ``epoch`` to ``num_epochs``."""
    while epoch < num_epochs:
        n = min(chunk, num_epochs - epoch)
        yield epoch, n
        epoch += n


def _epoch_orders(m: int, key, first: int, n: int, length: int):
    """The column orders of epochs ``first .. first + n - 1``, padded to ``length`` rows (the
    padding is never run): course mode's from NumPy's seeds (``key`` None), else seed mode's.

    An array in both modes: one compiled program per optimizer structure serves both (one run's
    orders are small; the sweep's block program draws every seed's inside its loop)."""
    if key is not None:
        return seed_orders(key, first, length=length, m=m)
    perms = data.course_permutations(m, first, n)
    if n < length:
        perms = np.concatenate([perms, np.zeros((length - n, m), np.int32)])
    return perms


@functools.partial(jax.jit, static_argnames=("length", "m"))
def seed_orders(key, first, *, length: int, m: int):
    """Seed mode's orders of epochs ``first .. first + length - 1`` (:func:`data.epoch_permutation`)."""
    epochs = first + jnp.arange(length)
    return jax.vmap(data.epoch_permutation, in_axes=(None, 0, None))(key, epochs, m)


class _CostHistory:
    """Every epoch's cost so far, grown as chunks arrive: a run of 10**9 epochs that stops
    early (diverges, is interrupted) must not hold memory for all of them up front."""

    def __init__(self, costs: np.ndarray, dtype):
        self._buffer = np.array(costs, dtype=dtype)
        self.size = len(costs)

    def extend(self, costs: np.ndarray) -> None:
        end = self.size + len(costs)
        if end > len(self._buffer):  # doubling keeps appending linear in the run's length
            grown = np.empty(max(end, 2 * len(self._buffer)), self._buffer.dtype)
            grown[: self.size] = self._buffer[: self.size]
            self._buffer = grown
        self._buffer[self.size : end] = costs
        self.size = end

    def view(self) -> np.ndarray:
        return self._buffer[: self.size]


def shuffle_key(seed: int) -> jax.Array:
    """Seed mode's shuffling key; parameters come from its sibling :func:`model.init_key`."""
    # uint32: a traced Python int would be int32 in float32 mode (the key is the same).
    return _shuffle_key_program(np.uint32(seed))


def seeded_shuffle_key(seed):
    """:func:`shuffle_key`, traceable (a sweep vmaps it over seeds)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 1)


# One small program (eagerly, seeding and folding compile two); no optimisation needed.
_shuffle_key_program = jax.jit(
    seeded_shuffle_key, compiler_options={"xla_backend_optimization_level": 0}
)


@functools.partial(jax.jit, static_argnames=("structure", "layout"))
def _initial_opt_state(numbers, params, *, structure, layout):
    # One compiled program per optimizer structure: run eagerly, the ravel and every zeros_like
    # of ``init`` would each compile their own (a dozen small compiles at every fresh start).
    state = join_optimizer(numbers, structure).init(view_of(layout, params)[0])
    # Strongly typed, as a chunk returns it: a weakly typed leaf (Optax's zoom line search starts
    # with three) would make the second chunk compile the run's program again.
    return jax.tree.map(lambda leaf: leaf.astype(leaf.dtype), state)


# ---------------------------------------------------------------------------------------------
# What a run may resume from
# ---------------------------------------------------------------------------------------------


def _check_state(state, optimizer, layout: str, layers_dims, seed, num_epochs: int) -> None:
    """A state to resume from must be a :class:`TrainState` this optimizer can continue."""
    if not isinstance(state, TrainState):
        raise InvalidValue("state", f"must be a train.TrainState or None, got {type(state).__name__}")
    epoch = state.epoch
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise InvalidValue("state.epoch", f"must be an integer >= 0, got {epoch!r}")
    if epoch > num_epochs:
        raise InvalidValue(
            "state",
            f"is at epoch {state.epoch}, past num_epochs={num_epochs}: num_epochs counts the "
            "epochs already done, so it must be at least the state's epoch",
        )
    if len(state.costs) < state.epoch:
        raise InvalidValue("state.costs", f"holds {len(state.costs)} costs for {state.epoch} epochs")
    params_like = model.init_params(layers_dims, seed)
    expected = jax.eval_shape(
        lambda: (params_like, optimizer.init(view_of(layout, params_like)[0]))
    )
    given = jax.eval_shape(lambda: (state.params, state.opt_state))
    if jax.tree.structure(given) != jax.tree.structure(expected) or any(
        (a.shape, a.dtype) != (b.shape, b.dtype)
        for a, b in zip(jax.tree.leaves(given), jax.tree.leaves(expected), strict=True)
    ):
        raise InvalidValue(
            "state",
            "does not fit this network and optimizer (its parameters or optimizer state have "
            "another structure or shape); resume with the optimizer that made it",
        )
