"""Sweeps as several real processes joined by jax.distributed on this machine (coordinator on
127.0.0.1, gloo collectives), and what the survivors do when one process is killed."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jaxopt_lab import cli

GRID = ["--optimizer", "adam", "--learning-rate", "0.001", "0.01", "0.1", "--beta1", "0.8", "0.9"]
SEEDS = ["--seed", "0", "1", "2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], devices: int) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    return subprocess.Popen(
        [sys.executable, "-m", "jaxopt_lab.cli", "sweep", *argv, "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def group(port: int, rank: int, *extra: str) -> list[str]:
    return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
            "--process-id", str(rank), *extra]  # fmt: skip


def test_two_processes_write_the_rows_of_one(tmp_path):
    # Process 0 with one host device, process 1 with two: a mesh of three over two processes.
    epochs = ["--epochs", "300"]
    port = free_port()
    pair = [
        start(
            [*GRID, *SEEDS, *epochs, *group(port, r), "--out", str(tmp_path / f"p{r}")],
            devices,
        )  # fmt: skip
        for r, devices in ((0, 1), (1, 2))
    ]
    single = start([*GRID, *SEEDS, *epochs, "--out", str(tmp_path / "one")], 1)
    outputs = [proc.communicate(timeout=240) for proc in (*pair, single)]
    for proc, (_, err) in zip((*pair, single), outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err

    ran = json.loads((tmp_path / "p0" / "sweep.json").read_text())
    alone = json.loads((tmp_path / "one" / "sweep.json").read_text())
    assert ran["devices"] == 3 and alone["devices"] == 1
    assert len(ran["results"]) == len(alone["results"]) == 3 * 2 * 3
    for a, b in zip(ran["results"], alone["results"], strict=True):
        assert {k: v for k, v in a.items() if k != "final_cost"} == {
            k: v for k, v in b.items() if k != "final_cost"
        }
        assert a["final_cost"] == pytest.approx(b["final_cost"], rel=1e-5)
    assert (tmp_path / "p0" / "sweep.png").is_file()
    # Process 1 trains its share, writes nothing and says so in one line.
    assert not (tmp_path / "p1").exists()
    out1, err1 = outputs[1]
    assert (out1 + err1).strip().splitlines() == [
        "jaxopt-lab: process 1 of 2 done; process 0 prints and writes the results"
    ]
    assert "[Gloo]" not in outputs[0][0]


@pytest.fixture(scope="module")
def killed_pairs():
    """Two pairs started at once, the process of rank 1 killed in one and rank 0 in the other: for
    each victim, what its survivor did (exit status, stdout, stderr, seconds from the kill to its
    end). Each pair waits mostly for start-up and the peer timeout, so the two share the wait."""
    long_run = ["--epochs", "2000000", "--peer-timeout", "3"]
    ports = set()
    while len(ports) < 2:
        ports.add(free_port())
    pairs = {
        victim: [start([*GRID, *long_run, *group(port, r)], 1) for r in (0, 1)]
        for victim, port in zip((1, 0), sorted(ports), strict=True)
    }
    try:
        time.sleep(9)  # both joined and training (a kill during joining ends the same way)
        for victim, pair in pairs.items():
            pair[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()

        def survivor_of(victim):
            survivor = pairs[victim][1 - victim]
            out, err = survivor.communicate(timeout=120)
            return survivor.returncode, out, err, time.monotonic() - killed_at

        with concurrent.futures.ThreadPoolExecutor(len(pairs)) as pool:
            ended = dict(zip(pairs, pool.map(survivor_of, pairs), strict=True))
        yield ended
    finally:
        for pair in pairs.values():
            for proc in pair:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()


@pytest.mark.parametrize("victim", [1, 0])
def test_a_killed_process_stops_the_other_in_bounded_time_with_one_line(killed_pairs, victim):
    returncode, out, err, waited = killed_pairs[victim]
    assert returncode != 0
    assert waited < 60, f"the survivor took {waited:.0f} s to stop"
    assert "Traceback" not in err and "Check failure" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("jaxopt-lab: error: ")
    assert out == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--process-id", "0"], "go together"),
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2"], "go together"),
        (
            ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
            "must be below --num-processes 2",
        ),  # fmt: skip
        (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
        (["--coordinator", "h:70000", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
    ],
)
def test_process_group_flags_are_refused_in_one_line(capsys, extra, message):
    assert cli.main(["sweep", "--epochs", "1", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
