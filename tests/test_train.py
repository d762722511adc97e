"""The fused training program (jaxopt_lab.train.fit) against a plain Python loop, and its promises:
no recompilation, chunk-independent and resumable results, determinism, divergence detection.

Compiling a fit program is the expensive part here (seconds on a small CPU), so the tests share
a few shapes: the course's data and network, mini-batches of 64, chunks of 7 or 100 epochs.
"""

from __future__ import annotations

import functools

import jax
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


def test_fit_with_the_optax_twin_gives_the_same_run():
    mine = train.fit(X, Y, LAYERS, optimizers.adam(0.01), num_epochs=7)
    twin = train.fit(X, Y, LAYERS, optax_equivalents.adam(0.01), num_epochs=7)
    np.testing.assert_allclose(twin.costs, mine.costs, rtol=1e-5)
    for key in mine.params:
        np.testing.assert_allclose(twin.params[key], mine.params[key], rtol=1e-4, atol=1e-5)


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
