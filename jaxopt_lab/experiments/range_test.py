"""The learning-rate range test (fastai's ``lr_find``) for every seed at once, its three suggestion
rules, and how far each rule's suggestion lands from the truth: the full runs of :mod:`lr_find`.

One short run per optimizer and seed, its rate rising exponentially at every mini-batch step,
records the mini-batch losses; their smoothed curve gives each rule's suggestion; the full-run
accuracy curve says what that suggestion is worth.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_lab import data, engine, model, stats, train
from jaxopt_lab.config import LAYERS_DIMS, RunConfig
from jaxopt_lab.experiments.compare import structures
from jaxopt_lab.settings import BY_NAME, InvalidValue, check

SMOOTHING = 0.98  # beta of the smoothed loss's moving average (fastai's)
DIVERGE_FACTOR = 4.0  # k: diverged once the smoothed loss is above k times its minimum so far
SKIP = 0.1  # the rules skip the first tenth of the steps: a smoothed loss of a few batches
RULES = ("valley", "steep", "minimum/10")


class RangeTest(NamedTuple):
    """What :func:`range_test` gives back. Arrays are float64, shaped (optimizers, seeds, ...)."""

    names: list[str]  # the optimizers, in the order given
    seeds: list[int]
    rates: np.ndarray  # shape=(steps,): the rate of each step
    losses: np.ndarray  # shape=(optimizers, seeds, steps): each step's mini-batch loss; NaN masked
    smoothed: np.ndarray  # same shape: the bias-corrected moving average; NaN masked
    diverged_at: np.ndarray  # shape=(optimizers, seeds), int: the step it diverged at, -1: never
    suggestions: dict[str, np.ndarray]  # rule -> shape (optimizers, seeds); NaN: none
    seconds: float  # the range test's own wall time: compiling, training and the rules


def rising_rates(lr_start: float, lr_end: float, steps: int) -> np.ndarray:
    """The rate of each step: ``lr_start * (lr_end / lr_start) ** (i / (steps - 1))`` for step
    ``i = 0 .. steps - 1`` (float64): ``lr_start`` at the first, ``lr_end`` at the last."""
    i = np.arange(steps, dtype=np.float64)
    return lr_start * (lr_end / lr_start) ** (i / (steps - 1))


def range_test(
    names: Sequence[str],
    *,
    seeds: Sequence[int],
    steps: int = BY_NAME["range_steps"].default,
    lr_start: float = BY_NAME["lr_from"].default,
    lr_end: float = BY_NAME["lr_to"].default,
    mini_batch_size: int = 64,
) -> RangeTest:
    """fastai's learning-rate range test, for every optimizer and seed.

    Each run starts where ``fit(seed=s)`` starts (the seed's parameters and its epochs' orders)
    and takes ``steps`` mini-batch steps, step ``i`` at rate :func:`rising_rates` ``[i]``, through
    as many epochs as that takes. Each step records the loss of its mini-batch before its update
    (mean cross-entropy). Then, per run (:func:`smooth`, :func:`divergence`, :func:`suggest`):

    - the smoothed loss: ``a_i = b a_{i-1} + (1 - b) loss_i`` from ``a_{-1} = 0``, reported as
      ``a_i / (1 - b^(i+1))`` (bias-corrected), with ``b =`` :data:`SMOOTHING`;
    - the step it diverged at: the first whose smoothed loss is not finite or above
      ``k =`` :data:`DIVERGE_FACTOR` times its minimum over the steps so far; that step and every
      later one are masked (NaN), as if the test had stopped there;
    - each rule's suggestion (:data:`RULES`, defined at :func:`suggest`).

    Every seed and every optimizer of one program structure (GD and momentum share one) run in
    one compiled ``lax.scan``, vmapped over both; the structures compile in two threads. The
    rate is a run-time array: each optimizer runs at learning rate 1 (its step ``-d``, ``d`` the
    direction its rule makes, which none of the four lets depend on the rate) and the step is
    scaled by the step's rate, the same numbers as a schedule of those rates gives.

    Args:
      names: optimizers, names in ``optimizers.OPTIMIZERS`` (duplicates ignored).
      seeds: distinct JAX seeds.
      steps: mini-batch steps of each run, at least 2.
      lr_start, lr_end: the first and last rate, ``lr_start < lr_end``.
      mini_batch_size: examples per step; the other settings are :class:`RunConfig`'s defaults.

    Raises:
      InvalidValue: an unknown optimizer, a bad rate, step count or seed, or more losses than
        the memory budget holds.
    """
    start = time.perf_counter()
    names, seeds = check_range_test(names, seeds, steps, lr_start, lr_end, mini_batch_size)
    rates = rising_rates(lr_start, lr_end, steps)
    X, Y = data.load_moons()
    mini_batch_size = min(mini_batch_size, X.shape[1])  # one batch of every column, unpadded
    optimizers = [RunConfig(n, 1.0, mini_batch_size=mini_batch_size)
                  .make_optimizer(X.shape[1], shared_structure=True) for n in names]  # fmt: skip
    XY = train._data(X, Y)

    def run_structure(group: list[int]) -> np.ndarray:
        numbers, structure = train.stack_optimizers([optimizers[i] for i in group])
        program = range_program(structure, mini_batch_size, tuple(LAYERS_DIMS), XY.dtype)
        per_epoch = len(data.batch_sizes(X.shape[1], mini_batch_size))
        table = _rate_table(rates, per_epoch, XY.dtype)
        losses = program(numbers, np.asarray(seeds, np.uint32), XY, table)
        return np.asarray(losses, np.float64)[..., :steps]  # (seeds, group, steps)

    groups = structures(optimizers)
    losses = np.empty((len(names), len(seeds), steps))
    for group, found in zip(groups, engine.in_threads(run_structure, groups), strict=True):
        losses[group] = found.transpose(1, 0, 2)
    smoothed = smooth(losses)
    diverged_at = divergence(smoothed)
    masked = np.arange(steps) >= np.where(diverged_at < 0, steps, diverged_at)[..., None]
    losses[masked], smoothed[masked] = np.nan, np.nan
    suggestions = suggest(rates, smoothed)
    return RangeTest(names, seeds.tolist(), rates, losses, smoothed, diverged_at, suggestions,
                     time.perf_counter() - start)  # fmt: skip


def check_range_test(names, seeds, steps, lr_start, lr_end, mini_batch_size=64):
    """:func:`range_test`'s arguments checked (before any training): the names without repeats
    and the seeds as an array.

    Raises:
      InvalidValue: naming the argument.
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, np.ndarray)):
        raise InvalidValue("optimizer", f"must be a list of optimizer names, got {names!r}")
    names = list(dict.fromkeys(names))
    if not names:
        raise InvalidValue("optimizer", "needs at least one value")
    for name in names:
        RunConfig(name, mini_batch_size=mini_batch_size).check()
    check("range_steps", steps, name="steps")
    if steps < 2:  # the rate rises from the first step to the last
        raise InvalidValue("steps", f"must be at least 2, got {steps!r}", setting="range_steps")
    check("lr_from", lr_start, name="lr_start")
    check("lr_to", lr_end, name="lr_end")
    if not lr_start < lr_end:
        raise InvalidValue("lr_start", f"must be below lr_end ({lr_end!r}), got {lr_start!r}",
                           setting="lr_from")  # fmt: skip
    seeds = engine.check_seeds(seeds, distinct=True)
    # the host's float64 losses, smoothed losses and their mask, and the program's own
    need = len(names) * len(seeds) * steps * 32
    if need > engine.budget_bytes():
        raise InvalidValue(
            "steps", f"{steps} with {{seed_count}} {len(seeds)} and {len(names)} optimizers "
            f"needs {need / 2**30:.1f} GiB, more than the memory budget", setting="range_steps",
            mentions=("seed_count",),
        )  # fmt: skip
    return names, seeds


