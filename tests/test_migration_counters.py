"""The engine's steps apart from a migration: the pure result builder fed recorded counters, verification, and
the opening step freeing what it opened when a later part fails."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dsalab.errors import MigrationError
from dsalab.migration import Trial, engine, run_trial
from dsalab.migration.accounting import ThreadSample
from dsalab.migration.counters import RawCounters, build_result, thread_cpu_ms
from dsalab.migration.detectors import Detector
from dsalab.migration.verify import count_mismatched, require_verified

TRIAL = Trial(guest_bytes="1MiB", channels=2, detector="dsa-emulated")

BEFORE = {
    1: ThreadSample(1, "python3", 5_000_000_000),
    10: ThreadSample(10, "live_migration", 1_000_000),
    11: ThreadSample(11, "multifdsend_0", 0),
    15: ThreadSample(15, "old_thread", 7_000_000),  # its tid is reused below by another thread
}
AFTER = {
    1: ThreadSample(1, "python3", 9_000_000_000),  # not a migration thread: left out
    10: ThreadSample(10, "live_migration", 3_000_000),  # alive in both: 2 ms
    11: ThreadSample(11, "multifdsend_0", 40_000_000),
    12: ThreadSample(12, "multifdsend_1", 30_000_000),  # born in between: all of it
    13: ThreadSample(13, "dsa_completion", 5_000_000),
    14: ThreadSample(14, "multifdrecv_0", 11_000_000),
    15: ThreadSample(15, "multifdrecv_1", 9_000_000),  # a reused tid under a new name: all of it
    16: ThreadSample(16, "dsa_engine_0_0", 25_000_000),
    17: ThreadSample(17, "dsa_engine_0_1", 15_000_000),
    18: ThreadSample(18, "guest_dirty", 1_000_000),
}
CHANNELS = [
    {
        "bytes_sent": 300_000,
        "zero_pages": 100,
        "normal_pages": 28,
        "forced_normal_pages": 3,
        "pages": 128,
        "packets": 8,
        "detect_cpu_ns": 4_000_000,
        "send_cpu_ns": 6_000_000,
        "sender_cpu_ns": 12_000_000,
    },
    {
        "bytes_sent": 250_000,
        "zero_pages": 90,
        "normal_pages": 38,
        "forced_normal_pages": 0,
        "pages": 128,
        "packets": 8,
        "detect_cpu_ns": 3_000_000,
        "send_cpu_ns": 5_000_000,
        "sender_cpu_ns": 10_000_000,
    },
]
OFFLOAD = {
    "pages_offloaded": 250,
    "fallback_pages": 6,
    "fallback_pages_by_reason": {"page_fault": 4, "queue_full": 2},
    "queue_full_retries": 9,
    "page_faults": 1,
    "device_busy_ms": 12.5,
}
RAW = RawCounters(
    backend="dsa-emulated",
    start_s=100.0,
    setup_s=100.01,
    end_s=100.11,
    downtime_s=0.004,
    iterations=3,
    syncs=2,
    converged=True,
    dirtied_pages=17,
    threads_before=BEFORE,
    threads_after=AFTER,
    guest_cpu_ms=0.0,
    channel_stats=CHANNELS,
    offload=OFFLOAD,
    mismatched_pages=0,
)


def test_build_result_from_recorded_counters():
    r = build_result(TRIAL, RAW)
    assert r.trial is TRIAL and r.backend == "dsa-emulated"
    assert r.total_time_ms == pytest.approx(110.0) and r.setup_time_ms == pytest.approx(10.0)
    assert r.downtime_ms == pytest.approx(4.0)
    assert r.transferred_bytes == 550_000 and r.total_bytes == 1 << 20
    assert r.throughput_mbps == pytest.approx(550_000 * 8 / 0.11 / 1e6)
    assert (r.zero_pages, r.normal_pages, r.forced_normal_pages, r.pages_sent) == (190, 66, 3, 256)
    assert (r.iterations, r.dirty_sync_count, r.dirtied_pages, r.converged) == (3, 2, 17, True)
    assert r.thread_cpu_ms == pytest.approx(
        {
            "live_migration": 2.0,
            "multifdsend_0": 40.0,
            "multifdsend_1": 30.0,
            "dsa_completion": 5.0,
            "multifdrecv_0": 11.0,
            "multifdrecv_1": 9.0,
            "dsa_engine_0_0": 25.0,
            "dsa_engine_0_1": 15.0,
            "guest_dirty": 1.0,
        }
    )
    assert r.host_cpu_ms == pytest.approx(2 + 40 + 30 + 5)  # the source side only, as the seed sums it
    assert r.destination_cpu_ms == pytest.approx(20.0)
    assert r.device_cpu_ms == pytest.approx(40.0) and r.guest_cpu_ms == pytest.approx(1.0)
    assert (r.detect_cpu_ms, r.send_cpu_ms, r.sender_cpu_ms) == pytest.approx((7.0, 11.0, 22.0))
    assert r.packets == 16 and r.pages_offloaded == 250 and r.fallback_pages == 6
    assert r.fallback_pages_by_reason == {"page_fault": 4, "queue_full": 2}
    assert (r.queue_full_retries, r.page_faults, r.device_busy_ms) == (9, 1, 12.5)
    assert r.verified and r.mismatched_pages == 0 and r.channel_stats == CHANNELS
    assert r.host_cpu_ms_per_gb == pytest.approx(77 / ((1 << 20) / 1e9))


def test_build_result_is_pure():
    """Same counters, same result; the inputs are not changed, and the result shares no mutable part with them."""
    before = {k: dataclasses.replace(v) for k, v in BEFORE.items()}
    a, b = build_result(TRIAL, RAW), build_result(TRIAL, RAW)
    assert a == b and before == BEFORE and OFFLOAD["fallback_pages_by_reason"] == {"page_fault": 4, "queue_full": 2}
    a.channel_stats[0]["bytes_sent"] = 0
    a.fallback_pages_by_reason["page_fault"] = 0
    assert CHANNELS[0]["bytes_sent"] == 300_000 and OFFLOAD["fallback_pages_by_reason"]["page_fault"] == 4


def test_guest_cpu_reported_by_the_ended_dirtier_wins():
    assert thread_cpu_ms(BEFORE, AFTER, guest_cpu_ms=3.5)["guest_dirty"] == 3.5
    r = build_result(TRIAL, dataclasses.replace(RAW, guest_cpu_ms=3.5))
    assert r.guest_cpu_ms == 3.5 and r.host_cpu_ms == pytest.approx(77.0)


def test_mismatched_pages_fail_verification():
    r = build_result(TRIAL, dataclasses.replace(RAW, mismatched_pages=3))
    assert not r.verified and r.mismatched_pages == 3
    with pytest.raises(MigrationError, match=r"differs from the source in 3 of 256 pages .*dsa-emulated, 2 channels"):
        require_verified(r)
    ok = build_result(TRIAL, RAW)
    assert require_verified(ok) is ok


def test_count_mismatched():
    src = np.zeros(8 * 4096, dtype=np.uint8)
    dst = src.copy()
    assert count_mismatched(src, dst, 4096) == 0
    dst[4096 * 2 + 5] = 1
    dst[4096 * 7] = 9
    assert count_mismatched(src, dst, 4096) == 2


class _Recorder(Detector):
    def close(self) -> None:
        closed.append(self.backend)
        super().close()


closed: list[str] = []


@pytest.mark.timeout(60)
def test_opening_frees_the_detector_when_the_channels_fail(monkeypatch):
    from dsalab import kernels

    closed.clear()
    monkeypatch.setattr(
        engine, "make_detector", lambda t: _Recorder("rec", zero_fn_address=kernels.native_zero_check_address())
    )

    def refuse(n):
        raise MigrationError("no channels today")

    monkeypatch.setattr(engine, "connect_channels", refuse)
    with pytest.raises(MigrationError, match="no channels today"):
        run_trial(Trial(guest_bytes="1MiB", channels=1))
    assert closed == ["rec"]
    monkeypatch.undo()
    assert run_trial(Trial(guest_bytes="1MiB", channels=1, detector="cpu-native")).verified


@pytest.mark.timeout(60)
def test_destination_mapping_is_closed_after_a_trial(monkeypatch):
    maps = []

    def recording(*args, **kwargs):
        maps.append(engine_anonymous_mapping(*args, **kwargs))
        return maps[-1]

    engine_anonymous_mapping = engine.anonymous_mapping
    monkeypatch.setattr(engine, "anonymous_mapping", recording)
    assert run_trial(Trial(guest_bytes="1MiB", channels=1, detector="cpu-native")).verified
    assert len(maps) == 1 and maps[0].closed
