"""The hand-rolled optimizers (jaxopt_lab.optimizers) against their Optax twins
(jaxopt_lab.optax_equivalents) and against closed forms of the update rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_lab import optax_equivalents, optimizers, schedules

NAMES = ["gd", "momentum", "rmsprop", "adam"]
RTOL = {np.dtype(np.float32): 3e-5, np.dtype(np.float64): 1e-10}
STEPS = 300

# Away from the defaults, so an argument that is swapped or ignored shows up.
HYPERPARAMS = {
    "gd": {},
    "momentum": {"beta": 0.8},
    "rmsprop": {"decay": 0.95, "eps": 1e-6},
    "adam": {"b1": 0.85, "b2": 0.99, "eps": 1e-7},
}

LEARNING_RATES = {
    "constant": 0.01,
    # The course's staircase decay with its one-epoch lag: 5 updates per epoch, halving after 10.
    "fixed_interval_lagged": schedules.per_step(
        schedules.fixed_interval(0.05, 1.0, 10), steps_per_epoch=5, lag=True
    ),
    "lambda": lambda count: 0.02 / (1.0 + 0.01 * count),
}


def assert_trees_close(actual, expected, rtol):
    """Leaf by leaf, relative to the leaf's largest magnitude: an entry passing through zero has
    no meaningful elementwise relative error."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.max(np.abs(e)))


def nested_tree(rng: np.random.Generator, dtype) -> dict:
    """Random params of nested dicts and tuples, scalars to rank-3 arrays."""

    def leaf(*shape):
        return jnp.asarray(rng.standard_normal(shape), dtype)

    return {
        "dense": {"w": leaf(3, 4), "b": leaf(4)},
        "pair": (leaf(), leaf(2, 1, 3)),
        "deep": {"x": ({"y": leaf(5)},)},
    }


def noise_like(rng: np.random.Generator, tree, steps: int):
    """One random gradient perturbation per step, stacked along a leading axis for ``lax.scan``."""
    return jax.tree.map(
        lambda p: jnp.asarray(rng.standard_normal((steps, *p.shape)), p.dtype), tree
    )


def run(opt: optax.GradientTransformation, params, noise, pull=1.0):
    """``len(noise)`` updates with gradient ``pull * p + noise`` (the loss ``pull/2 |p|^2`` plus a
    noise term), so with ``pull > 0`` each gradient depends on where the previous updates led."""

    def step(carry, noise_t):
        params, state = carry
        grads = jax.tree.map(lambda p, n: pull * p + n, params, noise_t)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), noise)
    return params


def run_both(name: str, learning_rate, params, noise, pull=1.0, **hyperparams):
    mine = optimizers.OPTIMIZERS[name](learning_rate, **hyperparams)
    twin = optax_equivalents.OPTIMIZERS[name](learning_rate, **hyperparams)
    return jax.jit(lambda p, n: (run(mine, p, n, pull), run(twin, p, n, pull)))(params, noise)


def test_the_twin_module_has_the_same_optimizers():
    assert list(optimizers.OPTIMIZERS) == NAMES
    assert list(optax_equivalents.OPTIMIZERS) == NAMES
    for name in NAMES:
        assert getattr(optimizers, name) is optimizers.OPTIMIZERS[name]
        assert getattr(optax_equivalents, name) is optax_equivalents.OPTIMIZERS[name]


@pytest.mark.parametrize("schedule", list(LEARNING_RATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], indirect=True)
@pytest.mark.parametrize("name", NAMES)
def test_hand_rolled_equals_optax_twin(name, dtype, schedule):
    rng = np.random.default_rng(0)
    params = nested_tree(rng, dtype)
    noise = noise_like(rng, params, STEPS)

    mine, twin = run_both(name, LEARNING_RATES[schedule], params, noise, **HYPERPARAMS[name])

    assert_trees_close(mine, twin, RTOL[dtype])
    for moved, start in zip(jax.tree.leaves(mine), jax.tree.leaves(params), strict=True):
        assert moved.dtype == dtype
        assert not np.allclose(moved, start), "300 updates left a parameter where it started"


# ---------------------------------------------------------------------------------------------
# Property tests: random pytrees and hyperparameters
# ---------------------------------------------------------------------------------------------

