"""Every QEMU process dsalab starts is stopped by its PID when the trial ends, fails or is interrupted; a QEMU
that fails to start, a failed migration and a missing binary each give an error carrying QEMU's own message
(skipped where QEMU >= 9.0 is not installed)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dsalab import qemu
from dsalab.migration import GuestMemory
from dsalab.qemu import capabilities, mapping, qmp, runner
from dsalab.qemu.process import QemuProcess, find_binary
from dsalab.trial import Trial

version = qemu.qemu_version()
pytestmark = [
    pytest.mark.skipif(
        version is None or version < (9, 0, 0), reason=f"QEMU >= 9.0 not installed (qemu-system-x86_64: {version})"
    ),
    pytest.mark.timeout(300),
]
TRIAL = Trial(guest_bytes="16MiB", normal_ratio=0.5, detector="cpu-native", seed=1)


def _gone(pid: int) -> bool:
    """True when no process ``pid`` runs (a zombie counts as running: it was not reaped)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return not stat.split(") ", 1)[1].startswith(("R", "S", "D", "Z", "T"))


def _qemu_children(ppid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm, rest = stat.split(" (", 1)[1].split(") ", 1)
        if comm.startswith("qemu-system") and int(rest.split()[1]) == ppid:
            out.add(int(entry))
    return out


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
    assert all(_gone(pid) for pid in seen) and qemu.live_pids() == set()


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
    assert proc.pid in qemu.live_pids() and not _gone(proc.pid)
    os.kill(proc.pid, signal.SIGSTOP)  # a stopped process cannot exit on SIGTERM: stop() must end it with SIGKILL
    proc.stop(timeout_s=1.0)
    assert _gone(proc.pid) and qemu.live_pids() == set()
    proc.stop()  # twice is fine


def test_sigint_mid_migration_leaves_no_qemu(tmp_path):
    """A real Ctrl-C (SIGINT to the Python process only) while two QEMUs migrate a 1 GiB guest."""
    script = textwrap.dedent(
        """
        from dsalab import qemu
        from dsalab.trial import Trial
        qemu.run_trial(Trial(guest_bytes="1GiB", detector="cpu-native", max_bandwidth_bytes="64MiB", seed=2))
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(_qemu_children(child.pid)) < 2:  # the trial's source and destination (after probe, calibration)
            assert child.poll() is None and time.monotonic() < deadline, "no two QEMUs appeared"
            time.sleep(0.05)
        time.sleep(0.5)
        seen = _qemu_children(child.pid)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert len(seen) >= 2 and all(_gone(pid) for pid in seen)
