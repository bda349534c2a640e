"""Bounds of the migration engine (issue 9): no wait without a bound, no crash on a malformed packet, no
allocation the machine cannot hold. Cases that hung on the old code run in a subprocess with a timeout, so a
regression fails one test instead of hanging the run; no test asserts a wall time (the bounds are generous
"did not hang" checks)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from dsalab import _binding, kernels
from dsalab.errors import DsalabError, InvalidArgument, MigrationError, NativeInvalidArgument
from dsalab.migration import GuestMemory, Trial, connect_channels, engine, guest, run_trial
from dsalab.migration.detectors import Detector

SMALL = 8 << 20
MAGIC, VERSION = 0x44534C4D, 1  # native/multifd_int.h: MIG_MAGIC, MIG_VERSION


def _run_script(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter; its stdout. A hang fails the calling test after ``timeout`` s."""
    try:
        r = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the script did not finish within {timeout} s (a hang)")
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    return r.stdout


# ---------------------------------------------------------------- the receiver and malformed packets


class _Receiver:
    """A native engine whose receiver of channel 0 reads what the test writes into ``self.wire``."""

    def __init__(self) -> None:
        self.src = np.zeros(1 << 20, dtype=np.uint8)
        self.dst = np.zeros_like(self.src)
        self.idle_a, self.idle_b = socket.socketpair()  # the engine's sender end: never used here
        (self.wire,), (self.dst_end,) = connect_channels(1)
        self.engine = _binding.MigrationEngine(
            self.src,
            self.dst,
            4096,
            [self.idle_a.fileno()],
            [self.dst_end.fileno()],
            16,
            zero_fn_address=kernels.native_zero_check_address(),
            io_timeout_ms=1000,
        )

    def error_after(self, data: bytes, bound_s: float = 20.0) -> str:
        self.wire.sendall(data)
        end = time.monotonic() + bound_s
        while not self.engine.error() and time.monotonic() < end:
            time.sleep(0.02)
        return self.engine.error()

    def close(self) -> None:
        assert self.engine.stop(5000) == ""
        self.engine.destroy()
        for s in (self.idle_a, self.idle_b, self.wire, self.dst_end):
            s.close()


def _header(flags: int, normal: int, zero: int, packet_num: int = 0) -> bytes:
    """The engine's packet header: QEMU's MultiFDPacket_t layout (320 bytes)."""
    header = struct.pack("<6IQ2I3Q256s", MAGIC, VERSION, flags, 0, normal, 0, packet_num, zero, 0, 0, 0, 0, b"pc.ram")
    assert len(header) == 320
    return header


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (_header(0, 0, 0), "protocol error: a data packet with 0 pages"),
        (_header(0x80, 1, 0), "protocol error: unknown packet flags"),
    ],
)
def test_malformed_packet_is_a_protocol_error_naming_the_channel(packet, expected):
    """A 0-page data packet was read as 'connection closed by the peer' (a 0-byte read looks like EOF)."""
    rx = _Receiver()
    try:
        err = rx.error_after(packet)
        assert err == f"channel 0: multifdrecv_0 failed after 0 packets: {expected}"
    finally:
        rx.close()


def test_native_engine_refuses_an_io_timeout_it_cannot_double():
    """2 * io_timeout_ms, and io_timeout_ms in ns, must not overflow: the engine takes up to 2**40 ms."""
    src, dst = connect_channels(1)
    try:
        for timeout_ms, ok in ((1 << 41, False), (1 << 40, True)):
            args = (np.zeros(4096, np.uint8), np.zeros(4096, np.uint8), 4096, [src[0].fileno()], [dst[0].fileno()], 1)
            if not ok:
                with pytest.raises(NativeInvalidArgument):
                    _binding.MigrationEngine(
                        *args, zero_fn_address=kernels.native_zero_check_address(), io_timeout_ms=timeout_ms
                    )
                continue
            eng = _binding.MigrationEngine(
                *args, zero_fn_address=kernels.native_zero_check_address(), io_timeout_ms=timeout_ms
            )
            assert eng.stop(5000) == ""
            eng.destroy()
    finally:
        for s in src + dst:
            s.close()


