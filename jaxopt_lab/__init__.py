"""jaxopt_lab: the optimization-methods lesson as fused, exact JAX programs.

Importing it gives JAX one CPU device per core, so that sweeps and many-seed runs use every core
(unless the user chose a count; see ``runtime.use_every_cpu_core``). JAX takes that only before
its backend starts: a process that computed with JAX before importing jaxopt_lab gets a warning
saying how to get every core.
"""

import warnings as _warnings

__version__ = "0.2.0"

from jaxopt_lab import runtime as _runtime  # noqa: E402 - runtime reads nothing of this module

_why = _runtime.use_every_cpu_core_from_jax_import()
if _why is not None:
    _warnings.warn(_why, stacklevel=2)  # at the line that imported jaxopt_lab
