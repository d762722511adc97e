"""The ``jaxopt-lab`` command: train one model, compare the lesson's seven runs, draw optimizer paths.

A thin shell over the library. Each subcommand is a pair: ``add_<name>_parser`` declares its flags
(validated by ``type=`` functions, so a bad value costs one line and exit status 2) and
``run_<name>`` does the work and returns the exit status. :data:`SUBCOMMANDS` lists the pairs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from jaxopt_lab import checkpoints, data, distributed, optimizers, runs, train

# ---------------------------------------------------------------------------------------------
# Flag values: each validator names what it wants; argparse adds the flag's name to the message.
# ---------------------------------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (decay rates, epsilon)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1) (momentum and moment decays)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _bounded_int(text: str, low: int, high: int) -> int:
    value = _integer(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer in [1, 2**31 - 1] (epochs, batch sizes, intervals: int32 inside the programs)."""
    return _bounded_int(text, 1, train.MAX_EPOCHS)


def nonnegative_int(text: str) -> int:
    """An integer in [0, 2**31 - 1] (ranks)."""
    return _bounded_int(text, 0, train.MAX_EPOCHS)


def seed_int(text: str) -> int:
    """A seed in [0, 2**32 - 1]: float32 JAX keys keep 32 bits, so a larger seed would collide."""
    return _bounded_int(text, 0, train.MAX_SEED)


def host_port(text: str) -> str:
    """``HOST:PORT`` with a port in 1-65535 (a coordinator's address)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535 or not host.strip():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 1-65535, got {text!r}")
    return text


def output_dir(text: str) -> Path:
    """A folder to write into: created if absent, refused if it is an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder")
    return path


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ---------------------------------------------------------------------------------------------
# Shared pieces: optimizer from flags, progress, environment, persistent compilation cache
# ---------------------------------------------------------------------------------------------


def progress_bar(total: int, *, enabled: bool, desc: str | None = None):
    """A tqdm bar on stderr that shows itself only after a second, or a disabled one."""
    from tqdm import tqdm  # imported here: the bar is the only user

    return tqdm(
        total=total, desc=desc, unit="epoch", delay=1.0, disable=not enabled, leave=False,
        dynamic_ncols=True, file=sys.stderr,
    )  # fmt: skip


def progress_wanted(no_progress: bool) -> bool:
    """Bars only for a person watching: not with --no-progress, not into a pipe or a file."""
    return not no_progress and sys.stdout.isatty() and sys.stderr.isatty()


def environment() -> dict[str, str]:
    """JAX version, backend and device of this process (for result files)."""
    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device": f"{device.platform}:{device.device_kind}",
        "float": "float64" if jax.config.jax_enable_x64 else "float32",
    }


def cache_dir() -> Path:
    """Where compiled programs persist: ``$XDG_CACHE_HOME/jaxopt_lab/jax`` (``~/.cache`` default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxopt_lab" / "jax"


def enable_compilation_cache() -> None:
    """Turn on JAX's persistent compilation cache so a repeated command skips XLA compiles.

    Every program is cached however fast it compiled: a command compiles dozens of small ones and
    together they cost more than a second. ``JAXOPT_LAB_NO_CACHE=1`` turns it off.
    """
    if os.environ.get("JAXOPT_LAB_NO_CACHE"):
        return
    jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
    if not getattr(warnings.showwarning, "replaces_damaged_cache_entries", False):
        warnings.showwarning = _replace_damaged_cache_entries(warnings.showwarning)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


_DAMAGED_ENTRY = re.compile(r"Error reading persistent compilation cache entry for '([\w.-]+)'")


def _replace_damaged_cache_entries(show):
    """Wrap ``warnings.showwarning`` so that JAX's warning about an unreadable cache entry (a
    damaged file) removes that program's undecodable entries, to be rewritten by this run, and says
    so in one line instead of a warning on every later run."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        found = _DAMAGED_ENTRY.search(str(message))
        if found is None:
            return show(message, category, filename, lineno, file, line)
        from jax._src.compilation_cache import decompress_executable  # JAX's own format

        for path in cache_dir().glob(f"{found.group(1)}-*-cache"):
            try:
                decompress_executable(path.read_bytes())
            except Exception:  # noqa: BLE001 - any failure to decode means a damaged entry
                path.unlink(missing_ok=True)
                print(f"jaxopt-lab: removed a damaged compilation-cache entry ({path.name}); "
                      "recompiled", file=sys.stderr)  # fmt: skip
        return None

    showwarning.replaces_damaged_cache_entries = True
    return showwarning


