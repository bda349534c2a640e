"""The discrete-event simulation of many tenants on few DSA devices (simpy), at batch granularity.

Each tenant's round comes from :func:`dsalab.model.predict.rounds` (its time and CPU alone on the host); the
simulation adds what sharing the devices costs. Each sender thread (``multifdsend_<c>``, one per channel) sends
its packets one after another: the rest of the pipeline's work per packet (a gap chosen so that a tenant alone on
idle devices takes exactly the predicted round), then the packet's batches, submitted to the channel's device
(channels are given devices round robin over all tenants) as the offload layer does: a refused submission (a full
shared queue, no credit left on a dedicated one, a tenant over its quota) is retried ``max_retries`` times after
a backoff of ``2**min(attempt, 10)`` PAUSEs plus one submission's CPU, then the tenant's own sender checks the
batch on the CPU; then it waits for its accepted batches.

A device is the emulator's (``native/emu.c``) and the profile's: ``engines`` take descriptors from its queues
(arbitration below); the device's throughput is one clock shared by its engines (a batch of ``n`` pages keeps it
busy ``n x page / throughput(page)``), and each descriptor completes the fixed ``completion_latency`` after its
bytes. A shared queue's entry is freed when an engine takes the descriptor; a dedicated queue's credit when the
submitter sees the completion. Arbitration between a device's queues is stride scheduling: each queue is served in
proportion to its priority (one queue: FIFO).

Outputs per tenant: migration time and host CPU (predicted + what contention added), queueing delay of every
batch a device took (from its first submission attempt to the moment the device clock starts it), retries,
fallback pages and their CPU; per device: busy intervals (utilisation over time).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dsalab.errors import InvalidArgument
from dsalab.model.predict import predict, rounds
from dsalab.model.profile import CPU_DETECTORS, SUBMIT_PATHS, HardwareProfile, load
from dsalab.model.tenants_config import BACKOFF_MAX_SHIFT, Scenario, Tenant
from dsalab.model.tenants_device import Batch, DeviceState, Packet, QueueState, TenantState, idle_wait, split


@dataclasses.dataclass
class TenantOutcome:
    """What one tenant saw (times in ns, CPU in ns; ``predicted`` is its :class:`~dsalab.result.TrialResult`
    alone on the host)."""

    tenant: Tenant
    predicted: Any
    time_ns: float
    host_cpu_ns: float
    pages: int
    device_pages: int
    fallback_pages: int
    fallback_cpu_ns: float
    retries: int
    retry_cpu_ns: float
    wait_cpu_ns: float
    batches: int
    fallback_batches: int
    queue_delays_ns: np.ndarray
    channel_extra_ns: np.ndarray
    submitted_ns: np.ndarray  # when each batch of queue_delays_ns was first submitted
    fallback_at_ns: np.ndarray  # when each batch checked on the CPU was given up
    end_ns: float  # when its last sender finished


@dataclasses.dataclass
class Outcome:
    """The simulation's result: per tenant, per device (busy intervals), the end time and the events run."""

    scenario: Scenario
    profile: HardwareProfile
    tenants: list[TenantOutcome]
    device_starts_ns: list[np.ndarray]
    device_busy_ns: list[np.ndarray]
    device_pages: list[int]
    end_ns: float
    events: int
    fallback: str
    alone_events: int = 0  # events of the tenants' runs alone (one per distinct tenant)


