"""The network (jaxopt_lab.model) against a hand-written NumPy forward and backward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import data, model


def numpy_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_forward_backward(params: dict, X: np.ndarray, Y: np.ndarray):
    """The course's backprop, written out: ReLU hidden layers, sigmoid output, mean cross-entropy.

    Returns:
      ``(logits, cost, grads)`` with grads keyed like params.
    """
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    L = len(params) // 2
    m = X.shape[1]
    A, layer_inputs, pre_activations = X, [], []
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        layer_inputs.append(A)
        pre_activations.append(Z)
        A = np.maximum(Z, 0) if l < L else numpy_sigmoid(Z)
    cost = np.mean(-Y * np.log(A) - (1 - Y) * np.log(1 - A))

    grads = {}
    dZ = (A - Y) / m  # d(cost)/dZ_L for a sigmoid output under cross-entropy
    for l in range(L, 0, -1):
        grads[f"W{l}"] = dZ @ layer_inputs[l - 1].T
        grads[f"b{l}"] = np.sum(dZ, axis=1, keepdims=True)
        if l > 1:
            dZ = (params[f"W{l}"].T @ dZ) * (pre_activations[l - 2] > 0)
    return pre_activations[-1], cost, grads


def numpy_he_init(layers_dims):
    """The course's initialize_parameters: np.random.seed(3), then randn * sqrt(2 / fan_in)."""
    saved = np.random.get_state()
    np.random.seed(3)
    params = {}
    for l in range(1, len(layers_dims)):
        params[f"W{l}"] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * np.sqrt(
            2 / layers_dims[l - 1]
        )
        params[f"b{l}"] = np.zeros((layers_dims[l], 1))
    np.random.set_state(saved)
    return params


def course_problem():
    X, Y = data.load_moons()
    return model.init_params([2, 5, 2, 1]), X, Y


def deep_problem():
    rng = np.random.default_rng(5)
    dims = [3, 8, 6, 4, 1]
    X = rng.standard_normal((dims[0], 40))
    Y = (rng.random((1, 40)) < 0.5).astype(np.float64)
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = rng.standard_normal((dims[l], dims[l - 1])) * np.sqrt(2 / dims[l - 1])
        # non-zero biases, so the bias gradients and the ReLU masks are exercised off the origin
        params[f"b{l}"] = 0.1 * rng.standard_normal((dims[l], 1))
    return params, X, Y


@pytest.mark.parametrize("problem", [course_problem, deep_problem], ids=["2-5-2-1", "3-8-6-4-1"])
def test_grad_of_loss_equals_numpy_backprop(problem, x64):
    params, X, Y = problem()
    logits, cost, grads = numpy_forward_backward(params, X, Y)

    X, Y = jnp.asarray(X), jnp.asarray(Y)
    value, jax_grads = jax.jit(jax.value_and_grad(model.loss))(params, X, Y)

    np.testing.assert_allclose(jax.jit(model.forward)(params, X), logits, rtol=1e-12)
    assert float(value) == pytest.approx(cost, rel=1e-12)
    assert set(jax_grads) == set(grads)
    for key, g in grads.items():
        assert jax_grads[key].dtype == np.float64
        np.testing.assert_allclose(jax_grads[key], g, rtol=1e-10, atol=1e-14, err_msg=key)


@pytest.mark.parametrize("layers_dims", [[2, 5, 2, 1], [3, 8, 6, 4, 1]])
def test_course_init_is_he_with_numpy_seed_3(layers_dims, x64):
    expected = numpy_he_init(layers_dims)
    params = model.init_params(layers_dims)
    assert set(params) == set(expected)
    for key, value in expected.items():
        assert params[key].dtype == np.float64
        np.testing.assert_array_equal(params[key], value, err_msg=key)


def test_course_init_follows_the_default_float():
    params = model.init_params([2, 5, 2, 1])
    expected = numpy_he_init([2, 5, 2, 1])
    for key, value in expected.items():
        assert params[key].dtype == np.float32
        np.testing.assert_array_equal(params[key], value.astype(np.float32))


def test_seeded_init_is_he_from_a_jax_key():
    dims = [400, 300, 1]
    params = model.init_params(dims, seed=0)
    again = model.init_params(dims, seed=0)
    other = model.init_params(dims, seed=1)

    for l in (1, 2):
        W, b = params[f"W{l}"], params[f"b{l}"]
        assert W.shape == (dims[l], dims[l - 1]) and b.shape == (dims[l], 1)
        assert not np.any(b)
        np.testing.assert_array_equal(W, again[f"W{l}"])
        assert not np.array_equal(W, other[f"W{l}"])
    # 120,000 draws: the sample std of W1 is within 2% of He's sqrt(2 / fan_in)
    assert float(jnp.std(params["W1"])) == pytest.approx(np.sqrt(2 / 400), rel=0.02)


