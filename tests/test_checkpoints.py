"""Checkpoints (atomic saves, resume bit for bit) and interrupts at chunk boundaries, with real
processes where the behaviour is about processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxopt_lab import __version__, checkpoints, data, optimizers, runs, runtime, train
from jaxopt_lab.settings import InvalidValue

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
# Signals at chunk boundaries (a real SIGINT to a script's run: tests/test_runs.py)
# ---------------------------------------------------------------------------------------------


def test_deferred_stops_restore_the_previous_handler():
    before = signal.getsignal(signal.SIGINT)
    with runtime.deferred_stops() as interrupt:
        assert signal.getsignal(signal.SIGINT) != before
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested
        with pytest.raises(runtime.Stopped):
            interrupt.check(train.TrainState({}, (), 5, np.zeros(5)))
    assert signal.getsignal(signal.SIGINT) == before


def test_a_signal_no_check_acted_on_is_delivered_when_the_block_ends(tmp_path):
    with pytest.raises(KeyboardInterrupt):  # Python's own SIGINT handler, found by the block
        with runtime.deferred_stops() as interrupt:
            os.kill(os.getpid(), signal.SIGINT)
            assert interrupt.requested  # not acted on: nothing raised inside
    # A file being written when the signal comes is finished first, then the signal is delivered.

    def write_slowly(f):
        f.write(b"first half ")
        os.kill(os.getpid(), signal.SIGINT)
        f.write(b"second half")

    with pytest.raises(KeyboardInterrupt):
        runtime.atomic_write(tmp_path / "whole.txt", write_slowly)
    assert (tmp_path / "whole.txt").read_bytes() == b"first half second half"
    assert [p.name for p in tmp_path.iterdir()] == ["whole.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_have_the_permissions_open_gives(tmp_path, umask):
    # mkstemp's files are 0o600: a result or a checkpoint must be as readable as any new file.
    script = (
        "import os, sys; os.umask(int(sys.argv[2], 8)); from jaxopt_lab import runtime; "
        "runtime.write_json(os.path.join(sys.argv[1], 'r.json'), {}); "
        "open(os.path.join(sys.argv[1], 'plain'), 'w').close()"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), oct(umask)[2:]],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    plain = (tmp_path / "plain").stat().st_mode & 0o777
    assert plain == 0o666 & ~umask
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == plain


# ---------------------------------------------------------------------------------------------
# Damaged, foreign and stray files in the checkpoint folder
# ---------------------------------------------------------------------------------------------


def _damage(path, how: str) -> None:
    data_ = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data_[: len(data_) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flipped":  # one byte of the first array's numbers, past its .npy header
        flipped = bytearray(data_)
        magic = data_.index(b"\x93NUMPY")
        header_length = int.from_bytes(data_[magic + 8 : magic + 10], "little")
        flipped[magic + 10 + header_length + 3] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif how == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(data_)))


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory):
    """A folder with checkpoints at epochs 10, 20 and 30 of one course-mode run (bytes cached)."""
    folder = tmp_path_factory.mktemp("three")
    opt = optimizers.adam(0.01)
    ckpt = checkpoints.Checkpointer(folder, every=10, config={"lr": 0.01}, keep=3)
    train.fit(X, Y, LAYERS, opt, num_epochs=30, chunk_epochs=10, on_chunk=ckpt)
    return {p.name: p.read_bytes() for p in ckpt.paths()}, opt


def _folder(tmp_path, files) -> checkpoints.Checkpointer:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return checkpoints.Checkpointer(tmp_path, every=10, config={"lr": 0.01}, keep=3)


@pytest.mark.parametrize("how", ["truncated", "empty", "flipped", "random"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(
    tmp_path, three_checkpoints, how
):
    files, opt = three_checkpoints
    ckpt = _folder(tmp_path, files)
    _damage(tmp_path / "ckpt_000000030.npz", how)
    state = ckpt.restore(train.init_state(LAYERS, opt))
    assert state.epoch == 20
    assert [name for name, _ in ckpt.skipped] == ["ckpt_000000030.npz"]
    # Flipped bytes: zip's CRC-32 or, past it, the saved SHA-256 of the arrays.
    expected = {"truncated": ["unreadable"], "empty": ["empty file"],
                "flipped": ["CRC", "checksum"], "random": ["unreadable"]}[how]  # fmt: skip
    assert any(word in ckpt.skipped[0][1] for word in expected), ckpt.skipped


def test_no_intact_checkpoint_is_one_error_naming_each_file(tmp_path, three_checkpoints):
    files, opt = three_checkpoints
    ckpt = _folder(tmp_path, files)
    for name in files:
        _damage(tmp_path / name, "truncated")
    with pytest.raises(ValueError, match="no intact checkpoint of this run") as error:
        ckpt.restore(train.init_state(LAYERS, opt))
    assert all(name in str(error.value) for name in files)
    assert "\n" not in str(error.value)


def test_stray_files_are_ignored_and_a_name_cannot_shadow_newer_work(tmp_path, three_checkpoints):
    files, opt = three_checkpoints
    ckpt = _folder(tmp_path, files)
    (tmp_path / "ckpt_000000090.npz.bak").write_bytes(files["ckpt_000000030.npz"])
    (tmp_path / ".tmp-killed.npz").write_bytes(b"half")
    (tmp_path / "ckpt_000000099.npz").mkdir()  # a folder with a checkpoint's name
    (tmp_path / "ckpt_1.npz").write_bytes(files["ckpt_000000030.npz"])
    # A copy of epoch 10 renamed as if it were epoch 80: the epoch inside decides.
    (tmp_path / "ckpt_000000080.npz").write_bytes(files["ckpt_000000010.npz"])
    state = ckpt.restore(train.init_state(LAYERS, opt))
    assert state.epoch == 30
    assert ckpt.skipped == [("ckpt_000000080.npz", ckpt.skipped[0][1])]
    assert "does not match the epoch saved inside (10)" in ckpt.skipped[0][1]
    ckpt.save(state)  # keeps 3: only files named exactly as checkpoints are ever removed
    assert (tmp_path / "ckpt_000000090.npz.bak").exists() and (tmp_path / "ckpt_1.npz").exists()
    assert (tmp_path / "ckpt_000000099.npz").is_dir()
    # Keeping one: the later-named stray neither pushes out the save just made nor is deleted.
    one = checkpoints.Checkpointer(tmp_path, every=10, config={"lr": 0.01}, keep=1)
    saved = one.save(state)
    assert saved.exists() and (tmp_path / "ckpt_000000080.npz").exists()
    assert not (tmp_path / "ckpt_000000020.npz").exists()


def test_a_checkpoint_of_another_run_is_skipped_for_this_run_s_own(tmp_path, three_checkpoints):
    files, opt = three_checkpoints
    other = checkpoints.Checkpointer(tmp_path, every=10, config={"lr": 0.5}, keep=9)
    mine = _folder(tmp_path, files)
    state = mine.restore(train.init_state(LAYERS, opt))
    other.save(train.TrainState(state.params, state.opt_state, 40, np.zeros(40)))
    assert mine.restore(train.init_state(LAYERS, opt)).epoch == 30
    assert "lr: 0.5 there vs 0.01 now" in mine.skipped[0][1]


def test_config_is_normalised_once_and_refused_when_not_serialisable(tmp_path):
    config = {"layers": (2, 5, 1), "lr": np.float32(0.5), "seed": np.int64(3), 7: "seven"}
    ckpt = checkpoints.Checkpointer(tmp_path, every=1, config=config)
    assert ckpt.config == {"layers": [2, 5, 1], "lr": 0.5, "seed": 3, "7": "seven"}
    opt = optimizers.gd(0.1)
    state = train.init_state(LAYERS, opt)
    ckpt.save(train.TrainState(state.params, state.opt_state, 1, np.zeros(1)))
    again = checkpoints.Checkpointer(tmp_path, every=1, config=config)
    assert again.restore(state).epoch == 1  # the round trip never refuses itself
    for bad in ({"f": lambda: 0}, {"x": float("nan")}, {"a": object()}):
        with pytest.raises(ValueError, match="config must be JSON-serialisable"):
            checkpoints.Checkpointer(tmp_path, every=1, config=bad)


# ---------------------------------------------------------------------------------------------
# Upgrades: a setting added since the save, seed mode's epoch order
# ---------------------------------------------------------------------------------------------

RUN_SEED = runs.RunConfig(epochs=20, seed=5)  # time_interval at its default (1000), unused by Adam
RUN_COURSE = runs.RunConfig(epochs=20)


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    """The checkpoint files (epochs 10 and 20) of ``train_run`` for RUN_SEED and RUN_COURSE."""
    saved = {}
    for config in (RUN_SEED, RUN_COURSE):
        folder = tmp_path_factory.mktemp("saved")
        runs.train_run(config, checkpoint_dir=folder, checkpoint_every=10)
        saved[config.seed] = {p.name: p.read_bytes() for p in folder.glob("ckpt_*.npz")}
    return saved


def _checkpoint_folder(folder, files):
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def _rewrite_meta(path, change) -> None:
    """``change(meta)`` in a checkpoint's metadata; the arrays and their SHA-256 stay valid."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        arrays = {name: f[name] for name in f.files if name != "meta"}
    change(meta)
    np.savez(path, meta=json.dumps(meta), **arrays)