def write_json(path: Path, content: Any) -> None:
    """Write ``content`` as JSON atomically: a full file or the earlier one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(content, indent=1, allow_nan=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def _add_run_flags(p: argparse.ArgumentParser, *, many: bool) -> None:
    """The flags of one run's configuration (all but --seed), shared by ``train`` and ``sweep``.

    With ``many`` the hyperparameters take one or more values each (a sweep's grid axes);
    --time-interval, --epochs and --mini-batch-size stay single.
    """
    d = runs.RunConfig()

    def hyper(flag: str, kind, default, text: str, **extra) -> None:
        if many:
            extra = {"nargs": "+", "metavar": "X", **extra}
        p.add_argument(
            flag, type=kind, default=[default] if many else default,
            help=f"{text} (default: %(default)s)", **extra,
        )  # fmt: skip

    p.add_argument(
        "--optimizer", choices=tuple(optimizers.OPTIMIZERS), default=d.optimizer,
        help="update rule (default: %(default)s)",
    )  # fmt: skip
    hyper("--learning-rate", positive_float, d.learning_rate, "initial learning rate")
    hyper("--beta", unit_interval, d.beta,
          "momentum's beta, and RMSprop's decay of the squared-gradient average")  # fmt: skip
    hyper("--beta1", unit_interval, d.beta1, "Adam's first-moment decay")
    hyper("--beta2", unit_interval, d.beta2, "Adam's second-moment decay")
    hyper("--epsilon", nonnegative_float, d.epsilon,
          "Adam's and RMSprop's epsilon, outside the square root")  # fmt: skip
    p.add_argument(
        "--decay", choices=runs.DECAYS, default=[d.decay] if many else d.decay,
        nargs="+" if many else None,
        help="learning-rate decay: inverse-time is the course's update_lr, fixed-interval its "
        "schedule_lr_decay (default: %(default)s)",
    )  # fmt: skip
    hyper("--decay-rate", nonnegative_float, d.decay_rate, "decay rate, used with a decay")
    p.add_argument(
        "--time-interval", type=positive_int, default=d.time_interval,
        help="epochs per step of fixed-interval decay (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=positive_int, default=d.epochs,
        help="passes over the data (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--mini-batch-size", type=positive_int, default=d.mini_batch_size,
        help="examples per update; the last batch holds the rest (default: %(default)s)",
    )  # fmt: skip


def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the lesson's network on the moons data with one optimizer",
        description="Train the 2-5-2-1 network on the course's 300 moons points and print the "
        "course's lines: 'Cost after epoch N' every 1000 epochs, then 'Accuracy'.",
    )
    _add_run_flags(p, many=False)
    p.add_argument(
        "--seed",
        type=seed_int,
        default=None,
        help="absent: the course's randomness (NumPy seeds); an integer: JAX randomness",
    )
    p.add_argument(
        "--checkpoint-dir",
        type=output_dir,
        metavar="DIR",
        help="save the run's state here (atomically) every --checkpoint-every epochs, at the end, "
        "and on Ctrl-C",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1000,
        metavar="K",
        help="epochs between checkpoints (default: %(default)s)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in --checkpoint-dir up to --epochs",
    )
    _add_common_flags(p)
    p.set_defaults(run=run_train)


def _add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--x64",
        action="store_true",
        help="compute in float64 (reproduces the course's printouts digit for digit)",
    )
    p.add_argument("--out", type=output_dir, metavar="DIR", help="write results and pictures here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config_from(args: argparse.Namespace) -> runs.RunConfig:
    return runs.RunConfig(**{name: getattr(args, name) for name in runs.RunConfig._fields})


class _FlagError(Exception):
    """A flag combination that is refused after parsing: one line, exit status 2."""


def _checkpointer_for(args: argparse.Namespace, config: runs.RunConfig, optimizer):
    """The run's checkpointer and, with --resume, the state to continue from.

    A folder that already holds checkpoints is only continued, never overwritten: without
    --resume the run is refused, so nothing a user saved is lost. With --resume, damaged or foreign
    checkpoints are skipped (one line each) for the newest intact one of this run.
    """
    identity = {**config._asdict(), "float": environment()["float"]}
    del identity["epochs"]  # a resumed run may go further than the first one planned
    checkpointer = checkpoints.Checkpointer(args.checkpoint_dir, args.checkpoint_every, identity)
    if not args.resume:
        if checkpointer.paths():
            raise _FlagError(
                f"--checkpoint-dir {args.checkpoint_dir} already holds checkpoints: pass --resume "
                "to continue that run, or choose another folder"
            )
        return checkpointer, None
    try:
        state = checkpointer.restore(train.init_state(runs.LAYERS_DIMS, optimizer, config.seed))
    except ValueError as error:
        raise _FlagError(f"--resume: {error}") from None
    if state is None:
        raise _FlagError(f"--resume: no checkpoint to resume from in {args.checkpoint_dir}")
    for name, why in checkpointer.skipped:
        print(f"jaxopt-lab: skipped {name}: {why}", file=sys.stderr)
    if state.epoch > config.epochs:
        raise _FlagError(f"--epochs {config.epochs} is before the checkpoint's epoch {state.epoch}")
    return checkpointer, state


def _writable(flag: str, directory: Path | None) -> None:
    """Refuse a folder that cannot take a file before any training starts (exit 2)."""
    if directory is None:
        return
    try:
        checkpoints.ensure_writable_dir(directory)
    except OSError as error:
        raise _FlagError(f"{flag} {directory}: cannot write there ({error.strerror})") from None


def _interrupted_line(stop: checkpoints.TrainingInterrupted, what: str) -> str:
    name = signal.Signals(stop.signum).name
    return f"jaxopt-lab: {name}: {what}"


def run_train(args: argparse.Namespace) -> int:
    if args.resume and args.checkpoint_dir is None:
        raise _FlagError("--resume needs --checkpoint-dir")
    _writable("--out", args.out)
    lock = None
    if args.checkpoint_dir is not None:
        _writable("--checkpoint-dir", args.checkpoint_dir)
        try:
            lock = checkpoints.FolderLock(args.checkpoint_dir).acquire()
        except checkpoints.FolderLockedError as error:
            raise _FlagError(f"--checkpoint-dir {error}") from None
    try:
        return _train(args)
    finally:
        if lock is not None:
            lock.release()


def _train(args: argparse.Namespace) -> int:
    _start_backend()
    config = _config_from(args)
    X, Y = data.load_moons()
    # The shared-structure form: the same numbers, and the same compiled program as `compare`'s
    # run of this optimizer, so either command warms the persistent cache for the other.
    optimizer = config.make_optimizer(X.shape[1], shared_structure=True)
    bar = progress_bar(config.epochs, enabled=progress_wanted(args.no_progress))
    printed = 0

    def report(state: train.TrainState) -> None:
        nonlocal printed
        for epoch in range(printed, state.epoch):
            if epoch % runs.PRINT_EVERY == 0:
                bar.write("Cost after epoch %i: %f" % (epoch, state.costs[epoch]), file=sys.stdout)
                if config.decay != "none":
                    lr = config.learning_rate_after(epoch)
                    bar.write("learning rate after epoch %i: %f" % (epoch, lr), file=sys.stdout)
        bar.update(state.epoch - printed)
        printed = state.epoch

    checkpointer, state = None, None
    if args.checkpoint_dir is not None:
        checkpointer, state = _checkpointer_for(args, config, optimizer)
        printed = 0 if state is None else state.epoch
    # Chunks end on every checkpoint epoch and every printed epoch.
    chunk_epochs = math.gcd(args.checkpoint_every, runs.PRINT_EVERY) if checkpointer else None

    with bar, checkpoints.DeferredInterrupt() as interrupt:
        bar.update(printed)

        def on_chunk(state: train.TrainState) -> None:
            report(state)
            if checkpointer is not None:
                checkpointer(state)
            interrupt.check(state)

        try:
            result = train.fit(
                X, Y, runs.LAYERS_DIMS, optimizer, num_epochs=config.epochs,
                mini_batch_size=config.mini_batch_size, seed=config.seed, chunk_epochs=chunk_epochs,
                state=state, on_chunk=on_chunk,
            )  # fmt: skip
        except checkpoints.TrainingInterrupted as stop:
            bar.close()
            if checkpointer is None:
                what = f"stopped at epoch {stop.state.epoch} (not saved: no --checkpoint-dir)"
            else:
                path = checkpointer.save(stop.state)
                what = f"stopped at epoch {stop.state.epoch}; saved {path} (continue with --resume)"
            print(_interrupted_line(stop, what), file=sys.stderr)
            return stop.exit_status
    if checkpointer is not None:
        checkpointer.save(
            train.TrainState(result.params, result.opt_state, config.epochs, result.costs)
        )
    accuracy = runs.accuracy_of(result.params, X, Y)
    print("Accuracy: " + str(accuracy))

    if args.out is not None:
        from jaxopt_lab import plots

        write_json(args.out / "result.json", {
            "config": config._asdict(),
            "final_cost": float(result.costs[-1]),
            "accuracy": accuracy,
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
            **environment(),
            "costs": [float(c) for c in result.costs],
        })  # fmt: skip
        label = f"{config.optimizer}, lr {config.learning_rate:g}, decay {config.decay}"
        plots.save_png(
            plots.plot_cost_curves({label: result.costs}, title=f"Cost per epoch ({label})"),
            args.out / "cost.png",
        )
        plots.save_png(
            plots.plot_decision_boundary(
                result.params, X, Y, title=f"{label}: accuracy {accuracy:.3f}"
            ),
            args.out / "decision_boundary.png",
        )
    return 0


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


def add_compare_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="the lesson's seven runs side by side: table, cost curves, decision boundaries",
        description="Run the course's seven trainings (GD, momentum and Adam at 0.0007; GD with "
        "inverse-time decay; GD, momentum and Adam with fixed-interval decay) and compare them.",
    )
    _add_common_flags(p)
    p.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    _writable("--out", args.out)
    _start_backend()
    start = time.perf_counter()
    epochs = sum(config.epochs for _, config in runs.COURSE_RUNS)
    bar = progress_bar(epochs, enabled=progress_wanted(args.no_progress), desc="compare")
    with bar, checkpoints.DeferredInterrupt() as interrupt:

        def on_epochs(epochs: int) -> None:
            bar.update(epochs)
            interrupt.check()  # every run stops at its next chunk boundary

        try:
            rows, results = runs.compare(on_epochs=on_epochs)
        except checkpoints.TrainingInterrupted as stop:
            bar.close()
            print(_interrupted_line(stop, "compare stopped; nothing written"), file=sys.stderr)
            return stop.exit_status
    total = time.perf_counter() - start
    table = runs.compare_table(rows)
    print(table)
    print(f"{len(rows)} runs in {total:.2f} s ({environment()['float']}, {jax.default_backend()})")

    if args.out is not None:
        from jaxopt_lab import plots

        X, Y = data.load_moons()
        costs = {row["method"]: result.costs for row, result in zip(rows, results, strict=True)}
        write_json(args.out / "compare.json", rows)
        env = environment()
        (args.out / "compare.md").write_text(
            table
            + f"\n\n{len(rows)} runs of {runs.COURSE_RUNS[0][1].epochs} epochs in {total:.2f} s "
            f"(JAX {env['jax_version']}, {env['device']}, {env['float']}).\n"
        )
        plots.save_png(
            plots.plot_cost_curves(costs, title="The lesson's seven runs: cost per epoch"),
            args.out / "cost_curves.png",
        )
        titled = {
            f"{row['method']}\naccuracy {row['accuracy']:.3f}": result.params
            for row, result in zip(rows, results, strict=True)
        }
        plots.save_png(plots.plot_decision_boundaries(titled, X, Y), args.out / "boundaries.png")
    return 0


# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------


def add_paths_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "paths",
        help="draw GD, noisy GD, momentum, RMSprop and Adam on a bowl and on Rosenbrock",
        description="Draw the trajectories of the lesson's optimizers on an elongated quadratic "
        "bowl and on the Rosenbrock function, in one PNG.",
    )
    p.add_argument(
        "--out",
        type=output_dir,
        metavar="DIR",
        default=Path("."),
        help="folder for paths.png (default: the current folder)",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seed of the gradient noise of noisy GD (default: %(default)s)",
    )
    p.set_defaults(run=run_paths, x64=False)


def run_paths(args: argparse.Namespace) -> int:
    _writable("--out", args.out)
    _start_backend()
    from jaxopt_lab import plots

    path = plots.save_png(plots.plot_paths(seed=args.seed), args.out / "paths.png")
    print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------


def add_sweep_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train a grid of configurations and seeds as one vmapped, sharded program",
        description="Train every combination of the values given (cartesian product) for every "
        "seed, as one JAX program split over all devices. Each row equals `jaxopt-lab train "
        "--seed S` with its configuration. Flags an optimizer does not use are ignored.",
    )
    _add_run_flags(p, many=True)
    p.add_argument(
        "--seed",
        type=seed_int,
        default=[0],
        nargs="+",
        metavar="S",
        help="JAX seeds; every configuration runs with each (default: %(default)s)",
    )
    group = p.add_argument_group(
        "several processes",
        "run the sweep as N processes joined by jax.distributed (one per host, say); under SLURM "
        "or Open MPI the three are read from the environment; process 0 writes the results",
    )
    group.add_argument("--coordinator", type=host_port, metavar="HOST:PORT",
                       help="process 0's address, reachable from every process")  # fmt: skip
    group.add_argument("--num-processes", type=positive_int, metavar="N", help="processes in all")
    group.add_argument("--process-id", type=nonnegative_int, metavar="I",
                       help="this process's rank, 0 to N-1")  # fmt: skip
    group.add_argument(
        "--peer-timeout", type=positive_int, default=distributed.DEFAULT_PEER_TIMEOUT,
        metavar="S", help="seconds of silence after which a process counts as lost (default: "
        "%(default)s)",
    )  # fmt: skip
    _add_common_flags(p)
    p.set_defaults(run=run_sweep)


def _process_group(args: argparse.Namespace) -> distributed.ProcessGroup:
    """The sweep's process group from its flags: all three, or none (one process, or a cluster's
    environment)."""
    given = [args.coordinator, args.num_processes, args.process_id]
    if any(v is not None for v in given) and any(v is None for v in given):
        raise _FlagError("--coordinator, --num-processes and --process-id go together")
    if args.process_id is not None and args.process_id >= args.num_processes:
        raise _FlagError(
            f"--process-id {args.process_id} must be below --num-processes {args.num_processes}"
        )
    return distributed.ProcessGroup(args.coordinator, args.num_processes, args.process_id)


def _use_every_cpu_core() -> None:
    """One host device per core, so a sweep on CPU keeps every core busy (measured: 2 devices
    on 2 cores run a 256-run sweep 1.5x faster than one). Only possible before JAX starts; an
    explicit ``--xla_force_host_platform_device_count`` in XLA_FLAGS wins."""
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", len(os.sched_getaffinity(0)))
    except (RuntimeError, AttributeError):  # JAX already started, or no sched_getaffinity
        pass


def run_sweep(args: argparse.Namespace) -> int:
    from jaxopt_lab import sweep

    group = _process_group(args)
    several = distributed.wanted(group)
    if several and not os.environ.get(distributed.WORKER_ENV):
        return distributed.supervise(args.argv, group)
    _use_every_cpu_core()
    if several:
        try:
            distributed.join(group, peer_timeout=args.peer_timeout)
        except distributed.DistributedError as error:
            print(f"jaxopt-lab: error: {error}", file=sys.stderr)
            return 1
    _start_backend()
    if jax.process_index() == 0:  # the only one that writes
        _writable("--out", args.out)
    X, Y = data.load_moons()
    grid = runs.sweep_grid(args.optimizer, vars(args))
    base = runs.RunConfig(
        optimizer=args.optimizer, epochs=args.epochs, mini_batch_size=args.mini_batch_size,
        time_interval=args.time_interval,
    )  # fmt: skip
    make_optimizer = runs.sweep_factory(base, X.shape[1])

    n_runs = len(sweep.grid_points(grid)) * len(args.seed)
    bar = progress_bar(args.epochs, enabled=progress_wanted(args.no_progress), desc="sweep")
    start = time.perf_counter()

    interrupt = checkpoints.DeferredInterrupt()

    def on_chunk(epoch: int, costs) -> None:
        bar.update(epoch - bar.n)
        if several:
            distributed.check_peers()  # a lost peer ends this process too, at a chunk boundary
        interrupt.check()  # Ctrl-C, SIGTERM, SIGHUP: stop at this chunk boundary

    try:
        with bar, interrupt:
            rows = sweep.sweep(
                X, Y, runs.LAYERS_DIMS, make_optimizer, grid, seeds=args.seed,
                num_epochs=args.epochs, mini_batch_size=args.mini_batch_size, on_chunk=on_chunk,
            )  # fmt: skip
    except distributed.DistributedError as error:
        print(f"jaxopt-lab: error: {error}", file=sys.stderr)
        return 1
    except checkpoints.TrainingInterrupted as stop:
        print(_interrupted_line(stop, "sweep stopped; nothing written"), file=sys.stderr)
        return stop.exit_status
    seconds = time.perf_counter() - start
    if jax.process_index() != 0:
        print(f"jaxopt-lab: process {jax.process_index()} of {jax.process_count()} done; process 0 "
              "prints and writes the results")  # fmt: skip
        return 0
    for row in rows:
        row["optimizer"] = args.optimizer
    devices = len(jax.devices())
    best = runs.best_run(rows)
    print(f"{n_runs} runs x {args.epochs} epochs on {devices} {jax.default_backend()} device(s) "
          f"in {seconds:.2f} s")  # fmt: skip
    diverged = sum(row["diverged_at_epoch"] is not None for row in rows)
    if diverged:
        print(f"diverged: {diverged} of {n_runs} runs (cost not finite; never ranked best)")
    if best is None:
        print("best: none, every run diverged")
    else:
        setting = ", ".join(f"{k} {best[k]}" for k in grid)
        print(f"best: {setting}, seed {best['seed']}: accuracy {best['accuracy']!r}, "
              f"final cost {best['final_cost']:.6f}")  # fmt: skip

    if args.out is not None:
        content = {
            "devices": devices, "epochs": args.epochs, "mini_batch_size": args.mini_batch_size,
            "seconds": seconds, **environment(), "results": rows,
        }  # fmt: skip
        json.dumps(content, allow_nan=False)  # a bare NaN would make the file invalid JSON
        write_json(args.out / "sweep.json", content)
        from jaxopt_lab import plots  # matplotlib only when a picture is drawn

        plots.save_png(
            plots.plot_sweep_heatmap(rows, title=f"{args.optimizer}, {args.epochs} epochs"),
            args.out / "sweep.png",
        )
    return 0


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    add_train_parser,
    add_compare_parser,
    add_paths_parser,
    add_sweep_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="jaxopt-lab",
        description="The optimization-methods lesson as fused JAX programs.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in SUBCOMMANDS:
        add_parser(subparsers)
    return parser


# The library's argument names, as the flags that set them.
_FLAG_OF = {
    "learning_rate": "--learning-rate", "beta": "--beta", "decay": "--beta", "b1": "--beta1",
    "b2": "--beta2", "eps": "--epsilon", "decay_rate": "--decay-rate",
    "time_interval": "--time-interval", "num_epochs": "--epochs",
    "mini_batch_size": "--mini-batch-size", "seed": "--seed",
}  # fmt: skip


def _named_as_flag(message: str) -> str:
    name, _, rest = message.partition(" ")
    return f"{_FLAG_OF[name]} {rest}" if name in _FLAG_OF else message


def _start_backend() -> None:
    """Start JAX's backend now, so that one that cannot start (``JAX_PLATFORMS=cuda`` on a machine
    without a GPU) is one line and exit 2, not a traceback from the first array."""
    try:
        jax.devices()
    except (RuntimeError, AssertionError) as error:  # JAX 0.10 asserts when no platform starts
        platforms = os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms or "default"
        detail = str(error).strip().splitlines()[0] if str(error).strip() else "no device"
        raise _FlagError(
            f"JAX could not start its backend (JAX_PLATFORMS={platforms}): {detail}"
        ) from None


# The bounds each float validator checks, checked again once rounded to the run's float dtype.
_FLOAT_BOUNDS = {
    positive_float: {"low": 0.0, "low_open": True},
    nonnegative_float: {"low": 0.0},
    unit_interval: {"low": 0.0, "high": 1.0},
}


def _check_in_run_dtype(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a float flag whose value leaves its range once rounded to the precision the run
    computes in (``--beta 0.99999999999`` is 1.0 in float32), whether or not the chosen optimizer
    uses it: nothing a user typed is silently changed."""
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in commands.choices[args.command]._actions:
        bounds = _FLOAT_BOUNDS.get(action.type)
        value = getattr(args, action.dest, None)
        if bounds is None or value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            optimizers.check_number(action.option_strings[0], v, **bounds)


