"""The course's decay rules and the per-epoch -> per-step schedule adapters (jaxopt_lab.schedules)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import schedules

EPOCHS = np.arange(0, 5001)


def numpy_update_lr(lr0, epoch, rate):
    return lr0 / (1.0 + rate * np.asarray(epoch, np.float64))


def numpy_schedule_lr_decay(lr0, epoch, rate, interval):
    return lr0 / (1.0 + rate * np.floor(np.asarray(epoch) / interval))


def numpy_per_step(epoch_rule, steps_per_epoch, steps, lag):
    """Reference adapter: the epoch of each step, shifted back one epoch (not below 0) with lag."""
    epochs = np.asarray(steps) // steps_per_epoch
    if lag:
        epochs = np.maximum(epochs - 1, 0)
    return epoch_rule(epochs)


@pytest.mark.parametrize("lr0, rate", [(0.1, 1.0), (0.01, 0.5), (1.0, 0.0)])
def test_update_lr_is_inverse_time_decay(lr0, rate):
    np.testing.assert_allclose(
        schedules.update_lr(lr0, EPOCHS, rate), numpy_update_lr(lr0, EPOCHS, rate), rtol=1e-15
    )
    assert schedules.update_lr(lr0, 0, rate) == lr0
    assert schedules.update_lr(0.1, 1000, 1) == pytest.approx(0.1 / 1001, rel=1e-15)


# epoch -> completed intervals of 1000 epochs, read off the definition of the staircase
BOUNDARIES = {0: 0, 1: 0, 999: 0, 1000: 1, 1001: 1, 1999: 1, 2000: 2, 2001: 2, 4999: 4, 5000: 5}


@pytest.mark.parametrize("epoch, intervals", list(BOUNDARIES.items()))
def test_schedule_lr_decay_steps_at_interval_boundaries(epoch, intervals):
    assert schedules.schedule_lr_decay(0.1, epoch, 1, 1000) == pytest.approx(
        0.1 / (1 + intervals), rel=1e-15
    )
    assert schedules.schedule_lr_decay(0.1, epoch, 1) == schedules.schedule_lr_decay(
        0.1, epoch, 1, 1000
    ), "time_interval defaults to 1000"


@pytest.mark.parametrize("lr0, rate, interval", [(0.1, 1.0, 1000), (0.01, 2.0, 7), (0.5, 0.3, 1)])
def test_schedule_lr_decay_matches_numpy_over_many_epochs(lr0, rate, interval):
    np.testing.assert_allclose(
        schedules.schedule_lr_decay(lr0, EPOCHS, rate, interval),
        numpy_schedule_lr_decay(lr0, EPOCHS, rate, interval),
        rtol=1e-15,
    )


def test_decay_rules_are_traceable_under_jit(x64):
    epochs = jnp.asarray(EPOCHS)
    update_lr = jax.jit(schedules.update_lr)(0.1, epochs, 1.0)
    staircase = jax.jit(schedules.schedule_lr_decay)(0.1, epochs, 1.0, 1000)
    np.testing.assert_allclose(update_lr, numpy_update_lr(0.1, EPOCHS, 1.0), rtol=1e-15)
    np.testing.assert_allclose(
        staircase, numpy_schedule_lr_decay(0.1, EPOCHS, 1.0, 1000), rtol=1e-15
    )


def test_epoch_rules_equal_the_course_functions():
    inverse = schedules.inverse_time(0.1, 0.5)
    staircase = schedules.fixed_interval(0.1, 0.5, 100)
    for epoch in [0, 1, 99, 100, 101, 250, 4999]:
        assert float(inverse(epoch)) == pytest.approx(schedules.update_lr(0.1, epoch, 0.5))
        assert float(staircase(epoch)) == pytest.approx(
            schedules.schedule_lr_decay(0.1, epoch, 0.5, 100)
        )


# name -> (build the rule, its NumPy reference). Built inside the test: epoch_table converts its
# table to a JAX array, whose precision is fixed by the x64 setting at that moment.
RULES = {
    "inverse_time": (
        lambda: schedules.inverse_time(0.2, 0.05),
        lambda e: numpy_update_lr(0.2, e, 0.05),
    ),
    "fixed_interval": (
        lambda: schedules.fixed_interval(0.2, 1.0, 10),
        lambda e: numpy_schedule_lr_decay(0.2, e, 1.0, 10),
    ),
    "epoch_table": (
        lambda: schedules.epoch_table(np.linspace(1.0, 0.01, 200)),
        lambda e: np.linspace(1.0, 0.01, 200)[e],
    ),
}


@pytest.mark.parametrize("lag", [False, True], ids=["no_lag", "lag"])
@pytest.mark.parametrize("rule", list(RULES))
def test_per_step_matches_numpy_reimplementation(rule, lag, x64):
    build_rule, numpy_rule = RULES[rule]
    steps_per_epoch = 7
    steps = np.arange(200 * steps_per_epoch)
    schedule = schedules.per_step(build_rule(), steps_per_epoch, lag=lag)

    # As an optimizer calls it: one int32 step count at a time, inside jit.
    rates = jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32))

    np.testing.assert_allclose(
        rates, numpy_per_step(numpy_rule, steps_per_epoch, steps, lag), rtol=1e-15
    )


def test_lag_runs_epoch_zero_and_one_at_the_initial_rate():
    # The course recomputes the rate after each epoch: epoch 0 and 1 both train at rule(0).
    rule = schedules.inverse_time(1.0, 1.0)
    lagged = schedules.per_step(rule, 5, lag=True)
    unlagged = schedules.per_step(rule, 5, lag=False)
    assert [float(lagged(s)) for s in (0, 4, 5, 9)] == [1.0] * 4
    assert float(lagged(10)) == pytest.approx(0.5)
    assert float(unlagged(5)) == pytest.approx(0.5)
    for step in range(5, 60):
        assert float(lagged(step + 5)) == pytest.approx(float(unlagged(step)), rel=1e-6)


def test_epoch_table_reads_the_rate_of_each_epoch():
    table = np.array([0.3, 0.2, 0.1, 0.05])
    rule = schedules.epoch_table(table)
    np.testing.assert_allclose([float(rule(e)) for e in range(4)], table, rtol=1e-7)
    np.testing.assert_allclose(jax.vmap(rule)(jnp.arange(4)), table, rtol=1e-7)


def test_schedule_numbers_are_traced_not_baked_in():
    traces = []

    @jax.jit
    def rate(schedule, step):
        traces.append(1)  # only runs while tracing
        return schedule(step)

    first = rate(schedules.per_step(schedules.fixed_interval(0.1, 1.0, 10), 5, lag=True), 120)
    second = rate(schedules.per_step(schedules.fixed_interval(0.4, 3.0, 10), 5, lag=True), 120)
    tables = [
        rate(schedules.per_step(schedules.epoch_table(np.full(30, v)), 5), 120) for v in (0.1, 0.7)
    ]

    assert len(traces) == 2  # one program for the staircase, one for the table
    # step 120 is epoch 24, lagged to 23: two completed intervals of 10 epochs
    assert float(first) == pytest.approx(0.1 / (1 + 1.0 * 2))
    assert float(second) == pytest.approx(0.4 / (1 + 3.0 * 2))
    assert [float(t) for t in tables] == pytest.approx([0.1, 0.7])


def test_float64_rates_equal_python_arithmetic(x64):
    # Course mode under x64 must train at exactly the rates the course computes in Python floats.
    schedule = schedules.per_step(schedules.fixed_interval(0.1, 1, 1000), 5, lag=True)
    steps = np.arange(0, 5000 * 5, 37)
    rates = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32)))
    expected = [0.1 / (1 + 1 * (max(s // 5 - 1, 0) // 1000)) for s in steps]
    assert rates.dtype == np.float64
    np.testing.assert_array_equal(rates, expected)