class _Sim:
    def __init__(self, scenario: Scenario, profile: HardwareProfile):
        import simpy

        self.s, self.p = scenario, profile
        self.env = simpy.Environment()
        self.events = 0
        page = scenario.tenants[0].trial().page_size
        self.page_ns = page / profile.throughput.at(page) * 1e9
        self.latency = profile["dsa.completion_latency"]
        self.submit_ns = profile[f"dsa.{SUBMIT_PATHS[str(profile.flag('dsa.submit_path'))]}"]
        self.devices = [DeviceState(self, d) for d in scenario.devices]
        # backoff[a]: time from the first attempt until retry a (each retry: a submission and 2**min(a, 10) PAUSEs);
        # a dedicated queue is submitted to with MOVDIR64B
        self.backoff = self._backoff(self.submit_ns)
        self.backoff_dwq = self._backoff(profile["dsa.submit_movdir64b"])
        self.channel_device: dict[tuple[int, int], int] = {}
        self.states: list[TenantState] = []
        self.durations: dict[tuple[int, int], float] = {}
        self.polled: dict[tuple[int, int], float] = collections.defaultdict(float)

    def _backoff(self, submit_ns: float) -> list[float]:
        out = [0.0]
        for a in range(self.s.max_retries):
            out.append(out[-1] + submit_ns + self.s.pause_ns * (1 << min(a, BACKOFF_MAX_SHIFT)))
        return out

    def skip(self, b: list[float], attempt: int, until: float) -> tuple[int, float]:
        """Retries from ``attempt`` on until the first one at least ``until`` ns from now (at least one, at most
        the retries left) on the backoff schedule ``b``: their number and their time, ns."""
        last = self.s.max_retries
        k = bisect.bisect_left(b, b[attempt] + until, attempt + 1, last + 1)
        k = min(max(k, attempt + 1), last)
        return k - attempt, b[k] - b[attempt]

    def queue_for(self, tenant: Tenant, device: int) -> QueueState:
        """The queue a tenant submits to on device ``device`` (:meth:`Scenario.queue_index`)."""
        return self.devices[device].queues[self.s.queue_index(tenant, device)]

    def channel(self, state: TenantState, c: int, packets: list[list[int]], gaps: Any, cpu_page_ns: float):
        """One sender thread: ``gaps`` (ns) before each of its ``packets`` (a list of batch sizes each)."""
        env, s = self.env, self.s
        tenant = state.tenant
        dev = self.devices[self.channel_device[state.index, c]]
        q = self.queue_for(tenant, self.channel_device[state.index, c])
        backoff = self.backoff_dwq if q.cfg.mode == "dedicated" else self.backoff
        quota = (tenant.quota or s.quota) if s.policy == "quota" else 0
        start = tenant.start_ms * 1e6
        if start > 0:
            self.events += 1
            yield env.timeout(start)
        for batches, gap in zip(packets, gaps, strict=True):
            if gap > 0:
                self.events += 1
                yield env.timeout(gap)
            packet = Packet()
            cpu = 0.0
            for pages in batches:
                state.batches += 1
                batch = Batch(packet, state, pages, env.now, q)
                packet.pending += 1
                attempt = 0
                while not dev.offer(q, batch, quota):
                    if attempt >= s.max_retries:
                        packet.pending -= 1
                        state.fallback_pages += pages
                        state.fallback_batches += 1
                        state.fallback_at.append(env.now)
                        cpu += pages * cpu_page_ns
                        break
                    # a refused submission can only succeed once an engine finishes (entries and credits are
                    # freed then): the retries before that all fail, so they are taken in one step
                    k, pause = self.skip(backoff, attempt, dev.next_change() - env.now)
                    state.retries += k
                    state.retry_ns += pause  # on the CPU: a submission, then PAUSEs, per retry
                    self.events += 1
                    yield env.timeout(pause)
                    attempt += k
                else:
                    state.device_pages += pages
            if cpu > 0:  # the CPU checks the refused batches while the device works on the rest
                self.events += 1
                yield env.timeout(cpu)
            if packet.pending:
                packet.event = env.event()
                t0 = env.now
                yield packet.event
                self.polled[state.index, c] += env.now - t0  # completion="poll": this sender spins meanwhile
        self.durations[state.index, c] = env.now - start


def _cpu_page_ns(profile: HardwareProfile, trial, detector: str) -> float:
    """CPU to zero-check one page of ``trial``'s mix on the CPU (the fallback), ns."""
    zc = f"host.zero_check.{detector}"
    scale = trial.page_size / profile["host.page_bytes"]
    zero = 1.0 - trial.normal_ratio
    return (zero * profile[f"{zc}.zero_page"] + trial.normal_ratio * profile[f"{zc}.normal_page"]) * scale


