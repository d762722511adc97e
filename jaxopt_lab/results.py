"""The files a run, a comparison (once or over seeds), a learning-rate search or a sweep leaves in
a folder: strict JSON, Markdown and PNG pictures, each written atomically
(:func:`runtime.atomic_write`).

matplotlib is imported only when a picture is drawn.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxopt_lab import data, evidence, runtime, stats, targets, train
from jaxopt_lab.config import COURSE_RUNS, RunConfig
from jaxopt_lab.experiments.compare import compare_table
from jaxopt_lab.experiments.lr_find import LearningRateSearch, course_rates, lr_find_report
from jaxopt_lab.experiments.range_test import range_test_summary
from jaxopt_lab.experiments.seeds import SeedsComparison, seeds_report
from jaxopt_lab.long_table import write_long_table
from jaxopt_lab.table import RunTable


def import_plots_in_background() -> None:
    """Import matplotlib (through ``plots``) on a thread while a command traces and trains: XLA
    releases the GIL while it compiles and runs, so the import's half second mostly disappears.
    The writers' own ``from jaxopt_lab import plots`` waits for it through the import lock."""
    threading.Thread(
        target=importlib.import_module, args=("jaxopt_lab.plots",), daemon=True
    ).start()


def write_run(out: Path, config: RunConfig, result: train.FitResult, accuracy: float) -> None:
    """``result.json`` (configuration, every epoch's cost, accuracy, timings, JAX and device),
    ``cost.png`` and ``decision_boundary.png``."""
    from jaxopt_lab import plots

    runtime.write_json(out / "result.json", {
        "config": config._asdict(),
        "final_cost": float(result.costs[-1]),
        "accuracy": accuracy,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        **runtime.environment(),
        "costs": [float(c) for c in result.costs],
    })  # fmt: skip
    row = {"diverged_at_epoch": None, "final_cost": float(result.costs[-1]), "accuracy": accuracy}
    write_long_table(out, [row], experiment="train", settings=config)
    X, Y = data.load_moons()
    label = f"{config.optimizer}, lr {config.learning_rate:g}, decay {config.decay}"
    plots.save_png(
        plots.plot_cost_curves({label: result.costs}, title=f"Cost per epoch ({label})"),
        out / "cost.png",
    )
    plots.save_png(
        plots.plot_decision_boundary(result.params, X, Y, title=f"{label}: accuracy {accuracy:.3f}"),
        out / "decision_boundary.png",
    )


def write_comparison(
    out: Path, rows: Sequence[dict], results: Sequence[train.FitResult], seconds: float
) -> None:
    """``compare.json`` (the rows), ``compare.md`` (the table), ``cost_curves.png`` and
    ``boundaries.png``."""
    from jaxopt_lab import plots

    runtime.write_json(out / "compare.json", list(rows))
    write_long_table(out, rows, experiment="compare", by_method=dict(COURSE_RUNS))
    env = runtime.environment()
    runtime.write_text(
        out / "compare.md",
        compare_table(rows)
        + f"\n\n{len(rows)} runs of {COURSE_RUNS[0][1].epochs} epochs in {seconds:.2f} s "
        f"(JAX {env['jax_version']}, {env['device']}, {env['float']}).\n",
    )
    costs = {row["method"]: result.costs for row, result in zip(rows, results, strict=True)}
    plots.save_png(
        plots.plot_cost_curves(costs, title="The lesson's seven runs: cost per epoch"),
        out / "cost_curves.png",
    )
    titled = {
        f"{row['method']}\naccuracy {row['accuracy']:.3f}": result.params
        for row, result in zip(rows, results, strict=True)
    }
    X, Y = data.load_moons()
    plots.save_png(plots.plot_decision_boundaries(titled, X, Y), out / "boundaries.png")


