"""What a process sets up once, and the few things every part of the project does with files and
signals: precision, the compilation cache, backend start-up, CPU devices, atomic writes, stops.

- :func:`use_float64`, :func:`enable_compilation_cache`, :func:`use_every_cpu_core` and
  :func:`start_backend` configure JAX for a command (before it computes anything); importing
  ``jaxopt_lab`` already gives JAX a device per core (:func:`use_every_cpu_core_from_jax_import`).
- :func:`atomic_write` is the one way the project writes a file: a temporary file in the same
  folder, flushed, synced and renamed into place, so a reader sees the old file or the new one,
  never half of one. :func:`write_json` and :func:`ensure_writable_dir` build on it.
- :func:`deferred_stops` turns SIGINT, SIGTERM and SIGHUP (Ctrl-C, ``timeout``, docker, SLURM, a
  closed terminal) into a request that training honours at its next chunk boundary;
  :func:`stop_on_signals` makes them one line and an exit outside training;
  :func:`forward_signals` passes them on to a child process.

This module imports nothing of the project, and JAX only inside the functions that configure it:
a command imports it first, so that a signal is handled from its first instant.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# ---------------------------------------------------------------------------------------------
# JAX's set-up for a command
# ---------------------------------------------------------------------------------------------


def use_float64() -> None:
    """Make every array float64 (``--x64``); only before any array exists, or earlier arrays
    stay float32."""
    import jax

    jax.config.update("jax_enable_x64", True)


def in_this_precision(work: Callable) -> Callable:
    """``work``, to be run on another thread in the precision of the thread calling this.

    ``with jax.enable_x64(True):`` switches float64 on for the thread that enters it only; a
    worker thread would train in float32 and say nothing.
    """
    import jax

    x64 = bool(jax.config.jax_enable_x64)

    def run(*args, **kwargs):
        with jax.enable_x64(x64):
            return work(*args, **kwargs)

    return run


def cache_dir() -> Path:
    """Where compiled programs persist: ``$XDG_CACHE_HOME/jaxopt_lab/jax`` (``~/.cache`` default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxopt_lab" / "jax"


CACHE_BYTES = 2**30  # the compilation cache's bound on disk


def enable_compilation_cache() -> None:
    """Turn on JAX's persistent compilation cache so a repeated command skips XLA compiles.

    Every program is cached however fast it compiled: a command compiles dozens of small ones and
    together they cost more than a second. The cache holds at most :data:`CACHE_BYTES` (the least
    recently used entries go first) and locks each read and write, so commands running at once
    never read half an entry. ``JAXOPT_LAB_NO_CACHE=1`` turns it off, and a cache the process has
    already configured (``JAX_COMPILATION_CACHE_DIR``, say) is left as it is. A damaged entry is
    removed (one line on stderr) so that this run writes it anew.
    """
    import jax

    if os.environ.get("JAXOPT_LAB_NO_CACHE") or jax.config.jax_compilation_cache_dir:
        return

    _complete_access_times(cache_dir())
    jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", CACHE_BYTES)
    # JAX 0.10 reports an entry it cannot read only through warnings.warn (no event, logger or
    # callback says which), and rewrites a key only if its file is gone. So the one hook there is
    # is the warnings display; it handles that message and passes every other warning on.
    if not getattr(warnings.showwarning, "removes_damaged_cache_entries", False):
        warnings.showwarning = _removing_damaged_entries(warnings.showwarning)


_DAMAGED_ENTRY = re.compile(r"Error reading persistent compilation cache entry for '([\w.-]+)'")


def _removing_damaged_entries(show):
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if _MISSING_ACCESS_TIME.search(str(message)):  # another process stopped mid-write
            _complete_access_times(cache_dir())  # this entry is written next time
            return None
        found = _DAMAGED_ENTRY.search(str(message))
        if found is None:
            return show(message, category, filename, lineno, file, line)
        for path in _undecodable_entries(found.group(1)):
            path.unlink(missing_ok=True)
            print(f"jaxopt-lab: removed a damaged compilation-cache entry ({path.name}); "
                  "recompiled", file=sys.stderr)  # fmt: skip
        return None

    showwarning.removes_damaged_cache_entries = True
    return showwarning


_MISSING_ACCESS_TIME = re.compile(r"Error writing persistent compilation cache entry .*-atime")


def _complete_access_times(directory: Path) -> None:
    """Give every cached program in ``directory`` an access-time file (the oldest time, so it is
    evicted first). Before each write, JAX's bounded cache reads the access time of every entry,
    and one missing file makes every write fail with a warning: a process stopped between an
    entry's two files leaves one, and so does a cache written without a bound (jaxopt_lab before
    the bound, or JAX's own default)."""
    try:
        names = set(os.listdir(directory))
    except OSError:  # no cache yet, or not readable: JAX says so if it matters
        return
    for name in names:
        if name.endswith("-cache") and f"{name.removesuffix('-cache')}-atime" not in names:
            try:
                (directory / f"{name.removesuffix('-cache')}-atime").write_bytes(bytes(8))
            except OSError:
                return


def _undecodable_entries(name: str) -> list[Path]:
    """The entries of ``name`` (a program's or a key's) that JAX's own decoder refuses."""
    from jax._src.compilation_cache import decompress_executable  # JAX's format, no public API

    damaged = []
    entries = [*cache_dir().glob(f"{name}-cache"), *cache_dir().glob(f"{name}-*-cache")]
    for path in entries:
        try:
            decompress_executable(path.read_bytes())
        except Exception:  # noqa: BLE001 - any failure to decode means a damaged entry
            damaged.append(path)
    return damaged


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS): every core of the machine
        return os.cpu_count() or 1


