"""One run's configuration: :class:`RunConfig` (the fields of :data:`settings.RUN_SETTINGS`), the
lesson's network and its seven runs (:data:`COURSE_RUNS`), and the course's accuracy."""

from __future__ import annotations

import collections

import jax
import numpy as np
import optax

from jaxopt_lab import data, model, optimizers, runtime, schedules
from jaxopt_lab.settings import RUN_SETTINGS, InvalidValue, check, factory_arguments

LAYERS_DIMS = [2, 5, 2, 1]  # the lesson's network: 2 inputs, ReLU layers of 5 and 2, one sigmoid
PRINT_EVERY = 1000  # the course prints the cost every 1000 epochs

_RunFields = collections.namedtuple(
    "_RunFields", [s.name for s in RUN_SETTINGS], defaults=[s.default for s in RUN_SETTINGS]
)


class RunConfig(_RunFields):
    """One training run of the lesson: ``optimizer``, ``learning_rate``, ``epochs``,
    ``mini_batch_size``, ``beta``, ``beta1``, ``beta2``, ``epsilon``, ``decay``, ``decay_rate``,
    ``time_interval`` and ``seed``, with the defaults, ranges and meanings of
    :data:`settings.RUN_SETTINGS` (the flags of ``jaxopt-lab train``)."""

    __slots__ = ()

    def check(self) -> RunConfig:
        """Refuse a setting outside its range (in the run's float dtype) or an unknown optimizer
        or decay, with an :class:`InvalidValue` naming it; returns the config."""
        if self.optimizer not in optimizers.OPTIMIZERS:
            names = ", ".join(optimizers.OPTIMIZERS)
            raise InvalidValue("optimizer", f"must be one of {names}, got {self.optimizer!r}")
        for name, value in self._asdict().items():
            if name != "optimizer":
                check(name, value)
        return self

    def epoch_rule(self) -> schedules.EpochRule | None:
        """The per-epoch learning-rate rule, or None without decay."""
        if self.decay == "inverse-time":
            return schedules.inverse_time(self.learning_rate, self.decay_rate)
        if self.decay == "fixed-interval":
            return schedules.fixed_interval(self.learning_rate, self.decay_rate, self.time_interval)
        return None

    def learning_rate_schedule(self, m: int, *, shared_structure: bool = False):
        """The learning rate the optimizer gets for ``m`` training examples: a float or a schedule.

        The decay keeps the course's one-epoch lag, so printed costs equal the course's. With
        ``shared_structure`` every run gets a ``fixed_interval`` schedule (no decay: rate 0, exactly
        ``lr0 / 1``; inverse-time: interval 1, exactly ``lr0 / (1 + rate * epoch)``), so that runs
        differ in traced numbers only (see :meth:`make_optimizer`).
        """
        rule = self.epoch_rule()
        if shared_structure:
            rate = 0.0 if self.decay == "none" else self.decay_rate
            interval = 1 if self.decay == "inverse-time" else self.time_interval
            rule = schedules.fixed_interval(self.learning_rate, rate, interval)
        if rule is None:
            return self.learning_rate
        steps_per_epoch = len(data.batch_sizes(m, self.mini_batch_size))
        return schedules.per_step(rule, steps_per_epoch, lag=True)

    def make_optimizer(self, m: int, *, shared_structure: bool = False) -> optax.GradientTransformation:
        """The hand-rolled optimizer of this run for ``m`` training examples, from the registry
        ``optimizers.OPTIMIZERS`` with the settings its factory takes.

        With ``shared_structure`` the run is built in the form that shares compiled programs with
        the most other runs, computing bit for bit the same numbers: the learning rate is always a
        schedule (see :meth:`learning_rate_schedule`), and gradient descent is momentum with
        ``beta = 0`` (``v = 0 * v + 1 * g`` is exactly ``g``). The lesson's seven runs then compile
        two programs (momentum, Adam) instead of six.
        """
        lr = self.learning_rate_schedule(m, shared_structure=shared_structure)
        name, values = self.optimizer, self._asdict()
        if shared_structure and name == "gd":
            name, values = "momentum", {**values, "beta": 0.0}
        factory = optimizers.OPTIMIZERS[name]
        return factory(lr, **factory_arguments(factory, values))

    def learning_rate_after(self, epoch: int) -> float:
        """The rate the course prints after ``epoch`` (the one epoch ``epoch + 1`` trains at)."""
        rule = self.epoch_rule()
        return self.learning_rate if rule is None else float(rule(epoch))

    def identity(self) -> dict:
        """What makes two runs the same run for a checkpoint: every setting but the epochs (a
        resumed run may go further than the first one planned), and the float precision."""
        identity = {**self._asdict(), "float": runtime.environment()["float"]}
        del identity["epochs"]
        return identity


COURSE_RUNS: tuple[tuple[str, RunConfig], ...] = (
    ("mini-batch GD", RunConfig("gd", 0.0007)),
    ("momentum", RunConfig("momentum", 0.0007)),
    ("Adam", RunConfig("adam", 0.0007)),
    ("GD, inverse-time decay", RunConfig("gd", 0.1, decay="inverse-time")),
    ("GD, fixed-interval decay", RunConfig("gd", 0.1, decay="fixed-interval")),
    ("momentum, fixed-interval decay", RunConfig("momentum", 0.1, decay="fixed-interval")),
    ("Adam, fixed-interval decay", RunConfig("adam", 0.01, decay="fixed-interval")),
)
"""The lesson's seven runs: (label, configuration)."""


def accuracy_of(params: model.Params, X: np.ndarray, Y: np.ndarray) -> float:
    """The course's accuracy: ``np.mean(predictions == Y)`` as a Python float (float64)."""
    predictions = np.asarray(model.predict(params, jax.numpy.asarray(X, params["W1"].dtype)))
    return float(np.mean(predictions == np.asarray(Y)))
