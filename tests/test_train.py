"""The fused training program (jaxopt_lab.train.fit) against a plain Python loop, and its promises:
no recompilation, chunk-independent and resumable results, determinism, divergence detection.

Compiling a fit program is the expensive part here (seconds on a small CPU), so the tests share
a few shapes: the course's data and network, mini-batches of 64, chunks of 7 or 100 epochs.
"""

from __future__ import annotations

import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import data, model, optax_equivalents, optimizers, train

LAYERS = [2, 5, 2, 1]
X, Y = data.load_moons()
M = X.shape[1]
EPOCHS = 100
MODES = pytest.mark.parametrize("seed", [None, 4], ids=["course_mode", "seed_mode"])


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@functools.cache
def uninterrupted(seed, learning_rate=0.01):
    """The reference run that chunked, resumed and repeated runs are compared with (one chunk)."""
    return train.fit(X, Y, LAYERS, optimizers.adam(learning_rate), num_epochs=EPOCHS, seed=seed)


# ---------------------------------------------------------------------------------------------
# What fit computes: the course's loop, written plainly
# ---------------------------------------------------------------------------------------------


def epoch_orders(seed, num_epochs):
    """Course mode: ``np.random.seed(11 + i); np.random.permutation(m)``; seed mode: the
    documented fold of the epoch into the run's shuffle key."""
    orders = []
    for i in range(num_epochs):
        if seed is None:
            orders.append(np.random.RandomState(11 + i).permutation(M))
        else:
            orders.append(np.asarray(data.epoch_permutation(train.shuffle_key(seed), i, M)))
    return orders


_forward = jax.jit(model.forward)
_grad = jax.jit(jax.grad(model.loss))
_update = jax.jit(lambda optimizer, grads, state, params: optimizer.update(grads, state, params))


def plain_loop(params, optimizer, orders, mini_batch_size):
    """One Python iteration per mini-batch: cut the shuffled columns into batches (the last one
    smaller), record each batch's summed cross-entropy before its update, report the sum over m."""
    state = optimizer.init(params)
    costs = []
    for order in orders:
        X_shuffled, Y_shuffled = X[:, order], Y[:, order]
        total = 0.0
        for start in range(0, M, mini_batch_size):
            xb = jnp.asarray(X_shuffled[:, start : start + mini_batch_size], jnp.float32)
            yb = jnp.asarray(Y_shuffled[:, start : start + mini_batch_size], jnp.float32)
            a = 1 / (1 + np.exp(-np.asarray(_forward(params, xb), np.float64)))
            y = np.asarray(yb, np.float64)
            total += np.sum(-y * np.log(a) - (1 - y) * np.log(1 - a))
            updates, state = _update(optimizer, _grad(params, xb, yb), state, params)
            params = optax.apply_updates(params, updates)
        costs.append(total / M)
    return params, np.array(costs)


