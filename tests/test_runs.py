"""The lesson's named runs: RunConfig's optimizers and schedules, the seven course runs, sweeps."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxopt_lab import optimizers, runs, train


def test_rmsprop_takes_beta_as_decay_and_epsilon_as_eps():
    config = runs.RunConfig("rmsprop", 0.01, beta=0.8, epsilon=1e-6)
    expected = optimizers.rmsprop(0.01, decay=0.8, eps=1e-6)
    assert jax.tree.leaves(config.make_optimizer(300)) == jax.tree.leaves(expected)


def test_the_seven_course_runs_compile_two_programs():
    statics = {
        train.split_optimizer(config.make_optimizer(300, shared_structure=True))[1]
        for _, config in runs.COURSE_RUNS
    }
    assert len(statics) == 2


@pytest.mark.parametrize(("label", "config"), runs.COURSE_RUNS)
def test_shared_structure_schedules_equal_the_course_rates(x64, label, config):
    steps = np.arange(5000 * 5)
    shared_lr = config.learning_rate_schedule(300, shared_structure=True)
    plain_lr = config.learning_rate_schedule(300)
    expected = np.asarray(plain_lr(steps)) if callable(plain_lr) else np.full(steps.size, plain_lr)
    np.testing.assert_array_equal(np.asarray(shared_lr(steps)), expected, err_msg=label)
    assert np.asarray(shared_lr(steps)).dtype == np.float64


def test_learning_rate_after_follows_the_course_formulas():
    inverse = runs.RunConfig("gd", 0.1, decay="inverse-time")
    assert "%f" % inverse.learning_rate_after(1000) == "0.000100"
    fixed = runs.RunConfig("adam", 0.01, decay="fixed-interval")
    assert ["%f" % fixed.learning_rate_after(e) for e in (0, 1000, 2000)] == [
        "0.010000", "0.005000", "0.003333",
    ]  # fmt: skip
    assert runs.RunConfig().learning_rate_after(3000) == 0.0007


def test_gd_as_momentum_with_beta_0_is_bitwise_gd():
    config = runs.RunConfig("gd", 0.1, decay="inverse-time")
    plain, shared = config.make_optimizer(300), config.make_optimizer(300, shared_structure=True)
    grads = np.random.default_rng(0).normal(size=(40, 3, 2)).astype(np.float32)

    @jax.jit
    def descend(opt, params):
        state = opt.init(params)
        for g in grads:
            updates, state = opt.update(g, state, params)
            params = params + updates
        return params

    start = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(descend(plain, start), descend(shared, start))


def test_sweep_grid_keeps_the_optimizers_own_axes_and_decay_only_when_asked():
    values = {
        "learning_rate": [0.1, 0.01, 0.1], "beta": [0.8], "beta1": [0.9], "beta2": [0.99],
        "epsilon": [1e-8], "decay": ["none"], "decay_rate": [1.0],
    }  # fmt: skip
    assert runs.sweep_grid("momentum", values) == {"learning_rate": [0.1, 0.01], "beta": [0.8]}
    with_decay = runs.sweep_grid("gd", {**values, "decay": ["none", "inverse-time"]})
    assert with_decay == {
        "learning_rate": [0.1, 0.01], "decay": ["none", "inverse-time"], "decay_rate": [1.0],
    }  # fmt: skip


def test_sweep_factory_builds_the_train_commands_optimizer():
    base = runs.RunConfig("adam", epochs=10)
    made = runs.sweep_factory(base, 300)(learning_rate=0.01, beta1=0.8)
    expected = runs.RunConfig("adam", 0.01, epochs=10, beta1=0.8).make_optimizer(
        300, shared_structure=True
    )
    assert train.split_optimizer(made)[1] == train.split_optimizer(expected)[1]
    for a, b in zip(jax.tree.leaves(made), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
