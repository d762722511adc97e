"""End to end: `jaxopt-lab compare` against the course's NumPy loop doing the same seven runs.

Usage::

    python benchmarks/compare_e2e.py [--out DIR] [--repeats N]

The NumPy side trains the lesson's seven runs (GD, momentum, Adam at 0.0007; GD at 0.1 with
inverse-time decay; GD, momentum at 0.1 and Adam at 0.01 with fixed-interval decay; 5000 epochs each)
in this process, float64 as the course. The JAX side is the whole command as a user runs it, in a
child process, from interpreter start to exit: first with an empty compilation cache, then again
with the cache that first run filled, each with and without ``--out`` (pictures and files). Both
are measured in the same run of this script, so their ratio is what to read.
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
from statistics import median

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import contenders, course_numpy  # noqa: E402
from jaxopt_lab import data, schedules  # noqa: E402

# The course's seven runs: (optimizer, learning rate, decay)
SEVEN_RUNS = (
    ("gd", 0.0007, None),
    ("momentum", 0.0007, None),
    ("adam", 0.0007, None),
    ("gd", 0.1, schedules.update_lr),
    ("gd", 0.1, schedules.schedule_lr_decay),
    ("momentum", 0.1, schedules.schedule_lr_decay),
    ("adam", 0.01, schedules.schedule_lr_decay),
)


def numpy_seconds(num_epochs: int) -> tuple[float, list[float]]:
    """Seconds for the NumPy loop to train the seven runs, and their final costs."""
    X, Y = data.load_moons()
    finals = []
    start = time.perf_counter()
    with contenders.one_blas_thread():
        for optimizer, learning_rate, decay in SEVEN_RUNS:
            _, costs = course_numpy.train(
                X, Y, [2, 5, 2, 1], optimizer=optimizer, learning_rate=learning_rate,
                decay=decay, num_epochs=num_epochs,
            )  # fmt: skip
            finals.append(float(costs[-1]))
    return time.perf_counter() - start, finals


def command_seconds(argv: list[str], cache_home: Path) -> float:
    """Wall seconds of one `jaxopt-lab` process, start to exit."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    env.pop("JAXOPT_LAB_NO_CACHE", None)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jaxopt_lab.cli", *argv], env=env, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    parser.add_argument("--repeats", type=int, default=3, help="warm-cache runs per variant (3)")
    args = parser.parse_args(argv)

    print("NumPy loop, seven runs ...", flush=True)
    numpy_s, numpy_finals = numpy_seconds(5000)
    rows = [{"what": "NumPy course loop, seven runs", "seconds": numpy_s, "x_numpy": 1.0}]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label, extra in (("", []), (" --out", ["--out", str(tmp / "files")])):
            cache = tmp / f"cache{len(extra)}"
            argv_ = ["compare", "--x64", "--no-progress", *extra]
            print(f"jaxopt-lab compare --x64{label} ...", flush=True)
            cold = command_seconds(argv_, cache)
            warm = median(command_seconds(argv_, cache) for _ in range(args.repeats))
            rows.append(
                {"what": f"`jaxopt-lab compare --x64{label}`, empty cache", "seconds": cold}
            )
            rows.append({"what": f"`jaxopt-lab compare --x64{label}`, warm cache", "seconds": warm})
        jax_finals = [
            r["final_cost"] for r in json.loads((tmp / "files" / "compare.json").read_text())
        ]
    for row in rows[1:]:
        row["x_numpy"] = numpy_s / row["seconds"]

    table = ["| what | seconds | x NumPy |", "|---|---:|---:|"]
    table += [f"| {r['what']} | {r['seconds']:.2f} | {r['x_numpy']:.1f} |" for r in rows]
    result = {
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "numpy_final_costs": numpy_finals,
        "jax_final_costs": jax_finals,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare_e2e.json").write_text(json.dumps(result, indent=1))
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
