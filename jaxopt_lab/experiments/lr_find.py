"""Each optimizer against the learning rate: every optimizer x rate x seed in one engine call,
the curves over the seeds (:func:`stats.lr_curves`), and their table."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from jaxopt_lab import data, engine, stats
from jaxopt_lab.config import COURSE_RUNS, LAYERS_DIMS, RunConfig
from jaxopt_lab.experiments import range_test as range_tests
from jaxopt_lab.experiments.compare import structures
from jaxopt_lab.experiments.sweeps import sweep_factory
from jaxopt_lab.settings import BY_NAME, InvalidValue, check
from jaxopt_lab.table import RunTable


class LearningRateSearch(NamedTuple):
    """What :func:`lr_find` gives back."""

    rows: list[dict]  # every (optimizer, learning rate, seed): lr_curve's rows
    curves: dict[str, dict]  # optimizer -> stats.lr_curves's summary
    epochs: int
    range_test: range_tests.RangeTest | None = None  # with range_steps: the same seeds' range test
    truth: dict | None = None  # with range_steps: range_test.against_truth
    curve_seconds: float | None = None  # the full runs' own wall time


def lr_curve(
    names: Sequence[str],
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    *,
    epochs: int,
    mini_batch_size: int = 64,
    on_progress: engine.ProgressCallback | None = None,
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
      on_progress: called after every chunk with ``(done, total)`` run-epochs.
      on_epochs: the older callback, given the run-epochs done since its last call.

    Returns:
      Rows ``{"optimizer", "learning_rate", "seed", "diverged_at_epoch", "final_cost",
      "accuracy"}``, optimizers in the order given, then learning rates, seeds fastest.

    Raises:
      InvalidValue: an unknown optimizer, an invalid rate or seed, or more runs than the memory
        rule holds (:func:`engine.runs_that_fit`).
      runtime.Stopped: a signal stopped the runs.
    """
    names = optimizer_names(names)
    rates = [float(rate) for rate in dict.fromkeys(learning_rates)]
    if not names or not rates:
        raise InvalidValue("optimizer" if not names else "learning_rate",
                           "needs at least one value")  # fmt: skip
    base = RunConfig(epochs=epochs, mini_batch_size=mini_batch_size)
    for name in names:
        base._replace(optimizer=name).check()
    for rate in rates:
        check("learning_rate", rate, name="learning_rates")
    most = _runs_that_fit(epochs) // (len(names) * len(rates))
    seeds = engine.check_seeds(seeds, most=most, distinct=True)
    X, Y = data.load_moons()
    groups = structures([base._replace(optimizer=n).make_optimizer(X.shape[1], shared_structure=True)
                         for n in names])  # fmt: skip
    table = engine.train_grid(
        X, Y, LAYERS_DIMS,
        [(sweep_factory(base, X.shape[1]), {"optimizer": [names[i] for i in group],
                                             "learning_rate": rates}) for group in groups],
        seeds=seeds, num_epochs=epochs, mini_batch_size=mini_batch_size, as_rows=True,
        on_progress=on_progress or engine.from_deltas(on_epochs),
    )  # fmt: skip
    fields = ("optimizer", "learning_rate", "seed", *RunTable.outcomes())
    rows = [{key: row[key] for key in fields} for row in table.rows()]
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


def optimizer_names(names) -> list[str]:
    """``names`` as a list without repeats: a list of optimizer names (a lone string is refused,
    not read letter by letter)."""
    if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, np.ndarray)):
        raise InvalidValue(
            "optimizer", f"must be a list of optimizer names such as ['gd', 'adam'], got {names!r}"
        )
    return list(dict.fromkeys(names))


def lr_find(
    names: Sequence[str],
    *,
    seeds: Sequence[int],
    epochs: int,
    lr_from: float = BY_NAME["lr_from"].default,
    lr_to: float = BY_NAME["lr_to"].default,
    points: int = BY_NAME["points"].default,
    on_progress: engine.ProgressCallback | None = None,
    on_epochs: Callable[[int], None] | None = None,
    range_steps: int | None = None,
) -> LearningRateSearch:
    """Each optimizer's final cost and accuracy against the learning rate, over seeds.

    Trains :func:`learning_rates` ``(lr_from, lr_to, points)`` for every optimizer and seed
    (:func:`lr_curve`), then summarises each optimizer (:func:`jaxopt_lab.stats.lr_curves`): per
    rate the median and 10-90% band over the seeds and the seeds that diverged, the best rate,
    and the widest range of rates around it within one accuracy point of the best.

    With ``range_steps``, first fastai's range test of ``range_steps`` steps from ``lr_from`` to
    ``lr_to`` for the same optimizers and seeds (:func:`range_test.range_test`), then its rules'
    suggestions read on the curve (:func:`range_test.against_truth`); each part's seconds are
    its own.

    Raises:
      InvalidValue: as :func:`lr_curve`, or ``lr_from`` not below ``lr_to``, or a bad
        ``range_steps``; a grid larger than the memory budget is refused before it is built.
    """
    check("points", points)
    names, seeds = optimizer_names(names), engine.check_seeds(seeds)  # before counting them
    if len(set(names)) * points * len(seeds) > _runs_that_fit(epochs):
        raise InvalidValue(
            "points",
            f"{points} with {{seed_count}} {len(seeds)} and {len(set(names))} optimizers makes "
            f"more runs than fit the memory budget (at most {_runs_that_fit(epochs):,} runs)",
            mentions=("seed_count",),
        )
    rates = learning_rates(lr_from, lr_to, points)
    test = None
    if range_steps is not None:  # first: it pays for starting JAX's programs, not the curve
        test = range_tests.range_test(names, seeds=seeds, steps=range_steps, lr_start=lr_from,
                                      lr_end=lr_to)  # fmt: skip
    start = time.perf_counter()
    rows = lr_curve(names, rates, seeds, epochs=epochs, on_progress=on_progress,
                    on_epochs=on_epochs)  # fmt: skip
    curves, seconds = stats.lr_curves(rows), time.perf_counter() - start
    truth = None if test is None else range_tests.against_truth(test, curves, rows)
    return LearningRateSearch(rows, curves, epochs, test, truth, seconds)


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
    """What ``jaxopt-lab lr-find`` prints: :func:`lr_find_table` and the number of runs; with a
    range test, its table (:func:`range_test.range_test_table`) and both parts' seconds."""
    runs = f"{len(search.rows)} runs x {search.epochs} epochs"
    test = search.range_test
    if test is None:
        return f"{lr_find_table(search)}\n{runs}"
    return (
        f"{lr_find_table(search)}\n\n{range_tests.range_test_table(test, search.truth)}\n\n"
        f"range test ({', '.join(test.names)}; {len(test.seeds)} seeds x {len(test.rates)} "
        f"steps): {test.seconds:.2f} s; the full-run curve it is read on: "
        f"{search.curve_seconds:.2f} s\n{runs}"
    )


def _runs_that_fit(epochs: int) -> int:
    """Runs of ``epochs`` epochs whose rows the memory rule holds (:func:`engine.runs_that_fit`)."""
    return engine.runs_that_fit(epochs, keep_costs=False, as_rows=True)
