"""Benchmark the course's training run: NumPy, naive JAX, the fused fit (hand-rolled and Optax Adam),
PyTorch, in float32 and float64; then sweep throughput and how the fused loop scales.

Usage::

    python benchmarks/run.py [--quick] [--device cpu|gpu] [--out DIR] [--runs N] [--host-devices N]

Writes ``bench.json`` (machine and every row), ``bench.md`` (tables) and PNG charts to ``--out``.
Every contender is timed in the same process as the NumPy baseline it is compared with; float64
runs in a child process started with ``JAX_ENABLE_X64=1``, since x64 must be on before JAX makes
any array. Runs are interleaved round-robin, so a burst of load from elsewhere on the machine
spreads over all contenders instead of landing on one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
import numpy as np  # noqa: E402

from benchmarks import contenders, report  # noqa: E402
from jaxopt_lab import data  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "out"
SECTIONS = ("contenders", "float64", "sweep", "scaling")
COURSE_LAYERS = (2, 5, 2, 1)

# (full, quick) settings
EPOCHS = (5000, 20)
SWEEP_CONFIGS = ((1, 16, 64, 256, 1024), (1, 16))
SWEEP_EPOCHS = (1000, 5)
SAMPLE_SIZES = ((300, 3000, 30_000, 300_000), (300, 3000))
WIDTHS = ((5, 16, 64, 128, 256, 512), (5, 64))
PAIRED_ROUNDS = (40, 3)  # extra interleaved hand-rolled/Optax rounds for their time ratio
ROUND_SECONDS = (0.5, 0.0)  # a fast contender repeats within a round for about this long
SCALING_RUNS = (3, 1)
SCALING_SECONDS = (0.5, 0.02)  # rough target length of one scaling run, to choose its epochs


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def time_round_robin(
    runners: list[contenders.Runner], runs: int, min_seconds: float = 0.0
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """One warm-up run each, then ``runs`` rounds that run every contender in turn.

    In a round a contender runs once, or as many times as fit in about ``min_seconds`` (judged from
    its warm-up), so fast contenders get more samples and a single burst of outside load moves
    their median less.

    Returns:
      Wall seconds of every timed run and the costs of the last run, by runner name. Each run
      blocks until its results are on the host (the costs come back as a NumPy array), so
      asynchronous dispatch cannot hide work.
    """
    costs, repeats = {}, {}
    for runner in runners:
        start = time.perf_counter()
        costs[runner.name] = runner.run()
        warm_up = time.perf_counter() - start
        repeats[runner.name] = int(min(20, max(1, min_seconds / max(warm_up, 1e-9))))
    seconds: dict[str, list[float]] = {runner.name: [] for runner in runners}
    for _ in range(runs):
        for runner in runners:
            for _ in range(repeats[runner.name]):
                start = time.perf_counter()
                costs[runner.name] = runner.run()
                seconds[runner.name].append(time.perf_counter() - start)
    return seconds, costs


def median_seconds(runner: contenders.Runner, runs: int) -> float:
    """Median wall time of ``runs`` runs after one warm-up."""
    return median(time_round_robin([runner], runs)[0][runner.name])


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


def contender_rows(
    work: contenders.Work, runs: int, pick: int, device: str, paired_rounds: int
) -> list[dict]:
    """Every contender on the course's work, in JAX's current float dtype, against NumPy float64."""
    dtype = contenders.jax_dtype_name()
    runners = [contenders.make_numpy(work, "float64")]
    runners.append(contenders.make_naive_jax(work))
    runners.append(contenders.make_fused(work, "hand-rolled"))
    runners.append(contenders.make_fused(work, "optax"))
    if contenders.torch_available():
        runners.append(contenders.make_torch(work, dtype, contenders.torch_device(device)))

    seconds, costs = time_round_robin(runners, runs, min_seconds=ROUND_SECONDS[pick])
    baseline_costs = costs[runners[0].name]
    baseline_us = median(seconds[runners[0].name]) / work.steps * 1e6
    rows = []
    for runner in runners:
        us = median(seconds[runner.name]) / work.steps * 1e6
        rows.append({
            "section": "contenders",
            "name": runner.name,
            "dtype": runner.dtype,
            "jax_dtype": dtype,
            "device": runner.device if runner.name.startswith("pytorch") else "",
            "epochs": work.num_epochs,
            "steps": work.steps,
            "compile_s": runner.compile_seconds,
            "runs_s": seconds[runner.name],
            "run_s": median(seconds[runner.name]),
            "us_per_step": us,
            "speedup_vs_numpy": baseline_us / us,
            "final_cost": float(costs[runner.name][-1]),
            "max_abs_cost_diff_vs_numpy": float(
                np.max(np.abs(costs[runner.name] - baseline_costs))
            ),
        })  # fmt: skip
    shuffle_us = contenders.host_shuffle_seconds(work) / work.steps * 1e6
    for row in rows:
        if row["name"].startswith("fused"):
            row["first_run_host_shuffles_us_per_step"] = shuffle_us

    fused = [r for r in runners if r.name.startswith("fused")]
    paired = {r.name: [] for r in fused}
    for i in range(paired_rounds):
        order = fused if i % 2 == 0 else fused[::-1]  # alternate who goes first
        for runner in order:
            start = time.perf_counter()
            runner.run()
            paired[runner.name].append(time.perf_counter() - start)
    hand, optax_ = (paired[r.name] for r in fused)
    rows.append({
        "section": "hand_vs_optax",
        "dtype": dtype,
        "rounds": paired_rounds,
        "hand_us_per_step": median(hand) / work.steps * 1e6,
        "optax_us_per_step": median(optax_) / work.steps * 1e6,
        "time_ratio": median(h / o for h, o in zip(hand, optax_, strict=True)),
    })  # fmt: skip
    return rows


def sweep_rows(work: contenders.Work, configs: tuple[int, ...], runs: int) -> list[dict]:
    """Config-steps per second of the fused chunk vmapped over 1, 16, 256 learning rates."""
    rows = []
    for n in configs:
        runner = contenders.make_sweep(work, n)
        seconds = median_seconds(runner, runs)
        rows.append({
            "section": "sweep",
            "name": runner.name,
            "dtype": runner.dtype,
            "configs": n,
            "epochs": work.num_epochs,
            "compile_s": runner.compile_seconds,
            "run_s": seconds,
            "config_steps_per_s": n * work.steps / seconds,
            "us_per_config_step": seconds / (n * work.steps) * 1e6,
        })  # fmt: skip
    return rows


# A rough cost model, only to size each scaling run to about the target length:
# seconds per step = fixed overhead + FLOPs / rate.
_OVERHEAD_S = {"numpy": 100e-6, "fused": 5e-6}
_FLOPS_PER_S = {"numpy": 5e9, "fused": 5e9}


def _scaling_point(work: contenders.Work, target_s: float, runs: int, cap: int) -> list[dict]:
    """NumPy and the fused fit on one (data, network) point, each run lasting about target_s."""
    flops = report.flops_per_step(work.layers_dims, work.mini_batch_size)
    steps_per_epoch = len(data.batch_sizes(work.X.shape[1], work.mini_batch_size))
    rows = []
    for name, make in (("numpy", contenders.make_numpy), ("fused", contenders.make_fused)):
        step_s = _OVERHEAD_S[name] + flops / _FLOPS_PER_S[name]
        epochs = int(max(2, min(cap, target_s / (step_s * steps_per_epoch))))
        sized = contenders.Work(work.X, work.Y, work.layers_dims, epochs, work.learning_rate)
        runner = make(sized)
        seconds = median_seconds(runner, runs)
        rows.append({
            "name": runner.name,
            "dtype": runner.dtype,
            "n_samples": work.X.shape[1],
            "layers": list(work.layers_dims),
            "epochs": epochs,
            "compile_s": runner.compile_seconds,
            "s_per_epoch": seconds / epochs,
            "us_per_step": seconds / sized.steps * 1e6,
            "flops_per_step": flops,
            "gflops_per_s": flops / (seconds / sized.steps) / 1e9,
        })  # fmt: skip
    return rows


def scaling_rows(
    sizes: tuple[int, ...], widths: tuple[int, ...], target_s: float, runs: int, cap: int
) -> list[dict]:
    """Seconds per epoch as the data grows (course network) and as the hidden layers widen
    (``[2, w, w, 1]`` on the course's 300 points)."""
    rows = []
    for n in sizes:
        X, Y = data.make_moons(n_samples=n, noise=0.2, seed=3)
        work = contenders.Work(X, Y, COURSE_LAYERS, 2)
        rows += [
            {"section": "scaling_samples", **r} for r in _scaling_point(work, target_s, runs, cap)
        ]
    X, Y = data.load_moons()
    for w in widths:
        work = contenders.Work(X, Y, (2, w, w, 1), 2)
        rows += [
            {"section": "scaling_width", "width": w, **r}
            for r in _scaling_point(work, target_s, runs, cap)
        ]
    return rows


# ---------------------------------------------------------------------------------------------
# Machine and orchestration
# ---------------------------------------------------------------------------------------------


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def machine_info() -> dict:
    """What the figures were measured on."""
    device = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "numpy": np.__version__,
        "optax": _version("optax"),
        "torch": _version("torch") if contenders.torch_available() else None,
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "git": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def select_device(device: str) -> None:
    """Pin JAX to the CPU, or make sure its default backend is a GPU; exit clearly if none."""
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
        return
    try:
        backend = jax.default_backend()  # JAX picks a GPU over the CPU whenever it has one
    except Exception as err:  # any failure to start a backend means "no GPU"
        backend = f"none ({err!r})"
    if backend != "gpu":
        sys.exit(
            f"--device gpu: JAX has no GPU backend here (default backend: {backend}).\n"
            'For an NVIDIA GPU install the CUDA build: pip install -U "jax[cuda12]" (or cuda13).'
        )


def run_float64_child(args: argparse.Namespace) -> list[dict]:
    """The contenders again in float64, in a fresh process with ``JAX_ENABLE_X64=1``."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--float64-rows", str(rows_file)]
        command += ["--device", args.device, "--runs", str(args.runs)]
        command += ["--paired-rounds", str(args.paired_rounds)]
        command += ["--quick"] if args.quick else []
        env = {**os.environ, "JAX_ENABLE_X64": "1"}
        subprocess.run(command, env=env, check=True)
        return json.loads(rows_file.read_text())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs: a smoke run")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--runs", type=int, default=None, help="timed runs per contender (5, quick 3)"
    )
    parser.add_argument(
        "--paired-rounds", type=int, default=None, metavar="N",
        help="interleaved hand-rolled/Optax rounds for their time ratio (40, quick 3)",
    )  # fmt: skip
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
        help="what to run (default: all); 'float64' re-runs the contenders under x64",
    )  # fmt: skip
    parser.add_argument(
        "--host-devices", type=int, default=1, metavar="N",
        help="CPU only: split the host into N JAX devices (sweeps shard over them; 1 per core is "
        "fastest for sweeps, the other sections use one device either way)",
    )  # fmt: skip
    parser.add_argument("--float64-rows", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.paired_rounds is None:
        args.paired_rounds = PAIRED_ROUNDS[1 if args.quick else 0]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    pick = 1 if args.quick else 0
    if args.float64_rows is not None:
        jax.config.update("jax_enable_x64", True)
    if args.device == "cpu" and args.host_devices > 1:
        jax.config.update("jax_num_cpu_devices", args.host_devices)  # before the backend starts
    select_device(args.device)
    X, Y = data.load_moons()
    work = contenders.Work(X, Y, COURSE_LAYERS, EPOCHS[pick])

    if args.float64_rows is not None:  # the child: float64 contenders only
        rows = contender_rows(work, args.runs, pick, args.device, args.paired_rounds)
        args.float64_rows.write_text(json.dumps(rows))
        return {"rows": rows}

    rows = []
    if "contenders" in args.sections:
        print(f"contenders, float32, {work.num_epochs} epochs ...", flush=True)
        rows += contender_rows(work, args.runs, pick, args.device, args.paired_rounds)
    if "float64" in args.sections:
        print("contenders, float64 (child process) ...", flush=True)
        rows += run_float64_child(args)
    if "sweep" in args.sections:
        print("sweep ...", flush=True)
        sweep_work = contenders.Work(X, Y, COURSE_LAYERS, SWEEP_EPOCHS[pick])
        rows += sweep_rows(sweep_work, SWEEP_CONFIGS[pick], args.runs)
    if "scaling" in args.sections:
        print("scaling ...", flush=True)
        rows += scaling_rows(
            SAMPLE_SIZES[pick], WIDTHS[pick], SCALING_SECONDS[pick], SCALING_RUNS[pick],
            EPOCHS[pick],
        )  # fmt: skip
    result = {
        "machine": machine_info(),
        "settings": {
            "command": " ".join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]),
            "quick": args.quick,
            "device": args.device,
            "runs": args.runs,
            "paired_rounds": args.paired_rounds,
            "sections": args.sections,
            "layers": list(COURSE_LAYERS),
            "learning_rate": work.learning_rate,
            "mini_batch_size": work.mini_batch_size,
            "epochs": work.num_epochs,
            "steps_per_epoch": work.steps // work.num_epochs,
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1))
    (args.out / "bench.md").write_text(report.markdown(result))
    report.charts(result, args.out)
    print(report.markdown(result))
    return result


if __name__ == "__main__":
    main()
