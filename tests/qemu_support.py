"""Helpers of the QEMU test modules: processes in /proc (a zombie counts as running: it was not reaped) and the
autouse fixture :func:`no_qemu_outlives_the_test`, which fails a test when a QEMU child of this process that
was not there before it is still there after it (and kills it, so it cannot leak into the next test)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import time

import pytest

from dsalab import qemu
from dsalab.trial import Trial

#: this machine's QEMU version, or None
VERSION = qemu.qemu_version()
#: the marks of a module whose tests start QEMUs: skipped without QEMU >= 9.0, each test bounded
QEMU_9_MODULE = [
    pytest.mark.skipif(
        VERSION is None or VERSION < (9, 0, 0), reason=f"QEMU >= 9.0 not installed (qemu-system-x86_64: {VERSION})"
    ),
    pytest.mark.timeout(300),
]
#: a trial small enough that a QEMU pair migrates it in well under a second
SMALL_TRIAL = Trial(guest_bytes="16MiB", normal_ratio=0.5, detector="cpu-native", seed=1)

#: seconds a test's QEMUs have to be gone after it ends
GONE_TIMEOUT_S = 15.0


def gone(pid: int) -> bool:
    """True when no process ``pid`` runs (a zombie counts as running: it was not reaped)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return not stat.split(") ", 1)[1].startswith(("R", "S", "D", "Z", "T", "t"))


def wait_gone(pids, timeout_s: float = GONE_TIMEOUT_S) -> set[int]:
    """Wait (bounded) until every PID of ``pids`` is gone; the ones still there."""
    deadline = time.monotonic() + timeout_s
    left = {p for p in pids if not gone(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if not gone(p)}
    return left


def qemu_children(ppid: int) -> set[int]:
    """PIDs of the ``qemu-system*`` processes whose parent is ``ppid``."""
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


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces ("" when it is gone)."""
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_all(pids) -> None:
    """SIGKILL every PID of ``pids`` that still runs."""
    for pid in pids:
        if not gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def no_qemu_outlives_the_test():
    """Fail the test when a QEMU it started (a child of this process) outlives it."""
    before = qemu_children(os.getpid())
    yield
    left = wait_gone(qemu_children(os.getpid()) - before)
    if left:
        kill_all(left)
        pytest.fail(f"QEMU processes {sorted(left)} outlived the test (killed now)")
