"""The lesson's named training runs, and fitting several of them while sharing compiled programs.

A :class:`RunConfig` describes one run as the ``jaxopt-lab train`` flags do; :data:`COURSE_RUNS` are
the course's seven. :func:`fit_runs` trains a list of them (``jaxopt-lab compare`` and the notebook
call it) and :func:`compare` turns the seven into the rows of the comparison table.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from jaxopt_lab import data, model, optimizers, schedules, train

LAYERS_DIMS = [2, 5, 2, 1]  # the lesson's network: 2 inputs, ReLU layers of 5 and 2, one sigmoid
PRINT_EVERY = 1000  # the course prints the cost every 1000 epochs
DECAYS = ("none", "inverse-time", "fixed-interval")


class RunConfig(NamedTuple):
    """One training run of the lesson, as the flags of ``train`` describe it."""

    optimizer: str = "adam"
    learning_rate: float = 0.0007
    epochs: int = 5000
    mini_batch_size: int = 64
    beta: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    decay: str = "none"
    decay_rate: float = 1.0
    time_interval: int = 1000
    seed: int | None = None

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

    def make_optimizer(self, m: int, *, shared_structure: bool = False):
        """The hand-rolled optimizer of this run for ``m`` training examples.

        With ``shared_structure`` the run is built in the form that shares compiled programs with
        the most other runs, computing bit for bit the same numbers: the learning rate is always a
        schedule (see :meth:`learning_rate_schedule`), and gradient descent is momentum with
        ``beta = 0`` (``v = 0 * v + 1 * g`` is exactly ``g``). The lesson's seven runs then compile
        two programs (momentum, Adam) instead of six.
        """
        lr = self.learning_rate_schedule(m, shared_structure=shared_structure)
        if self.optimizer == "gd":
            return optimizers.momentum(lr, 0.0) if shared_structure else optimizers.gd(lr)
        if self.optimizer == "momentum":
            return optimizers.momentum(lr, self.beta)
        if self.optimizer == "rmsprop":
            return optimizers.rmsprop(lr, decay=self.beta, eps=self.epsilon)
        return optimizers.adam(lr, self.beta1, self.beta2, self.epsilon)

    def learning_rate_after(self, epoch: int) -> float:
        """The rate the course prints after ``epoch`` (the one epoch ``epoch + 1`` trains at)."""
        rule = self.epoch_rule()
        return self.learning_rate if rule is None else float(rule(epoch))


def accuracy_of(params: model.Params, X: np.ndarray, Y: np.ndarray) -> float:
    """The course's accuracy: ``np.mean(predictions == Y)`` as a Python float (float64)."""
    predictions = np.asarray(model.predict(params, jax.numpy.asarray(X, params["W1"].dtype)))
    return float(np.mean(predictions == np.asarray(Y)))


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


def fit_runs(
    configs: Sequence[RunConfig], X, Y, *, on_epochs: Callable[[int], None] | None = None
) -> list[tuple[train.FitResult, float]]:
    """Fit several runs, sharing compiled programs, two groups at a time.

    Every run gets the ``shared_structure`` form of its optimizer, so runs that differ only in
    numbers compile once: the lesson's seven runs compile two programs, not six. The runs of each
    program go one after another in their own thread; XLA releases the GIL while a chunk runs, so
    on two cores one group traces or compiles while the other trains.

    Args:
      configs: the runs.
      X, Y: training data.
      on_epochs: called with the number of epochs just completed, after every chunk.

    Returns:
      ``(result, seconds)`` per config, in order; seconds is the run's wall time, compile included.
    """
    optimizers_ = [config.make_optimizer(X.shape[1], shared_structure=True) for config in configs]
    groups: dict[Any, list[int]] = {}
    for i, optimizer in enumerate(optimizers_):
        groups.setdefault(train.split_optimizer(optimizer)[1], []).append(i)
    lock = threading.Lock()
    fitted: list = [None] * len(configs)

    def fit_group(indices: list[int]) -> None:
        for i in indices:
            done = 0

            def report(state: train.TrainState) -> None:
                nonlocal done
                if on_epochs is not None:
                    with lock:
                        on_epochs(state.epoch - done)
                done = state.epoch

            config, start = configs[i], time.perf_counter()
            result = train.fit(
                X, Y, LAYERS_DIMS, optimizers_[i], num_epochs=config.epochs,
                mini_batch_size=config.mini_batch_size, seed=config.seed, on_chunk=report,
            )  # fmt: skip
            fitted[i] = (result, time.perf_counter() - start)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(fit_group, indices) for indices in groups.values()]:
            future.result()
    return fitted