# ---------------------------------------------------------------- the guest_dirty thread


@pytest.mark.timeout(150)
def test_dirtier_stops_at_a_rate_it_cannot_keep_up_with():
    """At a rate the thread cannot reach, its inner loop never caught up and ignored the stop flag: stop hung."""
    out = _run_script(
        """
        import socket, time
        import numpy as np
        from dsalab import _binding, kernels
        from dsalab.migration import connect_channels
        src = np.zeros(1 << 20, dtype=np.uint8)
        dst = np.zeros_like(src)
        s, d = connect_channels(1)
        # 64-byte pages at 2**63 bytes/s: ~1e8 pages due per ns, so the old inner loop never caught up
        eng = _binding.MigrationEngine(src, dst, 64, [s[0].fileno()], [d[0].fileno()], 16,
                                       zero_fn_address=kernels.native_zero_check_address(), io_timeout_ms=1000)
        eng.dirtier_start(1 << 63, 7)
        bitmap = eng.new_bitmap()
        end = time.monotonic() + 30
        while eng.dirty_sync(bitmap) == 0 and time.monotonic() < end:
            time.sleep(0.01)
        dirtied = eng.dirtier_stop()
        print("dirtied", dirtied, "cpu", eng.dirtier_cpu_ns())
        assert eng.stop(5000) == ""
        eng.destroy()
        """,
        timeout=90,
    )
    words = out.split()
    assert words[0] == "dirtied" and int(words[1]) > 0 and int(words[3]) > 0


@pytest.mark.timeout(200)
def test_trial_with_a_dirty_rate_beyond_reach_ends_and_verifies():
    out = _run_script(
        """
        from dsalab.migration import Trial, run_trial
        # 64-byte pages at the largest rate a Trial takes: after a few ms the dirtier is hours behind its rate;
        # the bandwidth limit makes the rounds last long enough for that (~1.5 s in all)
        r = run_trial(Trial(guest_bytes=2 << 20, page_size=64, packet_bytes=64 << 10, normal_ratio=0.5,
                            dirty_rate_bytes_per_s=1 << 48, max_bandwidth_bytes=4 << 20, max_iterations=2,
                            downtime_limit_ms=1, seed=9))
        print(r.verified, r.iterations <= 3, r.dirtied_pages > 0)
        """,
        timeout=150,
    )
    assert out.split() == ["True", "True", "True"]


# ---------------------------------------------------------------- the trial's overall deadline


def test_deadline_formula():
    from dsalab.migration.trial import MAX_GUEST_BYTES, MAX_IO_TIMEOUT_MS

    t = Trial(guest_bytes=256 << 20, io_timeout_ms=30000)
    assert engine.trial_deadline_s(t) == 4 * 30 + (256 << 20) / engine.DEADLINE_MIN_RATE
    dirty = t.replace(dirty_rate_bytes_per_s="1MiB", max_iterations=5)
    assert engine.trial_deadline_s(dirty) == 4 * 30 + 6 * (256 << 20) / engine.DEADLINE_MIN_RATE
    slow = t.replace(max_bandwidth_bytes=1000)
    assert engine.trial_deadline_s(slow) == 4 * 30 + (256 << 20) / 500
    huge = Trial(
        guest_bytes=MAX_GUEST_BYTES,
        io_timeout_ms=MAX_IO_TIMEOUT_MS,
        max_bandwidth_bytes=1,
        dirty_rate_bytes_per_s=1,
        max_iterations=10000,
    )
    assert 0 < engine.trial_deadline_s(huge) < float("inf")


