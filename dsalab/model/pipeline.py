"""One pre-copy round as a pipeline: ``live_migration`` -> ``multifdsend_<i>`` (-> DSA devices) -> network ->
``multifdrecv_<i>``, with each stage's work from a hardware profile, and who waits for whom.

The round takes as long as its slowest stage (every stage works on packets in parallel with the others), plus the
time one packet needs to pass through all of them, and no less than the CPU it needs divided by the cores it may
use. A stage faster than the slowest one waits: a ``live_migration`` that outruns its senders blocks once per
packet, senders that outrun ``live_migration`` are woken once per packet, and each blocking wait costs the profile's
``host.wakeup`` CPU (the engine queues several packets per channel, so a busy sender finds its next packet waiting
and does not idle between packets). Two or more senders cost ``host.send_parallel`` times a lone sender's CPU per
normal page. On one host (``network.same_host``, loopback) each channel's stream is its own writer and reader, so
``network.bandwidth`` (one stream's) is per channel; the streams share the cores.

With DSA, a sender fills and submits ``ceil(packet / batch_size)`` batches per packet and sleeps until the
``dsa_completion`` thread sees each finish (``completion = "thread"``), or polls itself (``poll``, ``umwait``: on
the CPU while it waits); a busy-polling completion thread is on the CPU whenever work is outstanding on a device.

Every quantity is in ns (times), bytes or pages; :func:`round_costs` is plain arithmetic (no allocation).
"""

from __future__ import annotations

import dataclasses
import math

from dsalab.backends import Backend
from dsalab.errors import InvalidArgument
from dsalab.model.profile import SUBMIT_PATHS, HardwareProfile
from dsalab.trial import Trial

#: bytes of a packet header on the wire (the engine's ``struct pkt_hdr``, QEMU's MultiFDPacket_t layout: 320 bytes)
HEADER_BYTES = 320
#: bytes per page offset in a packet
OFFSET_BYTES = 8
#: a stage within this fraction of the slowest one is treated as partly waiting (keeps predictions continuous)
WAIT_BAND = 0.1


@dataclasses.dataclass(frozen=True)
class Pages:
    """The pages of one round: how many, how many are zero, how many are sent with their payload."""

    pages: int
    zero: int
    sent_normal: int  # normal pages plus zero pages forced normal

    @property
    def normal(self) -> int:
        """Pages that are not zero."""
        return self.pages - self.zero


@dataclasses.dataclass(frozen=True)
class Round:
    """What one round costs: time (ns), CPU of each thread role (ns; per-thread values are per thread), device
    busy time (ns, all devices together) and bytes on the wire."""

    time_ns: float
    pages: int
    checked_pages: int  # pages whose zero check ran (on the CPU or a device)
    offloaded_pages: int  # of which a DSA device checked
    main_cpu_ns: float
    sender_cpu_ns: float  # each sender
    completion_cpu_ns: float
    receiver_cpu_ns: float  # each receiver
    fallback_pages: int  # pages a full work queue sent to the CPU
    detect_cpu_ns: float  # all senders
    send_cpu_ns: float  # all senders
    device_busy_ns: float
    wire_bytes: int
    packets: int
    batches: int
    bottleneck: str


def _fallback_kernel(profile: HardwareProfile) -> str:
    """The CPU detector whose costs stand for the offload layer's own CPU path (its native kernel)."""
    return Backend.CPU_NATIVE.value if Backend.CPU_NATIVE.value in profile.detectors else profile.detectors[0]


def _main_waits(main_ns: float, rest_ns: float) -> float:
    """The share of packets for which ``live_migration`` (its stage ``main_ns``) blocks waiting for the rest of
    the pipeline (its slowest other stage ``rest_ns``), 0..1; the senders wait (are woken) for the other share.
    Exactly one side waits per packet; within :data:`WAIT_BAND` of a tie the share moves linearly, so that
    predictions change continuously."""
    if main_ns <= 0 and rest_ns <= 0:
        return 0.5
    x = (rest_ns - main_ns) / (WAIT_BAND * max(main_ns, rest_ns))
    return min(1.0, max(0.0, 0.5 + x / 2))


#: detector name -> whether it offloads to DSA (an Enum lookup per round is measurable at 10,000 predictions/s)
_IS_DSA = {b.value: b.is_dsa for b in Backend}