def simulate(
    scenario: Scenario,
    profile: HardwareProfile | str,
    *,
    fallback: str = "",
    gaps: Mapping[str, float | Sequence[float]] | None = None,
) -> Outcome:
    """Run ``scenario`` on ``profile``'s hardware (its devices' throughput curve and latency, its CPU costs).

    ``fallback``: the CPU detector whose costs price the batches the CPU checks (default: cpu-native where the
    profile has it, else cpu-numba). ``gaps``: tenant name -> ns each sender spends between packets, instead of
    what the model's round leaves (a measured sender's own time, to check the simulation against the emulator):
    one number, or samples drawn at random for each packet (seeded by the scenario's ``seed``), so that equal
    tenants do not run in lockstep.
    Times in the outcome are ns."""
    prof = load(profile)
    scenario.check(prof)
    have = prof.detectors
    cpu = [d for d in reversed(CPU_DETECTORS) if d in have]
    fallback = fallback or (cpu[0] if cpu else "")
    if fallback not in cpu:
        allowed = f"{', '.join(cpu)} (the CPU detectors {prof.name} has costs for)"
        raise InvalidArgument(f"fallback={fallback!r} is not allowed; allowed: {allowed}")
    ndev = len(scenario.devices)
    local = prof.replace(dsa__devices=ndev) if prof["dsa.devices"] != ndev else prof
    sim, plans = _run(scenario, local, fallback, gaps, None)
    # each tenant alone on the same devices and queues, with the same gaps: what sharing adds is measured against
    # it, so a tenant's own channels contending for a device (which predict already counts) are not added twice
    alone_runs: dict[Any, tuple[_Sim, list]] = {}
    mapping = scenario.channel_devices()
    outcomes = []
    for state, plan, devs in zip(sim.states, plans, mapping, strict=True):
        series = plan[1]
        rot = devs[0] if devs else 0
        t0 = dataclasses.replace(state.tenant, name="alone", start_ms=0.0)
        devices = scenario.devices[rot:] + scenario.devices[:rot]
        key = (t0, devices, tuple(x.tobytes() for x in series))
        if key not in alone_runs:
            alone = dataclasses.replace(scenario, tenants=(t0,), devices=devices)
            alone_runs[key] = _run(alone, local, fallback, None, [series])
        asim, _ = alone_runs[key]
        a = asim.states[0]
        outcomes.append(_outcome(sim, state, plan, asim, a, local))
    return Outcome(
        scenario=scenario,
        profile=local,
        tenants=outcomes,
        device_starts_ns=[np.asarray(d.starts) for d in sim.devices],
        device_busy_ns=[np.asarray(d.busies) for d in sim.devices],
        device_pages=[d.pages for d in sim.devices],
        end_ns=float(sim.env.now),
        events=sim.events,
        fallback=fallback,
        alone_events=sum(r[0].events for r in alone_runs.values()),
    )


