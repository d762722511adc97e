"""What one seed cannot tell: the course's runs trained for many seeds (one engine call), the
statistics over the seeds, the paired comparison, and their tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from jaxopt_lab import data, engine, stats
from jaxopt_lab.config import COURSE_RUNS, LAYERS_DIMS, RunConfig
from jaxopt_lab.experiments.compare import compare, structures
from jaxopt_lab.settings import InvalidValue
from jaxopt_lab.table import RunTable


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
    """How many seeds of ``runs`` runs of ``epochs`` epochs the memory rule holds
    (:func:`engine.runs_that_fit`: per run and seed a row and its cost history)."""
    return engine.runs_that_fit(epochs, keep_costs=True, as_rows=True) // runs


def _labelled_runs(runs, epochs: int | None) -> tuple[list[str], list[RunConfig]]:
    """The labels and checked configurations of ``(label, RunConfig)`` pairs that can train
    together (one epoch count, ``epochs`` if given, and one batch size)."""
    if (
        isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence) or not runs
        or not all(isinstance(run, (tuple, list)) and len(run) == 2 and isinstance(run[1], RunConfig)
                   for run in runs)
    ):  # fmt: skip
        raise InvalidValue(
            "runs", f"must be a non-empty list of (label, RunConfig) pairs such as "
            f"runs.COURSE_RUNS, got {runs!r}"
        )
    methods, configs = (list(column) for column in zip(*runs, strict=True))
    if epochs is not None:
        configs = [config._replace(epochs=epochs) for config in configs]
    for config in configs:
        config.check()
    if len({(c.epochs, c.mini_batch_size) for c in configs}) > 1:
        raise InvalidValue("runs", "must share epochs and mini_batch_size to train together")
    return methods, configs


def compare_seeds(
    seeds: Sequence[int],
    runs: Sequence[tuple[str, RunConfig]] = COURSE_RUNS,
    *,
    epochs: int | None = None,
    on_progress: engine.ProgressCallback | None = None,
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
      on_progress: called after every chunk with ``(done, total)``: run-epochs, the course's
        runs and the seeds' together, rising to the total once.
      on_epochs: the older callback, given the run-epochs done since its last call.

    Returns:
      A :class:`SeedsComparison`. Its rows: ``method``, ``optimizer``, ``decay``,
      ``learning_rate``, ``seed``, ``diverged_at_epoch``, ``final_cost`` and ``accuracy`` (both
      None for a diverged run). Its statistics per run: ``method``, ``seeds``, ``diverged``,
      ``accuracy`` and ``final_cost`` (``stats.summary``: ``n``, ``mean``, ``std``, ``ci95``) and
      ``course`` (``accuracy``, ``final_cost``, ``accuracy_percentile``,
      ``final_cost_percentile``).

    Raises:
      InvalidValue: no seed, a repeated or invalid seed, more seeds than the memory rule
        holds (:func:`seeds_that_fit`), or runs that differ in epochs or batch size.
      runtime.Stopped: a signal stopped the runs.
      train.DivergenceError: a run diverged in the course's randomness.
    """
    methods, configs = _labelled_runs(runs, epochs)
    epochs = configs[0].epochs
    seeds = engine.check_seeds(seeds, most=seeds_that_fit(len(configs), epochs), distinct=True)
    m = data.load_moons()[0].shape[1]
    optimizers_ = [config.make_optimizer(m, shared_structure=True) for config in configs]
    course_epochs = epochs * len(configs)
    total = course_epochs * (1 + len(seeds))
    progress = on_progress or engine.from_deltas(on_epochs)
    course_rows, course_fits = compare(
        list(zip(methods, [c._replace(seed=None) for c in configs], strict=True)),
        on_progress=engine.shifted(progress, 0, total),
    )
    rows, costs = _seed_runs(methods, configs, optimizers_, seeds,
                             engine.shifted(progress, course_epochs, total))  # fmt: skip
    comparison = SeedsComparison(
        methods, configs, seeds.tolist(), rows, costs, [], np.zeros(0), course_rows,
        [fit.costs for fit in course_fits],
    )  # fmt: skip
    accuracy, final_cost = comparison.accuracy, comparison.final_cost
    statistics = _statistics(methods, len(seeds), course_rows, accuracy, final_cost)
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




def _statistics(methods, n_seeds, course_rows, accuracy, final_cost) -> list[dict]:
    """Per run: the distributions over the seeds and where the course's run falls in them."""
    return [
        {
            "method": methods[i],
            "seeds": n_seeds,
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


def _seed_runs(methods, configs, optimizers_, seeds, on_progress):
    """Every run for every seed, one engine job per program structure: the rows (runs in order,
    seeds fastest) and every epoch's cost, shape (runs, seeds, epochs)."""
    X, Y = data.load_moons()
    epochs, n_seeds = configs[0].epochs, len(seeds)
    table = engine.train_grid(
        X, Y, LAYERS_DIMS,
        [(lambda run: optimizers_[run], {"run": group}) for group in structures(optimizers_)],
        seeds=seeds, num_epochs=epochs, mini_batch_size=configs[0].mini_batch_size,
        keep_costs=True, on_progress=on_progress, as_rows=True,
    )  # fmt: skip
    costs = np.empty((len(configs), n_seeds, epochs), table.costs.dtype)
    costs[table.column("run")[::n_seeds]] = table.costs.reshape(-1, n_seeds, epochs)
    swept = sorted(dataclasses.replace(table, costs=None).rows(), key=lambda row: row["run"])
    rows = [  # runs in order, each one's seeds in order (the sort is stable)
        {
            "method": methods[row["run"]], "optimizer": configs[row["run"]].optimizer,
            "decay": configs[row["run"]].decay, "learning_rate": configs[row["run"]].learning_rate,
            "seed": row["seed"], **{name: row[name] for name in RunTable.outcomes()},
        }  # fmt: skip
        for row in swept
    ]
    return rows, costs