def check_detector(trial: Trial, profile: HardwareProfile) -> None:
    """Refuse a trial the profile cannot answer: a CPU detector it has no costs for, DSA without devices, more
    devices or a larger batch than its DSA has."""
    if not _IS_DSA[trial.detector]:
        if trial.detector not in profile.detectors:
            raise InvalidArgument(
                f"hardware profile {profile.name} has no CPU costs for detector {trial.detector}; "
                f"it has: {', '.join(profile.detectors)}"
            )
        return
    have = int(profile["dsa.devices"])
    if have < 1:
        raise InvalidArgument(f"hardware profile {profile.name} has no DSA device (dsa.devices = 0)")
    if trial_devices(trial) > have:
        raise InvalidArgument(
            f"Trial field devices={trial.devices!r} is not allowed on hardware profile {profile.name}: it has "
            f"{have} DSA device(s) (dsa.devices); allowed is 1 to {have}"
        )
    if trial.batch_size > profile["dsa.max_batch"]:
        raise InvalidArgument(
            f"Trial field batch_size={trial.batch_size} is not allowed on hardware profile {profile.name}: its "
            f"devices take batches of 1 to {int(profile['dsa.max_batch'])} descriptors (dsa.max_batch)"
        )


def trial_devices(trial: Trial) -> int:
    """DSA devices a trial uses (a count, or how many device specs it names)."""
    return len(trial.devices) if isinstance(trial.devices, tuple) else int(trial.devices)


def cpu_zero_check(trial: Trial, profile: HardwareProfile, detector: str, zero: int, normal: int) -> float:
    """CPU ns to zero-check ``zero`` zero pages and ``normal`` normal pages with ``detector``'s kernel: a zero
    page reads the whole page (its cost scales with the page size), a normal page stops at its first non-zero
    byte (per page); a zero page right after a normal page costs ``boundary`` more (its memory stream restarts;
    normal pages lie at random, so that is the normal fraction of the zero pages)."""
    zc = f"host.zero_check.{detector}"
    n = zero + normal
    restart = profile[f"{zc}.boundary"] * normal / n if n and f"{zc}.boundary" in profile.entries else 0.0
    scale = trial.page_size / profile["host.page_bytes"]
    return zero * (profile[f"{zc}.zero_page"] * scale + restart) + normal * profile[f"{zc}.normal_page"]


def _batches(pages: int, packet_pages: int, batch: int) -> int:
    """Batches of at most ``batch`` pages that ``pages`` pages in packets of ``packet_pages`` make (a batch
    never spans packets; the last packet may be partial)."""
    full, rest = divmod(pages, packet_pages)
    return full * math.ceil(packet_pages / batch) + (math.ceil(rest / batch) if rest else 0)


