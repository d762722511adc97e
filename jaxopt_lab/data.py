"""The two-moons data, and the order in which each epoch visits its columns.

Examples are columns: X has shape (n_features, m), Y has shape (1, m), as in the course.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

COURSE_SHUFFLE_SEED = 11  # epoch i is shuffled after np.random.seed(11 + i)
# The name of seed mode's epoch order (epoch_permutation): a checkpoint records it, and one made
# with another order is refused rather than continued in this one.
EPOCH_ORDER = "swap-or-not-12"


def make_moons(
    n_samples: int = 300, noise: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half-moons, examples as columns.

    Args:
      n_samples: number of points m.
      noise: standard deviation of the Gaussian noise added to each point.
      seed: NumPy seed for scikit-learn's generator.

    Returns:
      ``(X, Y)`` with X of shape (2, m), float64, and Y of shape (1, m) holding 0/1 labels.
    """
    import sklearn.datasets  # imported here: it costs a second at start-up, load_moons needs none

    x, y = sklearn.datasets.make_moons(
        n_samples=n_samples, noise=noise, random_state=np.random.RandomState(seed)
    )
    return x.T, y.reshape(1, -1).astype(np.float64)


COURSE_MOONS = Path(__file__).with_name("course_moons.csv")


def load_moons() -> tuple[np.ndarray, np.ndarray]:
    """The course's training set: 300 points, noise 0.2, NumPy seed 3.

    Read from ``course_moons.csv``, the output of ``np.random.seed(3)`` then scikit-learn's
    ``make_moons(300, noise=0.2)`` stored with round-trip precision (the tests regenerate it and
    compare bit for bit); reading it skips a second of importing scikit-learn.
    """
    table = np.loadtxt(COURSE_MOONS, delimiter=",")
    return np.ascontiguousarray(table[:, :2].T), table[:, 2:].T.copy()


COURSE_RESULTS = Path(__file__).with_name("course_results.json")


def course_results() -> list[dict]:
    """The course's seven recorded runs (its printed costs, learning rates and accuracies).

    Each entry has ``run``, ``optimizer``, ``learning_rate``, ``decay`` (None, ``"update_lr"`` or
    ``"schedule_lr_decay"``), ``cost_at_epoch`` and ``accuracy``; float64 course mode reproduces
    every figure (the tests and the notebook compare against them).
    """
    return json.loads(COURSE_RESULTS.read_text())["runs"]


@functools.lru_cache(maxsize=8)
def _course_permutation_block(m: int, first_epoch: int, num_epochs: int) -> np.ndarray:
    block = np.empty((num_epochs, m), dtype=np.int32)
    rng = np.random.RandomState()  # re-seeding one generator is 15x cheaper than building one
    for i in range(num_epochs):
        rng.seed(COURSE_SHUFFLE_SEED + first_epoch + i)
        block[i] = rng.permutation(m)
    block.setflags(write=False)
    return block


def course_permutations(m: int, first_epoch: int, num_epochs: int) -> np.ndarray:
    """The course's column orders for epochs ``first_epoch .. first_epoch + num_epochs - 1``.

    Epoch i uses ``np.random.seed(11 + i); np.random.permutation(m)``. Blocks are cached (read-only)
    because a NumPy seed costs microseconds per epoch and repeated runs reuse the same orders.

    Returns:
      int32 array of shape (num_epochs, m); row i is a permutation of ``range(m)``.
    """
    return _course_permutation_block(int(m), int(first_epoch), int(num_epochs))


def course_permutation(m: int, seed: int) -> np.ndarray:
    """``np.random.seed(seed); np.random.permutation(m)`` without touching NumPy's global state."""
    return np.random.RandomState(seed).permutation(m)


SWAP_ROUNDS = 12  # rounds of the seed-mode shuffle (see epoch_permutation)


def epoch_permutation(key: jax.Array, epoch: jax.Array | int, m: int) -> jax.Array:
    """JAX-mode column order of one epoch: a pure function of ``(key, epoch)``.

    Folding the epoch into the key (instead of splitting a key carried through the loop) lets a run
    be cut into chunks, resumed, or vmapped over seeds and still draw the same bits.

    The order is a swap-or-not shuffle (Hoang, Morris and Rogaway, 2012) of ``range(m)`` with
    :data:`SWAP_ROUNDS` rounds. From ``fold_in(key, epoch)`` draw, per round ``r``, a pivot
    ``K_r = bits mod m`` and a 32-bit word ``H_r``. Every position ``x`` goes through the rounds::

        x' = (K_r - x) mod m            # x's partner: the map x -> x' is an involution
        if bit(max(x, x'), H_r): x = x' # both partners read the same bit, so pairs swap together

    where ``bit`` is the top bit of an integer hash of ``max(x, x') ^ H_r``. Each round is a
    bijection, so the result is a permutation for any ``m``, and each position's image is
    computed on its own: no sort and no scatter. On this machine it costs about 1.1 us per epoch
    of 300 examples against 11 us for ``jax.random.permutation`` (a sort of random bits), which
    a seeds-only grid paid once per run and epoch. With 12 rounds the examples' positions and the
    pairs that share a mini-batch are as uniform as a random permutation's over thousands of
    keys (tests/test_data.py measures both); 8 rounds are measurably less uniform.

    This is the order of :data:`EPOCH_ORDER`; before it, seed mode sorted threefry bits
    (``jax.random.permutation``), so seed-mode results of earlier versions differ.
    """
    if m == 1:  # XLA:CPU fails to compile the rounds on one element ("Unknown MLIR failure")
        return jnp.zeros(1, jnp.int32)
    key = jax.random.fold_in(key, epoch)
    pivots, words = jax.random.bits(key, (2, SWAP_ROUNDS), jnp.uint32)
    pivots = pivots % jnp.uint32(m)
    x = jnp.arange(m, dtype=jnp.uint32)
    for r in range(SWAP_ROUNDS):
        partner = jnp.where(pivots[r] >= x, pivots[r] - x, pivots[r] + jnp.uint32(m) - x)
        x = jnp.where(_top_bit(jnp.maximum(x, partner) ^ words[r]), partner, x)
    return x.astype(jnp.int32)


def _top_bit(h: jax.Array) -> jax.Array:
    """The top bit of a 32-bit multiply-xorshift hash of ``h`` (uint32 in, bool out)."""
    h = h * jnp.uint32(0x9E3779B1)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x2C1B3C6D)
    h = h ^ (h >> 13)
    return (h >> 31) == 1


def batch_sizes(m: int, mini_batch_size: int) -> list[int]:
    """Sizes of an epoch's mini-batches: full batches, then the remainder (300, 64 -> 64*4, 44)."""
    full, rest = divmod(m, mini_batch_size)
    return [mini_batch_size] * full + ([rest] if rest else [])
