"""One engine for many runs against a yardstick: the engine's rate as a fraction of a plain vmapped step.

Usage::

    python benchmarks/engine.py [--quick] [--sections engine compare sweep] [--repeats R] [--out DIR]

Everything runs in one process on every core, one JAX CPU device per core (set before the backend
starts), so the ratios are what to read on a noisy machine:

- ``engine``: the yardstick, a plain vmapped Adam step of the lesson's network (700 runs, each from
  its own seed's initial parameters, the 300 examples cut in order into fixed mini-batches: no
  shuffles, no cost bookkeeping, no divergence check; runs sharded over the devices), and
  ``sweep.sweep_table`` for (a) 700 seeds x 1 learning rate and (b) 8 seeds x 88 learning rates,
  2000 epochs each. Rates in run-steps per second (runs x epochs x 5 mini-batches / seconds),
  warm: the plain step compiles in a 2-epoch call (its epoch count is traced: one program), the
  engine in an untimed full call (whatever programs its chunking needs). Then ``--repeats``
  interleaved rounds (plain, a, b); the medians, and the medians of each round's fractions;
- ``compare``: ``jaxopt-lab compare --seeds 100`` as a whole process (warm cache, median of
  ``--repeats``) against the course's NumPy loop training the seven runs, in runs per second;
- ``sweep``: ``jaxopt-lab sweep`` of 256 configurations (16 learning rates x 4 beta1 x 4 beta2,
  Adam, seed 0) x 5000 epochs as a whole process (warm cache, median of ``--repeats``), in
  config-steps per second.

``--out`` (default ``benchmarks/out/``) receives ``engine.json`` (every figure, the machine and the
commit measured); the Markdown table is printed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(REPO_ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from benchmarks.fixed_costs import (  # noqa: E402
    STEPS_PER_EPOCH,
    SWEEP_CONFIGS,
    SWEEP_GRID,
    command_seconds,
    numpy_seconds,
)
from benchmarks.seeds import measure  # noqa: E402
from jaxopt_lab import data, model, sweep, train  # noqa: E402

SECTIONS = ("engine", "compare", "sweep")
LAYERS = (2, 5, 2, 1)
LEARNING_RATE, B1, B2, EPS = 0.0007, 0.9, 0.999, 1e-8
BATCH = 64
# (full, quick) sizes
RUNS = (700, 8)  # the plain step's runs, and (a)'s seeds
GRID_SEEDS, GRID_RATES = (8, 2), (88, 4)  # (b): seeds x learning rates
EPOCHS = (2000, 4)
COMPARE_SEEDS = (100, 1)
SWEEP_EPOCHS = (5000, 20)
GOALS = {  # issue 19's "done when", each with its bound
    "a_run_steps_per_s": 1.5e6,
    "a_fraction_of_plain": 0.35,
    "b_fraction_of_plain": 0.75,
    "compare_x_numpy": 100.0,
    "sweep_config_steps_per_s": 1.0e6,
}


# ---------------------------------------------------------------------------------------------
# The yardstick: Adam written out, on fixed mini-batches, vmapped over runs
# ---------------------------------------------------------------------------------------------


def fixed_batches(X, Y, size: int = BATCH):
    """The examples cut in order: the full batches stacked (batches, rows, size), and the rest."""
    full = X.shape[1] // size * size

    def stacked(A):
        return A[:, :full].reshape(A.shape[0], -1, size).transpose(1, 0, 2)

    return (stacked(X), stacked(Y)), (X[:, full:], Y[:, full:])


def adam_step(carry, batch):
    params, m, v, t = carry
    g = jax.grad(model.loss)(params, *batch)
    t = t + 1
    m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, g)
    v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
    params = jax.tree.map(
        lambda p, m, v: p - LEARNING_RATE * (m / (1 - B1**t)) / (jnp.sqrt(v / (1 - B2**t)) + EPS),
        params, m, v,
    )  # fmt: skip
    return (params, m, v, t), None


def train_run(seed, num_epochs, XY, full, rest):
    """One run from its seed's initial parameters; its loss on all examples at the end."""
    dtype = XY[0].dtype
    params = model.seeded_params(seed, LAYERS, dtype)
    zeros = jax.tree.map(jnp.zeros_like, params)

    def epoch(_, carry):
        carry, _ = jax.lax.scan(adam_step, carry, full)
        return adam_step(carry, rest)[0]

    carry = (params, zeros, zeros, jnp.zeros((), dtype))
    params, *_ = jax.lax.fori_loop(0, num_epochs, epoch, carry)
    return model.loss(params, *XY)


