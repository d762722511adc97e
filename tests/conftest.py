"""Shared fixtures: float64 as a scoped context, never a global switch that leaks between tests.

JAX's default float is float32. Tests that need float64 enter ``jax.enable_x64(True)`` for their own
duration only (the ``x64`` fixture, or the ``dtype`` fixture when parametrized indirectly), and an
autouse guard fails any test that leaves the process in a different precision than it found it.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest


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
