"""Hand-rolled gradient descent, momentum, RMSprop and Adam as Optax gradient transformations.

Each optimizer is a short chain of primitives: a ``scale_by_*`` transformation that turns gradients
into a direction, then :func:`scale_by_learning_rate`, the one place where the learning rate (a float
or a schedule ``step -> lr``) is applied and its sign flipped. Only ``jax`` is used for the maths;
``optax`` provides nothing but the :class:`optax.GradientTransformation` type.

The ``init``/``update`` functions are :class:`jax.tree_util.Partial` objects rather than nested
closures, so hyperparameters are pytree *leaves*: ``jax.jit`` traces them (a new learning rate reuses
the compiled program) and ``jax.vmap`` can batch them (a sweep is one program).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.tree_util import Partial

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule


# ---------------------------------------------------------------------------------------------
# Argument checks. Concrete numbers (Python scalars, NumPy or JAX arrays, every element of a
# sweep's stacked hyperparameters) are checked when a factory is called; values traced inside
# jit or vmap are not known then, and are taken as they are.
# ---------------------------------------------------------------------------------------------


def check_number(
    name: str, value, *, low: float | None = None, high: float | None = None, low_open=False
) -> None:
    """Raise ``ValueError`` naming ``name`` unless every element of ``value`` is a finite number in
    ``[low, high)`` (``(low, high)`` with ``low_open``). Traced values pass unchecked."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    interval = (
        f"{'(' if low_open else '['}{'-inf' if low is None else low}, "
        f"{'inf' if high is None else high})"
    )
    ok = np.isfinite(values)
    if low is not None:
        ok &= (values > low) if low_open else (values >= low)
    if high is not None:
        ok &= values < high
    if not np.all(ok):
        shown = value if values.ndim == 0 else values[~ok].tolist()
        raise ValueError(f"{name} must be a finite number in {interval}, got {shown!r}")


def check_learning_rate(learning_rate) -> None:
    """A learning rate is a callable schedule, or finite and > 0."""
    if not callable(learning_rate):
        check_number("learning_rate", learning_rate, low=0.0, low_open=True)


# ---------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------


class ElementwiseTransformation(optax.GradientTransformation):
    """A ``GradientTransformation`` that declares its update elementwise.

    Each output element depends only on the same element of the gradients, state and parameters,
    never on a leaf's shape or on the tree. :func:`jaxopt_lab.train.fit` may then run it over the
    parameters raveled into one flat vector (one fused kernel per step) with the same result; any
    other transformation sees the user's parameter tree. Every transformation in this module is
    one, and :func:`chain` of them is one.
    """

    __slots__ = ()


class ScaleByLearningRateState(NamedTuple):
    count: jax.Array  # shape=(), int32: updates applied so far (the schedule's step)


def _scheduled_lr_init(params):
    del params
    return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))


def _scheduled_lr_update(schedule, updates, state, params=None):
    del params
    lr = schedule(state.count)
    updates = jax.tree.map(lambda u: (-lr * u).astype(u.dtype), updates)
    return updates, ScaleByLearningRateState(count=state.count + 1)


def _constant_lr_init(params):
    del params
    return ()


def _constant_lr_update(learning_rate, updates, state, params=None):
    del params
    return jax.tree.map(lambda u: (-learning_rate * u).astype(u.dtype), updates), state


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """Multiply updates by ``-learning_rate``, or by ``-learning_rate(step)`` for a schedule.

    The step passed to a schedule counts the updates made before this one: 0 at the first update.
    A constant rate keeps no state (an empty tuple): a step counter nobody reads would still cost
    the fused loop an add and a copy per step.
    """
    check_learning_rate(learning_rate)
    if callable(learning_rate):
        return ElementwiseTransformation(
            Partial(_scheduled_lr_init), Partial(_scheduled_lr_update, learning_rate)
        )
    return ElementwiseTransformation(
        Partial(_constant_lr_init), Partial(_constant_lr_update, learning_rate)
    )


class ScaleByMomentumState(NamedTuple):
    velocity: Any  # same tree, shapes and dtypes as params: EMA of the gradients


def _zeros_like_tree(params):
    return jax.tree.map(jnp.zeros_like, params)


def _momentum_init(params):
    return ScaleByMomentumState(velocity=_zeros_like_tree(params))


def _momentum_update(beta, updates, state, params=None):
    del params
    velocity = jax.tree.map(lambda v, g: beta * v + (1 - beta) * g, state.velocity, updates)
    return velocity, ScaleByMomentumState(velocity=velocity)


def scale_by_momentum(beta: float = 0.9) -> optax.GradientTransformation:
    """Exponential moving average of the gradients: ``v = beta v + (1 - beta) g``; returns v.

    Note: this is the course's EMA momentum. Optax's ``sgd(momentum=beta)`` is heavy-ball
    (``v = beta v + g``), which is the same direction scaled by ``1 / (1 - beta)`` only at steady state.
    """
    check_number("beta", beta, low=0.0, high=1.0)
    return ElementwiseTransformation(Partial(_momentum_init), Partial(_momentum_update, beta))


class ScaleByRMSState(NamedTuple):
    nu: Any  # same tree, shapes and dtypes as params: EMA of the squared gradients


def _rms_init(params):
    return ScaleByRMSState(nu=_zeros_like_tree(params))


