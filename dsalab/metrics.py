"""The metric table of result datasets: every variable's name, units, long name and storage kind (a leaf
module: imports nothing of dsalab).

One :class:`Metric` row per variable; :mod:`dsalab.results` derives its ``METRICS`` / ``INT_METRICS`` /
``FLAG_METRICS`` views from :data:`TABLE`. Kinds: ``float`` (float64, NaN where a trial failed), ``int`` (int64,
-1 where a trial failed), ``flag`` (int8 1/0, -1 where a trial failed), ``thread`` (float64 over the ``thread``
dimension).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["float", "int", "flag", "thread"]


class Metric(NamedTuple):
    """One variable of a result dataset."""

    name: str
    units: str
    long_name: str
    kind: Kind


#: every metric of a result dataset, in the order datasets list them
TABLE: tuple[Metric, ...] = (
    Metric("total_time_ms", "ms", "total migration time (setup included)", "float"),
    Metric("setup_time_ms", "ms", "setup time", "float"),
    Metric("downtime_ms", "ms", "downtime (final phase with the guest stopped)", "float"),
    Metric("throughput_mbps", "Mbit/s", "throughput (bytes on the wire over total time)", "float"),
    Metric("transferred_bytes", "bytes", "bytes transferred (headers and payload)", "int"),
    Metric("total_bytes", "bytes", "guest RAM", "int"),
    Metric("zero_pages", "pages", "pages found zero", "int"),
    Metric("normal_pages", "pages", "pages found normal (non-zero)", "int"),
    Metric("forced_normal_pages", "pages", "zero pages sent as normal (force_normal_ratio)", "int"),
    Metric("pages_sent", "pages", "pages sent, every round", "int"),
    Metric("iterations", "rounds", "pre-copy rounds (final phase included)", "int"),
    Metric("dirty_sync_count", "syncs", "dirty bitmap syncs", "int"),
    Metric("dirtied_pages", "pages", "pages the guest dirtied during migration", "int"),
    Metric("converged", "1", "pre-copy converged within the downtime limit", "flag"),
    Metric("host_cpu_ms", "ms", "host CPU, source side (live_migration + multifdsend_* + dsa_completion)", "float"),
    Metric("destination_cpu_ms", "ms", "destination CPU (multifdrecv_*)", "float"),
    Metric("device_cpu_ms", "ms", "emulated device engines' CPU (device time, run on the host)", "float"),
    Metric("device_busy_ms", "ms", "device busy time (timing model or hardware)", "float"),
    Metric("guest_cpu_ms", "ms", "guest dirtying thread CPU", "float"),
    Metric("host_cpu_ms_per_gb", "ms/GB", "host CPU per GB of guest RAM migrated", "float"),
    Metric("detect_cpu_ms", "ms", "sender CPU in zero-page detection", "float"),
    Metric("send_cpu_ms", "ms", "sender CPU in sendmsg", "float"),
    Metric("sender_cpu_ms", "ms", "sender threads' CPU", "float"),
    Metric("packet_overhead_fraction", "1", "sender CPU outside detection and sending, fraction", "float"),
    Metric("packets", "packets", "multifd packets", "int"),
    Metric("pages_offloaded", "pages", "pages checked by the DSA device", "int"),
    Metric("fallback_pages", "pages", "pages the CPU checked instead of the device (all reasons)", "int"),
    Metric("queue_full_retries", "retries", "submissions refused because the work queue was full", "int"),
    Metric("page_faults", "faults", "device page faults (partial completions)", "int"),
    Metric("verified", "1", "destination equals source, byte for byte", "flag"),
    Metric("mismatched_pages", "pages", "destination pages that differ from the source", "int"),
    Metric("busy_threads", "threads", "migration and device threads busy >= 1% of total time (0: not recorded)", "int"),
    Metric("cores", "cores", "CPUs the migrating process could use (0: not recorded)", "int"),
    Metric("thread_cpu_ms", "ms", "CPU time per thread", "thread"),
)

#: metric name -> its row
BY_NAME: dict[str, Metric] = {m.name: m for m in TABLE}
#: the names of every metric of one kind
INT_NAMES = frozenset(m.name for m in TABLE if m.kind == "int")
FLAG_NAMES = frozenset(m.name for m in TABLE if m.kind == "flag")
#: the scalar metrics (one value per trial: every kind but ``thread``)
SCALAR_NAMES: tuple[str, ...] = tuple(m.name for m in TABLE if m.kind != "thread")


def metric(name: str) -> Metric:
    """The row of metric ``name`` (KeyError naming it when there is none)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no metric {name!r}; metrics are {', '.join(BY_NAME)}") from None


#: metrics added after datasets were first written: name -> the value an older dataset is read with (``0``: not
#: recorded), see :func:`dsalab.schema.upgrade`
ADDED_LATER: dict[str, int] = {"busy_threads": 0, "cores": 0}


def fill_value(name: str) -> float | int:
    """What a failed or never-run trial holds for metric ``name``: -1 for int and flag metrics, NaN otherwise."""
    return -1 if BY_NAME[name].kind in ("int", "flag") else float("nan")
