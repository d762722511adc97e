"""The benchmark's contenders: one training run of the same work, set up once, then timed.

Every contender trains the course's network with Adam on the same data, the same He initialisation
(seed 3) and the same per-epoch shuffles (seed 11 + epoch), and returns the per-epoch costs so the
harness can check that all of them did the same work. A contender is built by a ``make_*`` function
that does the setup and any compilation (timed apart) and returns a :class:`Runner`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import course_numpy
from jaxopt_lab import data, model, optax_equivalents, optimizers, train


@dataclasses.dataclass(frozen=True)
class Work:
    """What every contender trains: the data, the network and Adam's learning rate."""

    X: np.ndarray  # shape (n_x, m), float64 as loaded
    Y: np.ndarray  # shape (1, m), 0/1
    layers_dims: tuple[int, ...]
    num_epochs: int
    learning_rate: float = 0.0007
    mini_batch_size: int = 64

    @property
    def steps(self) -> int:
        """Mini-batch updates in the whole run (an epoch of 300 columns is 5 steps of 64)."""
        return self.num_epochs * len(data.batch_sizes(self.X.shape[1], self.mini_batch_size))


@dataclasses.dataclass
class Runner:
    """A contender ready to run: ``run()`` trains once, blocks until done, returns the costs."""

    name: str
    dtype: str
    compile_seconds: float | None  # None where nothing is compiled (NumPy, PyTorch eager)
    run: Callable[[], np.ndarray]
    device: str = "cpu"


def jax_dtype_name() -> str:
    """The float dtype JAX makes by default here: float64 under ``JAX_ENABLE_X64``."""
    return jnp.dtype(jnp.result_type(float)).name


# ---------------------------------------------------------------------------------------------
# 1. The course's NumPy loop (the baseline)
# ---------------------------------------------------------------------------------------------


def one_blas_thread():
    try:  # threadpoolctl comes with scikit-learn, a dependency of the project
        import threadpoolctl
    except ImportError:
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(1, user_api="blas")


def make_numpy(work: Work, dtype: str = "float64") -> Runner:
    """The course's loop in NumPy; float64 is the course as written.

    BLAS is held to one thread: the course's matrices are far too small to split, and on two
    shared cores multi-threaded OpenBLAS stalled badly (measured at width 128: 28.8 ms per step
    against 0.77 ms on one thread).
    """

    def run() -> np.ndarray:
        with one_blas_thread():
            _, costs = course_numpy.train(
                work.X, work.Y, list(work.layers_dims), learning_rate=work.learning_rate,
                mini_batch_size=work.mini_batch_size, num_epochs=work.num_epochs,
                dtype=np.dtype(dtype),
            )  # fmt: skip
        return costs

    return Runner("numpy course loop", dtype, None, run)


# ---------------------------------------------------------------------------------------------
# 2. Naive JAX: what a line-by-line port does
# ---------------------------------------------------------------------------------------------


def _naive_step(optimizer, params, opt_state, xb, yb):
    def objective(p):
        per_example = model.cross_entropy(model.forward(p, xb), yb)
        return jnp.mean(per_example), jnp.sum(per_example)

    (_, total), grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, total


def make_naive_jax(work: Work) -> Runner:
    """A jitted per-step update called from the course's Python loop over epochs and batches.

    The batches are NumPy slices of the course's shuffles, sent to the device at every call, and the
    epoch's cost is summed on the device without a host sync per step, as a careful direct port
    would. Compilation is ahead of time, one executable per batch shape (64 and the remainder).
    """
    dtype = jnp.result_type(float)
    optimizer = optimizers.adam(work.learning_rate)
    params0 = model.init_params(list(work.layers_dims))
    state0 = optimizer.init(params0)
    X, Y = np.asarray(work.X, dtype), np.asarray(work.Y, dtype)
    m = X.shape[1]
    step = jax.jit(lambda p, s, xb, yb: _naive_step(optimizer, p, s, xb, yb))

    start = time.perf_counter()
    compiled = {
        size: step.lower(params0, state0, X[:, :size], Y[:, :size]).compile()
        for size in set(data.batch_sizes(m, work.mini_batch_size))
    }
    compile_seconds = time.perf_counter() - start

    def run() -> np.ndarray:
        params, state = params0, state0
        rng = np.random.RandomState()
        epoch_costs = []
        for epoch in range(work.num_epochs):
            batches = course_numpy.mini_batches(
                X, Y, work.mini_batch_size, rng, course_numpy.FIRST_SHUFFLE_SEED + epoch
            )
            cost_total = 0.0
            for xb, yb in batches:
                params, state, total = compiled[xb.shape[1]](params, state, xb, yb)
                cost_total = cost_total + total
            epoch_costs.append(cost_total / m)
        jax.block_until_ready(params)
        return np.asarray(jnp.stack(epoch_costs))

    return Runner("naive JAX (jit per step)", jax_dtype_name(), compile_seconds, run)


# ---------------------------------------------------------------------------------------------
# 3 and 4. The fused fit, with the hand-rolled Adam and with the Optax twin
# ---------------------------------------------------------------------------------------------


FUSED_OPTIMIZERS = {
    "hand-rolled": optimizers.adam,
    "optax": optax_equivalents.adam,
}