def test_a_checkpoint_saved_before_a_setting_existed_resumes_bit_for_bit(tmp_path, saved_runs):
    folder = _checkpoint_folder(tmp_path / "ckpt", saved_runs[RUN_SEED.seed])
    for path in folder.iterdir():
        _rewrite_meta(path, lambda meta: meta["config"].pop("time_interval"))
    config = RUN_SEED._replace(epochs=40)
    starts = []
    resumed = runs.train_run(config, checkpoint_dir=folder, checkpoint_every=10, resume=True,
                             on_progress=lambda p: starts.append(p))  # fmt: skip
    assert starts[0].epoch == 20 and starts[0].skipped == ()  # continued, nothing passed over
    full = runs.train_run(config, checkpoint_dir=tmp_path / "full", checkpoint_every=10)
    np.testing.assert_array_equal(resumed.costs, full.costs)
    assert_trees_equal(resumed.params, full.params)
    assert_trees_equal(resumed.opt_state, full.opt_state)


@pytest.mark.parametrize(
    ("saved", "now", "reason"),
    [
        ({"time_interval": 500}, {}, "time_interval: 500 there vs 1000 now"),
        ({"time_interval": None}, {"time_interval": 500},
         "time_interval: missing there (its default 1000) vs 500 now"),
        ({"momentum_dampening": 0.5}, {}, "momentum_dampening: 0.5 there, not a setting now"),
    ],
)  # fmt: skip
def test_a_saved_setting_that_differs_is_refused_naming_it(
    tmp_path, saved_runs, saved, now, reason
):
    folder = _checkpoint_folder(tmp_path / "ckpt", saved_runs[RUN_SEED.seed])

    def change(meta):  # None: the setting is missing from the saved config
        for name, value in saved.items():
            meta["config"][name] = value
            if value is None:
                del meta["config"][name]

    for path in folder.iterdir():
        _rewrite_meta(path, change)
    with pytest.raises(InvalidValue) as refused:
        runs.train_run(RUN_SEED._replace(epochs=40, **now), checkpoint_dir=folder, resume=True)
    message = str(refused.value)
    assert message.count(reason) == 2 and "\n" not in message  # both files, one line
    assert message.count(" there") == 2  # only that setting


