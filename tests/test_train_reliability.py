"""Refusals, divergence, checkpoints and interrupts of train.fit (issue: reliability)."""

from __future__ import annotations

import math
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import data, optimizers, schedules, train

LAYERS = [2, 5, 2, 1]
X, Y = data.load_moons()


# ---------------------------------------------------------------------------------------------
# Refusals: each bad input raises ValueError naming the argument.
# ---------------------------------------------------------------------------------------------

BAD_FIT_ARGS = [
    ("X", {"X": X[0]}),
    ("X", {"X": np.zeros((2, 0))}),
    ("X", {"X": np.where(X > 1.5, np.nan, X)}),
    ("X", {"X": np.where(X > 1.5, np.inf, X)}),
    ("X", {"X": X * 1e39}),  # finite in float64, infinite in the run's float32
    ("Y", {"Y": Y[:, :10]}),
    ("Y", {"Y": Y.ravel()}),
    ("Y", {"Y": Y * 2}),
    ("Y", {"Y": Y - 0.5}),
    ("layers_dims", {"layers_dims": [3, 5, 1]}),
    ("layers_dims", {"layers_dims": [2, 5, 2]}),
    ("layers_dims", {"layers_dims": [2, 0, 1]}),
    ("layers_dims", {"layers_dims": [2, -5, 1]}),
    ("layers_dims", {"layers_dims": [2, 2.5, 1]}),
    ("layers_dims", {"layers_dims": [2]}),
    ("layers_dims", {"layers_dims": "2,5,1"}),
    ("num_epochs", {"num_epochs": 0}),
    ("num_epochs", {"num_epochs": -3}),
    ("num_epochs", {"num_epochs": 1.5}),
    ("mini_batch_size", {"mini_batch_size": 0}),
    ("mini_batch_size", {"mini_batch_size": 2.5}),
    ("mini_batch_size", {"mini_batch_size": True}),
    ("seed", {"seed": "1"}),
    ("seed", {"seed": 1.0}),
    ("chunk_epochs", {"chunk_epochs": 0}),
    # complex features would silently lose their imaginary part
    ("X", {"X": X + 1j}),
    ("X", {"X": X.astype(str)}),
    ("seed", {"seed": -1}),
    ("seed", {"seed": train.MAX_SEED + 1}),  # float32 keys keep 32 bits: it would equal seed 0
    ("seed", {"seed": 2**63}),
    ("num_epochs", {"num_epochs": train.MAX_EPOCHS + 1}),
    ("optimizer", {"optimizer": "adam"}),
    ("optimizer", {"optimizer": None}),
    ("optimizer", {"optimizer": optimizers.adam}),  # the factory, not called
    ("on_chunk", {"on_chunk": 5}),
    ("state", {"state": "checkpoint.npz"}),
]


@pytest.mark.parametrize(("name", "change"), BAD_FIT_ARGS)
def test_fit_refuses_bad_input_naming_it(name, change):
    args = {"X": X, "Y": Y, "layers_dims": LAYERS, "optimizer": optimizers.gd(0.1)}
    kwargs = {"num_epochs": 2}
    kwargs.update({k: v for k, v in change.items() if k not in args})
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(ValueError, match=name) as caught:
        train.fit(args["X"], args["Y"], args["layers_dims"], args["optimizer"], **kwargs)
    assert "\n" not in str(caught.value)  # one line


def test_fit_refuses_a_state_past_num_epochs_or_from_another_optimizer():
    states = []
    train.fit(
        X, Y, LAYERS, optimizers.gd(0.1), num_epochs=4, chunk_epochs=2, on_chunk=states.append
    )
    with pytest.raises(ValueError, match="state is at epoch 4, past num_epochs=2"):
        train.fit(X, Y, LAYERS, optimizers.gd(0.1), num_epochs=2, state=states[-1])
    # Adam's state has moments that gradient descent's has not
    with pytest.raises(ValueError, match="state does not fit"):
        train.fit(X, Y, LAYERS, optimizers.adam(0.1), num_epochs=6, state=states[-1])


def test_bfloat16_features_train_as_their_float32_values():
    X_bf16 = jnp.asarray(X, jnp.bfloat16)
    low = train.fit(X_bf16, Y, LAYERS, optimizers.gd(0.1), num_epochs=2)
    same = train.fit(np.asarray(X_bf16, np.float32), Y, LAYERS, optimizers.gd(0.1), num_epochs=2)
    np.testing.assert_array_equal(low.costs, same.costs)
    assert np.all(np.isfinite(low.costs))


class _Stop(Exception):
    pass


def test_a_huge_num_epochs_allocates_per_chunk_not_up_front():
    # Before, fit allocated every epoch's cost at the start: 4 bytes x 2**31 - 1 epochs = 8 GiB.
    def stop(state):
        raise _Stop(state.epoch)

    tracemalloc.start()
    try:
        with pytest.raises(_Stop):
            train.fit(X, Y, LAYERS, optimizers.gd(0.1), num_epochs=train.MAX_EPOCHS,
                      chunk_epochs=2, on_chunk=stop)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


