"""Every flag of every subcommand, given malformed values generated from the kind of value it takes:
each is refused before any training with exit status 2 and one line on stderr, never a traceback.
Also the environment's faults: a damaged compilation cache and a backend that cannot start."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxopt_lab import cli, optimizers, settings

NOT_A_NUMBER = ["", " ", "abc", "1,5", "1.5.2", "0x1g", "nan", "inf", "-inf", "1e400", "--"]
NOT_AN_INTEGER = ["", "abc", "1.5", "1e3", "0x10", "nan", "2**64"]
BAD_VALUES = {  # the kind of value a flag takes -> values it must refuse
    "positive_float": [*NOT_A_NUMBER, "0", "-1", "-1e-300", "1e-60", "1e39", "5e-46"],
    "nonnegative_float": [*NOT_A_NUMBER, "-1", "-1e-300", "1e39"],
    "unit_interval": [*NOT_A_NUMBER, "1", "1.0000001", "-0.1", "0.99999999999", "2"],
    "share": [*NOT_A_NUMBER, "0", "-0.1", "1e-60", "1.0000001", "1.5", "2"],  # in (0, 1]
    "positive_int": [*NOT_AN_INTEGER, "0", "-1", str(2**31), str(2**63), str(2**64)],
    "nonnegative_int": [*NOT_AN_INTEGER, "-1", str(2**31), str(2**64)],
    "seed_int": [*NOT_AN_INTEGER, "-1", str(2**32), str(2**63), str(2**64)],
    "host_port": ["", "host", ":80", "h:0", "h:65536", "h:port", "h:-1"],
}


def value_kind(s: settings.Setting) -> str:
    """The kind of value a setting's flag takes, from its range in the settings table (a new
    kind fails here until it has bad values of its own above)."""
    if s.kind == "address":
        return "host_port"
    if s.kind == "float":
        return {(0.0, True, None): "positive_float", (0.0, False, None): "nonnegative_float",
                (0.0, False, 1.0): "unit_interval",
                (0.0, True, 1.0): "share"}[(s.low, s.low_open, s.high)]  # fmt: skip
    return {(1, settings.MAX_INT32): "positive_int", (0, settings.MAX_INT32): "nonnegative_int",
            (0, settings.MAX_SEED): "seed_int"}[(s.low, s.high)]  # fmt: skip


def _actions(command: str) -> list[argparse.Action]:
    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices[command]._actions


def _cases():
    """``(id, argv)`` for every flag of every subcommand and each value it must refuse."""
    blocker = Path(__file__)  # an existing file: no folder can be made there
    for command in cli.COMMANDS:
        for action in _actions(command):
            if not action.option_strings or action.nargs == 0:
                continue  # --help and on/off switches take no value
            flag = action.option_strings[0]
            setting = settings.BY_NAME[action.dest]
            if action.choices is not None:
                bad = ["", "sgd", "ADAM", "none ", "1"]
            elif setting.kind == "folder":
                bad = [str(blocker), str(blocker / "below-a-file")]
            else:
                bad = BAD_VALUES[value_kind(setting)]
            for value in bad:
                # With nargs="+" the bad value follows a good one: one bad element is enough.
                good = [] if action.nargs != "+" else [str(action.default[0])]
                yield pytest.param([command, flag, *good, value], id=f"{command} {flag} {value!r}")


CASES = list(_cases())


def test_every_flag_of_every_subcommand_is_covered():
    covered = {(argv[0], argv[1]) for (argv,) in (c.values for c in CASES)}
    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    expected = {
        (command, action.option_strings[0])
        for command, sub in subparsers.choices.items()
        for action in sub._actions
        if action.option_strings and action.nargs != 0
    }
    assert covered == expected
    assert len(CASES) > 300


@pytest.mark.parametrize("argv", CASES)
def test_a_malformed_value_is_one_line_and_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert "error" in lines[0]


def _run(*argv: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jaxopt_lab.cli", *argv], env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_sample_through_real_processes(tmp_path):
    # One refused value of every kind of flag (each validator, choices, folders), from the
    # subcommands in turn.
    kinds = {}
    for case in CASES:
        command, flag = case.values[0][:2]
        action = next(a for a in _actions(command) if a.option_strings[:1] == [flag])
        setting = settings.BY_NAME[action.dest]
        kind = "choices" if action.choices else setting.kind if setting.kind == "folder" else value_kind(setting)
        kinds.setdefault(kind, case)
    sample = list(kinds.values())
    assert len(sample) == len(BAD_VALUES) + 2
    procs = [_run(*case.values[0]) for case in sample]
    for case, proc in zip(sample, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (case.id, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, case.id


def test_a_backend_that_cannot_start_is_one_line(tmp_path):
    procs = [
        _run(*argv, env={"JAX_PLATFORMS": "cuda"})
        for argv in (
            ["train", "--epochs", "5"],
            ["compare"],
            ["sweep", "--epochs", "5"],
            ["paths", "--out", str(tmp_path)],
        )  # fmt: skip
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2
        (line,) = err.strip().splitlines()
        assert line.startswith("jaxopt-lab: error: JAX could not start its backend")


def test_cache_entries_without_access_times_are_completed_not_warned_about(tmp_path):
    # A process stopped between an entry's two files, or a cache written without a bound, leaves
    # programs with no access time; JAX's bounded cache then fails every write with a warning.
    env = {"XDG_CACHE_HOME": str(tmp_path), "JAXOPT_LAB_NO_CACHE": ""}
    cache = tmp_path / "jaxopt_lab" / "jax"
    first = _run("train", "--epochs", "5", "--no-progress", env=env)
    assert first.communicate(timeout=120) and first.returncode == 0
    written = {p.name for p in cache.glob("*-cache")}
    for atime in cache.glob("*-atime"):
        atime.unlink()
    # another optimizer: new programs to write beside the old ones
    second = _run("train", "--epochs", "5", "--optimizer", "momentum", "--no-progress", env=env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0 and "Accuracy:" in out
    assert err.strip() == ""
    programs = {p.name for p in cache.glob("*-cache")}
    assert programs > written  # the second run's new programs were written
    assert {p.removesuffix("-cache") for p in programs} == {
        p.name.removesuffix("-atime") for p in cache.glob("*-atime")
    }


def test_a_damaged_compilation_cache_entry_is_one_line_and_replaced(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path), "JAXOPT_LAB_NO_CACHE": ""}
    argv = ["train", "--epochs", "5", "--no-progress"]
    first = _run(*argv, env=env)
    assert first.communicate(timeout=120) and first.returncode == 0
    entries = sorted((tmp_path / "jaxopt_lab" / "jax").glob("*-cache"))
    assert entries
    for entry in entries:
        entry.write_bytes(b"\x00damaged" * 10)
    second = _run(*argv, env=env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0 and "Accuracy:" in out
    lines = err.strip().splitlines()
    assert len(lines) == len(entries)
    assert all(
        line.startswith("jaxopt-lab: removed a damaged compilation-cache entry") for line in lines
    )
    third = _run(*argv, env=env)  # rewritten by the second run: nothing to say any more
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0 and err.strip() == ""


def test_a_refused_flag_is_refused_before_jax_loads():
    # A typo costs a tenth of a second, not JAX's start-up; the choices are the registry's names.
    assert settings.OPTIMIZER_NAMES == tuple(optimizers.OPTIMIZERS)
    code = ("import sys; from jaxopt_lab import cli; "
            "status = cli.main(['train', '--epsilon', '0', '--optimizer', 'adam']); "
            "print(status, 'jax' in sys.modules)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["2", "False"], proc.stderr
    assert "--epsilon" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
