"""The lesson's runs as whole things: a run's configuration, a resumable run, the seven course runs
compared (once, or over many seeds), learning-rate curves, sweeps of configurations.

- :class:`RunConfig` is one run, with the fields of :data:`settings.RUN_SETTINGS`;
  :data:`COURSE_RUNS` are the course's seven.
- :func:`train_run` trains one run from start to end: the folder lock, checkpoints, resuming from
  the newest intact one, saving when a signal stops it and at the end.
- :func:`fit_runs` trains several while sharing compiled programs; :func:`compare` turns the seven
  into the rows of the comparison table.
- :func:`compare_seeds` trains the seven for many seeds and says what the seeds say;
  :func:`lr_find` (over :func:`lr_curve`) gives each optimizer's results against the learning rate.
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

from jaxopt_lab import (
    checkpoints,
    data,
    distributed,
    model,
    optimizers,
    runtime,
    schedules,
    stats,
    train,
)
from jaxopt_lab.settings import (
    BY_NAME,
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


def _structures(optimizers_: Sequence[optax.GradientTransformation]) -> list[list[int]]:
    """The indices of ``optimizers_`` grouped by program structure, in order of first use."""
    groups: dict[Any, list[int]] = {}
    for i, optimizer in enumerate(optimizers_):
        groups.setdefault(train.split_optimizer(optimizer)[1], []).append(i)
    return list(groups.values())


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
        work = runtime.in_this_precision(fit_group)  # threads: in the caller's precision
        for future in [pool.submit(work, indices) for indices in _structures(optimizers_)]:
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
# What one seed cannot tell: runs over many seeds, and each optimizer's learning-rate curve
# ---------------------------------------------------------------------------------------------

MEMORY_BUDGET = 2**30  # bytes of host memory a seeds comparison or a learning-rate search plans for
ROW_BYTES = 2048  # a result row on the host (a dict of a dozen entries) and its share of the rest
SHUFFLE_ENTRIES = 2**22  # epoch-order entries a seeds sweep draws per chunk (16 MiB of int32)


def _seed_list(seeds, *, most: int) -> list[int]:
    """``seeds`` (a sequence, e.g. ``range(100)``) as a list of at most ``most`` distinct seeds."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise InvalidValue("seeds", f"must be a sequence of seeds such as range(100), got {seeds!r}",
                           setting="seed_count")  # fmt: skip
    if len(seeds) == 0:
        raise InvalidValue("seeds", "must hold at least one seed", setting="seed_count")
    if len(seeds) > most:  # before looking at any seed: range(10**12) is refused at once
        raise InvalidValue(
            "seeds",
            f"{len(seeds)} is more seeds than fit the memory budget (runs.MEMORY_BUDGET, "
            f"{MEMORY_BUDGET / 2**30:g} GiB): at most {most} here",
            setting="seed_count",
        )
    for seed in seeds:
        check("seed", seed, name="seeds")
    seeds = [int(seed) for seed in seeds]
    if len(set(seeds)) != len(seeds):
        raise InvalidValue("seeds", "must not repeat a seed (it would count twice)", setting="seed_count")
    return seeds


