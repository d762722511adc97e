"""The two-moons data, and the order in which each epoch visits its columns.

Examples are columns: X has shape (n_features, m), Y has shape (1, m), as in the course.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

COURSE_SHUFFLE_SEED = 11  # epoch i is shuffled after np.random.seed(11 + i)
# The name of seed mode's epoch order (epoch_permutation): a checkpoint records it, and one made
# with another order is refused rather than continued in this one.
EPOCH_ORDER = "sorted-threefry-bits"


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


def epoch_permutation(key: jax.Array, epoch: jax.Array | int, m: int) -> jax.Array:
    """JAX-mode column order of one epoch: a pure function of ``(key, epoch)``.

    Folding the epoch into the key (instead of splitting a key carried through the loop) lets a run
    be cut into chunks, resumed, or vmapped over seeds and still draw the same bits.

    The order is ``jax.random.permutation(jax.random.fold_in(key, epoch), m)`` bit for bit: in
    each of its ``ceil(3 ln m / ln(2**32 - 1))`` rounds, split the key, draw 32 random bits per
    element and reorder by a stable sort of those bits. The stable sort is done here as two sorts of
    one packed integer each (:func:`stable_argsort_u32`): XLA:CPU sorts a single integer operand
    about 6x faster than it sorts keys with values, so a seed-mode epoch order costs about 14 us
    instead of 37 (the cost of every seed's epoch in ``fit`` and ``sweep``).
    """
    key = jax.random.fold_in(key, epoch)
    if m > 2**16:  # the packed keys hold two positions of 16 bits at most
        return jax.random.permutation(key, m)
    rounds = math.ceil(3 * math.log(max(1, m)) / math.log(2**32 - 1))
    order = jnp.arange(m)
    for _ in range(rounds):
        key, subkey = jax.random.split(key)
        order = order[stable_argsort_u32(jax.random.bits(subkey, (m,), jnp.uint32))]
    return order


def stable_argsort_u32(bits: jax.Array) -> jax.Array:
    """``argsort(bits, stable=True)`` of a vector of at most ``2**16`` uint32 values, int32.

    With ``b`` bits to write a position (``2**b >= m``), split each value into its high ``b`` bits
    and its low ``32 - b``. The order sought is by (high, low, position). Sort once by
    (low, position), packed as ``low << b | position``: every key is distinct, so any sort gives
    the stable order. Then sort by (high, place in that first order), packed the same way: the
    second key keeps the first order among equal highs, exactly as a stable sort would.
    """
    m = bits.shape[-1]
    b = max(1, (m - 1).bit_length())
    position = jnp.arange(m, dtype=jnp.uint32)
    unpack = jnp.uint32((1 << b) - 1)  # a packed key's position
    high, low = bits >> (32 - b), bits & jnp.uint32((1 << (32 - b)) - 1)
    by_low = jnp.sort((low << b) | position) & unpack
    by_high = jnp.sort((high[by_low] << b) | position) & unpack
    return by_low[by_high].astype(jnp.int32)


def batch_sizes(m: int, mini_batch_size: int) -> list[int]:
    """Sizes of an epoch's mini-batches: full batches, then the remainder (300, 64 -> 64*4, 44)."""
    full, rest = divmod(m, mini_batch_size)
    return [mini_batch_size] * full + ([rest] if rest else [])
