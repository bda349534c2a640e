"""Per-thread CPU time from ``/proc/self/task/<tid>/schedstat``, by thread name (as ``perf sched timehist`` shows
them in the seed): the first field of schedstat is the time the thread has run on a CPU, ns."""

from __future__ import annotations

import dataclasses
import os
import re

#: source-side migration threads: their sum is the host CPU total, as the seed sums it
SOURCE_THREADS = re.compile(r"^(live_migration|multifdsend_\d+|dsa_completion)$")
#: destination side
DESTINATION_THREADS = re.compile(r"^multifdrecv_\d+$")
#: the emulated device's engines: device time, run on the host CPU here, never counted as host CPU
DEVICE_THREADS = re.compile(r"^dsa_engine_\d+_\d+$")
#: the guest's own work (the dirtying thread)
GUEST_THREADS = re.compile(r"^guest_dirty$")


@dataclasses.dataclass(frozen=True)
class ThreadSample:
    """One thread at one moment."""

    tid: int
    name: str
    runtime_ns: int


def snapshot(pid: int | str = "self") -> dict[int, ThreadSample]:
    """Every thread of a process (this one by default) now: tid -> (name, CPU runtime ns). Empty if the process
    is gone."""
    task_dir = f"/proc/{pid}/task"
    out = {}
    try:
        entries = os.listdir(task_dir)
    except OSError:
        return out
    for entry in entries:
        try:
            with open(f"{task_dir}/{entry}/comm") as f:
                name = f.read().strip()
            with open(f"{task_dir}/{entry}/schedstat") as f:
                runtime = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended between listdir and open
        out[int(entry)] = ThreadSample(int(entry), name, runtime)
    return out


def cpu_by_name(before: dict[int, ThreadSample], after: dict[int, ThreadSample], pattern: re.Pattern[str]) -> dict:
    """CPU ms each thread whose name matches ``pattern`` used between two snapshots, summed by name.

    A thread alive in both counts its difference; one born in between counts all of its time."""
    out: dict[str, float] = {}
    for tid, s in after.items():
        if not pattern.match(s.name):
            continue
        base = before.get(tid)
        ns = s.runtime_ns - (base.runtime_ns if base is not None and base.name == s.name else 0)
        out[s.name] = out.get(s.name, 0.0) + ns / 1e6
    return out


ACCOUNTED = re.compile(
    "|".join(p.pattern for p in (SOURCE_THREADS, DESTINATION_THREADS, DEVICE_THREADS, GUEST_THREADS))
)


def thread_order(name: str) -> tuple[int, int, str]:
    """Sort key laying threads out like the seed's table: live_migration, senders, dsa_completion, then
    receivers, device engines, the guest."""
    groups = [r"^live_migration$", r"^multifdsend_", r"^dsa_completion$", r"^multifdrecv_", r"^dsa_engine_", r"^guest"]
    for i, g in enumerate(groups):
        if re.match(g, name):
            nums = [int(x) for x in re.findall(r"\d+", name)] or [0]
            return (i, nums[0] * 1000 + (nums[1] if len(nums) > 1 else 0), name)
    return (len(groups), 0, name)
