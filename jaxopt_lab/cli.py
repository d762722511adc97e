"""The ``jaxopt-lab`` command: train one model, compare the lesson's seven runs (over seeds), sweep,
find each optimizer's learning rate, draw paths.

A thin shell over the library: printing and exit codes. The flags are :mod:`jaxopt_lab.cli_flags`
(each subcommand names the settings it takes, :data:`COMMANDS`; their ranges, defaults and help come
from ``settings.SETTINGS``), and the runs, files and process set-up come from the library. A bad value
costs one line and exit status 2; a library refusal names its flag from the ``setting`` it carries.

JAX and the modules that need it are imported inside the functions: :func:`main` first makes
SIGINT, SIGTERM and SIGHUP one line and an exit status, then loads them.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from jaxopt_lab import runtime
from jaxopt_lab.cli_flags import AXES, COMMANDS, FLAGS, PREFIX
from jaxopt_lab.cli_flags import build_parser as parser_of
from jaxopt_lab.settings import BY_NAME, InvalidValue, check

# ---------------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------------


def progress_bar(total: int, *, enabled: bool, desc: str | None = None, unit: str = "epoch"):
    """A tqdm bar on stderr that shows itself only after a second, or a disabled one."""
    from tqdm import tqdm  # imported here: the bar is the only user

    return tqdm(
        total=total, desc=desc, unit=unit, delay=1.0, disable=not enabled, leave=False,
        dynamic_ncols=True, file=sys.stderr, unit_scale=unit != "epoch",
    )  # fmt: skip


def progress_wanted(no_progress: bool) -> bool:
    """Bars only for a person watching: not with --no-progress, not into a pipe or a file."""
    return not no_progress and sys.stdout.isatty() and sys.stderr.isatty()


def say(line: str) -> None:
    print(f"{PREFIX}: {line}", file=sys.stderr)


def stopped(bar, stop: runtime.Stopped, what: str) -> int:
    """Say in one line what a signal stopped, and return the shell's status for it.

    Workers the stop did not wait for (an XLA compile, a chunk: :func:`engine.in_threads`) would
    hold the interpreter's exit until they end, so then the process ends here, its output
    flushed: what it wrote is already whole on disk."""
    bar.close()
    say(f"{stop.signal_name}: {what}")
    if runtime.ENDS_ON_STOP.is_set() and any(
        t.is_alive() and not t.daemon for t in threading.enumerate()
        if t is not threading.current_thread()
    ):  # fmt: skip
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(stop.exit_status)
    return stop.exit_status


def start_up(args: argparse.Namespace) -> None:
    """Before any training: --out proven writable, JAX's backend started (each one line if not)."""
    _writable("out", args.out)
    runtime.start_backend()


def _writable(name: str, directory: Path | None) -> None:
    """Refuse a folder that cannot take a file before any training starts (exit 2)."""
    if directory is not None:
        try:
            runtime.ensure_writable_dir(directory)
        except OSError as error:
            raise InvalidValue(name, f"{directory}: cannot write there ({error.strerror})") from None


def write_results(args: argparse.Namespace, command: str, write: Callable[[Path], object]) -> None:
    """With --out, ``write(folder)`` into a staged result set that replaces the folder's previous
    set whole (:func:`result_sets.result_set`): a stop at any moment leaves one set or the other."""
    if args.out is not None:
        from jaxopt_lab import result_sets

        with result_sets.result_set(args.out, command) as folder:
            write(folder)


