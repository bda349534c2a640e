"""A real QEMU migrates the same guest memory as the engine (skipped where QEMU >= 9.0 is not installed; the
QEMU 7.2 case runs where DSALAB_QEMU_7_2 names a 7.2 binary, see README "Running on a real QEMU")."""

from __future__ import annotations

import json
import os

import pytest
from qemu_support import no_qemu_outlives_the_test

from dsalab import qemu
from dsalab.errors import InvalidArgument
from dsalab.migration import GuestMemory
from dsalab.trial import Trial

__all__ = ["no_qemu_outlives_the_test"]  # the autouse fixture, used by being imported
version = qemu.qemu_version()
needs_qemu = pytest.mark.skipif(
    version is None or version < (9, 0, 0), reason=f"QEMU >= 9.0 not installed (qemu-system-x86_64: {version})"
)
OLD = os.environ.get("DSALAB_QEMU_7_2", "")
old_version = qemu.qemu_version(OLD) if OLD else None


def _truth(trial: Trial) -> GuestMemory:
    return GuestMemory(trial.guest_bytes, normal_ratio=trial.normal_ratio, seed=trial.seed, shared=True)


@needs_qemu
@pytest.mark.timeout(300)
def test_run_trial_page_counts_equal_the_guests_truth_and_the_destination_is_verified():
    trial = Trial(
        guest_bytes="64MiB",
        normal_ratio=0.5,
        channels=3,
        detector="cpu-native",
        seed=3,
        max_bandwidth_bytes="4GiB",
        downtime_limit_ms=250,
    )
    r = qemu.run_trial(trial)
    guest = _truth(trial)
    assert r.backend == "qemu" and r.trial == trial and r.verified and r.mismatched_pages == 0
    assert (r.zero_pages, r.normal_pages) == (guest.zero_pages, guest.normal_pages)
    assert r.total_bytes == trial.guest_bytes and r.extra_zero_pages + r.extra_normal_pages > 0
    assert r.transferred_bytes >= guest.normal_pages * 4096
    assert r.accel in ("kvm", "tcg") and r.qemu_version == ".".join(map(str, version))
    assert r.zero_page_detection == "multifd"
    p = r.migrate_parameters  # what QEMU itself said it ran with
    assert (p["multifd-channels"], p["max-bandwidth"], p["downtime-limit"]) == (3, 4 << 30, 250)
    assert p["zero-page-detection"] == "multifd"
    assert {"live_migration", "multifdsend_0", "multifdsend_1", "multifdsend_2"} <= set(r.thread_cpu_ms)
    assert r.host_cpu_ms > 0 and r.total_time_ms > 0
    ds = r.to_dataset()
    assert ds.attrs["qemu_accel"] == r.accel and ds.attrs["qemu_version"] == r.qemu_version
    assert json.loads(ds.attrs["qemu_migrate_parameters"])["multifd-channels"] == 3
    assert int(ds["zero_pages"].item()) == guest.zero_pages
    assert qemu.live_pids() == set()


@needs_qemu
@pytest.mark.timeout(300)
def test_a_cold_destination_and_an_all_normal_guest_also_match():
    trial = Trial(guest_bytes="32MiB", normal_ratio=1.0, detector="cpu-native", seed=5, prealloc=False)
    r = qemu.run_trial(trial)
    assert r.verified and (r.zero_pages, r.normal_pages) == (0, 8192) and not r.trial.prealloc


@needs_qemu
@pytest.mark.timeout(300)
def test_run_qemu_migration_still_takes_a_guest():
    guest = GuestMemory("32MiB", normal_ratio=0.25, seed=7, shared=True)
    r = qemu.run_qemu_migration(guest, channels=2)
    assert r.verified and (r.zero_pages, r.normal_pages) == (guest.zero_pages, guest.normal_pages)


@pytest.mark.skipif(
    old_version is None or old_version[:2] != (7, 2), reason=f"DSALAB_QEMU_7_2 names no QEMU 7.2 binary ({OLD!r})"
)
@pytest.mark.timeout(300)
def test_qemu_7_2_finds_zero_pages_in_its_main_thread_and_says_so():
    trial = Trial(guest_bytes="32MiB", normal_ratio=0.5, detector="cpu-native", seed=9)
    r = qemu.run_trial(trial, qemu=OLD)
    guest = _truth(trial)
    assert r.verified and (r.zero_pages, r.normal_pages) == (guest.zero_pages, guest.normal_pages)
    assert r.zero_page_detection == "legacy" and r.qemu_version.startswith("7.2.")
    assert "zero-page-detection" not in r.migrate_parameters
    with pytest.raises(qemu.QemuCannotHonour, match=r"packet_bytes=131072 .*QEMU 7\.2\."):
        qemu.run_trial(trial.replace(packet_bytes="128KiB"), qemu=OLD)


def test_unshared_guest_is_refused():
    guest = GuestMemory("1MiB", normal_ratio=0.5, seed=0)
    with pytest.raises(ValueError, match="shared=False"):
        guest.memfd_path  # noqa: B018


def test_a_guest_unlike_the_trial_is_refused():
    guest = GuestMemory("1MiB", normal_ratio=0.5, seed=1, shared=True)
    with pytest.raises(InvalidArgument, match=r"does not match the trial: allowed is a guest of .*seed=2"):
        qemu.run_trial(Trial(guest_bytes="1MiB", detector="cpu-native", seed=2), guest=guest)


def test_missing_binary_is_a_clear_error():
    with pytest.raises(qemu.QemuUnavailable, match=r"qemu-nope.* not installed"):
        qemu.run_trial(Trial(guest_bytes="1MiB", detector="cpu-native"), qemu="qemu-nope")
    with pytest.raises(qemu.QemuUnavailable, match="not installed"):
        qemu.run_qemu_migration(GuestMemory("1MiB", normal_ratio=0.5, seed=0, shared=True), binary="/nope/qemu")
