"""The lesson's update rules, written by hand: gradient descent, momentum, RMSprop and Adam.

Each optimizer is an ``optax.GradientTransformation``: a ``scale_by_*`` rule turns gradients into a
direction, then :func:`scale_by_learning_rate` (the one place where the learning rate, a float or a
schedule ``step -> lr``, is applied and its sign flipped) makes it a step. The rules come first, each
beside its factory; the plumbing (how the numbers are boxed, :mod:`jaxopt_lab.hyperparameters`, and
how arguments are checked, :mod:`jaxopt_lab.settings`) lives in modules of its own. Only ``jax`` is
used for the maths; ``optax`` provides nothing but the ``GradientTransformation`` type.

Beyond the lesson's float32/float64 the rules follow Optax where Optax users expect it: its dtype
semantics in every precision mode (a hyperparameter is computed in its own precision, float64
under x64, and rounded to the dtype of the array it meets, as Optax's Python floats are: float32
parameters under x64 get float32 arithmetic with float64-made factors, also when ``fit`` or a sweep
traces the numbers; see :func:`number_like`), complex parameters (``|g|^2`` in the second moments),
bfloat16/float16 (bias corrections in the hyperparameters' precision; Adam's ``mu_dtype``), extra
``update`` keyword arguments (accepted, ignored), step counters that saturate at 2**31 - 1, and
Python float leaves. Each case is chosen in Python from the dtypes when tracing, so the float32 and
float64 programs are the same arithmetic as without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab.hyperparameters import ElementwiseTransformation, chain, elementwise
from jaxopt_lab.settings import InvalidValue, check, check_learning_rate

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule

# ---------------------------------------------------------------------------------------------
# The maths every rule shares
# ---------------------------------------------------------------------------------------------


def ema(average, x, decay, rest):
    """One step of an exponential moving average: ``decay * average + (1 - decay) * x``, where
    ``rest`` is ``1 - decay`` made with the decay (:func:`complement`)."""
    return number_like(decay, average) * average + number_like(rest, x) * x


def complement(decay):
    """``1 - decay`` as Optax makes it from a Python float: in double precision, on the host,
    when the factory is called; rounded later, once, to the dtype it meets (:func:`number_like`).

    Made inside the update from a float32 number (``fit`` traces the numbers in float32 when x64
    is off), ``1 - 0.999`` would be 0.00099998713 instead of 0.0010000000475. A value traced by the
    caller's own ``jit``/``vmap`` is not known yet and is taken in its own precision.
    """
    if isinstance(decay, jax.core.Tracer):
        return 1 - decay
    if isinstance(decay, (int, float)):
        return 1 - decay
    return np.subtract(1.0, np.asarray(decay, np.float64))


def debiased(moment, decay, count):
    """Adam's bias correction ``moment / (1 - decay^t)``, t the number of updates so far.

    As in Optax, ``1 - decay^t`` is computed in the precision of ``decay`` and the int32 count
    (float64 under x64 for a Python float; float32 otherwise), never in a low-precision moment's
    (``0.999`` is 1.0 in bfloat16), then rounded to the moment's dtype for the division.
    """
    correction = 1 - decay**count
    return moment / like(correction, moment)


def squared(g):
    """``|g|^2``: exactly ``g**2`` for real g, the squared modulus for complex g."""
    return (g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g**2


def like(new, old):
    """``new`` in ``old``'s dtype: a state keeps its dtype whatever the hyperparameters' dtype."""
    return new.astype(old.dtype) if new.dtype != old.dtype else new


def number_like(number, x):
    """A hyperparameter, or a scalar computed from hyperparameters, as Optax's Python floats meet
    the array ``x``: computed in its own precision, then rounded once to ``x``'s dtype.

    Optax's numbers are Python floats: ``1 - b1`` is computed in double precision and, being weakly
    typed, rounded to the gradient's dtype where it multiplies it. Here the numbers may also be
    arrays, traced by ``fit`` and ``sweep`` in float64 under x64: without the rounding, float32
    parameters would meet float64 factors and their arithmetic would be done in float64 and rounded
    at the end, another result than Optax's. When the dtypes already agree (float32 mode, float64
    parameters under x64) nothing is added to the program.
    """
    if isinstance(number, (int, float)):  # a Python number: weak typing rounds it already
        return number
    dtype = jnp.result_type(x)
    return number if number.dtype == dtype else number.astype(dtype)


def increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the dtype's maximum rather than wrapping to a negative step."""
    return jnp.where(count < jnp.iinfo(count.dtype).max, count + 1, count)


def _zeros_like(params, dtype=None):
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype), params)


# ---------------------------------------------------------------------------------------------
# Gradient descent: p -= lr g
# ---------------------------------------------------------------------------------------------