# ---------------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    from jaxopt_lab import data, results, runs

    config = runs.RunConfig(**{name: getattr(args, name) for name in runs.RunConfig._fields})
    start_up(args)
    bar = progress_bar(config.epochs, enabled=progress_wanted(args.no_progress))
    printed = None

    def on_progress(progress: runs.Progress) -> None:
        nonlocal printed
        for name, why in progress.skipped:
            say(f"skipped {name}: {why}")
        for epoch in range(progress.epoch if printed is None else printed, progress.epoch):
            if epoch % runs.PRINT_EVERY == 0:
                bar.write("Cost after epoch %i: %f" % (epoch, progress.costs[epoch]), file=sys.stdout)
                if config.decay != "none":
                    lr = config.learning_rate_after(epoch)
                    bar.write("learning rate after epoch %i: %f" % (epoch, lr), file=sys.stdout)
        bar.update(progress.epoch - (printed or 0))
        printed = progress.epoch

    with bar:
        try:
            result = runs.train_run(
                config, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                resume=args.resume, on_progress=on_progress,
            )  # fmt: skip
        except runtime.Stopped as stop:
            if stop.state is None:
                raise
            what = f"stopped at epoch {stop.state.epoch}"
            if stop.saved is None:
                return stopped(bar, stop, f"{what} (not saved: no --checkpoint-dir)")
            return stopped(bar, stop, f"{what}; saved {stop.saved} (continue with --resume)")
    X, Y = data.load_moons()
    accuracy = runs.accuracy_of(result.params, X, Y)
    print("Accuracy: " + str(accuracy))
    write_results(args, "train", lambda out: results.write_run(out, config, result, accuracy))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    if args.seed_count is not None:
        return run_compare_seeds(args)
    import jax

    from jaxopt_lab import results, runs

    start_up(args)
    start = time.perf_counter()
    epochs = sum(config.epochs for _, config in runs.COURSE_RUNS)
    with progress_bar(epochs, enabled=progress_wanted(args.no_progress), desc="compare") as bar:
        try:
            rows, fitted = runs.compare(on_progress=lambda done, _: bar.update(done - bar.n))
        except runtime.Stopped as stop:
            return stopped(bar, stop, "compare stopped; nothing written")
    seconds = time.perf_counter() - start
    print(runs.compare_table(rows))
    print(f"{len(rows)} runs in {seconds:.2f} s ({runtime.environment()['float']}, "
          f"{jax.default_backend()})")  # fmt: skip
    write_results(args, "compare", lambda out: results.write_comparison(out, rows, fitted, seconds))
    return 0


def run_many(args: argparse.Namespace, desc: str, epochs: int, work, report, write) -> int:
    """``work(on_progress)`` on every core under a bar of ``epochs``; print, write with --out."""
    import jax

    runtime.use_every_cpu_core()
    start_up(args)
    start = time.perf_counter()
    with progress_bar(epochs, enabled=progress_wanted(args.no_progress), desc=desc) as bar:
        try:
            result = work(on_progress=lambda done, _: bar.update(done - bar.n))
        except runtime.Stopped as stop:
            return stopped(bar, stop, f"{desc} stopped; nothing written")
    seconds = time.perf_counter() - start
    print(f"{report(result)}\nin {seconds:.2f} s ({runtime.environment()['float']}, "
          f"{len(jax.devices())} {jax.default_backend()} device(s))")  # fmt: skip
    write_results(args, desc, lambda out: write(out, result, seconds))
    return 0


def run_compare_seeds(args: argparse.Namespace) -> int:
    from jaxopt_lab import results, runs

    epochs = sum(config.epochs for _, config in runs.COURSE_RUNS) * (1 + args.seed_count)
    work = functools.partial(runs.compare_seeds, range(args.seed_count),
                             target_cost=args.target_cost, target_accuracy=args.target_accuracy)
    return run_many(args, "compare", epochs, work, runs.seeds_report, results.write_seeds_comparison)


def run_lr_find(args: argparse.Namespace) -> int:
    from jaxopt_lab import results, runs

    names = list(dict.fromkeys(args.optimizer))
    work = functools.partial(runs.lr_find, names, seeds=range(args.seed_count), epochs=args.epochs,
                             lr_from=args.lr_from, lr_to=args.lr_to, points=args.points,
                             range_steps=args.range_steps if args.range_test else None)
    epochs = len(names) * args.points * args.seed_count * args.epochs
    return run_many(args, "lr-find", epochs, work, runs.lr_find_report, results.write_lr_find)


