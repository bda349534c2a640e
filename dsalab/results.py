"""The result dataset schema: one place that says what every metric is called, its unit and its long name.

``TrialResult.to_dataset`` (one trial) and the sweep layer (many trials) both build datasets from here.
"""

from __future__ import annotations

#: version of the dataset layout; changes:
#: 1 - first version: scalar metrics of one trial, thread_cpu_ms over the "thread" dimension
SCHEMA_VERSION = 1

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
