"""A QEMU result from recorded numbers (pure: no QEMU runs here): page counts checked against the guest and the
calibration, forced normal pages, transferred bytes like the engine's, the DSA completion thread and the
destination's main thread counted, and the calibration's own trial and cache key."""

from __future__ import annotations

import copy
import os
import pathlib

import pytest

from dsalab.qemu import runner
from dsalab.qemu.capabilities import Capabilities
from dsalab.qemu.process import QemuFailed
from dsalab.qemu.result import qemu_result, seed_name
from dsalab.trial import Trial

DATA = pathlib.Path(__file__).parent / "data" / "qemu"
Q10 = Capabilities.load(DATA / "qemu-10.0.2.json")
V5 = Capabilities.load(DATA / "dsa-v5.json")
TRIAL = Trial(guest_bytes="64MiB", normal_ratio=0.5, channels=2, detector="cpu-native", seed=1)
#: QEMU 10.0.2 (KVM) migrating TRIAL's guest, and the engine's transferred bytes for the same trial, both
#: measured on this machine (run_trial of each); QEMU's other RAM blocks: 78 zero and 52 normal pages
RAM = {
    "total": 67641344,
    "duplicate": 8270,
    "normal": 8244,
    "normal-bytes": 33767424,
    "multifd-bytes": 33954368,
    "transferred": 34031287,
    "dirty-sync-count": 2,
    "page-size": 4096,
}
ENGINE_TRANSFERRED = 33689792
ST = {"status": "completed", "total-time": 40, "setup-time": 1, "downtime": 3, "ram": RAM}
EXTRA = (78, 52)


def _result(st=ST, extra=EXTRA, trial=TRIAL, **kwargs):
    cpu = kwargs.pop("cpu", {"live_migration": 5.0})
    kw = {"qemu_version": "10.0.2", "accel": "kvm", "mismatched": 0, "extra_pages": extra, **kwargs}
    return qemu_result(trial, st, cpu, **kw)


def _st(**ram):
    st = copy.deepcopy(ST)
    st["ram"].update(ram)
    return st


def test_counts_are_the_guests_and_transferred_bytes_are_within_1_percent_of_the_engines():
    r = _result()
    assert (r.zero_pages, r.normal_pages, r.forced_normal_pages) == (8192, 8192, 0)
    assert r.total_bytes == TRIAL.guest_bytes
    assert abs(r.transferred_bytes / ENGINE_TRANSFERRED - 1) < 0.01, r.transferred_bytes
    assert r.query_migrate["ram"]["transferred"] == 34031287  # QEMU's own figure kept


def test_legacy_zero_pages_travel_on_the_main_channel_so_its_bytes_count():
    r = _result(zero_page_detection="legacy")
    assert r.transferred_bytes == 34031287 - 52 * 4096 - 130 * 8


@pytest.mark.parametrize(
    ("st", "extra", "match"),
    [
        (ST, (70, 52), r"other RAM blocks hold 130 pages: the calibration is stale"),
        (_st(duplicate=8000), EXTRA, r"8192 normal pages is not the guest's 16384 pages"),
        (_st(duplicate=50, normal=16514), EXTRA, r"-28 zero \+ 16462 normal pages is not"),
    ],
)
def test_inconsistent_counts_are_an_error_with_qemus_numbers(st, extra, match):
    with pytest.raises(QemuFailed, match=match) as info:
        _result(st, extra)
    assert "QEMU reported duplicate=" in str(info.value)


def test_forced_normal_pages_come_from_qemus_normal_count():
    trial = TRIAL.replace(force_normal_ratio=0.25)
    st = _st(duplicate=8270 - 2048, normal=8244 + 2048)  # a quarter of the 8192 zero pages sent as normal
    r = _result(st, trial=trial, truth_normal_pages=8192)
    assert (r.zero_pages, r.normal_pages, r.forced_normal_pages) == (8192, 8192, 2048)
    with pytest.raises(QemuFailed, match="fewer normal pages than the guest's 11000"):
        _result(st, trial=trial, truth_normal_pages=11000)


