"""The hand-rolled optimizers used wherever an Optax optimizer is used, each against its Optax twin.

Scenarios adapted from the situations Optax's own alias tests put optimizers in (convergence, jit,
``inject_hyperparams``, ``MultiSteps``, ``apply_if_finite``, ``chain``, pickling), then the cases
where the hand-rolled ones used to differ from Optax (complex and low-precision parameters, extra
``update`` arguments, the step counter, Python float leaves, Flax NNX and Linen).
"""

from __future__ import annotations

import functools
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import optax_equivalents, optimizers, schedules, train

NAMES = ["gd", "momentum", "rmsprop", "adam"]
LR = {"gd": 0.1, "momentum": 0.3, "rmsprop": 0.03, "adam": 0.05}
RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], indirect=True)
BOTH = pytest.mark.parametrize("name", NAMES)


def pair(name, *args, **kwargs):
    return (
        optimizers.OPTIMIZERS[name](*args, **kwargs),
        optax_equivalents.OPTIMIZERS[name](*args, **kwargs),
    )


def run(opt, loss, params, steps, grads_at=None):
    """``steps`` jitted updates of ``params`` on ``loss``; returns the final parameters."""
    grads_at = grads_at or jax.grad(loss)

    def body(_, carry):
        p, s = carry
        g = grads_at(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    return jax.jit(lambda p: jax.lax.fori_loop(0, steps, body, (p, opt.init(p)))[0])(params)


def assert_close(actual, expected, rtol):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.dtype == e.dtype
        a, e = np.asarray(a, np.complex128), np.asarray(e, np.complex128)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.max(np.abs(e), initial=1e-30))


def parabola(target):
    return lambda p: jnp.sum(jnp.abs(p - target) ** 2)


def rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


# ---------------------------------------------------------------------------------------------
# Optax's scenarios
# ---------------------------------------------------------------------------------------------


@DTYPES
@BOTH
def test_parabola_converges_like_the_twin(name, dtype):
    target = jnp.asarray([1.0, -2.0, 0.5], dtype)
    ours, twin = pair(name, LR[name])
    start = jnp.zeros(3, dtype)
    mine, theirs = run(ours, parabola(target), start, 400), run(twin, parabola(target), start, 400)
    assert_close(mine, theirs, RTOL[dtype])
    np.testing.assert_allclose(mine, target, atol=5e-2)


@DTYPES
@BOTH
def test_rosenbrock_descends_like_the_twin(name, dtype):
    lr = {"gd": 1e-3, "momentum": 3e-3, "rmsprop": 1e-2, "adam": 1e-2}[name]
    ours, twin = pair(name, lr)
    start = jnp.asarray([-0.5, 0.5], dtype)
    mine, theirs = run(ours, rosenbrock, start, 300), run(twin, rosenbrock, start, 300)
    # 300 steps across a stiff valley (RMSprop's near-sign steps bounce between its walls) amplify
    # the rounding differences of two ways to write the same formula.
    assert_close(mine, theirs, 1e-3 if name == "rmsprop" else 50 * RTOL[dtype])
    assert rosenbrock(mine) < rosenbrock(start) / 4


@BOTH
def test_jitted_update_equals_the_eager_one(name):
    opt = optimizers.OPTIMIZERS[name](0.1)
    params = {"w": jnp.asarray([0.3, -1.2]), "b": jnp.asarray(0.7)}
    state = opt.init(params)
    eager = opt.update(params, state, params)
    jitted = jax.jit(opt.update)(params, state, params)
    assert_close(jitted, eager, 1e-6)


