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


@pytest.mark.parametrize("m", [1, 300, 513, 1700, 2**16 + 1])
def test_epoch_permutation_is_jax_random_permutation_bit_for_bit(m):
    # 1700 takes two sorting rounds in jax.random.permutation; above 2**16 it is called directly.
    seeds, epochs = jnp.asarray([0, 1, 2**32 - 1], jnp.uint32), jnp.asarray([0, 7, 123456])

    @jax.jit
    def both(seed, epoch):
        key = jax.random.PRNGKey(seed)
        expected = jax.random.permutation(jax.random.fold_in(key, epoch), m)
        return data.epoch_permutation(key, epoch, m), expected

    got, expected = jax.vmap(both)(seeds, epochs)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


@pytest.mark.parametrize("m", [2, 300, 2**16])
def test_stable_argsort_u32_is_numpy_s_stable_argsort(m):
    rng = np.random.default_rng(m)
    # ties from many to few: values below 1, 4, 2**16 and 2**32
    values = np.stack([rng.integers(0, high, m, dtype=np.uint64) for high in (1, 4, 2**16, 2**32)])
    values = np.concatenate([values, values | 0xFFFF0000]).astype(np.uint32)  # equal high bits
    got = jax.jit(jax.vmap(data.stable_argsort_u32))(jnp.asarray(values))
    np.testing.assert_array_equal(np.asarray(got), np.argsort(values, axis=-1, kind="stable"))


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
