"""The multifd migration engine: guest memory, trial validation, counts, verification, dirtying, faults."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dsalab import kernels
from dsalab.errors import InvalidArgument, MigrationError
from dsalab.migration import Fault, GuestMemory, Trial, run_trial
from dsalab.units import parse_bytes

SMALL = 8 << 20  # 8 MiB guests keep the suite fast on two cores


# ---------------------------------------------------------------- guest memory


def test_guest_memory_truth_and_reproducibility():
    g = GuestMemory("4MiB", normal_ratio=0.3, seed=7)
    assert g.npages == 1024 and g.guest_bytes == 4 << 20
    assert g.normal_pages == round(0.3 * 1024) and g.zero_pages == 1024 - g.normal_pages
    found = kernels.find_zero_pages(g.array, kernel="numpy")
    assert np.array_equal(found, g.truth)
    again = GuestMemory(4 << 20, normal_ratio=0.3, seed=7)
    assert np.array_equal(again.array, g.array)
    other = GuestMemory(4 << 20, normal_ratio=0.3, seed=8)
    assert not np.array_equal(other.truth, g.truth)
    assert bytes(g.buffer[:16]) == g.array[:16].tobytes()


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_guest_memory_extremes(ratio):
    g = GuestMemory("1MiB", normal_ratio=ratio, seed=1, page_size=8192)
    assert g.zero_pages == (128 if ratio == 0.0 else 0)
    assert kernels.find_zero_pages(g.array, 8192, kernel="native").sum() == g.zero_pages


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"guest_bytes": 5000}, "guest_bytes=5000 is not allowed"),
        ({"guest_bytes": "4 parsecs"}, "is not a size"),
        ({"normal_ratio": 1.5}, r"normal_ratio=1.5 is not allowed: it must be a number from 0.0 to 1.0"),
        ({"page_size": 3000}, "page_size=3000 is not allowed"),
    ],
)
def test_guest_memory_bad_input(kwargs, match):
    args = {"guest_bytes": "1MiB", "normal_ratio": 0.5, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        GuestMemory(args.pop("guest_bytes"), **args)


def test_parse_bytes():
    assert parse_bytes("4GiB") == 4 << 30
    assert parse_bytes("4G") == 4 << 30
    assert parse_bytes("512 KiB") == 512 << 10
    assert parse_bytes("1.5MiB") == 3 << 19
    assert parse_bytes("2MB") == 2_000_000
    assert parse_bytes(4096) == 4096
    with pytest.raises(ValueError, match="allowed: an int of bytes or a number with a unit"):
        parse_bytes("12 furlongs")
    with pytest.raises(TypeError):
        parse_bytes(None)


# ---------------------------------------------------------------- trial validation


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("guest_bytes", 4097, "a positive multiple of page_size"),
        ("normal_ratio", -0.1, "a number from 0.0 to 1.0"),
        ("force_normal_ratio", 2, "a number from 0.0 to 1.0"),
        ("channels", 0, "an int from 1 to 64"),
        ("packet_bytes", 1000, "a multiple of page_size"),
        ("detector", "gpu", "cpu-numba, cpu-native, dsa-emulated, dsa-hardware"),
        ("devices", 0, "a count from 1 to 64"),
        ("devices", (), "a count >= 1 or a non-empty tuple"),
        ("batch_size", 4096, "an int from 1 to 1024"),
        ("completion", "interrupt", "thread, poll, umwait"),
        ("cpu_fraction", 1.1, "a number from 0.0 to 1.0"),
        ("max_bandwidth_bytes", -1, "bytes/s >= 0"),
        ("dirty_rate_bytes_per_s", -5, "bytes/s >= 0"),
        ("downtime_limit_ms", 0, "a finite number of ms > 0"),
        ("seed", -1, "an int from 0 to 2**63-1"),
        ("io_timeout_ms", 10, "an int of ms from 100 to 3600000"),
    ],
)
def test_bad_trial_names_field_value_and_allowed(field, value, allowed):
    with pytest.raises(
        ValueError,
        match=rf"Trial field {field}={re.escape(repr(value))} is not allowed: "
        rf"allowed is {re.escape(allowed)}",
    ):
        Trial(**{field: value})


def test_trial_page_size_error_names_field():
    with pytest.raises(InvalidArgument, match="page_size=1000 is not allowed"):
        Trial(page_size=1000)


def test_trial_units_and_helpers():
    t = Trial(guest_bytes="64MiB", packet_bytes="256KiB", dirty_rate_bytes_per_s="10MiB")
    assert t.guest_bytes == 64 << 20 and t.packet_pages == 64 and t.dirty_rate_bytes_per_s == 10 << 20
    assert t.replace(channels=4).channels == 4
    assert "guest_bytes" in Trial.fields() and '"channels": 2' in t.to_json()
    assert Trial(devices=["emu", "emu:gbps=10"]).devices == ("emu", "emu:gbps=10")
    with pytest.raises(TypeError):
        Trial(nonsense=1)


# ---------------------------------------------------------------- runs


@pytest.mark.timeout(120)
@pytest.mark.parametrize("detector", ["cpu-numba", "cpu-native"])
def test_counts_equal_truth_and_threads_accounted(detector):
    trial = Trial(guest_bytes=SMALL, normal_ratio=0.4, channels=3, detector=detector, seed=5)
    guest = GuestMemory(SMALL, normal_ratio=0.4, seed=5)
    r = run_trial(trial, guest=guest)
    assert r.verified and r.mismatched_pages == 0
    assert (r.zero_pages, r.normal_pages) == (guest.zero_pages, guest.normal_pages)
    assert r.pages_sent == guest.npages and r.backend == detector
    assert r.transferred_bytes >= guest.normal_pages * 4096
    names = set(r.thread_cpu_ms)
    assert {"live_migration", "multifdsend_0", "multifdsend_2", "multifdrecv_1"} <= names
    src = sum(v for n, v in r.thread_cpu_ms.items() if n == "live_migration" or n.startswith("multifdsend_"))
    assert r.host_cpu_ms == pytest.approx(src)
    assert r.destination_cpu_ms == pytest.approx(sum(v for n, v in r.thread_cpu_ms.items() if "recv" in n))
    assert r.total_time_ms >= r.setup_time_ms and r.throughput_mbps > 0
    assert r.iterations == 2 and r.dirty_sync_count == 1 and r.converged


@pytest.mark.timeout(120)
def test_force_normal_ratio_changes_what_is_sent_and_nothing_else():
    base = Trial(guest_bytes=SMALL, normal_ratio=0.3, channels=2, seed=2)
    plain = run_trial(base)
    forced = run_trial(base.replace(force_normal_ratio=0.5))
    assert plain.forced_normal_pages == 0
    assert 0.4 * plain.zero_pages < forced.forced_normal_pages < 0.6 * plain.zero_pages
    assert (forced.zero_pages, forced.normal_pages) == (plain.zero_pages, plain.normal_pages)
    extra = forced.transferred_bytes - plain.transferred_bytes
    assert extra == forced.forced_normal_pages * 4096
    assert forced.verified and plain.verified
    every = run_trial(base.replace(force_normal_ratio=1.0))
    assert every.forced_normal_pages == plain.zero_pages


@pytest.mark.timeout(300)
@pytest.mark.parametrize("channels", [1, 2, 5, 8])
@pytest.mark.parametrize("packet_bytes", [4096, 64 << 10, 512 << 10, 4 << 20])
def test_destination_equals_source(channels, packet_bytes):
    r = run_trial(
        Trial(
            guest_bytes=SMALL,
            normal_ratio=0.5,
            channels=channels,
            packet_bytes=packet_bytes,
            detector="cpu-native",
            seed=channels,
        )
    )
    assert r.verified
    assert r.packets == -(-(SMALL // 4096) // (packet_bytes // 4096))
    assert {f"multifdsend_{i}" for i in range(channels)} <= set(r.thread_cpu_ms)


@pytest.mark.timeout(120)
def test_other_page_size():
    r = run_trial(Trial(guest_bytes=SMALL, page_size=16384, packet_bytes=256 << 10, normal_ratio=0.5))
    assert r.verified and r.zero_pages + r.normal_pages == SMALL // 16384


@pytest.mark.timeout(180)
def test_dirty_guest_converges_and_reports_downtime():
    r = run_trial(
        Trial(
            guest_bytes=32 << 20,
            normal_ratio=0.5,
            channels=2,
            dirty_rate_bytes_per_s="64MiB",
            downtime_limit_ms=300,
            seed=3,
        )
    )
    assert r.verified and r.converged
    assert r.dirtied_pages > 0 and r.downtime_ms > 0 and r.dirty_sync_count >= 2
    assert r.pages_sent >= (32 << 20) // 4096
    assert r.guest_cpu_ms > 0 and "guest_dirty" in r.thread_cpu_ms
    assert r.guest_cpu_ms not in (r.host_cpu_ms,)


@pytest.mark.timeout(180)
def test_dirty_guest_that_never_converges_stops_at_max_iterations():
    """A guest dirtying faster than a tiny downtime limit allows: rounds stop at max_iterations and the
    final phase still leaves the destination identical. The bandwidth limit makes every round last long enough
    for the guest to dirty pages in it."""
    r = run_trial(
        Trial(
            guest_bytes=16 << 20,
            max_bandwidth_bytes=64 << 20,
            normal_ratio=0.5,
            dirty_rate_bytes_per_s="512MiB",
            downtime_limit_ms=0.001,
            max_iterations=3,
            seed=4,
        )
    )
    assert not r.converged and r.iterations == 4 and r.verified


@pytest.mark.timeout(60)
def test_bandwidth_limit_is_respected():
    limit = 20 << 20  # 20 MiB/s; 2 MiB of payload needs ~0.1 s
    r = run_trial(Trial(guest_bytes=4 << 20, normal_ratio=0.5, max_bandwidth_bytes=limit))
    assert r.verified
    assert r.total_time_ms / 1e3 >= 0.8 * r.transferred_bytes / limit


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["receiver-exit", "receiver-reset", "receiver-stall"])
def test_channel_failures_end_in_a_clear_error(kind):
    trial = Trial(guest_bytes=SMALL, normal_ratio=1.0, channels=2, packet_bytes=64 << 10, io_timeout_ms=1000)
    with pytest.raises(MigrationError, match=r"channel 1: multifd(send|recv)_1 failed") as info:
        run_trial(trial, fault=Fault(kind, channel=1, after_packets=3))
    text = str(info.value)
    if kind == "receiver-stall":
        assert "I/O timeout" in text
    else:  # the sender sees the peer go, or (everything already in socket buffers) no sync acknowledgement
        assert any(w in text for w in ("reset", "closed", "Broken pipe", "I/O timeout")), text


def test_bad_fault_and_mismatched_guest():
    with pytest.raises(MigrationError, match="fault"):
        run_trial(Trial(guest_bytes=SMALL), fault=Fault("meteor"))
    with pytest.raises(MigrationError, match="does not match the trial"):
        run_trial(Trial(guest_bytes=SMALL), guest=GuestMemory("1MiB", normal_ratio=0.5, seed=0))


@pytest.mark.timeout(60)
def test_result_dataset_and_table():
    r = run_trial(Trial(guest_bytes=SMALL, normal_ratio=0.5))
    ds = r.to_dataset().isel(repeat=0)
    assert ds["thread_cpu_ms"].dims == ("thread",)
    assert "live_migration" in ds["thread"].values
    for name in (
        "total_time_ms",
        "downtime_ms",
        "throughput_mbps",
        "transferred_bytes",
        "zero_pages",
        "host_cpu_ms",
        "verified",
    ):
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"], name
    assert int(ds["verified"]) == 1 and ds.attrs["backend"] == "cpu-numba"
    table = r.table()
    for word in (
        "comm",
        "runtime(msec)",
        "totaltime(msec)",
        "live_migration",
        "multifdsend_0",
        "total time",
        "down time",
        "throughput",
        "transferred-ram",
        "total-ram",
    ):
        assert word in table, word


@pytest.mark.timeout(60)
def test_progress_callback_sees_pages():
    seen = []
    run_trial(Trial(guest_bytes=SMALL), progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (SMALL // 4096, SMALL // 4096)


def test_sender_and_receiver_cpu_are_final_when_the_trial_returns():
    """A channel thread's CPU time is written together with its done flag and finish() waits for both ends of
    every channel. Before, the statistics could be read before a thread had recorded its CPU (0 ms): 29 of 1,600
    channel slots over 200 trials of 8 channels, with two busy processes competing for the cores, as here."""
    import subprocess
    import sys

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for seed in range(200):
            r = run_trial(Trial(guest_bytes=1 << 20, normal_ratio=0.5, channels=8, seed=seed))
            assert r.sender_cpu_ms >= r.detect_cpu_ms + r.send_cpu_ms > 0, seed
            for c in r.channel_stats:
                assert c["sender_cpu_ns"] > 0 and c["receiver_cpu_ns"] > 0, (seed, c)
    finally:
        for h in hogs:
            h.kill()
            h.wait(timeout=10)