@pytest.mark.parametrize("x64_mode", [False, True])
def test_seeded_init_draws_from_the_seed_s_jax_key_at_the_edges_of_the_seed_range(x64_mode):
    # The key of seed s is PRNGKey(s) folded with 0, in both precisions, up to 2**32 - 1.
    with jax.enable_x64(x64_mode):
        for seed in (0, 2**31, 2**32 - 1):
            key = jax.random.fold_in(jax.random.PRNGKey(seed), 0)
            first = jax.random.normal(jax.random.split(key, 3)[0], (5, 2))
            expected = first * np.sqrt(np.asarray(2 / 2, first.dtype))
            # To float tolerance: the init program is compiled without XLA's optimisations, which
            # may round the last bit of the normal draw differently. Another key differs by O(1).
            np.testing.assert_allclose(
                model.init_params([2, 5, 2, 1], seed)["W1"], expected, rtol=1e-6, atol=1e-7
            )


def test_init_compiles_no_eager_programs_in_course_mode_and_one_in_seed_mode():
    compiles = []

    def record(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(record)
    try:
        model.init_params([2, 7, 3, 1])
        assert compiles == []
        model.init_params([2, 7, 3, 1], seed=5)
        model.init_params([2, 7, 3, 1], seed=6)  # same shapes: the same program
        assert len(compiles) == 1
    finally:
        jax.monitoring.unregister_event_duration_listener(record)


def test_cross_entropy_matches_the_naive_formula_where_finite(x64):
    # |z| <= 12: beyond it the naive formula's 1 - sigmoid(z) loses digits to cancellation and
    # stops being a trustworthy reference, long before it overflows.
    rng = np.random.default_rng(0)
    z = rng.uniform(-12, 12, (1, 500))
    y = (rng.random((1, 500)) < 0.5).astype(np.float64)
    a = numpy_sigmoid(z)
    naive = -y * np.log(a) - (1 - y) * np.log(1 - a)
    assert np.all(np.isfinite(naive))

    np.testing.assert_allclose(
        model.cross_entropy(jnp.asarray(z), jnp.asarray(y)), naive, rtol=1e-9
    )


def test_cross_entropy_derivative_is_sigmoid_minus_label(x64):
    z = jnp.linspace(-20.0, 20.0, 41)
    for label in (0.0, 1.0):
        dz = jax.vmap(jax.grad(lambda zi, y=label: model.cross_entropy(zi, y)))(z)
        # sigmoid(z) - 1 written as -sigmoid(-z), which keeps its digits for large z
        expected = -numpy_sigmoid(-np.asarray(z)) if label else numpy_sigmoid(np.asarray(z))
        # atol: the library forms sigmoid(z) - 1 by subtraction, exact to a few ulps of 1, not of dz
        np.testing.assert_allclose(dz, expected, rtol=1e-12, atol=4e-15)


@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_loss_and_gradient_finite_for_huge_logits_in_float32(scale):
    # One linear unit: logit = scale * x, for x = +1 and -1 and both labels.
    params = {"W1": jnp.array([[scale, 0.0]], jnp.float32), "b1": jnp.zeros((1, 1), jnp.float32)}
    X = jnp.array([[1.0, 1.0, -1.0, -1.0], [0.0, 0.0, 0.0, 0.0]], jnp.float32)
    Y = jnp.array([[1.0, 0.0, 1.0, 0.0]], jnp.float32)
    # naive log(sigmoid) overflows here; the cross-entropy of a right label is ~0, of a wrong one |z|
    with np.errstate(over="ignore", divide="ignore"):
        naive = -np.log(numpy_sigmoid(np.float32(-scale)))
    assert scale < 1e3 or not np.isfinite(naive)

    value, grads = jax.jit(jax.value_and_grad(model.loss))(params, X, Y)

    assert value.dtype == np.float32
    assert float(value) == pytest.approx((0 + scale + scale + 0) / 4, rel=1e-6)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(g))
    # d loss / d W1[0, 0] = mean((sigmoid(z) - y) * x) = (0 + 1 + 1 + 0) / 4 in the saturated limit
    assert float(grads["W1"][0, 0]) == pytest.approx(0.5, rel=1e-6)


def test_predict_and_accuracy_threshold_the_sigmoid_at_one_half(x64):
    params, X, Y = deep_problem()
    logits, _, _ = numpy_forward_backward(params, X, Y)
    expected = (numpy_sigmoid(logits) > 0.5).astype(int)

    predictions = jax.jit(model.predict)(params, jnp.asarray(X))

    assert predictions.shape == (1, X.shape[1])
    np.testing.assert_array_equal(predictions, expected)
    assert 0 < expected.sum() < X.shape[1], "the test needs both classes predicted"
    assert float(jax.jit(model.accuracy)(params, jnp.asarray(X), jnp.asarray(Y))) == pytest.approx(
        np.mean(expected == Y)
    )