BAD_OPTIMIZER_ARGS = [
    ("learning_rate", lambda: optimizers.gd(0.0)),
    ("learning_rate", lambda: optimizers.gd(-0.1)),
    ("learning_rate", lambda: optimizers.adam(math.nan)),
    ("learning_rate", lambda: optimizers.adam(math.inf)),
    ("learning_rate", lambda: optimizers.adam("0.1")),
    ("learning_rate", lambda: optimizers.adam(jnp.array([0.1, -1.0]))),
    ("beta", lambda: optimizers.momentum(0.1, beta=1.0)),
    ("beta", lambda: optimizers.momentum(0.1, beta=-0.01)),
    ("b1", lambda: optimizers.adam(0.1, b1=1.0)),
    ("b1", lambda: optimizers.adam(0.1, b1=-0.5)),
    ("b2", lambda: optimizers.adam(0.1, b2=1.5)),
    ("b2", lambda: optimizers.adam(0.1, b2=np.array([0.9, 1.0]))),
    ("eps", lambda: optimizers.adam(0.1, eps=-1e-8)),
    ("eps", lambda: optimizers.rmsprop(0.1, eps=math.nan)),
    ("decay", lambda: optimizers.rmsprop(0.1, decay=1.0)),
    ("decay_rate", lambda: schedules.inverse_time(0.1, -1.0)),
    ("decay_rate", lambda: schedules.fixed_interval(0.1, math.inf)),
    ("time_interval", lambda: schedules.fixed_interval(0.1, 1.0, 0)),
    ("learning_rate", lambda: schedules.fixed_interval(-0.1, 1.0)),
    ("steps_per_epoch", lambda: schedules.per_step(schedules.inverse_time(0.1, 1.0), 0)),
    ("epoch_rule", lambda: schedules.per_step(0.1, 5)),
]


@pytest.mark.parametrize(("name", "make"), BAD_OPTIMIZER_ARGS)
def test_factories_refuse_bad_hyperparameters_naming_them(name, make):
    with pytest.raises(ValueError, match=name):
        make()


def test_boundary_values_are_accepted():
    # The edges of the documented ranges are legal: beta 0 is plain GD, the smallest normal eps
    # of the run's float, decay rate 0.
    optimizers.momentum(0.1, beta=0.0)
    optimizers.adam(0.1, b1=0.0, b2=0.0, eps=float(np.finfo(np.float32).tiny))
    optimizers.adam(lambda step: 0.1)
    schedules.fixed_interval(0.1, 0.0, 1)


def test_traced_hyperparameters_are_not_checked():
    # Inside jit the value is unknown when the factory runs: it must build, not raise.
    def first_update(lr):
        opt = optimizers.adam(lr)
        return opt.update(jnp.ones(2), opt.init(jnp.ones(2)))[0]

    out = jax.jit(first_update)(-0.1)  # a negative rate, taken as given under tracing
    np.testing.assert_allclose(np.asarray(out), [0.1, 0.1], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Divergence
# ---------------------------------------------------------------------------------------------


def test_divergence_stops_at_the_chunk_and_names_the_first_bad_epoch():
    # A learning rate growing tenfold every 2 epochs overflows the weights after some 70 epochs.
    opt = optimizers.gd(lambda step: 0.01 * 10.0 ** (step / 10))
    with pytest.raises(train.DivergenceError) as info:
        train.fit(X, Y, LAYERS, opt, num_epochs=200, chunk_epochs=1, seed=0)
    first_bad = info.value.epoch
    assert 10 < first_bad < 200
    assert not np.isfinite(info.value.state.costs[first_bad])

    with pytest.raises(train.DivergenceError) as info:
        train.fit(X, Y, LAYERS, opt, num_epochs=200, chunk_epochs=25, seed=0)
    err = info.value
    assert err.epoch == first_bad
    assert f"epoch {first_bad}" in str(err)
    # It stopped at the end of the chunk holding that epoch, not at the end of the run.
    assert err.state.epoch == (first_bad // 25 + 1) * 25
    assert np.all(np.isfinite(err.state.costs[:first_bad]))


# Values valid in float64 that round out of range in the run's float32: refused there, kept in x64.
EDGE_OF_FLOAT32 = [
    ("beta", lambda: optimizers.momentum(0.1, beta=0.99999999999), "rounds to 1.0"),
    ("b1", lambda: optimizers.adam(0.1, b1=0.99999999999), "rounds to 1.0"),
    ("b2", lambda: optimizers.adam(0.1, b2=0.999999999999), "rounds to 1.0"),
    ("decay", lambda: optimizers.rmsprop(0.1, decay=0.99999999999), "rounds to 1.0"),
    ("learning_rate", lambda: optimizers.gd(1e-50), "rounds to 0.0"),
    ("learning_rate", lambda: optimizers.adam(1e39), "rounds to inf"),
]


@pytest.mark.parametrize(("name", "make", "why"), EDGE_OF_FLOAT32)
def test_values_that_round_out_of_range_in_float32_are_refused_there(name, make, why):
    with pytest.raises(ValueError, match=rf"^{name} must be .* in float32, .* {why}"):
        make()


@pytest.mark.parametrize(("name", "make", "why"), EDGE_OF_FLOAT32[:5])
def test_the_same_values_are_accepted_in_float64(x64, name, make, why):
    make()


def test_features_beyond_float32_are_refused_there_and_accepted_in_float64():
    huge = X * 1e39
    with pytest.raises(ValueError, match=r"^X must hold numbers finite in float32, .* overflows"):
        train.check_fit_args(huge, Y, LAYERS, num_epochs=1, mini_batch_size=64, seed=None, chunk_epochs=None)
    with jax.enable_x64(True):
        train.check_fit_args(huge, Y, LAYERS, num_epochs=1, mini_batch_size=64, seed=None, chunk_epochs=None)