@pytest.mark.timeout(60)
def test_trial_past_its_deadline_fails_naming_the_thread():
    """A trial that progresses (so no channel times out) but far too slowly: 8 MiB at 64 KiB/s takes ~2 min."""
    trial = Trial(guest_bytes=SMALL, normal_ratio=1.0, channels=1, max_bandwidth_bytes=64 << 10, io_timeout_ms=600_000)
    with pytest.raises(MigrationError) as info:
        run_trial(trial, deadline_s=2.0)
    text = str(info.value)
    assert text.startswith("trial deadline of 2.0 s passed"), text
    assert "live_migration did not finish round 1" in text
    assert "busy: multifdsend_0 in " in text
    assert engine.release_stuck_trials() == 0


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "1"])
def test_bad_deadline_is_refused(value):
    with pytest.raises(MigrationError, match=r"deadline_s=.* is not allowed"):
        run_trial(Trial(guest_bytes=SMALL), deadline_s=value)


@pytest.mark.timeout(150)
def test_progress_callback_that_raises_ends_the_migration():
    """The old code joined live_migration after the callback raised: it waited for the whole (2 minute) trial."""
    out = _run_script(
        """
        from dsalab.migration import Trial, run_trial, engine
        calls = []
        def progress(done, total):
            calls.append(done)
            raise KeyError("from the callback")
        trial = Trial(guest_bytes=8 << 20, normal_ratio=1.0, channels=1, max_bandwidth_bytes=64 << 10)
        try:
            run_trial(trial, progress=progress)
        except KeyError as exc:
            print("raised", exc, len(calls), engine.release_stuck_trials())
        """,
        timeout=90,
    )
    assert out.split() == ["raised", "'from", "the", "callback'", "1", "0"]


@pytest.mark.timeout(120)
def test_sender_stuck_in_its_detector_is_named_and_never_freed_under(monkeypatch):
    """A detector that does not return: the trial fails naming multifdsend_0, and the engine (which the thread
    still uses) stays allocated until the thread ends; the old code blocked in the join until the call returned."""
    from dsalab._binding import ffi

    release = threading.Event()
    entered = threading.Event()

    def stuck_detect(ctx, buf, npages, page_size, out_zero, hint):
        entered.set()
        release.wait(20)  # a bound for the old code, which waits for this call to return
        return 1  # not DSL_OK: the engine does the packet on the CPU

    callback = ffi.callback("dsl_detect_fn", stuck_detect)
    address = int(ffi.cast("uintptr_t", callback))
    monkeypatch.setattr(engine, "make_detector", lambda trial: Detector("stuck-test", detect_fn_address=address))
    trial = Trial(guest_bytes=SMALL, channels=1, io_timeout_ms=200)
    try:
        with pytest.raises(MigrationError) as info:
            run_trial(trial)
        text = str(info.value)
        assert entered.is_set()
        assert "live_migration waited 400 ms" in text, text
        assert "multifdsend_0 (in zero-page detection) did not finish within 2.2 s of the stop" in text, text
        assert "left allocated" in text
        assert engine.release_stuck_trials() == 1
    finally:
        release.set()
        remaining = engine.release_stuck_trials(timeout_s=30)
    assert remaining == 0


# ---------------------------------------------------------------- memory the machine does not have


def test_guest_larger_than_the_machine_is_refused_before_allocating():
    with pytest.raises(MigrationError, match=r"Trial guest_bytes=1125899906842624 \(1024\.0 TiB\) is too large") as i:
        run_trial(Trial(guest_bytes="1024TiB"))
    assert "source + destination needs 2052.2 TiB" in str(i.value) and "available (MemAvailable" in str(i.value)
    with pytest.raises(InvalidArgument, match=r"guest_bytes=1125899906842624 \(1024\.0 TiB\) is too large"):
        GuestMemory("1024TiB", normal_ratio=0.5, seed=0)


