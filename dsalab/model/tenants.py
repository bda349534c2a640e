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
    """The same tenants with CPU detection (``detector``: a cpu-* detector of the profile, default cpu-native
    where it has one): nothing is shared but the host, which the model does not contend, so each tenant takes
    :func:`dsalab.model.predict`'s time and CPU. A dataset with ``migration_time_ms`` and ``host_cpu_ms`` per
    tenant (same units and names as :func:`run`'s)."""
    import numpy as np
    import xarray as xr

    from dsalab.errors import InvalidArgument
    from dsalab.model.predict import predict
    from dsalab.model.tenants_data import TENANT_VARS

    prof = load(profile)
    have = prof.detectors
    detector = detector or ("cpu-native" if "cpu-native" in have else have[0])
    if detector not in have:
        raise InvalidArgument(f"detector={detector!r} is not allowed; allowed: {', '.join(have)} ({prof.name})")
    results = [predict(t.trial().replace(detector=detector), prof) for t in scenario.tenants]
    ds = xr.Dataset(
        {
            "migration_time_ms": ("tenant", np.array([r.total_time_ms for r in results])),
            "host_cpu_ms": ("tenant", np.array([r.host_cpu_ms for r in results])),
        },
        coords={"tenant": np.array([t.name for t in scenario.tenants], dtype=object)},
    )
    for name in ds.data_vars:
        u, ln = TENANT_VARS[str(name)]
        ds[name].attrs.update(units=u, long_name=ln)
    ds.attrs.update(backend="model", detector=detector, profile_name=prof.name, policy="none (CPU only)")
    return ds
