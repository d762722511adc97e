"""The assignment's API (jaxopt_lab.course): its small functions against the course's formulas in
NumPy, and its seven recorded training runs reproduced digit for digit under float64."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxopt_lab import course, data, model

LAYERS = [2, 5, 2, 1]


RECORDED_RUNS = data.course_results()  # shipped with the package: a bare clone has them


# ---------------------------------------------------------------------------------------------
# The seven recorded runs, in one float64 subprocess
# ---------------------------------------------------------------------------------------------

REPLAY = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from jaxopt_lab import course

    from jaxopt_lab import data

    runs = data.course_results()
    X, Y = course.load_dataset()
    printouts = []
    for run in runs:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            params = course.model(
                X, Y, [2, 5, 2, 1], run["optimizer"], learning_rate=run["learning_rate"],
                mini_batch_size=64, num_epochs=5000, decay_rate=1,
                decay=getattr(course, run["decay"]) if run["decay"] else None,
            )
            course.predict(X, Y, params)
        printouts.append(out.getvalue())
    print(json.dumps(printouts))
    """
)


@pytest.fixture(scope="module")
def replayed_printouts() -> list[str]:
    """Each recorded run's printout from ``course.model`` + ``course.predict`` with x64 enabled.

    A subprocess, so float64 is on from JAX's start, as a learner would run it, without touching
    this process's precision.
    """
    # On the CPU, where the recorded figures were checked; an accelerator's float64 kernels may
    # round differently in the last bits.
    env = {**os.environ, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", REPLAY],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def expected_printout(run: dict) -> dict[str, list[str]]:
    costs = run["cost_at_epoch"]
    expected = {
        "cost": ["Cost after epoch %i: %f" % (int(e), costs[e]) for e in sorted(costs, key=int)],
        "accuracy": ["Accuracy: " + str(run["accuracy"])],
    }
    if "learning_rate_after_epoch" in run:
        rates = run["learning_rate_after_epoch"]
        expected["learning rate"] = [
            "learning rate after epoch %i: %f" % (int(e), rates[e]) for e in sorted(rates, key=int)
        ]
    return expected


def printed(printout: str, kind: str) -> list[str]:
    prefix = {"cost": "Cost after epoch", "accuracy": "Accuracy:", "learning rate": "learning rate"}
    return [line for line in printout.splitlines() if line.startswith(prefix[kind])]


@pytest.mark.parametrize(
    "index",
    [pytest.param(i, id=run["run"]) for i, run in enumerate(RECORDED_RUNS)],
)
def test_recorded_course_run_is_reproduced_digit_for_digit(index, replayed_printouts):
    run = RECORDED_RUNS[index]
    printout = replayed_printouts[index]
    for kind, lines in expected_printout(run).items():
        assert printed(printout, kind) == lines, f"{kind} lines of {run['run']!r}"


def test_all_seven_runs_are_recorded():
    assert len(RECORDED_RUNS) == 7
    assert {run["optimizer"] for run in RECORDED_RUNS} == {"gd", "momentum", "adam"}


# ---------------------------------------------------------------------------------------------
# The assignment's small functions, against its formulas in NumPy
# ---------------------------------------------------------------------------------------------


def random_params_and_grads(rng, layers_dims=LAYERS):
    params, grads = {}, {}
    for l in range(1, len(layers_dims)):
        for name, shape in (
            (f"W{l}", (layers_dims[l], layers_dims[l - 1])),
            (f"b{l}", (layers_dims[l], 1)),
        ):
            params[name] = rng.standard_normal(shape)
            grads["d" + name] = rng.standard_normal(shape)
    return params, grads


def as_jax(tree):
    return {k: jnp.asarray(v) for k, v in tree.items()}


def assert_dicts_close(actual, expected, rtol=1e-13):
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=rtol, atol=1e-15, err_msg=key)


