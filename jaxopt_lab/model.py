"""The course's network as pure functions: LINEAR->ReLU hidden layers, one sigmoid unit out.

Params are a dict ``{"W1", "b1", ..., "WL", "bL"}`` with ``W_l`` of shape (n_l, n_{l-1}) and ``b_l``
of shape (n_l, 1); examples are columns. Gradients come from ``jax.grad`` of :func:`loss`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, jax.Array]

COURSE_INIT_SEED = 3  # the course's initialize_parameters calls np.random.seed(3)


def _course_he_init(layers_dims: list[int]) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(COURSE_INIT_SEED)
    params = {}
    for l in range(1, len(layers_dims)):
        fan_in = layers_dims[l - 1]
        params[f"W{l}"] = rng.randn(layers_dims[l], fan_in) * np.sqrt(2 / fan_in)
        params[f"b{l}"] = np.zeros((layers_dims[l], 1))
    return params


def init_key(seed: int) -> jax.Array:
    """The key that seed mode initialises parameters from (the shuffle key is its sibling)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 0)


def init_params(layers_dims: list[int], seed: int | None = None) -> Params:
    """He-initialised weights, zero biases.

    Args:
      layers_dims: layer widths, input first, e.g. ``[2, 5, 2, 1]``.
      seed: ``None`` for the course's draw (``np.random.seed(3)``, ``randn(n_l, n_{l-1}) *
        sqrt(2 / n_{l-1})`` layer by layer); an int for a ``jax.random`` draw from that seed.

    Returns:
      The params dict in the default float dtype (float64 under ``JAX_ENABLE_X64``).
    """
    dtype = jnp.result_type(float)
    if seed is None:
        # Cast on the host: a device-side cast would compile one small program per array.
        return {
            k: jax.device_put(v.astype(dtype))
            for k, v in _course_he_init(list(layers_dims)).items()
        }
    # uint32: a traced Python int would be int32 in float32 mode (the key is the same).
    return _seeded_params_program(np.uint32(seed), tuple(layers_dims), dtype)


def seeded_params(seed, layers_dims: tuple[int, ...], dtype) -> Params:
    """Seed mode's He initialisation from ``init_key(seed)``, traceable (a sweep vmaps it over
    seeds; :func:`init_params` runs it as one compiled program)."""
    params = {}
    keys = jax.random.split(init_key(seed), len(layers_dims) - 1)
    for l in range(1, len(layers_dims)):
        fan_in = layers_dims[l - 1]
        w = jax.random.normal(keys[l - 1], (layers_dims[l], fan_in), dtype)
        params[f"W{l}"] = w * jnp.sqrt(jnp.asarray(2 / fan_in, dtype))
        params[f"b{l}"] = jnp.zeros((layers_dims[l], 1), dtype)
    return params


# One compiled program (eagerly, each of a dozen random ops would compile its own). It runs once
# per run and takes microseconds: XLA's backend optimisations would only double its compile time
# (0.76 -> 0.39 s measured here, the same bits).
_seeded_params_program = jax.jit(
    seeded_params, static_argnums=(1, 2), compiler_options={"xla_backend_optimization_level": 0}
)


def num_layers(params: Params) -> int:
    return len(params) // 2


TINY_LAYER = 64  # weights with at most this many entries are applied without a matmul call


def _linear(W: jax.Array, b: jax.Array, a: jax.Array) -> jax.Array:
    # For the lesson's 5x2, 2x5 and 1x2 weights a matmul kernel call costs more than its arithmetic
    # on CPU; a broadcast multiply-and-sum is the same contraction, but XLA fuses it with the bias,
    # the ReLU and the neighbouring elementwise work (measured: 7.7 -> 5.2 us per Adam step here).
    if W.size <= TINY_LAYER:
        return jnp.sum(W[:, :, None] * a[None, :, :], axis=1) + b
    return W @ a + b


def forward(params: Params, X: jax.Array) -> jax.Array:
    """Logits of the output unit, shape (1, m): ReLU on every hidden layer, no sigmoid at the end."""
    a = X
    L = num_layers(params)
    for l in range(1, L):
        a = jax.nn.relu(_linear(params[f"W{l}"], params[f"b{l}"], a))
    return _linear(params[f"W{L}"], params[f"b{L}"], a)


def cross_entropy(logits: jax.Array, Y: jax.Array) -> jax.Array:
    """Per-example binary cross-entropy of sigmoid(logits) against 0/1 labels.

    Written as ``softplus(z) - y z`` (the log-sigmoid form) instead of ``-y log(a) - (1-y) log(1-a)``:
    equal in exact arithmetic, but finite for any finite logit, where ``log(sigmoid(1e4))`` overflows.
    Its derivative in z is ``sigmoid(z) - y``, the course's ``dZ_L``.
    """
    return jax.nn.softplus(logits) - Y * logits


def loss(params: Params, X: jax.Array, Y: jax.Array) -> jax.Array:
    """Mean binary cross-entropy over the columns of X; ``jax.grad`` of it is the course's gradient."""
    return jnp.mean(cross_entropy(forward(params, X), Y))


@jax.jit  # one compiled program, not one dispatch per primitive when called eagerly
def predict(params: Params, X: jax.Array) -> jax.Array:
    """0/1 predictions, shape (1, m): 1 where sigmoid(logit) > 0.5, i.e. where the logit is > 0."""
    return (forward(params, X) > 0).astype(jnp.int32)


@jax.jit
def accuracy(params: Params, X: jax.Array, Y: jax.Array) -> jax.Array:
    """Fraction of columns whose prediction equals the label."""
    return jnp.mean(predict(params, X) == Y)
