"""The benchmark's smoke run, and proof that its NumPy baseline does the same work as ``fit``.

Timings are never asserted: only that every contender ran and trained the same network. Both
checks need a fresh process (the smoke run is the script itself; float64 needs x64 on before JAX
makes an array), so the module starts both at once and each test waits for its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = REPO_ROOT / "benchmarks" / "run.py"

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
            [str(RUN), "--quick", "--sections", "contenders", "--runs", "1", "--out", out]
        )
        same = _start(["-c", _SAME_COSTS], JAX_ENABLE_X64="1", PYTHONPATH=str(REPO_ROOT))
        yield {"quick": quick, "out": Path(out), "same": same}
        for process in (quick, same):
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
    assert ratio["time_ratio"] > 0
    assert "## Contenders" in (out / "bench.md").read_text()
    assert (out / "contenders.png").stat().st_size > 0


def test_numpy_baseline_equals_course_mode_fit_in_float64(processes):
    assert _finish(processes["same"]).strip().endswith("same")
