"""What one seed cannot tell: the course's runs trained for many seeds (one engine call), the
statistics over the seeds, the paired comparison, and their tables."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from jaxopt_lab import data, engine, evidence, stats, targets
from jaxopt_lab.config import COURSE_RUNS, LAYERS_DIMS, RunConfig
from jaxopt_lab.experiments.compare import compare, structures
from jaxopt_lab.settings import BY_NAME, InvalidValue
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
    pairs: list[dict]  # evidence.pairwise of the accuracy, "first"/"second" the runs' labels
    course: list[dict]  # :func:`compare`'s rows: the same runs in the course's randomness
    course_costs: list[np.ndarray]  # the course runs' cost per epoch
    targets: Sequence[dict] = ()  # time to target, per target (cost, accuracy): targets.summary

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
    target_cost: float | None = BY_NAME["target_cost"].default,
    target_accuracy: float | None = BY_NAME["target_accuracy"].default,
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
    mean, standard deviation and 95% t interval of the accuracy and of the final cost, their
    median and interquartile mean, percentile bootstrap intervals of mean, median and IQM
    (:mod:`jaxopt_lab.evidence`), the share of seeds that diverged, and the percentile of the
    course's run in each distribution. Between runs, ``beats[i, j]`` is the share of seeds on
    which run ``i`` reaches a higher accuracy than run ``j`` (:func:`jaxopt_lab.stats.beats`):
    the same seed means the same initial parameters and shuffles, so it is a paired comparison;
    ``pairs`` holds, for every two runs, the wins, ties and losses, the sign test, the
    probability of improvement and the mean difference with their bootstrap intervals
    (:func:`jaxopt_lab.evidence.pairwise`).

    Args:
      seeds: distinct JAX seeds, e.g. ``range(100)``.
      runs: ``(label, RunConfig)`` pairs sharing ``epochs`` and ``mini_batch_size``.
      epochs: train every run this many epochs instead of its own.
      on_progress: called after every chunk with ``(done, total)``: run-epochs, the course's
        runs and the seeds' together, rising to the total once.
      on_epochs: the older callback, given the run-epochs done since its last call.
      target_cost, target_accuracy: time to target (:mod:`jaxopt_lab.targets`; None: no such
        target). An accuracy target makes the engine measure the accuracy after every epoch.

    Returns:
      A :class:`SeedsComparison`. Its rows: ``method``, ``optimizer``, ``decay``,
      ``learning_rate``, ``seed``, ``diverged_at_epoch``, ``final_cost`` and ``accuracy`` (both
      None for a diverged run). Its statistics per run: ``method``, ``seeds``, ``diverged``,
      ``accuracy`` and ``final_cost`` (``stats.summary``: ``n``, ``mean``, ``std``, ``ci95``;
      ``evidence.locations``: ``median``, ``iqm``, ``bootstrap``) and
      ``course`` (``accuracy``, ``final_cost``, ``accuracy_percentile``,
      ``final_cost_percentile``). Per target, its :func:`targets.summary` in ``targets`` and
      ``epochs_to_cost_target`` or ``epochs_to_accuracy_target`` in the rows (None: never).

    Raises:
      InvalidValue: no seed, a repeated or invalid seed, a bad target, more seeds than the memory
        rule
        holds (:func:`seeds_that_fit`), or runs that differ in epochs or batch size.
      runtime.Stopped: a signal stopped the runs.
      train.DivergenceError: a run diverged in the course's randomness.
    """
    methods, configs = _labelled_runs(runs, epochs)
    epochs = configs[0].epochs
    seeds = engine.check_seeds(seeds, most=seeds_that_fit(len(configs), epochs), distinct=True)
    targets.check_targets(target_cost, target_accuracy)
    m = data.load_moons()[0].shape[1]
    optimizers_ = [config.make_optimizer(m, shared_structure=True) for config in configs]
    course_epochs = epochs * len(configs)
    total = course_epochs * (1 + len(seeds))
    progress = on_progress or engine.from_deltas(on_epochs)
    course_rows, course_fits = compare(
        list(zip(methods, [c._replace(seed=None) for c in configs], strict=True)),
        on_progress=engine.shifted(progress, 0, total),
    )
    rows, costs, reached = _seed_runs(methods, configs, optimizers_, seeds, target_accuracy,
                                      engine.shifted(progress, course_epochs, total))  # fmt: skip
    rows, found = _time_to_target(methods, rows, costs, reached, target_cost, target_accuracy)
    return with_statistics(SeedsComparison(
        methods, configs, seeds.tolist(), rows, costs, statistics=[], beats=np.zeros(0), pairs=[],
        course=course_rows, course_costs=[fit.costs for fit in course_fits], targets=found,
    ))  # fmt: skip


