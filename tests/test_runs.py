"""The lesson's named runs: RunConfig's optimizers and schedules, the seven course runs, sweeps."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import jax
import numpy as np
import pytest

from jaxopt_lab import data, optimizers, runs, train
from jaxopt_lab.settings import InvalidValue


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


# ---------------------------------------------------------------------------------------------
# A whole run from a script: checkpoints, a signal, resume bit for bit
# ---------------------------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import sys
    from jaxopt_lab import runs, runtime

    config = runs.RunConfig("adam", 0.01, epochs=10**6, seed=3)
    said = False

    def on_progress(progress):
        global said
        if progress.epoch >= 200 and not said:
            said = True
            print("ready", flush=True)

    try:
        runs.train_run(config, checkpoint_dir=sys.argv[1], checkpoint_every=100,
                       on_progress=on_progress)
    except runtime.Stopped as stop:
        print(stop.state.epoch, stop.saved, flush=True)
        sys.exit(stop.exit_status)
    """
)


def test_train_run_is_stopped_by_ctrl_c_saves_and_resumes_bit_for_bit(tmp_path):
    folder = tmp_path / "ckpt"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(folder)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)  # SIGTERM and SIGHUP: the command's tests (test_checkpoints)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    epoch, saved = out.split()
    epoch = int(epoch)
    assert epoch % 100 == 0 and epoch >= 200
    assert saved == str(folder / f"ckpt_{epoch:09d}.npz") and os.path.isfile(saved)

    config = runs.RunConfig("adam", 0.01, epochs=epoch + 100, seed=3)
    starts = []
    resumed = runs.train_run(config, checkpoint_dir=folder, checkpoint_every=100, resume=True,
                             on_progress=starts.append)  # fmt: skip
    straight = runs.train_run(config)
    assert starts[0].epoch == epoch and starts[0].skipped == ()
    np.testing.assert_array_equal(resumed.costs, straight.costs)
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The end was saved too, and a fresh start over that folder is refused: nothing is overwritten.
    assert (folder / f"ckpt_{epoch + 100:09d}.npz").is_file()
    with pytest.raises(InvalidValue, match="already holds checkpoints: pass resume") as caught:
        runs.train_run(config, checkpoint_dir=folder, checkpoint_every=100)
    assert caught.value.setting == "checkpoint_dir"


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"resume": True}, "resume"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"config": runs.RunConfig(decay="linear")}, "decay"),
        ({"config": runs.RunConfig(optimizer="sgd")}, "optimizer"),
        ({"config": runs.RunConfig(beta2=1.0)}, "beta2"),
    ],
)
def test_train_run_refuses_bad_settings_before_training(kwargs, setting, tmp_path):
    kwargs = {"config": runs.RunConfig(epochs=1), **kwargs}
    with pytest.raises(InvalidValue) as caught:
        runs.train_run(kwargs.pop("config"), **kwargs)
    assert caught.value.setting == setting


# ---------------------------------------------------------------------------------------------
# compile_seconds is each run's own, also when runs share the process in threads
# ---------------------------------------------------------------------------------------------


def test_each_thread_s_fit_reports_only_its_own_compilation():
    X, Y = data.load_moons()
    fit = functools.partial(train.fit, X, Y, runs.LAYERS_DIMS)
    fit(optimizers.adam(0.01), num_epochs=1000)  # the program the long run will use, compiled

    def pair():
        running, compiled = threading.Event(), threading.Event()
        results = {}

        def long_run():
            def hold(state):  # stay inside the run until the other one has compiled and finished
                running.set()
                assert compiled.wait(120)

            results["warm"] = fit(optimizers.adam(0.02), num_epochs=2000, on_chunk=hold)

        def fresh_run():
            assert running.wait(120)
            # A batch size no other test uses: its program is compiled here, while the other runs.
            results["fresh"] = fit(optimizers.adam(0.01), num_epochs=3, mini_batch_size=37)
            compiled.set()

        start = time.perf_counter()
        threads = [threading.Thread(target=long_run), threading.Thread(target=fresh_run)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        return results["warm"], results["fresh"], time.perf_counter() - start

    warm, fresh, wall = pair()
    assert warm.compile_seconds == 0.0
    assert fresh.compile_seconds > 0.0
    assert warm.compile_seconds + fresh.compile_seconds <= wall
    assert warm.run_seconds >= 0 and fresh.run_seconds >= 0
    warm, fresh, _ = pair()  # everything compiled: neither run reports compilation
    assert (warm.compile_seconds, fresh.compile_seconds) == (0.0, 0.0)


def test_compare_trains_in_the_precision_of_the_thread_that_calls_it():
    # jax.enable_x64 holds for the thread that enters it; compare's worker threads follow it.
    short = [(label, config._replace(epochs=20)) for label, config in runs.COURSE_RUNS[:2]]
    with jax.enable_x64(True):
        _, fitted = runs.compare(short)  # GD and momentum: one program, trained on one thread
    assert [fit.costs.dtype for fit in fitted] == [np.float64] * 2
    _, fitted = runs.compare(short)
    assert [fit.costs.dtype for fit in fitted] == [np.float32] * 2
