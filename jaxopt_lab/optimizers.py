"""Hand-rolled gradient descent, momentum, RMSprop and Adam as Optax gradient transformations.

Each optimizer is a short chain of primitives: a ``scale_by_*`` transformation that turns gradients
into a direction, then :func:`scale_by_learning_rate`, the one place where the learning rate (a float
or a schedule ``step -> lr``) is applied and its sign flipped. Only ``jax`` is used for the maths;
``optax`` provides nothing but the :class:`optax.GradientTransformation` type.

The ``init``/``update`` functions are :class:`jax.tree_util.Partial` objects rather than nested
closures, and each transformation's numbers (floats, arrays, a schedule) sit in one
:class:`Hyperparameters` box inside them. Our own training loop opens the boxes
(:func:`open_hyperparameters`, used by ``train.split_optimizer``), so ``jax.jit`` traces the numbers
(a new learning rate reuses the compiled program) and ``jax.vmap`` batches them (a sweep is one
program); :func:`close_hyperparameters` rebuilds the optimizer inside the trace. To anyone else a
box holding an array shows no array leaf, so a framework that keeps the optimizer as static data
(Flax NNX's ``nnx.Optimizer.tx``, which refuses arrays there) accepts it; Python floats stay Python
floats and stay visible leaves, so ``jax.jit(f)(optimizer, ...)`` still traces them.

Beyond the lesson's float32/float64, the transformations follow Optax where Optax users expect it:
complex parameters (moduli ``|g|^2`` in the second moments), bfloat16/float16 (bias corrections
computed in float32; Adam's ``mu_dtype``), extra ``update`` keyword arguments (accepted, ignored),
step counters that saturate at 2**31 - 1, and Python float leaves. Each case branches in Python on
the dtype, so the float32/float64 program is the same arithmetic as without them.
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
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open=False,
    dtype=None,
) -> None:
    """Raise ``ValueError`` naming ``name`` unless every element of ``value`` is a finite number in
    ``[low, high)`` (``(low, high)`` with ``low_open``), both as given and once rounded to the float
    ``dtype`` the run computes in (default: JAX's default float, float32 unless x64 is on).
    Traced values pass unchecked.

    Rounding matters at the edges: in float32, ``0.99999999999`` is 1.0 (a momentum that never
    forgets) and ``1e-50`` is 0.0 (a learning rate that never moves); both are refused there and
    accepted under float64.
    """
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    interval = (
        f"{'(' if low_open else '['}{'-inf' if low is None else low}, "
        f"{'inf' if high is None else high})"
    )

    def inside(v):
        ok = np.isfinite(v)
        if low is not None:
            ok &= (v > low) if low_open else (v >= low)
        if high is not None:
            ok &= v < high
        return ok

    ok = inside(values)
    if not np.all(ok):
        shown = value if values.ndim == 0 else values[~ok].tolist()
        raise ValueError(f"{name} must be a finite number in {interval}, got {shown!r}")
    run = np.dtype(dtype or jnp.result_type(float))
    with np.errstate(over="ignore", under="ignore"):
        rounded = values.astype(run).astype(np.float64)
    ok = inside(rounded)
    if not np.all(ok):
        shown = value if values.ndim == 0 else values[~ok].tolist()
        became = rounded if values.ndim == 0 else rounded[~ok]
        raise ValueError(
            f"{name} must be a finite number in {interval} in {run.name}, got {shown!r}, which "
            f"rounds to {became.tolist()!r} there: use float64 (JAX_ENABLE_X64=1, or --x64) or a "
            "value that stays inside"
        )


def check_learning_rate(learning_rate) -> None:
    """A learning rate is a callable schedule, or finite and > 0."""
    if not callable(learning_rate):
        check_number("learning_rate", learning_rate, low=0.0, low_open=True)


# ---------------------------------------------------------------------------------------------
# Hyperparameters: traced by our own jit, invisible to frameworks that store the optimizer as static
# ---------------------------------------------------------------------------------------------


@jax.tree_util.register_pytree_node_class
class Hyperparameters:
    """The numbers of one transformation (floats, arrays or a schedule), boxed.

    To ``jax.tree`` the box is a node whose children are its values while they hold no array
    (Python floats: ``jax.jit(f)(optimizer, ...)`` traces them), and an empty node carrying itself
    as static aux data once they hold a concrete one (``adam(jnp.asarray(1e-3))``, an
    ``epoch_table`` schedule; tracers, inside a trace, stay children):
    no array leaf then shows, as Flax NNX requires of ``nnx.Optimizer.tx``, and such an optimizer
    passed to ``jax.jit`` is static, like an Optax closure. :func:`open_hyperparameters` /
    :func:`close_hyperparameters` expose every box's values and box them again; that is how
    ``train.split_optimizer`` traces array hyperparameters too. Equality is identity.
    """

    __slots__ = ("values",)

    def __init__(self, *values: Any):
        self.values = values

    def __repr__(self) -> str:
        return f"Hyperparameters{self.values!r}"

    def __getstate__(self):
        return self.values

    def __setstate__(self, values):
        self.values = values

    def tree_flatten(self):
        leaves = jax.tree.leaves(self.values)
        # Inside a trace (values are tracers) the box stays open: a tracer must never hide in aux.
        if any(isinstance(x, jax.core.Tracer) for x in leaves) or not any(
            isinstance(x, (jax.Array, np.ndarray)) for x in leaves
        ):
            return self.values, None
        return (), self

    @classmethod
    def tree_unflatten(cls, boxed, children):
        return boxed if boxed is not None else cls(*children)


@jax.tree_util.register_pytree_node_class
class _OpenHyperparameters:
    """:class:`Hyperparameters` as a pytree node: its values are the children, nothing is aux."""

    __slots__ = ("values",)

    def __init__(self, values: tuple):
        self.values = values

    def tree_flatten(self):
        return self.values, None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux
        return cls(tuple(children))


@jax.tree_util.register_pytree_node_class
class _Static:
    """A setting that is part of the program, not a number (a dtype): aux data, never a leaf."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def tree_flatten(self):
        return (), self.value

    @classmethod
    def tree_unflatten(cls, value, children):
        del children
        return cls(value)


def _is_closed(x) -> bool:
    return isinstance(x, Hyperparameters)


def _is_open(x) -> bool:
    return isinstance(x, _OpenHyperparameters)


def open_hyperparameters(tree: Any) -> Any:
    """``tree`` with every :class:`Hyperparameters` turned into a pytree node, so that
    ``jax.tree.flatten`` reaches the numbers (this is how ``train.split_optimizer`` traces them)."""
    return jax.tree.map(
        lambda x: _OpenHyperparameters(open_hyperparameters(x.values)) if _is_closed(x) else x,
        tree,
        is_leaf=_is_closed,
    )


def close_hyperparameters(tree: Any) -> Any:
    """The inverse of :func:`open_hyperparameters` (values may be tracers: used inside a trace)."""
    return jax.tree.map(
        lambda x: Hyperparameters(*close_hyperparameters(x.values)) if _is_open(x) else x,
        tree,
        is_leaf=_is_open,
    )


# ---------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------


class ElementwiseTransformation(optax.GradientTransformationExtraArgs):
    """A ``GradientTransformation`` that declares its update elementwise.

    Each output element depends only on the same element of the gradients, state and parameters,
    never on a leaf's shape or on the tree. :func:`jaxopt_lab.train.fit` may then run it over the
    parameters raveled into one flat vector (one fused kernel per step) with the same result; any
    other transformation sees the user's parameter tree. Every transformation in this module is
    one, and :func:`chain` of them is one. It takes Optax's extra keyword arguments
    (``update(g, state, params, value=...)``) and ignores them.
    """

    __slots__ = ()


def _transformation(init, update, *numbers) -> ElementwiseTransformation:
    return ElementwiseTransformation(Partial(init), Partial(update, Hyperparameters(*numbers)))


def _increment(count: jax.Array) -> jax.Array:
    # Saturate instead of wrapping to a negative step after 2**31 - 1 updates: one select.
    return jnp.where(count < jnp.iinfo(count.dtype).max, count + 1, count)


def _abs_sq(g):
    # |g|^2; for real g exactly g**2, so the real-valued program is unchanged.
    if jnp.iscomplexobj(g):
        return (g * jnp.conj(g)).real
    return g**2


def _like(new, old):
    """``new`` in ``old``'s dtype: a state keeps its dtype whatever the hyperparameters' dtype."""
    return new.astype(old.dtype) if new.dtype != old.dtype else new


def _correction_dtype(dtype) -> np.dtype:
    """Where ``1 - b ** t`` is computed: in the moment's dtype for float32/float64 (as before), in
    float32 below it (0.999 is 1.0 in bfloat16), in the real dtype for complex moments."""
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = np.finfo(dtype).dtype
    return np.dtype(np.float32) if dtype.itemsize < 4 else dtype


class ScaleByLearningRateState(NamedTuple):
    count: jax.Array  # shape=(), int32: updates applied so far (the schedule's step), saturating


def _scaled(lr, u):
    u = jnp.asarray(u)  # a Python float leaf has no .astype
    return (-lr * u).astype(u.dtype)


def _scheduled_lr_init(params):
    del params
    return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))