@DTYPES
@BOTH
def test_inject_hyperparams_with_a_rate_change_mid_run(name, dtype):
    params = jnp.asarray([1.0, -2.0], dtype)
    results = []
    for factory in (optimizers.OPTIMIZERS[name], optax_equivalents.OPTIMIZERS[name]):
        opt = optax.inject_hyperparams(factory)(learning_rate=0.1)
        p, state = params, opt.init(params)
        for step in range(6):
            if step == 3:
                state.hyperparams["learning_rate"] = jnp.asarray(0.02)
            u, state = jax.jit(opt.update)(2 * p, state, p)
            p = optax.apply_updates(p, u)
        results.append(p)
    assert_close(results[0], results[1], RTOL[dtype])
    # The change took effect: a run at 0.1 throughout ends elsewhere.
    assert not np.allclose(
        results[0], run(optimizers.OPTIMIZERS[name](0.1), parabola(0.0), params, 6)
    )


@DTYPES
@BOTH
def test_multi_steps_accumulates_like_the_twin(name, dtype):
    ours, twin = (optax.MultiSteps(t, every_k_schedule=3) for t in pair(name, LR[name]))
    target = jnp.asarray([1.0, -2.0], dtype)
    start = jnp.zeros(2, dtype)
    mine, theirs = run(ours, parabola(target), start, 12), run(twin, parabola(target), start, 12)
    assert_close(mine, theirs, RTOL[dtype])
    # 12 gradients, 4 updates: not what 12 plain updates give.
    assert not np.allclose(mine, run(pair(name, LR[name])[0], parabola(target), start, 12))


@DTYPES
@BOTH
def test_apply_if_finite_skips_a_nan_gradient_like_the_twin(name, dtype):
    ours, twin = (optax.apply_if_finite(t, max_consecutive_errors=2) for t in pair(name, 0.1))
    params = jnp.asarray([1.0, -2.0], dtype)
    grads = [params, jnp.asarray([jnp.nan, 1.0], dtype), 2 * params]
    finals = []
    for opt in (ours, twin):
        p, state, history = params, opt.init(params), []
        for g in grads:
            u, state = opt.update(g, state, p)
            p = optax.apply_updates(p, u)
            history.append(p)
        np.testing.assert_array_equal(history[1], history[0])  # the NaN step changed nothing
        assert int(state.total_notfinite) == 1
        finals.append(p)
    assert_close(finals[0], finals[1], RTOL[dtype])


@DTYPES
@BOTH
@pytest.mark.parametrize("chain", [optax.chain, optimizers.chain])
def test_chain_with_clip_by_global_norm(name, chain, dtype):
    target = jnp.asarray([30.0, -40.0], dtype)  # far: the clip is active for many steps
    start = jnp.zeros(2, dtype)
    ours, twin = pair(name, LR[name])
    mine = run(chain(optax.clip_by_global_norm(1.0), ours), parabola(target), start, 50)
    theirs = run(optax.chain(optax.clip_by_global_norm(1.0), twin), parabola(target), start, 50)
    assert_close(mine, theirs, RTOL[dtype])
    assert not np.allclose(mine, run(ours, parabola(target), start, 50))


@BOTH
@pytest.mark.parametrize("scheduled", [False, True])
def test_pickle_round_trip_of_transformation_and_state(name, scheduled):
    lr = schedules.per_step(schedules.epoch_table([0.1, 0.05, 0.02]), 2) if scheduled else 0.1
    opt = optimizers.OPTIMIZERS[name](lr)
    params = {"w": jnp.asarray([0.5, -1.5])}
    _, state = opt.update(params, opt.init(params), params)
    opt2, state2 = pickle.loads(pickle.dumps((opt, state)))
    assert type(opt2) is type(opt)
    assert_close(opt2.update(params, state2, params), opt.update(params, state, params), 0)


# ---------------------------------------------------------------------------------------------
# Where the hand-rolled optimizers used to differ from Optax
# ---------------------------------------------------------------------------------------------


@BOTH
def test_complex_parabola_converges_like_the_twin(name):
    target = jnp.asarray([1.0 + 2.0j, -0.5 - 1.0j], jnp.complex64)
    ours, twin = pair(name, LR[name])
    start = jnp.zeros(2, jnp.complex64)
    # Optax's convention for complex parameters: descend along the conjugate of the gradient.
    conj_grad = lambda p: jnp.conj(jax.grad(parabola(target))(p))  # noqa: E731
    mine = run(ours, None, start, 400, grads_at=conj_grad)
    theirs = run(twin, None, start, 400, grads_at=conj_grad)
    assert_close(mine, theirs, 1e-4)
    np.testing.assert_allclose(mine, target, atol=5e-2)


