"""The tenant simulation's outcome as an ``xarray.Dataset``, its summary (average and worst case per metric) and
its file.

Layout (:func:`to_dataset`), following the result schema's conventions (every variable has ``units`` and
``long_name``; attributes are str/int/float, nested values JSON strings; provenance from
:func:`dsalab.machine.flat_info`, named as :func:`dsalab.results.provenance` names it):

- dimension ``tenant`` (coordinate: tenant names): :data:`TENANT_VARS`, and ``queue_delay_us`` over
  (``tenant``, ``statistic``) with ``statistic`` = mean, p50, p99, max;
- ``queue_delay_all_us`` over ``statistic``: every batch of every tenant pooled;
- dimension ``device``: ``device_busy_ms``, ``device_pages_checked``; ``device_utilisation`` over (``device``,
  ``time_ms``), the busy share of each time bin (bin centres in ms);
- scalars: ``fairness_jain`` (Jain's index of the tenants' speed relative to alone, 1 = fair), ``makespan_ms``,
  ``fallback_share``; the host shared by the tenants (:func:`host_load`): ``cores_needed``, ``memory_read_gbps``
  (CPU zero checks), ``device_read_gbps`` and ``host_stretch``, the factor ``migration_time_ms`` and ``makespan_ms``
  are stretched by when the tenants need more cores or memory bandwidth than the profile's host has;
- attributes: ``tenants_schema_version``, ``backend`` ("model"), ``simulator``, ``policy``, ``scenario`` (JSON),
  ``profile_name``, ``profile_path``, ``profile_toml``, ``events``, ``fallback_detector``, ``host_limit`` (none,
  cores or memory), ``pause_ns`` and its source (an estimate), and provenance.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Any

import numpy as np

from dsalab.backends import Backend

#: version of this layout; changes: 1 - first version; 2 - host_stretch, cores_needed, memory_read_gbps,
#: device_read_gbps (the host's cores and memory bandwidth shared by the tenants); migration_time_ms stretched
TENANTS_SCHEMA_VERSION = 2
#: statistics of the queueing delay
STATISTICS = ("mean", "p50", "p99", "max")
#: per-tenant variable -> (units, long name)
TENANT_VARS: dict[str, tuple[str, str]] = {
    "migration_time_ms": ("ms", "migration time"),
    "predicted_time_ms": ("ms", "migration time alone on the host"),
    "host_cpu_ms": ("ms", "host CPU"),
    "predicted_host_cpu_ms": ("ms", "host CPU alone on the host"),
    "queue_full_retries": ("1", "retries of a full work queue"),
    "retry_cpu_ms": ("ms", "CPU spent in retries"),
    "wait_cpu_ms": ("ms", "CPU of completion polling added by waiting"),
    "fallback_pages": ("1", "pages checked on the CPU after a full queue"),
    "fallback_cpu_ms": ("ms", "CPU of the pages checked on the CPU"),
    "device_pages": ("1", "pages checked by a device"),
    "pages": ("1", "pages checked"),
    "batches": ("1", "batches"),
    "fallback_batches": ("1", "batches checked on the CPU"),
    "start_ms": ("ms", "start of the migration"),
    "slowdown": ("1", "migration time over time alone"),
}
#: variables with neither a tenant nor a device dimension -> (units, long name)
OTHER_VARS: dict[str, tuple[str, str]] = {
    "queue_delay_us": ("us", "queueing delay of a batch"),
    "queue_delay_all_us": ("us", "queueing delay of a batch, every tenant"),
    "device_busy_ms": ("ms", "device busy time"),
    "device_pages_checked": ("1", "pages checked by the device"),
    "device_utilisation": ("1", "device utilisation"),
    "fairness_jain": ("1", "Jain's fairness index of tenant speed"),
    "makespan_ms": ("ms", "time until the last migration ends"),
    "fallback_share": ("1", "share of pages checked on the CPU"),
    "cores_needed": ("1", "host cores the tenants' CPU needs over the makespan (before stretching)"),
    "memory_read_gbps": ("GB/s", "memory read by CPU zero checks over the makespan (before stretching)"),
    "device_read_gbps": ("GB/s", "memory read by the devices over the makespan (reported, not bounded)"),
    "host_stretch": ("1", "factor the host's cores or memory bandwidth stretch every migration by"),
}


def host_load(cpu_ns: float, cpu_read_bytes: float, span_ns: float, profile) -> tuple[float, float, float, str]:
    """The tenants together on ``profile``'s host: (cores needed, CPU memory read rate in GB/s, stretch >= 1,
    what limits: "none", "cores" or "memory"). ``cpu_ns``: host CPU of every tenant; ``cpu_read_bytes``: bytes
    their CPU zero checks read; ``span_ns``: the makespan. As :func:`dsalab.model.predict` does for one VM: more
    CPU than ``host.cores`` give, or more reads than ``host.memory_read_bandwidth``, stretch the time (every
    tenant by the same factor: a bound over the whole makespan, not a schedule)."""
    span = max(span_ns, 1.0)
    cores = cpu_ns / span
    rate = cpu_read_bytes / span  # bytes per ns = GB/s
    by_cores = cores / profile["host.cores"]
    by_memory = rate * 1e9 / profile["host.memory_read_bandwidth"]
    stretch = max(1.0, by_cores, by_memory)
    limit = "none" if stretch == 1.0 else ("cores" if by_cores >= by_memory else "memory")
    return cores, rate, stretch, limit


def _stats(x: np.ndarray) -> list[float]:
    if x.size == 0:
        return [0.0] * len(STATISTICS)
    p50, p99 = np.percentile(x, [50, 99])
    return [float(x.mean()), float(p50), float(p99), float(x.max())]


def jain(x: np.ndarray) -> float:
    """Jain's fairness index of ``x`` (1 when every value is equal, 1/n when one takes everything)."""
    x = np.asarray(x, dtype=np.float64)
    return float(x.sum() ** 2 / (x.size * (x**2).sum())) if x.size and (x**2).sum() > 0 else 1.0


