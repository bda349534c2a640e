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