def gd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """(Mini-batch) gradient descent: ``p -= lr g``.

    Args:
      learning_rate: a float, or a schedule ``step -> lr`` (step 0 at the first update).

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = gd(0.1)
      >>> state = opt.init({"w": jnp.ones(2)})
      >>> updates, state = opt.update({"w": jnp.ones(2)}, state)
      >>> updates["w"].tolist()
      [-0.10000000149011612, -0.10000000149011612]
    """
    return chain(identity(), scale_by_learning_rate(learning_rate))


# ---------------------------------------------------------------------------------------------
# Momentum: v = beta v + (1 - beta) g;  p -= lr v
# ---------------------------------------------------------------------------------------------


class ScaleByMomentumState(NamedTuple):
    velocity: Any  # same tree, shapes and dtypes as params: EMA of the gradients


def _momentum_update(h, grads, state, params=None, **extra_args):
    del params, extra_args
    velocity = jax.tree.map(lambda v, g: like(ema(v, g, h.beta, h.rest), v), state.velocity, grads)
    return velocity, ScaleByMomentumState(velocity)


def _momentum_init(params):
    return ScaleByMomentumState(_zeros_like(params))


def scale_by_momentum(beta: float = 0.9) -> ElementwiseTransformation:
    """Exponential moving average of the gradients: ``v = beta v + (1 - beta) g``; returns v.

    Note: this is the course's EMA momentum. Optax's ``sgd(momentum=beta)`` is heavy-ball
    (``v = beta v + g``), the same direction scaled by ``1 / (1 - beta)`` only at steady state.
    """
    check("beta", beta)
    return elementwise(_momentum_init, _momentum_update, beta=beta, rest=complement(beta))


def momentum(learning_rate: ScalarOrSchedule, beta: float = 0.9) -> optax.GradientTransformation:
    """Gradient descent with EMA momentum: ``v = beta v + (1 - beta) g;  p -= lr v``.

    Args:
      learning_rate: a float, or a schedule ``step -> lr``.
      beta: momentum decay in [0, 1); 0 is plain gradient descent.

    Returns:
      An ``optax.GradientTransformation`` whose state holds the velocity.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = momentum(1.0, beta=0.9)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.ones(1), state)
      >>> round(float(updates[0]), 6)   # -(1 - 0.9) * 1
      -0.1
    """
    return chain(scale_by_momentum(beta), scale_by_learning_rate(learning_rate))


# ---------------------------------------------------------------------------------------------
# RMSprop: s = decay s + (1 - decay) g^2;  p -= lr g / (sqrt(s) + eps)
# ---------------------------------------------------------------------------------------------


class ScaleByRMSState(NamedTuple):
    nu: Any  # same tree, shapes and dtypes as params: EMA of the squared moduli |g|^2


def _rms_update(h, grads, state, params=None, **extra_args):
    del params, extra_args
    nu = jax.tree.map(lambda s, g: like(ema(s, squared(g), h.decay, h.rest), s), state.nu, grads)
    direction = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + number_like(h.eps, s)), grads, nu)
    return direction, ScaleByRMSState(nu)


def _rms_init(params):
    return ScaleByRMSState(_zeros_like(params))


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> ElementwiseTransformation:
    """RMS scaling: ``s = decay s + (1 - decay) |g|^2``; returns ``g / (sqrt(s) + eps)``.

    Note: eps is *outside* the square root, as in the course. Optax's ``scale_by_rms`` defaults to
    ``eps_in_sqrt=True``; its twin here passes ``eps_in_sqrt=False``.
    """
    check("beta", decay, name="decay")
    check("epsilon", eps, name="eps")
    return elementwise(_rms_init, _rms_update, decay=decay, rest=complement(decay), eps=eps)


def rmsprop(
    learning_rate: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8
) -> optax.GradientTransformation:
    """RMSprop: ``s = decay s + (1 - decay) g^2;  p -= lr g / (sqrt(s) + eps)``.

    Args:
      learning_rate: a float, or a schedule ``step -> lr``.
      decay: decay of the squared-gradient average, in [0, 1).
      eps: added to ``sqrt(s)`` (outside the root) to keep the division finite: a normal
        number above 0 (0, or a value the processor flushes to 0, makes 0/0 where a gradient
        entry is 0).

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = rmsprop(0.01, decay=0.9, eps=1e-8)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.full(1, 2.0), state)
      >>> round(float(updates[0]), 6)   # -0.01 * 2 / sqrt(0.1 * 4)
      -0.031623
    """
    return chain(scale_by_rms(decay, eps), scale_by_learning_rate(learning_rate))


# ---------------------------------------------------------------------------------------------
# Adam: m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr m_hat / (sqrt(v_hat) + eps)
# ---------------------------------------------------------------------------------------------


class ScaleByAdamState(NamedTuple):
    count: jax.Array  # shape=(), int32: updates applied so far, saturating at 2**31 - 1
    mu: Any  # same tree and shapes as params, dtype mu_dtype or params': EMA of the gradients
    nu: Any  # same tree, shapes and dtypes as params: EMA of the squared moduli |g|^2