def use_every_cpu_core() -> str | None:
    """One host device per core, so a sweep on CPU keeps every core busy (measured: 2 devices on
    2 cores run a 256-run sweep 1.5x faster than one); work on one device is unchanged.

    A count the user chose wins: ``--xla_force_host_platform_device_count`` in XLA_FLAGS or
    ``jax_num_cpu_devices`` already set. JAX takes the count only before its backend starts.

    Returns:
      None, or, when JAX's backend had already started on fewer CPU devices than cores, one
      sentence that says how to get every core.
    """
    import jax

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if jax.config.jax_num_cpu_devices >= 0:
        return None
    cores = cpu_cores()
    try:
        jax.config.update("jax_num_cpu_devices", cores)
        return None
    except RuntimeError:  # the backend has started
        pass
    if jax.default_backend() != "cpu" or jax.local_device_count() >= cores:
        return None
    return (
        f"JAX started before jaxopt_lab could give it one device per core, so sweeps run on "
        f"{jax.local_device_count()} of {cores} CPU cores: import jaxopt_lab before JAX "
        f"computes anything, or set XLA_FLAGS=--xla_force_host_platform_device_count={cores} "
        "before Python starts"
    )


def use_every_cpu_core_from_jax_import() -> str | None:
    """:func:`use_every_cpu_core` now if JAX is imported, else as soon as it is (what importing
    ``jaxopt_lab`` does). Importing JAX here instead would cost a command 0.5-2.5 s before it
    handles signals. Returns what :func:`use_every_cpu_core` says now, else None."""
    if "jax" in sys.modules:
        return use_every_cpu_core()
    sys.meta_path.insert(0, _AfterImport("jax", use_every_cpu_core))
    return None


class _AfterImport(importlib.abc.MetaPathFinder):
    """Call ``then()`` right after module ``name`` is first executed (once; then it leaves
    ``sys.meta_path``). The module is found and loaded as without it."""

    def __init__(self, name: str, then: Callable[[], Any]):
        self.name, self.then = name, then

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # by the finders after this one
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module  # this spec's own loader: patching it touches no other

        def exec_module(module):
            execute(module)
            self.then()

        spec.loader.exec_module = exec_module
        return spec


class BackendError(RuntimeError):
    """JAX's backend could not start (``JAX_PLATFORMS=cuda`` on a machine without a GPU)."""


def start_backend() -> None:
    """Start JAX's backend now, so that one that cannot start is a :class:`BackendError` with one
    line, not a traceback from the first array."""
    import jax

    try:
        jax.devices()
    except (RuntimeError, AssertionError) as error:  # JAX 0.10 asserts when no platform starts
        platforms = os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms or "default"
        detail = str(error).strip().splitlines()[0] if str(error).strip() else "no device"
        raise BackendError(
            f"JAX could not start its backend (JAX_PLATFORMS={platforms}): {detail}"
        ) from None


def environment() -> dict[str, str]:
    """JAX version, backend and device of this process (for result files)."""
    import jax

    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "device": f"{device.platform}:{device.device_kind}",
        "float": "float64" if jax.config.jax_enable_x64 else "float32",
    }


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

TEMP_PREFIX = ".tmp-"  # temporary files; never taken for results or checkpoints


def fsync_directory(directory: Path) -> None:
    """Make a folder's renames durable (as far as the platform lets a folder be synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file through ``write(binary_file)`` atomically, creating its folder. A stop signal
    that arrives meanwhile waits until the file is in place (:func:`deferred_stops`).

    Raises:
      OSError: the folder cannot be made or the disk refuses the bytes; no temporary file stays.
    """
    with deferred_stops():
        return _write_then_rename(Path(path), write)


