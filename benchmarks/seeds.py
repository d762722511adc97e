"""The seeds comparison end to end against the course's NumPy loop: runs per second and peak memory.

Usage::

    python benchmarks/seeds.py [--out DIR] [--seeds N] [--repeats R]

Measured in one run of this script, so the ratios are what to read on a noisy machine:

- the course's NumPy loop training the lesson's seven runs once (float64, 5000 epochs each, in this
  process, one BLAS thread), as ``fixed_costs.py`` times it: its runs per second are 7 / seconds;
- ``jaxopt-lab compare --seeds N`` (default 100: 700 runs of 5000 epochs, and the course's own
  seven beside them) as a whole process, interpreter start to exit: with an empty compilation
  cache, then warm (the median of ``--repeats``), then warm with ``--out`` (JSON and pictures).
  Its runs per second count the N x 7 seed runs only. Each process's CPU seconds and peak resident
  memory come from ``wait4``, the kernel's own accounting of that child.

``--out`` (default ``benchmarks/out/``) receives ``seeds.json`` (every figure), and the files of
the last ``--out`` process in ``compare_seeds/``: what the 100 seeds showed, with the pictures.
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
if str(REPO_ROOT) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.fixed_costs import numpy_seconds  # noqa: E402

GOAL = 100.0  # issue 15: runs per second, at least this many times the NumPy loop's


def measure(argv: list[str], cache_home: Path) -> dict:
    """One ``jaxopt-lab`` process: wall seconds (start to exit), CPU seconds and peak memory."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    env.pop("JAXOPT_LAB_NO_CACHE", None)
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "jaxopt_lab.cli", *argv], env=env,
                                 stdout=subprocess.DEVNULL, stderr=errors)  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"{argv} failed: {errors.read().decode()}")
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,  # Linux reports kibibytes
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    parser.add_argument("--seeds", type=int, default=100, help="seeds of the comparison (100)")
    parser.add_argument("--repeats", type=int, default=3, help="warm processes timed (3)")
    args = parser.parse_args(argv)
    seed_runs = 7 * args.seeds
    load_before = os.getloadavg()  # other work on the machine skews the ratios: say how much
    print("NumPy loop, seven runs ...", flush=True)
    numpy_s, _ = numpy_seconds(5000)
    numpy_rate = 7 / numpy_s
    rows = [{"what": "NumPy course loop, seven runs once (float64, in process)", "seconds": numpy_s,
             "runs": 7, "runs_per_s": numpy_rate, "x_numpy": 1.0}]  # fmt: skip
    print(f"  {numpy_s:7.2f} s  {rows[0]['what']}", flush=True)
    command = ["compare", "--seeds", str(args.seeds), "--no-progress"]
    shown = f"`jaxopt-lab compare --seeds {args.seeds}`"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        variants = (
            (f"{shown}, empty cache", command, 1),
            (f"{shown}, warm cache", command, args.repeats),
            (f"{shown} --out, warm cache", [*command, "--out", str(args.out / "compare_seeds")],
             args.repeats),
        )
        for what, argv_, repeats in variants:
            runs = [measure(argv_, cache) for _ in range(repeats)]
            picked = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # the median run
            row = {"what": what, **picked, "runs": seed_runs,
                   "runs_per_s": seed_runs / picked["seconds"],
                   "repeats": [r["seconds"] for r in runs]}  # fmt: skip
            row["x_numpy"] = row["runs_per_s"] / numpy_rate
            rows.append(row)
            print(f"  {row['seconds']:7.2f} s  {what}: {row['x_numpy']:.1f}x NumPy's runs/s, "
                  f"{row['cpu_seconds']:.1f} CPU s, peak {row['peak_mib']:.0f} MiB", flush=True)
    warm = rows[2]
    result = {
        "cpu_count": os.cpu_count(),
        "load_average_before_after": [load_before, os.getloadavg()],
        "seeds": args.seeds,
        "rows": rows,
        "goal": {"x_numpy": GOAL, "measured": warm["x_numpy"], "met": warm["x_numpy"] >= GOAL,
                 "peak_mib": warm["peak_mib"]},  # fmt: skip
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seeds.json").write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    """The figures as the table RESULTS.md shows."""
    lines = [
        "| what | seconds | runs | runs/s | x NumPy | CPU s | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        cpu = f"{r['cpu_seconds']:.1f}" if "cpu_seconds" in r else ""
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else ""
        lines.append(f"| {r['what']} | {r['seconds']:.2f} | {r['runs']} | {r['runs_per_s']:.2f} "
                     f"| {r['x_numpy']:.1f} | {cpu} | {peak} |")  # fmt: skip
    goal = result["goal"]
    lines += ["", f"goal: warm `compare --seeds {result['seeds']}` at least {goal['x_numpy']:g}x the "
              f"NumPy loop's runs per second; measured {goal['measured']:.1f}x "
              f"({'met' if goal['met'] else 'missed'}), peak {goal['peak_mib']:.0f} MiB"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
