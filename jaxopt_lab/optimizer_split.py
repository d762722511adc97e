"""Optimizers through jit: an optimizer's numbers are traced, everything else is static.

:func:`split_optimizer` cuts an ``optax.GradientTransformation`` into its numbers (learning rates,
betas: traced arguments of a compiled program) and a hashable :class:`Structure` (its functions: the
static part); :func:`join_optimizer` puts them back together inside the program, and
:func:`stack_optimizers` stacks the numbers of several optimizers of one structure for ``vmap``.
A new learning rate thus reuses the compiled program.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from jaxopt_lab.hyperparameters import close_hyperparameters, open_hyperparameters


class Structure(NamedTuple):
    """An optimizer without its numbers: hashable, the static part of a compiled program."""

    treedef: Any
    others: tuple  # (index, leaf) of every leaf that is not a number, e.g. an Optax closure


def _is_number(leaf) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, bool))


def split_optimizer(optimizer: optax.GradientTransformation) -> tuple[list, Structure]:
    """Split an optimizer into traced numbers and a hashable static :class:`Structure`.

    The hand-rolled optimizers keep their hyperparameters in boxes that this opens
    (:func:`~jaxopt_lab.hyperparameters.open_hyperparameters`), so they come out as numbers and a
    new learning rate reuses the compiled program. Closure-based optimizers (Optax's) come out
    whole in the static part and compile once per instance.
    """
    leaves, treedef = jax.tree.flatten(open_hyperparameters(optimizer))
    numbers = [leaf for leaf in leaves if _is_number(leaf)]
    others = tuple((i, leaf) for i, leaf in enumerate(leaves) if not _is_number(leaf))
    return numbers, Structure(treedef, others)


def join_optimizer(numbers: list, structure: Structure) -> optax.GradientTransformation:
    """The inverse of :func:`split_optimizer` (numbers may be tracers)."""
    numbers = iter(numbers)
    others = dict(structure.others)
    leaves = [others[i] if i in others else next(numbers) for i in range(structure.treedef.num_leaves)]
    return close_hyperparameters(jax.tree.unflatten(structure.treedef, leaves))


def stack_optimizers(optimizers: list[optax.GradientTransformation]) -> tuple[list, Structure]:
    """The traced numbers of optimizers of one structure, stacked leaf by leaf (for ``vmap``).

    Raises:
      ValueError: the optimizers differ in more than numbers (another transformation, a float
        learning rate beside a schedule, two different Python functions).
    """
    splits = [split_optimizer(opt) for opt in optimizers]
    structure = splits[0][1]
    if any(other != structure for _, other in splits[1:]):
        raise ValueError(
            "optimizers run together must have the same structure (same transformations, same "
            "kind of learning rate); only their numbers may differ"
        )
    columns = zip(*(numbers for numbers, _ in splits), strict=True)
    # Stacked on the host in the dtypes JAX would give each number (no small device programs).
    return [np.stack([_host_number(v) for v in column]) for column in columns], structure


def _host_number(value) -> np.ndarray:
    value = np.asarray(value)
    return value.astype(jax.dtypes.canonicalize_dtype(value.dtype))