def with_statistics(comparison: SeedsComparison) -> SeedsComparison:
    """The comparison with its ``statistics``, ``beats`` and ``pairs`` computed from its rows and
    its course rows (what :func:`compare_seeds` does last; any rows of that shape will do)."""
    accuracy, final_cost = comparison.accuracy, comparison.final_cost
    statistics = _statistics(comparison.methods, len(comparison.seeds), comparison.course,
                             accuracy, final_cost)  # fmt: skip
    pairs = [
        {**pair, "first": comparison.methods[pair["first"]],
         "second": comparison.methods[pair["second"]]}
        for pair in evidence.pairwise(accuracy)
    ]  # fmt: skip
    return comparison._replace(statistics=statistics, beats=stats.beats(accuracy), pairs=pairs)


# What each metric can be: a printed t interval stops there (the bootstrap's never leave the values)
RANGES = {"accuracy": (0.0, 1.0), "final_cost": (0.0, math.inf)}
METRICS = (("accuracy", "accuracy", 3), ("final_cost", "final cost", 4))  # field, label, digits


def seeds_table(comparison: SeedsComparison) -> str:
    """Per run, one table for the accuracy and one for the final cost over the seeds: mean ±
    std, the 95% t interval and the percentile bootstrap interval of the mean, the median and
    the IQM with their bootstrap intervals, the share that diverged, and the course's run with
    its percentile; then how the intervals are made and, for a run with fewer than
    :data:`evidence.MIN_VALUES` finished seeds, that its intervals are not informative (not
    shown) and its values. Markdown, readable as text.

    A t interval that reaches past what the metric can be (:data:`RANGES`) is printed cut there
    and marked; the JSON keeps it whole.
    """
    tables = "\n\n".join(_metric_table(comparison, *metric) for metric in METRICS)
    return "\n\n".join([tables, _interval_note(), *_few_values_note(comparison)])


def _metric_table(comparison: SeedsComparison, field: str, label: str, digits: int) -> str:
    low, high = RANGES[field]
    cut = False

    def number(value: float) -> str:
        return f"{value:.{digits}f}"

    def span(interval) -> str:
        return "-" if interval is None else f"{number(interval[0])} to {number(interval[1])}"

    lines = [
        f"| method | {label}, mean ± std over {len(comparison.seeds)} seeds | 95% interval of "
        f"the mean (t) | 95% interval of the mean (bootstrap) | median (95% bootstrap) | IQM (95% "
        f"bootstrap) | diverged | course: {label} (percentile) |",
        "|---|" + "---:|" * 7,
    ]
    for s in comparison.statistics:
        summary, course = s[field], s["course"]
        shown = summary["n"] >= evidence.MIN_VALUES  # fewer values: the intervals say nothing
        boot = summary["bootstrap"] if shown else dict.fromkeys(summary["bootstrap"])
        t = summary["ci95"] if shown else None
        t_cell = span(t)
        if t is not None and (t[0] < low or t[1] > high):
            t_cell, cut = f"{span([max(t[0], low), min(t[1], high)])} (cut)", True
        located = {  # the value, and its interval where there is one
            name: "-" if summary[name] is None else number(summary[name])
            + ("" if boot[name] is None else f" ({span(boot[name])})")
            for name in ("median", "iqm")
        }
        percentile = course[f"{field}_percentile"]
        lines.append(
            f"| {s['method']} | {_spread(summary, digits)} | {t_cell} | {span(boot['mean'])} "
            f"| {located['median']} | {located['iqm']} | {s['diverged']:.0%} "
            f"| {number(course[field])} ({'-' if percentile is None else f'{percentile:.0f}'}) |"
        )
    if cut:
        can_be = "0 to 1" if high == 1 else "at least 0"
        lines.append(f"\n(cut): the t interval reaches past what the {label} can be ({can_be}); "
                     "printed cut there.")  # fmt: skip
    return "\n".join(lines)


