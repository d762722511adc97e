"""The settings table (jaxopt_lab.settings): every range is written once, and the command's flags,
the optimizer factories, fit, checkpoints and RunConfig all accept exactly what it says."""

from __future__ import annotations

import argparse
import math

import jax
import numpy as np
import pytest

from jaxopt_lab import checkpoints, cli, data, optimizers, runs, schedules, settings, train
from jaxopt_lab.settings import BY_NAME, InvalidValue

X, Y = data.load_moons()


def flags_of_commands():
    """(command, setting) for every flag of every subcommand that takes a number."""
    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for command, sub in subparsers.choices.items():
        for action in sub._actions:
            s = BY_NAME.get(action.dest)
            if s is not None and s.kind in ("float", "int", "seed"):
                yield command, s


def probes(s: settings.Setting) -> list:
    """Values at, just inside and just outside every bound, and far away."""
    values = [0, 1, -1, 0.5, 1e-60, 1e39, 2**31, 2**32, 2**63, -(2**31)]
    for bound in (s.low, s.high):
        if bound is not None:
            values += [bound, np.nextafter(bound, -math.inf), np.nextafter(bound, math.inf)]
            values += [bound - 1, bound + 1]
    if s.kind != "float":  # an integer flag parses integers only
        values = [int(v) for v in values if float(v).is_integer()]
    return sorted(set(values))


def flag_accepts(command: str, s: settings.Setting, value) -> bool:
    text = repr(float(value)) if s.kind == "float" else str(value)
    try:
        cli.build_parser().parse_args([command, s.option, text])
    except SystemExit as exit_:
        assert exit_.code == 2
        return False
    return True


def library_accepts(name: str, value) -> bool:
    try:
        settings.check(name, value, dtype=np.float64)
    except InvalidValue as error:
        assert error.setting == name
        return False
    return True


CASES = sorted({(command, s) for command, s in flags_of_commands()}, key=lambda c: (c[0], c[1].name))


@pytest.mark.parametrize(("command", "setting"), CASES, ids=[f"{c} {s.option}" for c, s in CASES])
def test_every_flag_accepts_exactly_the_library_s_range(command, setting, capsys):
    for value in probes(setting):
        assert flag_accepts(command, setting, value) == library_accepts(setting.name, value), value
    capsys.readouterr()


# What the library itself does with each setting (float64 runs, so rounding is out of the way).
LIBRARY = {
    "learning_rate": [lambda v: optimizers.gd(v), lambda v: schedules.inverse_time(v, 1.0)],
    "beta": [lambda v: optimizers.momentum(0.1, beta=v), lambda v: optimizers.rmsprop(0.1, decay=v)],
    "beta1": [lambda v: optimizers.adam(0.1, b1=v)],
    "beta2": [lambda v: optimizers.adam(0.1, b2=v)],
    "epsilon": [lambda v: optimizers.adam(0.1, eps=v), lambda v: optimizers.rmsprop(0.1, eps=v)],
    "decay_rate": [lambda v: schedules.fixed_interval(0.1, v)],
    "time_interval": [lambda v: schedules.fixed_interval(0.1, 1.0, v)],
    "epochs": [lambda v: _fit_args(num_epochs=v)],
    "mini_batch_size": [lambda v: _fit_args(mini_batch_size=v)],
    "seed": [lambda v: _fit_args(seed=v)],
    "chunk_epochs": [lambda v: _fit_args(chunk_epochs=v)],
    "checkpoint_every": [lambda v: checkpoints.Checkpointer("unused", v, {})],
}


def _fit_args(**change):
    args = {"num_epochs": 1, "mini_batch_size": 64, "seed": None, "chunk_epochs": None, **change}
    train.check_fit_args(X, Y, runs.LAYERS_DIMS, **args)


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_the_library_s_functions_accept_exactly_the_table_s_range(name, x64):
    for value in probes(BY_NAME[name]):
        expected = library_accepts(name, value)
        for call in LIBRARY[name]:
            try:
                call(value)
                accepted = True
            except InvalidValue as error:
                assert error.setting == name, (error.setting, name)
                accepted = False
            assert accepted == expected, (name, value)


def test_run_config_is_built_from_the_table():
    assert runs.RunConfig._fields == tuple(s.name for s in settings.RUN_SETTINGS)
    assert tuple(runs.RunConfig()) == tuple(s.default for s in settings.RUN_SETTINGS)


def test_each_factory_takes_the_settings_the_table_spells_for_it():
    names = {n: [s.name for s in settings.factory_settings(f)] for n, f in optimizers.OPTIMIZERS.items()}
    assert names == {
        "gd": [], "momentum": ["beta"], "rmsprop": ["beta", "epsilon"],
        "adam": ["beta1", "beta2", "epsilon"],
    }  # fmt: skip
    values = {"beta": 0.5, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6, "decay_rate": 3.0}
    assert settings.factory_arguments(optimizers.rmsprop, values) == {"decay": 0.5, "eps": 1e-6}
    assert settings.factory_arguments(optimizers.adam, values) == {"b1": 0.8, "b2": 0.95, "eps": 1e-6}
    for name in optimizers.OPTIMIZERS:
        assert runs.sweep_axes(name) == ("learning_rate", *names[name])


def test_a_refusal_carries_the_argument_and_its_setting_as_data():
    with pytest.raises(InvalidValue) as caught:
        optimizers.rmsprop(0.1, decay=1.0)
    error = caught.value
    assert (error.name, error.setting) == ("decay", "beta")
    assert str(error).startswith("decay must be a finite number in [0.0, 1.0)")
    # The command names its own flag from the setting, whatever the library calls it.
    assert error.describe(cli.FLAGS).startswith("--beta must be a finite number in [0.0, 1.0)")
    with pytest.raises(InvalidValue) as caught:
        train.fit(X, Y, runs.LAYERS_DIMS, optimizers.gd(0.1), num_epochs=0)
    assert caught.value.describe(cli.FLAGS).startswith("--epochs must be an integer >= 1")


def test_a_refusal_names_the_other_settings_it_mentions_in_the_caller_s_spelling():
    error = InvalidValue("resume", "needs {checkpoint_dir}", mentions=("checkpoint_dir",))
    assert str(error) == "resume needs checkpoint_dir"
    assert error.describe(cli.FLAGS) == "--resume needs --checkpoint-dir"


def test_values_are_checked_in_the_run_s_precision():
    with pytest.raises(InvalidValue, match="in float32, got 0.99999999999, which rounds to 1.0"):
        settings.check("beta1", 0.99999999999)
    with jax.enable_x64(True):
        settings.check("beta1", 0.99999999999)
    settings.check("beta1", 0.99999999999, dtype=np.float64)
