"""The ``jaxopt-lab`` command: every subcommand, the files it writes, and the errors it refuses with.

Float32 runs call ``cli.main`` in this process. ``--x64`` flips JAX's precision for the whole
process, so the float64 runs (which must print the course's numbers digit for digit) run as
subprocesses, both started at once by a module fixture with a private compilation cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxopt_lab
from jaxopt_lab import checkpoints, cli, data, runs, runtime

COURSE_RUNS = data.course_results()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def course_run(optimizer: str, decay: str | None) -> dict:
    return next(r for r in COURSE_RUNS if r["optimizer"] == optimizer and r["decay"] == decay)


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path


# ---------------------------------------------------------------------------------------------
# float64 subprocesses: the course's numbers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x64_runs(tmp_path_factory):
    """`compare --x64 --out`, then `train --optimizer adam --x64 --out` with the same cache dir.

    `train` reuses the Adam program that `compare` compiled, through the persistent cache.
    """
    root = tmp_path_factory.mktemp("x64")
    env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache")}
    env.pop("JAXOPT_LAB_NO_CACHE", None)
    commands = {
        "compare": ["compare", "--x64", "--out", str(root / "compare")],
        "train": ["train", "--optimizer", "adam", "--x64", "--out", str(root / "train")],
    }
    outputs = {}
    for name, argv in commands.items():
        proc = subprocess.run(
            [sys.executable, "-m", "jaxopt_lab.cli", *argv], env=env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outputs[name] = proc.stdout
    return root, outputs


def test_train_x64_prints_the_course_numbers(x64_runs):
    root, outputs = x64_runs
    adam = course_run("adam", None)
    expected = [f"Cost after epoch {e}: {c:f}" for e, c in adam["cost_at_epoch"].items()]
    expected.append(f"Accuracy: {adam['accuracy']!r}")
    assert outputs["train"].splitlines() == expected
    assert "Cost after epoch 1000: 0.167845" in expected
    assert "Accuracy: 0.9433333333333334" in expected


def test_train_x64_writes_result_json_and_pictures(x64_runs):
    root, _ = x64_runs
    result = json.loads((root / "train" / "result.json").read_text())
    assert result["accuracy"] == 0.9433333333333334
    assert result["config"]["optimizer"] == "adam"
    assert result["config"]["learning_rate"] == 0.0007
    assert result["config"]["seed"] is None
    assert len(result["costs"]) == 5000
    assert result["final_cost"] == result["costs"][-1]
    assert "%f" % result["costs"][1000] == "0.167845"
    assert result["float"] == "float64"
    assert result["jax_version"] == jax.__version__
    assert result["backend"] == "cpu" and result["device"]
    assert result["compile_seconds"] >= 0 and result["run_seconds"] > 0
    assert_png(root / "train" / "cost.png")
    assert_png(root / "train" / "decision_boundary.png")


def test_compare_x64_gives_the_course_seven_runs(x64_runs):
    root, outputs = x64_runs
    rows = json.loads((root / "compare" / "compare.json").read_text())
    assert len(rows) == len(COURSE_RUNS) == 7
    decay_names = {"none": None, "inverse-time": "update_lr", "fixed-interval": "schedule_lr_decay"}
    for row, course in zip(rows, COURSE_RUNS, strict=True):
        assert row["optimizer"] == course["optimizer"]
        assert decay_names[row["decay"]] == course["decay"]
        assert row["learning_rate"] == course["learning_rate"]
        assert row["accuracy"] == course["accuracy"], row["method"]
        printed = {epoch: "%f" % cost for epoch, cost in row["cost_at_epoch"].items()}
        assert printed == {epoch: "%f" % c for epoch, c in course["cost_at_epoch"].items()}
        assert row["seconds"] > 0 and np.isfinite(row["final_cost"])
    table = (root / "compare" / "compare.md").read_text()
    assert table.startswith("| method | decay | learning rate | final cost | accuracy | seconds |")
    assert table.count("\n| ") == 7  # seven rows
    assert "| 0.9533333333333334 |" in outputs["compare"]
    assert_png(root / "compare" / "cost_curves.png")
    assert_png(root / "compare" / "boundaries.png")


def test_compiled_programs_persist_in_the_cache_dir(x64_runs):
    root, _ = x64_runs
    assert any((root / "cache" / "jaxopt_lab" / "jax").iterdir())


# ---------------------------------------------------------------------------------------------
# float32, in process
# ---------------------------------------------------------------------------------------------


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_train_prints_and_writes(tmp_path, capsys):
    assert cli.main(["train", "--epochs", "2000", "--no-progress", "--out", str(tmp_path)]) == 0
    out = lines_of(capsys.readouterr().out)
    assert [line.split(":")[0] for line in out] == [
        "Cost after epoch 0", "Cost after epoch 1000", "Accuracy",
    ]  # fmt: skip
    adam = course_run("adam", None)
    assert abs(float(out[0].split(": ")[1]) - adam["cost_at_epoch"]["0"]) < 2e-6
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["config"] == {**runs.RunConfig()._asdict(), "epochs": 2000}
    assert len(result["costs"]) == 2000 and result["final_cost"] == result["costs"][-1]
    assert out[-1] == f"Accuracy: {result['accuracy']!r}"
    assert result["float"] == "float32"
    assert_png(tmp_path / "cost.png")
    assert_png(tmp_path / "decision_boundary.png")


def test_train_with_decay_prints_the_learning_rate(capsys):
    argv = ["train", "--optimizer", "gd", "--learning-rate", "0.1", "--decay", "fixed-interval"]
    assert cli.main([*argv, "--epochs", "2000", "--no-progress"]) == 0
    out = lines_of(capsys.readouterr().out)
    assert out[1] == "learning rate after epoch 0: 0.100000"
    assert out[3] == "learning rate after epoch 1000: 0.050000"
    assert len(out) == 5


def test_seed_mode_is_reproducible_and_differs_from_course_mode(capsys):
    argv = ["train", "--epochs", "1000", "--no-progress"]
    runs = []
    for extra in (["--seed", "7"], ["--seed", "7"], []):
        assert cli.main([*argv, *extra]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_divergence_exits_1_with_the_epoch(capsys):
    argv = ["train", "--learning-rate", "1e15", "--epochs", "1000", "--no-progress"]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err == "diverged at epoch 0\n"
    assert "Traceback" not in captured.out + captured.err


def test_progress_bar_leaves_stdout_alone(monkeypatch, capsys):
    monkeypatch.setattr(cli, "progress_wanted", lambda no_progress: True)
    assert cli.main(["train", "--epochs", "2000"]) == 0
    out = lines_of(capsys.readouterr().out)
    assert [line.split(":")[0] for line in out] == [
        "Cost after epoch 0", "Cost after epoch 1000", "Accuracy",
    ]  # fmt: skip


class _Stream:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("stdout_tty", "no_progress", "wanted"),
    [(True, False, True), (True, True, False), (False, False, False)],
)
def test_progress_only_for_a_terminal(monkeypatch, stdout_tty, no_progress, wanted):
    monkeypatch.setattr(sys, "stdout", _Stream(stdout_tty))
    monkeypatch.setattr(sys, "stderr", _Stream(True))
    assert cli.progress_wanted(no_progress) is wanted


def test_paths_writes_one_png(tmp_path, capsys):
    assert cli.main(["paths", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'paths.png'}\n"
    assert_png(tmp_path / "paths.png")


def test_version_prints_the_package_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"jaxopt-lab {jaxopt_lab.__version__}\n"


def test_help_lists_the_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "compare", "paths"):
        assert command in out


def test_cache_dir_honours_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert runtime.cache_dir() == tmp_path / "jaxopt_lab" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert runtime.cache_dir() == Path.home() / ".cache" / "jaxopt_lab" / "jax"


# ---------------------------------------------------------------------------------------------
# Refusals: exit 2, one line, the flag named, no traceback
# ---------------------------------------------------------------------------------------------

BAD_INPUTS = [
    (["train", "--optimizer", "sgd"], "--optimizer"),
    (["train", "--optimizer", ""], "--optimizer"),
    (["train", "--learning-rate", "-1"], "--learning-rate"),
    (["train", "--learning-rate", "0"], "--learning-rate"),
    (["train", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--learning-rate", "inf"], "--learning-rate"),
    (["train", "--learning-rate", "fast"], "--learning-rate"),
    (["train", "--learning-rate"], "--learning-rate"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-3"], "--epochs"),
    (["train", "--epochs", "1.5"], "--epochs"),
    (["train", "--epochs", "many"], "--epochs"),
    (["train", "--mini-batch-size", "0"], "--mini-batch-size"),
    (["train", "--mini-batch-size", "-64"], "--mini-batch-size"),
    (["train", "--beta", "1"], "--beta"),
    (["train", "--beta", "-0.1"], "--beta"),
    (["train", "--beta", "1.5"], "--beta"),
    (["train", "--beta1", "1.0"], "--beta1"),
    (["train", "--beta2", "2"], "--beta2"),
    (["train", "--beta2", "nan"], "--beta2"),
    (["train", "--epsilon", "-1e-8"], "--epsilon"),
    (["train", "--decay", "linear"], "--decay"),
    (["train", "--decay-rate", "-1"], "--decay-rate"),
    (["train", "--decay-rate", "inf"], "--decay-rate"),
    (["train", "--time-interval", "0"], "--time-interval"),
    (["train", "--time-interval", "10.5"], "--time-interval"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--seed", "abc"], "--seed"),
    (["train", "--frobnicate"], "--frobnicate"),
    (["compare", "--epochs", "10"], "--epochs"),
    (["paths", "--seed", "x"], "--seed"),
    (["fit"], "COMMAND"),
    ([], "COMMAND"),
    (["train", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["train", "--resume"], "--checkpoint-dir"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_the_flag(argv, flag, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n")
    assert flag in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("command", ["train", "compare", "paths"])
def test_out_must_not_be_a_file(command, tmp_path, capsys):
    file = tmp_path / "taken"
    file.write_text("")
    assert cli.main([command, "--out", str(file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err


def test_console_script_exit_status_for_a_bad_flag():
    proc = subprocess.run(
        [Path(sys.executable).with_name("jaxopt-lab"), "train", "--epochs", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "argument --epochs: must be an integer in [1, 2147483647], got '0' (see --help)"
    )
    assert proc.stdout == ""


# ---------------------------------------------------------------------------------------------
# Checkpoints, resume and Ctrl-C
# ---------------------------------------------------------------------------------------------


def test_resume_continues_exactly_and_refuses_to_overwrite(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    base = ["train", "--seed", "4", "--checkpoint-dir", str(ckpt), "--checkpoint-every", "300"]
    assert cli.main([*base, "--epochs", "1000"]) == 0
    assert [p.name for p in checkpoints.Checkpointer(ckpt, 1, {}).paths()] == [
        "ckpt_000000900.npz",
        "ckpt_000001000.npz",
    ]
    capsys.readouterr()

    # The folder holds a run: starting afresh there would overwrite it, so it is refused.
    assert cli.main([*base, "--epochs", "1000"]) == 2
    assert "--resume" in capsys.readouterr().err
    # Another configuration cannot continue it.
    assert cli.main([*base, "--epochs", "2000", "--learning-rate", "0.01", "--resume"]) == 2
    assert "learning_rate" in capsys.readouterr().err

    assert cli.main([*base, "--epochs", "2500", "--resume", "--out", str(tmp_path / "a")]) == 0
    resumed_out = lines_of(capsys.readouterr().out)
    assert cli.main(["train", "--seed", "4", "--epochs", "2500", "--out", str(tmp_path / "b")]) == 0
    straight_out = lines_of(capsys.readouterr().out)
    resumed = json.loads((tmp_path / "a" / "result.json").read_text())
    straight = json.loads((tmp_path / "b" / "result.json").read_text())
    assert resumed["costs"] == straight["costs"]
    assert resumed["accuracy"] == straight["accuracy"]
    # The first process ran epochs 0-999; the resumed one prints from epoch 1000 on.
    assert resumed_out == [line for line in straight_out if line != straight_out[0]]
    assert straight_out[0].startswith("Cost after epoch 0:")


def test_ctrl_c_saves_and_exits_130_then_resume_matches(tmp_path):
    ckpt = tmp_path / "ckpt"
    argv = ["train", "--seed", "2", "--no-progress", "--checkpoint-dir", str(ckpt)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxopt_lab.cli", *argv, "--epochs", "10000000",
         "--checkpoint-every", "500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout.readline().startswith("Cost after epoch 0:")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("jaxopt-lab: SIGINT: stopped at epoch ")
    epoch = int(err.split("stopped at epoch ")[1].split(";")[0])
    assert epoch % 500 == 0 and epoch >= 500
    assert checkpoints.Checkpointer(ckpt, 1, {}).paths()[-1].name == f"ckpt_{epoch:09d}.npz"

    total = str(epoch + 500)
    assert cli.main([*argv, "--epochs", total, "--resume", "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["train", "--seed", "2", "--epochs", total, "--out", str(tmp_path / "b")]) == 0
    resumed = json.loads((tmp_path / "a" / "result.json").read_text())
    straight = json.loads((tmp_path / "b" / "result.json").read_text())
    assert resumed["costs"] == straight["costs"]