def _spread(summary: dict, digits: int) -> str:
    if summary["mean"] is None:
        return "-"
    std = "" if summary["std"] is None else f" ± {summary['std']:.{digits}f}"
    return f"{summary['mean']:.{digits}f}{std}"


def _interval_note() -> str:
    return (
        "Over the seeds that finished. t: Student's t interval of the mean. Bootstrap: "
        f"{evidence.method()}; the IQM is the mean of the middle half of the values (a quarter "
        "cut at each end)."
    )


def _few_values_note(comparison: SeedsComparison) -> list[str]:
    """For the runs with too few finished seeds for an interval: that, and their values."""
    few = [i for i, s in enumerate(comparison.statistics)
           if s["accuracy"]["n"] < evidence.MIN_VALUES]  # fmt: skip
    if not few:
        return []
    accuracy, final_cost = comparison.accuracy, comparison.final_cost

    def value(a: float, c: float) -> str:
        return "diverged" if np.isnan(a) else f"{a:.3f} / {c:.4f}"

    return [
        f"Fewer than {evidence.MIN_VALUES} finished seeds: intervals over so few values are not "
        "informative and are not shown (-). The values, seed by seed (accuracy / final cost):\n"
        + "\n".join(
            f"- {comparison.methods[i]}: "
            + ", ".join(value(a, c) for a, c in zip(accuracy[i], final_cost[i], strict=True))
            for i in few
        )
    ]


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


def pairs_table(comparison: SeedsComparison) -> str:
    """Every two runs' accuracy on the same seeds, as a Markdown table with a note: wins, ties
    and losses of the first run, the sign test, rliable's probability of improvement (ties as
    half) and the mean difference, with percentile bootstrap intervals from
    :data:`evidence.MIN_VALUES` seeds on (:func:`jaxopt_lab.evidence.paired`)."""
    lines = [
        "| first vs second, accuracy on the same seeds | wins / ties / losses | sign test p | "
        "P(first better), ties as half (95% bootstrap) | mean difference (95% paired bootstrap) |",
        "|---|---:|---:|---:|---:|",
    ]

    def shown(value: float, interval, values: int, form: str) -> str:
        if interval is None or values < evidence.MIN_VALUES:
            return format(value, form)
        return f"{value:{form}} ({interval[0]:{form}} to {interval[1]:{form}})"

    for p in comparison.pairs:
        better = shown(p["probability_of_improvement"], p["probability_interval"], p["seeds"],
                       ".3f")  # fmt: skip
        difference = "-" if p["mean_difference"] is None else shown(
            p["mean_difference"], p["difference_interval"], p["both_finished"], "+.3f")
        lines.append(
            f"| {p['first']} vs {p['second']} | {p['wins']} / {p['ties']} / {p['losses']} "
            f"| {p['sign_test_p']:.3g} | {better} | {difference} |"
        )
    return "\n".join(lines) + (
        "\n\nSeed by seed the first run wins (a higher accuracy), ties or loses; a diverged run "
        "loses to a finished one. Sign test: exact, two-sided, wins against losses, ties left out. "
        "P(first better): rliable's probability of improvement, every seed of the first run "
        "against every seed of the second, ties counted as half; its bootstrap resamples seeds "
        "with both runs' results together. Mean difference: first minus second, over the seeds on "
        f"which both finished. Intervals from {evidence.MIN_VALUES} seeds on: {evidence.method()}."
    )


