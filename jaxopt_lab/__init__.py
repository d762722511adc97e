"""jaxopt_lab: the optimization-methods lesson as fused, exact JAX programs."""

__version__ = "0.1.0"
