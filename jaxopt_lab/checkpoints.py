"""Checkpoints and interrupts of a training run: both act at ``fit``'s chunk boundaries.

A :class:`Checkpointer` writes a run's :class:`train.TrainState` atomically into a folder;
:class:`DeferredInterrupt` turns a signal into a request that the running chunk honours when it
finishes, so the state handed on is always consistent.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab.train import TrainState, check_positive_int

CHECKPOINT_PREFIX = "ckpt_"


class TrainingInterrupted(Exception):
    """SIGINT arrived; ``state`` is where the run stood at the chunk boundary after it."""

    def __init__(self, state: TrainState):
        super().__init__(f"interrupted at epoch {state.epoch}")
        self.state = state


class DeferredInterrupt:
    """Turn SIGINT into a request honoured at the next chunk boundary.

    Use as a context manager around ``fit`` and pass :meth:`check` in ``on_chunk``: the compiled
    chunk finishes, the state is consistent, and :class:`TrainingInterrupted` carries it out.
    Outside the main thread (where signal handlers cannot be set) it does nothing.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def check(self, state: TrainState) -> None:
        if self.requested:
            raise TrainingInterrupted(state)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpointer:
    """Atomic checkpoints of a run's :class:`TrainState` in one directory.

    Each save writes ``ckpt_<epoch>.npz`` to a temporary name, fsyncs it and renames it into place,
    so a crash mid-save leaves the earlier checkpoints whole; the ``keep`` newest are kept. The
    file holds params, optimizer state (leaves of the state's pytree), epoch, cost history and the
    run's ``config``; a resume with a different config is refused. The randomness position is the
    epoch: course mode re-seeds per epoch and seed mode folds the epoch into the key.

    Args:
      directory: where checkpoints live (created if missing).
      every: save when the completed epoch count is a multiple of this (run ``fit`` with a
        ``chunk_epochs`` that divides it), and always when asked through :meth:`save`.
      config: JSON-serialisable description of the run (optimizer, hyperparameters, seed, ...).
      keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory, every: int, config: dict, keep: int = 2):
        check_positive_int("checkpoint_every", every)
        check_positive_int("keep", keep)
        self.directory = Path(directory)
        self.every = every
        self.config = config
        self.keep = keep

    def __call__(self, state: TrainState) -> None:
        if state.epoch % self.every == 0:
            self.save(state)

    def paths(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = self.directory.glob(f"{CHECKPOINT_PREFIX}*.npz")
        return sorted(found, key=lambda p: int(p.stem[len(CHECKPOINT_PREFIX) :]))

    def save(self, state: TrainState) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        leaves = jax.tree.leaves((state.params, state.opt_state))
        arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
        meta = {"epoch": int(state.epoch), "config": self.config, "num_leaves": len(leaves)}
        final = self.directory / f"{CHECKPOINT_PREFIX}{state.epoch:09d}.npz"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, costs=np.asarray(state.costs), meta=json.dumps(meta), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(self.directory)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return final

    def restore(self, template: TrainState) -> TrainState | None:
        """The newest checkpoint laid into ``template``'s structure, or None if there is none.

        Raises:
          ValueError: the checkpoint was made with another config or another structure.
        """
        paths = self.paths()
        if not paths:
            return None
        with np.load(paths[-1]) as f:
            meta = json.loads(str(f["meta"]))
            leaves = [f[f"leaf_{i}"] for i in range(meta["num_leaves"])]
            costs = f["costs"]
        saved, current = meta["config"], self.config
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            diffs = ", ".join(
                f"{k}: {saved.get(k)!r} there vs {current.get(k)!r} now" for k in changed
            )
            raise ValueError(
                f"checkpoint {paths[-1]} was made with another configuration ({diffs})"
            )
        like, treedef = jax.tree.flatten((template.params, template.opt_state))
        if len(like) != len(leaves) or any(
            np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype
            for a, b in zip(like, leaves, strict=True)
        ):
            raise ValueError(
                f"checkpoint {paths[-1]} does not fit this run's parameters and optimizer state "
                "(different layers, optimizer or float precision)"
            )
        params, opt_state = jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves])
        return TrainState(params, opt_state, meta["epoch"], costs)
