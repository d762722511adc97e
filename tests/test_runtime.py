"""A process's set-up: importing jaxopt_lab gives JAX one CPU device per core, in real processes
(the device count is fixed when JAX's backend starts, once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

from jaxopt_lab import runtime

COUNT = "print(len(jax.devices()))"


def test_importing_jaxopt_lab_gives_jax_a_cpu_device_per_core():
    cores = runtime.cpu_cores()
    assert cores == len(os.sched_getaffinity(0))
    cases = [  # (script, XLA_FLAGS, the device count it should print)
        (f"import jaxopt_lab; import jax; {COUNT}", None, cores),
        (f"import jax; import jaxopt_lab; {COUNT}", None, cores),  # imported, not started yet
        (f"import jaxopt_lab; import jax; {COUNT}", "--xla_force_host_platform_device_count=3", 3),
        (f"import jax; jax.config.update('jax_num_cpu_devices', 1); import jaxopt_lab; {COUNT}",
         None, 1),
        (f"import jax; jax.devices(); import jaxopt_lab; {COUNT}", None, 1),  # too late: says so
    ]  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    started = []
    for script, flags, _ in cases:  # all at once: each is mostly JAX's start-up
        env = {**base, "JAX_PLATFORMS": "cpu", **({"XLA_FLAGS": flags} if flags else {})}
        started.append(subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    for (script, flags, devices), proc in zip(cases, started, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert int(out) == devices, (script, flags, out)
        if "jax.devices(); import jaxopt_lab" in script and cores > 1:
            assert err.strip() == (
                "<string>:1: UserWarning: JAX started before jaxopt_lab could give it one device "
                f"per core, so sweeps run on 1 of {cores} CPU cores: import jaxopt_lab before JAX "
                f"computes anything, or set XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{cores} before Python starts"
            )
        else:
            assert err == "", (script, err)
