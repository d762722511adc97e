"""The two-moons data and the epoch orders (jaxopt_lab.data)."""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.datasets
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_lab import data


@contextlib.contextmanager
def numpy_global_state_restored():
    """Let the test seed NumPy's global generator the way the course does, then put it back."""
    saved = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(saved)


def assert_same_numpy_state(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_load_moons_is_the_course_data():
    with numpy_global_state_restored():
        np.random.seed(3)
        x, y = sklearn.datasets.make_moons(n_samples=300, noise=0.2)

    X, Y = data.load_moons()

    assert X.shape == (2, 300) and Y.shape == (1, 300)
    assert np.issubdtype(X.dtype, np.floating)
    np.testing.assert_array_equal(X, x.T)
    np.testing.assert_array_equal(Y, y.reshape(1, 300))
    assert set(np.unique(Y)) == {0, 1}


def test_load_moons_leaves_numpy_global_state_alone():
    with numpy_global_state_restored():
        np.random.seed(1234)
        before = np.random.get_state()
        data.load_moons()
        assert_same_numpy_state(np.random.get_state(), before)


@pytest.mark.parametrize("n_samples, noise, seed", [(50, 0.1, 0), (1001, 0.3, 7)])
def test_make_moons_is_sklearn_with_that_seed(n_samples, noise, seed):
    x, y = sklearn.datasets.make_moons(n_samples=n_samples, noise=noise, random_state=seed)

    X, Y = data.make_moons(n_samples, noise, seed)

    assert X.shape == (2, n_samples) and Y.shape == (1, n_samples)
    np.testing.assert_array_equal(X, x.T)
    np.testing.assert_array_equal(Y, y.reshape(1, -1))
    assert not np.array_equal(X, data.make_moons(n_samples, noise, seed + 1)[0])


@pytest.mark.parametrize("m, first_epoch, num_epochs", [(300, 0, 5), (37, 1000, 3)])
def test_course_permutations_are_the_course_shuffles(m, first_epoch, num_epochs):
    expected = []
    with numpy_global_state_restored():
        for i in range(first_epoch, first_epoch + num_epochs):
            np.random.seed(11 + i)
            expected.append(np.random.permutation(m))

    with numpy_global_state_restored():
        np.random.seed(99)
        before = np.random.get_state()
        perms = data.course_permutations(m, first_epoch, num_epochs)
        assert_same_numpy_state(np.random.get_state(), before)

    assert perms.shape == (num_epochs, m)
    np.testing.assert_array_equal(perms, np.stack(expected))
    with pytest.raises(ValueError):
        perms[0, 0] = 1  # a cached block must not be edited through a caller's view


def test_course_permutation_is_seed_then_permutation():
    with numpy_global_state_restored():
        np.random.seed(42)
        expected = np.random.permutation(300)
    np.testing.assert_array_equal(data.course_permutation(300, 42), expected)


def test_epoch_permutation_is_a_pure_function_of_key_and_epoch():
    key = jax.random.PRNGKey(0)
    perm = jax.jit(data.epoch_permutation, static_argnums=2)

    first = np.asarray(perm(key, 5, 300))
    np.testing.assert_array_equal(np.sort(first), np.arange(300))
    np.testing.assert_array_equal(np.asarray(perm(key, 5, 300)), first)
    assert not np.array_equal(np.asarray(perm(key, 6, 300)), first)
    assert not np.array_equal(np.asarray(perm(jax.random.PRNGKey(1), 5, 300)), first)

    # vmapped over epochs it draws the same orders as one epoch at a time
    many = jax.vmap(lambda e: data.epoch_permutation(key, e, 300))(jnp.arange(3, 8))
    np.testing.assert_array_equal(np.asarray(many[2]), first)


def _swap_or_not_numpy(pivots, words, m):
    """The swap-or-not shuffle written independently in NumPy from its formula (uint64 math)."""
    x = np.arange(m, dtype=np.uint64)
    mask = np.uint64(2**32 - 1)
    for pivot, word in zip(pivots.astype(np.uint64), words.astype(np.uint64), strict=True):
        partner = (pivot + np.uint64(m) - x) % np.uint64(m)
        h = np.maximum(x, partner) ^ word
        h = (h * np.uint64(0x9E3779B1)) & mask
        h ^= h >> np.uint64(15)
        h = (h * np.uint64(0x2C1B3C6D)) & mask
        h ^= h >> np.uint64(13)
        x = np.where((h >> np.uint64(31)) == 1, partner, x)
    return x.astype(np.int32)


@pytest.mark.parametrize("m", [1, 2, 3, 300, 513, 2**16 + 1])
def test_epoch_permutation_is_the_swap_or_not_shuffle(m):
    # Against the formula in NumPy, with the round keys drawn as the docstring says.
    for seed, epoch in ((0, 0), (1, 7), (2**32 - 1, 123456)):
        key = jax.random.PRNGKey(np.uint32(seed))
        bits = jax.random.bits(jax.random.fold_in(key, epoch), (2, data.SWAP_ROUNDS), jnp.uint32)
        pivots, words = np.asarray(bits[0]) % np.uint32(m), np.asarray(bits[1])
        got = np.asarray(jax.jit(data.epoch_permutation, static_argnums=2)(key, epoch, m))
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, _swap_or_not_numpy(pivots, words, m))
        np.testing.assert_array_equal(np.sort(got), np.arange(m))


def test_epoch_permutation_is_as_uniform_as_a_random_permutation():
    # Over 3000 keys, where each example lands and which pairs share a mini-batch of the course's
    # split (4 x 64 + 44) must spread as a uniform random permutation's would: the spread of the
    # observed frequencies equals the sampling noise of a binomial count, within 5%.
    m, n = 300, 3000
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(n, dtype=jnp.uint32))
    orders = np.asarray(jax.jit(jax.vmap(lambda k: data.epoch_permutation(k, 3, m)))(keys))
    position = np.argsort(orders, axis=1)  # position[k, j]: where example j lands under key k
    where = np.zeros((m, m))
    np.add.at(where, (np.tile(np.arange(m), n), position.ravel()), 1)
    p = 1 / m
    assert np.std(where / n) == pytest.approx(np.sqrt(p * (1 - p) / n), rel=0.05)

    sizes = data.batch_sizes(m, 64)
    batch = np.repeat(np.arange(len(sizes)), sizes)[position]  # batch of example j under key k
    together = sum((batch == b).astype(float).T @ (batch == b).astype(float) for b in range(len(sizes)))
    pairs = together[~np.eye(m, dtype=bool)] / n
    q = sum(s * (s - 1) for s in sizes) / (m * (m - 1))
    assert np.mean(pairs) == pytest.approx(q, rel=1e-3)
    assert np.std(pairs) == pytest.approx(np.sqrt(q * (1 - q) / n), rel=0.05)


def test_batch_sizes_of_the_course():
    # The course's split of 300 examples into mini-batches of 64.
    assert data.batch_sizes(300, 64) == [64, 64, 64, 64, 44]
    assert data.batch_sizes(256, 64) == [64, 64, 64, 64]


@settings(max_examples=200, deadline=None)
@given(m=st.integers(1, 5000), mini_batch_size=st.integers(1, 600))
def test_batch_sizes_partition_the_epoch(m, mini_batch_size):
    sizes = data.batch_sizes(m, mini_batch_size)

    assert sum(sizes) == m
    assert len(sizes) == math.ceil(m / mini_batch_size)
    assert all(size == mini_batch_size for size in sizes[:-1])
    assert 0 < sizes[-1] <= mini_batch_size
    assert sizes[-1] == (m % mini_batch_size or mini_batch_size)
