"""Checkpoints (atomic saves, resume bit for bit) and interrupts at chunk boundaries, with real
processes where the behaviour is about processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxopt_lab import checkpoints, data, optimizers, train

LAYERS = [2, 5, 2, 1]
X, Y = data.load_moons()


def assert_trees_equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [None, 3])
def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path, seed):
    opt = optimizers.adam(0.01)
    full = train.fit(X, Y, LAYERS, opt, num_epochs=60, seed=seed, chunk_epochs=20)
    ckpt = checkpoints.Checkpointer(tmp_path, every=20, config={"lr": 0.01, "seed": seed})
    train.fit(X, Y, LAYERS, opt, num_epochs=40, seed=seed, chunk_epochs=20, on_chunk=ckpt)
    state = ckpt.restore(train.init_state(LAYERS, opt, seed))
    assert state.epoch == 40
    resumed = train.fit(X, Y, LAYERS, opt, num_epochs=60, seed=seed, chunk_epochs=20, state=state)
    np.testing.assert_array_equal(resumed.costs, full.costs)
    assert_trees_equal(resumed.params, full.params)
    assert_trees_equal(resumed.opt_state, full.opt_state)


def test_checkpointer_keeps_the_newest_and_refuses_another_config(tmp_path):
    opt = optimizers.momentum(0.05)
    ckpt = checkpoints.Checkpointer(tmp_path, every=10, config={"lr": 0.05}, keep=2)
    train.fit(X, Y, LAYERS, opt, num_epochs=40, chunk_epochs=10, on_chunk=ckpt)
    assert [p.name for p in ckpt.paths()] == ["ckpt_000000030.npz", "ckpt_000000040.npz"]
    template = train.init_state(LAYERS, opt)
    with pytest.raises(ValueError, match="lr: 0.05 there vs 0.1 now"):
        checkpoints.Checkpointer(tmp_path, every=10, config={"lr": 0.1}).restore(template)
    with pytest.raises(ValueError, match="does not fit"):
        ckpt.restore(train.init_state([2, 4, 1], opt))
    assert (
        checkpoints.Checkpointer(tmp_path / "empty", every=10, config={}).restore(template) is None
    )


def test_a_crash_during_save_leaves_the_previous_checkpoint_readable(tmp_path, monkeypatch):
    opt = optimizers.adam(0.01)
    ckpt = checkpoints.Checkpointer(tmp_path, every=10, config={})
    first = train.fit(X, Y, LAYERS, opt, num_epochs=10, chunk_epochs=10, on_chunk=ckpt)
    before = ckpt.paths()

    real_savez = np.savez

    def savez_then_crash(file, **arrays):
        real_savez(file, **arrays)  # the bytes are written, the rename has not happened yet
        raise OSError("disk gone")

    monkeypatch.setattr(np, "savez", savez_then_crash)
    state = train.TrainState(first.params, first.opt_state, 20, np.zeros(20))
    with pytest.raises(OSError, match="disk gone"):
        ckpt.save(state)
    monkeypatch.undo()

    assert ckpt.paths() == before
    assert not list(tmp_path.glob(".tmp-*"))
    # A temp file left by a killed process is never taken for a checkpoint.
    (tmp_path / ".tmp-killed.npz").write_bytes(b"half a file")
    restored = ckpt.restore(train.init_state(LAYERS, opt))
    assert restored.epoch == 10
    assert_trees_equal(restored.params, first.params)


# ---------------------------------------------------------------------------------------------
# A real SIGINT to a real process
# ---------------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from jaxopt_lab import checkpoints, data, optimizers, train

    X, Y = data.load_moons()
    opt = optimizers.adam(0.01)
    ckpt = checkpoints.Checkpointer(sys.argv[1], every=10**9, config={"lr": 0.01})

    def on_chunk(state):
        if state.epoch == 20:
            print("ready", flush=True)
        interrupt.check(state)

    with checkpoints.DeferredInterrupt() as interrupt:
        try:
            train.fit(X, Y, [2, 5, 2, 1], opt, num_epochs=10**6, seed=1, chunk_epochs=20,
                      on_chunk=on_chunk)
        except checkpoints.TrainingInterrupted as stop:
            ckpt.save(stop.state)
            print(f"interrupted at epoch {stop.state.epoch}", flush=True)
            sys.exit(130)
    """
)


def test_sigint_saves_at_the_chunk_boundary_and_the_run_resumes_exactly(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    epoch = int(out.strip().rsplit(" ", 1)[-1])
    assert epoch >= 20 and epoch % 20 == 0

    opt = optimizers.adam(0.01)
    ckpt = checkpoints.Checkpointer(tmp_path, every=10**9, config={"lr": 0.01})
    state = ckpt.restore(train.init_state(LAYERS, opt, seed=1))
    assert state.epoch == epoch
    resumed = train.fit(X, Y, LAYERS, opt, num_epochs=epoch + 20, seed=1, state=state)
    straight = train.fit(X, Y, LAYERS, opt, num_epochs=epoch + 20, seed=1, chunk_epochs=20)
    np.testing.assert_array_equal(resumed.costs, straight.costs)
    assert_trees_equal(resumed.params, straight.params)


def test_deferred_interrupt_restores_the_previous_handler():
    before = signal.getsignal(signal.SIGINT)
    with checkpoints.DeferredInterrupt() as interrupt:
        assert signal.getsignal(signal.SIGINT) != before
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested
        with pytest.raises(checkpoints.TrainingInterrupted):
            interrupt.check(train.TrainState({}, (), 5, np.zeros(5)))
    assert signal.getsignal(signal.SIGINT) == before
