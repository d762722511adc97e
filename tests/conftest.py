"""Shared fixtures: float64 as a scoped context, never a global switch that leaks between tests.

JAX's default float is float32. Tests that need float64 enter ``jax.enable_x64(True)`` for their own
duration only (the ``x64`` fixture, or the ``dtype`` fixture when parametrized indirectly), and an
autouse guard fails any test that leaves the process in a different precision than it found it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

from jaxopt_lab import runtime

# One CPU device in the test processes, as before `import jaxopt_lab` gave one per core: each
# pytest-xdist worker already has a core of its own, and a sweep split over two devices there
# would compete with the other worker (tests of several devices force them in their own processes).
jax.config.update("jax_num_cpu_devices", 1)

# Compiled programs are shared across the test run and never touch the user's ~/.cache: the
# process that starts the run makes a folder that pytest-xdist's workers inherit. The workers
# share the programs that take a while to compile; the commands the tests start use their own
# cache there (XDG_CACHE_HOME), as they would anywhere. Tests about the cache give their commands
# a folder of their own.
if "JAXOPT_LAB_TEST_CACHE" not in os.environ:
    os.environ["JAXOPT_LAB_TEST_CACHE"] = tempfile.mkdtemp(prefix="jaxopt_lab-tests-")
    _MADE_HERE = True
else:
    _MADE_HERE = False
RUN_CACHE = os.environ["JAXOPT_LAB_TEST_CACHE"]
os.environ["XDG_CACHE_HOME"] = os.path.join(RUN_CACHE, "commands")
os.environ.pop("JAXOPT_LAB_NO_CACHE", None)
jax.config.update("jax_compilation_cache_dir", os.path.join(RUN_CACHE, "tests"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
jax.config.update("jax_compilation_cache_max_size", runtime.CACHE_BYTES)  # locked entries


def pytest_sessionfinish(session):
    if _MADE_HERE:
        shutil.rmtree(RUN_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _precision_does_not_leak():
    before = jax.config.jax_enable_x64
    yield
    assert jax.config.jax_enable_x64 == before, (
        "a test changed jax_enable_x64 and did not restore it"
    )


@pytest.fixture
def x64():
    """Run the test with 64-bit floats enabled (restored afterwards)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def dtype(request):
    """The float dtype a test runs in, with JAX's precision switched to match.

    Use as ``@pytest.mark.parametrize("dtype", [np.float32, np.float64], indirect=True)``.
    """
    dtype = np.dtype(request.param)
    with jax.enable_x64(dtype == np.float64):
        yield dtype


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``), the tests that share a module-scoped fixture (an
    executed notebook, a compiled sweep, a float64 subprocess) go to one worker, so the fixture is
    built once; every other test goes wherever a worker is free."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = any(
            fixturedef.scope in ("module", "session")
            for fixturedefs in info.name2fixturedefs.values()
            for fixturedef in fixturedefs
            if fixturedef.baseid  # a fixture of the test suite, not one of pytest's own
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))

    # The longest pieces go first, so that no worker is left with one of them while the others
    # have finished (the notebook alone takes about a fifth of a worker's share of the run).
    first = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.module.__name__.rsplit(".", 1)[-1], len(first)))


LONGEST_FIRST = ("test_notebook", "test_seeds", "test_distributed", "test_course", "test_cli")


def _command_process(out, *argv) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jaxopt_lab.cli", *argv, "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"},
    )  # fmt: skip


@pytest.fixture
def command_process():
    """``command_process(out, *argv)``: ``jaxopt-lab argv --out out`` started as a process of its
    own (one CPU device, no progress bar), stdout and stderr piped as text."""
    return _command_process
