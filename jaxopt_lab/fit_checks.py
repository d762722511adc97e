"""The checks of ``fit``'s arguments: each refusal is an :class:`~jaxopt_lab.settings.InvalidValue`
naming the argument, raised before anything is traced or compiled."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import settings
from jaxopt_lab.settings import InvalidValue, check


def check_optimizer(optimizer) -> None:
    """Refuse anything but an ``optax.GradientTransformation``, naming what was given instead."""
    if isinstance(optimizer, optax.GradientTransformation):
        return
    if isinstance(optimizer, str):
        hint = f"; for a name, use optimizers.OPTIMIZERS[{optimizer!r}](learning_rate)"
    elif callable(optimizer):
        name = getattr(optimizer, "__name__", type(optimizer).__name__)
        hint = f"; {name} looks like a factory: call it, e.g. {name}(learning_rate)"
    else:
        hint = ""
    raise InvalidValue(
        "optimizer",
        "must be an optax.GradientTransformation such as optimizers.adam(0.0007), "
        f"got {optimizer!r}{hint}",
    )


def _real_numbers(name: str, values, *, allow_bool: bool = False) -> np.ndarray:
    """``values`` as float64 for checking; refuses complex (its imaginary part would be dropped),
    booleans, strings and objects. Low-precision floats such as bfloat16 are accepted."""
    values = np.asarray(values)
    kind = values.dtype.kind
    is_float = kind == "f" or jnp.issubdtype(values.dtype, jnp.floating)  # bfloat16 is kind "V"
    if kind == "c":
        raise InvalidValue(name, f"must hold real numbers, got complex values ({values.dtype})")
    if not (is_float or kind in "iu" or (allow_bool and kind == "b")):
        raise InvalidValue(name, f"must hold real numbers, got dtype {values.dtype}")
    return values.astype(np.float64)


def check_fit_args(X, Y, layers_dims, *, num_epochs, mini_batch_size, seed, chunk_epochs) -> None:
    """Refuse what ``fit`` cannot train on, with an :class:`InvalidValue` naming the argument."""
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or X.shape[1] == 0:
        raise InvalidValue("X", f"must be 2-D (n_x, m) with m >= 1 examples as columns, got {X.shape}")
    X = _real_numbers("X", X)
    if not np.all(np.isfinite(X)):
        raise InvalidValue("X", "must hold finite numbers (found NaN or inf)")
    run = settings.run_dtype()
    with np.errstate(over="ignore"):
        overflows = not np.all(np.isfinite(X.astype(run)))
    if overflows:  # fit casts X to the run's float: it would train on infinities
        raise InvalidValue(
            "X",
            f"must hold numbers finite in {run.name}, got a magnitude of {np.max(np.abs(X)):.3g}, "
            "which overflows there: use float64 (JAX_ENABLE_X64=1, or --x64) or rescale X",
        )
    if Y.shape != (1, X.shape[1]):
        raise InvalidValue("Y", f"must have shape (1, m) = (1, {X.shape[1]}) to match X, got {Y.shape}")
    Y = _real_numbers("Y", Y, allow_bool=True)
    if not np.all((Y == 0) | (Y == 1)):
        raise InvalidValue("Y", "must hold 0/1 labels")
    dims = list(layers_dims) if isinstance(layers_dims, (list, tuple)) else None
    if (
        not dims
        or len(dims) < 2
        or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in dims)
    ):
        raise InvalidValue("layers_dims", f"must be a list of positive integers, got {layers_dims!r}")
    if dims[0] != X.shape[0] or dims[-1] != 1:
        raise InvalidValue(
            "layers_dims", f"must start with X's row count {X.shape[0]} and end with 1, got {dims}"
        )
    check("epochs", num_epochs, name="num_epochs")
    check("mini_batch_size", mini_batch_size)
    if chunk_epochs is not None:
        check("chunk_epochs", chunk_epochs)
    check("seed", seed)