def _file_mode() -> int:
    """The permissions ``open`` gives a new file here: 0o666 less the process's umask (read without
    changing it: ``os.umask`` would change it for every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644  # the common umask, 022


def _write_then_rename(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes 0o600: a result others may read, as open's
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str | Path, content: Any) -> Path:
    """``content`` as strict JSON (a NaN is an error, not a bare ``NaN``), atomically."""
    return write_text(path, json.dumps(content, indent=1, allow_nan=False) + "\n")


def ensure_writable_dir(directory: str | Path) -> Path:
    """Create ``directory`` if needed and prove it takes a file (written, synced and removed).

    Raises:
      OSError: with the folder in ``filename``, e.g. not a folder, no permission, read-only, full.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test-")
    try:
        os.write(fd, b"jaxopt_lab")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(probe)
    return directory


# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------


class Stopped(Exception):
    """A signal stopped the work. ``state`` is where a run stood at the chunk boundary after it
    (None if no run was going), ``saved`` the checkpoint written then (None if none)."""

    def __init__(self, signum: int, state: Any = None, saved: Path | None = None):
        epoch = getattr(state, "epoch", "?")
        super().__init__(f"{signal.Signals(signum).name} at epoch {epoch}")
        self.signum, self.state, self.saved = signum, state, saved

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by this signal: 128 + its number."""
        return 128 + self.signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers(handler) -> Iterator[None]:
    """``handler`` for SIGINT, SIGTERM and SIGHUP inside the block (main thread only: Python sets
    handlers nowhere else), the previous ones restored after it."""
    previous = {}
    if _in_main_thread():
        previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def stop_on_signals(say: Callable[[str], None]) -> Iterator[None]:
    """Inside the block, SIGINT, SIGTERM and SIGHUP end the process at once, with one line
    (``say("SIGTERM: stopped")``) and the shell's exit status 128 + N: a command's start-up, before
    any work exists. :func:`deferred_stops` takes over during training and while a file is written.

    The process ends from the handler rather than through an exception: a handler runs between any
    two bytecodes, also inside callbacks that swallow exceptions (JAX's garbage-collection hook
    prints "Exception ignored" and carries on), where a raised stop would be lost.
    """

    def stop(signum, frame):
        del frame
        for path in list(_REMOVED_ON_STOP):
            shutil.rmtree(path, ignore_errors=True)
        say(f"{signal.Signals(signum).name}: stopped")
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(128 + signum)

    with _handlers(stop):
        yield


_REMOVED_ON_STOP: set[Path] = set()  # folders a stop removes before the process ends
# Set by a command, which ends its process after a stop: work threads need not be waited for.
ENDS_ON_STOP = threading.Event()


@contextlib.contextmanager
def removed_on_stop(folder: Path) -> Iterator[Path]:
    """Inside the block, a stop that ends the process (:func:`stop_on_signals`) first removes
    ``folder`` (a staging folder no one should find half-written)."""
    _REMOVED_ON_STOP.add(folder)
    try:
        yield folder
    finally:
        _REMOVED_ON_STOP.discard(folder)


class StopRequests:
    """The signals received inside a :func:`deferred_stops` block; :meth:`check` acts on them."""

    def __init__(self):
        self.signum: int | None = None
        self.acted = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def record(self, signum, frame) -> None:
        del frame
        if self.signum is None:  # the first signal decides the exit status
            self.signum = signum

    def check(self, state: Any = None) -> None:
        """Raise :class:`Stopped` with ``state`` if a signal arrived; call at a chunk boundary."""
        if self.signum is not None:
            self.acted = True
            raise Stopped(self.signum, state)


@contextlib.contextmanager
def deferred_stops() -> Iterator[StopRequests]:
    """Turn SIGINT, SIGTERM and SIGHUP into a request honoured at the next chunk boundary.

    The compiled chunk finishes, the state is consistent, and the code calling
    :meth:`StopRequests.check` raises :class:`Stopped` carrying it. A signal no check acted on is
    delivered again when the block ends, to the handler it found (outside the main thread, where
    handlers cannot be set, nothing is deferred).
    """
    requests = StopRequests()
    with _handlers(requests.record):
        yield requests
    if requests.signum is not None and not requests.acted and _in_main_thread():
        signal.raise_signal(requests.signum)


@contextlib.contextmanager
def forward_signals(child) -> Iterator[None]:
    """Pass SIGINT, SIGTERM and SIGHUP on to ``child`` (a ``subprocess.Popen``), which decides."""

    def forward(signum, frame):
        del frame
        child.send_signal(signum)

    with _handlers(forward):
        yield
