"""Checkpoints of a training run and the lock on their folder; both act at ``fit``'s chunk
boundaries, so the state they save or restore is always consistent.

- :class:`Checkpointer` writes a run's :class:`train.TrainState` atomically into a folder, each file
  with a checksum, and restores the newest intact one of *this* run, skipping damaged files, files
  of other runs and anything that is not exactly a checkpoint's name.
- :class:`FolderLock` makes one run the owner of its checkpoint folder; a second run is refused with
  the holder's pid and host, and never touches the first one's files.

A checkpoint stays resumable across upgrades: a setting it was saved without reads as the
setting's default (a new setting's default keeps what runs did before it existed), and one that
records seed mode's epoch order refuses to continue in another order.

``runs.train_run`` puts them together with signals into a resumable run.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab import __version__, data, runtime
from jaxopt_lab.settings import RUN_SETTINGS, InvalidValue, check
from jaxopt_lab.train import TrainState

CHECKPOINT_PREFIX = "ckpt_"
CHECKPOINT_NAME = re.compile(
    r"ckpt_(\d{9,10})\.npz"
)  # exactly what :meth:`Checkpointer.save` writes
LOCK_NAME = ".lock"
# Checkpoints that record no epoch order were written by these versions, in this order (the name
# stays when data.EPOCH_ORDER moves on: it is what those files hold).
UNRECORDED_EPOCH_ORDER = "sorted-threefry-bits"
UNRECORDED_VERSION = "<= 0.1.0"


class FolderLockedError(RuntimeError):
    """Another live process holds the folder."""


class FolderLock:
    """An exclusive ``flock`` on ``DIR/.lock`` for the life of a run.

    The kernel drops the lock when the holder exits, however it exits, so a killed run never
    leaves a stale lock; the file's text (pid, host, start time, command) only names the holder.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FolderLockedError(f"{self.directory} is in use by {holder}") from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started} "
                     f"({' '.join(sys.argv)})\n".encode())  # fmt: skip
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def normalise_config(config: dict) -> dict:
    """``config`` as it reads back from JSON (tuples as lists, NumPy scalars as Python numbers,
    keys as strings), so a saved config compares equal to the one that saved it.

    Raises:
      ValueError: ``config`` holds something JSON cannot store.
    """

    def plain(value):
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(config, default=plain, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"config must be JSON-serialisable: {error}") from None


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def config_differences(saved: dict, current: dict, defaults: Mapping[str, Any]) -> list[str]:
    """How a saved config differs from the current one, one phrase per setting, by name.

    A setting the saved config lacks counts as its entry in ``defaults``: the checkpoint was
    written before the setting existed, when runs did what its default does. A saved setting the
    current config lacks is a difference: what it did then is unknown now.
    """
    found = []
    for name in sorted(set(saved) | set(current)):
        if name not in current:
            found.append(f"{name}: {saved[name]!r} there, not a setting now")
        elif name in saved:
            if saved[name] != current[name]:
                found.append(f"{name}: {saved[name]!r} there vs {current[name]!r} now")
        elif name not in defaults:
            found.append(f"{name}: missing there vs {current[name]!r} now")
        elif defaults[name] != current[name]:
            found.append(
                f"{name}: missing there (its default {defaults[name]!r}) vs {current[name]!r} now"
            )
    return found


class EpochOrderError(ValueError):
    """A seed-mode checkpoint of this run, shuffled in another epoch order than this version's."""


def _epoch_of(path: Path) -> int:
    return int(CHECKPOINT_NAME.fullmatch(path.name).group(1))


