"""No QEMU outlives the Python process that started it, whatever ends that process (SIGTERM, SIGKILL: the kernel
kills them, PR_SET_PDEATHSIG), nor a stop interrupted half-way; ``run_trial`` works inside a running event loop
(a Jupyter cell), bounded (skipped where QEMU >= 9.0 is not installed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from qemu_support import (
    QEMU_9_MODULE,
    SMALL_TRIAL,
    VERSION,
    cmdline,
    gone,
    kill_all,
    no_qemu_outlives_the_test,
    qemu_children,
    wait_gone,
)

from dsalab import qemu
from dsalab.migration import GuestMemory
from dsalab.qemu import capabilities, process, qmp, runner
from dsalab.qemu.process import QemuFailed, QemuProcess, find_binary

pytestmark = QEMU_9_MODULE
__all__ = ["no_qemu_outlives_the_test"]  # the autouse fixture, used by being imported
TRIAL = SMALL_TRIAL


def _trial_pair(child: subprocess.Popen, deadline: float) -> set[int]:
    """The PIDs of the trial's own source and destination (prealloc=on: the probe and the calibration run
    without it), once both are up."""
    while True:
        pair = {p for p in qemu_children(child.pid) if "prealloc=on" in cmdline(p)}
        if len(pair) == 2:
            return pair
        assert child.poll() is None, f"the trial ended first: {child.communicate(timeout=10)[1][-2000:]}"
        assert time.monotonic() < deadline, "the trial's two QEMUs did not appear"
        time.sleep(0.02)


#: a child Python process running a slow trial (256 MiB at 16 MiB/s), for the tests that signal it mid-migration
SLOW_TRIAL_SCRIPT = textwrap.dedent(
    """
    from dsalab import qemu
    from dsalab.trial import Trial
    qemu.run_trial(Trial(guest_bytes="256MiB", detector="cpu-native", max_bandwidth_bytes="16MiB", seed=2))
    """
)


@contextlib.contextmanager
def _slow_trial_child():
    """(child, the PIDs of its trial's two QEMUs once both are up); the child and those QEMUs are killed on the way
    out whatever happened."""
    child = subprocess.Popen([sys.executable, "-c", SLOW_TRIAL_SCRIPT], stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    try:
        seen |= _trial_pair(child, time.monotonic() + 120)
        yield child, seen
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        kill_all(seen)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_qemus_die_with_a_python_process_killed_mid_trial(sig):
    """SIGTERM or SIGKILL to the Python process (no finally block runs): the kernel kills both QEMUs."""
    with _slow_trial_child() as (child, seen):
        child.send_signal(sig)
        child.wait(timeout=30)
        left = wait_gone(seen, 10.0)
    assert child.returncode == -sig
    assert len(seen) == 2 and left == set(), f"QEMUs {sorted(left)} outlived their parent"


def test_sigint_mid_migration_leaves_no_qemu():
    """A real Ctrl-C (SIGINT to the Python process only) while the trial's own two QEMUs migrate."""
    with _slow_trial_child() as (child, seen):
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        left = wait_gone(seen, 10.0)
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert len(seen) == 2 and left == set()


def test_a_second_interrupt_while_stopping_skips_no_qemu(monkeypatch):
    """Ctrl-C again while the first QEMU is being stopped: the other one is stopped all the same."""
    real_stop, calls = QemuProcess.stop, []

    def stop(self, *args, **kwargs):
        calls.append(self.pid)
        if len(calls) == 1:
            raise KeyboardInterrupt("second Ctrl-C")
        return real_stop(self, *args, **kwargs)

    real_call, seen = qmp.call, set()

    async def call(client, proc, cmd, args=None):
        if cmd == "migrate":
            seen.update(qemu.live_pids())
            raise KeyboardInterrupt("first Ctrl-C")
        return await real_call(client, proc, cmd, args)

    guest = GuestMemory(TRIAL.guest_bytes, normal_ratio=0.5, seed=1, shared=True)
    plan = qemu.plan(TRIAL, capabilities.probe())
    monkeypatch.setattr(qmp, "call", call)
    monkeypatch.setattr(QemuProcess, "stop", stop)
    with pytest.raises(KeyboardInterrupt):
        runner._migrate(find_binary(None), "tcg", TRIAL, plan, guest.memfd_path, TRIAL.guest_bytes)
    assert len(seen) == 2 and calls
    assert wait_gone(seen, 10.0) == set() and qemu.live_pids() == set()


def test_run_trial_and_probe_work_inside_a_running_event_loop():
    """As in a Jupyter cell, where asyncio.run refuses to run."""

    async def cell():
        return capabilities.probe(), qemu.run_trial(TRIAL)

    caps, r = asyncio.run(cell())
    assert caps.version == VERSION and r.verified and r.backend == "qemu"
    guest = GuestMemory(TRIAL.guest_bytes, normal_ratio=0.5, seed=1, shared=True)
    assert (r.zero_pages, r.normal_pages) == (guest.zero_pages, guest.normal_pages)
    assert qemu.live_pids() == set()


def test_run_trial_in_a_jupyter_kernel():
    """A real notebook cell (nbclient, ipykernel) calls dsalab.qemu.run_trial directly."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = (
        "from dsalab import qemu\nfrom dsalab.trial import Trial\n"
        "r = qemu.run_trial(Trial(guest_bytes='16MiB', detector='cpu-native', seed=3))\n"
        "print('verified', r.verified, 'live', len(qemu.live_pids()))"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3").execute()
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "verified True live 0" in out, nb.cells[0].outputs


def test_a_call_inside_a_loop_that_overruns_its_bound_kills_its_qemus(tmp_path):
    started: list[QemuProcess] = []

    def slow() -> None:
        proc = QemuProcess(
            find_binary(None), ["-machine", "q35,accel=tcg", "-m", "16M"], name="s", workdir=str(tmp_path)
        )
        started.append(proc)
        try:
            proc.proc.wait(timeout=60)  # ends when it is killed
        finally:
            process.stop_all([proc])

    async def cell():
        qmp.outside_running_loop(slow, bound_s=1.0, what="slow")

    with pytest.raises(QemuFailed, match=r"slow did not finish within 1 s; its QEMUs were killed"):
        asyncio.run(cell())
    assert started and gone(started[0].pid) and qemu.live_pids() == set()


def test_a_qmp_that_accepts_and_never_answers_is_a_bounded_failure(tmp_path):
    """A socket that accepts the connection and never sends QMP's greeting."""
    import socket

    path = str(tmp_path / "fake.qmp")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(8)

    class Silent:  # what qmp.connect needs of a QemuProcess
        name, qmp_path, pid = "fake", path, 0

        def returncode(self):
            return None

        def failure(self, what):
            return QemuFailed(what)

    try:
        with pytest.raises(QemuFailed, match="did not answer"):
            asyncio.run(qmp.connect(Silent(), time.monotonic() + 1.0))
    finally:
        server.close()


def test_a_source_that_stops_answering_mid_migration_fails_bounded(monkeypatch):
    """The source QEMU SIGSTOPped mid-migration: its next QMP command times out (1 s here); no QEMU survives."""
    real_call, seen = qmp.call, set()

    async def call(client, proc, cmd, args=None):
        if cmd == "query-migrate" and not seen:
            seen.update(qemu.live_pids())
            os.kill(proc.pid, signal.SIGSTOP)
        return await real_call(client, proc, cmd, args)

    capabilities.probe()
    runner.extra_pages(find_binary(None), process.accelerator(), TRIAL, capabilities.probe())
    monkeypatch.setattr(qmp, "COMMAND_TIMEOUT_S", 1.0)
    monkeypatch.setattr(qmp, "call", call)
    with pytest.raises(QemuFailed, match=r"QMP command query-migrate got no answer in 1\.0 s"):
        qemu.run_trial(TRIAL)
    assert len(seen) == 2 and wait_gone(seen, 10.0) == set() and qemu.live_pids() == set()


def test_a_corrupted_destination_fails_verification(monkeypatch):
    real = runner._compare

    def corrupt_then_compare(guest, dst_map):
        dst_map[5 * 4096 + 7] ^= 0xFF  # one byte of page 5, after QEMU wrote it
        return real(guest, dst_map)

    monkeypatch.setattr(runner, "_compare", corrupt_then_compare)
    r = qemu.run_trial(TRIAL)
    assert r.mismatched_pages == 1 and not r.verified
