"""The course's runs compared: several :func:`train.fit` runs sharing compiled programs, in the
engine's threads, progress and stops, and the comparison's rows and table."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import optax

from jaxopt_lab import data, engine, train
from jaxopt_lab.config import COURSE_RUNS, LAYERS_DIMS, PRINT_EVERY, RunConfig, accuracy_of


def structures(optimizers_: Sequence[optax.GradientTransformation]) -> list[list[int]]:
    """The indices of ``optimizers_`` grouped by program structure, in order of first use."""
    groups: dict[Any, list[int]] = {}
    for i, optimizer in enumerate(optimizers_):
        groups.setdefault(train.split_optimizer(optimizer)[1], []).append(i)
    return list(groups.values())


def fit_runs(
    configs: Sequence[RunConfig],
    X,
    Y,
    *,
    on_progress: engine.ProgressCallback | None = None,
    on_epochs: Callable[[int], None] | None = None,
) -> list[tuple[train.FitResult, float]]:
    """Fit several runs, sharing compiled programs, two groups at a time.

    Every run gets the ``shared_structure`` form of its optimizer, so runs that differ only in
    numbers compile once: the lesson's seven runs compile two programs, not six. The runs of each
    program go one after another in their own thread (:func:`engine.in_threads`). Each result's
    seconds are its own run's (see ``train.FitResult``). A signal stops every run at its next
    chunk boundary (:class:`runtime.Stopped`).

    Args:
      configs: the runs.
      X, Y: training data.
      on_progress: called after every chunk with ``(done, total)`` run-epochs.
      on_epochs: the older callback, given the epochs done since its last call.

    Returns:
      ``(result, seconds)`` per config, in order; seconds is the run's wall time, compile included.
    """
    optimizers_ = [config.make_optimizer(X.shape[1], shared_structure=True) for config in configs]
    fitted: list = [None] * len(configs)
    total = sum(config.epochs for config in configs)
    with engine.tracking(total, on_progress or engine.from_deltas(on_epochs)) as progress:

        def fit_group(indices: list[int]) -> None:
            for i in indices:
                done = 0

                def report(state: train.TrainState) -> None:
                    nonlocal done
                    epochs, done = state.epoch - done, state.epoch
                    progress.add(epochs)

                config, start = configs[i], time.perf_counter()
                result = train.fit(
                    X, Y, LAYERS_DIMS, optimizers_[i], num_epochs=config.epochs,
                    mini_batch_size=config.mini_batch_size, seed=config.seed, on_chunk=report,
                )  # fmt: skip
                fitted[i] = (result, time.perf_counter() - start)

        engine.in_threads(fit_group, structures(optimizers_), progress.stops)
    return fitted


def compare(
    runs: Sequence[tuple[str, RunConfig]] = COURSE_RUNS,
    X=None,
    Y=None,
    *,
    on_progress: engine.ProgressCallback | None = None,
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
    fitted = fit_runs(configs, X, Y, on_progress=on_progress, on_epochs=on_epochs)
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