class Checkpointer:
    """Atomic, checksummed checkpoints of a run's :class:`TrainState` in one folder.

    Each save writes ``ckpt_<epoch>.npz`` to a temporary name, fsyncs it and renames it into place,
    so a crash mid-save leaves the earlier checkpoints whole; the ``keep`` newest are kept. The
    file holds params, optimizer state (leaves of the state's pytree), epoch, cost history, the
    run's ``config``, seed mode's epoch order and the version that wrote it, and a SHA-256 of the
    arrays. The randomness position is the epoch: course mode re-seeds per epoch and seed mode
    folds the epoch into the key.

    Args:
      directory: where checkpoints live (created if missing).
      every: save when the completed epoch count is a multiple of this (run ``fit`` with a
        ``chunk_epochs`` that divides it), and always when asked through :meth:`save`.
      config: JSON-serialisable description of the run (optimizer, hyperparameters, seed, ...);
        it is the run's identity: a checkpoint saved with another one is never restored. A
        ``seed`` that is not None means seed mode, whose epoch order (``data.EPOCH_ORDER``, saved
        in every checkpoint) must be this version's.
      keep: how many of the newest checkpoints to keep.
      defaults: what a setting missing from a saved config stands for (default: each run
        setting's default, from ``settings.RUN_SETTINGS``).

    Raises:
      ValueError: a bad ``every`` or ``keep``, or a config JSON cannot store.
    """

    def __init__(
        self, directory, every: int, config: dict, keep: int = 2, *,
        defaults: Mapping[str, Any] | None = None,
    ):  # fmt: skip
        check("checkpoint_every", every)
        if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
            raise InvalidValue("keep", f"must be an integer >= 1, got {keep!r}")
        self.directory = Path(directory)
        self.every = every
        self.config = normalise_config(config)
        self.keep = keep
        if defaults is None:
            defaults = {s.name: s.default for s in RUN_SETTINGS}
        self.defaults = normalise_config(dict(defaults))
        self.skipped: list[tuple[str, str]] = []  # (file name, why) of the last restore

    def __call__(self, state: TrainState) -> None:
        if state.epoch % self.every == 0:
            self.save(state)

    def paths(self) -> list[Path]:
        """Files named exactly as checkpoints are, oldest name first (nothing else is touched)."""
        if not self.directory.is_dir():
            return []
        found = [
            p for p in self.directory.iterdir() if CHECKPOINT_NAME.fullmatch(p.name) and p.is_file()
        ]
        return sorted(found, key=_epoch_of)

    def save(self, state: TrainState) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        leaves = jax.tree.leaves((state.params, state.opt_state))
        arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
        arrays["costs"] = np.asarray(state.costs)
        meta = {
            "epoch": int(state.epoch), "config": self.config, "num_leaves": len(leaves),
            "sha256": _checksum(arrays), "epoch_order": data.EPOCH_ORDER, "version": __version__,
        }  # fmt: skip
        final = self.directory / f"{CHECKPOINT_PREFIX}{state.epoch:09d}.npz"
        runtime.atomic_write(final, lambda f: np.savez(f, meta=json.dumps(meta), **arrays))
        # Prune only up to this save: a file named as a later epoch (renamed, or left by someone
        # else) must neither push the checkpoint just written out nor be deleted by this run.
        older = [p for p in self.paths() if _epoch_of(p) <= state.epoch]
        for old in older[: -self.keep]:
            old.unlink(missing_ok=True)
        return final

    def _read(self, path: Path, template: TrainState) -> TrainState:
        """One checkpoint, fully checked against this run; ``ValueError`` says what is wrong."""
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                arrays = {name: f[name] for name in f.files if name != "meta"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            reason = "empty file" if path.stat().st_size == 0 else f"unreadable ({error})"
            raise ValueError(reason) from None
        if not isinstance(meta, dict) or not {"epoch", "config", "num_leaves", "sha256"} <= set(
            meta
        ):
            raise ValueError("no checkpoint metadata")
        if _checksum(arrays) != meta["sha256"]:
            raise ValueError("checksum mismatch (damaged bytes)")
        if CHECKPOINT_NAME.fullmatch(path.name).group(1) != f"{meta['epoch']:09d}":
            raise ValueError(f"its name does not match the epoch saved inside ({meta['epoch']})")
        changed = config_differences(meta["config"], self.config, self.defaults)
        if changed:
            raise ValueError(f"made with another configuration ({', '.join(changed)})")
        order = meta.get("epoch_order", UNRECORDED_EPOCH_ORDER)
        if self.config.get("seed") is not None and order != data.EPOCH_ORDER:
            raise EpochOrderError(
                f"{path} was made with the seed-mode epoch order {order!r}; this version "
                f"({__version__}) shuffles with {data.EPOCH_ORDER!r}: resume it with jaxopt_lab "
                f"{meta.get('version', UNRECORDED_VERSION)}, or start afresh in another folder"
            )
        like, treedef = jax.tree.flatten((template.params, template.opt_state))
        leaves = [arrays.get(f"leaf_{i}") for i in range(meta["num_leaves"])]
        if len(like) != len(leaves) or any(
            b is None or np.shape(a) != b.shape or np.asarray(a).dtype != b.dtype
            for a, b in zip(like, leaves, strict=True)
        ):
            raise ValueError(
                "does not fit this run's parameters and optimizer state (different layers, "
                "optimizer or float precision)"
            )
        params, opt_state = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves])
        return TrainState(params, opt_state, int(meta["epoch"]), arrays["costs"])

    def restore(self, template: TrainState) -> TrainState | None:
        """The newest intact checkpoint of this run, laid into ``template``'s structure; None if
        the folder holds no checkpoint at all.

        Newer files that are damaged (truncated, empty, flipped or random bytes), renamed, made
        with another config or not fitting the template are skipped, each recorded in
        :attr:`skipped` with the reason, and the next newest is tried. A checkpoint of this run
        in another seed-mode epoch order stops the search: continuing from an older one would
        quietly give up the epochs after it.

        Raises:
          EpochOrderError: the newest checkpoint of this run was shuffled in another epoch order.
          ValueError: there are checkpoints, but none of them is an intact one of this run.
        """
        self.skipped = []
        for path in reversed(self.paths()):
            try:
                return self._read(path, template)
            except EpochOrderError:
                raise
            except ValueError as error:
                self.skipped.append((path.name, str(error)))
        if not self.skipped:
            return None
        reasons = "; ".join(f"{name}: {why}" for name, why in self.skipped)
        raise ValueError(f"no intact checkpoint of this run in {self.directory} ({reasons})")