def _run_sweeps(sweeps, seeds, *, epochs, mini_batch_size, keep_costs=False, on_epochs=None) -> list:
    """Run ``sweeps`` (``(factory, grid)`` pairs, one per program structure) for every seed, two
    at a time in threads (XLA releases the GIL, so one compiles while the other trains); one
    :class:`jaxopt_lab.sweep.SweepTable` per sweep.

    ``keep_costs`` keeps every epoch's cost per run; ``on_epochs`` gets the run-epochs done since
    its last call. A signal stops every sweep at its next chunk boundary
    (:class:`runtime.Stopped`).

    A chunk's shuffles are drawn at once (an int32 per example, epoch and seed, and the sorts'
    working copies), and two sweeps run at once, so chunks are kept to :data:`SHUFFLE_ENTRIES`
    of them per sweep: 100 seeds of 300 examples take chunks of 139 epochs. Results do not depend
    on the chunk length.
    """
    from jaxopt_lab import sweep

    X, Y = data.load_moons()
    chunk_epochs = max(1, min(train.DEFAULT_CHUNK_EPOCHS, SHUFFLE_ENTRIES // (len(seeds) * X.shape[1])))
    lock = threading.Lock()
    with runtime.deferred_stops() as stops:

        def run(factory, grid: dict):
            reported = 0

            def progress(done: int, total: int) -> None:
                nonlocal reported
                if on_epochs is not None:
                    with lock:
                        on_epochs(done - reported)
                reported = done
                stops.check()

            return sweep.sweep_table(
                X, Y, LAYERS_DIMS, factory, grid, seeds=seeds, num_epochs=epochs,
                mini_batch_size=mini_batch_size, chunk_epochs=chunk_epochs, keep_costs=keep_costs,
                on_progress=progress, as_rows=True,
            )  # fmt: skip

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(runtime.in_this_precision(run), *job) for job in sweeps]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:  # a sweep not started yet is not started at all
                    future.cancel()
                raise


class SeedsComparison(NamedTuple):
    """What :func:`compare_seeds` gives back."""

    methods: list[str]  # the runs' labels
    configs: list[RunConfig]  # the runs (their ``seed`` is not used)
    seeds: list[int]
    rows: list[dict]  # one per (run, seed): runs in order, seeds fastest
    costs: np.ndarray  # shape=(runs, seeds, epochs), float: every epoch's cost, NaN once diverged
    statistics: list[dict]  # one per run
    beats: np.ndarray  # shape=(runs, runs): share of seeds on which run i is more accurate than j
    course: list[dict]  # :func:`compare`'s rows: the same runs in the course's randomness
    course_costs: list[np.ndarray]  # the course runs' cost per epoch

    def _matrix(self, field: str) -> np.ndarray:
        return stats.as_values([row[field] for row in self.rows]).reshape(len(self.methods), -1)

    @property
    def accuracy(self) -> np.ndarray:
        """Shape (runs, seeds); NaN for a diverged run."""
        return self._matrix("accuracy")

    @property
    def final_cost(self) -> np.ndarray:
        """Shape (runs, seeds); NaN for a diverged run."""
        return self._matrix("final_cost")


def seeds_that_fit(runs: int, epochs: int) -> int:
    """How many seeds of ``runs`` runs of ``epochs`` epochs :data:`MEMORY_BUDGET` holds: per run
    and seed a row and its cost history (float32, and a float64 copy for the quantiles)."""
    return MEMORY_BUDGET // (runs * (ROW_BYTES + 12 * epochs))


def compare_seeds(
    seeds: Sequence[int],
    runs: Sequence[tuple[str, RunConfig]] = COURSE_RUNS,
    *,
    epochs: int | None = None,
    on_epochs: Callable[[int], None] | None = None,
) -> SeedsComparison:
    """The labelled runs (default: the course's seven) trained for every seed, and what the
    seeds say about them that one run cannot.

    Each (run, seed) is ``train.fit(..., seed=seed)`` with that run's configuration (JAX
    randomness: the seed draws the initial parameters and every epoch's shuffle), to float
    tolerance. The runs that share a program structure (the course's seven make two: see
    :meth:`RunConfig.make_optimizer`) train as one :func:`jaxopt_lab.sweep.sweep` over
    ``(seeds, runs)``; the runs themselves also train once in the course's randomness, which
    gives the course's own value for every distribution.

    Per run, the statistics are over the seeds that did not diverge (see :mod:`jaxopt_lab.stats`):
    mean, standard deviation and 95% t interval of the accuracy and of the final cost, the share
    of seeds that diverged, and the percentile of the course's run in each distribution. Between
    runs, ``beats[i, j]`` is the share of seeds on which run ``i`` reaches a higher accuracy than
    run ``j`` (:func:`jaxopt_lab.stats.beats`): the same seed means the same initial parameters
    and shuffles, so it is a paired comparison.

    Args:
      seeds: distinct JAX seeds, e.g. ``range(100)``.
      runs: ``(label, RunConfig)`` pairs sharing ``epochs`` and ``mini_batch_size``.
      epochs: train every run this many epochs instead of its own.
      on_epochs: called with the run-epochs done since its last call (for a progress bar).

    Returns:
      A :class:`SeedsComparison`. Its rows: ``method``, ``optimizer``, ``decay``,
      ``learning_rate``, ``seed``, ``diverged_at_epoch``, ``final_cost`` and ``accuracy`` (both
      None for a diverged run). Its statistics per run: ``method``, ``seeds``, ``diverged``,
      ``accuracy`` and ``final_cost`` (``stats.summary``: ``n``, ``mean``, ``std``, ``ci95``) and
      ``course`` (``accuracy``, ``final_cost``, ``accuracy_percentile``,
      ``final_cost_percentile``).

    Raises:
      InvalidValue: no seed, a repeated or invalid seed, more seeds than :data:`MEMORY_BUDGET`
        holds (:func:`seeds_that_fit`), or runs that differ in epochs or batch size.
      runtime.Stopped: a signal stopped the runs.
      train.DivergenceError: a run diverged in the course's randomness.
    """
    methods, configs = (list(column) for column in zip(*runs, strict=True))
    if epochs is not None:
        configs = [config._replace(epochs=epochs) for config in configs]
    for config in configs:
        config.check()
    if len({(c.epochs, c.mini_batch_size) for c in configs}) > 1:
        raise InvalidValue("runs", "must share epochs and mini_batch_size to train together")
    epochs, batch = configs[0].epochs, configs[0].mini_batch_size
    seeds = _seed_list(seeds, most=seeds_that_fit(len(configs), epochs))

    m = data.load_moons()[0].shape[1]
    optimizers_ = [config.make_optimizer(m, shared_structure=True) for config in configs]
    groups = _structures(optimizers_)
    course_rows, course_fits = compare(
        list(zip(methods, [c._replace(seed=None) for c in configs], strict=True)),
        on_epochs=on_epochs,
    )
    tables = _run_sweeps(
        [(lambda run: optimizers_[run], {"run": group}) for group in groups], seeds,
        epochs=epochs, mini_batch_size=batch, keep_costs=True, on_epochs=on_epochs,
    )  # fmt: skip
    costs = np.empty((len(configs), len(seeds), epochs), tables[0].costs.dtype)
    for group, table in zip(groups, tables, strict=True):  # a table's runs: configs, seeds fastest
        costs[group] = table.costs.reshape(len(group), len(seeds), epochs)
    swept_rows = sorted((row for table in tables for row in table.rows()), key=lambda row: row["run"])
    rows = [  # runs in order, each one's seeds in order (the sort is stable)
        {
            "method": methods[row["run"]], "optimizer": configs[row["run"]].optimizer,
            "decay": configs[row["run"]].decay, "learning_rate": configs[row["run"]].learning_rate,
            "seed": row["seed"], "diverged_at_epoch": row["diverged_at_epoch"],
            "final_cost": row["final_cost"], "accuracy": row["accuracy"],
        }  # fmt: skip
        for row in swept_rows
    ]
    comparison = SeedsComparison(
        methods, configs, seeds, rows, costs, [], np.zeros(0), course_rows,
        [fit.costs for fit in course_fits],
    )  # fmt: skip
    accuracy, final_cost = comparison.accuracy, comparison.final_cost
    statistics = [
        {
            "method": methods[i],
            "seeds": len(seeds),
            "diverged": float(np.mean(np.isnan(accuracy[i]))),
            "accuracy": stats.summary(accuracy[i]),
            "final_cost": stats.summary(final_cost[i]),
            "course": {
                "accuracy": course["accuracy"],
                "final_cost": course["final_cost"],
                "accuracy_percentile": stats.percentile_of(course["accuracy"], accuracy[i]),
                "final_cost_percentile": stats.percentile_of(course["final_cost"], final_cost[i]),
            },
        }
        for i, course in enumerate(course_rows)
    ]
    return comparison._replace(statistics=statistics, beats=stats.beats(accuracy))


def seeds_table(comparison: SeedsComparison) -> str:
    """Per run: accuracy and final cost over the seeds (mean ± std, 95% t interval), the share
    that diverged, and the course's run with its percentile; Markdown, readable as text."""

    def interval(summary: dict, digits: int) -> str:
        if summary["ci95"] is None:
            return "-"
        low, high = summary["ci95"]
        return f"{low:.{digits}f} to {high:.{digits}f}"

    def spread(summary: dict, digits: int) -> str:
        if summary["mean"] is None:
            return "-"
        std = "" if summary["std"] is None else f" ± {summary['std']:.{digits}f}"
        return f"{summary['mean']:.{digits}f}{std}"

    lines = [
        f"| method | accuracy, mean ± std over {len(comparison.seeds)} seeds | 95% interval (t) "
        "| final cost, mean ± std | 95% interval (t) | diverged | course: accuracy (percentile) "
        "| course: final cost (percentile) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in comparison.statistics:
        course = s["course"]

        def at(value, percentile, digits):
            shown = "-" if percentile is None else f"{percentile:.0f}"
            return f"{value:.{digits}f} ({shown})"

        lines.append(
            f"| {s['method']} | {spread(s['accuracy'], 3)} | {interval(s['accuracy'], 3)} "
            f"| {spread(s['final_cost'], 4)} | {interval(s['final_cost'], 4)} "
            f"| {s['diverged']:.0%} | {at(course['accuracy'], course['accuracy_percentile'], 3)} "
            f"| {at(course['final_cost'], course['final_cost_percentile'], 4)} |"
        )
    return "\n".join(lines)


def beats_table(comparison: SeedsComparison) -> str:
    """The paired comparison as a Markdown table: the share of seeds on which the row's run
    beats the column's (a higher accuracy; the rest of the seeds are ties or the column's)."""
    n = len(comparison.methods)
    lines = [
        "| row more accurate than column, same seed | "
        + " | ".join(f"({j + 1})" for j in range(n)) + " |",
        "|---|" + "---:|" * n,
    ]
    for i, method in enumerate(comparison.methods):
        cells = ("" if i == j else f"{comparison.beats[i, j]:.0%}" for j in range(n))
        lines.append(f"| ({i + 1}) {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seeds_report(comparison: SeedsComparison) -> str:
    """What ``jaxopt-lab compare --seeds N`` prints: :func:`seeds_table`, :func:`beats_table`."""
    runs, seeds = len(comparison.methods), len(comparison.seeds)
    return (
        f"{seeds_table(comparison)}\n\n{beats_table(comparison)}\n\n{runs * seeds} runs "
        f"({runs} x {seeds} seeds) and the course's own {runs}"
    )


class LearningRateSearch(NamedTuple):
    """What :func:`lr_find` gives back."""

    rows: list[dict]  # every (optimizer, learning rate, seed): lr_curve's rows
    curves: dict[str, dict]  # optimizer -> stats.lr_curves's summary
    epochs: int


def lr_curve(
    names: Sequence[str],
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    *,
    epochs: int,
    mini_batch_size: int = 64,
    on_epochs: Callable[[int], None] | None = None,
) -> list[dict]:
    """Every optimizer x learning rate x seed, one :func:`jaxopt_lab.sweep.sweep` per program
    structure (GD and momentum share one: GD is momentum with ``beta = 0``, see
    :meth:`RunConfig.make_optimizer`).

    Each row is the row ``jaxopt-lab sweep`` (:func:`sweep_runs`) gives that optimizer at that
    learning rate and seed, to float tolerance: a diverged run is a row whose
    ``diverged_at_epoch`` is set and whose ``final_cost`` and ``accuracy`` are None.

    Args:
      names: optimizers, names in ``optimizers.OPTIMIZERS`` (duplicates ignored).
      learning_rates: the rates to try (duplicates ignored).
      seeds: distinct JAX seeds.
      epochs, mini_batch_size: of every run; the other settings are :class:`RunConfig`'s defaults.
      on_epochs: called with the run-epochs done since its last call.

    Returns:
      Rows ``{"optimizer", "learning_rate", "seed", "diverged_at_epoch", "final_cost",
      "accuracy"}``, optimizers in the order given, then learning rates, seeds fastest.

    Raises:
      InvalidValue: an unknown optimizer, an invalid rate or seed, or more runs than
        :data:`MEMORY_BUDGET` holds.
      runtime.Stopped: a signal stopped the runs.
    """
    names = list(dict.fromkeys(names))
    rates = [float(rate) for rate in dict.fromkeys(learning_rates)]
    if not names or not rates:
        raise InvalidValue("optimizer" if not names else "learning_rate",
                           "needs at least one value")  # fmt: skip
    base = RunConfig(epochs=epochs, mini_batch_size=mini_batch_size)
    for name in names:
        base._replace(optimizer=name).check()
    for rate in rates:
        check("learning_rate", rate, name="learning_rates")
    bytes_per_seed = len(names) * len(rates) * (ROW_BYTES + 4 * min(epochs, 1000))
    seeds = _seed_list(seeds, most=MEMORY_BUDGET // bytes_per_seed)  # a chunk's costs per run
    m = data.load_moons()[0].shape[1]
    groups = _structures([base._replace(optimizer=n).make_optimizer(m, shared_structure=True)
                          for n in names])  # fmt: skip
    tables = _run_sweeps(
        [(sweep_factory(base, m), {"optimizer": [names[i] for i in group], "learning_rate": rates})
         for group in groups],
        seeds, epochs=epochs, mini_batch_size=mini_batch_size, on_epochs=on_epochs,
    )  # fmt: skip
    rows = [
        {key: row[key] for key in ("optimizer", "learning_rate", "seed", "diverged_at_epoch",
                                   "final_cost", "accuracy")}  # fmt: skip
        for table in tables
        for row in table.rows()
    ]
    order = {name: i for i, name in enumerate(names)}
    return sorted(rows, key=lambda row: order[row["optimizer"]])  # stable: rates, then seeds


def learning_rates(lr_from: float, lr_to: float, points: int) -> list[float]:
    """``points`` learning rates from ``lr_from`` to ``lr_to``, evenly spaced on a log scale."""
    check("lr_from", lr_from)
    check("lr_to", lr_to)
    check("points", points)
    if not lr_from < lr_to:
        raise InvalidValue("lr_from", f"must be below {{lr_to}} ({lr_to!r}), got {lr_from!r}",
                           mentions=("lr_to",))  # fmt: skip
    return np.geomspace(lr_from, lr_to, points).tolist()


def lr_find(
    names: Sequence[str],
    *,
    seeds: Sequence[int],
    epochs: int,
    lr_from: float = BY_NAME["lr_from"].default,
    lr_to: float = BY_NAME["lr_to"].default,
    points: int = BY_NAME["points"].default,
    on_epochs: Callable[[int], None] | None = None,
) -> LearningRateSearch:
    """Each optimizer's final cost and accuracy against the learning rate, over seeds.

    Trains :func:`learning_rates` ``(lr_from, lr_to, points)`` for every optimizer and seed
    (:func:`lr_curve`), then summarises each optimizer (:func:`jaxopt_lab.stats.lr_curves`): per
    rate the median and 10-90% band over the seeds and the seeds that diverged, the best rate,
    and the widest range of rates around it within one accuracy point of the best.

    Raises:
      InvalidValue: as :func:`lr_curve`, or ``lr_from`` not below ``lr_to``; a grid larger than
        the memory budget is refused before it is built.
    """
    check("points", points)
    if len(set(names)) * points * len(seeds) * ROW_BYTES > MEMORY_BUDGET:
        raise InvalidValue(
            "points",
            f"{points} with {{seed_count}} {len(seeds)} and {len(set(names))} optimizers makes "
            f"more runs than fit the memory budget (runs.MEMORY_BUDGET, "
            f"{MEMORY_BUDGET / 2**30:g} GiB)",
            mentions=("seed_count",),
        )
    rates = learning_rates(lr_from, lr_to, points)
    rows = lr_curve(names, rates, seeds, epochs=epochs, on_epochs=on_epochs)
    return LearningRateSearch(rows, stats.lr_curves(rows), epochs)


def course_rates() -> dict[float, str]:
    """The course's learning rates (0.0007, 0.1, 0.01), each labelled, to mark in pictures."""
    return {config.learning_rate: f"course's {config.learning_rate:g}" for _, config in COURSE_RUNS}


def lr_find_table(search: LearningRateSearch) -> str:
    """Per optimizer: the best learning rate, its median accuracy and final cost over the seeds,
    the range of rates within one accuracy point of it, and the runs that diverged."""
    lines = [
        "| optimizer | best learning rate | median accuracy | median final cost "
        f"| within {stats.WITHIN} accuracy of the best | diverged runs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, curve in search.curves.items():
        diverged = np.asarray(curve["diverged"])
        where = ""
        if diverged.any():
            rates = np.asarray(curve["learning_rate"])[diverged > 0]
            where = f" (at {len(rates)} rates, from {rates.min():.3g})"
        runs = len(curve["learning_rate"]) * curve["seeds"]
        best, within = curve["best"], curve["within"]
        if best is None:
            found = "none: every rate had a diverged seed | - | - | -"
        else:
            found = (
                f"{best['learning_rate']:.3g} | {best['accuracy']:.3f} | {best['final_cost']:.4f} "
                f"| {within['low']:.3g} to {within['high']:.3g} (x{within['factor']:.3g})"
            )
        lines.append(f"| {name} | {found} | {diverged.sum()} of {runs}{where} |")
    return "\n".join(lines)


def lr_find_report(search: LearningRateSearch) -> str:
    """What ``jaxopt-lab lr-find`` prints: :func:`lr_find_table` and the number of runs."""
    return f"{lr_find_table(search)}\n{len(search.rows)} runs x {search.epochs} epochs"


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