def seeds_report(comparison: SeedsComparison) -> str:
    """What ``jaxopt-lab compare --seeds N`` prints: :func:`seeds_table`, :func:`beats_table`,
    :func:`pairs_table` and the time to target (:func:`targets.targets_table`)."""
    runs, seeds = len(comparison.methods), len(comparison.seeds)
    timed = targets.targets_table(comparison.targets, seeds)
    return (
        f"{seeds_table(comparison)}\n\n{beats_table(comparison)}\n\n{pairs_table(comparison)}"
        + (f"\n\n{timed}" if timed else "")
        + f"\n\n{runs * seeds} runs ({runs} x {seeds} seeds) and the course's own {runs}"
    )




def _statistics(methods, n_seeds, course_rows, accuracy, final_cost) -> list[dict]:
    """Per run: the distributions over the seeds and where the course's run falls in them."""
    located = {"accuracy": evidence.locations_of(accuracy),
               "final_cost": evidence.locations_of(final_cost)}  # fmt: skip
    return [
        {
            "method": methods[i],
            "seeds": n_seeds,
            "diverged": float(np.mean(np.isnan(accuracy[i]))),
            "accuracy": {**stats.summary(accuracy[i]), **located["accuracy"][i]},
            "final_cost": {**stats.summary(final_cost[i]), **located["final_cost"][i]},
            "course": {
                "accuracy": course["accuracy"],
                "final_cost": course["final_cost"],
                "accuracy_percentile": stats.percentile_of(course["accuracy"], accuracy[i]),
                "final_cost_percentile": stats.percentile_of(course["final_cost"], final_cost[i]),
            },
        }
        for i, course in enumerate(course_rows)
    ]


def _time_to_target(methods, rows, costs, reached, target_cost, target_accuracy):
    """The rows with every run's epochs to each target, and each target's summary."""
    diverged = np.array([-1 if row["diverged_at_epoch"] is None else row["diverged_at_epoch"]
                         for row in rows]).reshape(costs.shape[:2])  # fmt: skip
    found = targets.time_to_targets(costs, diverged, target_cost=target_cost,
                                    target_accuracy=target_accuracy, accuracy_epoch=reached)
    fields = targets.row_fields(found, len(rows))
    timed = [{**row, **extra} for row, extra in zip(rows, fields, strict=True)]
    return timed, [targets.summary(methods, t) for t in found]


def _seed_runs(methods, configs, optimizers_, seeds, target_accuracy, on_progress):
    """Every run for every seed, one engine job per program structure: the rows (runs in order,
    seeds fastest), every epoch's cost, shape (runs, seeds, epochs), and with ``target_accuracy``
    every run's first epoch at it, shape (runs, seeds) (else None)."""
    X, Y = data.load_moons()
    epochs, n_seeds = configs[0].epochs, len(seeds)
    table = engine.train_grid(
        X, Y, LAYERS_DIMS,
        [(lambda run: optimizers_[run], {"run": group}) for group in structures(optimizers_)],
        seeds=seeds, num_epochs=epochs, mini_batch_size=configs[0].mini_batch_size,
        keep_costs=True, on_progress=on_progress, as_rows=True, target_accuracy=target_accuracy,
    )  # fmt: skip
    order = table.column("run")[::n_seeds]
    costs = np.empty((len(configs), n_seeds, epochs), table.costs.dtype)
    costs[order] = table.costs.reshape(-1, n_seeds, epochs)
    reached = None
    if table.target_epoch is not None:
        reached = np.empty((len(configs), n_seeds), np.int64)
        reached[order] = table.target_epoch.reshape(-1, n_seeds)
    swept = sorted(dataclasses.replace(table, costs=None).rows(), key=lambda row: row["run"])
    rows = [  # runs in order, each one's seeds in order (the sort is stable)
        {
            "method": methods[row["run"]], "optimizer": configs[row["run"]].optimizer,
            "decay": configs[row["run"]].decay, "learning_rate": configs[row["run"]].learning_rate,
            "seed": row["seed"], **{name: row[name] for name in RunTable.outcomes()},
        }  # fmt: skip
        for row in swept
    ]
    return rows, costs, reached