def compare(
    runs: Sequence[tuple[str, RunConfig]] = COURSE_RUNS,
    X=None,
    Y=None,
    *,
    on_epochs: Callable[[int], None] | None = None,
) -> tuple[list[dict], list[train.FitResult]]:
    """Fit labelled runs (default: the course's seven on its data) and describe each as a row.

    Returns:
      ``(rows, results)``: per run a dict with ``method``, ``optimizer``, ``decay``,
      ``learning_rate``, ``final_cost``, ``accuracy``, ``seconds`` and ``cost_at_epoch`` (the costs
      the course prints), and its :class:`train.FitResult`.
    """
    if X is None or Y is None:
        X, Y = data.load_moons()
    labels, configs = zip(*runs, strict=True)
    fitted = fit_runs(configs, X, Y, on_epochs=on_epochs)
    rows = [
        {
            "method": label,
            "optimizer": config.optimizer,
            "decay": config.decay,
            "learning_rate": config.learning_rate,
            "final_cost": float(result.costs[-1]),
            "accuracy": accuracy_of(result.params, X, Y),
            "seconds": seconds,
            "cost_at_epoch": {
                str(e): float(result.costs[e]) for e in range(0, config.epochs, PRINT_EVERY)
            },
        }
        for label, config, (result, seconds) in zip(labels, configs, fitted, strict=True)
    ]
    return rows, [result for result, _ in fitted]


def compare_table(rows: Sequence[dict]) -> str:
    """The comparison as a Markdown table (also readable as plain text)."""
    lines = [
        "| method | decay | learning rate | final cost | accuracy | seconds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['decay']} | {r['learning_rate']:g} | {r['final_cost']:.6f} "
            f"| {r['accuracy']!r} | {r['seconds']:.2f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Sweeps of RunConfigs
# ---------------------------------------------------------------------------------------------

SWEEP_AXES = {  # the hyperparameters each optimizer uses, in RunConfig's names
    "gd": (),
    "momentum": ("beta",),
    "rmsprop": ("beta", "epsilon"),
    "adam": ("beta1", "beta2", "epsilon"),
}


def sweep_grid(optimizer: str, values: Mapping[str, Sequence[Any]]) -> dict[str, list]:
    """The grid of a sweep of ``optimizer``: its learning rate and own hyperparameters (and the
    decay, when any value asks for one) with the candidate ``values`` of each, duplicates dropped.

    Args:
      optimizer: a name in :data:`SWEEP_AXES`.
      values: candidate values per :class:`RunConfig` field (others are ignored).
    """
    names = ("learning_rate", *SWEEP_AXES[optimizer])
    if any(decay != "none" for decay in values["decay"]):
        names += ("decay", "decay_rate")
    return {name: list(dict.fromkeys(values[name])) for name in names}


def sweep_factory(base: RunConfig, m: int) -> Callable[..., optax.GradientTransformation]:
    """``**grid_point -> optimizer``: ``base`` with the point's fields, in the shared-structure
    form ``train`` uses (decays differ in numbers only, so the whole grid is one program)."""

    def make_optimizer(**config) -> optax.GradientTransformation:
        return base._replace(**config).make_optimizer(m, shared_structure=True)

    return make_optimizer


def best_run(rows: Sequence[dict]) -> dict | None:
    """The sweep row with the highest accuracy, ties broken by the lower final cost.

    Diverged rows (``diverged_at_epoch`` set, or no finite final cost) never count: the result
    is None when every run diverged.
    """

    def finished(row) -> bool:
        cost, accuracy = row.get("final_cost"), row.get("accuracy")
        return (
            row.get("diverged_at_epoch") is None
            and cost is not None
            and accuracy is not None
            and math.isfinite(cost)
            and math.isfinite(accuracy)
        )

    candidates = [row for row in rows if finished(row)]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r["accuracy"], -r["final_cost"]))
