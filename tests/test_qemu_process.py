"""Every QEMU process dsalab starts is stopped by its PID when the trial ends, fails or is interrupted; a QEMU
that fails to start, a failed migration and a missing binary each give an error carrying QEMU's own message
(skipped where QEMU >= 9.0 is not installed; a SIGTERM/SIGKILL'd parent and a real Ctrl-C: test_qemu_lifetime.py)."""

from __future__ import annotations

import os
import signal

import pytest
from qemu_support import QEMU_9_MODULE, SMALL_TRIAL, gone, no_qemu_outlives_the_test

from dsalab import qemu
from dsalab.migration import GuestMemory
from dsalab.qemu import capabilities, mapping, qmp, runner
from dsalab.qemu.process import QemuProcess, find_binary

pytestmark = QEMU_9_MODULE
__all__ = ["no_qemu_outlives_the_test"]  # the autouse fixture, used by being imported
TRIAL = SMALL_TRIAL


@pytest.mark.parametrize("at", ["migrate", "query-migrate", "migrate-set-parameters"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_or_failing_trial_leaves_no_qemu(monkeypatch, at, exc):
    real, seen = qmp.call, set()

    async def call(client, proc, cmd, args=None):
        if cmd == at:
            seen.update(qemu.live_pids())
            raise exc(f"stopped at {cmd}")
        return await real(client, proc, cmd, args)

    capabilities.probe()  # probed before the patch: the trial's own processes are the ones interrupted
    runner.extra_pages(find_binary(None), qemu.process.accelerator(), TRIAL, capabilities.probe())
    monkeypatch.setattr(qmp, "call", call)
    with pytest.raises(exc, match=f"stopped at {at}"):
        qemu.run_trial(TRIAL)
    assert len(seen) == 2, seen  # source and destination were running when it stopped
    assert all(gone(pid) for pid in seen) and qemu.live_pids() == set()


def test_a_qemu_that_fails_to_start_gives_its_own_message(monkeypatch):
    real = runner._machine_args
    monkeypatch.setattr(runner, "_machine_args", lambda *a: [*real(*a), "-bogus-option"])
    with pytest.raises(qemu.QemuFailed, match=r"exit status 1\): .*-bogus-option: invalid option"):
        qemu.run_trial(TRIAL)
    assert qemu.live_pids() == set()


def test_a_failed_migration_gives_qemus_own_message():
    plan = mapping.plan(TRIAL, capabilities.probe())
    guest = GuestMemory(TRIAL.guest_bytes, normal_ratio=0.5, seed=1, shared=True)
    with pytest.raises(qemu.QemuFailed, match=r"QEMU migration failed: .*Size mismatch: mem"):
        runner._migrate(
            find_binary(None), "tcg", TRIAL, plan, guest.memfd_path, TRIAL.guest_bytes, dst_bytes=2 * (16 << 20)
        )
    assert qemu.live_pids() == set()


def test_stop_ends_a_qemu_that_ignores_quit(tmp_path):
    proc = QemuProcess(find_binary(None), ["-machine", "q35,accel=tcg", "-m", "16M"], name="t", workdir=str(tmp_path))
    assert proc.pid in qemu.live_pids() and not gone(proc.pid)
    os.kill(proc.pid, signal.SIGSTOP)  # a stopped process cannot exit on SIGTERM: stop() must end it with SIGKILL
    proc.stop(timeout_s=1.0)
    assert gone(proc.pid) and qemu.live_pids() == set()
    proc.stop()  # twice is fine
