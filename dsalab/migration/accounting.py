"""Per-thread CPU time from ``/proc/self/task/<tid>/schedstat``, by thread name (as ``perf sched timehist`` shows
them in the seed): the first field of schedstat is the time the thread has run on a CPU, ns.

Thread names and roles live in the leaf module :mod:`dsalab.threads`; they are re-exported here for old imports.
"""

from __future__ import annotations

import dataclasses
import os
import re

from dsalab.threads import (  # noqa: F401 (re-exported for old imports)
    DESTINATION_THREADS,
    DEVICE_THREADS,
    GUEST_THREADS,
    ROLES,
    SOURCE_THREADS,
    cpu_sums,
    thread_order,
)


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