def _rate_table(rates: np.ndarray, per_epoch: int, dtype) -> np.ndarray:
    """The rates as (epochs, steps per epoch), the last epoch's tail padded with the last rate
    (those steps run, but their losses are dropped)."""
    epochs = -(-len(rates) // per_epoch)
    padded = np.full(epochs * per_epoch, rates[-1])
    padded[: len(rates)] = rates
    return padded.reshape(epochs, per_epoch).astype(dtype)


@functools.cache
def range_program(structure: train.Structure, mini_batch_size: int, layers: tuple, dtype):
    """The jitted range test of one optimizer structure: ``(numbers, seeds, XY, rates) ->
    losses``, numbers stacked over optimizers (:func:`train.stack_optimizers`), ``rates`` of
    shape (epochs, steps per epoch), losses of shape (seeds, optimizers, epochs * steps per
    epoch), all in the float ``dtype``. Cached: a second range test of the same structure,
    precision and shapes compiles nothing.

    An epoch's last, smaller mini-batch is padded to the full size and its padding masked out of
    the mean, so that one step body serves every step (it compiles faster than a second copy).
    """

    def one_run(numbers, params, key, XY, rates):
        optimizer = train.join_optimizer(numbers, structure)
        view, to_params = ravel_pytree(params)
        m, per_epoch = XY.shape[1], rates.shape[1]
        real = (jnp.arange(per_epoch * mini_batch_size) < m).reshape(per_epoch, mini_batch_size)

        def step(carry, batch_and_rate):
            (view, state), (batch, real, rate) = carry, batch_and_rate

            def batch_loss(view):
                losses = model.cross_entropy(model.forward(to_params(view), batch[:-1]), batch[-1:])
                return jnp.sum(jnp.where(real, losses, 0)) / jnp.sum(real)

            loss, grads = jax.value_and_grad(batch_loss)(view)
            updates, state = optimizer.update(grads, state, view)  # -d: learning rate 1
            return (view + rate * updates, state), loss

        def epoch(carry, epoch_and_rates):
            e, rates_e = epoch_and_rates
            order = jnp.zeros(real.size, jnp.int32).at[:m].set(data.epoch_permutation(key, e, m))
            batches = XY[:, order].reshape(XY.shape[0], per_epoch, mini_batch_size)
            return jax.lax.scan(step, carry, (batches.transpose(1, 0, 2), real, rates_e))

        carry = (view, optimizer.init(view))
        _, losses = jax.lax.scan(epoch, carry, (jnp.arange(rates.shape[0]), rates))
        return losses.reshape(-1)

    def range_test_program(numbers, seeds, XY, rates):
        params = jax.vmap(lambda s: model.seeded_params(s, layers, dtype))(seeds)
        keys = jax.vmap(train.seeded_shuffle_key)(seeds)
        # The inner vmap shares the seed's orders across its optimizers: drawn once a seed.
        per_optimizer = jax.vmap(one_run, in_axes=(0, None, None, None, None))
        return jax.vmap(per_optimizer, in_axes=(None, 0, 0, None, None))(
            numbers, params, keys, XY, rates
        )

    return jax.jit(range_test_program, compiler_options=train.compiler_options())


# ---------------------------------------------------------------------------------------------
# The smoothed loss, divergence, and the rules
# ---------------------------------------------------------------------------------------------


def smooth(losses: np.ndarray, beta: float = SMOOTHING) -> np.ndarray:
    """The bias-corrected moving average along the last axis: ``a_i = beta a_{i-1} + (1 - beta)
    x_i`` (``a_{-1} = 0``) over ``1 - beta^(i+1)``. A non-finite loss makes every later value
    non-finite (the run has diverged there)."""
    from scipy import signal  # imported here: the rest of the module needs no SciPy

    x = np.asarray(losses, np.float64)
    average = signal.lfilter([1 - beta], [1, -beta], x, axis=-1)
    return average / (1 - beta ** np.arange(1, x.shape[-1] + 1))


def divergence(smoothed: np.ndarray, k: float = DIVERGE_FACTOR) -> np.ndarray:
    """The first step along the last axis whose smoothed loss is not finite or above ``k``
    times the smallest smoothed loss up to it; -1 where there is none."""
    with np.errstate(invalid="ignore"):
        lowest = np.fmin.accumulate(smoothed, axis=-1)  # fmin: a NaN is not a minimum
        bad = ~np.isfinite(smoothed) | (smoothed > k * lowest)
    return np.where(bad.any(axis=-1), np.argmax(bad, axis=-1), -1)


def suggest(rates: np.ndarray, smoothed: np.ndarray, skip: float = SKIP) -> dict[str, np.ndarray]:
    """Each rule's suggested rate for every run (NaN: the rule finds none).

    The rules read the smoothed loss ``s`` (NaN where masked) of the steps ``i >= floor(skip *
    steps)`` that are not masked, with ``r_i`` the rate of step ``i``; ``s_{i+1} - s_i`` is the
    fall between two such steps (the rates are evenly spaced in log rate, so it is the slope
    against log rate times a constant):

    - ``minimum/10``: ``r_j / 10`` at the smallest ``s_j``, the first if several.
    - ``steep``: ``sqrt(r_i r_{i+1})`` (the middle in log rate) of the most negative fall
      ``s_{i+1} - s_i`` (the first if several); none if ``s`` never falls.
    - ``valley``: the longest stretch of steps ``a .. b`` (``b > a``) along which ``s`` falls at
      every step (the earliest if several); the rate of step ``a + floor(2 (b - a) / 3)``, two
      thirds of the way down it. None if ``s`` never falls.
    """
    s = np.asarray(smoothed, np.float64)
    steps = s.shape[-1]
    s = np.where(np.arange(steps) >= int(skip * steps), s, np.nan)
    found = ~np.isnan(s)
    lowest = np.argmin(np.where(found, s, np.inf), axis=-1)
    minimum = np.where(found.any(axis=-1), rates[lowest] / 10, np.nan)
    fall = np.diff(s, axis=-1)  # NaN where either step is masked
    falls = fall < 0
    steepest = np.argmin(np.where(falls, fall, np.inf), axis=-1)
    middles = np.sqrt(rates[:-1] * rates[1:])
    steep = np.where(falls.any(axis=-1), middles[steepest], np.nan)
    # The length of the run of falls ending at each fall; the longest one's end.
    at = np.arange(steps - 1)
    broken = np.maximum.accumulate(np.where(falls, -1, at), axis=-1)
    run = at - broken
    longest = np.max(run, axis=-1, initial=0)
    a = np.argmax(run, axis=-1) - longest + 1
    pick = np.clip(a + (2 * longest) // 3, 0, steps - 1)
    valley = np.where(longest > 0, rates[pick], np.nan)
    return {"valley": valley, "steep": steep, "minimum/10": minimum}


# ---------------------------------------------------------------------------------------------
# Against the truth: the full runs at fixed rates
# ---------------------------------------------------------------------------------------------


def against_truth(test: RangeTest, curves: Mapping[str, dict], rows: Sequence[dict]) -> dict:
    """Each rule's suggestions over the seeds, read on the full-run accuracy curve.

    Per optimizer and rule: the suggested rates' median and 10% and 90% quantiles over the seeds
    that got one (``none``: the seeds that did not); the learning rate of the curve nearest the
    median in log rate (``at``; None when the median lies outside the curve's rates); the full
    runs' median accuracy over the seeds there (a diverged run counts below every finished one:
    None when half of them or more diverged); ``loss``, the curve's best median accuracy
    (:func:`stats.lr_curves`) minus that; and ``seed_loss``, the median over the seeds of the
    best minus each seed's own full run at the curve's rate nearest its own suggestion (a
    diverged run is the largest loss; seeds without a suggestion or outside the curve left out).

    Args:
      test: :func:`range_test`'s result, for the seeds of ``rows``.
      curves: optimizer -> :func:`stats.lr_curves`'s summary of ``rows``.
      rows: the full runs (:func:`lr_find.lr_curve`'s rows).

    Returns:
      optimizer -> ``{"best": {"learning_rate", "accuracy"} or None, "rules": {rule: {...}}}``.
    """
    found = {}
    for i, name in enumerate(test.names):
        curve = curves[name]
        grid = np.asarray(curve["learning_rate"], np.float64)
        accuracy = _accuracy_matrix(rows, name, grid, test.seeds)
        best = curve["best"]
        rules = {rule: _read_on_curve(test.suggestions[rule][i], grid, accuracy, best)
                 for rule in RULES}  # fmt: skip
        found[name] = {
            "best": None if best is None else {k: best[k] for k in ("learning_rate", "accuracy")},
            "rules": rules,
        }
    return found


def _accuracy_matrix(rows, name, grid, seeds) -> np.ndarray:
    """Accuracy of ``name``'s full runs, shape (rates, seeds); NaN where a run diverged."""
    mine = [row for row in rows if row["optimizer"] == name]
    at = np.searchsorted(grid, [row["learning_rate"] for row in mine])
    seed_at = {seed: j for j, seed in enumerate(seeds)}
    matrix = np.full((grid.size, len(seeds)), np.nan)
    accuracy = [np.nan if row["accuracy"] is None else row["accuracy"] for row in mine]
    matrix[at, [seed_at[row["seed"]] for row in mine]] = accuracy
    return matrix


def _nearest(rates: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The index of the grid rate nearest each rate in log rate, and whether the rate lies within
    the grid's span (NaN rates are outside)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        distance = np.abs(np.log(np.asarray(rates)[..., None]) - np.log(grid))
        inside = (rates >= grid[0] * (1 - 1e-9)) & (rates <= grid[-1] * (1 + 1e-9))
    return np.argmin(np.where(np.isnan(distance), np.inf, distance), axis=-1), inside


def _median_or_none(values: np.ndarray) -> float | None:
    """The median, None when it is not a finite number (NaN and infinities rank as they are)."""
    if values.size == 0:
        return None
    median = float(np.median(values))
    return median if np.isfinite(median) else None


def _read_on_curve(suggested: np.ndarray, grid, accuracy, best) -> dict:
    some = suggested[~np.isnan(suggested)]
    result = {"none": int(np.sum(np.isnan(suggested))), "median": None, "p10": None, "p90": None,
              "at": None, "accuracy": None, "diverged": None, "loss": None, "seed_loss": None}  # fmt: skip
    if some.size == 0:
        return result
    median = float(np.median(some))
    p10, p90 = np.quantile(some, (0.1, 0.9)).tolist()
    result.update(median=median, p10=p10, p90=p90)
    index, inside = _nearest(np.array([median]), grid)
    if inside[0]:
        there = accuracy[index[0]]
        result.update(at=float(grid[index[0]]), diverged=int(np.sum(np.isnan(there))),
                      accuracy=_median_or_none(np.where(np.isnan(there), -np.inf, there)))  # fmt: skip
    if best is None:
        return result
    if result["accuracy"] is not None:
        result["loss"] = best["accuracy"] - result["accuracy"]
    own, inside = _nearest(suggested, grid)
    seeds = np.flatnonzero(inside)
    losses = best["accuracy"] - accuracy[own[seeds], seeds]
    result["seed_loss"] = _median_or_none(np.where(np.isnan(losses), np.inf, losses))
    return result


def range_test_table(test: RangeTest, truth: Mapping[str, dict]) -> str:
    """Per optimizer and rule: the suggestion over the seeds, the full runs' accuracy there
    against the best, and the loss (:func:`against_truth`)."""
    lines = [
        "| optimizer | rule | suggested rate (median) | 10% to 90% of seeds | full runs' median "
        "accuracy there | best median accuracy | accuracy loss | each seed at its own: median "
        "loss |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    seeds = len(test.seeds)
    for name, found in truth.items():
        best = found["best"]
        best_text = (
            "-" if best is None else f"{best['accuracy']:.3f} at {best['learning_rate']:.3g}"
        )
        for rule, r in found["rules"].items():
            if r["median"] is None:
                lines.append(
                    f"| {name} | {rule} | none in {seeds} seeds | - | - | {best_text} | - | - |"
                )
                continue
            rate = f"{r['median']:.3g}" + (
                f" ({seeds - r['none']} of {seeds} seeds)" if r["none"] else ""
            )
            if r["at"] is None:
                there = "outside the curve"
            elif r["accuracy"] is None:
                there = f"diverged ({r['diverged']} of {seeds}) at {r['at']:.3g}"
            else:
                there = f"{r['accuracy']:.3f} at {r['at']:.3g}"
            loss = "-" if r["loss"] is None else f"{r['loss']:.3f}"
            seed_loss = "-" if r["seed_loss"] is None else f"{r['seed_loss']:.3f}"
            lines.append(f"| {name} | {rule} | {rate} | {r['p10']:.3g} to {r['p90']:.3g} | {there} "
                         f"| {best_text} | {loss} | {seed_loss} |")  # fmt: skip
    return "\n".join(lines)


def range_test_summary(test: RangeTest, truth: Mapping[str, dict]) -> dict:
    """The range test as strict JSON: its settings and definitions, the rates, per optimizer the
    step each seed diverged at (None: never), each rule's suggestion per seed (None: none), the
    smoothed loss's 10%, 50% and 90% quantiles over the seeds per step, and :func:`against_truth`."""

    def numbers(values) -> list:
        return stats.json_numbers(np.asarray(values, np.float64))

    optimizers = {}
    for i, name in enumerate(test.names):
        band = stats.quantile_curves(test.smoothed[i])
        optimizers[name] = {
            "diverged_at": [None if d < 0 else int(d) for d in test.diverged_at[i]],
            "suggestions": {rule: numbers(test.suggestions[rule][i]) for rule in RULES},
            "smoothed": dict(zip(("p10", "p50", "p90"), stats.json_numbers(band), strict=True)),
            **truth[name],
        }
    return {
        "steps": len(test.rates), "lr_start": float(test.rates[0]), "lr_end": float(test.rates[-1]),
        "smoothing": SMOOTHING, "diverge_factor": DIVERGE_FACTOR, "skip": SKIP,
        "seconds": test.seconds, "seeds": test.seeds, "rates": numbers(test.rates),
        "optimizers": optimizers,
    }  # fmt: skip