@BOTH
@pytest.mark.parametrize(
    "param_dtype, x64_mode",
    [(jnp.float16, False), (jnp.bfloat16, False), (jnp.complex64, False), (jnp.bfloat16, True)],
    ids=["float16", "bfloat16", "complex64", "bfloat16_under_x64"],
)
def test_low_precision_and_complex_parameters_step_like_the_twin(name, param_dtype, x64_mode):
    with jax.enable_x64(x64_mode):
        _low_precision_steps_like_the_twin(name, param_dtype)


def _low_precision_steps_like_the_twin(name, param_dtype):
    params = {"w": jnp.asarray([0.5, -1.0, 2.0], param_dtype)}
    ours, twin = pair(name, 0.01)
    results = []
    for opt in (ours, twin):
        p, state = params, opt.init(params)
        for _ in range(5):
            u, state = opt.update(jax.tree.map(lambda x: 2 * x, p), state, p)
            p = optax.apply_updates(p, u)
        results.append((p, state))
    (mine, my_state), (theirs, their_state) = results
    assert mine["w"].dtype == param_dtype
    assert not np.array_equal(np.asarray(mine["w"]), np.asarray(params["w"]))  # it moved
    low = jnp.dtype(param_dtype).itemsize < 4
    assert_close(mine, theirs, 2e-2 if low else 1e-5)

    # Moments keep the twin's dtypes (optax.ema, momentum's twin, also keeps an int32 counter).
    def moment_dtypes(state):
        return sorted({str(x.dtype) for x in jax.tree.leaves(state) if x.dtype != jnp.int32})

    assert moment_dtypes(my_state) == moment_dtypes(their_state)


def test_adam_on_bfloat16_makes_the_first_step_of_size_lr():
    opt = optimizers.adam(0.01)
    params = jnp.asarray([1.0, -3.0], jnp.bfloat16)
    updates, _ = opt.update(params, opt.init(params))
    # The first Adam step is -lr * sign(g) (eps is negligible).
    np.testing.assert_allclose(np.asarray(updates, np.float32), [-0.01, 0.01], rtol=1e-2)


@pytest.mark.parametrize("mu_dtype", [jnp.float32, jnp.bfloat16])
def test_adam_mu_dtype_like_the_twin(mu_dtype):
    params = jnp.asarray([0.5, -1.0, 2.0], jnp.bfloat16)
    ours, twin = pair("adam", 0.01, mu_dtype=mu_dtype)
    mine, theirs = run(ours, parabola(1.0), params, 5), run(twin, parabola(1.0), params, 5)
    assert_close(mine, theirs, 1e-2)
    assert ours.init(params)[0].mu.dtype == mu_dtype
    with pytest.raises(ValueError, match="mu_dtype"):
        optimizers.adam(0.01, mu_dtype="not a dtype")


@BOTH
def test_extra_update_arguments_are_accepted(name):
    ours, twin = pair(name, 0.1)
    params = jnp.asarray([0.5, -1.0])
    for outer in (lambda t: t, optax.chain, optimizers.chain):
        results = []
        for opt in (outer(ours), outer(twin)):
            extra = optax.with_extra_args_support(opt)
            results.append(extra.update(params, extra.init(params), params, value=1.0)[0])
        assert isinstance(outer(ours), optax.GradientTransformationExtraArgs)
        assert_close(results[0], results[1], 1e-6)
    # Our own chain passes the arguments on only to parts that take them.
    chained = optimizers.chain(optax.scale(2.0), ours)
    u, _ = chained.update(params, chained.init(params), params, value=1.0)
    assert_close(u, ours.update(2 * params, ours.init(params), params)[0], 1e-6)