def write_seeds_comparison(out: Path, comparison: SeedsComparison, seconds: float) -> None:
    """``compare_seeds.json`` (every run x seed row, the statistics, the paired wins, the pairs'
    evidence, the cost quantiles and IQM per epoch, the time to target and the course's own runs;
    strict JSON), ``compare_seeds.md`` (the tables), ``seeds_accuracy.png``,
    ``seeds_cost_curves.png`` and, with a target, ``time_to_target.png``."""
    from jaxopt_lab import plots, target_plots

    quantiles = np.stack([stats.quantile_curves(run_costs) for run_costs in comparison.costs])
    iqm = np.stack([stats.iqm_band(run_costs) for run_costs in comparison.costs])
    runtime.write_json(out / "compare_seeds.json", {
        "seeds": comparison.seeds, "epochs": comparison.costs.shape[-1], "seconds": seconds,
        **runtime.environment(),
        "statistics_over": "the seeds that did not diverge; ci95 is the 95% t interval of the mean "
                           "(whole: the printed table cuts it to what the metric can be); iqm is "
                           "the mean of the middle half of the values (scipy.stats.trim_mean(x, "
                           "0.25)); bootstrap holds percentile intervals of the mean, median and "
                           "iqm (see bootstrap)",
        "bootstrap": {
            "method": "percentile", "confidence": stats.CONFIDENCE,
            "resamples": evidence.RESAMPLES, "seed": evidence.SEED,
            "means": evidence.method() + "; each resample draws the seeds with replacement as "
                     "scipy.stats.bootstrap does with that generator",
            "informative_from": evidence.MIN_VALUES,
        },
        "statistics": comparison.statistics,
        "beats": {
            "means": "share of seeds on which the row's run is more accurate than the column's "
                     "(a diverged run loses); equal accuracies are ties, counted for neither",
            "methods": comparison.methods, "share": stats.json_numbers(comparison.beats),
        },
        "pairs": {
            "means": "every two runs' accuracy on the same seeds: the first's wins, ties and "
                     "losses (a diverged run loses to a finished one), the exact two-sided sign "
                     "test p over wins and losses (ties left out), rliable's probability of "
                     "improvement of the first over the second (every seed against every seed, "
                     "ties as half) with its paired percentile bootstrap interval, and the mean "
                     "difference first minus second over the seeds on which both finished with "
                     "its paired percentile bootstrap interval",
            "pairs": comparison.pairs,
        },
        "cost_quantiles": [
            {"method": method, **dict(zip(("p10", "p50", "p90"), stats.json_numbers(q), strict=True))}
            for method, q in zip(comparison.methods, quantiles, strict=True)
        ],
        "cost_iqm": [
            {"method": method, **dict(zip(("p25", "iqm", "p75"), stats.json_numbers(band),
                                          strict=True))}
            for method, band in zip(comparison.methods, iqm, strict=True)
        ],
        "time_to_target": {"means": targets.MEANS, "targets": list(comparison.targets)},
        "course": comparison.course,
        "rows": comparison.rows,
    })  # fmt: skip
    runtime.write_text(out / "compare_seeds.md", f"{seeds_report(comparison)} in {seconds:.2f} s\n")
    labelled = dict(zip(comparison.methods, comparison.configs, strict=True))
    write_long_table(out, comparison.rows, experiment="compare_seeds", by_method=labelled)
    plots.save_png(
        plots.plot_seed_distributions(comparison.methods, comparison.accuracy,
                                      comparison.final_cost, comparison.course),
        out / "seeds_accuracy.png",
    )  # fmt: skip
    plots.save_png(
        plots.plot_cost_bands(comparison.methods, quantiles, comparison.course_costs, iqm=iqm),
        out / "seeds_cost_curves.png",
    )
    if comparison.targets:
        figure = target_plots.plot_time_to_target(comparison.targets, seeds=len(comparison.seeds))
        plots.save_png(figure, out / "time_to_target.png")