def test_load_dataset_and_initialize_parameters(x64):
    train_X, train_Y = course.load_dataset()
    X, Y = data.load_moons()
    np.testing.assert_array_equal(train_X, X)
    np.testing.assert_array_equal(train_Y, Y)

    params = course.initialize_parameters(LAYERS)
    assert sorted(params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    rng = np.random.RandomState(3)  # the same stream as the course's np.random.seed(3)
    for l in range(1, 4):
        expected = rng.randn(LAYERS[l], LAYERS[l - 1]) * np.sqrt(2 / LAYERS[l - 1])
        np.testing.assert_array_equal(params[f"W{l}"], expected)
        np.testing.assert_array_equal(params[f"b{l}"], np.zeros((LAYERS[l], 1)))


def test_compute_cost_is_the_summed_cross_entropy(x64):
    rng = np.random.default_rng(0)
    a3 = rng.uniform(0.01, 0.99, (1, 50))
    Y = (rng.random((1, 50)) < 0.5).astype(np.float64)
    expected = np.sum(-Y * np.log(a3) - (1 - Y) * np.log(1 - a3))
    assert float(course.compute_cost(a3, Y)) == pytest.approx(expected, rel=1e-13)


def test_update_parameters_with_gd(x64):
    params, grads = random_params_and_grads(np.random.default_rng(1))
    updated = course.update_parameters_with_gd(as_jax(params), as_jax(grads), 0.05)
    assert_dicts_close(updated, {k: v - 0.05 * grads["d" + k] for k, v in params.items()})


def test_initializers_give_zeros_keyed_like_gradients(x64):
    params, _ = random_params_and_grads(np.random.default_rng(2))
    velocity = course.initialize_velocity(as_jax(params))
    v, s = course.initialize_adam(as_jax(params))
    for moments in (velocity, v, s):
        assert set(moments) == {"d" + k for k in params}
        for key, value in params.items():
            assert moments["d" + key].shape == value.shape
            assert not np.any(moments["d" + key])


def test_update_parameters_with_momentum(x64):
    rng = np.random.default_rng(3)
    params, grads = random_params_and_grads(rng)
    v = {k: rng.standard_normal(g.shape) for k, g in grads.items()}  # a velocity mid-run
    beta, lr = 0.9, 0.01

    new_params, new_v = course.update_parameters_with_momentum(
        as_jax(params), as_jax(grads), as_jax(v), beta, lr
    )

    expected_v = {k: beta * v[k] + (1 - beta) * grads[k] for k in grads}
    assert_dicts_close(new_v, expected_v)
    assert_dicts_close(new_params, {k: p - lr * expected_v["d" + k] for k, p in params.items()})


@pytest.mark.parametrize("t", [1, 2, 7])
def test_update_parameters_with_adam_returns_the_courses_five_values(t, x64):
    rng = np.random.default_rng(4)
    params, grads = random_params_and_grads(rng)
    v = {k: 0.1 * rng.standard_normal(g.shape) for k, g in grads.items()}
    s = {k: 0.1 * rng.random(g.shape) for k, g in grads.items()}
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-6

    returned = course.update_parameters_with_adam(
        as_jax(params), as_jax(grads), as_jax(v), as_jax(s), t, lr, b1, b2, eps
    )

    assert len(returned) == 5
    new_params, new_v, new_s, v_corrected, s_corrected = returned
    expected_v = {k: b1 * v[k] + (1 - b1) * grads[k] for k in grads}
    expected_s = {k: b2 * s[k] + (1 - b2) * grads[k] ** 2 for k in grads}
    expected_vc = {k: expected_v[k] / (1 - b1**t) for k in grads}
    expected_sc = {k: expected_s[k] / (1 - b2**t) for k in grads}
    assert_dicts_close(new_v, expected_v)
    assert_dicts_close(new_s, expected_s)
    assert_dicts_close(v_corrected, expected_vc)
    assert_dicts_close(s_corrected, expected_sc)
    expected_params = {
        k: p - lr * expected_vc["d" + k] / (np.sqrt(expected_sc["d" + k]) + eps)
        for k, p in params.items()
    }
    assert_dicts_close(new_params, expected_params, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 400),
    mini_batch_size=st.integers(1, 130),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_mini_batches_partition_the_shuffled_columns(m, mini_batch_size, seed):
    # Every column carries its own index in both rows of X and (mod 2) in Y, so any lost,
    # repeated, separated or reordered entry shows.
    index = np.arange(m)
    X = np.stack([index, 10 * index + 0.5]).astype(np.float64)
    Y = (index % 2).reshape(1, m).astype(np.float64)

    batches = course.random_mini_batches(X, Y, mini_batch_size, seed)

    full, rest = divmod(m, mini_batch_size)
    assert [xb.shape[1] for xb, _ in batches] == [mini_batch_size] * full + ([rest] if rest else [])
    columns = []
    for xb, yb in batches:
        assert xb.shape[0] == 2 and yb.shape == (1, xb.shape[1])
        ids = xb[0].astype(int)
        np.testing.assert_array_equal(xb[1], 10 * ids + 0.5)
        np.testing.assert_array_equal(yb[0], ids % 2)
        columns.extend(ids)
    # the course's order: np.random.seed(seed); np.random.permutation(m), cut in sequence
    np.testing.assert_array_equal(columns, np.random.RandomState(seed).permutation(m))


def test_predict_prints_the_accuracy(capsys, x64):
    X, Y = course.load_dataset()
    params = course.initialize_parameters(LAYERS)
    expected = (np.asarray(model.forward(params, jnp.asarray(X))) > 0).astype(int)

    predictions = course.predict(X, Y, params)

    np.testing.assert_array_equal(predictions, expected)
    assert capsys.readouterr().out == "Accuracy: " + str(np.mean(expected[0] == Y[0])) + "\n"


def halve_every_epoch(learning_rate0, epoch_num, decay_rate):
    """A decay a learner might write: plain Python, not traceable by JAX."""
    if epoch_num < 0:
        raise ValueError(epoch_num)
    return learning_rate0 * math.pow(0.5, decay_rate * (epoch_num + 1))


def test_model_runs_the_courses_loop_with_any_python_decay(capsys, x64):
    X, Y = course.load_dataset()
    lr0, num_epochs, m = 0.3, 3, X.shape[1]

    # The assignment's loop, with the assignment's functions: epoch i shuffles with seed 11 + i,
    # and the rate is recomputed after each epoch.
    params, lr, lines = course.initialize_parameters(LAYERS), lr0, []
    grad = jax.jit(jax.grad(model.loss))
    for i in range(num_epochs):
        cost_total = 0.0
        for xb, yb in course.random_mini_batches(X, Y, 64, seed=11 + i):
            a3 = jax.nn.sigmoid(model.forward(params, jnp.asarray(xb)))
            cost_total += float(course.compute_cost(a3, yb))
            grads = {"d" + k: g for k, g in grad(params, jnp.asarray(xb), jnp.asarray(yb)).items()}
            params = course.update_parameters_with_gd(params, grads, lr)
        lr = halve_every_epoch(lr0, i, 1)
        if i % 1000 == 0:
            lines += ["Cost after epoch %i: %f" % (i, cost_total / m)]
            lines += ["learning rate after epoch %i: %f" % (i, lr)]

    trained = course.model(
        X, Y, LAYERS, "gd", learning_rate=lr0, num_epochs=num_epochs, decay=halve_every_epoch
    )

    assert capsys.readouterr().out.splitlines() == lines
    assert_dicts_close(trained, params, rtol=1e-11)


def test_model_refuses_an_unknown_optimizer():
    X, Y = course.load_dataset()
    with pytest.raises(ValueError, match="optimizer"):
        course.model(X, Y, LAYERS, "rmsprop", num_epochs=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), "mini_batch_size must be an integer >= 1"),
        ((2.5,), "mini_batch_size must be an integer >= 1"),
        ((64, -1), "seed must be an integer in"),
        ((64, 2**32), "seed must be an integer in"),
    ],
)
def test_random_mini_batches_refuses_bad_sizes_and_seeds(args, message):
    X, Y = data.load_moons()
    with pytest.raises(ValueError, match=message):
        course.random_mini_batches(X, Y, *args)


def test_random_mini_batches_refuses_labels_of_another_width():
    X, Y = data.load_moons()
    with pytest.raises(ValueError, match=r"Y must hold one label per column of X \(300\)"):
        course.random_mini_batches(X, Y[:, :10])
    with pytest.raises(ValueError, match="X must be 2-D"):
        course.random_mini_batches(X[0], Y)