_shapes = st.lists(st.integers(1, 4), max_size=3).map(
    lambda dims: jax.ShapeDtypeStruct(tuple(dims), np.float64)
)
_tree_shapes = st.recursive(
    _shapes,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from("abcd"), children, min_size=1, max_size=3),
    ),
    max_leaves=6,
)
_unit = st.floats(0.0, 0.999)
_hyperparams = {
    "gd": st.fixed_dictionaries({}),
    "momentum": st.fixed_dictionaries({"beta": _unit}),
    "rmsprop": st.fixed_dictionaries({"decay": _unit, "eps": st.floats(1e-10, 1e-3)}),
    "adam": st.fixed_dictionaries({"b1": _unit, "b2": _unit, "eps": st.floats(1e-10, 1e-3)}),
}


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_twins_agree_on_random_trees_and_hyperparameters(name, data):
    shapes = data.draw(_tree_shapes, label="tree")
    learning_rate = data.draw(st.floats(1e-4, 1.0), label="learning_rate")
    hyperparams = data.draw(_hyperparams[name], label="hyperparams")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    with jax.enable_x64(True):
        params = jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape)), shapes)
        noise = noise_like(rng, params, 40)
        # Gradients that do not feed back on the params: with extreme draws (b2 = 0, lr = 1) a
        # feedback loop is ill-conditioned and would amplify last-bit rounding past 1e-10, which
        # says nothing about whether the two update rules are the same.
        mine, twin = run_both(name, learning_rate, params, noise, pull=0.0, **hyperparams)
        assert_trees_close(mine, twin, 1e-10)


# ---------------------------------------------------------------------------------------------
# Closed forms after jitted updates, for both modules
# ---------------------------------------------------------------------------------------------

MODULES = pytest.mark.parametrize(
    "module", [optimizers, optax_equivalents], ids=["hand_rolled", "optax_twin"]
)
G0 = np.array([0.5, -2.0, 3.0, -0.25])
G1 = np.array([1.5, 0.5, -1.0, -4.0])


def jitted_updates(opt: optax.GradientTransformation, *grads):
    """The updates of consecutive jitted ``opt.update`` calls, one per gradient."""
    update = jax.jit(opt.update)
    state = opt.init(jnp.zeros_like(grads[0]))
    out = []
    for g in grads:
        u, state = update(jnp.asarray(g), state)
        out.append(np.asarray(u))
    return out


@MODULES
def test_gd_steps_by_minus_lr_times_gradient(module, x64):
    u0, u1 = jitted_updates(module.gd(0.3), G0, G1)
    np.testing.assert_allclose(u0, -0.3 * G0, rtol=1e-15)
    np.testing.assert_allclose(u1, -0.3 * G1, rtol=1e-15)


@MODULES
def test_momentum_is_an_ema_of_the_gradients(module, x64):
    lr, b = 0.2, 0.7
    u0, u1 = jitted_updates(module.momentum(lr, beta=b), G0, G1)
    np.testing.assert_allclose(u0, -lr * (1 - b) * G0, rtol=1e-14)
    np.testing.assert_allclose(u1, -lr * (1 - b) * (G1 + b * G0), rtol=1e-14)


@MODULES
def test_rmsprop_divides_by_the_root_mean_square(module, x64):
    lr, d, eps = 0.01, 0.9, 1e-3
    u0, u1 = jitted_updates(module.rmsprop(lr, decay=d, eps=eps), G0, G1)
    s0 = (1 - d) * G0**2
    s1 = d * s0 + (1 - d) * G1**2
    np.testing.assert_allclose(u0, -lr * G0 / (np.sqrt(s0) + eps), rtol=1e-14)
    np.testing.assert_allclose(u1, -lr * G1 / (np.sqrt(s1) + eps), rtol=1e-14)


@MODULES
def test_adam_first_two_steps_are_bias_corrected(module, x64):
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-8
    u0, u1 = jitted_updates(module.adam(lr, b1=b1, b2=b2, eps=eps), G0, G1)
    # t = 1: the corrected moments are g and g^2, so the step is lr in the gradient's direction.
    np.testing.assert_allclose(u0, -lr * G0 / (np.abs(G0) + eps), rtol=1e-14)
    np.testing.assert_allclose(u0, -lr * np.sign(G0), rtol=1e-7)
    # t = 2: eps outside the square root.
    m = (1 - b1) * (G1 + b1 * G0) / (1 - b1**2)
    v = (1 - b2) * (G1**2 + b2 * G0**2) / (1 - b2**2)
    np.testing.assert_allclose(u1, -lr * m / (np.sqrt(v) + eps), rtol=1e-14)


@MODULES
def test_a_schedule_sees_step_zero_at_the_first_update(module, x64):
    u0, u1, u2 = jitted_updates(module.gd(lambda count: 0.1 * (count + 1)), G0, G0, G0)
    np.testing.assert_allclose(u0, -0.1 * G0, rtol=1e-14)
    np.testing.assert_allclose(u1, -0.2 * G0, rtol=1e-14)
    np.testing.assert_allclose(u2, -0.3 * G0, rtol=1e-14)


def test_momentum_twin_is_not_optax_heavy_ball(x64):
    lr, b = 0.1, 0.9
    _, ema_step = jitted_updates(optax_equivalents.momentum(lr, beta=b), G0, G1)
    _, heavy_ball_step = jitted_updates(optax.sgd(lr, momentum=b), G0, G1)
    np.testing.assert_allclose(heavy_ball_step, -lr * (G1 + b * G0), rtol=1e-14)
    np.testing.assert_allclose(ema_step, -lr * (1 - b) * (G1 + b * G0), rtol=1e-14)
    assert not np.allclose(ema_step, heavy_ball_step)


