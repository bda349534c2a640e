"""A real QEMU migrates the same guest memory (skipped where QEMU >= 9.0 is not installed)."""

from __future__ import annotations

import pytest

from dsalab import qemu
from dsalab.migration import GuestMemory

version = qemu.qemu_version()
needs_qemu = pytest.mark.skipif(version is None or version < (9, 0, 0), reason=f"QEMU >= 9.0 not installed ({version})")


@needs_qemu
@pytest.mark.timeout(300)
def test_qemu_migrates_and_verifies():
    guest = GuestMemory("64MiB", normal_ratio=0.5, seed=3, shared=True)
    r = qemu.run_qemu_migration(guest, channels=2)
    assert r.verified
    assert r.normal_pages >= guest.normal_pages  # QEMU's RAM also holds a few other blocks
    assert r.zero_pages >= guest.zero_pages
    assert r.transferred_bytes >= guest.normal_pages * 4096
    assert {"live_migration", "multifdsend_0", "multifdsend_1"} <= set(r.thread_cpu_ms)
    assert r.host_cpu_ms > 0 and r.total_time_ms > 0


def test_unshared_guest_is_refused():
    guest = GuestMemory("1MiB", normal_ratio=0.5, seed=0)
    with pytest.raises(ValueError, match="shared=False"):
        guest.memfd_path  # noqa: B018


def test_missing_binary_is_a_clear_error():
    with pytest.raises(qemu.QemuUnavailable, match="not installed"):
        qemu.run_qemu_migration(GuestMemory("1MiB", normal_ratio=0.5, seed=0, shared=True), binary="qemu-nope")
