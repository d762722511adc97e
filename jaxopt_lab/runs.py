"""The lesson's runs as whole things: a run's configuration, a resumable run, the seven course runs
compared, sweeps of configurations.

- :class:`RunConfig` is one run, with the fields of :data:`settings.RUN_SETTINGS`;
  :data:`COURSE_RUNS` are the course's seven.
- :func:`train_run` trains one run from start to end: the folder lock, checkpoints, resuming from
  the newest intact one, saving when a signal stops it and at the end.
- :func:`fit_runs` trains several while sharing compiled programs; :func:`compare` turns the seven
  into the rows of the comparison table.
- :func:`sweep_runs` trains a grid of configurations over seeds as one program.

Every function here stops at a chunk boundary on SIGINT, SIGTERM or SIGHUP and raises
:class:`runtime.Stopped` (a run with checkpoints saves first).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from jaxopt_lab import checkpoints, data, distributed, model, optimizers, runtime, schedules, train
from jaxopt_lab.settings import (
    RUN_SETTINGS,
    InvalidValue,
    check,
    factory_arguments,
    factory_settings,
)

LAYERS_DIMS = [2, 5, 2, 1]  # the lesson's network: 2 inputs, ReLU layers of 5 and 2, one sigmoid
PRINT_EVERY = 1000  # the course prints the cost every 1000 epochs

# ---------------------------------------------------------------------------------------------
# One run's configuration
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# A whole run: lock, checkpoints, resume, signals
# ---------------------------------------------------------------------------------------------


class Progress(NamedTuple):
    """Where a :func:`train_run` stands, given to its ``on_progress``."""

    epoch: int  # epochs done
    costs: np.ndarray  # shape=(epoch,): the cost of every epoch done
    skipped: tuple = ()  # (file name, why) of checkpoints passed over on resume; first call only


def train_run(
    config: RunConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> train.FitResult:
    """Train one run of the lesson's network on the course's data, from start to end.

    With a ``checkpoint_dir`` the run owns that folder (a second run there is refused while this
    one lives), saves its state atomically every ``checkpoint_every`` epochs and at the end, and
    never starts afresh over checkpoints already there: pass ``resume=True`` to continue from the
    newest intact checkpoint of this configuration (damaged or foreign files are skipped, listed in
    the first :class:`Progress`), bit for bit the run that was never stopped. On SIGINT, SIGTERM
    or SIGHUP the run finishes its chunk, saves (with a folder) and raises
    :class:`runtime.Stopped` carrying the state and the checkpoint's path.

    Args:
      config: the run (its optimizer is built in the shared-structure form, the same numbers).
      checkpoint_dir: where checkpoints live; None for none.
      checkpoint_every: epochs between checkpoints.
      resume: continue the run saved in ``checkpoint_dir`` up to ``config.epochs``.
      on_progress: called with a :class:`Progress` once at the start (the epoch resumed from)
        and after every chunk; chunks end on every multiple of ``checkpoint_every`` and of
        :data:`PRINT_EVERY`.

    Returns:
      The run's :class:`train.FitResult`.

    Raises:
      InvalidValue: a bad setting, an unusable or busy folder, checkpoints that would be
        overwritten, nothing to resume, or a checkpoint past ``config.epochs``.
      runtime.Stopped: a signal stopped the run.
      train.DivergenceError: the cost stopped being finite.
    """
    config.check()
    check("checkpoint_every", checkpoint_every)
    if resume and checkpoint_dir is None:
        raise InvalidValue("resume", "needs {checkpoint_dir}", mentions=("checkpoint_dir",))
    X, Y = data.load_moons()
    optimizer = config.make_optimizer(X.shape[1], shared_structure=True)
    with contextlib.ExitStack() as stack:
        checkpointer = state = None
        skipped: tuple = ()
        if checkpoint_dir is not None:
            stack.enter_context(_own_folder(checkpoint_dir))
            checkpointer = checkpoints.Checkpointer(checkpoint_dir, checkpoint_every, config.identity())
            state = _starting_state(checkpointer, config, optimizer, resume)
            skipped = tuple(checkpointer.skipped)
        if on_progress is not None:
            start = (state.epoch, state.costs) if state is not None else (0, np.zeros(0))
            on_progress(Progress(*start, skipped))
        stops = stack.enter_context(runtime.deferred_stops())

        def on_chunk(state: train.TrainState) -> None:
            if on_progress is not None:
                on_progress(Progress(state.epoch, state.costs))
            if checkpointer is not None:
                checkpointer(state)
            stops.check(state)

        try:
            result = train.fit(
                X, Y, LAYERS_DIMS, optimizer, num_epochs=config.epochs,
                mini_batch_size=config.mini_batch_size, seed=config.seed, state=state,
                chunk_epochs=math.gcd(checkpoint_every, PRINT_EVERY) if checkpointer else None,
                on_chunk=on_chunk,
            )  # fmt: skip
        except runtime.Stopped as stop:
            saved = checkpointer.save(stop.state) if checkpointer is not None else None
            raise runtime.Stopped(stop.signum, stop.state, saved) from None
        if checkpointer is not None:
            checkpointer.save(
                train.TrainState(result.params, result.opt_state, config.epochs, result.costs)
            )
        return result


@contextlib.contextmanager
def _own_folder(directory):
    """Prove ``directory`` takes files and hold its lock for the block."""
    try:
        runtime.ensure_writable_dir(directory)
    except OSError as error:
        raise InvalidValue("checkpoint_dir", f"{directory}: cannot write there ({error.strerror})") from None
    try:
        lock = checkpoints.FolderLock(directory).acquire()
    except checkpoints.FolderLockedError as error:
        raise InvalidValue("checkpoint_dir", str(error)) from None
    try:
        yield
    finally:
        lock.release()


def _starting_state(checkpointer, config: RunConfig, optimizer, resume: bool):
    """With ``resume``, the newest intact checkpoint of this run; without, None, and only if the
    folder holds no checkpoint (a fresh start never overwrites a saved run)."""
    folder = checkpointer.directory
    if not resume:
        if checkpointer.paths():
            raise InvalidValue(
                "checkpoint_dir",
                f"{folder} already holds checkpoints: pass {{resume}} to continue that run, or "
                "choose another folder",
                mentions=("resume",),
            )
        return None
    try:
        state = checkpointer.restore(train.init_state(LAYERS_DIMS, optimizer, config.seed))
    except ValueError as error:
        raise InvalidValue("resume", f": {error}") from None
    if state is None:
        raise InvalidValue("resume", f": no checkpoint to resume from in {folder}")
    if state.epoch > config.epochs:
        raise InvalidValue("epochs", f"{config.epochs} is before the checkpoint's epoch {state.epoch}")
    return state


# ---------------------------------------------------------------------------------------------
# Several runs sharing compiled programs: the course's seven, compared
# ---------------------------------------------------------------------------------------------


def fit_runs(
    configs: Sequence[RunConfig], X, Y, *, on_epochs: Callable[[int], None] | None = None
) -> list[tuple[train.FitResult, float]]:
    """Fit several runs, sharing compiled programs, two groups at a time.

    Every run gets the ``shared_structure`` form of its optimizer, so runs that differ only in
    numbers compile once: the lesson's seven runs compile two programs, not six. The runs of each
    program go one after another in their own thread; XLA releases the GIL while a chunk runs, so
    on two cores one group traces or compiles while the other trains. Each result's seconds are
    its own run's (see ``train.FitResult``).

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

    A signal stops every run at its next chunk boundary (:class:`runtime.Stopped`).

    Returns:
      ``(rows, results)``: per run a dict with ``method``, ``optimizer``, ``decay``,
      ``learning_rate``, ``final_cost``, ``accuracy``, ``seconds`` and ``cost_at_epoch`` (the costs
      the course prints), and its :class:`train.FitResult`.
    """
    if X is None or Y is None:
        X, Y = data.load_moons()
    labels, configs = zip(*runs, strict=True)
    with runtime.deferred_stops() as stops:

        def each_chunk(epochs: int) -> None:
            if on_epochs is not None:
                on_epochs(epochs)
            stops.check()  # every run stops at its next chunk boundary

        fitted = fit_runs(configs, X, Y, on_epochs=each_chunk)
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


def sweep_axes(optimizer: str) -> tuple[str, ...]:
    """The settings a sweep of ``optimizer`` varies: its learning rate and the hyperparameters its
    factory takes (``adam``: ``learning_rate, beta1, beta2, epsilon``)."""
    factory = optimizers.OPTIMIZERS[optimizer]
    return ("learning_rate", *(s.name for s in factory_settings(factory)))


def sweep_grid(optimizer: str, values: Mapping[str, Sequence[Any]]) -> dict[str, list]:
    """The grid of a sweep of ``optimizer``: its learning rate and own hyperparameters (and the
    decay, when any value asks for one) with the candidate ``values`` of each, duplicates dropped.

    Args:
      optimizer: a name in ``optimizers.OPTIMIZERS``.
      values: candidate values per :class:`RunConfig` field (others are ignored).
    """
    names = sweep_axes(optimizer)
    if any(decay != "none" for decay in values["decay"]):
        names += ("decay", "decay_rate")
    return {name: list(dict.fromkeys(values[name])) for name in names}


def sweep_factory(base: RunConfig, m: int) -> Callable[..., optax.GradientTransformation]:
    """``**grid_point -> optimizer``: ``base`` with the point's fields, in the shared-structure
    form ``train`` uses (decays differ in numbers only, so the whole grid is one program)."""

    def make_optimizer(**config) -> optax.GradientTransformation:
        return base._replace(**config).make_optimizer(m, shared_structure=True)

    return make_optimizer


PEER_CHECK_SECONDS = 0.5  # a multi-process sweep asks after its peers at most this often


def sweep_table(
    base: RunConfig,
    values: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    on_progress: Callable[[int, int], None] | None = None,
    block_runs: int | None = None,
    as_rows: bool = False,
):
    """A sweep of ``base.optimizer`` over candidate ``values`` of its settings, for every seed;
    the results as columns (:class:`jaxopt_lab.sweep.SweepTable`), settings named by
    ``RunConfig`` fields, ``optimizer`` set to ``base.optimizer``.

    The grid is :func:`sweep_grid` of ``values`` (lists per :class:`RunConfig` field); epochs,
    batch size and interval come from ``base``. Runs on every device of every process, block by
    block (:func:`jaxopt_lab.sweep.sweep_table`); in a multi-process sweep a lost peer stops this
    process at the next chunk boundary (:class:`distributed.DistributedError`), and so does a
    signal (:class:`runtime.Stopped`). A grid whose results would not fit in memory is refused
    before training (an :class:`InvalidValue` naming ``grid`` with the number that fits).

    Args:
      on_progress: called after every chunk of every block with ``(done, total)`` run-epochs.
      block_runs: runs per device per block (default: sized to the cache).
      as_rows: the caller will turn every run into a dict (counted in the memory check).
    """
    from jaxopt_lab import sweep

    X, Y = data.load_moons()
    grid = sweep_grid(base.optimizer, values)
    checked = -math.inf
    with runtime.deferred_stops() as stops:

        def each_chunk(done: int, total: int) -> None:
            nonlocal checked
            if on_progress is not None:
                on_progress(done, total)
            if time.monotonic() - checked > PEER_CHECK_SECONDS:
                distributed.check_peers()  # a lost peer ends this process too
                checked = time.monotonic()
            stops.check()

        table = sweep.sweep_table(
            X, Y, LAYERS_DIMS, sweep_factory(base, X.shape[1]), grid, seeds=seeds,
            num_epochs=base.epochs, mini_batch_size=base.mini_batch_size, on_progress=each_chunk,
            block_runs=block_runs, as_rows=as_rows,
        )  # fmt: skip
    return dataclasses.replace(table, optimizer=base.optimizer)


def sweep_runs(
    base: RunConfig,
    values: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    on_epochs: Callable[[int], None] | None = None,
) -> list[dict]:
    """:func:`sweep_table` as one dict per run (the rows of :func:`jaxopt_lab.sweep.sweep`).

    ``on_epochs`` is called after every chunk with the epochs done so far, counted over the
    whole grid (the share of run-epochs done, times ``base.epochs``): it rises to
    ``base.epochs`` once, however many blocks the grid takes.
    """

    def progress(done: int, total: int) -> None:
        on_epochs(done * base.epochs // total)

    table = sweep_table(
        base, values, seeds, on_progress=progress if on_epochs is not None else None, as_rows=True
    )
    return table.rows()


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