def test_memory_check_counts_source_and_destination(monkeypatch):
    monkeypatch.setattr(guest, "mem_available_bytes", lambda path=guest.MEMINFO: 12 << 20)
    with pytest.raises(MigrationError) as info:
        run_trial(Trial(guest_bytes=SMALL))  # 16 MiB + bookkeeping > 12 MiB
    assert "source + destination needs 16.0 MiB" in str(info.value)
    assert "but 12.0 MiB (12582912 bytes) is available" in str(info.value)
    g = GuestMemory(SMALL, normal_ratio=0.5, seed=1)  # 8 MiB fits
    monkeypatch.setattr(guest, "mem_available_bytes", lambda path=guest.MEMINFO: 4 << 20)
    with pytest.raises(MigrationError, match=r"the destination needs 8\.0 MiB"):
        run_trial(Trial(guest_bytes=SMALL, seed=1), guest=g)


def test_mem_available_parses_meminfo(tmp_path):
    p = tmp_path / "meminfo"
    p.write_text("MemTotal:       16310676 kB\nMemFree:          123 kB\nMemAvailable:    8000000 kB\n")
    assert guest.mem_available_bytes(str(p)) == 8000000 * 1024
    p.write_text("MemTotal: 1 kB\n")
    assert guest.mem_available_bytes(str(p)) is None
    assert guest.mem_available_bytes(str(tmp_path / "missing")) is None
    assert guest.mem_available_bytes() is None or guest.mem_available_bytes() > 0


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True])
def test_guest_memory_seed_range(seed):
    with pytest.raises(DsalabError, match=r"seed=.* is not allowed: it must be an int from 0 to 2\*\*63-1"):
        GuestMemory("1MiB", normal_ratio=0.5, seed=seed)


@pytest.mark.parametrize(
    "fault",
    [
        "receiver-reset",
        engine.Fault(["x"]),
        engine.Fault("receiver-reset", channel="0"),
        engine.Fault("receiver-reset", after_packets=-1),
        engine.Fault("receiver-reset", after_packets=2**64),
    ],
)
def test_a_bad_fault_is_a_migration_error(fault):
    with pytest.raises(MigrationError, match="is not allowed"):
        run_trial(Trial(guest_bytes="1MiB", channels=1, detector="cpu-native"), fault=fault)


def test_a_guest_that_is_not_guest_memory_is_a_migration_error():
    with pytest.raises(MigrationError, match="guest=bytes is not allowed"):
        run_trial(Trial(guest_bytes="1MiB", channels=1, detector="cpu-native"), guest=b"abc")


def test_channels_that_cannot_connect_close_what_they_opened(monkeypatch):
    import dsalab.migration.channels as ch

    made = []
    real = socket.create_connection

    def connect(*a, **k):
        if len(made) == 2:
            raise OSError(24, "Too many open files")
        made.append(real(*a, **k))
        return made[-1]

    monkeypatch.setattr(ch.socket, "create_connection", connect)
    with pytest.raises(MigrationError, match=r"cannot connect 4 channels on 127\.0\.0\.1: Too many open files"):
        ch.connect_channels(4)
    assert all(s.fileno() == -1 for s in made)


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, "1"])
def test_release_stuck_trials_refuses_a_bad_timeout(timeout):
    with pytest.raises(InvalidArgument, match="timeout_s="):
        engine.release_stuck_trials(timeout)


def test_a_rate_limited_channel_that_progresses_is_not_a_timeout():
    # a packet every ~250 ms at 2 MiB/s: progress, although each wait for a queue slot lasts longer than
    # 2 x io_timeout_ms in all (before, live_migration counted the rate limiter's time as "no progress")
    trial = Trial(
        guest_bytes="8MiB",
        channels=1,
        io_timeout_ms=200,
        max_bandwidth_bytes="2MiB",
        normal_ratio=1.0,
        detector="cpu-native",
    )
    res = run_trial(trial)
    assert res.verified and res.normal_pages == trial.guest_bytes // trial.page_size