@functools.cache
def _plain_program():
    # Built on first use: compiler_options() reads the backend, which must start after the
    # device count is set.
    runs = jax.vmap(train_run, in_axes=(0, None, None, None, None))
    return jax.jit(runs, compiler_options=train.compiler_options())


def plain_runs(X, Y, seeds, num_epochs: int, devices=None) -> np.ndarray:
    """Final losses of ``len(seeds)`` plain runs (a multiple of the devices), runs sharded."""
    devices = list(devices or jax.devices())
    mesh = Mesh(np.asarray(devices), ("runs",))
    dtype = jnp.result_type(float)
    XY = (np.asarray(X, dtype), np.asarray(Y, dtype))
    replicated = NamedSharding(mesh, P())
    XY, full, rest = jax.device_put((XY, *fixed_batches(*XY)), replicated)
    seeds = jax.device_put(np.asarray(seeds, np.uint32), NamedSharding(mesh, P("runs")))
    return np.asarray(_plain_program()(seeds, np.int32(num_epochs), XY, full, rest))


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def engine_section(X, Y, quick: bool, repeats: int) -> dict:
    """Plain step, (a) and (b), interleaved: rates, and each round's fractions of the plain step."""
    n_devices = jax.device_count()
    runs = -(-RUNS[quick] // n_devices) * n_devices  # whole shards; the plain step trains them all
    epochs = EPOCHS[quick]
    rates = np.geomspace(1e-4, 1e-1, GRID_RATES[quick]).tolist()
    losses = {}  # the plain runs' final losses, from the last call

    def plain(n):
        losses["plain"] = plain_runs(X, Y, np.arange(runs), n)

    contenders = {
        "plain": (runs, plain),
        "a": (RUNS[quick], lambda n: sweep.sweep_table(
            X, Y, list(LAYERS), "adam", {"learning_rate": [LEARNING_RATE]},
            seeds=range(RUNS[quick]), num_epochs=n)),
        "b": (GRID_SEEDS[quick] * len(rates), lambda n: sweep.sweep_table(
            X, Y, list(LAYERS), "adam", {"learning_rate": rates},
            seeds=range(GRID_SEEDS[quick]), num_epochs=n)),
    }  # fmt: skip
    first = {"plain": seconds(lambda: contenders["plain"][1](2))}
    first.update({k: seconds(lambda k=k: contenders[k][1](epochs)) for k in ("a", "b")})
    timed: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, (_, run) in contenders.items():
            timed[name].append(seconds(lambda run=run: run(epochs)))
            print(f"  {timed[name][-1]:7.2f} s  {name}", flush=True)
    result = {"epochs": epochs, "devices": n_devices}
    for name, (n_runs, _) in contenders.items():
        per_round = [n_runs * epochs * STEPS_PER_EPOCH / s for s in timed[name]]
        result[name] = {"runs": n_runs, "first_call_s": first[name], "seconds": timed[name],
                        "run_steps_per_s": median(per_round), "per_round": per_round}  # fmt: skip
    for name in ("a", "b"):
        pairs = zip(result[name]["per_round"], result["plain"]["per_round"], strict=True)
        fractions = [e / p for e, p in pairs]
        result[name]["fraction_of_plain"] = median(fractions)
        result[name]["fractions"] = fractions
    result["plain"]["final_loss_mean"] = float(np.mean(losses["plain"]))
    return result


def compare_section(quick: bool, repeats: int) -> dict:
    """``compare --seeds N`` against the NumPy loop, in runs per second (as ``seeds.py``)."""
    n_seeds = COMPARE_SEEDS[quick]
    numpy_s, _ = numpy_seconds(5000)  # compare trains 5000 epochs: no smaller size compares
    argv = ["compare", "--seeds", str(n_seeds), "--no-progress"]
    with tempfile.TemporaryDirectory() as cache:
        measure(argv, Path(cache))  # fills the compilation cache
        timed = [measure(argv, Path(cache))["seconds"] for _ in range(repeats)]
    runs_per_s = 7 * n_seeds / median(timed)
    return {"seeds": n_seeds, "numpy_seconds": numpy_s, "numpy_runs_per_s": 7 / numpy_s,
            "seconds": timed, "runs_per_s": runs_per_s,
            "x_numpy": runs_per_s / (7 / numpy_s)}  # fmt: skip


def sweep_section(quick: bool, repeats: int) -> dict:
    """The ``sweep`` command, 256 configurations x one seed, as a whole process."""
    epochs = SWEEP_EPOCHS[quick]
    argv = ["sweep", *SWEEP_GRID, "--seed", "0", "--epochs", str(epochs), "--no-progress"]
    with tempfile.TemporaryDirectory() as cache:
        command_seconds(argv, Path(cache))  # fills the compilation cache
        timed = [command_seconds(argv, Path(cache)) for _ in range(repeats)]
    return {"configs": SWEEP_CONFIGS, "epochs": epochs, "seconds": timed,
            "config_steps_per_s": SWEEP_CONFIGS * epochs * STEPS_PER_EPOCH / median(timed)}  # fmt: skip


def commit() -> dict:
    """The commit measured, and whether the package differs from it (then it measured that)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "package_uncommitted": bool(git("status", "--porcelain", "--", "jaxopt_lab"))}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    args = parser.parse_args(argv)
    jax.config.update("jax_num_cpu_devices", os.cpu_count())  # before the backend starts
    from benchmarks.run import machine_info  # imports matplotlib: only when run

    result = {"machine": {**machine_info(), **commit()}, "quick": args.quick,
              "load_average_before": os.getloadavg()}  # fmt: skip
    X, Y = data.load_moons()
    if "engine" in args.sections:
        print(f"plain step, (a), (b) on {jax.device_count()} devices ...", flush=True)
        result["engine"] = engine_section(X, Y, args.quick, args.repeats)
    if "compare" in args.sections:
        print("NumPy loop and compare --seeds ...", flush=True)
        result["compare"] = compare_section(args.quick, args.repeats)
    if "sweep" in args.sections:
        print("sweep 256 configs ...", flush=True)
        result["sweep"] = sweep_section(args.quick, args.repeats)
    result["load_average_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine.json").write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return result


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _met(value: float, goal: float) -> str:
    return "met" if value >= goal else "missed"


def markdown(result: dict) -> str:
    """The figures as the table RESULTS.md shows."""
    lines = ["| what | runs x epochs | seconds | rate | of the plain step | goal |",
             "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    if "engine" in result:
        e = result["engine"]
        a, b = e["a"], e["b"]

        def cells(name: str) -> str:
            return (f"{e[name]['runs']} x {e['epochs']} | {median(e[name]['seconds']):.2f} "
                    f"| {e[name]['run_steps_per_s'] / 1e6:.2f} M run-steps/s")  # fmt: skip

        a_goal = (f">= 1.5 M run-steps/s ({_met(a['run_steps_per_s'], GOALS['a_run_steps_per_s'])}), "
                  f">= 35% ({_met(a['fraction_of_plain'], GOALS['a_fraction_of_plain'])})")  # fmt: skip
        lines += [
            f"| plain vmapped step (the yardstick) | {cells('plain')} | 100% | |",
            f"| (a) `sweep_table`, {a['runs']} seeds x 1 config | {cells('a')} "
            f"| {a['fraction_of_plain']:.1%} | {a_goal} |",
            f"| (b) `sweep_table`, {GRID_SEEDS[result['quick']]} seeds x "
            f"{GRID_RATES[result['quick']]} configs | {cells('b')} "
            f"| {b['fraction_of_plain']:.1%} "
            f"| >= 75% ({_met(b['fraction_of_plain'], GOALS['b_fraction_of_plain'])}) |",
        ]
    if "compare" in result:
        c = result["compare"]
        lines += [
            f"| NumPy course loop, seven runs | 7 x 5000 | {c['numpy_seconds']:.2f} "
            f"| {c['numpy_runs_per_s']:.2f} runs/s | | |",
            f"| `jaxopt-lab compare --seeds {c['seeds']}`, warm | {7 * c['seeds']} x 5000 "
            f"| {median(c['seconds']):.2f} | {c['runs_per_s']:.2f} runs/s = "
            f"{c['x_numpy']:.1f}x NumPy | | >= 100x NumPy "
            f"({_met(c['x_numpy'], GOALS['compare_x_numpy'])}) |",
        ]
    if "sweep" in result:
        s = result["sweep"]
        lines.append(
            f"| `jaxopt-lab sweep`, {s['configs']} configs x 1 seed, warm | "
            f"{s['configs']} x {s['epochs']} | {median(s['seconds']):.2f} "
            f"| {s['config_steps_per_s'] / 1e6:.2f} M config-steps/s | | >= 1 M config-steps/s "
            f"({_met(s['config_steps_per_s'], GOALS['sweep_config_steps_per_s'])}) |"
        )
    m = result["machine"]
    lines += ["", f"commit `{m['commit']}`"
              + (" (package with uncommitted changes)" if m["package_uncommitted"] else "")
              + f", {m['device_count']} {m['backend']} devices ({m['device_kind']}), {m['cpu']}"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
