"""How the hand-rolled transformations carry their numbers: boxed, by name, traced by our own jit and
invisible to frameworks that keep an optimizer as static data.

A transformation's ``init``/``update`` are :class:`jax.tree_util.Partial` objects rather than
closures, and its numbers (floats, arrays, a schedule) sit in one :class:`Hyperparameters` box,
read by name in the update (``h.b1``). ``train`` opens the boxes (:func:`open_hyperparameters`), so
``jax.jit`` traces the numbers (a new learning rate reuses the compiled program) and ``jax.vmap``
batches them (a sweep is one program); :func:`close_hyperparameters` rebuilds the transformation
inside the trace. To anyone else a box holding an array shows no array leaf, so Flax NNX's
``nnx.Optimizer.tx`` (which refuses arrays there) accepts it; Python floats stay visible leaves, so
``jax.jit(f)(optimizer, ...)`` still traces them.

This module imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from jax.tree_util import Partial


@jax.tree_util.register_pytree_node_class
class Hyperparameters:
    """The numbers of one transformation, by name: ``Hyperparameters(b1=0.9, b2=0.999).b1``.

    To ``jax.tree`` the box is a node whose children are its values while they hold no array
    (Python floats), and an empty node carrying itself as static aux data once they hold a
    concrete one (``adam(jnp.asarray(1e-3))``, an ``epoch_table`` schedule); tracers, inside a
    trace, stay children. Equality is identity.
    """

    __slots__ = ("names", "values")

    def __init__(self, **numbers: Any):
        self.names = tuple(numbers)
        self.values = tuple(numbers.values())

    def __getattr__(self, name: str):
        if name in Hyperparameters.__slots__:  # not set yet (unpickling)
            raise AttributeError(name)
        try:
            return self.values[self.names.index(name)]
        except ValueError:
            raise AttributeError(f"no hyperparameter {name!r} in {self!r}") from None

    def __repr__(self) -> str:
        inside = ", ".join(f"{n}={v!r}" for n, v in zip(self.names, self.values, strict=True))
        return f"Hyperparameters({inside})"

    def __getstate__(self):
        return self.names, self.values

    def __setstate__(self, state):
        self.names, self.values = state

    def tree_flatten(self):
        leaves = jax.tree.leaves(self.values)
        # Inside a trace (values are tracers) the box stays open: a tracer must never hide in aux.
        if any(isinstance(x, jax.core.Tracer) for x in leaves) or not any(
            isinstance(x, (jax.Array, np.ndarray)) for x in leaves
        ):
            return self.values, self.names
        return (), self

    @classmethod
    def tree_unflatten(cls, aux, children):
        if isinstance(aux, Hyperparameters):
            return aux
        return cls(**dict(zip(aux, children, strict=True)))


@jax.tree_util.register_pytree_node_class
class _OpenHyperparameters:
    """:class:`Hyperparameters` as a pytree node: its values are the children, names are aux."""

    __slots__ = ("names", "values")

    def __init__(self, names: tuple, values: tuple):
        self.names, self.values = names, values

    def tree_flatten(self):
        return self.values, self.names

    @classmethod
    def tree_unflatten(cls, names, children):
        return cls(names, tuple(children))


@jax.tree_util.register_pytree_node_class
class Static:
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
    ``jax.tree.flatten`` reaches the numbers (this is how ``train`` traces them)."""

    def open_box(x):
        return _OpenHyperparameters(x.names, open_hyperparameters(x.values)) if _is_closed(x) else x

    return jax.tree.map(open_box, tree, is_leaf=_is_closed)


def close_hyperparameters(tree: Any) -> Any:
    """The inverse of :func:`open_hyperparameters` (values may be tracers: used inside a trace)."""

    def close_box(x):
        if not _is_open(x):
            return x
        values = close_hyperparameters(x.values)
        return Hyperparameters(**dict(zip(x.names, values, strict=True)))

    return jax.tree.map(close_box, tree, is_leaf=_is_open)


class ElementwiseTransformation(optax.GradientTransformationExtraArgs):
    """A ``GradientTransformation`` that declares its update elementwise.

    Each output element depends only on the same element of the gradients, state and parameters,
    never on a leaf's shape or on the tree. ``train.fit`` may then run it over the parameters
    raveled into one flat vector (one fused kernel per step) with the same result; any other
    transformation sees the user's parameter tree. It takes Optax's extra keyword arguments
    (``update(g, state, params, value=...)``) and ignores them.
    """

    __slots__ = ()


def elementwise(
    init: Callable, update: Callable, *, static: tuple = (), **numbers: Any
) -> ElementwiseTransformation:
    """An :class:`ElementwiseTransformation` from ``init(*static, params)`` and ``update(h, updates,
    state, params=None, **extra_args)``, where ``h`` is the box of ``numbers``; each ``static``
    value (a dtype, say) reaches ``init`` as program structure (a :class:`Static`), not a number."""
    init = Partial(init, *(Static(value) for value in static))
    return ElementwiseTransformation(init, Partial(update, Hyperparameters(**numbers)))


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
    every = all(isinstance(t, ElementwiseTransformation) for t in transforms)
    kind = ElementwiseTransformation if every else optax.GradientTransformationExtraArgs
    return kind(Partial(_chain_init, transforms), Partial(_chain_update, transforms))
