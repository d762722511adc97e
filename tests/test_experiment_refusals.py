"""What the experiments refuse before anything trains: one InvalidValue naming the argument, never
a TypeError from inside (issue 21, case 5: the exact inputs of the issue)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxopt_lab import cli, runs, settings
from jaxopt_lab.settings import InvalidValue


@pytest.mark.parametrize(
    "seeds", [(s for s in range(2)), 3, None, "01"], ids=["generator", "int", "None", "str"]
)
def test_lr_find_refuses_seeds_that_are_not_a_sequence_naming_seeds(seeds):
    with pytest.raises(InvalidValue) as caught:
        runs.lr_find(["adam"], seeds=seeds, epochs=2, points=2)
    assert caught.value.name == "seeds"
    assert "range(100)" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("names", ["adam", b"gd", 3])
def test_lr_find_refuses_a_lone_name_instead_of_a_list(names):
    for call in (lambda: runs.lr_find(names, seeds=[0], epochs=2, points=2),
                 lambda: runs.lr_curve(names, [0.01], [0], epochs=2)):  # fmt: skip
        with pytest.raises(InvalidValue, match=r"list of optimizer names") as caught:
            call()
        assert caught.value.name == "optimizer"
        assert repr(names) in str(caught.value)


@pytest.mark.parametrize(
    "bad", [[], (), "adam", [runs.RunConfig()], [("label",)], [("label", "adam")]],
    ids=["empty list", "empty tuple", "str", "bare config", "no config", "name not config"],
)
def test_compare_seeds_refuses_runs_that_are_not_labelled_configs(bad):
    with pytest.raises(InvalidValue, match=r"\(label, RunConfig\) pairs") as caught:
        runs.compare_seeds([0], runs=bad)
    assert caught.value.name == "runs" and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "argv",
    [["compare", "--out", ""], ["sweep", "--out", " "], ["lr-find", "--out", ""],
     ["train", "--checkpoint-dir", ""], ["paths", "--out", ""]],
)  # fmt: skip
def test_an_empty_folder_path_is_one_line_and_exit_2(argv, capsys, tmp_path, monkeypatch):
    from jaxopt_lab import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "empty one would write into the current folder" in err
    assert err.split(": ")[2] in ("argument --out", "argument --checkpoint-dir")
    assert list(tmp_path.iterdir()) == []  # nothing written where the user stood


def test_train_run_refuses_an_empty_checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidValue, match="empty path") as caught:
        runs.train_run(runs.RunConfig(epochs=2), checkpoint_dir="")
    assert caught.value.name == "checkpoint_dir" and list(tmp_path.iterdir()) == []


# Case 4: an epsilon of 0 (or one the run's float makes 0) was accepted and reported as divergence.
@pytest.mark.parametrize("epsilon", ["0", "-0.0", "1e-320", "1e-40"])
@pytest.mark.parametrize("argv", [["train", "--optimizer", "adam"], ["train", "--optimizer", "rmsprop"],
                                  ["sweep", "--optimizer", "adam"]])  # fmt: skip
def test_an_epsilon_that_computes_as_zero_is_refused_not_called_divergence(argv, epsilon, capsys):
    assert cli.main([*argv, "--epsilon", epsilon, "--epochs", "2", "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--epsilon" in line and "diverged" not in line
    if epsilon == "1e-40":  # above 0, but below float32's smallest normal number
        assert "smallest normal number" in line and "0/0" in line


def test_epsilon_s_floor_is_the_run_float_s_smallest_normal_number():
    for dtype in (np.float32, np.float64):
        tiny = float(np.finfo(dtype).tiny)
        settings.check("epsilon", tiny, dtype=dtype)
        with pytest.raises(InvalidValue, match="smallest normal number") as caught:
            settings.check("epsilon", tiny / 4, dtype=dtype)
        assert caught.value.name == "epsilon"
    for config in (runs.RunConfig("adam", epsilon=0.0), runs.RunConfig("rmsprop", epsilon=0.0)):
        with pytest.raises(InvalidValue) as caught:
            config.check()
        assert caught.value.name == "epsilon"