@pytest.mark.parametrize("name", ["adam", "gd"])
def test_step_counter_saturates_like_the_twin(name):
    lr = (lambda count: 0.1) if name == "gd" else 0.1
    params = jnp.ones(2)
    for opt in pair(name, lr):
        state = opt.init(params)
        top = jnp.asarray(np.iinfo(np.int32).max, jnp.int32)
        state = optax.tree_utils.tree_set(state, count=top)
        updates, state = opt.update(params, state, params)
        assert int(optax.tree_utils.tree_get(state, "count")) == np.iinfo(np.int32).max
        assert np.all(np.isfinite(np.asarray(updates))) and np.all(np.asarray(updates) < 0)


@BOTH
def test_python_float_parameters(name):
    params = {"x": 2.0, "y": -1.0}
    results = []
    for opt in pair(name, 0.1):
        updates, _ = opt.update(params, opt.init(params), params)
        results.append(jax.tree.map(jnp.asarray, updates))
    assert_close(results[0], results[1], 1e-6)


@BOTH
@pytest.mark.parametrize("tree", [{}, (), jnp.asarray(1.5)], ids=["empty_dict", "empty", "scalar"])
def test_empty_and_scalar_trees(name, tree):
    results = []
    for opt in pair(name, 0.1):
        updates, _ = opt.update(tree, opt.init(tree), tree)
        results.append(updates)
    assert jax.tree.structure(results[0]) == jax.tree.structure(tree)
    assert_close(results[0], results[1], 1e-6)


@pytest.mark.parametrize("name", ["gd", "rmsprop", "adam"])
@pytest.mark.parametrize("scheduled", [False, True])
def test_tree_get_count_like_the_twin(name, scheduled):
    lr = (lambda count: 0.1) if scheduled else 0.1
    params = jnp.ones(2)
    found = []
    for opt in pair(name, lr):
        state = opt.init(params)
        for _ in range(3):
            state = opt.update(params, state, params)[1]
        try:
            found.append(optax.tree_utils.tree_get(state, "count"))
        except KeyError:  # several counters (Adam and a schedule): ambiguous in both
            found.append("ambiguous")
    assert jax.tree.map(lambda x: np.asarray(x).tolist(), found[0]) == jax.tree.map(
        lambda x: np.asarray(x).tolist(), found[1]
    )
    if name == "adam" and not scheduled:
        assert int(found[0]) == 3


def test_momentum_keeps_no_counter():
    # The twin (optax.ema) counts steps; the course's EMA momentum needs none (a counter would cost
    # the fused loop a carry), so tree_get finds nothing: documented in the README.
    state = optimizers.momentum(0.1).init(jnp.ones(2))
    assert optax.tree_utils.tree_get(state, "count") is None


# ---------------------------------------------------------------------------------------------
# Frameworks that keep the optimizer as static data: Flax NNX and Linen
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moons():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:] > 0).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def _learning_rates():
    table = schedules.per_step(schedules.epoch_table(jnp.asarray([0.05, 0.02, 0.01])), 4)
    return {"array": jnp.asarray(0.05), "epoch_table": table}


@pytest.mark.parametrize(
    "name, lr_kind", [(name, "array") for name in NAMES] + [("adam", "epoch_table")]
)
def test_flax_nnx_model_trains_like_the_twin(name, lr_kind, moons):
    nnx = pytest.importorskip("flax.nnx")
    x, y = moons
    lr = _learning_rates()[lr_kind]
    finals = []
    for tx in pair(name, lr):
        model = nnx.Sequential(
            nnx.Linear(2, 5, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(5, 1, rngs=nnx.Rngs(1))
        )
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer):
            loss = lambda m: jnp.mean(optax.sigmoid_binary_cross_entropy(m(x), y))  # noqa: E731
            value, grads = nnx.value_and_grad(loss)(model)
            optimizer.update(model, grads)
            return value

        losses = [float(step(model, optimizer)) for _ in range(12)]
        assert losses[-1] < losses[0]
        finals.append(nnx.state(model, nnx.Param))
    assert_close(finals[0], finals[1], 1e-4)