def _scheduled_lr_update(hyper, updates, state, params=None, **extra_args):
    del params, extra_args
    (schedule,) = hyper.values
    lr = schedule(state.count)
    updates = jax.tree.map(lambda u: _scaled(lr, u), updates)
    return updates, ScaleByLearningRateState(count=_increment(state.count))


def _constant_lr_init(params):
    del params
    return ()


def _constant_lr_update(hyper, updates, state, params=None, **extra_args):
    del params, extra_args
    (learning_rate,) = hyper.values
    return jax.tree.map(lambda u: _scaled(learning_rate, u), updates), state


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> ElementwiseTransformation:
    """Multiply updates by ``-learning_rate``, or by ``-learning_rate(step)`` for a schedule.

    The step passed to a schedule counts the updates made before this one: 0 at the first update.
    A constant rate keeps no state (an empty tuple): a step counter nobody reads would still cost
    the fused loop an add and a copy per step.
    """
    check_learning_rate(learning_rate)
    if callable(learning_rate):
        return _transformation(_scheduled_lr_init, _scheduled_lr_update, learning_rate)
    return _transformation(_constant_lr_init, _constant_lr_update, learning_rate)


class ScaleByMomentumState(NamedTuple):
    velocity: Any  # same tree, shapes and dtypes as params: EMA of the gradients