def _adam_update(h, grads, state, params=None, **extra_args):
    del params, extra_args
    t = increment(state.count)
    mu = jax.tree.map(lambda m, g: ema(m, g, h.b1, h.rest1), state.mu, grads)
    nu = jax.tree.map(lambda v, g: like(ema(v, squared(g), h.b2, h.rest2), v), state.nu, grads)

    def direction(m, v):
        return debiased(m, h.b1, t) / (jnp.sqrt(debiased(v, h.b2, t)) + number_like(h.eps, v))

    # The direction uses the first moment before it is cast to mu_dtype, as Optax's does.
    return jax.tree.map(direction, mu, nu), ScaleByAdamState(t, jax.tree.map(like, mu, state.mu), nu)


def _adam_init(mu_dtype, params):
    return ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=_zeros_like(params, mu_dtype.value),
        nu=_zeros_like(params),
    )


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, mu_dtype=None
) -> ElementwiseTransformation:
    """Adam's direction: bias-corrected first moment over bias-corrected RMS.

    With t = 1 at the first update::

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) |g|^2
        direction = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    eps is outside the square root (Optax's ``eps``, not ``eps_root``). ``mu_dtype`` stores the
    first moment in another dtype (e.g. float32 for bfloat16 parameters), as Optax's does.
    """
    check("beta1", b1, name="b1")
    check("beta2", b2, name="b2")
    check("epsilon", eps, name="eps")
    mu_dtype = _float_dtype("mu_dtype", mu_dtype)
    return elementwise(
        _adam_init, _adam_update, static=(mu_dtype,),
        b1=b1, b2=b2, eps=eps, rest1=complement(b1), rest2=complement(b2),
    )  # fmt: skip


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Adam with bias correction, eps outside the square root.

    ``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)``
    with t = 1 at the first update.

    Args:
      learning_rate: a float, or a schedule ``step -> lr``.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the root of the corrected second moment.
      mu_dtype: dtype of the first moment in the state (default: the parameters'), as in Optax.

    Returns:
      An ``optax.GradientTransformation``; equal to ``optax.adam`` with the same arguments.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = adam(0.1)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.full(1, 3.0), state)
      >>> round(float(updates[0]), 4)   # the first Adam step is -lr * g / |g|
      -0.1
    """
    return chain(
        scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype), scale_by_learning_rate(learning_rate)
    )


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "gd": gd,
    "momentum": momentum,
    "rmsprop": rmsprop,
    "adam": adam,
}
"""The registry: every optimizer of the lesson by name (the command's --optimizer, RunConfig,
sweeps and the course's functions all look names up here)."""


# ---------------------------------------------------------------------------------------------
# The learning rate and the identity
# ---------------------------------------------------------------------------------------------


class ScaleByLearningRateState(NamedTuple):
    count: jax.Array  # shape=(), int32: updates applied so far (the schedule's step), saturating


def _step(lr, u):
    u = jnp.asarray(u)  # a Python float leaf has no dtype
    return number_like(-lr, u) * u  # Optax's scale and scale_by_schedule: -lr in u's dtype


def _scheduled_lr_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    lr = h.schedule(state.count)
    steps = jax.tree.map(lambda u: _step(lr, u), updates)
    return steps, ScaleByLearningRateState(increment(state.count))


def _scheduled_lr_init(params):
    del params
    return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))


def _constant_lr_update(h, updates, state, params=None, **extra_args):
    del params, extra_args
    return jax.tree.map(lambda u: _step(h.learning_rate, u), updates), state


def _no_state(params):
    del params
    return ()


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> ElementwiseTransformation:
    """Multiply updates by ``-learning_rate``, or by ``-learning_rate(step)`` for a schedule.

    The step passed to a schedule counts the updates made before this one: 0 at the first update.
    A constant rate keeps no state (an empty tuple): a step counter nobody reads would still cost
    the fused loop an add and a copy per step.
    """
    check_learning_rate(learning_rate)
    if callable(learning_rate):
        return elementwise(_scheduled_lr_init, _scheduled_lr_update, schedule=learning_rate)
    return elementwise(_no_state, _constant_lr_update, learning_rate=learning_rate)


def _identity_update(h, updates, state, params=None, **extra_args):
    del h, params, extra_args
    return updates, state


def identity() -> ElementwiseTransformation:
    """Pass gradients through unchanged (the direction of plain gradient descent)."""
    return elementwise(_no_state, _identity_update)


def _float_dtype(name: str, value) -> np.dtype | None:
    """``value`` as a canonical floating-point dtype, or None; refused otherwise."""
    if value is None:
        return None
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
        raise InvalidValue(name, f"must be a floating-point dtype or None, got {value!r}")
    return jax.dtypes.canonicalize_dtype(dtype)

