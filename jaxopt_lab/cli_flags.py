"""The ``jaxopt-lab`` command's flags, generated from the settings table: which settings each
subcommand takes (:data:`COMMANDS`), which take several values, this command's defaults, and the
argument parser whose refusals are one line and exit status 2.

It imports no JAX: a bad flag is refused in a tenth of a second.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jaxopt_lab import __version__
from jaxopt_lab.settings import BY_NAME, OPTIMIZER_NAMES, SETTINGS, InvalidValue, Setting, from_text

PREFIX = "jaxopt-lab"
FLAGS = {s.name: s.option for s in SETTINGS}  # how this command spells each setting

def value_parser(s: Setting):
    """The ``type=`` of a setting's flag: ``settings.from_text``, its refusal as argparse's."""

    def parse(text: str):
        try:
            return from_text(s.name, text)
        except InvalidValue as error:
            raise argparse.ArgumentTypeError(error.reason) from None

    return parse


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_flag(p, s: Setting, *, many: bool = False, **override) -> None:
    """``s`` as a flag of ``p``; with ``many`` it takes one or more values (a sweep's axis).
    ``override`` changes this command's default or help, never a range."""
    default = override.get("default", s.default)
    if s.kind == "switch":
        p.add_argument(s.option, action="store_true", help=override.get("help", s.help))
        return
    extra: dict[str, Any] = {"metavar": s.metavar}
    if s.kind in ("choice", "optimizer"):
        extra = {"choices": s.choices or OPTIMIZER_NAMES}
    else:
        extra["type"] = value_parser(s)
    if many:
        extra.update(nargs="+", metavar=s.metavar or ("X" if s.kind == "float" else None))
        default = list(default) if isinstance(default, tuple) else [default]
    shown = "" if default is None else " (default: %(default)s)"
    p.add_argument(s.option, dest=s.name, default=default, help=override.get("help", s.help) + shown,
                   **{k: v for k, v in extra.items() if v is not None})  # fmt: skip


RUN = ("optimizer", "learning_rate", "beta", "beta1", "beta2", "epsilon", "decay", "decay_rate",
       "time_interval", "epochs", "mini_batch_size")  # fmt: skip
AXES = {"learning_rate", "beta", "beta1", "beta2", "epsilon", "decay", "decay_rate"}
COMMON = ("x64", "out", "no_progress")
GROUP = ("coordinator", "num_processes", "process_id", "peer_timeout")
COMMANDS = {  # name: (help, description, settings it takes)
    "train": (
        "train the lesson's network on the moons data with one optimizer",
        "Train the 2-5-2-1 network on the course's 300 moons points and print the course's lines: "
        "'Cost after epoch N' every 1000 epochs, then 'Accuracy'.",
        (*RUN, "seed", "checkpoint_dir", "checkpoint_every", "resume", *COMMON),
    ),
    "compare": (
        "the lesson's seven runs side by side: table, cost curves, decision boundaries",
        "Run the course's seven trainings (GD, momentum and Adam at 0.0007; GD with inverse-time "
        "decay; GD, momentum and Adam with fixed-interval decay) and compare them; with --seeds "
        "N, compare their distributions over N JAX seeds.",
        ("seed_count", "target_cost", "target_accuracy", *COMMON),
    ),
    "paths": (
        "draw GD, noisy GD, momentum, RMSprop and Adam on a bowl and on Rosenbrock",
        "Draw the trajectories of the lesson's optimizers on an elongated quadratic bowl and on "
        "the Rosenbrock function, in one PNG.",
        ("out", "noise_seed"),
    ),
    "sweep": (
        "train a grid of configurations and seeds as one vmapped, sharded program",
        "Train every combination of the values given (cartesian product) for every seed, as one "
        "JAX program split over all devices. Each row equals `jaxopt-lab train --seed S` with its "
        "configuration. Flags an optimizer does not use are ignored.",
        (*RUN, "seeds", *GROUP, *COMMON),
    ),
    "lr-find": (
        "each optimizer's final cost and accuracy against the learning rate, over seeds",
        "Train every optimizer at --points log-spaced learning rates from --from to --to for "
        "--seeds seeds each; report the best rate and the range within 0.01 accuracy of it. "
        "With --range-test, also run fastai's range test for the same seeds and read its "
        "suggestions on those runs.",
        ("optimizer", "lr_from", "lr_to", "points", "seed_count", "epochs", "range_test",
         "range_steps", *COMMON),
    ),
}
MANY = {"sweep": AXES | {"seeds"}, "lr-find": {"optimizer"}}  # flags that take several values
OVERRIDES = {
    ("paths", "out"): {"default": Path("."), "help": "folder for paths.png"},
    ("compare", "seed_count"): {"help": "train each run with JAX seeds 0 to N-1 (absent: the "
                                        "course's one run, in its randomness)"},
    ("lr-find", "optimizer"): {"default": ("gd", "momentum", "rmsprop", "adam"), "help": "optimizers"},
    ("lr-find", "seed_count"): {"default": 8, "help": "JAX seeds 0 to N-1 at every rate"},
    ("lr-find", "epochs"): {"default": 1000},
}  # fmt: skip


def build_parser(runners: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The parser of every subcommand; ``args.run`` is the subcommand's runner from ``runners``."""
    parser = OneLineErrorParser(
        prog=PREFIX, description="The optimization-methods lesson as fused JAX programs."
    )
    parser.add_argument("--version", action="version", version=f"{PREFIX} {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, (help_, description, names) in COMMANDS.items():
        p = subparsers.add_parser(command, help=help_, description=description)
        group = p
        for name in names:
            if name == GROUP[0]:
                group = p.add_argument_group(
                    "several processes",
                    "run the sweep as N processes joined by jax.distributed (one per host, say); "
                    "under SLURM or Open MPI the three are read from the environment; process 0 "
                    "writes the results",
                )
            elif name not in GROUP:
                group = p
            many = name in MANY.get(command, ())
            add_flag(group, BY_NAME[name], many=many, **OVERRIDES.get((command, name), {}))
        p.set_defaults(run=runners[command])
    return parser
