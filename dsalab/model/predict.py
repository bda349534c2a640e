"""``predict(trial, profile)``: the :class:`~dsalab.result.TrialResult` a trial would give on a profile's
hardware, computed, not run (``backend = "model"``; nothing is allocated, so any guest size is fine).

Rounds follow the engine's pre-copy loop: the first round sends every page; with a dirty rate, the pages the
guest dirtied during a round (distinct pages of ``rate x round time / page_size`` random writes) are sent in the
next, until what is left fits ``downtime_limit_ms`` at the round's bandwidth or ``max_iterations`` is reached;
then the final phase (the downtime) sends the rest. Each round's cost is :func:`dsalab.model.pipeline.round_costs`.
Dirtied pages are normal pages. Page counts are exact for the trial's guest (``round(normal_ratio x pages)``
normal pages, as :class:`~dsalab.migration.GuestMemory` makes them); forced normal pages are their expected
number. A model moves nothing, so ``verified`` is False and ``mismatched_pages`` 0: nothing was checked.
"""

from __future__ import annotations

import math
import os

from dsalab.backends import Backend
from dsalab.model.pipeline import HEADER_BYTES, Pages, Round, check_detector, round_costs
from dsalab.model.profile import HardwareProfile, load
from dsalab.result import TrialResult
from dsalab.trial import Trial

#: name of the thread that would busy-poll DSA completions
COMPLETION_THREAD = "dsa_completion"
#: Round fields summed over rounds
_SUMMED = (
    "time_ns",
    "pages",
    "checked_pages",
    "offloaded_pages",
    "fallback_pages",
    "main_cpu_ns",
    "sender_cpu_ns",
    "completion_cpu_ns",
    "receiver_cpu_ns",
    "detect_cpu_ns",
    "send_cpu_ns",
    "device_busy_ns",
    "wire_bytes",
    "packets",
)
#: time to set up the channels, ns (not modelled: the engine's own setup is a few ms)
SETUP_NS = 0.0


def _dirtied(writes: float, pages: int) -> int:
    """Distinct pages hit by ``writes`` uniformly random page writes."""
    if writes <= 0:
        return 0
    return min(pages, round(pages * -math.expm1(-writes / pages)))


def _first_pages(trial: Trial) -> Pages:
    n = trial.guest_bytes // trial.page_size
    normal = round(trial.normal_ratio * n)
    zero = n - normal
    forced = round(zero * trial.force_normal_ratio)
    return Pages(n, zero, normal + forced)


def _dirty_pages(trial: Trial, count: int) -> Pages:
    return Pages(count, 0, count)


def rounds(trial: Trial, profile: HardwareProfile, *, check_forced: bool = True) -> tuple[list[Round], bool]:
    """Every round of ``trial`` (the last is the final phase) and whether the pre-copy converged."""
    check_detector(trial, profile)
    n = trial.guest_bytes // trial.page_size
    out = [round_costs(trial, profile, _first_pages(trial), check_forced=check_forced)]
    rate = trial.dirty_rate_bytes_per_s
    converged = True
    if rate <= 0:
        out.append(round_costs(trial, profile, Pages(0, 0, 0)))  # the final phase has nothing left to send
        return out, converged
    limit_ns = trial.downtime_limit_ms * 1e6
    while True:
        last = out[-1]
        dirty = _dirtied(rate * last.time_ns / 1e9 / trial.page_size, n)
        bandwidth = max(last.wire_bytes / max(last.time_ns, 1.0), 1e-3)  # bytes per ns
        if dirty * trial.page_size / bandwidth <= limit_ns:
            break
        if len(out) >= trial.max_iterations:
            converged = False
            break
        out.append(round_costs(trial, profile, _dirty_pages(trial, dirty)))
    # final phase: what was dirtied during the last round (the guest is stopped now)
    dirty = _dirtied(rate * out[-1].time_ns / 1e9 / trial.page_size, n)
    out.append(round_costs(trial, profile, _dirty_pages(trial, dirty)))
    return out, converged


def predict(
    trial: Trial, profile: HardwareProfile | str | os.PathLike[str], *, check_forced: bool = True
) -> TrialResult:
    """The predicted result of ``trial`` on ``profile``'s hardware (a :class:`HardwareProfile` or its TOML path).

    ``cpu-*`` detectors use the profile's CPU costs for that detector; ``dsa-*`` detectors use its DSA devices
    (an emulated device in the trial stands for the profile's real one). ``check_forced``: whether zero pages
    forced normal are zero-checked before they are sent (the engine's behaviour). Times in the result are ms."""
    prof = load(profile)
    rs, converged = rounds(trial, prof, check_forced=check_forced)
    first = _first_pages(trial)
    ch = trial.channels
    dsa = Backend(trial.detector).is_dsa
    tot = dict.fromkeys(_SUMMED, 0.0)
    for r in rs:
        for name in _SUMMED:
            tot[name] += getattr(r, name)
    main, sender, receiver = tot["main_cpu_ns"] / 1e6, tot["sender_cpu_ns"] / 1e6, tot["receiver_cpu_ns"] / 1e6
    completion = tot["completion_cpu_ns"] / 1e6
    threads = {"live_migration": main}
    threads.update({f"multifdsend_{i}": sender for i in range(ch)})
    if dsa and trial.completion == "thread":
        threads[COMPLETION_THREAD] = completion
    threads.update({f"multifdrecv_{i}": receiver for i in range(ch)})
    total_ns = SETUP_NS + tot["time_ns"]
    wire = int(tot["wire_bytes"]) + ch * HEADER_BYTES  # and an END packet per channel at the end
    dirty_pages = int(tot["pages"]) - first.pages
    host = main + sender * ch + (completion if COMPLETION_THREAD in threads else 0.0)
    return TrialResult(
        trial=trial,
        backend=Backend.MODEL,
        total_time_ms=total_ns / 1e6,
        setup_time_ms=SETUP_NS / 1e6,
        downtime_ms=rs[-1].time_ns / 1e6,
        throughput_mbps=wire * 8 / max(total_ns, 1.0) * 1e3,
        transferred_bytes=wire,
        total_bytes=trial.guest_bytes,
        zero_pages=first.zero,
        normal_pages=first.normal + dirty_pages,
        forced_normal_pages=first.sent_normal - first.normal,
        pages_sent=first.pages + dirty_pages,
        iterations=len(rs),
        dirty_sync_count=len(rs) if trial.dirty_rate_bytes_per_s > 0 else 1,  # and one in the final phase
        dirtied_pages=dirty_pages,
        converged=converged,
        thread_cpu_ms=threads,
        host_cpu_ms=host,
        destination_cpu_ms=receiver * ch,
        device_cpu_ms=0.0,
        device_busy_ms=tot["device_busy_ns"] / 1e6,
        guest_cpu_ms=0.0,
        detect_cpu_ms=tot["detect_cpu_ns"] / 1e6,
        send_cpu_ms=tot["send_cpu_ns"] / 1e6,
        sender_cpu_ms=sender * ch,
        packets=int(tot["packets"]),
        pages_offloaded=int(tot["offloaded_pages"]),
        fallback_pages=int(tot["fallback_pages"]),
        fallback_pages_by_reason={"queue_full": int(tot["fallback_pages"])} if tot["fallback_pages"] else {},
        queue_full_retries=0,
        page_faults=0,
        verified=False,
        mismatched_pages=0,
    )
