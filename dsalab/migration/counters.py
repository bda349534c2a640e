"""From what one migration recorded to its :class:`~dsalab.result.TrialResult`: a pure function.

:class:`RawCounters` holds the raw numbers (time stamps, the rounds, two snapshots of the process's threads, the
native channels' counters, the detector's counters, the pages that differ); :func:`build_result` sums and
converts them and touches nothing else, so it is tested on recorded counters without running a migration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from dsalab.migration import accounting
from dsalab.migration.accounting import ThreadSample
from dsalab.result import TrialResult
from dsalab.threads import ROLES, cpu_sums
from dsalab.trial import Trial


@dataclasses.dataclass(frozen=True)
class RawCounters:
    """What one migration recorded, before any sum.

    Attributes
    ----------
    backend : the detector's backend label (``cpu-numba``, ``dsa-emulated``, ...)
    start_s, setup_s, end_s : ``time.perf_counter()`` seconds when the trial started opening its detector, when
        its engine was ready, and when the final phase ended
    downtime_s : length of the final phase, s
    iterations, syncs : rounds sent (the final phase included) and dirty-bitmap syncs
    converged : False when ``max_iterations`` forced the final phase
    dirtied_pages : pages the guest_dirty thread wrote
    threads_before, threads_after : :func:`dsalab.migration.accounting.snapshot` of the process before the detector
        opened and after the final phase (while live_migration still existed)
    guest_cpu_ms : CPU time the ended guest_dirty thread reported, ms (0: none)
    channel_stats : each channel's native counters (:meth:`dsalab._binding.MigrationEngine.channel_stats`)
    offload : the detector's counters (:meth:`dsalab.migration.detectors.Detector.stats`)
    mismatched_pages : destination pages that differ from the source
    cores : CPUs the process could run on during the trial (``len(os.sched_getaffinity(0))``; 0: not recorded)
    """

    backend: str
    start_s: float
    setup_s: float
    end_s: float
    downtime_s: float
    iterations: int
    syncs: int
    converged: bool
    dirtied_pages: int
    threads_before: Mapping[int, ThreadSample]
    threads_after: Mapping[int, ThreadSample]
    guest_cpu_ms: float
    channel_stats: Sequence[Mapping[str, int]]
    offload: Mapping[str, Any]
    mismatched_pages: int
    cores: int = 0


#: a thread counts as busy when its CPU time is at least this share of the trial's total time
BUSY_SHARE = 0.01


def busy_threads(cpu: Mapping[str, float], total_ms: float) -> int:
    """How many of the accounted threads (``cpu``: name -> CPU ms) ran for at least :data:`BUSY_SHARE` of
    ``total_ms`` (ms): the threads that competed for the cores."""
    floor = BUSY_SHARE * max(total_ms, 0.0)
    return sum(1 for ms in cpu.values() if ms > 0 and ms >= floor)


def thread_cpu_ms(
    before: Mapping[int, ThreadSample], after: Mapping[int, ThreadSample], guest_cpu_ms: float = 0.0
) -> dict[str, float]:
    """CPU ms of each migration thread between two snapshots, by thread name; ``guest_cpu_ms`` (> 0), which the
    ended guest_dirty thread reported itself, replaces what the snapshots saw of it."""
    cpu: dict[str, float] = {}
    for pattern in ROLES.values():  # the accounted threads; anything else in the process is left out
        cpu.update(accounting.cpu_by_name(dict(before), dict(after), pattern))
    if guest_cpu_ms:
        cpu["guest_dirty"] = guest_cpu_ms
    return cpu


def _channel_sum(raw: RawCounters, key: str) -> int:
    return sum(c[key] for c in raw.channel_stats)


def build_result(trial: Trial, raw: RawCounters) -> TrialResult:
    """The :class:`TrialResult` of ``trial`` from its raw counters (pure: no I/O, nothing else read).

    Sums the channels' counters, splits per-thread CPU into host (source side), destination, device and guest
    time, converts ns to ms and rates to Mbit/s; ``verified`` is ``mismatched_pages == 0``.
    """
    total_s = raw.end_s - raw.start_s
    cpu = thread_cpu_ms(raw.threads_before, raw.threads_after, raw.guest_cpu_ms)
    sums = cpu_sums(cpu)
    transferred = _channel_sum(raw, "bytes_sent")
    off = raw.offload
    return TrialResult(
        trial=trial,
        backend=raw.backend,
        total_time_ms=total_s * 1e3,
        setup_time_ms=(raw.setup_s - raw.start_s) * 1e3,
        downtime_ms=raw.downtime_s * 1e3,
        throughput_mbps=transferred * 8 / total_s / 1e6,
        transferred_bytes=transferred,
        total_bytes=trial.guest_bytes,
        zero_pages=_channel_sum(raw, "zero_pages"),
        normal_pages=_channel_sum(raw, "normal_pages"),
        forced_normal_pages=_channel_sum(raw, "forced_normal_pages"),
        pages_sent=_channel_sum(raw, "pages"),
        iterations=raw.iterations,
        dirty_sync_count=raw.syncs,
        dirtied_pages=raw.dirtied_pages,
        converged=raw.converged,
        thread_cpu_ms=cpu,
        host_cpu_ms=sums.host_cpu_ms,
        destination_cpu_ms=sums.destination_cpu_ms,
        device_cpu_ms=sums.device_cpu_ms,
        device_busy_ms=off["device_busy_ms"],
        guest_cpu_ms=sums.guest_cpu_ms,
        detect_cpu_ms=_channel_sum(raw, "detect_cpu_ns") / 1e6,
        send_cpu_ms=_channel_sum(raw, "send_cpu_ns") / 1e6,
        sender_cpu_ms=_channel_sum(raw, "sender_cpu_ns") / 1e6,
        packets=_channel_sum(raw, "packets"),
        pages_offloaded=off["pages_offloaded"],
        fallback_pages=off["fallback_pages"],
        fallback_pages_by_reason=dict(off["fallback_pages_by_reason"]),
        queue_full_retries=off["queue_full_retries"],
        page_faults=off["page_faults"],
        verified=raw.mismatched_pages == 0,
        mismatched_pages=raw.mismatched_pages,
        channel_stats=[dict(c) for c in raw.channel_stats],
        busy_threads=busy_threads(cpu, total_s * 1e3),
        cores=raw.cores,
    )
