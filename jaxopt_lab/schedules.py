"""The course's learning-rate decay rules, and adapters from per-epoch rules to Optax step schedules.

The rules are plain arithmetic, so they work on Python numbers and on traced JAX values alike.
The course's ``model()`` recomputes the rate *after* each epoch: epoch 0 runs at ``lr0`` and epoch
e >= 1 at ``rule(e - 1)``. ``lag=True`` keeps that one-epoch lag.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from jaxopt_lab.settings import InvalidValue, check, check_learning_rate

EpochRule = Callable[[jax.Array], jax.Array]


def update_lr(learning_rate0, epoch_num, decay_rate):
    """Inverse-time decay every epoch: ``lr0 / (1 + decay_rate * epoch_num)``."""
    return learning_rate0 / (1 + decay_rate * epoch_num)


def schedule_lr_decay(learning_rate0, epoch_num, decay_rate, time_interval=1000):
    """Staircase inverse-time decay: ``lr0 / (1 + decay_rate * floor(epoch_num / time_interval))``."""
    return learning_rate0 / (1 + decay_rate * (epoch_num // time_interval))


def _inverse_time_rule(learning_rate0, decay_rate, epoch):
    return update_lr(learning_rate0, epoch, decay_rate)


def _fixed_interval_rule(learning_rate0, decay_rate, time_interval, epoch):
    return schedule_lr_decay(learning_rate0, epoch, decay_rate, time_interval)


def inverse_time(learning_rate: float, decay_rate: float) -> EpochRule:
    """Per-epoch rule ``epoch -> update_lr(learning_rate, epoch, decay_rate)`` (a traceable pytree)."""
    check_learning_rate(learning_rate)
    check("decay_rate", decay_rate)
    return Partial(_inverse_time_rule, learning_rate, decay_rate)


def fixed_interval(learning_rate: float, decay_rate: float, time_interval: int = 1000) -> EpochRule:
    """Per-epoch rule ``epoch -> schedule_lr_decay(learning_rate, epoch, decay_rate, time_interval)``."""
    check_learning_rate(learning_rate)
    check("decay_rate", decay_rate)
    check("time_interval", time_interval)
    return Partial(_fixed_interval_rule, learning_rate, decay_rate, time_interval)


def _table_rule(table, epoch):
    return table[epoch]


def epoch_table(learning_rates) -> EpochRule:
    """Per-epoch rule read from a table of rates (one per epoch), e.g. computed on the host by a
    decay function that is not traceable. The table is a traced leaf: same length, same program."""
    return Partial(_table_rule, jnp.asarray(learning_rates))


def _per_step(epoch_rule, steps_per_epoch, count):
    return epoch_rule(count // steps_per_epoch)


def _per_step_lagged(epoch_rule, steps_per_epoch, count):
    return epoch_rule(jnp.maximum(count // steps_per_epoch - 1, 0))


def per_step(epoch_rule: EpochRule, steps_per_epoch: int, *, lag: bool = False):
    """Turn a per-epoch rule into an Optax step schedule ``step -> lr``.

    Args:
      epoch_rule: ``epoch -> lr``, e.g. :func:`inverse_time` or :func:`fixed_interval`.
      steps_per_epoch: optimizer updates per epoch (mini-batches per epoch).
      lag: if True, epoch e >= 1 uses ``epoch_rule(e - 1)`` and epoch 0 ``epoch_rule(0)``, as the
        course's ``model()`` does; if False, epoch e uses ``epoch_rule(e)``.

    Returns:
      A schedule (a :class:`jax.tree_util.Partial`, so its numbers are traced, not baked in).
    """
    if not callable(epoch_rule):
        raise InvalidValue("epoch_rule", f"must be callable (epoch -> lr), got {epoch_rule!r}")
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1:
        raise InvalidValue("steps_per_epoch", f"must be an integer >= 1, got {steps_per_epoch!r}")
    return Partial(_per_step_lagged if lag else _per_step, epoch_rule, steps_per_epoch)
