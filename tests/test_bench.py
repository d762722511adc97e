"""The benchmarks' smoke runs, and proof that their baselines do the same work as what they time.

Timings are never asserted: only that every contender ran and trained the same network. The smoke
runs need a fresh process (they are the scripts themselves; float64 needs x64 on before JAX makes an
array), so the module starts them all at once and each test waits for its own.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from jaxopt_lab import data, model

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = REPO_ROOT / "benchmarks" / "run.py"
ENGINE = REPO_ROOT / "benchmarks" / "engine.py"

_SAME_COSTS = """
import numpy as np
from benchmarks import course_numpy
from jaxopt_lab import data, optimizers, train

X, Y = data.load_moons()
_, numpy_costs = course_numpy.train(X, Y, [2, 5, 2, 1], num_epochs=4)
fused = train.fit(X, Y, [2, 5, 2, 1], optimizers.adam(0.0007), num_epochs=4)
assert fused.costs.dtype == np.float64
np.testing.assert_allclose(numpy_costs, fused.costs, rtol=1e-12, atol=0)
print("same")
"""


def _start(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO_ROOT, env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


@pytest.fixture(scope="module")
def processes():
    with tempfile.TemporaryDirectory() as out:
        quick = _start(
            [str(RUN), "--quick", "--sections", "contenders", "--runs", "1", "--paired-rounds", "2",
             "--out", out]  # fmt: skip
        )
        same = _start(["-c", _SAME_COSTS], JAX_ENABLE_X64="1", PYTHONPATH=str(REPO_ROOT))
        engine = _start([str(ENGINE), "--quick", "--sections", "engine", "--repeats", "1",
                         "--out", str(Path(out) / "engine")])  # fmt: skip
        yield {"quick": quick, "out": Path(out), "same": same, "engine": engine}
        for process in (quick, same, engine):
            if process.poll() is None:
                process.kill()
                process.communicate()


def test_quick_run_writes_every_contender(processes):
    _finish(processes["quick"])
    out = processes["out"]
    result = json.loads((out / "bench.json").read_text())
    for key in ("cpu_count", "jax", "jaxlib", "backend", "device_kind"):
        assert key in result["machine"]
    rows = [r for r in result["rows"] if r["section"] == "contenders"]
    expected = {
        "numpy course loop",
        "naive JAX (jit per step)",
        "fused fit, hand-rolled Adam",
        "fused fit, optax Adam",
    }
    if importlib.util.find_spec("torch") is not None:
        expected.add("pytorch eager, torch.optim.Adam")
    assert {r["name"] for r in rows} == expected
    for row in rows:
        assert row["us_per_step"] > 0 and row["speedup_vs_numpy"] > 0
        # Same init, shuffles and Adam: float32 costs stay close to NumPy's float64 ones.
        assert row["max_abs_cost_diff_vs_numpy"] < 1e-3, row
    (ratio,) = [r for r in result["rows"] if r["section"] == "hand_vs_optax"]
    assert ratio["time_ratio"] > 0 and ratio["rounds"] == 2  # --paired-rounds
    assert "## Contenders" in (out / "bench.md").read_text()
    assert (out / "contenders.png").stat().st_size > 0


def test_numpy_baseline_equals_course_mode_fit_in_float64(processes):
    assert _finish(processes["same"]).strip().endswith("same")


def test_engine_quick_run_reports_the_rates_and_their_fractions(processes):
    table = _finish(processes["engine"])
    result = json.loads((processes["out"] / "engine" / "engine.json").read_text())
    assert result["machine"]["device_count"] == os.cpu_count()  # one device per core
    assert result["machine"]["commit"]
    engine = result["engine"]
    for name in ("plain", "a", "b"):
        rate = engine[name]["run_steps_per_s"]
        assert math.isfinite(rate) and rate > 0, (name, rate)
        assert engine[name]["runs"] > 0 and len(engine[name]["seconds"]) == 1
    for name in ("a", "b"):
        fraction = engine[name]["fraction_of_plain"]
        assert math.isfinite(fraction) and fraction > 0, (name, fraction)
    assert math.isfinite(engine["plain"]["final_loss_mean"])
    assert "plain vmapped step (the yardstick)" in table
    assert f"{os.cpu_count()} cpu devices (cpu)" in table  # the backend measured, named


def _engine_module():
    spec = importlib.util.spec_from_file_location("benchmarks_engine", ENGINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plain_step_trains_as_an_optax_loop_on_the_fixed_batches(x64):
    seeds, num_epochs = [0, 3], 2
    X, Y = data.load_moons()
    losses = _engine_module().plain_runs(X, Y, seeds, num_epochs, devices=jax.devices()[:1])
    opt = optax.adam(0.0007, b1=0.9, b2=0.999, eps=1e-8)

    @jax.jit
    def step(params, state, x, y):
        updates, state = opt.update(jax.grad(model.loss)(params, x, y), state)
        return optax.apply_updates(params, updates), state

    full_loss = jax.jit(model.loss)
    for seed, loss in zip(seeds, losses, strict=True):
        params = model.init_params([2, 5, 2, 1], seed)  # the seed's draw, as the plain step's
        first = full_loss(params, X, Y)
        state = opt.init(params)
        for _ in range(num_epochs):
            for batch in np.split(np.arange(300), [64, 128, 192, 256]):  # in order, the last 44
                params, state = step(params, state, X[:, batch], Y[:, batch])
        expected = full_loss(params, X, Y)
        assert loss.dtype == np.float64 and loss != first
        np.testing.assert_allclose(loss, expected, rtol=1e-12)