@pytest.mark.parametrize(
    "seed, mini_batch_size, num_epochs",
    [(None, 64, 7), (4, 64, 7), (None, 16, 2)],
    ids=["course_mode", "seed_mode", "course_mode_scanned_batches"],
)
def test_fit_equals_the_plain_mini_batch_loop(seed, mini_batch_size, num_epochs):
    # 300 = 4 * 64 + 44: four full batches and a remainder; 300 = 18 * 16 + 12 is long enough for
    # fit to loop over its batches with lax.scan instead of unrolling them.
    optimizer = optimizers.adam(0.01)
    expected_params, expected_costs = plain_loop(
        model.init_params(LAYERS, seed), optimizer, epoch_orders(seed, num_epochs), mini_batch_size
    )

    result = train.fit(
        X, Y, LAYERS, optimizer, num_epochs=num_epochs, mini_batch_size=mini_batch_size, seed=seed
    )

    assert result.costs.shape == (num_epochs,)
    np.testing.assert_allclose(result.costs, expected_costs, rtol=2e-5)
    for key, value in expected_params.items():
        assert result.params[key].dtype == np.float32
        np.testing.assert_allclose(result.params[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_fit_in_float32_stays_within_rounding_of_the_twin_over_300_epochs():
    # fit traces the numbers in float32; 1 - b2 must still be made as Optax makes it from a Python
    # float (in double precision, rounded once), or Adam drifts (4.4e-4 of the weights here).
    mine = train.fit(X, Y, LAYERS, optimizers.adam(0.0007), num_epochs=300, chunk_epochs=100)
    twin = train.fit(X, Y, LAYERS, optax_equivalents.adam(0.0007), num_epochs=300, chunk_epochs=100)
    for key in mine.params:
        scale = np.max(np.abs(np.asarray(twin.params[key])))
        np.testing.assert_allclose(mine.params[key], twin.params[key], rtol=0, atol=1e-5 * scale)


def test_fit_with_the_optax_twin_gives_the_same_run():
    mine = train.fit(X, Y, LAYERS, optimizers.adam(0.01), num_epochs=7)
    twin = train.fit(X, Y, LAYERS, optax_equivalents.adam(0.01), num_epochs=7)
    np.testing.assert_allclose(twin.costs, mine.costs, rtol=1e-5)
    for key in mine.params:
        np.testing.assert_allclose(twin.params[key], mine.params[key], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Any Optax transformation trains as in a plain Optax loop over the params dict
# ---------------------------------------------------------------------------------------------

TREE_EPOCHS = 12
LAYER_NAMES = [f"{kind}{layer}" for layer in range(1, len(LAYERS)) for kind in "Wb"]


def _matrices(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


# Transformations that look at the tree (masks, labels, per-leaf or global norms) or carry state
# beside the moments: on one flat vector each would be another optimizer.
OPTAX_TRANSFORMATIONS = {
    "adamw_masked": lambda: optax.adamw(0.01, weight_decay=0.5, mask=_matrices),
    "lamb": lambda: optax.lamb(0.01),
    "lars": lambda: optax.lars(0.1),
    "masked_decay": lambda: optax.chain(
        optax.masked(optax.add_decayed_weights(0.3), {k: k == "W1" for k in LAYER_NAMES}),
        optax.adam(0.01),
    ),
    "multi_transform": lambda: optax.multi_transform(
        {"fast": optax.adam(0.02), "slow": optax.sgd(0.05)},
        {k: "fast" if k in ("W1", "b1") else "slow" for k in LAYER_NAMES},
    ),
    "clip_then_adam": lambda: optax.chain(optax.clip_by_global_norm(0.05), optax.adam(0.01)),
    "inject_hyperparams_adam": lambda: optax.inject_hyperparams(optax.adam)(learning_rate=0.01),
    "adafactor": lambda: optax.adafactor(0.01, min_dim_size_to_factor=2),
}


def on_one_worker(names):
    """Each name's tests in one pytest-xdist worker: its fit program and plain loop compile once
    there for both modes and the sweep row."""
    return [pytest.param(name, marks=pytest.mark.xdist_group(f"optax-{name}")) for name in names]


TRANSFORMATIONS = pytest.mark.parametrize("name", on_one_worker(OPTAX_TRANSFORMATIONS))
TREE_CHUNK = 5  # 12 = 5 + 5 + 2: chunk boundaries and a short last chunk on the tree path too


@functools.cache
def transformation(name):
    """One instance per name: Optax closures compile per instance, so tests share programs."""
    return OPTAX_TRANSFORMATIONS[name]()


@jax.jit
def _summed_cost_and_grad(params, xb, yb):
    """The batch's summed cross-entropy (for the reported cost) and the gradient of its mean."""

    def objective(p):
        per_example = model.cross_entropy(model.forward(p, xb), yb)
        return jnp.mean(per_example), jnp.sum(per_example)

    (_, total), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return total, grads


@functools.cache
def optax_step(name):
    """One jitted Optax step per transformation, for every seed and mode (its input shapes do not
    depend on the batch)."""
    optimizer = transformation(name)

    @jax.jit
    def update(grads, state, params):
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return update


@functools.cache
def optax_reference(name, seed, num_epochs=TREE_EPOCHS, mini_batch_size=64):
    """A plain Optax loop, one jitted step per mini-batch, over the params dict: the same initial
    parameters and epoch orders as ``fit``, batches cut in order with the last one smaller, each
    batch's summed cross-entropy taken before its update; the epoch's cost is that sum over m."""
    optimizer, update = transformation(name), optax_step(name)
    params = jax.tree.map(jnp.asarray, model.init_params(LAYERS, seed))
    state = optimizer.init(params)
    costs = []
    for order in epoch_orders(seed, num_epochs):
        X_shuffled, Y_shuffled = X[:, order].astype(np.float32), Y[:, order].astype(np.float32)
        total = 0.0
        for start in range(0, M, mini_batch_size):
            cut = slice(start, start + mini_batch_size)
            batch_total, grads = _summed_cost_and_grad(
                params, X_shuffled[:, cut], Y_shuffled[:, cut]
            )
            params, state = update(grads, state, params)
            total += float(batch_total)
        costs.append(total / M)
    return params, state, np.array(costs)


def assert_same_run(params, costs, expected_params, expected_costs):
    np.testing.assert_allclose(costs, expected_costs, rtol=1e-4, atol=1e-6)
    for key, value in expected_params.items():
        np.testing.assert_allclose(params[key], value, rtol=1e-3, atol=1e-5, err_msg=key)


@TRANSFORMATIONS
@MODES
def test_fit_equals_a_plain_optax_loop_for_any_transformation(name, seed):
    expected_params, expected_state, expected_costs = optax_reference(name, seed)

    result = train.fit(
        X, Y, LAYERS, transformation(name), num_epochs=TREE_EPOCHS, seed=seed,
        chunk_epochs=TREE_CHUNK,
    )  # fmt: skip

    assert_same_run(result.params, result.costs, expected_params, expected_costs)
    # the optimizer state is over the params dict, as in the plain loop
    assert jax.tree.structure(result.opt_state) == jax.tree.structure(expected_state)


@pytest.mark.parametrize("name", on_one_worker(["adamw_masked", "lamb", "multi_transform"]))
def test_a_sweep_row_equals_a_plain_optax_loop(name):
    from jaxopt_lab import sweep

    seed = 4
    rows = sweep.sweep(
        X, Y, LAYERS, lambda learning_rate: transformation(name), {"learning_rate": [0.01]},
        seeds=[seed], num_epochs=TREE_EPOCHS, chunk_epochs=TREE_CHUNK, keep_costs=True,
    )  # fmt: skip

    expected_params, _, expected_costs = optax_reference(name, seed)
    np.testing.assert_allclose(rows[0]["costs"], expected_costs, rtol=1e-4, atol=1e-6)
    predictions = np.asarray(model.predict(expected_params, jnp.asarray(X, jnp.float32)))
    assert rows[0]["accuracy"] == float(np.mean(predictions == Y))


def test_tree_aware_transformations_differ_from_their_flat_reading():
    # Guards the references above against agreeing trivially: on one flat vector, masked weight
    # decay sees no matrix (so never decays) and LAMB takes one trust ratio for all layers.
    params = model.init_params(LAYERS, 4)
    grads = _grad(params, X[:, :64], Y[:, :64])

    @functools.partial(jax.jit, static_argnums=0)
    def first_step(name, params, grads):
        optimizer = transformation(name)
        tree_updates, _ = optimizer.update(grads, optimizer.init(params), params)
        vector, unravel = jax.flatten_util.ravel_pytree(params)
        flat_grads, _ = jax.flatten_util.ravel_pytree(grads)
        flat_updates, _ = optimizer.update(flat_grads, optimizer.init(vector), vector)
        return tree_updates, unravel(flat_updates)

    tree, flat = first_step("adamw_masked", params, grads)
    assert not np.allclose(tree["W1"], flat["W1"], rtol=1e-3)
    np.testing.assert_allclose(tree["b1"], flat["b1"], rtol=1e-5)  # biases are not decayed
    tree, flat = first_step("lamb", params, grads)
    assert not np.allclose(tree["W2"], flat["W2"], rtol=1e-3)


def test_only_declared_elementwise_optimizers_take_the_flat_path():
    for optimizer in [optimizers.adam(0.01), optimizers.gd(0.1), optimizers.momentum(0.1)]:
        assert train.is_elementwise(optimizer)
        state = train.init_state(LAYERS, optimizer, 0)
        assert all(leaf.ndim <= 1 for leaf in jax.tree.leaves(state.opt_state))
    mixed = optimizers.chain(optax.clip_by_global_norm(1.0), optimizers.adam(0.01))
    for optimizer in [optax_equivalents.adam(0.01), optax.lamb(0.01), mixed]:
        assert not train.is_elementwise(optimizer)
        state = train.init_state(LAYERS, optimizer, 0)
        assert any(leaf.ndim == 2 for leaf in jax.tree.leaves(state.opt_state))


# ---------------------------------------------------------------------------------------------
# Transformations that take Optax's extra arguments (value, grad, value_fn) train as in a plain loop
# ---------------------------------------------------------------------------------------------

EXTRA_ARGS_SEED = 4
EXTRA_ARGS_LAYERS = [2, 1]  # logistic regression: L-BFGS compiles its line search per leaf


@functools.cache
def extra_args_transformation(name):
    return {"lbfgs": optax.lbfgs, "polyak_sgd": optax.polyak_sgd}[name]()


@functools.cache
def extra_args_step(name):
    """One step of a plain Optax loop as Optax's documentation writes one for L-BFGS: the batch's
    mean cross-entropy is passed as ``value``, its gradient as ``grad`` and the loss of the params
    dict as ``value_fn``. Jitted once per transformation (and batch shape), with the XLA options
    fit's programs use: float32 L-BFGS's line search turns a last-bit difference between two
    compilations into another step, and the test is about the algorithm, not the compiler."""
    optimizer = extra_args_transformation(name)

    @functools.partial(jax.jit, compiler_options=train.compiler_options())
    def step(params, state, xb, yb):
        def objective(p):
            per_example = model.cross_entropy(model.forward(p, xb), yb)
            return jnp.mean(per_example), jnp.sum(per_example)

        (value, total), grads = jax.value_and_grad(objective, has_aux=True)(params)
        value_fn = lambda p: objective(p)[0]  # noqa: E731
        updates, state = optimizer.update(
            grads, state, params, value=value, grad=grads, value_fn=value_fn
        )
        return optax.apply_updates(params, updates), state, total

    return step


@functools.cache
def extra_args_reference(name, m, mini_batch_size):
    """That step over the first ``m`` examples, with the batches, orders, initial parameters and
    reported costs of ``optax_reference``."""
    optimizer, step = extra_args_transformation(name), extra_args_step(name)
    params = jax.tree.map(jnp.asarray, model.init_params(EXTRA_ARGS_LAYERS, EXTRA_ARGS_SEED))
    # Strongly typed as step returns it (the line search starts with weakly typed leaves), so that
    # step compiles once; jitted, so that init is one compile rather than one per leaf and op.
    strong = lambda state: jax.tree.map(lambda leaf: leaf.astype(leaf.dtype), state)  # noqa: E731
    state = jax.jit(lambda p: strong(optimizer.init(p)))(params)
    key = train.shuffle_key(EXTRA_ARGS_SEED)
    costs = []
    for epoch in range(TREE_EPOCHS):
        order = np.asarray(data.epoch_permutation(key, epoch, m))
        X_shuffled, Y_shuffled = X[:, order].astype(np.float32), Y[:, order].astype(np.float32)
        total = 0.0
        for start in range(0, m, mini_batch_size):
            cut = slice(start, start + mini_batch_size)
            params, state, batch_total = step(params, state, X_shuffled[:, cut], Y_shuffled[:, cut])
            total += float(batch_total)
        costs.append(total / m)
    return params, np.array(costs)


@pytest.fixture(scope="module")
def plain_extra_args_loop():
    """``extra_args_reference``, as a module fixture so that its tests share one pytest-xdist worker
    and with it the compiled steps."""
    return extra_args_reference


# Full-batch L-BFGS (mini_batch_size >= m) over the first 150 examples, mini-batch L-BFGS in
# batches of 150: the plain loop compiles its step once for both.
EXTRA_ARGS_RUNS = pytest.mark.parametrize(
    "name, m, mini_batch_size",
    [("lbfgs", M // 2, 1000), ("lbfgs", M, M // 2), ("polyak_sgd", M, 64)],
    ids=["lbfgs_full_batch", "lbfgs_mini_batch", "polyak_sgd"],
)


@EXTRA_ARGS_RUNS
def test_fit_gives_extra_arguments_as_a_plain_optax_loop_does(
    name, m, mini_batch_size, plain_extra_args_loop
):
    # Without value, grad and value_fn these fail inside fit with Optax's TypeError.
    expected_params, expected_costs = plain_extra_args_loop(name, m, mini_batch_size)
    compiles = []

    result = train.fit(
        X[:, :m], Y[:, :m], EXTRA_ARGS_LAYERS, extra_args_transformation(name),
        num_epochs=TREE_EPOCHS, mini_batch_size=mini_batch_size, seed=EXTRA_ARGS_SEED,
        chunk_epochs=TREE_CHUNK,
        on_chunk=lambda state: compiles.append(train.compile_clock.backend_compiles),
    )  # fmt: skip

    assert result.layout == "tree"
    assert_same_run(result.params, result.costs, expected_params, expected_costs)
    assert expected_costs[-1] < 0.7 * expected_costs[0]  # it trained
    # Later chunks reuse the first chunk's program (the line search's initial state is weakly
    # typed, a chunk's returned state is not: fit makes them agree).
    assert compiles[1:] == compiles[:1] * (len(compiles) - 1)


def test_a_sweep_row_with_extra_arguments_equals_a_plain_optax_loop(plain_extra_args_loop):
    from jaxopt_lab import sweep

    rows = sweep.sweep(
        X, Y, EXTRA_ARGS_LAYERS, lambda learning_rate: extra_args_transformation("polyak_sgd"),
        {"learning_rate": [1.0]}, seeds=[EXTRA_ARGS_SEED], num_epochs=TREE_EPOCHS,
        chunk_epochs=TREE_CHUNK, keep_costs=True,
    )  # fmt: skip

    expected_params, expected_costs = plain_extra_args_loop("polyak_sgd", M, 64)
    np.testing.assert_allclose(rows[0]["costs"], expected_costs, rtol=1e-4, atol=1e-6)
    predictions = np.asarray(model.predict(expected_params, jnp.asarray(X, jnp.float32)))
    assert rows[0]["accuracy"] == float(np.mean(predictions == Y))


def test_extra_arguments_add_nothing_to_the_flat_path():
    # The hand-rolled optimizers take value, grad and value_fn and ignore them: the step traces to
    # the same program as a step that never passes them.
    optimizer = optimizers.adam(0.01)
    view, to_params = train.view_of("flat", model.init_params(LAYERS, 0))
    state = optimizer.init(view)
    xb, yb = jnp.asarray(X[:, :64], jnp.float32), jnp.asarray(Y[:, :64], jnp.float32)

    def without_extra_arguments(view, state):
        objective = functools.partial(train._batch_objective, to_params=to_params, xb=xb, yb=yb)
        (_, total), grads = jax.value_and_grad(objective, has_aux=True)(view)
        updates, state = optimizer.update(grads, state, view)
        return optax.apply_updates(view, updates), state, total

    def step(view, state):
        return train.batch_step(optimizer, to_params, view, state, xb, yb)

    assert str(jax.make_jaxpr(step)(view, state)) == str(
        jax.make_jaxpr(without_extra_arguments)(view, state)
    )


@MODES
def test_a_tree_path_run_resumes_from_a_chunk_state(seed):
    optimizer = transformation("lamb")
    states = []
    full = train.fit(
        X, Y, LAYERS, optimizer, num_epochs=TREE_EPOCHS, seed=seed, chunk_epochs=TREE_CHUNK,
        on_chunk=states.append,
    )  # fmt: skip
    resumed = train.fit(
        X, Y, LAYERS, optimizer, num_epochs=TREE_EPOCHS, seed=seed, chunk_epochs=TREE_CHUNK,
        state=states[1],
    )  # fmt: skip
    assert states[1].epoch == 2 * TREE_CHUNK
    assert_trees_equal(resumed.params, full.params)
    np.testing.assert_array_equal(resumed.costs, full.costs)
    expected_params, _, expected_costs = optax_reference("lamb", seed)
    assert_same_run(full.params, full.costs, expected_params, expected_costs)


# ---------------------------------------------------------------------------------------------
# Compilation
# ---------------------------------------------------------------------------------------------


def test_second_fit_with_a_new_learning_rate_does_not_recompile():
    first = uninterrupted(None, 0.01)
    compiles = train.compile_clock.backend_compiles

    second = train.fit(X, Y, LAYERS, optimizers.adam(0.003), num_epochs=EPOCHS)

    assert train.compile_clock.backend_compiles == compiles
    assert second.costs.shape == (EPOCHS,)
    assert not np.array_equal(second.costs, first.costs), "the new learning rate was not used"


# ---------------------------------------------------------------------------------------------
# Randomness modes and determinism
# ---------------------------------------------------------------------------------------------


@MODES
def test_the_same_configuration_gives_the_same_bits(seed):
    again = train.fit(X, Y, LAYERS, optimizers.adam(0.01), num_epochs=EPOCHS, seed=seed)
    assert_trees_equal(again.params, uninterrupted(seed).params)
    np.testing.assert_array_equal(again.costs, uninterrupted(seed).costs)


def test_seeds_and_modes_give_different_runs():
    course, seed_4 = uninterrupted(None), uninterrupted(4)
    seed_5 = train.fit(X, Y, LAYERS, optimizers.adam(0.01), num_epochs=EPOCHS, seed=5)
    assert not np.array_equal(course.costs, seed_4.costs)
    assert not np.array_equal(seed_4.costs, seed_5.costs)
    assert not np.array_equal(seed_4.params["W1"], seed_5.params["W1"])
    for run in (course, seed_4, seed_5):
        assert run.costs[-1] < run.costs[0], "100 epochs of Adam should lower the cost"


# ---------------------------------------------------------------------------------------------
# Chunks, callbacks and resuming
# ---------------------------------------------------------------------------------------------


@MODES
def test_results_do_not_depend_on_the_chunk_size(seed):
    # 100 = 14 * 7 + 2: chunks of 7 epochs and a short, padded last chunk, against one chunk of 100
    chunked = train.fit(
        X, Y, LAYERS, optimizers.adam(0.01), num_epochs=EPOCHS, seed=seed, chunk_epochs=7
    )
    assert_trees_equal(chunked.params, uninterrupted(seed).params)
    assert_trees_equal(chunked.opt_state, uninterrupted(seed).opt_state)
    np.testing.assert_array_equal(chunked.costs, uninterrupted(seed).costs)


@MODES
def test_resuming_from_a_chunk_state_equals_the_uninterrupted_run(seed):
    states = []
    optimizer = optimizers.adam(0.01)
    full = train.fit(
        X, Y, LAYERS, optimizer, num_epochs=EPOCHS, seed=seed, chunk_epochs=7,
        on_chunk=states.append,
    )  # fmt: skip

    assert [s.epoch for s in states] == list(range(7, EPOCHS, 7)) + [EPOCHS]
    for s in states:
        assert len(s.costs) == s.epoch
        np.testing.assert_array_equal(s.costs, full.costs[: s.epoch])

    # Stop after three chunks; continue from that state, in chunks of a different size.
    resumed = train.fit(X, Y, LAYERS, optimizer, num_epochs=EPOCHS, seed=seed, state=states[2])
    assert_trees_equal(resumed.params, uninterrupted(seed).params)
    assert_trees_equal(resumed.opt_state, uninterrupted(seed).opt_state)
    np.testing.assert_array_equal(resumed.costs, uninterrupted(seed).costs)


def test_divergence_raises_with_the_first_non_finite_epoch():
    steps_per_epoch = len(data.batch_sizes(M, 64))
    diverge_at = 5  # the learning rate jumps to 1e38 at the first update of this epoch
    blow_up = optimizers.gd(lambda step: jnp.where(step < diverge_at * steps_per_epoch, 0.01, 1e38))

    with pytest.raises(train.DivergenceError) as caught:
        train.fit(X, Y, LAYERS, blow_up, num_epochs=20, chunk_epochs=7)

    error = caught.value
    assert error.epoch == diverge_at
    assert str(diverge_at) in str(error)
    # the run stops at the end of the chunk holding the bad epoch, with everything up to there
    assert error.state.epoch == 7
    assert np.all(np.isfinite(error.state.costs[:diverge_at]))
    assert not np.isfinite(error.state.costs[diverge_at])