def _zeros_like_tree(params, dtype=None):
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype), params)


def _momentum_init(params):
    return ScaleByMomentumState(velocity=_zeros_like_tree(params))


def _momentum_update(hyper, updates, state, params=None, **extra_args):
    del params, extra_args
    (beta,) = hyper.values
    velocity = jax.tree.map(
        lambda v, g: _like(beta * v + (1 - beta) * g, v), state.velocity, updates
    )
    return velocity, ScaleByMomentumState(velocity=velocity)


def scale_by_momentum(beta: float = 0.9) -> ElementwiseTransformation:
    """Exponential moving average of the gradients: ``v = beta v + (1 - beta) g``; returns v.

    Note: this is the course's EMA momentum. Optax's ``sgd(momentum=beta)`` is heavy-ball
    (``v = beta v + g``), which is the same direction scaled by ``1 / (1 - beta)`` only at steady state.
    """
    check_number("beta", beta, low=0.0, high=1.0)
    return _transformation(_momentum_init, _momentum_update, beta)


class ScaleByRMSState(NamedTuple):
    nu: Any  # same tree, shapes and dtypes as params: EMA of the squared moduli |g|^2


def _rms_init(params):
    return ScaleByRMSState(nu=_zeros_like_tree(params))


def _rms_update(hyper, updates, state, params=None, **extra_args):
    del params, extra_args
    decay, eps = hyper.values
    nu = jax.tree.map(
        lambda s, g: _like(decay * s + (1 - decay) * _abs_sq(g), s), state.nu, updates
    )
    updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, nu)
    return updates, ScaleByRMSState(nu=nu)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> ElementwiseTransformation:
    """RMS scaling: ``s = decay s + (1 - decay) |g|^2``; returns ``g / (sqrt(s) + eps)``.

    Note: eps is *outside* the square root, as in the course. Optax's ``scale_by_rms`` defaults to
    ``eps_in_sqrt=True``; its twin here passes ``eps_in_sqrt=False``.
    """
    check_number("decay", decay, low=0.0, high=1.0)
    check_number("eps", eps, low=0.0)
    return _transformation(_rms_init, _rms_update, decay, eps)