def test_rmsprop_twin_keeps_eps_outside_the_root(x64):
    lr, d, eps = 0.01, 0.9, 0.5  # an eps large enough that its placement matters
    (twin,) = jitted_updates(optax_equivalents.rmsprop(lr, decay=d, eps=eps), G0)
    (inside,) = jitted_updates(optax.rmsprop(lr, decay=d, eps=eps), G0)
    np.testing.assert_allclose(twin, -lr * G0 / (np.sqrt((1 - d) * G0**2) + eps), rtol=1e-14)
    assert not np.allclose(twin, inside)


# ---------------------------------------------------------------------------------------------
# Hyperparameters are traced values: one compiled program for every learning rate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_new_hyperparameters_reuse_the_compiled_update(name):
    traces = []

    @jax.jit
    def first_update(opt, grads):
        traces.append(1)  # runs only when jit traces, not when it reuses a compiled program
        updates, _ = opt.update(grads, opt.init(grads))
        return updates

    grads = {"w": jnp.asarray(G0, jnp.float32)}
    small = first_update(optimizers.OPTIMIZERS[name](0.1), grads)
    large = first_update(optimizers.OPTIMIZERS[name](0.3), grads)

    assert len(traces) == 1
    np.testing.assert_allclose(large["w"], 3 * small["w"], rtol=1e-6)


def test_optimizers_vmap_over_learning_rates():
    lrs = jnp.array([0.1, 0.2, 0.4])
    g = jnp.asarray(G0, jnp.float32)

    def first_momentum_step(lr):
        opt = optimizers.momentum(lr, beta=0.5)
        return opt.update(g, opt.init(g))[0]

    steps = jax.vmap(first_momentum_step)(lrs)
    np.testing.assert_allclose(steps, -0.5 * np.asarray(lrs)[:, None] * G0, rtol=1e-6)


@pytest.mark.parametrize("scheduled", [False, True])
def test_adam_state_counts_updates(scheduled):
    opt = optimizers.adam((lambda count: 0.1) if scheduled else 0.1)
    params = {"w": jnp.zeros(3)}
    state = opt.init(params)
    update = jax.jit(opt.update)
    for _ in range(4):
        _, state = update({"w": jnp.ones(3)}, state)
    adam_state, lr_state = state
    assert isinstance(adam_state, optimizers.ScaleByAdamState)
    assert int(adam_state.count) == 4
    # Only a schedule needs its own step counter; a constant rate carries no state.
    assert (int(lr_state.count) == 4) if scheduled else (lr_state == ())
    # After four equal gradients the EMAs are (1 - b^4) g and (1 - b2^4) g^2.
    np.testing.assert_allclose(adam_state.mu["w"], 1 - 0.9**4, rtol=1e-6)
    np.testing.assert_allclose(adam_state.nu["w"], 1 - 0.999**4, rtol=1e-5)


@pytest.mark.parametrize(
    ("x64_on", "traced"),
    [(True, False), (True, True), (False, True)],
    ids=["x64_python_float", "x64_traced_float64", "float32_traced_float32"],
)
def test_numbers_meet_float32_arrays_as_optax_python_floats_do(x64_on, traced):
    # Optax's hyperparameters are Python floats: 1 - b is made in double precision (and 1 - b**t
    # in float64 under x64), then rounded once to the float32 array it meets. fit and sweep trace
    # the numbers (float64 arrays under x64, float32 ones without); they must give that float32
    # arithmetic, not float64 arithmetic rounded at the end, nor 1 - b made from a float32 b (the
    # bias correction was ~100 float32 ulps off under x64; Adam's 1 - b2 1.3e-5 off without).
    with jax.enable_x64(x64_on):
        moment = jnp.asarray([0.25, -1.5, 3e-3], jnp.float32)
        g = jnp.asarray([2.0, 0.125, -7.0], jnp.float32)
        b, t, eps = 0.999, jnp.asarray(3, jnp.int32), 1e-8
        expected = (  # Optax's own rules, with Python floats
            optax.tree.update_moment(g, moment, b, 1),
            optax.tree.bias_correction(moment, b, t),
            jnp.abs(moment) + eps,
        )

        def rules(b, rest, eps, t):
            return (
                optimizers.ema(moment, g, b, rest),
                optimizers.debiased(moment, b, t),
                jnp.abs(moment) + optimizers.number_like(eps, moment),
            )

        numbers = (b, optimizers.complement(b), eps)  # as the factories box them
        if traced:  # as fit and sweep see them: arrays of the default float; the count is state
            got = jax.jit(rules)(*(jnp.asarray(n, jnp.result_type(float)) for n in numbers), t)
        else:
            got = rules(*numbers, t)
        for mine, theirs in zip(got, expected, strict=True):
            assert mine.dtype == theirs.dtype == np.float32
            np.testing.assert_array_max_ulp(mine, theirs, maxulp=1)  # XLA fuses the compiled one
