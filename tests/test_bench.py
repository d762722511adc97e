"""The benchmark's smoke run, and proof that its NumPy baseline does the same work as ``fit``.

Timings are never asserted: only that every contender ran and trained the same network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = REPO_ROOT / "benchmarks" / "run.py"


def _run_python(args: list[str], **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_quick_run_writes_every_contender(tmp_path):
    _run_python(
        [str(RUN), "--quick", "--sections", "contenders", "--runs", "1", "--out", str(tmp_path)]
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    for key in ("cpu_count", "jax", "jaxlib", "backend", "device_kind"):
        assert key in result["machine"]
    rows = [r for r in result["rows"] if r["section"] == "contenders"]
    names = {r["name"] for r in rows}
    expected = {
        "numpy course loop",
        "naive JAX (jit per step)",
        "fused fit, hand-rolled Adam",
        "fused fit, optax Adam",
    }
    if importlib.util.find_spec("torch") is not None:
        expected.add("pytorch eager, torch.optim.Adam")
    assert names == expected
    for row in rows:
        assert row["us_per_step"] > 0 and row["speedup_vs_numpy"] > 0
        # Same init, shuffles and Adam: float32 costs stay close to NumPy's float64 ones.
        assert row["max_abs_cost_diff_vs_numpy"] < 1e-3, row
    (ratio,) = [r for r in result["rows"] if r["section"] == "hand_vs_optax"]
    assert ratio["time_ratio"] > 0
    assert "## Contenders" in (tmp_path / "bench.md").read_text()
    assert (tmp_path / "contenders.png").stat().st_size > 0


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


def test_numpy_baseline_equals_course_mode_fit_in_float64():
    # x64 must be on before JAX makes an array, so this runs in its own process.
    result = _run_python(["-c", _SAME_COSTS], JAX_ENABLE_X64="1", PYTHONPATH=str(REPO_ROOT))
    assert result.stdout.strip().endswith("same")
