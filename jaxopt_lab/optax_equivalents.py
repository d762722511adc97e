"""The twins of :mod:`jaxopt_lab.optimizers`, built from Optax's public API alone.

Same names, signatures and update rules; the tests prove the two modules equal step for step.
"""

from __future__ import annotations

import optax

from jaxopt_lab.optimizers import ScalarOrSchedule


def gd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """``p -= lr g``: Optax's plain SGD."""
    return optax.sgd(learning_rate)


def momentum(learning_rate: ScalarOrSchedule, beta: float = 0.9) -> optax.GradientTransformation:
    """EMA momentum ``v = beta v + (1-beta) g; p -= lr v``.

    ``optax.sgd(momentum=beta)`` is heavy-ball (no ``1 - beta`` on the gradient), so the twin is an
    un-debiased ``optax.ema`` followed by the learning rate.
    """
    return optax.chain(
        optax.ema(decay=beta, debias=False), optax.scale_by_learning_rate(learning_rate)
    )


def rmsprop(
    learning_rate: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8
) -> optax.GradientTransformation:
    """RMSprop with eps outside the square root (Optax's default puts it inside)."""
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, eps_in_sqrt=False)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Adam, eps outside the square root: exactly ``optax.adam``."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps, mu_dtype=mu_dtype)


OPTIMIZERS = {"gd": gd, "momentum": momentum, "rmsprop": rmsprop, "adam": adam}