def _rms_update(decay, eps, updates, state, params=None):
    del params
    nu = jax.tree.map(lambda s, g: decay * s + (1 - decay) * g**2, state.nu, updates)
    updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, nu)
    return updates, ScaleByRMSState(nu=nu)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> optax.GradientTransformation:
    """RMS scaling: ``s = decay s + (1 - decay) g^2``; returns ``g / (sqrt(s) + eps)``.

    Note: eps is *outside* the square root, as in the course. Optax's ``scale_by_rms`` defaults to
    ``eps_in_sqrt=True``; its twin here passes ``eps_in_sqrt=False``.
    """
    check_number("decay", decay, low=0.0, high=1.0)
    check_number("eps", eps, low=0.0)
    return ElementwiseTransformation(Partial(_rms_init), Partial(_rms_update, decay, eps))


class ScaleByAdamState(NamedTuple):
    count: jax.Array  # shape=(), int32: updates applied so far
    mu: Any  # same tree, shapes and dtypes as params: EMA of the gradients
    nu: Any  # same tree, shapes and dtypes as params: EMA of the squared gradients


def _adam_init(params):
    zeros = _zeros_like_tree(params)
    return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)


def _adam_update(b1, b2, eps, updates, state, params=None):
    del params
    count = state.count + 1
    mu = jax.tree.map(lambda v, g: b1 * v + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda s, g: b2 * s + (1 - b2) * g**2, state.nu, updates)

    def direction(m, v):
        # The step t as a float of the moment's own dtype: an int32 t would send b ** t through a
        # mixed-type power and, under x64, promote the bias corrections away from the moment dtype.
        t = count.astype(m.dtype)
        m_hat = m / (1 - jnp.asarray(b1, m.dtype) ** t)
        v_hat = v / (1 - jnp.asarray(b2, m.dtype) ** t)
        return m_hat / (jnp.sqrt(v_hat) + eps)

    return jax.tree.map(direction, mu, nu), ScaleByAdamState(count=count, mu=mu, nu=nu)


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam's direction: bias-corrected first moment over bias-corrected RMS.

    With t = 1 at the first update::

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
        direction = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    eps is outside the square root (Optax's ``eps``, not ``eps_root``).
    """
    check_number("b1", b1, low=0.0, high=1.0)
    check_number("b2", b2, low=0.0, high=1.0)
    check_number("eps", eps, low=0.0)
    return ElementwiseTransformation(Partial(_adam_init), Partial(_adam_update, b1, b2, eps))


def _identity_init(params):
    del params
    return ()


def _identity_update(updates, state, params=None):
    del params
    return updates, state


def identity() -> optax.GradientTransformation:
    """Pass gradients through unchanged (the direction of plain gradient descent)."""
    return ElementwiseTransformation(Partial(_identity_init), Partial(_identity_update))


def _chain_init(inits, params):
    return tuple(init(params) for init in inits)


def _chain_update(updates_fns, updates, state, params=None):
    new_state = []
    for update, s in zip(updates_fns, state, strict=True):
        updates, s = update(updates, s, params)
        new_state.append(s)
    return updates, tuple(new_state)


def chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformation:
    """Apply transformations in order; the state is the tuple of their states.

    The chain is an :class:`ElementwiseTransformation` when every part is one.
    """
    inits = tuple(t.init for t in transforms)
    updates = tuple(t.update for t in transforms)
    elementwise = all(isinstance(t, ElementwiseTransformation) for t in transforms)
    kind = ElementwiseTransformation if elementwise else optax.GradientTransformation
    return kind(Partial(_chain_init, inits), Partial(_chain_update, updates))


# ---------------------------------------------------------------------------------------------
# The four optimizers of the lesson
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


def rmsprop(
    learning_rate: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8
) -> optax.GradientTransformation:
    """RMSprop: ``s = decay s + (1 - decay) g^2;  p -= lr g / (sqrt(s) + eps)``.

    Args:
      learning_rate: a float, or a schedule ``step -> lr``.
      decay: decay of the squared-gradient average, in [0, 1).
      eps: added to ``sqrt(s)`` (outside the root) to keep the division finite.

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = rmsprop(0.01, decay=0.9, eps=0.0)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.full(1, 2.0), state)
      >>> round(float(updates[0]), 6)   # -0.01 * 2 / sqrt(0.1 * 4)
      -0.031623
    """
    return chain(scale_by_rms(decay, eps), scale_by_learning_rate(learning_rate))


def adam(
    learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam with bias correction, eps outside the square root.

    ``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)``
    with t = 1 at the first update.

    Args:
      learning_rate: a float, or a schedule ``step -> lr``.
      b1: decay of the first moment, in [0, 1).
      b2: decay of the second moment, in [0, 1).
      eps: added to the root of the corrected second moment.

    Returns:
      An ``optax.GradientTransformation``; equal to ``optax.adam`` with the same arguments.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = adam(0.1)
      >>> state = opt.init(jnp.zeros(1))
      >>> updates, state = opt.update(jnp.full(1, 3.0), state)
      >>> round(float(updates[0]), 6)   # the first Adam step is -lr * g / |g|
      -0.1
    """
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "gd": gd,
    "momentum": momentum,
    "rmsprop": rmsprop,
    "adam": adam,
}
