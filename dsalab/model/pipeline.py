"""One pre-copy round as a pipeline: ``live_migration`` -> ``multifdsend_<i>`` (-> DSA devices) -> network ->
``multifdrecv_<i>``, with each stage's work from a hardware profile, and who waits for whom.

The round takes as long as its slowest stage (every stage works on packets in parallel with the others), plus the
time one packet needs to pass through all of them, and no less than the CPU it needs divided by the cores it may
use. A stage faster than the slowest one waits: a ``live_migration`` that outruns its senders blocks once per
packet, senders that outrun ``live_migration`` are woken once per packet, and each blocking wait costs the
profile's ``host.wakeup`` CPU. With DSA, a sender fills and submits ``ceil(packet / batch_size)`` batches per
packet and sleeps until the ``dsa_completion`` thread sees each finish (``completion = "thread"``), or polls
itself (``poll``, ``umwait``: on the CPU while it waits); a busy-polling completion thread is on the CPU whenever
work is outstanding on a device.

Every quantity is in ns (times), bytes or pages; :func:`round_costs` is plain arithmetic (no allocation).
"""

from __future__ import annotations

import dataclasses
import math

from dsalab.backends import Backend
from dsalab.model.profile import SUBMIT_PATHS, HardwareProfile
from dsalab.trial import Trial

#: bytes of a packet header on the wire (the engine's ``struct pkt_hdr``: six u32 and one u64)
HEADER_BYTES = 32
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
    main_cpu_ns: float
    sender_cpu_ns: float  # each sender
    completion_cpu_ns: float
    receiver_cpu_ns: float  # each receiver
    detect_cpu_ns: float  # all senders
    send_cpu_ns: float  # all senders
    device_busy_ns: float
    wire_bytes: int
    packets: int
    batches: int
    bottleneck: str


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
    """Refuse a trial whose detector ``profile`` has no costs for (a CPU detector it lacks, DSA without devices)."""
    from dsalab.errors import InvalidArgument

    if not _IS_DSA[trial.detector] and trial.detector not in profile.detectors:
        raise InvalidArgument(
            f"hardware profile {profile.name} has no CPU costs for detector {trial.detector}; "
            f"it has: {', '.join(profile.detectors)}"
        )
    if _IS_DSA[trial.detector] and profile["dsa.devices"] < 1:
        raise InvalidArgument(f"hardware profile {profile.name} has no DSA device (dsa.devices = 0)")


def round_costs(trial: Trial, profile: HardwareProfile, pages: Pages, *, check_forced: bool = True) -> Round:
    """The cost of sending ``pages`` in one round of ``trial`` on ``profile``'s hardware (the detector checked
    by :func:`check_detector` first).

    ``check_forced``: whether zero pages forced normal (``force_normal_ratio``) are zero-checked before they are
    sent (the engine does; whether the seed's QEMU did is not stated)."""
    p = profile
    n = pages.pages
    if n == 0:
        return Round(0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, "none")
    ch = trial.channels
    page = trial.page_size
    scale = page / p["host.page_bytes"]  # per-page costs scale with the page's bytes
    packets = math.ceil(n / trial.packet_pages)
    per_packet_batches = math.ceil(trial.packet_pages / trial.batch_size)
    dsa = _IS_DSA[trial.detector]
    forced = pages.sent_normal - pages.normal
    checked = n if check_forced else n - forced
    checked_zero = pages.zero if check_forced else pages.zero - forced

    # live_migration: its own work
    main_work = n * p["host.main_page"] + packets * p["host.main_packet"]

    # senders: detection, then the send (all senders together)
    send = pages.sent_normal * (p["host.send_page"] * scale + page * p["host.send_byte"]) + packets * p["host.packet"]
    batches = 0
    device_busy = 0.0
    batch_ns = 0.0
    if dsa:
        batches = packets * per_packet_batches
        submit = p[f"dsa.{SUBMIT_PATHS[str(p.flag('dsa.submit_path'))]}"]
        detect = batches * submit + checked * p["dsa.prepare_descriptor"]
        rate = p.throughput.at(page)
        devices = min(int(p["dsa.devices"]), ch)  # senders are given devices round robin
        device_busy = checked * page / rate * 1e9  # ns, one device's time for every page
        # a batch's latency on an idle device: fixed, then its pages at the device's rate
        batch_ns = p["dsa.completion_latency"] + min(trial.batch_size, trial.packet_pages) * page / rate * 1e9
        device_stage = device_busy / devices
    else:
        zc = f"host.zero_check.{trial.detector}"
        # a zero page right after a normal page costs more (its memory stream restarts); normal pages lie at
        # random, so that is the normal fraction of the zero pages
        restart = p[f"{zc}.boundary"] * pages.normal / n if f"{zc}.boundary" in p.entries else 0.0
        zero_ns = p[f"{zc}.zero_page"] + restart
        detect = (checked_zero * zero_ns + pages.normal * p[f"{zc}.normal_page"]) * scale
        device_stage = 0.0
    sender_cpu_work = detect + send  # all senders

    # the network and the receivers
    wire = packets * HEADER_BYTES + n * OFFSET_BYTES + pages.sent_normal * page
    net_stage = wire / p["network.bandwidth"] * 1e9 + packets * p["network.message"]
    recv_work = n * p["host.receive_page"] * scale + pages.sent_normal * page * p["host.receive_byte"]
    recv_work += packets * p["host.receive_packet"]

    # each sender's stage: its CPU, and with DSA the batches it waits for one after another
    sender_stage = sender_cpu_work / ch + (packets / ch) * per_packet_batches * batch_ns
    stages = {
        "live_migration": main_work,
        "multifdsend": sender_stage,
        "dsa": device_stage,
        "network": net_stage,
        "multifdrecv": recv_work / ch,
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
    completion_cpu = 0.0
    fill = (main_work + sender_stage + net_stage + recv_work / ch) / packets  # one packet through every stage
    time_ns = max(stages.values()) + fill

    if dsa:
        # work is outstanding on a device while it is busy, and for each batch's fixed latency when it is idle
        utilisation = min(1.0, device_stage / time_ns)
        outstanding = min(time_ns, device_stage + batches / ch * p["dsa.completion_latency"] * (1 - utilisation))
        if trial.completion == "thread":
            completion_cpu = outstanding if p.flag("dsa.busy_poll") else batches * (p["dsa.poll"] + wake)
        else:  # the sender polls its own batches: on the CPU while each of its batches is outstanding
            per_sender_wait = max(batches / ch * batch_ns, outstanding if device_stage >= sender_stage else 0.0)
            sender_cpu_all += ch * min(time_ns, per_sender_wait)
    cores = p["host.cores"]
    busy = main_cpu + sender_cpu_all + completion_cpu
    if p.flag("network.same_host"):
        busy += recv_work
    if busy / cores > time_ns:  # more CPU than the cores can give: every stage stretches
        time_ns = busy / cores
        slowest = "cores"
    return Round(
        time_ns=time_ns,
        pages=n,
        checked_pages=checked,
        main_cpu_ns=main_cpu,
        sender_cpu_ns=sender_cpu_all / ch,
        completion_cpu_ns=completion_cpu,
        receiver_cpu_ns=recv_work / ch,
        detect_cpu_ns=detect,
        send_cpu_ns=send,
        device_busy_ns=device_busy,
        wire_bytes=wire,
        packets=packets,
        batches=batches,
        bottleneck=slowest,
    )
