"""The assignment's functions, names, signatures and printouts, as thin wrappers over the core.

A learner's notebook that calls ``model(train_X, train_Y, layers_dims, optimizer="adam")`` runs
unchanged, but every epoch runs inside :func:`jaxopt_lab.train.fit`'s compiled loop.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import data, optimizers, schedules, train
from jaxopt_lab import model as net
from jaxopt_lab.settings import InvalidValue, check, factory_arguments

update_lr = schedules.update_lr
schedule_lr_decay = schedules.schedule_lr_decay
PRINT_EVERY = 1000


def load_dataset() -> tuple[np.ndarray, np.ndarray]:
    """The course's 300 two-moons points: ``train_X`` (2, 300), ``train_Y`` (1, 300)."""
    return data.load_moons()


def initialize_parameters(layers_dims: list[int]) -> dict[str, jax.Array]:
    """The course's He initialisation (``np.random.seed(3)``)."""
    return net.init_params(layers_dims)


def compute_cost(a3, Y) -> jax.Array:
    """Summed (not averaged) cross-entropy of the output activations ``a3`` against ``Y``."""
    a3, Y = jnp.asarray(a3), jnp.asarray(Y)
    return jnp.sum(-Y * jnp.log(a3) - (1 - Y) * jnp.log(1 - a3))


