"""What the tenant simulation is given: tenants (VMs migrating), devices (engines and work queues as accel-config
configures them), the arbitration policy and the offload layer's submission rules; all checked against a hardware
profile before anything runs.

- :class:`Tenant`: one migrating VM (guest size, normal ratio, channels, packet and batch size, start time,
  priority 1-15, group, quota), which becomes a :class:`~dsalab.trial.Trial` for :func:`dsalab.model.predict`;
- :class:`WorkQueue`: size (entries), mode ``shared`` (ENQCMD: refused when full) or ``dedicated`` (MOVDIR64B:
  the submitter keeps within the queue's credits), priority 1-15, threshold (shared: entries user submissions may
  fill) and the tenant group it serves (-1: every tenant);
- :class:`Device`: its engines and work queues;
- :class:`Scenario`: all of it plus the policy (:data:`POLICIES`), ``max_retries`` and the backoff unit.

:func:`scenario` builds the usual cases from a few numbers (the reviewer's: ``scenario(100, "1GiB", 8)``).
Every bad value raises :class:`~dsalab.errors.InvalidArgument` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from dsalab import validate
from dsalab.backends import Backend
from dsalab.model.profile import HardwareProfile
from dsalab.trial import Trial
from dsalab.units import parse_bytes

#: arbitration policies: one shared FIFO queue per device; queues per priority class, served in proportion to their
#: priority; dedicated queues per tenant group; one shared queue with a per-tenant quota of entries
POLICIES = ("fifo", "priority", "dedicated", "quota")
#: work-queue modes, as accel-config names them
MODES = ("shared", "dedicated")
#: how tenants start: all at ``start_ms`` 0, one every ``interval_ms``, or a Poisson process of that mean interval
ARRIVALS = ("together", "staggered", "poisson")
#: a work queue's priority range (accel-config ``priority``; the DSA spec's WQCFG.priority is 1..15)
PRIORITY_RANGE = (1, 15)
#: CPU time of one PAUSE instruction, ns: the offload layer backs off 2**min(attempt, 10) PAUSEs between retries of
#: a full queue (native/offload_submit.c); estimate for Sapphire Rapids (~140 cycles at 2.6-3.8 GHz, Intel's
#: optimization manual, "PAUSE latency" since Skylake)
PAUSE_NS = 40.0
#: retry backoff doubles up to this attempt (native/offload_submit.c BACKOFF_MAX_SHIFT)
BACKOFF_MAX_SHIFT = 10


def _refuse(name: str, value: object, allowed: str) -> None:
    validate.refuse(name, value, allowed)


def _int(name: str, value: object, low: int, high: int, allowed: str | None = None) -> int:
    if not validate.is_int(value) or not low <= int(value) <= high:  # type: ignore[call-overload]
        _refuse(name, value, allowed or f"an int from {low} to {high}")
    return int(value)  # type: ignore[call-overload]


def _num(name: str, value: object, low: float, high: float = math.inf, allowed: str | None = None) -> float:
    ok = validate.is_real(value) and low <= float(value) <= high  # type: ignore[arg-type]
    if not ok:
        _refuse(name, value, allowed or f"a finite number from {low:g}" + (f" to {high:g}" if high < math.inf else ""))
    return float(value)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Tenant:
    """One migrating VM. Sizes in bytes (strings such as ``"1GiB"`` accepted), ``start_ms`` in ms.

    ``priority`` (1-15) picks its queue under the ``priority`` policy; ``group`` its dedicated queue under
    ``dedicated``; ``quota`` the entries it may hold in a shared queue under ``quota`` (0: the scenario's default).
    """

    name: str = "vm0"
    guest_bytes: int = 1 << 30
    normal_ratio: float = 0.0
    channels: int = 2
    packet_bytes: int = 512 << 10
    batch_size: int = 128
    start_ms: float = 0.0
    priority: int = 8
    group: int = 0
    quota: int = 0
    completion: str = "thread"

    def __post_init__(self) -> None:
        where = f"tenant {self.name}"
        if not isinstance(self.name, str) or not self.name:
            _refuse("tenant name", self.name, "a non-empty string")
        if validate.is_int(self.channels) and int(self.channels) < 1:
            _refuse(f"{where} channels", self.channels, "an int from 1 to 64 (a tenant needs a channel)")
        prio = _int(f"{where} priority", self.priority, *PRIORITY_RANGE)
        group = _int(f"{where} group", self.group, 0, 1 << 20)
        quota = _int(f"{where} quota", self.quota, 0, 1 << 20, "an int >= 0 (0: the scenario's default)")
        start = _num(f"{where} start_ms", self.start_ms, 0.0)
        object.__setattr__(self, "priority", prio)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "quota", quota)
        object.__setattr__(self, "start_ms", start)
        trial = self.trial()  # checks the Trial fields (guest, ratio, channels, packet, batch, completion)
        for f in ("guest_bytes", "normal_ratio", "channels", "packet_bytes", "batch_size"):
            object.__setattr__(self, f, getattr(trial, f))

    def trial(self) -> Trial:
        """The tenant as a :class:`~dsalab.trial.Trial` on real DSA (what :func:`dsalab.model.predict` takes)."""
        return Trial(
            guest_bytes=self.guest_bytes,
            normal_ratio=self.normal_ratio,
            channels=self.channels,
            packet_bytes=self.packet_bytes,
            batch_size=self.batch_size,
            completion=self.completion,
            detector=Backend.DSA_HARDWARE.value,
        )


@dataclasses.dataclass(frozen=True)
class WorkQueue:
    """A work queue: ``size`` entries, ``mode`` shared/dedicated, ``priority`` 1-15, ``threshold`` (shared: at most
    this many entries may be filled by submissions; 0 means ``size``), ``group`` (-1: every tenant)."""

    size: int = 128
    mode: str = "shared"
    priority: int = 1
    threshold: int = 0
    group: int = -1

    def __post_init__(self) -> None:
        size = _int("work queue size", self.size, 1, 1 << 16, "an int >= 1 (entries)")
        if self.mode not in MODES:
            _refuse("work queue mode", self.mode, ", ".join(MODES))
        prio = _int("work queue priority", self.priority, *PRIORITY_RANGE)
        thr = _int("work queue threshold", self.threshold, 0, size, f"an int from 0 to the queue's size {size}")
        if thr and self.mode == "dedicated":
            _refuse("work queue threshold", thr, "0 for a dedicated queue (a threshold applies to shared queues)")
        group = _int("work queue group", self.group, -1, 1 << 20, "-1 (every tenant) or a tenant group >= 0")
        for f, v in (("size", size), ("priority", prio), ("threshold", thr or size), ("group", group)):
            object.__setattr__(self, f, v)


@dataclasses.dataclass(frozen=True)
class Device:
    """A DSA device: ``engines`` and its ``work_queues``."""

    engines: int = 4
    work_queues: tuple[WorkQueue, ...] = (WorkQueue(),)

    def __post_init__(self) -> None:
        _int("device engines", self.engines, 1, 1 << 10, "an int >= 1 (a device needs an engine)")
        wqs = tuple(self.work_queues)
        if not wqs or not all(isinstance(q, WorkQueue) for q in wqs):
            _refuse("device work_queues", self.work_queues, "one or more WorkQueue")
        object.__setattr__(self, "work_queues", wqs)

    @property
    def entries(self) -> int:
        """Work-queue entries of every queue together."""
        return sum(q.size for q in self.work_queues)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """Tenants on devices under a policy. ``max_retries``: retries of a full queue before the tenant's CPU does the
    batch (the offload layer's rule); ``pause_ns``: CPU time of one PAUSE of the retry backoff, ns;
    ``quota``: the default per-tenant entries of the ``quota`` policy; ``time_bins``: bins of the utilisation
    series; ``seed``: of the Poisson arrivals and the gaps' jitter; ``jitter``: each packet's gap is drawn
    uniformly within +-``jitter`` of its share (the sum kept), so that equal tenants do not run in lockstep (0:
    constant gaps)."""

    tenants: tuple[Tenant, ...]
    devices: tuple[Device, ...]
    policy: str = "fifo"
    max_retries: int = 32
    pause_ns: float = PAUSE_NS
    quota: int = 1
    time_bins: int = 100
    seed: int = 0
    jitter: float = 0.05

    def __post_init__(self) -> None:
        tenants, devices = tuple(self.tenants), tuple(self.devices)
        if not tenants or not all(isinstance(t, Tenant) for t in tenants):
            _refuse("tenants", self.tenants, "one or more Tenant")
        if not devices or not all(isinstance(d, Device) for d in devices):
            _refuse("devices", self.devices, "one or more Device")
        if len({t.name for t in tenants}) != len(tenants):
            _refuse("tenant names", [t.name for t in tenants], "distinct names")
        if self.policy not in POLICIES:
            _refuse("policy", self.policy, ", ".join(POLICIES))
        object.__setattr__(self, "tenants", tenants)
        object.__setattr__(self, "devices", devices)
        object.__setattr__(self, "max_retries", validate.check("max_retries", self.max_retries))
        object.__setattr__(self, "pause_ns", _num("pause_ns", self.pause_ns, 0.0, 1e6))
        object.__setattr__(self, "quota", _int("quota", self.quota, 1, 1 << 16, "an int >= 1 (entries)"))
        object.__setattr__(self, "time_bins", _int("time_bins", self.time_bins, 1, 100_000))
        object.__setattr__(self, "seed", validate.check("seed", self.seed))
        object.__setattr__(self, "jitter", _num("jitter", self.jitter, 0.0, 0.5))
        if self.policy == "dedicated":
            for t in tenants:
                if not any(q.group in (-1, t.group) for d in devices for q in d.work_queues):
                    _refuse(f"tenant {t.name} group", t.group, "a group that some work queue serves")
        self._check_dedicated()

    def channel_devices(self) -> list[list[int]]:
        """Per tenant, the device of each of its channels: channels are given devices round robin over every
        tenant's channels in turn."""
        out, slot, ndev = [], 0, len(self.devices)
        for t in self.tenants:
            out.append([(slot + c) % ndev for c in range(t.channels)])
            slot += t.channels
        return out

    def queue_index(self, tenant: Tenant, device: int) -> int:
        """The queue ``tenant`` submits to on device ``device``: its group's (dedicated), its priority's
        (priority), else the first queue open to every tenant."""
        queues = self.devices[device].work_queues
        open_ = [i for i, q in enumerate(queues) if q.group in (-1, tenant.group)] or list(range(len(queues)))
        if self.policy == "dedicated":
            own = [i for i in open_ if queues[i].group == tenant.group]
            return (own or open_)[0]
        if self.policy == "priority":
            return min(open_, key=lambda i: (abs(queues[i].priority - tenant.priority), -queues[i].priority))
        return open_[0]

    def _check_dedicated(self) -> None:
        """Refuse a dedicated queue that more than one tenant (process) submits to: idxd lets a single client open
        a dedicated WQ, and MOVDIR64B has no answer, so processes sharing one would overfill it."""
        owners: dict[tuple[int, int], list[str]] = {}
        for t, devs in zip(self.tenants, self.channel_devices(), strict=True):
            for d in sorted(set(devs)):
                qi = self.queue_index(t, d)
                if self.devices[d].work_queues[qi].mode == "dedicated":
                    owners.setdefault((d, qi), []).append(t.name)
        for (d, qi), names in owners.items():
            if len(names) > 1:
                dwqs = sum(q.mode == "dedicated" for dev in self.devices for q in dev.work_queues)
                allowed = (
                    f"1 tenant per dedicated queue (idxd opens a dedicated WQ to a single client; "
                    f"{len(self.devices)} devices here have {dwqs} dedicated queues in all)"
                )
                _refuse(
                    f"tenants on dedicated work queue {qi} of device {d}", f"{len(names)}: {', '.join(names)}", allowed
                )

    def check(self, profile: HardwareProfile) -> None:
        """Refuse what ``profile``'s devices cannot be: more engines, queues or entries than a device has."""
        engines, queues = int(profile["dsa.engines_per_device"]), int(profile["dsa.work_queues"])
        entries, max_batch = int(profile["dsa.wq_entries"]), int(profile["dsa.max_batch"])
        for i, d in enumerate(self.devices):
            if d.engines > engines:
                _refuse(f"device {i} engines", d.engines, f"1 to {engines} ({profile.name}: dsa.engines_per_device)")
            if len(d.work_queues) > queues:
                n = len(d.work_queues)
                _refuse(f"device {i} work queues", n, f"1 to {queues} ({profile.name}: dsa.work_queues)")
            if d.entries > entries:
                allowed = f"at most {entries} entries in all its queues together ({profile.name}: dsa.wq_entries)"
                _refuse(f"device {i} work-queue entries", d.entries, allowed)
        for t in self.tenants:
            if t.batch_size > max_batch:
                _refuse(
                    f"tenant {t.name} batch_size", t.batch_size, f"1 to {max_batch} ({profile.name}: dsa.max_batch)"
                )

    def to_json(self) -> str:
        """The scenario as a JSON string (for a dataset's attributes)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def layout(policy: str, tenants: Sequence[Tenant], entries: int, queues: int, mode: str = "") -> tuple[WorkQueue, ...]:
    """The work queues of one device for ``policy``: ``entries`` shared among at most ``queues`` queues.

    fifo and quota: one queue of every entry; priority: one queue per distinct tenant priority; dedicated: one
    queue per tenant group (groups beyond ``queues`` are refused). ``mode`` overrides the policy's queue mode."""
    if policy in ("fifo", "quota"):
        return (WorkQueue(entries, mode or "shared"),)
    if policy == "priority":
        prios = sorted({t.priority for t in tenants}, reverse=True)
        if len(prios) > queues:
            _refuse("tenant priorities", len(prios), f"at most {queues} distinct priorities (one queue each)")
        size = entries // len(prios)
        return tuple(WorkQueue(size, mode or "shared", p, group=-1) for p in prios)
    groups = sorted({t.group for t in tenants})
    if len(groups) > queues or len(groups) > entries:
        _refuse("tenant groups", len(groups), f"at most {min(queues, entries)} groups (one dedicated queue each)")
    size = entries // len(groups)
    return tuple(WorkQueue(size, mode or "dedicated", 1, group=g) for g in groups)


def scenario(
    tenants: int,
    guest: int | str,
    devices: int,
    *,
    profile: HardwareProfile,
    policy: str = "fifo",
    normal_ratio: float = 0.0,
    channels: int = 2,
    packet: int | str = 512 << 10,
    batch_size: int = 128,
    arrival: str = "together",
    interval_ms: float = 0.0,
    priorities: Sequence[int] = (8,),
    groups: int = 0,
    wq_size: int = 0,
    wq_mode: str = "",
    engines: int = 0,
    **options: Any,
) -> Scenario:
    """The usual scenario: ``tenants`` equal VMs of ``guest`` bytes on ``devices`` devices of ``profile``.

    ``arrival``: together, staggered (one every ``interval_ms``) or poisson (mean interval ``interval_ms``);
    ``priorities``: given to tenants in turn; ``groups``: tenant groups for ``dedicated`` (0: one per tenant; a
    dedicated queue serves one tenant, as idxd allows); ``wq_size``: entries per device (0: the profile's
    ``dsa.wq_entries``); ``wq_mode``: override the policy's queue mode; ``engines``: per device (0: the
    profile's). ``options`` go to :class:`Scenario` (``max_retries``, ``pause_ns``, ``quota``, ``time_bins``,
    ``seed``, ``jitter``)."""
    import numpy as np

    count = _int("tenants", tenants, 1, 100_000)
    ndev = _int("devices", devices, 1, 1024)
    if arrival not in ARRIVALS:
        _refuse("arrival", arrival, ", ".join(ARRIVALS))
    interval = _num("interval_ms", interval_ms, 0.0)
    if policy not in POLICIES:
        _refuse("policy", policy, ", ".join(POLICIES))
    if wq_mode and wq_mode not in MODES:
        _refuse("wq_mode", wq_mode, ", ".join(MODES) + " (or empty: the policy's)")
    queues = int(profile["dsa.work_queues"])
    entries = _int("wq_size", wq_size, 0, 1 << 16) or int(profile["dsa.wq_entries"])
    ngroups = _int("groups", groups, 0, 1 << 20) or (count if policy == "dedicated" else min(queues, count, entries))
    prios = list(priorities) or [8]
    starts = [0.0] * count
    if arrival == "staggered":
        starts = [i * interval for i in range(count)]
    elif arrival == "poisson":
        gaps = np.random.default_rng(options.get("seed", 0)).exponential(interval, count)
        starts = [float(x) for x in np.cumsum(gaps) - gaps[0]]
    guest_bytes = parse_bytes(guest, "guest")
    vms = tuple(
        Tenant(
            name=f"vm{i}",
            guest_bytes=guest_bytes,
            normal_ratio=normal_ratio,
            channels=channels,
            packet_bytes=packet,
            batch_size=batch_size,
            start_ms=starts[i],
            priority=prios[i % len(prios)],
            group=i % ngroups,
        )
        for i in range(count)
    )
    engines = _int("engines", engines, 0, 1 << 10) or int(profile["dsa.engines_per_device"])
    if policy == "dedicated":  # each device: a dedicated queue per tenant group whose channels it serves
        devs = []
        for d in range(ndev):
            here = [t for t, k in zip(vms, range(count), strict=True) if any((k * channels + c) % ndev == d
                                                                                for c in range(channels))]  # fmt: skip
            if len({t.group for t in here}) > queues:
                allowed = f"at most {queues} ({profile.name}: dsa.work_queues; one dedicated queue per tenant group)"
                _refuse(f"tenant groups on device {d}", len({t.group for t in here}), allowed)
            devs.append(
                Device(engines, layout(policy, here, entries, queues, wq_mode) if here else (WorkQueue(entries),))
            )
        out = Scenario(vms, tuple(devs), policy, **options)
    else:
        out = Scenario(vms, tuple(Device(engines, layout(policy, vms, entries, queues, wq_mode)) for _ in range(ndev)),
                       policy, **options)  # fmt: skip
    out.check(profile)
    return out
