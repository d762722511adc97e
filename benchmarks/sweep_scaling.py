"""Sweeps at scale (issue 16): the command end to end from 256 to 1,000,000 configurations, the steady
rate of the library at each grid size, what pictures and files cost, and the goals, in one run.

Usage::

    python benchmarks/sweep_scaling.py [--out DIR] [--before CHECKOUT] [--quick]

``--before`` also runs the issue's table on another checkout of the project (e.g. the commit the
work started from, ``git worktree add /tmp/before d1fd6ce``), each command with a time limit.
Writes ``sweep_scaling.json`` and prints the tables of ``benchmarks/RESULTS.md``'s "Sweeps at scale".
Commands run as the user runs them (``python -m jaxopt_lab.cli sweep``, one host device per core),
with a private compilation cache warmed by a first run of the same programs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 300  # a command still running then is killed (the limit)
STEPS_PER_EPOCH = 5  # the course's 300 points in mini-batches of 64

# The table: (configurations, epochs, with --out)
TABLE = ((256, 1000, False), (1024, 10, False), (4096, 10, False), (16_384, 10, False),
         (40_000, 10, True), (1_000_000, 10, False))  # fmt: skip
QUICK_TABLE = ((256, 100, False), (4096, 10, False), (40_000, 2, True))
STEADY_SIZES = (256, 1024, 4096, 16_384, 65_536, 1_000_000)
ROUNDS = 3  # interleaved rounds of the steady-rate measurement


def grid_flags(configs: int) -> list[str]:
    """A learning-rate x beta1 grid of about ``configs`` configurations (two flags)."""
    import numpy as np

    side = int(round(configs**0.5))
    if side * side != configs:  # 256 x 4 for 1024, etc.: keep the product exact
        side = next(d for d in range(int(configs**0.5), 0, -1) if configs % d == 0)
    rates = np.geomspace(1e-4, 1.0, configs // side)
    betas = np.linspace(0.5, 0.99, side)
    return ["--learning-rate", *(f"{v:.9g}" for v in rates), "--beta1", *(f"{v:.9g}" for v in betas)]


def command(
    checkout: Path, configs: int, epochs: int, out: Path | None, cache: Path, limit: int = LIMIT_S
) -> dict:
    """``jaxopt-lab sweep`` on ``checkout`` as a user runs it; wall seconds or killed."""
    argv = [sys.executable, "-m", "jaxopt_lab.cli", "sweep", *grid_flags(configs),
            "--epochs", str(epochs), "--no-progress"]  # fmt: skip
    if out is not None:
        argv += ["--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(checkout), "XDG_CACHE_HOME": str(cache)}
    env.pop("XLA_FLAGS", None)
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=limit,
                              cwd=tempfile.gettempdir())  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"configs": configs, "epochs": epochs, "out": out is not None, "killed_after_s": limit}
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:6]}... failed: {done.stderr[-2000:]}")
    steps = configs * epochs * STEPS_PER_EPOCH
    return {"configs": configs, "epochs": epochs, "out": out is not None, "seconds": seconds,
            "config_steps_per_s": steps / seconds}  # fmt: skip


def table_rows(checkout: Path, table, scratch: Path, *, before: bool, limit: int) -> list[dict]:
    """The issue's table on ``checkout``, each command after one that filled the compilation
    cache: the same grid up to 16,384 runs (the code before compiled per grid size), else
    16,384 runs (the blocked sweep's programs do not depend on the grid's size)."""
    cache = scratch / f"cache-{checkout.name}"
    rows = []
    for configs, epochs, with_out in table:
        out = scratch / f"out-{checkout.name}-{configs}" if with_out else None
        if configs <= 16_384 or not before:
            command(checkout, min(configs, 16_384), epochs, None, cache, limit)
        row = command(checkout, configs, epochs, out, cache, limit)
        print(f"  {checkout.name}: {row}", flush=True)
        rows.append(row)
    return rows


def library_rows(quick: bool, steady_only: bool = False) -> dict:
    """In this process, on one host device per core: the steady rate at each grid size, the
    1,000,000 x 2 goal against 256 x 7,813, pictures and files of a 40,000-run sweep, a profile
    of the 16,384-run sweep, and pandas loading a million-row sweep.csv."""
    import cProfile
    import pstats

    import jax

    jax.config.update("jax_num_cpu_devices", len(os.sched_getaffinity(0)))
    import numpy as np

    from jaxopt_lab import data, plots, results, runs, sweep

    del plots  # imported now, as the command imports it while it trains (not part of writing)

    X, Y = data.load_moons()

    def grid(configs):
        side = int(round(configs**0.5))
        while configs % side:
            side -= 1
        return {"learning_rate": np.geomspace(1e-4, 1, configs // side).tolist(),
                "b1": np.linspace(0.5, 0.99, side).tolist()}  # fmt: skip

    def timed(configs, epochs, **kwargs):
        start = time.perf_counter()
        table = sweep.sweep_table(X, Y, [2, 5, 2, 1], "adam", grid(configs), seeds=[0],
                                  num_epochs=epochs, **kwargs)  # fmt: skip
        return time.perf_counter() - start, table

    def cpu_timed(configs, epochs):
        start, cpu = time.perf_counter(), time.process_time()
        timed(configs, epochs)
        return time.perf_counter() - start, time.process_time() - cpu

    found: dict = {"steady": []}
    sizes = STEADY_SIZES[:3] if quick else STEADY_SIZES
    # Steady rate: extra epochs' time over extra config-steps, in wall seconds and in CPU seconds
    # of this process (all its threads; less moved by other work on a shared machine). Rounds
    # interleave the grid sizes so that a burst of outside load spreads over all of them.
    pairs = {c: ((2, 4) if c >= 65_536 else (10, 60)) for c in sizes}
    for configs, epochs in pairs.items():
        timed(configs, epochs[0]), timed(configs, epochs[1])  # compile both
    samples = {c: [] for c in sizes}
    for _ in range(ROUNDS):
        for configs, (e1, e2) in pairs.items():
            samples[configs].append((cpu_timed(configs, e1), cpu_timed(configs, e2)))
    for configs, (e1, e2) in pairs.items():
        work = configs * (e2 - e1) * STEPS_PER_EPOCH
        wall = float(np.median([w2 - w1 for (w1, _), (w2, _) in samples[configs]]))
        cpu = float(np.median([c2 - c1 for (_, c1), (_, c2) in samples[configs]]))
        found["steady"].append({"configs": configs, "epochs": [e1, e2], "samples": samples[configs],
                                "steady_config_steps_per_s": work / wall,
                                "steady_config_steps_per_cpu_s": work / cpu})  # fmt: skip
        print(f"  steady {configs}: {work / wall / 1e6:.2f} M/s, {work / cpu / 1e6:.2f} M per "
              "CPU-second", flush=True)  # fmt: skip
    if steady_only:
        return found

    # The goal: 1,000,000 configurations x 2 epochs against 256 x 7,813 (the same config-steps),
    # interleaved three times.
    wide, long_ = (1_000_000, 2), (256, 7813)
    if quick:
        wide, long_ = (65_536, 2), (256, 512)
    timed(*wide), timed(*long_)
    pairs = [(timed(*wide)[0], timed(*long_)[0]) for _ in range(3)]
    found["goal_1m"] = {"wide": wide, "long": long_, "pairs_s": pairs,
                        "ratio_median": float(np.median([w / lo for w, lo in pairs]))}  # fmt: skip
    print(f"  1M x 2 vs 256 x 7813: {pairs}", flush=True)

    # Pictures and files of a 40,000-run sweep, in this process.
    seconds, table = timed(40_000, 10)
    base = runs.RunConfig("adam", epochs=10)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        results.write_sweep(Path(folder), base, table, seconds, len(jax.devices()))
        writing = time.perf_counter() - start
        sizes_ = {p.name: p.stat().st_size for p in Path(folder).iterdir()}
    found["files_40k"] = {"sweep_s": seconds, "write_s": writing, "bytes": sizes_,
                          "share": writing / (seconds + writing)}  # fmt: skip
    print(f"  40,000 runs: sweep {seconds:.2f} s, files {writing:.2f} s", flush=True)

    # Where the time of a 16,384-run x 10-epoch sweep goes (warm programs).
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    timed(16_384, 10)
    profile.disable()
    found["profile_16k"] = {"seconds": time.perf_counter() - start, "top": []}
    stats = pstats.Stats(profile).sort_stats("tottime")
    for (file, line, name), (_, calls, own, cumulative, _) in list(stats.stats.items()):
        found["profile_16k"]["top"].append([f"{Path(file).name}:{line}({name})", calls, own, cumulative])
    found["profile_16k"]["top"].sort(key=lambda r: -r[2])
    del found["profile_16k"]["top"][12:]

    # A million rows: the CSV written, then loaded by pandas (in a child, if pandas is there).
    if not quick:
        seconds, table = timed(1_000_000, 2)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "sweep.csv"
            start = time.perf_counter()
            results.write_sweep_csv(path, table)
            found["csv_1m"] = {"write_s": time.perf_counter() - start, "bytes": path.stat().st_size}
            load = ("import time, pandas; t = time.perf_counter(); f = pandas.read_csv(%r); "
                    "print(time.perf_counter() - t, len(f))") % str(path)  # fmt: skip
            child = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                                   env={**os.environ, "PYTHONPATH": os.environ.get("PANDAS_PATH", "")})  # fmt: skip
            if child.returncode == 0:
                read_s, rows = child.stdout.split()
                found["csv_1m"].update(pandas_read_s=float(read_s), pandas_rows=int(rows))
        print(f"  csv: {found.get('csv_1m')}", flush=True)
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    parser.add_argument("--before", type=Path, help="another checkout to run the table on")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--steady-only", action="store_true",
                        help="only the steady rate per grid size (no commands)")
    parser.add_argument("--before-limit", type=int, default=LIMIT_S, metavar="S",
                        help="seconds before a --before command is killed")
    args = parser.parse_args(argv)
    table = QUICK_TABLE if args.quick else TABLE
    found: dict = {"command": " ".join(["python", "benchmarks/sweep_scaling.py", *(argv or sys.argv[1:])])}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        print("library ...", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--library-part", str(scratch / "library.json"),
             *(["--quick"] if args.quick else []), *(["--steady-only"] if args.steady_only else [])],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                 "XDG_CACHE_HOME": str(scratch / "library-cache")},
            check=True,
        )  # fmt: skip
        del child
        found["library"] = json.loads((scratch / "library.json").read_text())
        if args.steady_only:
            table, args.before = (), None
        print("commands, after ...", flush=True)
        found["after"] = table_rows(REPO_ROOT, table, scratch, before=False, limit=LIMIT_S)
        if args.before is not None:
            print("commands, before ...", flush=True)
            found["before"] = table_rows(args.before.resolve(), table, scratch, before=True,
                                         limit=args.before_limit)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep_scaling.json").write_text(json.dumps(found, indent=1))
    print(json.dumps(found, indent=1))
    return found


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--library-part":
        part = library_rows("--quick" in sys.argv, "--steady-only" in sys.argv)
        Path(sys.argv[2]).write_text(json.dumps(part))
    else:
        main()
