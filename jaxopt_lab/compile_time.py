"""Compile-time accounting: JAX reports tracing, lowering and backend compilation as events, in
the thread that caused them, so each thread (each run) keeps its own clock."""

from __future__ import annotations

import threading

import jax

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class _CompileClock(threading.local):
    """Seconds of compilation and the number of XLA compiles, per thread."""

    def __init__(self):
        self.seconds = 0.0
        self.backend_compiles = 0

    def record(self, event: str, duration: float, **kwargs) -> None:
        del kwargs
        if event in _COMPILE_EVENTS:
            self.seconds += duration
        if event == _COMPILE_EVENTS[-1]:
            self.backend_compiles += 1


compile_clock = _CompileClock()
jax.monitoring.register_event_duration_secs_listener(compile_clock.record)