def round_costs(trial: Trial, profile: HardwareProfile, pages: Pages, *, check_forced: bool = True) -> Round:
    """The cost of sending ``pages`` in one round of ``trial`` on ``profile``'s hardware (the detector checked
    by :func:`check_detector` first).

    ``check_forced``: whether zero pages forced normal (``force_normal_ratio``) are zero-checked before they are
    sent (the engine does; whether the seed's QEMU did is not stated)."""
    p = profile
    n = pages.pages
    ch = trial.channels
    # every round ends with a header-only sync packet on every channel (and its acknowledgement)
    sync_wire = ch * HEADER_BYTES
    if n == 0:
        t = p["network.message"] + sync_wire / p["network.bandwidth"] * 1e9
        return Round(
            time_ns=t, pages=0, checked_pages=0, offloaded_pages=0, main_cpu_ns=0.0, sender_cpu_ns=0.0,
            completion_cpu_ns=0.0, receiver_cpu_ns=0.0, fallback_pages=0, detect_cpu_ns=0.0, send_cpu_ns=0.0,
            device_busy_ns=0.0, wire_bytes=sync_wire, packets=0, batches=0, bottleneck="network",
        )  # fmt: skip
    page = trial.page_size
    packets = math.ceil(n / trial.packet_pages)
    lanes = min(ch, packets)  # senders and receivers that have work in this round
    dsa = _IS_DSA[trial.detector]
    forced = pages.sent_normal - pages.normal
    checked = n if check_forced else n - forced
    checked_zero = pages.zero if check_forced else pages.zero - forced

    # live_migration: its own work
    main_work = n * p["host.main_page"] + packets * p["host.main_packet"]

    # senders: detection, then the send (all senders together)
    per_normal = p["host.send_page"] + page * p["host.send_byte"]
    if lanes > 1:  # senders sharing the cores: what the profile measured for two of them at once
        per_normal *= p["host.send_parallel"]
    send = pages.sent_normal * per_normal + packets * p["host.packet"]
    batches = 0
    device_busy = device_stage = batch_ns = 0.0
    fallback = on_device = 0
    if dsa:
        # cpu_fraction of every request is checked on the CPU (the offload layer's native kernel) meanwhile
        on_cpu = round(checked * trial.cpu_fraction)
        devices = min(trial_devices(trial), lanes)  # senders are given devices round robin
        # each sender has one batch in flight; a device's queue holds dsa.wq_entries: the rest falls back
        in_flight = math.ceil(lanes / devices)
        fallback = round((checked - on_cpu) * max(0.0, 1 - p["dsa.wq_entries"] / in_flight))
        on_device = checked - on_cpu - fallback
        batches = _batches(on_device, trial.packet_pages, trial.batch_size) if on_device else 0
        submit = p[f"dsa.{SUBMIT_PATHS[str(p.flag('dsa.submit_path'))]}"]
        cpu_pages = on_cpu + fallback
        zero_share = checked_zero / checked if checked else 0.0
        cpu_zero = round(cpu_pages * zero_share)
        cpu_check = cpu_zero_check(trial, p, _fallback_kernel(p), cpu_zero, cpu_pages - cpu_zero)
        detect = batches * submit + on_device * p["dsa.prepare_descriptor"] + cpu_check
        rate = p.throughput.at(page)
        device_busy = on_device * page / rate * 1e9  # ns, one device's time for every page
        # a batch's latency on an idle device: fixed, then its pages at the device's rate
        if batches:
            batch_ns = p["dsa.completion_latency"] + on_device / batches * page / rate * 1e9
        device_stage = device_busy / devices
        memory_stage = cpu_zero * page / p["host.memory_read_bandwidth"] * 1e9
    else:
        detect = cpu_zero_check(trial, p, trial.detector, checked_zero, pages.normal)
        memory_stage = checked_zero * page / p["host.memory_read_bandwidth"] * 1e9  # zero checks read it all
    sender_cpu_work = detect + send  # all senders

    # the network (and the migration's bandwidth limit) and the receivers
    wire = packets * HEADER_BYTES + n * OFFSET_BYTES + pages.sent_normal * page + sync_wire
    net_stage = wire / p["network.bandwidth"] * 1e9 + (packets + 1) * p["network.message"]
    if p.flag("network.same_host"):  # loopback: each channel's stream is its own writer and reader, measured
        net_stage /= lanes  # alone; what the streams share is the cores (the cores' limit below)
    if trial.max_bandwidth_bytes:
        net_stage = max(net_stage, wire / trial.max_bandwidth_bytes * 1e9)
    recv_work = n * p["host.receive_page"] + pages.sent_normal * page * p["host.receive_byte"]
    recv_work += packets * p["host.receive_packet"]

    # each sender's stage: its CPU, and with DSA the batches it waits for one after another
    sender_stage = sender_cpu_work / lanes + batches / lanes * batch_ns
    stages = {
        "live_migration": main_work,
        "multifdsend": sender_stage,
        "memory": memory_stage,
        "dsa": device_stage,
        "network": net_stage,
        "multifdrecv": recv_work / lanes,
    }
    slowest = max(stages, key=stages.__getitem__)
    others = max(v for k, v in stages.items() if k != "live_migration")
    wake = p["host.wakeup"]
    # who waits for whom: live_migration blocks per packet when the rest is slower; senders are woken per packet
    # when live_migration is slower; with a completion thread, each batch is a sleep and a wake-up
    main_share = _main_waits(main_work, others)
    main_cpu = main_work + packets * main_share * wake
    sender_waits = packets * (1 - main_share)
    if dsa and trial.completion == "thread":
        sender_waits += batches
    sender_cpu_all = sender_cpu_work + sender_waits * wake
    # one packet through every stage: the pipeline's fill and drain
    fill = (main_work + sender_cpu_work + recv_work) / packets + batches / packets * batch_ns + net_stage / packets
    time_ns = max(stages.values()) + fill
    cores = p["host.cores"]
    recv_busy = recv_work if p.flag("network.same_host") else 0.0
    completion_cpu = 0.0
    for _ in range(2):  # polling lasts as long as the round: once more if the cores stretch it
        waiting = 0.0
        if dsa and batches:
            # work is outstanding on a device while it is busy, and for each batch's fixed latency when idle
            utilisation = min(1.0, device_stage / time_ns)
            outstanding = min(time_ns, device_stage + batches / lanes * p["dsa.completion_latency"] * (1 - utilisation))
            if trial.completion == "thread":
                completion_cpu = outstanding if p.flag("dsa.busy_poll") else batches * (p["dsa.poll"] + wake)
            else:  # the sender polls its own batches: on the CPU while each of its batches is outstanding
                per_sender = max(batches / lanes * batch_ns, outstanding if device_stage >= sender_stage else 0.0)
                waiting = lanes * min(time_ns, per_sender)
        busy = main_cpu + sender_cpu_all + waiting + completion_cpu + recv_busy
        if busy / cores <= time_ns * (1 + 1e-12):
            break
        time_ns = busy / cores  # more CPU than the cores can give: every stage stretches
        slowest = "cores"
    sender_cpu_all += waiting
    return Round(
        time_ns=time_ns,
        pages=n,
        checked_pages=checked,
        offloaded_pages=on_device if dsa else 0,
        main_cpu_ns=main_cpu,
        sender_cpu_ns=sender_cpu_all / ch,
        completion_cpu_ns=completion_cpu,
        receiver_cpu_ns=recv_work / ch,
        fallback_pages=fallback,
        detect_cpu_ns=detect,
        send_cpu_ns=send,
        device_busy_ns=device_busy,
        wire_bytes=wire,
        packets=packets,
        batches=batches,
        bottleneck=slowest,
    )
