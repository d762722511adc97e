"""Several processes as one sweep: joining them with ``jax.distributed``, and ending cleanly when one
of them is lost.

A multi-process sweep runs in each process as a small supervisor around a worker (the command
that asked for it, run again as a child: :func:`supervise`). The worker joins the others through JAX's coordination
service (gloo collectives on CPU hosts), trains its share of the runs and checks at every chunk
boundary that its peers are still alive. The supervisor exists because of what JAX does when the
*coordinator* (process 0) disappears: its C++ runtime aborts the survivors with a native stack trace
that no Python code can catch. The supervisor turns any such end into one line and a non-zero exit,
and forwards the worker's own output without the runtime's log noise.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from jaxopt_lab import runtime
from jaxopt_lab.settings import InvalidValue

WORKER_ENV = "JAXOPT_LAB_DISTRIBUTED_WORKER"  # set in the worker child of a supervisor
DEFAULT_PEER_TIMEOUT = 60  # seconds without a heartbeat before a process counts as lost
# Native log lines (absl: "W1124 23:04:18.209276 15461 file.cc:185] ...") and gloo's notices.
_NATIVE_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|\[Gloo\]|\*\*\* |    @ |E0000 )")


class ProcessGroup(NamedTuple):
    """How this process joins the others: explicitly, or (all None) as the cluster says."""

    coordinator: str | None  # "host:port" of process 0's coordination service
    num_processes: int | None
    process_id: int | None

    def check(self) -> ProcessGroup:
        """Refuse a partial group or a rank past the count (:class:`InvalidValue`)."""
        given = [value is not None for value in self]
        if any(given) and not all(given):
            raise InvalidValue(
                "coordinator", ", {num_processes} and {process_id} go together",
                mentions=("num_processes", "process_id"),
            )  # fmt: skip
        if self.process_id is not None and self.process_id >= self.num_processes:
            raise InvalidValue(
                "process_id", f"{self.process_id} must be below {{num_processes}} {self.num_processes}",
                mentions=("num_processes",),
            )  # fmt: skip
        return self


class DistributedError(RuntimeError):
    """Joining failed, or a peer was lost: the message is one line for the user."""


def cluster_size_from_environment() -> int:
    """Processes a cluster manager launched this one among (1 when none): Open MPI or SLURM, the
    environments ``jax.distributed.initialize()`` reads the coordinator and ranks from itself."""
    size = os.environ.get("OMPI_COMM_WORLD_SIZE", "")
    if not size and "SLURM_JOB_ID" in os.environ:
        size = os.environ.get("SLURM_NTASKS") or os.environ.get("SLURM_NPROCS") or ""
    return int(size) if size.isdigit() and int(size) > 1 else 1


def is_worker() -> bool:
    """Whether this process is the worker child of a :func:`supervise`."""
    return bool(os.environ.get(WORKER_ENV))


def wanted(group: ProcessGroup) -> bool:
    """Whether this run is one of several processes."""
    if group.num_processes is not None:
        return group.num_processes > 1
    return cluster_size_from_environment() > 1


def join(group: ProcessGroup, *, peer_timeout: int = DEFAULT_PEER_TIMEOUT) -> None:
    """Join the process group; call before JAX computes anything.

    Peers are recoverable tasks: a lost peer is reported to the survivors (see
    :func:`check_peers`) instead of aborting them, and a peer silent for ``peer_timeout`` seconds
    counts as lost.

    Raises:
      DistributedError: the coordinator could not be reached in time, or JAX refused the group.
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_enable_recoverability", True)
    try:
        jax.distributed.initialize(
            coordinator_address=group.coordinator, num_processes=group.num_processes,
            process_id=group.process_id, heartbeat_timeout_seconds=peer_timeout,
            initialization_timeout=max(peer_timeout, 30),
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - JAX raises several types here; all mean "not joined"
        where = group.coordinator or "the cluster's coordinator"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DistributedError(f"could not join the process group at {where}: {first}") from None


def check_peers() -> None:
    """Raise :class:`DistributedError` naming the lost processes if any peer stopped responding."""
    import jax
    from jax._src import distributed  # the live-node query has no public API yet

    count = jax.process_count()
    if count == 1:
        return
    try:
        live = distributed.global_state.client.get_live_nodes(list(range(count)))
    except Exception as error:  # noqa: BLE001 - the coordinator itself is unreachable
        raise DistributedError(f"lost the coordinator of the {count} processes: {error}") from None
    lost = sorted(set(range(count)) - set(live))
    if lost:
        names = ", ".join(str(p) for p in lost)
        raise DistributedError(
            f"process {names} of {count} stopped responding; this process ({jax.process_index()}) "
            "stops too"
        )


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the worker may outlive a killed supervisor
        pass


def supervise(
    command: Sequence[str], group: ProcessGroup, *, own: Callable[[str], bool]
) -> tuple[int, str | None]:
    """Run ``command`` (a program and its arguments) as a worker child and report its end.

    The worker's standard output is forwarded without gloo's notices, its standard error keeps
    only the lines ``own`` accepts (the command's own messages). SIGINT, SIGTERM and SIGHUP are
    passed on to the worker, which stops at its next chunk boundary.

    Returns:
      ``(exit status, why)``: ``why`` is None when the worker ended on its own terms (it said
      why itself), else one line for a worker killed by the runtime (the coordinator vanished) or
      by a signal, or one that ended silently.
    """
    env = {**os.environ, WORKER_ENV: "1"}
    child = subprocess.Popen(
        list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    with runtime.forward_signals(child):
        out, err = child.communicate()
    for line in out.splitlines():
        if not _NATIVE_LOG.match(line):
            print(line)
    said = [line for line in err.splitlines() if own(line)]
    for line in said:
        print(line, file=sys.stderr)
    if child.returncode == 0 or said:
        return child.returncode, None
    rank = group.process_id if group.process_id is not None else "?"
    total = group.num_processes or cluster_size_from_environment()
    if child.returncode == -signal.SIGABRT:
        reason = "JAX's runtime stopped it: the coordinator (process 0) or a peer was lost"
    elif child.returncode < 0:
        reason = f"it was killed by {signal.Signals(-child.returncode).name}"
    else:
        reason = f"it exited with status {child.returncode}"
    return 1, f"process {rank} of {total} of the sweep ended: {reason}"