def make_fused(work: Work, flavour: str = "hand-rolled") -> Runner:
    """``train.fit`` in course mode; the first call (compile plus one run) is the warm-up.

    Compile time is what ``fit`` reports from JAX's compilation events (tracing, lowering and
    backend compilation) on that first call. Later calls reuse the compiled program and the cached
    course shuffles, as a second run in a session does.
    """
    optimizer = FUSED_OPTIMIZERS[flavour](work.learning_rate)

    def run() -> np.ndarray:
        result = train.fit(
            work.X, work.Y, list(work.layers_dims), optimizer,
            num_epochs=work.num_epochs, mini_batch_size=work.mini_batch_size,
        )  # fmt: skip
        return result.costs

    first = train.fit(
        work.X, work.Y, list(work.layers_dims), optimizer,
        num_epochs=work.num_epochs, mini_batch_size=work.mini_batch_size,
    )  # fmt: skip
    return Runner(f"fused fit, {flavour} Adam", jax_dtype_name(), first.compile_seconds, run)


def host_shuffle_seconds(work: Work) -> float:
    """Seconds to draw the course's shuffles of a whole run on the host, as ``fit`` does once.

    ``fit`` caches them, so the timed runs of the fused contenders do not pay this; a first run does.
    """
    m = work.X.shape[1]
    start = time.perf_counter()
    for first in range(0, work.num_epochs, train.DEFAULT_CHUNK_EPOCHS):
        n = min(train.DEFAULT_CHUNK_EPOCHS, work.num_epochs - first)
        block = np.empty((n, m), np.int32)
        rng = np.random.RandomState()
        for i in range(n):
            rng.seed(data.COURSE_SHUFFLE_SEED + first + i)
            block[i] = rng.permutation(m)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# 5. PyTorch eager
# ---------------------------------------------------------------------------------------------


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_device(device: str) -> str:
    """PyTorch's device for ``--device``: CUDA on a GPU run if this torch build has it, else CPU."""
    import torch

    return "cuda" if device == "gpu" and torch.cuda.is_available() else "cpu"


def make_torch(work: Work, dtype: str, device: str = "cpu") -> Runner:
    """PyTorch eager with ``torch.optim.Adam`` (eps outside the root, like the course's Adam).

    ``device`` is ``"cpu"`` or ``"cuda"``; the shuffles come from NumPy as in the course. PyTorch
    runs on one CPU thread: its tensors here are far below the size where it splits work between
    threads, and idle worker threads spinning on a shared machine only add noise.
    """
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)

    torch_dtype = getattr(torch, dtype)
    X = torch.as_tensor(np.asarray(work.X), dtype=torch_dtype, device=device)
    Y = torch.as_tensor(np.asarray(work.Y), dtype=torch_dtype, device=device)
    m = X.shape[1]
    init = course_numpy.init_params(list(work.layers_dims))
    L = len(init) // 2

    def run() -> np.ndarray:
        params = {
            key: torch.tensor(value, dtype=torch_dtype, device=device, requires_grad=True)
            for key, value in init.items()
        }
        opt = torch.optim.Adam(
            list(params.values()), lr=work.learning_rate, betas=(0.9, 0.999), eps=1e-8
        )
        rng = np.random.RandomState()
        epoch_costs = []
        for epoch in range(work.num_epochs):
            rng.seed(course_numpy.FIRST_SHUFFLE_SEED + epoch)
            order = torch.as_tensor(rng.permutation(m), device=device)
            xs, ys = X[:, order], Y[:, order]
            cost_total = torch.zeros((), dtype=torch_dtype, device=device)
            for start in range(0, m, work.mini_batch_size):
                xb = xs[:, start : start + work.mini_batch_size]
                yb = ys[:, start : start + work.mini_batch_size]
                a = xb
                for l in range(1, L):
                    a = torch.relu(params[f"W{l}"] @ a + params[f"b{l}"])
                logits = params[f"W{L}"] @ a + params[f"b{L}"]
                per_example = F.binary_cross_entropy_with_logits(logits, yb, reduction="none")
                opt.zero_grad(set_to_none=True)
                per_example.mean().backward()
                opt.step()
                cost_total += per_example.detach().sum()
            epoch_costs.append(cost_total / m)
        return torch.stack(epoch_costs).cpu().numpy()

    return Runner("pytorch eager, torch.optim.Adam", dtype, None, run, device=device)


# ---------------------------------------------------------------------------------------------
# Sweep throughput: the fused chunk vmapped over optimizer configurations
# ---------------------------------------------------------------------------------------------


def sweep_learning_rates(learning_rate: float, n_configs: int) -> np.ndarray:
    """``n_configs`` rates spread geometrically over a decade each side; the first is the base."""
    rates = learning_rate * np.logspace(-1, 1, n_configs)
    rates[0] = learning_rate
    return rates


def make_sweep(work: Work, n_configs: int) -> Runner:
    """``n_configs`` Adam runs differing in learning rate, trained as one vmapped program.

    Uses :func:`jaxopt_lab.sweep.sweep` (JAX-seeded shuffles, seed 0). The first call is the
    warm-up; its compile time is read from ``train.compile_clock``. ``run()`` returns the final
    cost of every configuration.
    """
    from jaxopt_lab import sweep

    rates = [float(rate) for rate in sweep_learning_rates(work.learning_rate, n_configs)]

    def run() -> np.ndarray:
        rows = sweep.sweep(
            work.X, work.Y, list(work.layers_dims), "adam", {"learning_rate": rates},
            num_epochs=work.num_epochs, mini_batch_size=work.mini_batch_size,
        )  # fmt: skip
        return np.asarray([row["final_cost"] for row in rows])

    clock = train.compile_clock.seconds
    run()
    name = f"sweep.sweep, {n_configs} configs"
    return Runner(name, jax_dtype_name(), train.compile_clock.seconds - clock, run)