@pytest.mark.parametrize("name", ["dsa_completion", "qemu_dsa_completion", "qemu_dsa_comple"])
def test_the_dsa_completion_thread_counts_in_host_cpu(name):
    assert seed_name(name) == "dsa_completion"
    cpu = {"live_migration": 6129.0, "multifdsend_0": 2954.0, "dsa_completion": 3612.0}
    r = _result(cpu=cpu, zero_page_detection="multifd-dsa-accel")
    assert r.host_cpu_ms == pytest.approx(6129 + 2954 + 3612)
    assert (r.pages_offloaded, r.fallback_pages) == (-1, -1)  # unknown: QEMU does not count them
    assert (_result().pages_offloaded, _result().fallback_pages) == (0, 0)


def test_the_destinations_main_thread_counts_and_a_reused_tid_starts_from_zero():
    src, dst = 100, 200
    before = {(dst, dst): ("qemu-system-x86", 10_000_000), (src, 7): ("mig/src/send_0", 1_000_000)}
    seen = {
        (dst, dst): ("qemu-system-x86", 30_000_000),
        (src, 7): ("mig/dst/recv_0", 4_000_000),  # TID 7 reused by another thread: its baseline is not this one's
        (src, 8): ("mig/src/main", 2_000_000),
    }
    cpu = runner._cpu_by_seed_name(seen, before, dst)
    assert cpu == {"incoming_main": 20.0, "multifdrecv_0": 4.0, "live_migration": 2.0}
    r = _result(cpu=cpu)
    assert r.destination_cpu_ms == 24.0 and r.host_cpu_ms == 2.0


def test_the_calibration_runs_unforced_unlimited_and_is_keyed_on_the_binarys_identity(tmp_path, monkeypatch):
    binary = tmp_path / "qemu-system-x86_64"
    binary.write_bytes(b"a stand-in: _migrate is replaced below")
    calls = []

    def migrate(binary, accel, trial, plan, src_path, size, inspect=None, dst_bytes=None):
        calls.append(plan)
        return {"ram": {"duplicate": 16384 + 78, "normal": 52, "total": size + 130 * 4096}}, {}, {}, None

    monkeypatch.setattr(runner, "_migrate", migrate)
    monkeypatch.setattr(runner, "_EXTRA", {})
    trial = TRIAL.replace(force_normal_ratio=0.25, max_bandwidth_bytes="16MiB")
    assert runner.extra_pages(str(binary), "kvm", trial, V5) == EXTRA
    assert "multifd-normal-page-ratio" not in calls[0].parameters
    assert calls[0].parameters["max-bandwidth"] == runner.mapping.UNLIMITED_BYTES_PER_S
    assert runner.extra_pages(str(binary), "kvm", trial.replace(force_normal_ratio=0.5), V5) == EXTRA
    assert len(calls) == 1  # same binary, accelerator, size and detection: kept
    st = binary.stat()
    os.utime(binary, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # upgraded in place
    runner.extra_pages(str(binary), "kvm", trial, V5)
    assert len(calls) == 2


def test_an_impossible_calibration_is_an_error(tmp_path, monkeypatch):
    binary = tmp_path / "qemu-system-x86_64"
    binary.write_bytes(b"x")

    def migrate(binary, accel, trial, plan, src_path, size, inspect=None, dst_bytes=None):
        return {"ram": {"duplicate": 12288, "normal": 4096, "total": size + 130 * 4096}}, {}, {}, None

    monkeypatch.setattr(runner, "_migrate", migrate)
    monkeypatch.setattr(runner, "_EXTRA", {})
    with pytest.raises(QemuFailed, match=r"all-zero 67108864-byte guest are impossible: duplicate=12288"):
        runner.extra_pages(str(binary), "kvm", TRIAL, Q10)
