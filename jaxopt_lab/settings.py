"""Every setting of a run and of the command, declared once: its name, the library's spelling where it
differs, its kind, range, default and help text.

The optimizer factories, ``train.fit``, ``runs.RunConfig``, the sweeps and the ``jaxopt-lab`` flags
are all built from :data:`SETTINGS` or checked with :func:`check`, so a range cannot drift between
the library and the command. A refusal is an :class:`InvalidValue` carrying the argument's name and
its setting as data: the command names its flag without reading the message.

Names follow the course (``beta1``, ``epsilon``, ``epochs``) because ``RunConfig``, result files and
checkpoints use them; ``library`` lists the spellings of the library's functions (``b1``, ``eps``,
``num_epochs``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

MAX_INT32 = 2**31 - 1  # epochs, batch sizes and intervals are int32 inside the compiled programs
MAX_SEED = 2**32 - 1  # float32-mode JAX keys keep 32 bits of a seed: 2**32 would collide with 0
DECAYS = ("none", "inverse-time", "fixed-interval")


class InvalidValue(ValueError):
    """A refused argument.

    Attributes:
      name: the argument as the caller spelled it (``b1``, ``num_epochs``, ``X``).
      setting: the entry of :data:`SETTINGS` it belongs to (``beta1``, ``epochs``), or None.
      reason: what is wrong, without the name; ``{other}`` marks another setting it mentions.
      mentions: the settings named inside ``reason``.
    """

    def __init__(
        self, name: str, reason: str, *, setting: str | None = None, mentions: Sequence[str] = ()
    ):
        self.name, self.reason, self.mentions = name, reason, tuple(mentions)
        self.setting = setting if setting is not None else (name if name in BY_NAME else None)
        super().__init__(self.describe())

    def describe(self, spelling: Mapping[str, str] | None = None) -> str:
        """The message with settings spelled by ``spelling`` (setting -> text, e.g. a flag); by
        default as the library spells its arguments."""

        def spell(setting: str | None, default: str) -> str:
            return spelling.get(setting, default) if spelling is not None and setting else default

        text = self.reason
        for other in self.mentions:
            text = text.replace("{" + other + "}", spell(other, other))
        gap = "" if text[:1] in ":," else " "  # "resume: no checkpoint ...", "a, b and c ..."
        return f"{spell(self.setting, self.name)}{gap}{text}"


class Setting(NamedTuple):
    """One setting. Floats are in ``[low, high)`` (``(low, ...`` with ``low_open``, ``..., high]``
    with ``high_closed``); integers in ``[low, high]``. ``kind`` is one of ``float``, ``int``,
    ``seed`` (an int or None),
    ``choice``, ``optimizer`` (a name of ``optimizers.OPTIMIZERS``), ``folder``, ``address``
    (``HOST:PORT``) or ``switch`` (on/off)."""

    name: str
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple = ()
    library: tuple[str, ...] = ()  # the library's spellings, where they differ from ``name``
    flag: str | None = None  # the command's flag, where it is not ``--name-with-dashes``
    metavar: str | None = None
    high_closed: bool = False
    normal: bool = False  # a float that must be a normal number of the run's float, never 0

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def spellings(self) -> tuple[str, ...]:
        return self.library or (self.name,)


# The names of optimizers.OPTIMIZERS, known before JAX loads (the command's --optimizer choices);
# tests hold the two equal.
OPTIMIZER_NAMES = ("gd", "momentum", "rmsprop", "adam")

RUN_SETTINGS: tuple[Setting, ...] = (  # what a training run is: runs.RunConfig's fields, in order
    Setting("optimizer", "optimizer", "adam", "update rule"),
    Setting("learning_rate", "float", 0.0007, "initial learning rate", low=0.0, low_open=True),
    Setting("epochs", "int", 5000, "passes over the data", low=1, high=MAX_INT32,
            library=("num_epochs",)),
    Setting("mini_batch_size", "int", 64, "examples per update; the last batch holds the rest",
            low=1, high=MAX_INT32),
    Setting("beta", "float", 0.9,
            "momentum's beta, and RMSprop's decay of the squared-gradient average",
            low=0.0, high=1.0, library=("beta", "decay")),
    Setting("beta1", "float", 0.9, "Adam's first-moment decay", low=0.0, high=1.0,
            library=("b1",)),
    Setting("beta2", "float", 0.999, "Adam's second-moment decay", low=0.0, high=1.0,
            library=("b2",)),
    Setting("epsilon", "float", 1e-8,
            "Adam's and RMSprop's epsilon, outside the square root; above 0 (a gradient entry of "
            "0 would make 0/0)", low=0.0, low_open=True, library=("eps",), normal=True),
    Setting("decay", "choice", "none",
            "learning-rate decay: inverse-time is the course's update_lr, fixed-interval its "
            "schedule_lr_decay", choices=DECAYS),
    Setting("decay_rate", "float", 1.0, "decay rate, used with a decay", low=0.0),
    Setting("time_interval", "int", 1000, "epochs per step of fixed-interval decay", low=1,
            high=MAX_INT32),
    Setting("seed", "seed", None,
            "absent: the course's randomness (NumPy seeds); an integer: JAX randomness", low=0,
            high=MAX_SEED),
)  # fmt: skip

COMMAND_SETTINGS: tuple[Setting, ...] = (  # how runs are carried out, swept and reported
    Setting("chunk_epochs", "int", 1000, "epochs per compiled call", low=1, high=MAX_INT32),
    Setting("checkpoint_dir", "folder", None,
            "save the run's state here (atomically) every --checkpoint-every epochs, at the end, "
            "and on Ctrl-C", metavar="DIR"),
    Setting("checkpoint_every", "int", 1000, "epochs between checkpoints", low=1, high=MAX_INT32,
            metavar="K"),
    Setting("resume", "switch", False,
            "continue from the newest checkpoint in --checkpoint-dir up to --epochs"),
    Setting("seeds", "int", (0,), "JAX seeds; every configuration runs with each", low=0,
            high=MAX_SEED, flag="--seed", metavar="S"),
    Setting("noise_seed", "int", 0, "seed of the gradient noise of noisy GD", low=0,
            high=MAX_SEED, flag="--seed"),
    Setting("out", "folder", None, "write results and pictures here", metavar="DIR"),
    Setting("x64", "switch", False,
            "compute in float64 (reproduces the course's printouts digit for digit)"),
    Setting("no_progress", "switch", False, "no progress bar"),
    Setting("coordinator", "address", None, "process 0's address, reachable from every process",
            metavar="HOST:PORT"),
    Setting("num_processes", "int", None, "processes in all", low=1, high=MAX_INT32,
            metavar="N"),
    Setting("process_id", "int", None, "this process's rank, 0 to N-1", low=0, high=MAX_INT32,
            metavar="I"),
    Setting("peer_timeout", "int", 60,
            "seconds of silence after which a process counts as lost", low=1, high=MAX_INT32,
            metavar="S"),
    Setting("block_runs", "int", None,
            "runs each device trains at once (default: as many as fit a core's cache); results "
            "do not depend on it", low=1, high=2**24, metavar="N"),
    Setting("seed_count", "int", None, "train every run with each of the JAX seeds 0 to N-1",
            low=1, high=MAX_INT32, flag="--seeds", metavar="N"),
    Setting("lr_from", "float", 1e-5, "the smallest learning rate tried", low=0.0,
            low_open=True, flag="--from", metavar="LR"),
    Setting("lr_to", "float", 10.0, "the largest learning rate tried", low=0.0, low_open=True,
            flag="--to", metavar="LR"),
    Setting("points", "int", 64, "learning rates tried, evenly spaced on a log scale", low=1,
            high=MAX_INT32, metavar="N"),
    Setting("range_test", "switch", False,
            "also run fastai's range test (one run per seed, the rate rising from --from to --to) "
            "and measure its suggestions against the full runs"),
    Setting("range_steps", "int", 100, "mini-batch steps of the range test (at least 2)", low=1,
            high=MAX_INT32, metavar="N"),
    Setting("target_accuracy", "float", None,
            "time to target (with --seeds): also the epochs until the training accuracy, "
            "measured after every epoch, reaches A (absent: not measured; measuring it takes "
            "about a quarter more time; 0.85 is reached in 5000 epochs by half the seeds of GD "
            "and momentum at 0.0007 and by 95 in 100 of Adam's and the fixed-interval runs')",
            low=0.0, low_open=True, high=1.0, high_closed=True, metavar="A"),
    Setting("target_cost", "float", 0.4,
            "time to target (with --seeds): the epochs until an epoch's cost is at most C (0.4: "
            "passed within 5000 epochs by half the seeds of GD and momentum at 0.0007, 95 in 100 "
            "of Adam's and the fixed-interval runs', 6 in 100 of GD with inverse-time decay's: "
            "every method's speed shows)", low=0.0, low_open=True, metavar="C"),
)  # fmt: skip

SETTINGS = RUN_SETTINGS + COMMAND_SETTINGS
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def factory_settings(factory: Callable) -> tuple[Setting, ...]:
    """The run settings an optimizer factory takes besides its learning rate, in table order:
    for ``optimizers.rmsprop``, ``beta`` (as ``decay``) and ``epsilon`` (as ``eps``)."""
    takes = inspect.signature(factory).parameters
    return tuple(
        s
        for s in RUN_SETTINGS
        if s.kind == "float" and s.name != "learning_rate" and set(s.spellings) & set(takes)
    )


def factory_arguments(factory: Callable, values: Mapping[str, Any]) -> dict[str, Any]:
    """An optimizer factory's keyword arguments from run settings, in the factory's spelling:
    for ``optimizers.adam``, ``{"beta1": 0.8, "epsilon": 1e-7, "beta": 0.5}`` gives
    ``{"b1": 0.8, "eps": 1e-7}``. The learning rate (the factory's first argument) is not
    among them."""
    takes = inspect.signature(factory).parameters
    return {
        spelling: values[s.name]
        for s in factory_settings(factory)
        for spelling in s.spellings
        if spelling in takes and s.name in values
    }


def run_dtype(dtype=None) -> np.dtype:
    """The float dtype a run computes in: ``dtype``, or JAX's default (float64 under x64)."""
    if dtype is not None:
        return np.dtype(dtype)
    import jax.numpy as jnp  # here, not at the top: the command imports this before JAX

    return np.dtype(jnp.result_type(float))


def _traced(value) -> bool:
    """A value inside ``jit`` or ``vmap``: not known yet, so not checkable. (Without JAX loaded
    there is no tracer: a command refuses a bad flag before it loads JAX.)"""
    if "jax" not in sys.modules:
        return False
    from jax.core import Tracer

    return isinstance(value, Tracer)


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def interval(s: Setting) -> str:
    if s.kind == "float":
        low = "-inf" if s.low is None else s.low
        high = "inf" if s.high is None else s.high
        return f"{'(' if s.low_open else '['}{low}, {high}{']' if s.high_closed else ')'}"
    return f"[{s.low}, {s.high}]"


def _inside(s: Setting, v: np.ndarray) -> np.ndarray:
    ok = np.isfinite(v)
    if s.low is not None:
        ok &= (v > s.low) if s.low_open else (v >= s.low)
    if s.high is not None:
        ok &= (v < s.high) if s.kind == "float" and not s.high_closed else (v <= s.high)
    return ok


def check(setting: str, value, *, name: str | None = None, dtype=None) -> None:
    """Raise :class:`InvalidValue` unless ``value`` is inside ``setting``'s range.

    A float (every element of an array) must be finite and inside both as given and once rounded
    to the float ``dtype`` the run computes in (default: JAX's default float): in float32,
    ``0.99999999999`` is 1.0 (a momentum that never forgets) and ``1e-50`` is 0.0 (a learning
    rate that never moves), so both are refused there and accepted under float64. Values traced
    inside ``jit`` or ``vmap`` are not known yet and pass. An integer must be a Python or NumPy
    integer (not a bool). A seed may also be None.

    Args:
      setting: a name in :data:`SETTINGS`.
      value: the value to check.
      name: how the caller spells the argument (default: the setting's name).
      dtype: the run's float dtype.
    """
    s, name = BY_NAME[setting], name or setting
    if s.kind in ("float",):
        _check_float(s, name, value, dtype)
    elif s.kind in ("int", "seed"):
        if s.kind == "seed" and value is None:
            return
        _check_int(s, name, value)
    elif s.kind in ("choice",) and value not in s.choices:
        raise InvalidValue(name, f"must be one of {', '.join(s.choices)}, got {value!r}", setting=s.name)


def _check_float(s: Setting, name: str, value, dtype) -> None:
    if _traced(value):
        return
    if isinstance(value, (bool, np.bool_, str)):
        raise InvalidValue(name, f"must be a number, got {value!r}", setting=s.name)
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InvalidValue(name, f"must be a number, got {value!r}", setting=s.name) from None
    ok = _inside(s, values)
    if not np.all(ok):
        shown = value if values.ndim == 0 else values[~ok].tolist()
        raise InvalidValue(
            name, f"must be a finite number in {interval(s)}, got {shown!r}", setting=s.name
        )
    run = run_dtype(dtype)
    with np.errstate(over="ignore", under="ignore"):
        rounded = values.astype(run).astype(np.float64)
    ok = _inside(s, rounded)
    if not np.all(ok):
        shown = value if values.ndim == 0 else values[~ok].tolist()
        became = rounded if values.ndim == 0 else rounded[~ok]
        raise InvalidValue(
            name,
            f"must be a finite number in {interval(s)} in {run.name}, got {shown!r}, which "
            f"rounds to {became.tolist()!r} there: use float64 (JAX_ENABLE_X64=1, or --x64) or a "
            "value that stays inside",
            setting=s.name,
        )
    tiny = float(np.finfo(run).tiny)
    if s.normal and np.any(rounded < tiny):
        shown = value if values.ndim == 0 else values[rounded < tiny].tolist()
        raise InvalidValue(
            name,
            f"must be at least {tiny!r}, {run.name}'s smallest normal number, got {shown!r}: "
            "smaller values compute as 0 (processors flush them to zero), and a gradient entry "
            "of 0 then makes 0/0",
            setting=s.name,
        )


def _check_int(s: Setting, name: str, value) -> None:
    if _traced(value):
        return
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if is_int and s.low <= value <= s.high:
        return
    if s.kind == "seed":
        wanted = f"None (course randomness) or an integer in {interval(s)}"
    elif s.high == MAX_INT32:  # int32 storage is the only upper limit: named only when hit
        wanted = "an integer" + (f" >= {s.low}" if not is_int or value < s.low else "")
        if is_int and value > s.high:
            raise InvalidValue(name, f"must be at most {s.high}, got {value!r}", setting=s.name)
    else:
        wanted = f"an integer in {interval(s)}"
    raise InvalidValue(name, f"must be {wanted}, got {value!r}", setting=s.name)


def from_text(setting: str, text: str):
    r"""A setting's value from text (a flag, an environment variable): parsed by its kind, then
    :func:`check`\ ed in float64 (the run's precision is known later: check it again then).

    Raises:
      InvalidValue: its ``reason`` says what was expected, in words (``must be in [0, 1), got
        '1'``, ``expected a number, got 'x'``).
    """
    s = BY_NAME[setting]

    def refuse(reason: str):
        return InvalidValue(setting, f"{reason}, got {text!r}")

    if s.kind == "folder":
        if not text.strip():  # Path("") is the current folder: a lost variable, most likely
            raise refuse("expected a folder's path (an empty one would write into the current folder)")
        path = Path(text)
        if path.exists() and not path.is_dir():
            raise InvalidValue(setting, f"{text!r} exists and is not a folder")
        return path
    if s.kind == "address":
        host, _, port = text.rpartition(":")
        if not host.strip() or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise refuse("expected HOST:PORT with a port 1-65535")
        return text
    try:
        value = float(text) if s.kind == "float" else int(text)
    except ValueError:
        raise refuse(f"expected {'a number' if s.kind == 'float' else 'an integer'}") from None
    if s.kind == "float" and not np.isfinite(value):
        raise refuse("expected a finite number")
    try:
        check(setting, value, dtype="float64")
    except InvalidValue as error:
        if s.normal and _inside(s, np.float64(value)):  # in range, but not a normal number
            raise InvalidValue(setting, error.reason) from None
        raise refuse(f"must be {in_words(s)}") from None
    return value


def in_words(s: Setting) -> str:
    """A setting's range as a flag's error says it: ``> 0``, ``in [0, 1)``, ``an integer in ...``."""
    if s.kind != "float":
        return f"an integer in [{s.low}, {s.high}]"
    if s.high is None:
        return f"{'>' if s.low_open else '>='} {s.low:g}"
    return f"in {'(' if s.low_open else '['}{s.low:g}, {s.high:g}{']' if s.high_closed else ')'}"


def check_learning_rate(learning_rate, *, name: str = "learning_rate") -> None:
    """A learning rate is a callable schedule, or a number in the ``learning_rate`` range."""
    if not callable(learning_rate):
        check("learning_rate", learning_rate, name=name)