def _run(scenario: Scenario, local: HardwareProfile, fallback: str, gaps, given_series) -> tuple[_Sim, list]:
    """Build and run one simulation; per tenant (its trial, its gap series per channel, CPU per fallback page,
    the profile its prediction uses)."""
    sim = _Sim(scenario, local)
    engines = [d.engines for d in scenario.devices]
    plans = []
    for i, (tenant, devs) in enumerate(zip(scenario.tenants, scenario.channel_devices(), strict=True)):
        trial = tenant.trial()
        state = TenantState(i, tenant)
        sim.states.append(state)
        dedicated = all(
            scenario.devices[d].work_queues[scenario.queue_index(tenant, d)].mode == "dedicated" for d in set(devs)
        )
        tprof = local.replace(dsa__submit_path="movdir64b") if dedicated else local
        first = rounds(trial, tprof)[0][0]
        n = first.pages
        per_channel: list[list[list[int]]] = [[] for _ in range(trial.channels)]
        for k, start in enumerate(range(0, n, trial.packet_pages)):
            size = min(trial.packet_pages, n - start)
            per_channel[k % trial.channels].append(split(size, trial.batch_size))
        if given_series is not None:
            series = given_series[i]
        else:
            idle = []
            for c in range(trial.channels):
                e = engines[devs[c]]
                idle.append(sum(idle_wait(b, e, sim.page_ns, sim.latency) for b in per_channel[c]))
            busiest = max(range(trial.channels), key=lambda c: len(per_channel[c]))
            gap = max(0.0, (first.time_ns - idle[busiest]) / max(1, len(per_channel[busiest])))
            given = gaps.get(tenant.name) if gaps else None
            rng = np.random.default_rng([scenario.seed, i])
            series = []
            for c in range(trial.channels):
                if given is None and scenario.jitter > 0 and len(per_channel[c]) > 1:
                    x = 1.0 + rng.uniform(-scenario.jitter, scenario.jitter, len(per_channel[c]))
                    series.append(gap * x * (len(x) / x.sum()))  # the channel's total gap kept
                elif given is None or np.ndim(given) == 0:
                    value = gap if given is None else float(given)  # type: ignore[arg-type]
                    series.append(np.full(len(per_channel[c]), value))
                else:
                    series.append(rng.choice(np.asarray(given, dtype=np.float64), len(per_channel[c])))
        for c in range(trial.channels):
            sim.channel_device[i, c] = devs[c]
        cpu_page = _cpu_page_ns(local, trial, fallback)
        for c in range(trial.channels):
            sim.env.process(sim.channel(state, c, per_channel[c], series[c], cpu_page))
        plans.append((trial, series, cpu_page, tprof))
    sim.env.run()
    return sim, plans


def _outcome(sim: _Sim, state: TenantState, plan, asim: _Sim, a: TenantState, local: HardwareProfile):
    """One tenant's outcome: its prediction alone plus what it saw beyond its run alone (``asim``, ``a``)."""
    trial, _series, cpu_page, tprof = plan
    predicted = predict(trial, tprof)
    channels = range(trial.channels)
    dur = np.array([sim.durations[state.index, c] for c in channels])
    dur_alone = np.array([asim.durations[0, c] for c in channels])
    extra = dur - dur_alone
    fb_cpu = (state.fallback_pages - a.fallback_pages) * cpu_page
    retry_cpu = state.retry_ns - a.retry_ns
    if trial.completion == "thread":  # the dsa_completion thread spins while any batch is outstanding
        wait_cpu = state.out_ns - a.out_ns if local.flag("dsa.busy_poll") else 0.0
    else:  # each sender polls while it waits for its own batches
        wait_cpu = sum(sim.polled[state.index, c] - asim.polled[0, c] for c in channels)
    return TenantOutcome(
        tenant=state.tenant,
        predicted=predicted,
        time_ns=predicted.total_time_ms * 1e6 + float(dur.max() - dur_alone.max()),
        host_cpu_ns=predicted.host_cpu_ms * 1e6 + fb_cpu + retry_cpu + wait_cpu,
        pages=state.device_pages + state.fallback_pages,
        device_pages=state.device_pages,
        fallback_pages=state.fallback_pages,
        fallback_cpu_ns=fb_cpu,
        retries=state.retries,
        retry_cpu_ns=retry_cpu,
        wait_cpu_ns=wait_cpu,
        batches=state.batches,
        fallback_batches=state.fallback_batches,
        queue_delays_ns=np.asarray(state.delays, dtype=np.float64),
        channel_extra_ns=extra,
        submitted_ns=np.asarray(state.submits, dtype=np.float64),
        fallback_at_ns=np.asarray(state.fallback_at, dtype=np.float64),
        end_ns=state.tenant.start_ms * 1e6 + float(dur.max()),
    )