@BOTH
def test_flax_linen_train_state_trains_like_the_twin(name, moons):
    nn = pytest.importorskip("flax.linen")
    from flax.training import train_state

    x, y = moons
    model = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(1)])
    params = model.init(jax.random.key(0), x)
    finals = []
    for tx in pair(name, jnp.asarray(0.05)):
        state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

        @jax.jit
        def step(state):
            loss = lambda p: jnp.mean(  # noqa: E731
                optax.sigmoid_binary_cross_entropy(state.apply_fn(p, x), y)
            )
            return state.apply_gradients(grads=jax.grad(loss)(state.params))

        for _ in range(12):
            state = step(state)
        finals.append(state.params)
    assert_close(finals[0], finals[1], 1e-4)
    assert not np.allclose(jax.tree.leaves(finals[0])[0], jax.tree.leaves(params)[0])


def test_array_hyperparameters_show_no_array_leaf_but_are_traced_by_fit_split():
    from jaxopt_lab import train

    opt = optimizers.adam(jnp.asarray(1e-3))
    assert not [x for x in jax.tree.leaves(opt) if isinstance(x, jax.Array)]
    numbers, static = train.split_optimizer(opt)
    other_numbers, other_static = train.split_optimizer(optimizers.adam(jnp.asarray(2e-3)))
    assert static == other_static
    assert float(numbers[-1]) == pytest.approx(1e-3, rel=1e-6)
    assert float(other_numbers[-1]) == pytest.approx(2e-3, rel=1e-6)
    # Python floats stay Python floats.
    assert all(type(x) is float for x in train.split_optimizer(optimizers.adam(1e-3))[0])