def write_lr_find(out: Path, search: LearningRateSearch, seconds: float) -> None:
    """``lr_find.json`` (each optimizer's curve, best rate and range, and every row; strict JSON),
    ``lr_find.md`` (the table) and ``lr_find.png``; with a range test, its summary in the JSON
    (``range_test``: :func:`range_test.range_test_summary`) and ``range_test.png``."""
    from jaxopt_lab import plots

    tested = {}
    if search.range_test is not None:
        tested = {"curve_seconds": search.curve_seconds,
                  "range_test": range_test_summary(search.range_test, search.truth)}  # fmt: skip
    runtime.write_json(out / "lr_find.json", {
        "epochs": search.epochs, "seconds": seconds, **runtime.environment(),
        "within": stats.WITHIN, "curves": search.curves, "rows": search.rows, **tested,
    })  # fmt: skip
    runtime.write_text(out / "lr_find.md", f"{lr_find_report(search)} in {seconds:.2f} s\n")
    base = RunConfig(epochs=search.epochs)  # lr_find's other settings are RunConfig's defaults
    write_long_table(out, search.rows, experiment="lr_find", settings=base)
    plots.save_png(plots.plot_lr_curves(search.curves, course_rates()), out / "lr_find.png")
    if tested:
        from jaxopt_lab import range_plots

        figure = range_plots.plot_range_test(search.curves, tested["range_test"])
        plots.save_png(figure, out / "range_test.png")


JSON_ROWS = 10_000  # sweep.json lists every run up to this many; sweep.csv always does


def write_sweep(out: Path, base: RunConfig, table: RunTable, seconds: float, devices: int) -> None:
    """``sweep.csv`` (every run, one row each: any size, loads in pandas), ``sweep.json``
    (settings, timing, JAX and device, the best run, and every row up to :data:`JSON_ROWS` runs)
    and ``sweep.png`` (:func:`plots.plot_sweep`)."""
    from jaxopt_lab import plots

    write_sweep_csv(out / "sweep.csv", table)
    write_long_table(out, table, experiment="sweep", settings=base)
    best = table.best()
    summary = {
        "devices": devices, "epochs": base.epochs, "mini_batch_size": base.mini_batch_size,
        "seconds": seconds, **runtime.environment(), "runs": len(table),
        "grid": table.grid, "seeds": table.seeds.tolist(),
        "diverged": int(table.diverged.sum()),
        "best": None if best is None else table.rows([best])[0],
        "rows_file": "sweep.csv",
    }  # fmt: skip
    if len(table) <= JSON_ROWS:
        summary["results"] = table.rows()
    runtime.write_json(out / "sweep.json", summary)
    figure = plots.plot_sweep(table.columns(), list(table.grid),
                              title=f"{base.optimizer}, {base.epochs} epochs")  # fmt: skip
    plots.save_png(figure, out / "sweep.png")


def write_sweep_csv(path: Path, table: RunTable) -> Path:
    """Every run of a :class:`RunTable` as a CSV row, atomically: ``optimizer``, the settings,
    ``seed``, then the outcomes (``diverged_at_epoch`` and the metrics); an empty field where a
    run diverged. Costs are written in the shortest form that reads back to the run's float
    (float32 or float64) exactly. Built column by column with NumPy's string functions: a
    million rows take about two seconds, and ``pandas.read_csv`` loads them in about one."""
    diverged = table.diverged
    fields = [np.full(len(table), table.optimizer.encode(), dtype=object).astype(bytes)]
    for name in table.grid:
        fields.append(_csv_texts(table.grid[name])[table.codes(name)])
    fields.append(_csv_texts(table.seeds.tolist())[table.codes("seed")])
    fields.append(np.where(diverged, table.diverged_at_epoch.astype(bytes), b""))
    for name in table.metrics():
        fields.append(np.where(diverged, b"", getattr(table, name).astype(bytes)))
    lines = fields[0]
    for field in fields[1:]:
        lines = np.strings.add(np.strings.add(lines, b","), field)
    header = ",".join(["optimizer", *table.grid, "seed", "diverged_at_epoch", *table.metrics()])
    body = b"\n".join(lines.tolist())
    return runtime.atomic_write(path, lambda f: f.write(header.encode() + b"\n" + body + b"\n"))


def _csv_texts(values: Sequence) -> np.ndarray:
    """A CSV field for each distinct value: shortest round-trip text of numbers, quoted text."""

    def text(value) -> str:
        if isinstance(value, (float, np.floating)):
            return repr(float(value))
        value = str(value)
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value

    return np.array([text(v).encode() for v in values], dtype=bytes)