def _stop_on_termination() -> dict:
    """Until training takes them over (``DeferredInterrupt``), SIGTERM and SIGHUP end the command
    with one line and exit 128 + N, as Ctrl-C does; returns the handlers to restore."""

    def stop(signum, frame):
        del frame
        print(f"jaxopt-lab: {signal.Signals(signum).name}: stopped", file=sys.stderr)
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}


def _import_plots_in_background() -> None:
    """Import matplotlib (through ``plots``) on a thread while the command traces and trains: XLA
    releases the GIL while it compiles and runs, so the import's half second mostly disappears.
    The command's own ``from jaxopt_lab import plots`` waits for it through the import lock."""
    threading.Thread(
        target=importlib.import_module, args=("jaxopt_lab.plots",), daemon=True
    ).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jaxopt-lab`` with ``argv`` (default: the process's arguments); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # a supervisor runs it again
    except SystemExit as exit_:  # --help, or a bad flag already reported in one line
        return int(exit_.code or 0)
    if args.x64:
        # Before any array exists: arrays made earlier would stay float32.
        jax.config.update("jax_enable_x64", True)
    try:
        _check_in_run_dtype(parser, args)
    except ValueError as error:
        print(f"jaxopt-lab: error: {error}", file=sys.stderr)
        return 2
    enable_compilation_cache()
    if getattr(args, "out", None) is not None:
        _import_plots_in_background()
    previous = _stop_on_termination()
    try:
        return args.run(args)
    except train.DivergenceError as error:
        print(f"diverged at epoch {error.epoch}", file=sys.stderr)
        return 1
    except _FlagError as error:
        print(f"jaxopt-lab: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # the library refused a value: name the flag it came from
        print(f"jaxopt-lab: error: {_named_as_flag(str(error))}", file=sys.stderr)
        return 2
    except OSError as error:  # a write failed (disk full, folder gone); checkpoints are atomic
        print(f"jaxopt-lab: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before training started, or while results are written
        print("jaxopt-lab: SIGINT: stopped", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