def random_mini_batches(X, Y, mini_batch_size: int = 64, seed: int = 0) -> list[tuple]:
    """Shuffle the columns with ``np.random.seed(seed)`` and cut them into mini-batches.

    Raises:
      ValueError: X is not (n_x, m), Y does not have m columns, the batch size is not a positive
        integer, or the seed is not one NumPy accepts (0 to 2**32 - 1).
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or X.shape[1] == 0:
        raise InvalidValue("X", f"must be 2-D (n_x, m) with m >= 1 examples as columns, got {X.shape}")
    m = X.shape[1]
    if Y.size != m:
        raise InvalidValue("Y", f"must hold one label per column of X ({m}), got shape {Y.shape}")
    check("mini_batch_size", mini_batch_size)
    check("seeds", seed, name="seed")  # any NumPy seed: [0, 2**32 - 1]
    perm = data.course_permutation(m, seed)
    shuffled_X, shuffled_Y = X[:, perm], Y[:, perm].reshape(1, m)
    batches, start = [], 0
    for size in data.batch_sizes(m, mini_batch_size):
        batches.append((shuffled_X[:, start : start + size], shuffled_Y[:, start : start + size]))
        start += size
    return batches


def _grads_as_params(grads: dict) -> dict:
    # The course keys gradients "dW1", "db1", ...; the optimizers want the params' own keys.
    return {key[1:]: value for key, value in grads.items()}


def _params_as_grads(tree: dict) -> dict:
    return {"d" + key: value for key, value in tree.items()}


def _apply(opt: optax.GradientTransformation, parameters, grads, state):
    updates, state = opt.update(_grads_as_params(grads), state, parameters)
    return optax.apply_updates(parameters, updates), state


def update_parameters_with_gd(parameters, grads, learning_rate):
    """One gradient-descent step: ``W -= learning_rate * dW`` for every parameter."""
    opt = optimizers.gd(learning_rate)
    parameters, _ = _apply(opt, parameters, grads, opt.init(parameters))
    return parameters


def initialize_velocity(parameters) -> dict:
    """Zero velocities ``{"dW1": 0, "db1": 0, ...}`` shaped like the parameters."""
    return _params_as_grads(jax.tree.map(jnp.zeros_like, parameters))


def update_parameters_with_momentum(parameters, grads, v, beta, learning_rate):
    """One momentum step; returns ``(parameters, v)``."""
    opt = optimizers.momentum(learning_rate, beta)
    _, lr_state = opt.init(parameters)
    state = (optimizers.ScaleByMomentumState(_grads_as_params(v)), lr_state)
    parameters, (momentum_state, _) = _apply(opt, parameters, grads, state)
    return parameters, _params_as_grads(momentum_state.velocity)


def initialize_adam(parameters) -> tuple[dict, dict]:
    """Zero first and second moments ``v, s`` keyed like gradients."""
    return initialize_velocity(parameters), initialize_velocity(parameters)


def update_parameters_with_adam(
    parameters, grads, v, s, t, learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8
):
    """One Adam step at step t (1 at the first update).

    Returns:
      ``parameters, v, s, v_corrected, s_corrected`` as the assignment does.
    """
    opt = optimizers.adam(learning_rate, beta1, beta2, epsilon)
    _, lr_state = opt.init(parameters)
    adam_state = optimizers.ScaleByAdamState(
        jnp.asarray(t - 1, jnp.int32), _grads_as_params(v), _grads_as_params(s)
    )
    parameters, (adam_state, _) = _apply(opt, parameters, grads, (adam_state, lr_state))
    v, s = _params_as_grads(adam_state.mu), _params_as_grads(adam_state.nu)
    v_corrected = {k: value / (1 - beta1**t) for k, value in v.items()}
    s_corrected = {k: value / (1 - beta2**t) for k, value in s.items()}
    return parameters, v, s, v_corrected, s_corrected


COURSE_OPTIMIZERS = ("gd", "momentum", "adam")  # the assignment's; RMSprop is not among them


def _course_optimizer(name, learning_rate, **settings):
    if name not in COURSE_OPTIMIZERS:
        raise InvalidValue("optimizer", f"must be 'gd', 'momentum' or 'adam', got {name!r}")
    factory = optimizers.OPTIMIZERS[name]
    return factory(learning_rate, **factory_arguments(factory, settings))


def decay_table(decay: Callable, learning_rate0: float, decay_rate: float, num_epochs: int):
    """The rate each epoch trains at under the course's loop: lr0, then ``decay(lr0, e - 1, rate)``.

    Evaluated on the host, so any Python decay function with the course's signature works, and in
    float64 as the course computes it.
    """
    rates = [learning_rate0] + [decay(learning_rate0, e, decay_rate) for e in range(num_epochs - 1)]
    return np.asarray(rates, dtype=np.float64)


def model(
    X,
    Y,
    layers_dims,
    optimizer,
    learning_rate=0.0007,
    mini_batch_size=64,
    beta=0.9,
    beta1=0.9,
    beta2=0.999,
    epsilon=1e-8,
    num_epochs=5000,
    print_cost=True,
    decay=None,
    decay_rate=1,
):
    """The assignment's training loop, run as one fused program by :func:`train.fit`.

    Prints ``Cost after epoch i: c`` every 1000 epochs (and the learning rate after that epoch when
    ``decay`` is given), as each chunk of epochs completes. Returns the trained parameters.
    """
    m = np.shape(X)[1]
    lr = learning_rate
    if decay is not None:
        table = decay_table(decay, learning_rate, decay_rate, num_epochs + 1)
        steps_per_epoch = len(data.batch_sizes(m, mini_batch_size))
        lr = schedules.per_step(schedules.epoch_table(table[:num_epochs]), steps_per_epoch)
    opt = _course_optimizer(optimizer, lr, beta=beta, beta1=beta1, beta2=beta2, epsilon=epsilon)

    printed = 0

    def report(state: train.TrainState) -> None:
        nonlocal printed
        for epoch in range(printed, state.epoch):
            if print_cost and epoch % PRINT_EVERY == 0:
                print("Cost after epoch %i: %f" % (epoch, state.costs[epoch]))
                if decay is not None:
                    print("learning rate after epoch %i: %f" % (epoch, table[epoch + 1]))
        printed = state.epoch

    result = train.fit(
        X, Y, layers_dims, opt, num_epochs=num_epochs, mini_batch_size=mini_batch_size,
        chunk_epochs=PRINT_EVERY, on_chunk=report,
    )  # fmt: skip
    return result.params


def predict(X, y, parameters):
    """0/1 predictions of shape (1, m); prints ``Accuracy: a`` as the course does."""
    p = np.asarray(net.predict(parameters, jnp.asarray(X, jnp.result_type(float))))
    print("Accuracy: " + str(np.mean(p[0, :] == np.asarray(y)[0, :])))
    return p