def _utilisation(starts: np.ndarray, busy: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Busy share of each bin between ``edges`` (ns) of one device whose busy intervals never overlap."""
    if starts.size == 0:
        return np.zeros(edges.size - 1)
    order = np.argsort(starts, kind="stable")
    s, b = starts[order], busy[order]
    before = np.concatenate([[0.0], np.cumsum(b)])
    k = np.searchsorted(s, edges, side="right")  # intervals starting at or before each edge
    last = np.clip(k - 1, 0, s.size - 1)
    within = np.where(k > 0, np.minimum(np.maximum(edges - s[last], 0.0), b[last]), 0.0)
    busy_until = np.where(k > 0, before[np.maximum(k - 1, 0)] + within, 0.0)
    return np.diff(busy_until) / np.diff(edges)


def to_dataset(outcome: Any, *, provenance: bool = True):
    """The dataset of one simulation's :class:`~dsalab.model.tenants_sim.Outcome` (layout: module docstring)."""
    import simpy
    import xarray as xr

    ts = outcome.tenants
    names = np.array([t.tenant.name for t in ts], dtype=object)
    per: dict[str, np.ndarray] = {
        "migration_time_ms": np.array([t.time_ns / 1e6 for t in ts]),
        "predicted_time_ms": np.array([t.predicted.total_time_ms for t in ts]),
        "host_cpu_ms": np.array([t.host_cpu_ns / 1e6 for t in ts]),
        "predicted_host_cpu_ms": np.array([t.predicted.host_cpu_ms for t in ts]),
        "queue_full_retries": np.array([t.retries for t in ts], dtype=np.int64),
        "retry_cpu_ms": np.array([t.retry_cpu_ns / 1e6 for t in ts]),
        "wait_cpu_ms": np.array([t.wait_cpu_ns / 1e6 for t in ts]),
        "fallback_pages": np.array([t.fallback_pages for t in ts], dtype=np.int64),
        "fallback_cpu_ms": np.array([t.fallback_cpu_ns / 1e6 for t in ts]),
        "device_pages": np.array([t.device_pages for t in ts], dtype=np.int64),
        "pages": np.array([t.pages for t in ts], dtype=np.int64),
        "batches": np.array([t.batches for t in ts], dtype=np.int64),
        "fallback_batches": np.array([t.fallback_batches for t in ts], dtype=np.int64),
        "start_ms": np.array([t.tenant.start_ms for t in ts]),
    }
    prof = outcome.profile
    page = ts[0].tenant.trial().page_size if ts else 4096
    zero_share = np.array([1.0 - t.tenant.normal_ratio for t in ts])
    cpu_read = float((per["fallback_pages"] * zero_share).sum()) * page
    cpu_read += sum(t.predicted.zero_pages * page * t.tenant.trial().cpu_fraction for t in ts)
    cores, rate, stretch, limit = host_load(float(per["host_cpu_ms"].sum()) * 1e6, cpu_read, outcome.end_ns, prof)
    per["migration_time_ms"] = per["migration_time_ms"] * stretch
    per["slowdown"] = per["migration_time_ms"] / np.maximum(per["predicted_time_ms"], 1e-12)
    data: dict[str, Any] = {k: ("tenant", v) for k, v in per.items()}
    delays = [t.queue_delays_ns / 1e3 for t in ts]
    data["queue_delay_us"] = (("tenant", "statistic"), np.array([_stats(d) for d in delays]).reshape(len(ts), -1))
    pooled = np.concatenate(delays) if delays else np.zeros(0)
    data["queue_delay_all_us"] = ("statistic", np.array(_stats(pooled)))
    ndev = len(outcome.device_pages)
    data["device_busy_ms"] = ("device", np.array([b.sum() / 1e6 for b in outcome.device_busy_ns]))
    data["device_pages_checked"] = ("device", np.array(outcome.device_pages, dtype=np.int64))
    bins = outcome.scenario.time_bins
    edges = np.linspace(0.0, max(outcome.end_ns, 1.0), bins + 1)
    util = np.array(
        [_utilisation(s, b, edges) for s, b in zip(outcome.device_starts_ns, outcome.device_busy_ns, strict=True)]
    )
    data["device_utilisation"] = (("device", "time_ms"), util.reshape(ndev, bins))
    data["fairness_jain"] = ((), jain(1.0 / per["slowdown"]))
    data["makespan_ms"] = ((), outcome.end_ns / 1e6 * stretch)
    data["cores_needed"] = ((), cores)
    data["memory_read_gbps"] = ((), rate)
    data["device_read_gbps"] = ((), float(per["device_pages"].sum()) * page / max(outcome.end_ns, 1.0))
    data["host_stretch"] = ((), stretch)
    total = max(int(per["pages"].sum()), 1)
    data["fallback_share"] = ((), float(per["fallback_pages"].sum()) / total)
    coords = {
        "tenant": names,
        "statistic": np.array(STATISTICS, dtype=object),
        "device": np.arange(ndev, dtype=np.int64),
        "time_ms": (edges[:-1] + edges[1:]) / 2e6,
    }
    ds = xr.Dataset(data, coords=coords)
    for name in ds.data_vars:
        u, ln = TENANT_VARS.get(name) or OTHER_VARS[str(name)]
        ds[name].attrs.update(units=u, long_name=ln)
    ds["time_ms"].attrs.update(units="ms", long_name="time since the first start")
    ds["statistic"].attrs.update(long_name="statistic over batches")
    ds.attrs.update(
        tenants_schema_version=TENANTS_SCHEMA_VERSION,
        backend=Backend.MODEL.value,
        simulator=f"simpy {simpy.__version__}, batch granularity",
        policy=outcome.scenario.policy,
        scenario=outcome.scenario.to_json(),
        profile_name=prof.name,
        profile_path=str(prof.path),
        profile_toml=prof.to_toml(),
        events=int(outcome.events),
        fallback_detector=str(outcome.fallback),
        host_limit=limit,
        host_cores=int(prof["host.cores"]),
        pause_ns=float(outcome.scenario.pause_ns),
        pause_ns_source="an estimate (~140 cycles at 3.5 GHz; 55-70 ns at 2.0-2.6 GHz): retry_cpu_ms scales with it",
    )
    if provenance:
        from dsalab import machine

        for k, v in machine.flat_info().items():  # named as dsalab.results.provenance names them
            ds.attrs[f"machine_{k}" if not k.startswith(("git_", "dsalab_")) else k] = v
    return ds


#: per-tenant metrics the summary shows, in order
SUMMARY = (
    "migration_time_ms",
    "slowdown",
    "host_cpu_ms",
    "fallback_pages",
    "fallback_cpu_ms",
    "queue_full_retries",
)


def summary(ds) -> list[tuple[str, str, float, float]]:
    """(metric, units, average, worst) rows: per-tenant metrics averaged over tenants and their worst tenant; the
    queueing delay pooled over every batch (average = mean, worst = max, and its p50 and p99 rows)."""
    rows = []
    for name in SUMMARY:
        v = ds[name].values.astype(float)
        rows.append((name, ds[name].attrs["units"], float(v.mean()), float(v.max())))
    q = ds["queue_delay_all_us"]
    stat = {s: float(q.sel(statistic=s)) for s in STATISTICS}
    rows.append(("queue_delay_us (all batches)", "us", stat["mean"], stat["max"]))
    rows.append(("queue_delay_us p50 / p99", "us", stat["p50"], stat["p99"]))
    util = ds["device_utilisation"].values
    rows.append(("device_utilisation", "1", float(util.mean()), float(util.max())))
    rows.append(("fairness_jain", "1", float(ds["fairness_jain"]), float(ds["fairness_jain"])))
    return rows


def format_summary(ds) -> str:
    """:func:`summary` as a text table."""
    head = f"model (simulated): {ds.sizes['tenant']} tenants, policy {ds.attrs.get('policy', '?')}, "
    lines = [head + f"profile {ds.attrs.get('profile_name', '?')}"]
    lines.append(f"{'metric':32} {'units':>5} {'average':>14} {'worst':>14}")
    for name, u, avg, worst in summary(ds):
        lines.append(f"{name:32} {u:>5} {avg:14.4g} {worst:14.4g}")
    lines.append("(average: over tenants, worst: the worst tenant; queue delay: mean and max over every batch, its")
    lines.append(" p50 / p99 row: p50 under average, p99 under worst; fairness: one value for the run)")
    if "host_stretch" in ds:
        lines.append(
            f"host: {float(ds['cores_needed']):.1f} cores needed of {ds.attrs.get('host_cores', '?')}, CPU reads "
            f"{float(ds['memory_read_gbps']):.1f} GB/s; times stretched x{float(ds['host_stretch']):.2f} "
            f"(limit: {ds.attrs.get('host_limit', '?')})"
        )
    return "\n".join(lines)


def write(ds, path: str | os.PathLike[str]) -> pathlib.Path:
    """Write ``ds`` as netCDF-4 (h5netcdf) through a temporary file and a rename; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(name, engine="h5netcdf")
        os.replace(name, path)
    except BaseException:
        pathlib.Path(name).unlink(missing_ok=True)
        raise
    return path
