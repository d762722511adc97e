"""A command's files in its ``--out`` folder, put in place whole or not at all.

A command writes its result set (JSON, Markdown, tables, pictures) into a hidden staging folder
inside ``--out`` (:func:`result_set`); only when every file is there do they move into the folder,
together, with stop signals held back for those few renames. The set's manifest,
:data:`MANIFEST`, written last, names its files. So a stop (SIGINT, SIGTERM, SIGHUP) at any moment
leaves the folder holding the previous set or the new one, never a mix: during the writing the
staging folder is removed and the previous set stays; during the renames the stop waits until
the new set is complete.

A new set replaces the previous one whole: the files the previous manifest named and the new set
lacks are removed with the swap. Anything else in the folder (files a user put there, another
tool's) is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jaxopt_lab import runtime

MANIFEST = "result_set.json"  # names the files of the set in the folder; written last


def previous_files(out: Path) -> list[str]:
    """The files the folder's manifest names (none if it has no readable manifest)."""
    try:
        names = json.loads((out / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n and Path(n).name == n and n != MANIFEST]


@contextlib.contextmanager
def result_set(out: str | Path, command: str) -> Iterator[Path]:
    """Yield a staging folder to write a result set into; on leaving the block, put its files in
    ``out`` together and write the manifest (``{"command", "files", "version"}``).

    If the block raises (a failed write, a full disk), nothing in ``out`` changes. A stop signal
    while the block runs ends the process as usual (:func:`runtime.stop_on_signals`), and the
    staging folder goes with it.

    Raises:
      OSError: ``out`` cannot take the staging folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{runtime.TEMP_PREFIX}set-", dir=out))
    try:
        with runtime.removed_on_stop(staging):
            yield staging
            _swap_in(staging, out, command)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, out: Path, command: str) -> None:
    """Move every file of ``staging`` into ``out``, remove the previous set's other files, then
    write the manifest: with stops held back, so the folder changes from one set to the other."""
    from jaxopt_lab import __version__

    names = sorted(entry.name for entry in staging.iterdir() if entry.is_file())
    manifest = {"command": command, "files": names, "version": __version__}
    runtime.write_json(staging / MANIFEST, manifest)
    with runtime.deferred_stops():
        stale = [n for n in previous_files(out) if n not in names]
        for name in names:
            os.replace(staging / name, out / name)
        for name in stale:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                (out / name).unlink()
        os.replace(staging / MANIFEST, out / MANIFEST)
        runtime.fsync_directory(out)
