"""A grid of optimizer configurations as arrays: the cartesian product of candidate values, the
factory that builds each configuration, and every configuration's traced numbers stacked, built
from one factory call on arrays where the factory allows it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optax

from jaxopt_lab import optimizers, train
from jaxopt_lab.settings import InvalidValue
from jaxopt_lab.table import is_real as _is_real

OptimizerFactory = Callable[..., optax.GradientTransformation]


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of a grid, last key fastest: ``{"a": [1, 2], "b": [3]}`` ->
    ``[{"a": 1, "b": 3}, {"a": 2, "b": 3}]``."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def check_grid(grid) -> dict[str, list]:
    if not isinstance(grid, Mapping):
        raise InvalidValue("grid", f"must map argument names to lists of values, got {grid!r}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise InvalidValue(
                str(name),
                f"(a grid axis) must be a list of values to try, e.g. [{values!r}], got {values!r}",
            )
    return {name: list(values) for name, values in grid.items()}


def factory_of(optimizer) -> tuple[str, OptimizerFactory]:
    if isinstance(optimizer, str):
        if optimizer not in optimizers.OPTIMIZERS:
            names = ", ".join(optimizers.OPTIMIZERS)
            raise InvalidValue("optimizer", f"must be one of {names} or a factory, got {optimizer!r}")
        return optimizer, optimizers.OPTIMIZERS[optimizer]
    if isinstance(optimizer, optax.GradientTransformation) or not callable(optimizer):
        raise InvalidValue(
            "optimizer",
            "must be a name or a factory called with each grid point's keyword arguments (e.g. "
            f"optimizers.adam, or lambda learning_rate: ...), got {optimizer!r}",
        )
    return getattr(optimizer, "__name__", type(optimizer).__name__), optimizer


def _build(factory: OptimizerFactory, name: str, config: dict) -> optax.GradientTransformation:
    try:
        built = factory(**config)
    except TypeError as error:  # a grid key the factory does not take, most often
        raise InvalidValue("grid", f": optimizer {name} cannot be built from {config}: {error}") from None
    if not isinstance(built, optax.GradientTransformation):
        raise InvalidValue(
            "optimizer",
            f"factory {name} must return an optax.GradientTransformation, got {built!r}",
        )
    return built


class _NotVectorised(Exception):
    """The factory did not give per-configuration arrays when called on arrays."""


def grid_numbers(
    factory: OptimizerFactory, name: str, grid: Mapping[str, list]
) -> tuple[list[np.ndarray], train.Structure, optax.GradientTransformation]:
    """The traced numbers of every configuration, stacked (leading axis: configurations in grid
    order), their shared structure, and the first configuration's optimizer.

    The factory is called once per combination of the grid's non-numeric values (a decay's name,
    say), with every numeric axis as an array over the configurations: the hand-rolled optimizers
    compute their numbers elementwise, so a million configurations cost one call. The result is
    checked against the factory called on the first and last configurations alone; a factory that
    does not work on arrays (``if learning_rate > 0.1``, ``float(b1)``) is called once per
    configuration instead.

    Raises:
      InvalidValue: a configuration the factory refuses, or configurations that do not share one
        structure (the numbers vary, the functions must not).
    """
    names, values = list(grid), list(grid.values())
    shape = tuple(len(v) for v in values)
    count = math.prod(shape)
    first = _build(factory, name, {n: v[0] for n, v in zip(names, values, strict=True)})
    if count == 1:
        numbers, structure = train.stack_optimizers([first])
        return numbers, structure, first
    try:
        numbers, structure = _numbers_from_arrays(factory, name, names, values, first)
        last = _build(factory, name, {n: v[-1] for n, v in zip(names, values, strict=True)})
        for at, built in ((0, first), (count - 1, last)):
            alone, _ = train.stack_optimizers([built])
            if not all(np.array_equal(a[at], b[0]) for a, b in zip(numbers, alone, strict=True)):
                raise _NotVectorised
        return numbers, structure, first
    except (_NotVectorised, TypeError, ValueError, ArithmeticError):
        pass
    built = [_build(factory, name, config) for config in grid_points(grid)]
    try:
        numbers, structure = train.stack_optimizers(built)
    except ValueError as error:
        hint = "" if all(train.is_elementwise(b) for b in built) else (
            "; an Optax transformation keeps its hyperparameters in closures, so sweep one "
            "configuration per call"
        )  # fmt: skip
        raise InvalidValue("grid", f": {error}{hint}") from None
    return numbers, structure, first


def _numbers_from_arrays(factory, name, names, values, first):
    shape = tuple(len(v) for v in values)
    numeric = [i for i, v in enumerate(values) if all(_is_real(x) for x in v)]
    fixed = [i for i in range(len(values)) if i not in numeric]
    alone, structure = train.stack_optimizers([first])
    numbers = [np.empty((math.prod(shape), *a.shape[1:]), a.dtype) for a in alone]
    # Each numeric axis's index for every configuration of one combination of the fixed values.
    sub = np.indices([shape[i] for i in numeric]).reshape(len(numeric), -1)
    for combo in itertools.product(*(range(shape[i]) for i in fixed)):
        index = [None] * len(shape)
        for k, i in enumerate(numeric):
            index[i] = sub[k]
        for k, i in enumerate(fixed):
            index[i] = np.full(sub.shape[1], combo[k])
        where = np.ravel_multi_index(index, shape)
        config = {names[i]: np.asarray(values[i])[sub[k]] for k, i in enumerate(numeric)}
        config.update({names[i]: values[i][combo[k]] for k, i in enumerate(fixed)})
        leaves, other = train.split_optimizer(_build(factory, name, config))
        if other != structure:
            raise _NotVectorised
        for target, leaf, one in zip(numbers, leaves, alone, strict=True):
            leaf = np.asarray(leaf).astype(one.dtype)
            if leaf.shape not in (one.shape[1:], (len(where), *one.shape[1:])):
                raise _NotVectorised
            target[where] = leaf
    return numbers, structure
