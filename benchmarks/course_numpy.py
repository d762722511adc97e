"""The course's training loop in plain NumPy: the baseline every other contender is measured against.

Written from the lesson's formulas, not from its notebook: He initialisation after seeding with 3,
LINEAR->ReLU hidden layers and a sigmoid output, backpropagation by hand, Adam with bias correction
(eps outside the square root), and per epoch i a shuffle seeded with ``11 + i`` cut into mini-batches.
Examples are columns, as in the course. Everything runs in float64 unless another dtype is asked for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

INIT_SEED = 3  # the course seeds NumPy with 3 before drawing the weights
FIRST_SHUFFLE_SEED = 11  # the course's seed starts at 10 and is incremented before each epoch


def init_params(layers_dims: list[int], dtype=np.float64) -> dict[str, np.ndarray]:
    """He initialisation: ``W_l = randn(n_l, n_{l-1}) * sqrt(2 / n_{l-1})``, ``b_l = 0``."""
    rng = np.random.RandomState(INIT_SEED)
    params = {}
    for l in range(1, len(layers_dims)):
        fan_in = layers_dims[l - 1]
        weights = rng.randn(layers_dims[l], fan_in) * np.sqrt(2 / fan_in)
        params[f"W{l}"] = weights.astype(dtype)
        params[f"b{l}"] = np.zeros((layers_dims[l], 1), dtype)
    return params


def forward(params: dict[str, np.ndarray], X: np.ndarray) -> list[np.ndarray]:
    """Activations of every layer, input first: ``[X, a1, ..., aL]`` with ``aL = sigmoid(zL)``."""
    L = len(params) // 2
    activations = [X]
    for l in range(1, L + 1):
        z = params[f"W{l}"] @ activations[-1] + params[f"b{l}"]
        activations.append(np.maximum(z, 0) if l < L else 1 / (1 + np.exp(-z)))
    return activations


def summed_cross_entropy(aL: np.ndarray, Y: np.ndarray) -> float:
    """The course's ``compute_cost``: cross-entropy summed (not averaged) over the columns."""
    return float(np.sum(-Y * np.log(aL) - (1 - Y) * np.log(1 - aL)))


def backward(
    params: dict[str, np.ndarray], activations: list[np.ndarray], Y: np.ndarray
) -> dict[str, np.ndarray]:
    """Gradients of the mean cross-entropy over the batch, keyed like the params.

    At the sigmoid output ``dz_L = (a_L - Y) / m``; through a hidden ReLU layer
    ``dz_l = (W_{l+1}^T dz_{l+1}) * [a_l > 0]``; then ``dW_l = dz_l a_{l-1}^T`` and ``db_l`` is the
    row sum of ``dz_l``.
    """
    L = len(params) // 2
    m = Y.shape[1]
    grads = {}
    dz = (activations[L] - Y) / m
    for l in range(L, 0, -1):
        grads[f"W{l}"] = dz @ activations[l - 1].T
        grads[f"b{l}"] = np.sum(dz, axis=1, keepdims=True)
        if l > 1:
            dz = (params[f"W{l}"].T @ dz) * (activations[l - 1] > 0)
    return grads


def adam_step(
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    v: dict[str, np.ndarray],
    s: dict[str, np.ndarray],
    t: int,
    learning_rate: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> None:
    """One Adam update in place, t = 1 at the first update.

    ``v = b1 v + (1-b1) g;  s = b2 s + (1-b2) g^2;  p -= lr (v/(1-b1^t)) / (sqrt(s/(1-b2^t)) + eps)``.
    """
    for key, g in grads.items():
        v[key] = beta1 * v[key] + (1 - beta1) * g
        s[key] = beta2 * s[key] + (1 - beta2) * g**2
        v_corrected = v[key] / (1 - beta1**t)
        s_corrected = s[key] / (1 - beta2**t)
        params[key] = params[key] - learning_rate * v_corrected / (np.sqrt(s_corrected) + epsilon)


def mini_batches(
    X: np.ndarray, Y: np.ndarray, mini_batch_size: int, rng: np.random.RandomState, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffle the columns after seeding with ``seed`` and cut them into batches, the last smaller.

    ``rng`` is re-seeded rather than rebuilt: it draws what ``np.random.seed(seed)`` followed by
    ``np.random.permutation`` would, at the same cost, without touching NumPy's global generator.
    """
    rng.seed(seed)
    order = rng.permutation(X.shape[1])
    X, Y = X[:, order], Y[:, order]
    return [
        (X[:, start : start + mini_batch_size], Y[:, start : start + mini_batch_size])
        for start in range(0, X.shape[1], mini_batch_size)
    ]


def momentum_step(params, grads, v, learning_rate: float, beta: float = 0.9) -> None:
    """One EMA-momentum update in place: ``v = beta v + (1 - beta) g;  p -= lr v``."""
    for key, g in grads.items():
        v[key] = beta * v[key] + (1 - beta) * g
        params[key] = params[key] - learning_rate * v[key]


def train(
    X: np.ndarray,
    Y: np.ndarray,
    layers_dims: list[int],
    *,
    optimizer: str = "adam",
    learning_rate: float = 0.0007,
    mini_batch_size: int = 64,
    beta: float = 0.9,
    num_epochs: int = 5000,
    decay: Callable[[float, int, float], float] | None = None,
    decay_rate: float = 1.0,
    dtype=np.float64,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The course's ``model(...)`` without the printing: ``optimizer`` is "gd", "momentum" or
    "adam"; ``decay(lr0, epoch, decay_rate)`` sets the rate *after* each epoch, as the course does.

    Returns:
      ``(params, costs)``: the trained params and, per epoch, the summed cross-entropy of its
      mini-batches (each measured before its update) over m, the course's ``cost_avg``.
    """
    X, Y = np.asarray(X, dtype), np.asarray(Y, dtype)
    m = X.shape[1]
    params = init_params(layers_dims, dtype)
    v = {key: np.zeros_like(p) for key, p in params.items()}
    s = {key: np.zeros_like(p) for key, p in params.items()}
    rng = np.random.RandomState()
    costs = np.empty(num_epochs)
    lr = learning_rate
    t = 0
    for epoch in range(num_epochs):
        cost_total = 0.0
        for xb, yb in mini_batches(X, Y, mini_batch_size, rng, FIRST_SHUFFLE_SEED + epoch):
            activations = forward(params, xb)
            cost_total += summed_cross_entropy(activations[-1], yb)
            grads = backward(params, activations, yb)
            if optimizer == "gd":
                for key, g in grads.items():
                    params[key] = params[key] - lr * g
            elif optimizer == "momentum":
                momentum_step(params, grads, v, lr, beta)
            else:
                t += 1
                adam_step(params, grads, v, s, t, lr)
        costs[epoch] = cost_total / m
        if decay is not None:
            lr = decay(learning_rate, epoch, decay_rate)
    return params, costs