class ScaleByAdamState(NamedTuple):
    count: jax.Array  # shape=(), int32: updates applied so far, saturating at 2**31 - 1
    mu: Any  # same tree and shapes as params, dtype mu_dtype or params': EMA of the gradients
    nu: Any  # same tree, shapes and dtypes as params: EMA of the squared moduli |g|^2


def _adam_init(mu_dtype, params):
    mu_dtype = mu_dtype.value
    return ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=_zeros_like_tree(params, mu_dtype),
        nu=_zeros_like_tree(params),
    )


def _adam_update(hyper, updates, state, params=None, **extra_args):
    del params, extra_args
    b1, b2, eps = hyper.values
    count = _increment(state.count)
    mu = jax.tree.map(lambda v, g: b1 * v + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda s, g: _like(b2 * s + (1 - b2) * _abs_sq(g), s), state.nu, updates)

    def direction(m, v):
        # The step t as a float (not int32: a mixed-type power would, under x64, promote the
        # corrections away from the moment dtype). Float32/float64 moments keep their own dtype,
        # so this is the same arithmetic as ever; see _correction_dtype for the others.
        dtype = _correction_dtype(m.dtype)
        t = count.astype(dtype)
        m_hat = m / _like(1 - jnp.asarray(b1, dtype) ** t, m)
        v_hat = v / _like(1 - jnp.asarray(b2, dtype) ** t, v)
        return m_hat / (jnp.sqrt(v_hat) + eps)

    updates = jax.tree.map(direction, mu, nu)
    mu = jax.tree.map(lambda new, old: _like(new, old), mu, state.mu)
    return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)


def _checked_dtype(name: str, dtype) -> np.dtype | None:
    if dtype is None:
        return None
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be a floating-point dtype or None, got {dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise ValueError(f"{name} must be a floating-point dtype or None, got {dtype!r}")
    return jax.dtypes.canonicalize_dtype(dtype)


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, mu_dtype=None
) -> ElementwiseTransformation:
    """Adam's direction: bias-corrected first moment over bias-corrected RMS.

    With t = 1 at the first update::

        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) |g|^2
        direction = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    eps is outside the square root (Optax's ``eps``, not ``eps_root``). ``mu_dtype`` stores the
    first moment in another dtype (e.g. float32 for bfloat16 parameters), as Optax's does; the
    direction is computed before the moment is cast.
    """
    check_number("b1", b1, low=0.0, high=1.0)
    check_number("b2", b2, low=0.0, high=1.0)
    check_number("eps", eps, low=0.0)
    mu_dtype = _checked_dtype("mu_dtype", mu_dtype)
    return ElementwiseTransformation(
        Partial(_adam_init, _Static(mu_dtype)),
        Partial(_adam_update, Hyperparameters(b1, b2, eps)),
    )


def _identity_init(params):
    del params
    return ()


def _identity_update(hyper, updates, state, params=None, **extra_args):
    del hyper, params, extra_args
    return updates, state


def identity() -> ElementwiseTransformation:
    """Pass gradients through unchanged (the direction of plain gradient descent)."""
    return _transformation(_identity_init, _identity_update)


def _chain_init(transforms, params):
    return tuple(t.init(params) for t in transforms)


def _chain_update(transforms, updates, state, params=None, **extra_args):
    new_state = []
    for t, s in zip(transforms, state, strict=True):
        if isinstance(t, optax.GradientTransformationExtraArgs):
            updates, s = t.update(updates, s, params, **extra_args)
        else:
            updates, s = t.update(updates, s, params)
        new_state.append(s)
    return updates, tuple(new_state)


def chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Apply transformations in order; the state is the tuple of their states.

    Extra keyword arguments of ``update`` reach the parts that take them (Optax's
    ``GradientTransformationExtraArgs``). The chain is an :class:`ElementwiseTransformation` when
    every part is one.
    """
    elementwise = all(isinstance(t, ElementwiseTransformation) for t in transforms)
    kind = ElementwiseTransformation if elementwise else optax.GradientTransformationExtraArgs
    return kind(Partial(_chain_init, transforms), Partial(_chain_update, transforms))


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
      >>> round(float(updates[0]), 6)   # the first Adam step is -lr * g / |g|
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
