"""Thread names and their roles (a leaf module: imports nothing of dsalab).

Threads are named as in QEMU so tables line up with the seed: ``live_migration``, ``multifdsend_<i>``,
``dsa_completion`` (source side, the host CPU total), ``multifdrecv_<i>`` (destination), ``dsa_engine_<d>_<e>``
(the emulated device's engines: device time, run on the host, never counted as host CPU) and ``guest_dirty``
(the guest's own work). :func:`cpu_sums` turns a per-thread CPU map into those sums for every backend.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping


class Role(enum.StrEnum):
    """What a thread's CPU time counts as."""

    SOURCE = "source"
    DESTINATION = "destination"
    DEVICE = "device"
    GUEST = "guest"


#: source-side migration threads: their sum is the host CPU total, as the seed sums it
SOURCE_THREADS = re.compile(r"^(live_migration|multifdsend_\d+|dsa_completion)$")
#: destination side (``incoming_main``: a QEMU destination's main thread, which loads the main channel)
DESTINATION_THREADS = re.compile(r"^(multifdrecv_\d+|incoming_main)$")
#: the emulated device's engines: device time, run on the host CPU here, never counted as host CPU
DEVICE_THREADS = re.compile(r"^dsa_engine_\d+_\d+$")
#: the guest's own work (the dirtying thread)
GUEST_THREADS = re.compile(r"^guest_dirty$")

#: role -> the names of its threads
ROLES: dict[Role, re.Pattern[str]] = {
    Role.SOURCE: SOURCE_THREADS,
    Role.DESTINATION: DESTINATION_THREADS,
    Role.DEVICE: DEVICE_THREADS,
    Role.GUEST: GUEST_THREADS,
}


def role(name: str) -> Role | None:
    """The role of thread ``name``, or None for a thread that is not accounted."""
    for r, pattern in ROLES.items():
        if pattern.match(name):
            return r
    return None


@dataclasses.dataclass(frozen=True)
class CpuSums:
    """A per-thread CPU map summed by role, ms."""

    host_cpu_ms: float
    destination_cpu_ms: float
    device_cpu_ms: float
    guest_cpu_ms: float


def cpu_sums(cpu: Mapping[str, float]) -> CpuSums:
    """Sum a map thread name -> CPU ms by :class:`Role` (host = source side, as the seed sums it), ms."""
    sums = dict.fromkeys(Role, 0.0)
    for name, ms in cpu.items():
        r = role(name)
        if r is not None:
            sums[r] += ms
    return CpuSums(sums[Role.SOURCE], sums[Role.DESTINATION], sums[Role.DEVICE], sums[Role.GUEST])


def split_threads(cpu: Mapping[str, float]) -> tuple[float, float]:
    """(source-side total, destination total) of a per-thread CPU map, ms."""
    s = cpu_sums(cpu)
    return s.host_cpu_ms, s.destination_cpu_ms


_ORDER = [r"^live_migration$", r"^multifdsend_", r"^dsa_completion$", r"^multifdrecv_", r"^dsa_engine_", r"^guest"]


def thread_order(name: str) -> tuple[int, int, str]:
    """Sort key laying threads out like the seed's table: live_migration, senders, dsa_completion, then
    receivers, device engines, the guest."""
    for i, g in enumerate(_ORDER):
        if re.match(g, name):
            nums = [int(x) for x in re.findall(r"\d+", name)] or [0]
            return (i, nums[0] * 1000 + (nums[1] if len(nums) > 1 else 0), name)
    return (len(_ORDER), 0, name)