def test_checkpoints_record_the_epoch_order_and_a_newer_one_of_another_is_refused(
    tmp_path, saved_runs, monkeypatch
):
    folder = _checkpoint_folder(tmp_path / "ckpt", saved_runs[RUN_SEED.seed])
    newest = folder / "ckpt_000000020.npz"
    with np.load(newest, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
    assert meta["epoch_order"] == data.EPOCH_ORDER
    # The newest in another order: refused, not passed over for the older one (its epochs lost).
    _rewrite_meta(newest, lambda meta: meta.update(epoch_order="another-order", version="9.9"))
    with pytest.raises(InvalidValue) as refused:
        runs.train_run(RUN_SEED._replace(epochs=40), checkpoint_dir=folder, resume=True)
    assert str(refused.value) == (
        f"resume: {newest} was made with the seed-mode epoch order 'another-order'; this version "
        f"({__version__}) shuffles with {data.EPOCH_ORDER!r}: resume it with jaxopt_lab 9.9, or start "
        "afresh in another folder"
    )
    # Saved before orders were recorded: the order of those versions, named with them.
    _rewrite_meta(newest, lambda meta: [meta.pop("epoch_order"), meta.pop("version")])
    monkeypatch.setattr(data, "EPOCH_ORDER", "a-newer-order")
    with pytest.raises(
        InvalidValue, match=r"order 'sorted-threefry-bits'; .*jaxopt_lab <= 0\.1\.0"
    ):
        runs.train_run(RUN_SEED._replace(epochs=40), checkpoint_dir=folder, resume=True)


# ---------------------------------------------------------------------------------------------
# Real processes: signals, two runs in one folder, unwritable folders, a write fault
# ---------------------------------------------------------------------------------------------


def _cli(*argv: str, env_extra=None, launcher: str | None = None, **kwargs) -> subprocess.Popen:
    """``jaxopt-lab argv`` in a child; a ``launcher`` (Python source run with ``-c``, which must
    exec the command with the arguments it is given) prepares the child first."""
    env = {**os.environ, **(env_extra or {})}
    start = ["-m", "jaxopt_lab.cli"] if launcher is None else ["-c", launcher]
    return subprocess.Popen(
        [sys.executable, *start, *argv, "--no-progress"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )  # fmt: skip


def _wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_at_the_chunk_boundary_like_ctrl_c(tmp_path, signum, status):
    folder = tmp_path / "ckpt"
    proc = _cli("train", "--seed", "1", "--epochs", "400000", "--checkpoint-dir", str(folder),
                "--checkpoint-every", "1000")  # fmt: skip
    _wait_for(lambda: any(folder.glob("ckpt_*.npz")))
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status
    (line,) = err.strip().splitlines()
    assert line.startswith(f"jaxopt-lab: {signal.Signals(signum).name}: stopped at epoch ")
    epoch = int(line.split("stopped at epoch ")[1].split(";")[0])
    saved = checkpoints.CHECKPOINT_NAME.fullmatch(f"ckpt_{epoch:09d}.npz")
    assert saved and (folder / saved.group(0)).is_file()


@pytest.mark.parametrize(
    "command", [["compare"], ["sweep", "--learning-rate", "0.01", "--epochs", "300000"]]
)
def test_compare_and_sweep_stop_in_one_line_on_a_signal(tmp_path, command):
    # One device: the sweep then trains on one core while the test waits, not on every core.
    one = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    proc = _cli(*command, "--out", str(tmp_path / "out"), env_extra=one)
    # compare: during start-up (it trains in a few seconds); sweep: compiling or training
    time.sleep(1.5 if command == ["compare"] else 5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err
    assert err.startswith("jaxopt-lab: SIGTERM:")
    assert not (tmp_path / "out" / "compare.json").exists()


def test_a_second_run_in_the_same_folder_is_refused_and_the_first_is_untouched(tmp_path):
    folder = tmp_path / "ckpt"
    first = _cli("train", "--epochs", "100000", "--checkpoint-dir", str(folder),
                 "--checkpoint-every", "1000")  # fmt: skip
    _wait_for(lambda: any(folder.glob("ckpt_*.npz")))
    second = _cli("train", "--epochs", "300000", "--checkpoint-dir", str(folder), "--resume")
    out2, err2 = second.communicate(timeout=120)
    assert second.returncode == 2
    (line,) = err2.strip().splitlines()
    assert f"is in use by pid {first.pid} on " in line
    first.communicate(timeout=300)
    assert first.returncode == 0
    names = [p.name for p in checkpoints.Checkpointer(folder, 1, {}).paths()]
    assert names == ["ckpt_000099000.npz", "ckpt_000100000.npz"]


def test_unwritable_folders_are_refused_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for flag in ("--out", "--checkpoint-dir"):
        proc = _cli("train", "--epochs", "100000000", flag, str(blocker / "sub"))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2
        (line,) = err.strip().splitlines()
        assert line.startswith(f"jaxopt-lab: error: {flag} {blocker / 'sub'}: cannot write there")
        assert out == ""  # refused before the first epoch


def test_a_write_fault_at_the_end_is_one_line_and_the_checkpoints_stay_intact(tmp_path):
    folder, out = tmp_path / "ckpt", tmp_path / "out"
    # The limit is set in the child before it becomes the command (no preexec_fn: this process
    # runs JAX's threads, and a fork from it may deadlock). result.json (1000 costs) is larger
    # than 16 kB; checkpoints are not. So are a compiled program and matplotlib's font list: the
    # compilation cache is off, and the font list is written before the limit (else, when this
    # test is the first command to need them, each write fails with a warning of its own).
    limited = (
        "import os, resource, sys; import matplotlib.font_manager; "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'jaxopt_lab.cli', *sys.argv[1:]])"
    )
    proc = _cli("train", "--epochs", "2000", "--checkpoint-dir", str(folder), "--out", str(out),
                launcher=limited, env_extra={"JAXOPT_LAB_NO_CACHE": "1"})  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("jaxopt-lab: error: ") and "File too large" in line
    assert not (out / "result.json").exists()  # never half a file
    ckpt = checkpoints.Checkpointer(folder, 1, {})
    assert [p.name for p in ckpt.paths()] == ["ckpt_000001000.npz", "ckpt_000002000.npz"]


@pytest.mark.parametrize("content", ["missing", "empty", "temp file only"])
def test_resume_with_nothing_to_resume_from_is_an_error(tmp_path, content):
    folder = tmp_path / "ckpt"
    if content != "missing":
        folder.mkdir()
    if content == "temp file only":
        (folder / ".tmp-abc.npz").write_bytes(b"half")
    proc = _cli("train", "--epochs", "10", "--checkpoint-dir", str(folder), "--resume")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert err.strip() == f"jaxopt-lab: error: --resume: no checkpoint to resume from in {folder}"


# Seed mode's order changed since the checkpoint: recorded as another, or not recorded at all
# (the order of jaxopt_lab <= 0.1.0) while this process shuffles in a newer one.
NEWER_ORDER_HERE = (
    "import runpy; from jaxopt_lab import data; data.EPOCH_ORDER = 'a-newer-order'; "
    "runpy.run_module('jaxopt_lab.cli', run_name='__main__', alter_sys=True)"
)


def test_train_resume_refuses_a_seed_mode_checkpoint_of_another_epoch_order(tmp_path, saved_runs):
    cases = {  # name: (seed, what the saved meta says of the order, launcher)
        "another order": (RUN_SEED.seed, {"epoch_order": "another-order"}, None),
        "no order recorded": (RUN_SEED.seed, {}, NEWER_ORDER_HERE),
        "course mode": (None, {"epoch_order": "another-order"}, NEWER_ORDER_HERE),
    }
    started = {}
    for name, (seed, order, launcher) in cases.items():  # all at once: mostly JAX's start-up
        folder = _checkpoint_folder(tmp_path / name.replace(" ", "-"), saved_runs[seed])
        for path in folder.iterdir():
            _rewrite_meta(path, lambda meta, o=order: [meta.pop("epoch_order"), meta.update(o)])
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        seed_flag = [] if seed is None else ["--seed", str(seed)]
        proc = _cli("train", *seed_flag, "--epochs", "30", "--checkpoint-dir", str(folder),
                    "--checkpoint-every", "10", "--resume", launcher=launcher)  # fmt: skip
        started[name] = folder, before, proc
    for name, (folder, before, proc) in started.items():
        out, err = proc.communicate(timeout=120)
        if name == "course mode":  # NumPy's shuffles: no epoch order to keep
            assert proc.returncode == 0 and err == "", err
            assert (folder / "ckpt_000000030.npz").is_file()
            continue
        assert proc.returncode == 2 and out == "", (name, err)
        (line,) = err.strip().splitlines()
        order = cases[name][1].get("epoch_order", checkpoints.UNRECORDED_EPOCH_ORDER)
        assert line.startswith(f"jaxopt-lab: error: --resume: {folder / 'ckpt_000000020.npz'} "
                               f"was made with the seed-mode epoch order {order!r}; ")  # fmt: skip
        assert line.endswith(", or start afresh in another folder")
        after = {
            p.name: p.read_bytes() for p in folder.iterdir() if p.name != checkpoints.LOCK_NAME
        }
        assert after == before  # the refused run's lock aside
