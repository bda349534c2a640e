"""The emulated device's ``priority`` setting: engine threads at idle scheduling priority (SCHED_IDLE, nice 19
where that is refused: the host's threads first) or high (nice -10: the device's work first, refused without
CAP_SYS_NICE); results unchanged."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from dsalab import device_spec
from dsalab.devices import open_device
from dsalab.errors import DsalabError
from dsalab.migration import Trial, run_trial
from dsalab.offload import Offloader


def _engine_tids(device) -> list[int]:
    prefix = f"dsa_engine_{device.id}_"
    tids = []
    for entry in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{entry}/comm") as f:
                if f.read().strip().startswith(prefix):
                    tids.append(int(entry))
        except OSError:
            continue
    return tids


def _is_idle(tid: int) -> bool:
    return os.sched_getscheduler(tid) == os.SCHED_IDLE or os.getpriority(os.PRIO_PROCESS, tid) == 19


def test_priority_key_parses_and_bad_values_are_named():
    assert device_spec.parse_emu_spec("emu")["priority"] == "normal"
    assert device_spec.parse_emu_spec("emu:priority=idle")["priority"] == "idle"
    assert device_spec.parse_emu_spec("emu:priority=high")["priority"] == "high"
    with pytest.raises(DsalabError, match=r"priority='low' is not allowed; allowed: normal, idle, high"):
        device_spec.parse_emu_spec("emu:priority=low")
    with pytest.raises(DsalabError, match=r"mode='both' is not allowed; allowed: shared, dedicated"):
        device_spec.parse_emu_spec("emu:mode=both")
    with pytest.raises(DsalabError, match="priority"):
        Trial(detector="dsa-emulated", devices=("emu:priority=2",))


@pytest.mark.timeout(60)
def test_idle_engines_run_at_idle_priority_and_normal_ones_do_not():
    with open_device("emu:engines=3,priority=idle") as idle, open_device("emu:engines=2") as normal:
        idle_tids, normal_tids = _engine_tids(idle), _engine_tids(normal)
        assert len(idle_tids) == 3 and len(normal_tids) == 2
        assert all(_is_idle(t) for t in idle_tids)
        assert not any(_is_idle(t) for t in normal_tids)
        assert os.sched_getscheduler(0) != os.SCHED_IDLE  # only the engines, never the caller
        buf = np.zeros(4096 * 600, dtype=np.uint8)
        buf[4096 * np.array([3, 129, 599]) + 7] = 1
        with Offloader([idle], batch_size=64, timeout_ms=20_000) as off:
            zero = off.find_zero_pages(buf)
            stats = off.stats()
        assert not zero[[3, 129, 599]].any() and zero.sum() == 597
        assert stats["pages_offloaded"] == 600  # the idle engines did the work, nothing fell back


@pytest.mark.timeout(300)
def test_a_migration_on_idle_engines_is_verified_and_offloaded():
    trial = Trial(guest_bytes="16MiB", channels=2, detector="dsa-emulated", devices=("emu:priority=idle",))
    r = run_trial(trial)
    assert r.verified and r.pages_offloaded > 0 and r.fallback_pages == 0


def _may_raise_priority() -> bool:
    try:
        old = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, old - 1)
        os.setpriority(os.PRIO_PROCESS, 0, old)
        return True
    except PermissionError:
        return False


@pytest.mark.timeout(60)
def test_high_priority_engines_or_a_clear_refusal():
    if not _may_raise_priority():
        with pytest.raises(DsalabError):
            open_device("emu:engines=2,priority=high")
        return
    with open_device("emu:engines=2,priority=high") as dev:
        tids = _engine_tids(dev)
        assert len(tids) == 2
        assert all(os.getpriority(os.PRIO_PROCESS, t) == -10 for t in tids)
        assert os.getpriority(os.PRIO_PROCESS, 0) != -10  # only the engines


def _unprivileged() -> list[str] | None:
    """A command prefix that runs a process without CAP_SYS_NICE (a user namespace: root inside, not outside), or
    None where this machine cannot make one."""
    try:
        r = subprocess.run(
            ["unshare", "--user", "--map-root-user", sys.executable, "-c", "import os; os.setpriority(0, 0, -10)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return ["unshare", "--user", "--map-root-user"] if "PermissionError" in r.stderr else None


@pytest.mark.timeout(180)
def test_high_priority_is_refused_without_the_privilege_and_nothing_is_left_running():
    """Without CAP_SYS_NICE the device does not open at normal priority pretending to be high: it fails, names
    the reason, and its engine threads are gone."""
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("no user namespace here to run without CAP_SYS_NICE")
    script = (
        "import os\n"
        "from dsalab.devices import open_device\n"
        "from dsalab.errors import DsalabError\n"
        "try:\n"
        "    open_device('emu:engines=2,priority=high')\n"
        "except DsalabError as exc:\n"
        "    names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]\n"
        "    print('refused:', exc, [n for n in names if n.startswith('dsa_engine')])\n"
        "else:\n"
        "    print('opened')\n"
    )
    r = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("refused:") and r.stdout.rstrip().endswith("[]"), r.stdout
    assert "priority=high needs CAP_SYS_NICE" in r.stdout and "priority=normal or priority=idle" in r.stdout
