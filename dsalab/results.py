"""The result dataset schema: one place that says what every metric is called, its unit and its long name,
and how trials become an ``xarray.Dataset``.

Layout of a result dataset (:func:`build_dataset`):

- dimensions: one per swept parameter, named as the :class:`~dsalab.migration.Trial` field (``normal_ratio``,
  ``packet_bytes``, ``batch_size``, ``devices``, ``channels``, ``detector``, ...), then ``repeat``, and
  ``thread`` for ``thread_cpu_ms``;
- variables: every metric of :data:`METRICS` over (parameters..., repeat), with ``units`` and ``long_name``;
  floats are NaN and integers -1 where a trial failed; ``verified`` and ``converged`` are int8 (1/0, -1 failed);
  ``status`` ("ok"/"failed"), ``error``, ``backend`` and ``worker`` (host that ran the trial) are strings;
- attributes: ``schema_version`` and whatever provenance the caller adds (str/int/float only).

``TrialResult.to_dataset`` (one trial) and the sweep layer (many trials) both build datasets from here.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: version of the dataset layout; changes:
#: 1 - first version: scalar metrics of one trial, thread_cpu_ms over the "thread" dimension
#: 2 - datasets of many trials: one dimension per swept parameter + repeat; status/error/backend/worker
SCHEMA_VERSION = 2

#: metric name -> (units, long name); every variable of a result dataset is listed here
METRICS: dict[str, tuple[str, str]] = {
    "total_time_ms": ("ms", "total migration time (setup included)"),
    "setup_time_ms": ("ms", "setup time"),
    "downtime_ms": ("ms", "downtime (final phase with the guest stopped)"),
    "throughput_mbps": ("Mbit/s", "throughput (bytes on the wire over total time)"),
    "transferred_bytes": ("bytes", "bytes transferred (headers and payload)"),
    "total_bytes": ("bytes", "guest RAM"),
    "zero_pages": ("pages", "pages found zero"),
    "normal_pages": ("pages", "pages found normal (non-zero)"),
    "forced_normal_pages": ("pages", "zero pages sent as normal (force_normal_ratio)"),
    "pages_sent": ("pages", "pages sent, every round"),
    "iterations": ("rounds", "pre-copy rounds (final phase included)"),
    "dirty_sync_count": ("syncs", "dirty bitmap syncs"),
    "dirtied_pages": ("pages", "pages the guest dirtied during migration"),
    "converged": ("1", "pre-copy converged within the downtime limit"),
    "host_cpu_ms": ("ms", "host CPU, source side (live_migration + multifdsend_* + dsa_completion)"),
    "destination_cpu_ms": ("ms", "destination CPU (multifdrecv_*)"),
    "device_cpu_ms": ("ms", "emulated device engines' CPU (device time, run on the host)"),
    "device_busy_ms": ("ms", "device busy time (timing model or hardware)"),
    "guest_cpu_ms": ("ms", "guest dirtying thread CPU"),
    "host_cpu_ms_per_gb": ("ms/GB", "host CPU per GB of guest RAM migrated"),
    "detect_cpu_ms": ("ms", "sender CPU in zero-page detection"),
    "send_cpu_ms": ("ms", "sender CPU in sendmsg"),
    "sender_cpu_ms": ("ms", "sender threads' CPU"),
    "packet_overhead_fraction": ("1", "sender CPU outside detection and sending, fraction"),
    "packets": ("packets", "multifd packets"),
    "pages_offloaded": ("pages", "pages checked by the DSA device"),
    "fallback_pages": ("pages", "pages the CPU checked instead of the device (all reasons)"),
    "queue_full_retries": ("retries", "submissions refused because the work queue was full"),
    "page_faults": ("faults", "device page faults (partial completions)"),
    "verified": ("1", "destination equals source, byte for byte"),
    "mismatched_pages": ("pages", "destination pages that differ from the source"),
    "thread_cpu_ms": ("ms", "CPU time per thread"),
}


def units(name: str) -> str:
    """Units of a metric."""
    return METRICS[name][0]


def long_name(name: str) -> str:
    """Long name of a metric."""
    return METRICS[name][1]


#: metrics stored as int64 (-1 where a trial failed)
INT_METRICS = frozenset(
    {
        "transferred_bytes",
        "total_bytes",
        "zero_pages",
        "normal_pages",
        "forced_normal_pages",
        "pages_sent",
        "iterations",
        "dirty_sync_count",
        "dirtied_pages",
        "packets",
        "pages_offloaded",
        "fallback_pages",
        "queue_full_retries",
        "page_faults",
        "mismatched_pages",
    }
)
#: metrics stored as int8 flags (1/0, -1 where a trial failed)
FLAG_METRICS = frozenset({"verified", "converged"})
#: per-trial string variables
STRING_VARS: dict[str, str] = {
    "status": "ok, or failed (then see error)",
    "error": "why the trial failed (empty when ok)",
    "backend": "what found the zero pages: cpu-numba, cpu-native, dsa-emulated, dsa-hardware, qemu",
    "worker": "host that ran the trial",
}


@dataclasses.dataclass
class TrialRecord:
    """One trial of a sweep: its swept parameter values, repeat index, and result or error."""

    params: dict[str, Any]
    repeat: int
    result: Any = None  # a TrialResult when the trial succeeded
    error: str = ""
    worker: str = dataclasses.field(default_factory=socket.gethostname)


def _coord_values(values: Sequence[Any]) -> np.ndarray:
    """A coordinate array: strings as object arrays (what netCDF round trips), numbers as int64/float64."""
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, bool | np.bool_) for v in values):
        return np.array(values, dtype=np.int8)
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


def coord_value(value: Any) -> Any:
    """A parameter value as it appears in a coordinate (tuples of device specs become ";"-joined strings)."""
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    return value


def build_dataset(
    records: Sequence[TrialRecord],
    coords: Mapping[str, Sequence[Any]],
    repeats: int,
    attrs: Mapping[str, str | int | float] | None = None,
):
    """The dataset of many trials (layout in the module docstring).

    Parameters
    ----------
    records : one per (parameter point, repeat) that ran; points missing from ``records`` stay failed/NaN
    coords : swept parameter -> its values, in the order the dimensions should have
    repeats : number of repeats (the ``repeat`` dimension is 0..repeats-1)
    attrs : provenance attributes to add
    """
    import xarray as xr

    from dsalab.migration.accounting import thread_order

    dims = [*coords, "repeat"]
    coord_arrays = {k: _coord_values([coord_value(v) for v in vals]) for k, vals in coords.items()}
    coord_arrays["repeat"] = np.arange(repeats, dtype=np.int64)
    shape = tuple(len(coord_arrays[d]) for d in dims)
    index = {k: {coord_value(v): i for i, v in enumerate(vals)} for k, vals in coords.items()}
    threads = sorted({n for r in records if r.result is not None for n in r.result.thread_cpu_ms}, key=thread_order)
    data: dict[str, np.ndarray] = {}
    for name in METRICS:
        if name == "thread_cpu_ms":
            continue
        if name in INT_METRICS:
            data[name] = np.full(shape, -1, dtype=np.int64)
        elif name in FLAG_METRICS:
            data[name] = np.full(shape, -1, dtype=np.int8)
        else:
            data[name] = np.full(shape, np.nan)
    strings = {name: np.full(shape, "", dtype=object) for name in STRING_VARS}
    strings["status"][...] = "failed"
    strings["error"][...] = "not run"
    thread_cpu = np.full((*shape, len(threads)), np.nan)
    for rec in records:
        pos = (*tuple(index[k][coord_value(rec.params[k])] for k in coords), rec.repeat)
        strings["worker"][pos] = rec.worker
        if rec.result is None:
            strings["error"][pos] = rec.error or "failed"
            continue
        r = rec.result
        strings["status"][pos] = "ok"
        strings["error"][pos] = ""
        strings["backend"][pos] = r.backend
        for name, value in r.metrics().items():
            data[name][pos] = value
        for t, name in enumerate(threads):
            if name in r.thread_cpu_ms:
                thread_cpu[(*pos, t)] = r.thread_cpu_ms[name]
    data_vars: dict[str, Any] = {name: (dims, arr) for name, arr in data.items()}
    data_vars.update({name: (dims, arr) for name, arr in strings.items()})
    data_vars["thread_cpu_ms"] = ([*dims, "thread"], thread_cpu)
    ds = xr.Dataset(data_vars, coords=coord_arrays | {"thread": np.array(threads, dtype=object)})
    for name in METRICS:
        ds[name].attrs.update(units=units(name), long_name=long_name(name))
    for name, text in STRING_VARS.items():
        ds[name].attrs.update(long_name=text)
    ds.attrs["schema_version"] = SCHEMA_VERSION
    if attrs:
        ds.attrs.update(attrs)
    return ds


def provenance() -> dict[str, str | int | float]:
    """Flat, netCDF-safe provenance of this machine and build (see :func:`dsalab.machine.flat_info`)."""
    from dsalab import machine

    return {f"machine_{k}" if not k.startswith(("git_", "dsalab_")) else k: v for k, v in machine.flat_info().items()}


def write_trial(result, path):
    """Write one TrialResult as netCDF (h5netcdf) with provenance attributes; returns the path."""
    import pathlib

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = result.to_dataset()
    ds.attrs.update(provenance())
    ds.to_netcdf(path, engine="h5netcdf")
    return path
