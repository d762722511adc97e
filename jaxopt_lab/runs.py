"""The lesson's runs as whole things, from Python: a run's configuration (:mod:`jaxopt_lab.config`),
a resumable run (:func:`train_run`), and the experiments of many runs
(:mod:`jaxopt_lab.experiments`), their names kept here.

- :class:`RunConfig` is one run, with the fields of :data:`settings.RUN_SETTINGS`;
  :data:`COURSE_RUNS` are the course's seven.
- :func:`train_run` trains one run from start to end: the folder lock, checkpoints, resuming from
  the newest intact one, saving when a signal stops it and at the end.
- :func:`compare` (:func:`fit_runs`), :func:`compare_seeds`, :func:`lr_find` (:func:`lr_curve`)
  and :func:`sweep_runs` (:func:`sweep_table`) are the experiments over :mod:`jaxopt_lab.engine`.

Every function here stops at a chunk boundary on SIGINT, SIGTERM or SIGHUP and raises
:class:`runtime.Stopped` (a run with checkpoints saves first).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxopt_lab import checkpoints, data, runtime, train
from jaxopt_lab.config import COURSE_RUNS, LAYERS_DIMS, PRINT_EVERY, RunConfig, accuracy_of
from jaxopt_lab.experiments.compare import compare, compare_table, fit_runs
from jaxopt_lab.experiments.lr_find import (
    LearningRateSearch,
    course_rates,
    learning_rates,
    lr_curve,
    lr_find,
    lr_find_report,
    lr_find_table,
)
from jaxopt_lab.experiments.seeds import (
    SeedsComparison,
    beats_table,
    compare_seeds,
    seeds_report,
    seeds_table,
    seeds_that_fit,
)
from jaxopt_lab.experiments.sweeps import (
    best_run,
    sweep_axes,
    sweep_factory,
    sweep_grid,
    sweep_runs,
    sweep_table,
)
from jaxopt_lab.settings import InvalidValue, check

__all__ = [
    "COURSE_RUNS", "LAYERS_DIMS", "PRINT_EVERY", "LearningRateSearch", "Progress", "RunConfig",
    "SeedsComparison", "accuracy_of", "beats_table", "best_run", "compare", "compare_seeds",
    "compare_table", "course_rates", "fit_runs", "learning_rates", "lr_curve", "lr_find",
    "lr_find_report", "lr_find_table", "seeds_report", "seeds_table", "seeds_that_fit",
    "sweep_axes", "sweep_factory", "sweep_grid", "sweep_runs", "sweep_table", "train_run",
]  # fmt: skip


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
    if isinstance(directory, str) and not directory.strip():
        raise InvalidValue("checkpoint_dir", "must be a folder's path, got '' (an empty path "
                           "would write into the current folder)")  # fmt: skip
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
