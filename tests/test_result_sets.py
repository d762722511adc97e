"""A command's files land whole or not at all (jaxopt_lab.result_sets): in process, and in real
processes stopped by a signal at several points of the writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jaxopt_lab import cli, result_sets, runtime


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _staged(folder: Path) -> list[Path]:
    """The finished files of a set being staged in ``folder`` (not the writers' temporary ones)."""
    return [p for p in folder.glob(f"{runtime.TEMP_PREFIX}set-*/*")
            if not p.name.startswith(runtime.TEMP_PREFIX)]  # fmt: skip


def test_a_set_replaces_the_previous_one_whole_and_leaves_other_files_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with result_sets.result_set(tmp_path, "first") as folder:
        for name in ("a.json", "b.png", "c.md"):
            (folder / name).write_text(f"first {name}")
    assert result_sets.previous_files(tmp_path) == ["a.json", "b.png", "c.md"]
    with result_sets.result_set(tmp_path, "second") as folder:
        (folder / "a.json").write_text("second a")
        (folder / "d.csv").write_text("second d")
    assert _contents(tmp_path).keys() == {"a.json", "d.csv", "notes.txt", result_sets.MANIFEST}
    assert (tmp_path / "a.json").read_text() == "second a"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    manifest = json.loads((tmp_path / result_sets.MANIFEST).read_text())
    assert manifest["command"] == "second" and manifest["files"] == ["a.json", "d.csv"]


def test_a_failed_write_changes_nothing_and_leaves_no_staging_folder(tmp_path):
    with result_sets.result_set(tmp_path, "first") as folder:
        (folder / "a.json").write_text("first")
    before = _contents(tmp_path)
    with pytest.raises(OSError), result_sets.result_set(tmp_path, "second") as folder:
        (folder / "a.json").write_text("second")
        raise OSError(28, "No space left on device")
    assert _contents(tmp_path) == before


@pytest.mark.parametrize("text", ["not json", '{"files": "a.json"}', '{"files": ["../x", "a/b"]}'])
def test_a_damaged_manifest_names_nothing(tmp_path, text):
    (tmp_path / result_sets.MANIFEST).write_text(text)
    (tmp_path / "x").write_text("kept")
    assert result_sets.previous_files(tmp_path) == []
    with result_sets.result_set(tmp_path, "new") as folder:
        (folder / "a.json").write_text("new")
    assert (tmp_path / "x").read_text() == "kept"


# A real process writes a set of five files slowly under the command's signal handling; it is
# stopped after the k-th file is staged.
WRITER = textwrap.dedent("""
    import sys, time
    from jaxopt_lab import cli, result_sets, runtime
    out, tag = sys.argv[1], sys.argv[2]
    with runtime.stop_on_signals(lambda line: print(line, file=sys.stderr)):
        with result_sets.result_set(out, tag) as folder:
            for i in range(5):
                runtime.write_text(folder / f"file{i}.txt", f"{tag} {i}")
                time.sleep(0.1)
""")


def _writer(out: Path, tag: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(out), tag],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize(
    ("staged", "signum"), [(1, signal.SIGINT), (4, signal.SIGINT), (5, signal.SIGTERM)]
)
def test_a_stop_while_a_set_is_written_leaves_the_previous_set(tmp_path, staged, signum):
    assert _writer(tmp_path, "old").wait(timeout=60) == 0
    old = _contents(tmp_path)
    proc = _writer(tmp_path, "new")
    _wait_for(lambda: len(_staged(tmp_path)) >= staged)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert err.strip() == f"{signal.Signals(signum).name}: stopped"
    assert _contents(tmp_path) == old  # the old set, byte for byte, and no staging folder


def test_a_stop_during_the_compare_of_more_seeds_leaves_the_previous_set(tmp_path, capsys):
    """The issue's case: ``compare --seeds 1 --out o`` (here in this process: the same command,
    its programs shared with the other tests), then ``compare --seeds 2 --out o`` in a process of
    its own, stopped with SIGINT just after its first file appeared."""
    out = tmp_path / "o"
    assert cli.main(["compare", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    old = _contents(out)
    assert json.loads(old["compare_seeds.json"])["seeds"] == [0]
    second = subprocess.Popen(
        [sys.executable, "-m", "jaxopt_lab.cli", "compare", "--seeds", "2", "--out", str(out),
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"},
    )  # fmt: skip
    _wait_for(lambda: _staged(out) or second.poll() is not None, timeout=120)
    second.send_signal(signal.SIGINT)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 130 and err.strip() == "jaxopt-lab: SIGINT: stopped", err
    assert _contents(out) == old