def test_optimizers_pass_through_jit_as_arguments():
    first_step = jax.jit(lambda opt, g: opt.update(g, opt.init(g))[0])
    g = jnp.asarray([1.0, -2.0])
    # Array hyperparameters: the optimizer is static to jit, like an Optax closure.
    np.testing.assert_allclose(first_step(optimizers.gd(jnp.asarray(0.1)), g), -0.1 * g, rtol=1e-6)
    # Built from traced numbers inside vmap: the box stays open, the numbers stay traced.
    lrs = jnp.asarray([0.1, 0.2])
    steps = jax.vmap(lambda lr: first_step(optimizers.gd(lr), g))(lrs)
    np.testing.assert_allclose(steps, -lrs[:, None] * g[None, :], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Every precision mode: under x64 with float32 parameters (Flax's default) the rules meet float32
# arrays with numbers made in float64, as Optax's Python floats do, also when the numbers are traced
# ---------------------------------------------------------------------------------------------

MLP_STEPS = 300
MLP_LR = {"gd": 0.1, "momentum": 0.1, "rmsprop": 0.003, "adam": 0.01}
FLOAT32_ROUNDING = 5e-6  # of a leaf's largest magnitude; Adam's gap was 8e-4 before the rounding


def _mlp(params, x):
    return jax.nn.relu(x @ params["w1"]) @ params["w2"]


def _mlp_loss(params, x, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(_mlp(params, x), y))


def _mlp_problem():
    """An XOR-like task and a 2-16-1 ReLU network in float32, whatever the precision mode."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2))
    y = (x[:, :1] * x[:, 1:] > 0).astype(float)
    params = {"w1": rng.normal(size=(2, 16)) / np.sqrt(2), "w2": rng.normal(size=(16, 1)) / 4}
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), (x, y, params))


def _plain_loop(optimizer, params, x, y):
    def step(_, carry):
        params, state = carry
        updates, state = optimizer.update(jax.grad(_mlp_loss)(params, x, y), state, params)
        return optax.apply_updates(params, updates), state

    return jax.lax.fori_loop(0, MLP_STEPS, step, (params, optimizer.init(params)))


def _nnx_loop(optimizer, params, x, y):
    """The same steps through a Flax NNX model and ``nnx.Optimizer`` (which keeps ``tx`` as data)."""
    nnx = pytest.importorskip("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self):
            self.params = nnx.data({k: nnx.Param(v) for k, v in params.items()})

        def __call__(self, x):
            return _mlp({k: v[...] for k, v in self.params.items()}, x)

    model = MLP()
    graphdef, state = nnx.split((model, nnx.Optimizer(model, optimizer, wrt=nnx.Param)))

    def step(_, state):
        model, nnx_optimizer = nnx.merge(graphdef, state)
        loss = lambda m: jnp.mean(optax.sigmoid_binary_cross_entropy(m(x), y))  # noqa: E731
        nnx_optimizer.update(model, nnx.grad(loss)(model))
        return nnx.state((model, nnx_optimizer))

    model, nnx_optimizer = nnx.merge(graphdef, jax.lax.fori_loop(0, MLP_STEPS, step, state))
    return {k: v[...] for k, v in model.params.items()}, nnx_optimizer.opt_state


def _fit_loop(optimizer, params, x, y):
    """``optimizer`` with its numbers traced as ``fit`` traces them: split off and passed to ``jit``
    (Python floats become weakly typed float64 tracers under x64), then rebuilt."""
    numbers, structure = train.split_optimizer(optimizer)
    run = lambda n: _plain_loop(train.join_optimizer(n, structure), params, x, y)  # noqa: E731
    return jax.jit(run)(numbers)


def _sweep_loop(optimizer, params, x, y):
    """``optimizer`` with its numbers traced as ``sweep`` traces them: stacked into float64 arrays
    under x64 (not weakly typed) and vmapped."""
    numbers, structure = train.stack_optimizers([optimizer])
    run = lambda n: _plain_loop(train.join_optimizer(n, structure), params, x, y)  # noqa: E731
    return jax.tree.map(lambda a: a[0], jax.vmap(run)(numbers))


def _ways_to_use(factory, learning_rate):
    staircase = schedules.per_step(schedules.fixed_interval(learning_rate, 1.0, 2), 50)
    return {
        "plain": factory(learning_rate),
        "staircase": factory(staircase),
        "chain_multi_steps": optax.MultiSteps(
            optax.chain(optax.clip_by_global_norm(0.5), factory(learning_rate)), every_k_schedule=3
        ),
        "inject_hyperparams": optax.inject_hyperparams(factory)(learning_rate=learning_rate),
    }


def assert_within_float32_rounding(actual, expected, label):
    """Leaf by leaf: the same dtype, and a largest gap of at most ``FLOAT32_ROUNDING`` times the
    leaf's largest magnitude."""
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.dtype == e.dtype, label
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert np.max(np.abs(a - e)) <= FLOAT32_ROUNDING * np.max(np.abs(e)), label


@BOTH
def test_300_steps_with_float32_parameters_under_x64_like_the_twin(name, x64):
    x, y, params = _mlp_problem()
    ours, twin = (
        _ways_to_use(f[name], MLP_LR[name])
        for f in (optimizers.OPTIMIZERS, optax_equivalents.OPTIMIZERS)
    )

    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def runs(params):
        out = {
            way: (_plain_loop(ours[way], params, x, y), _plain_loop(twin[way], params, x, y))
            for way in ours
        }
        out["nnx"] = (
            _nnx_loop(ours["plain"], params, x, y),
            _nnx_loop(twin["plain"], params, x, y),
        )
        for traced in (_fit_loop, _sweep_loop):  # the staircase's numbers traced too
            out[traced.__name__] = (traced(ours["staircase"], params, x, y), out["staircase"][1])
        return out

    results = runs(params)
    for way, ((mine, my_state), (theirs, _)) in results.items():
        assert_within_float32_rounding(mine, theirs, way)
        # The optimizer state stays in float32, as the twin's does (counters are int32).
        assert {str(leaf.dtype) for leaf in jax.tree.leaves(my_state)} <= {"float32", "int32"}, way
    trained = results["plain"][0][0]["w1"]
    assert np.max(np.abs(trained - params["w1"])) > 0.1  # not a comparison of idle parameters
