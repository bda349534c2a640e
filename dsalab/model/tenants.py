"""Many VMs migrating at once on few DSA devices: the tenant contention model (issue 12).

>>> from dsalab.model import tenants                                          # doctest: +SKIP
>>> sc = tenants.scenario(100, "1GiB", 8, profile=prof, policy="fifo")        # the reviewer's question
>>> ds = tenants.run(sc, prof)                                                # an xarray.Dataset
>>> print(tenants.format_summary(ds))                                         # average and worst case

The parts: :mod:`~dsalab.model.tenants_config` (tenants, devices, work queues, policies, checks),
:mod:`~dsalab.model.tenants_sim` (the discrete-event simulation, simpy), :mod:`~dsalab.model.tenants_data` (the
dataset, its summary and file), :mod:`~dsalab.model.tenants_sweep` (grids of scenarios, serial or Dask).
"""

from __future__ import annotations

import os

from dsalab.model.profile import HardwareProfile, load
from dsalab.model.tenants_config import (
    ARRIVALS,
    MODES,
    POLICIES,
    Device,
    Scenario,
    Tenant,
    WorkQueue,
    layout,
    scenario,
)
from dsalab.model.tenants_data import format_summary, jain, summary, to_dataset, write
from dsalab.model.tenants_sim import Outcome, simulate

__all__ = [
    "ARRIVALS",
    "MODES",
    "POLICIES",
    "Device",
    "Outcome",
    "Scenario",
    "Tenant",
    "WorkQueue",
    "cpu_only",
    "format_summary",
    "jain",
    "layout",
    "run",
    "scenario",
    "simulate",
    "summary",
    "to_dataset",
    "write",
]


def run(scenario: Scenario, profile: HardwareProfile | str | os.PathLike[str], *, fallback: str = "", provenance=True):
    """Simulate ``scenario`` on ``profile`` (a :class:`HardwareProfile` or its TOML path) and return the dataset
    (:func:`~dsalab.model.tenants_data.to_dataset`). ``fallback``: the CPU detector pricing fallback pages."""
    return to_dataset(simulate(scenario, load(profile), fallback=fallback), provenance=provenance)


def cpu_only(scenario: Scenario, profile: HardwareProfile | str | os.PathLike[str], detector: str = ""):
    """The same tenants with CPU detection (``detector``: a cpu-* detector of the profile, default the fastest
    it has costs for): no device is shared, but the host is. Each tenant takes :func:`dsalab.model.predict`'s
    time and CPU, stretched by ``host_stretch`` when all of them together need more cores or memory read
    bandwidth than the profile's host has (:func:`~dsalab.model.tenants_data.host_load`). A dataset with
    ``migration_time_ms`` and ``host_cpu_ms`` per tenant (same units and names as :func:`run`'s) and the
    scalars ``cores_needed``, ``memory_read_gbps``, ``host_stretch``, ``makespan_ms``."""
    import numpy as np
    import xarray as xr

    from dsalab.errors import InvalidArgument
    from dsalab.model.predict import predict
    from dsalab.model.profile import CPU_DETECTORS
    from dsalab.model.tenants_data import OTHER_VARS, TENANT_VARS, host_load

    prof = load(profile)
    cpu = [d for d in reversed(CPU_DETECTORS) if d in prof.detectors]
    detector = detector or (cpu[0] if cpu else "")
    if detector not in cpu:
        raise InvalidArgument(
            f"detector={detector!r} is not allowed; allowed: {', '.join(cpu)} (CPU detectors of {prof.name})"
        )
    results = [predict(t.trial().replace(detector=detector), prof) for t in scenario.tenants]
    starts = np.array([t.start_ms for t in scenario.tenants])
    times = np.array([r.total_time_ms for r in results])
    cpu_ms = np.array([r.host_cpu_ms for r in results])
    span_ns = float((starts + times).max()) * 1e6
    read = sum(r.zero_pages * r.trial.page_size for r in results)  # a CPU zero check reads a zero page whole
    cores, rate, stretch, limit = host_load(float(cpu_ms.sum()) * 1e6, read, span_ns, prof)
    ds = xr.Dataset(
        {
            "migration_time_ms": ("tenant", times * stretch),
            "host_cpu_ms": ("tenant", cpu_ms),
            "cores_needed": ((), cores),
            "memory_read_gbps": ((), rate),
            "host_stretch": ((), stretch),
            "makespan_ms": ((), span_ns / 1e6 * stretch),
        },
        coords={"tenant": np.array([t.name for t in scenario.tenants], dtype=object)},
    )
    for name in ds.data_vars:
        u, ln = TENANT_VARS.get(str(name)) or OTHER_VARS[str(name)]
        ds[name].attrs.update(units=u, long_name=ln)
    ds.attrs.update(
        backend="model", detector=detector, profile_name=prof.name, policy="none (CPU only)", host_limit=limit
    )
    return ds
