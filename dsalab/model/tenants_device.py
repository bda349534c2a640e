"""The devices of the tenant simulation: work queues (shared: an entry freed when an engine takes the descriptor;
dedicated: a credit freed when the submitter sees the completion; per-tenant quotas), engines sharing one
throughput clock (the emulator's timing model, ``native/emu.c``), and stride-scheduled arbitration between a
device's queues (each served in proportion to its priority; one queue: FIFO). Used by
:mod:`dsalab.model.tenants_sim`, which owns the simpy environment (``sim.env``) and the device timing (``sim.page_ns``,
``sim.latency``)."""

from __future__ import annotations

import collections
import heapq


class QueueState:
    """One work queue of a device in the simulation: waiting batches, credits held, arbitration pass."""

    __slots__ = ("cfg", "held", "passed", "quota_used", "stride", "waiting")

    def __init__(self, cfg):
        self.cfg = cfg
        self.waiting: collections.deque = collections.deque()
        self.held = 0  # dedicated: credits taken (until the submitter sees the completion)
        self.passed = 0.0
        self.stride = 1.0 / cfg.priority
        self.quota_used: dict[int, int] = collections.defaultdict(int)


class Packet:
    """A packet of one sender: how many of its batches are still on a device, and the event its sender waits on."""

    __slots__ = ("event", "pending")

    def __init__(self):
        self.pending = 0
        self.event = None


class Batch:
    """One batch descriptor: its packet, tenant, pages, first submission time (ns) and queue."""

    __slots__ = ("packet", "pages", "queue", "state", "submitted")

    def __init__(self, packet, state, pages, submitted, queue):
        self.packet, self.state, self.pages, self.submitted, self.queue = packet, state, pages, submitted, queue


class TenantState:
    """What one tenant did so far: delays, submissions, fallbacks, retries (counts; times in ns)."""

    __slots__ = (
        "batches",
        "delays",
        "device_pages",
        "fallback_at",
        "fallback_batches",
        "fallback_pages",
        "index",
        "out_ns",
        "out_since",
        "outstanding",
        "retries",
        "retry_ns",
        "submits",
        "tenant",
    )

    def __init__(self, index, tenant):
        self.index, self.tenant = index, tenant
        self.delays: list[float] = []
        self.submits: list[float] = []
        self.fallback_at: list[float] = []
        self.device_pages = self.fallback_pages = self.fallback_batches = self.retries = self.batches = 0
        self.retry_ns = 0.0
        # batches accepted by a device and not yet complete, since when (ns) some are, and the union of those
        # intervals so far (ns): what a busy-polling dsa_completion thread spins for
        self.outstanding = 0
        self.out_since = self.out_ns = 0.0

    def accepted(self, now: float) -> None:
        """A device accepted one of this tenant's batches at ``now`` (ns)."""
        if self.outstanding == 0:
            self.out_since = now
        self.outstanding += 1

    def completed(self, now: float) -> None:
        """One of this tenant's batches completed at ``now`` (ns)."""
        self.outstanding -= 1
        if self.outstanding == 0:
            self.out_ns += now - self.out_since


class DeviceState:
    """One device: its queues, free engines, the throughput clock, and what it did."""

    def __init__(self, sim, cfg):
        self.sim = sim
        self.queues = [QueueState(q) for q in cfg.work_queues]
        self.free = cfg.engines
        self.done: list[float] = []  # completion times of the descriptors on engines (a heap)
        self.clock = 0.0
        self.starts: list[float] = []
        self.busies: list[float] = []
        self.pages = 0
        self.global_pass = 0.0  # the pass of the queue served last (stride scheduling's global pass)

    def offer(self, q: QueueState, batch: Batch, quota: int) -> bool:
        """Submit ``batch`` to queue ``q``: False when refused (full, no credit, over quota)."""
        cfg = q.cfg
        if cfg.mode == "dedicated":
            if q.held >= cfg.size:
                return False
            q.held += 1
        elif len(q.waiting) >= cfg.threshold:
            return False
        if quota and q.quota_used[batch.state.index] >= quota:
            if cfg.mode == "dedicated":
                q.held -= 1
            return False
        batch.state.accepted(self.sim.env.now)
        if self.free and not any(x.waiting for x in self.queues):
            self.free -= 1
            self._start(batch)
        else:
            if not q.waiting:  # the queue becomes active: it joins at the global pass, not at a stale one
                q.passed = max(q.passed, self.global_pass)
            q.waiting.append(batch)
            if quota:
                q.quota_used[batch.state.index] += 1
        return True

    def _start(self, batch: Batch) -> None:
        sim = self.sim
        now = sim.env.now
        start = self.clock if self.clock > now else now
        busy = batch.pages * sim.page_ns
        self.clock = start + busy
        self.starts.append(start)
        self.busies.append(busy)
        self.pages += batch.pages
        batch.state.delays.append(start - batch.submitted)
        batch.state.submits.append(batch.submitted)
        heapq.heappush(self.done, start + busy + sim.latency)
        ev = sim.env.timeout(start + busy + sim.latency - now)
        sim.events += 1
        ev.callbacks.append(lambda _e, b=batch: self._finish(b))

    def next_change(self) -> float:
        """When an engine next finishes (and frees a queue entry or credit), ns; now when none is busy."""
        return self.done[0] if self.done else self.sim.env.now

    def _finish(self, batch: Batch) -> None:
        heapq.heappop(self.done)
        if batch.queue.cfg.mode == "dedicated":
            batch.queue.held -= 1
        batch.state.completed(self.sim.env.now)
        packet = batch.packet
        packet.pending -= 1
        if packet.pending == 0 and packet.event is not None:
            packet.event.succeed()
            self.sim.events += 1
        nxt = self._pick()
        if nxt is None:
            self.free += 1
        else:
            self._start(nxt)

    def _pick(self) -> Batch | None:
        best = None
        for q in self.queues:
            if q.waiting and (best is None or q.passed < best.passed):
                best = q
        if best is None:
            return None
        self.global_pass = best.passed
        best.passed += best.stride
        batch = best.waiting.popleft()
        if best.quota_used:
            best.quota_used[batch.state.index] -= 1
        return batch


def idle_wait(batches: list[int], engines: int, page_ns: float, latency: float) -> float:
    """Time from submitting ``batches`` (pages each) at once to an idle device until the last completes, ns."""
    free = [0.0] * engines
    clock = done = 0.0
    for pages in batches:
        at = heapq.heappop(free)
        clock = max(clock, at) + pages * page_ns
        end = clock + latency
        heapq.heappush(free, end)
        done = max(done, end)
    return done


def split(n: int, size: int) -> list[int]:
    """``n`` pages as batches of at most ``size`` pages."""
    return [size] * (n // size) + ([n % size] if n % size else [])