def run_paths(args: argparse.Namespace) -> int:
    start_up(args)
    from jaxopt_lab import plots

    write_results(args, "paths",
                  lambda out: plots.save_png(plots.plot_paths(seed=args.noise_seed), out / "paths.png"))
    print(f"wrote {args.out / 'paths.png'}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    import jax

    from jaxopt_lab import distributed, results, runs

    group = distributed.ProcessGroup(args.coordinator, args.num_processes, args.process_id).check()
    several = distributed.wanted(group)
    if several and not distributed.is_worker():  # this process supervises a worker: itself again
        command = [sys.executable, "-m", "jaxopt_lab.cli", *args.argv]
        status, why = distributed.supervise(command, group, own=lambda line: line.startswith(PREFIX))
        if why is not None:
            say(f"error: {why}")
        return status
    runtime.use_every_cpu_core()
    if several:
        distributed.join(group, peer_timeout=args.peer_timeout)
    runtime.start_backend()
    if jax.process_index() == 0:  # the only one that writes
        _writable("out", args.out)
    base = runs.RunConfig(
        optimizer=args.optimizer, epochs=args.epochs, mini_batch_size=args.mini_batch_size,
        time_interval=args.time_interval,
    )  # fmt: skip
    values = {name: getattr(args, name) for name in AXES}
    start = time.perf_counter()
    configs = math.prod(len(v) for v in runs.sweep_grid(args.optimizer, values).values())
    total = configs * len(args.seeds) * args.epochs
    with progress_bar(total, enabled=progress_wanted(args.no_progress), desc="sweep",
                      unit="run-epoch") as bar:  # fmt: skip

        def on_progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            table = runs.sweep_table(base, values, args.seeds, on_progress=on_progress)
        except runtime.Stopped as stop:
            return stopped(bar, stop, "sweep stopped; nothing written")
    seconds = time.perf_counter() - start
    if jax.process_index() != 0:
        say(f"process {jax.process_index()} of {jax.process_count()} done; process 0 prints and "
            "writes the results")  # fmt: skip
        return 0
    devices = len(jax.devices())
    print(f"{len(table)} runs x {args.epochs} epochs on {devices} {jax.default_backend()} "
          f"device(s) in {seconds:.2f} s")  # fmt: skip
    diverged = int(table.diverged.sum())
    if diverged:
        print(f"diverged: {diverged} of {len(table)} runs (cost not finite; never ranked best)")
    best = table.best()
    if best is None:
        print("best: none, every run diverged")
    else:
        row = table.rows([best])[0]
        setting = ", ".join(f"{k} {row[k]}" for k in table.grid)
        print(f"best: {setting}, seed {row['seed']}: accuracy {row['accuracy']!r}, "
              f"final cost {row['final_cost']:.6f}")  # fmt: skip
    write_results(args, "sweep", lambda out: results.write_sweep(out, base, table, seconds, devices))
    return 0


RUNNERS = {"train": run_train, "compare": run_compare, "paths": run_paths, "sweep": run_sweep,
           "lr-find": run_lr_find}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand's flags (:mod:`jaxopt_lab.cli_flags`), each running its ``run_*``."""
    return parser_of(RUNNERS)

# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jaxopt-lab`` with ``argv`` (default: the process's arguments); returns the exit status."""
    if argv is None:  # the process's own command (not a call from Python): a stop ends it at once
        runtime.ENDS_ON_STOP.set()
    try:
        with runtime.stop_on_signals(say):  # until training defers them: one line and exit
            return _main(argv)
    except runtime.Stopped as stop:  # a stop no command reported in its own words
        say(f"{stop.signal_name}: stopped")
        return stop.exit_status
    except KeyboardInterrupt:  # Ctrl-C where no handler could be set (not the main thread)
        say("SIGINT: stopped")
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()  # a bad flag is refused before JAX loads: a tenth of a second
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # a supervisor runs it again
    except SystemExit as exit_:  # --help, --version, or a bad flag already reported in one line
        return int(exit_.code or 0)
    try:
        if getattr(args, "x64", False):
            runtime.use_float64()  # before any array exists
        # Every float flag in the run's precision (--beta 0.99999999999 is 1.0 in float32),
        # whether or not the chosen optimizer uses it: nothing typed is silently changed.
        for name in COMMANDS[args.command][2]:
            if BY_NAME[name].kind == "float":
                value = getattr(args, name)
                for v in value if isinstance(value, list) else [value]:
                    if v is not None:  # an optional float left out
                        check(name, v)
        runtime.enable_compilation_cache()
        if getattr(args, "out", None) is not None:
            from jaxopt_lab import results

            results.import_plots_in_background()
        return args.run(args)
    except InvalidValue as error:
        say(f"error: {error.describe(FLAGS)}")
        return 2
    except runtime.BackendError as error:
        say(f"error: {error}")
        return 2
    except (ValueError, OSError, ArithmeticError, RuntimeError) as error:
        return _failed(error)


def _failed(error: Exception) -> int:
    """One line and the exit status for what a command raised once it ran (JAX is loaded then);
    anything else is raised again."""
    from jaxopt_lab import distributed, train

    if isinstance(error, train.DivergenceError):
        print(f"diverged at epoch {error.epoch}", file=sys.stderr)
        return 1
    if isinstance(error, (distributed.DistributedError, OSError)):  # a lost peer; a failed write
        say(f"error: {error}")
        return 1
    if isinstance(error, ValueError):  # any other refusal from the library, as it words it
        say(f"error: {error}")
        return 2
    raise error


if __name__ == "__main__":
    sys.exit(main())
