"""The engine's part of ``dsalab calibrate``: per-page and per-packet costs of this machine, read from the
per-thread CPU and the per-phase counters of real engine runs (:func:`dsalab.migration.run_trial`).

Each repeat runs every point of :data:`POINTS` (both CPU detectors, normal ratio 0 and 1, packets of 128 KiB and
512 KiB, one channel, so one ``multifdsend_0`` and one ``multifdrecv_0``), interleaved, after a discarded
warm-up. Each cost is solved from one repeat's runs (see :func:`costs_of_repeat`), then the median over repeats
is taken and the spread (half the range, as a fraction of the median) recorded:

- zero check: ``detect_cpu_ms`` per page at normal ratio 0 (zero pages) and 1 (normal pages);
- ``live_migration``: its thread CPU ``M = pages x main_page + packets x b`` solved from the two packet sizes; in
  these runs ``live_migration`` outruns its one sender and blocks once per packet, so ``b`` is what one blocking
  hand-off costs this machine's engine: ``host.wakeup = b`` (``main_packet`` is folded into it and written 0);
- sender: ``multifdsend_0`` CPU minus detection is ``packets x host.packet`` at normal ratio 0 (fitted through
  the origin over both packet sizes), and grows by the cost of sending a normal page at normal ratio 1;
- senders sharing the cores: the sender CPU beyond detection that normal pages add (ratio 0 to 1, packets of
  512 KiB) with two channels, over the same with one: ``host.send_parallel``;
- receiver: ``multifdrecv_0`` CPU at normal ratio 0 is ``pages x receive_page + packets x receive_packet``
  (two packet sizes), and grows by ``bytes x receive_byte`` at normal ratio 1 (the destination is faulted in
  before the clock, as every trial's is by default: ``Trial.prealloc``).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence

from dsalab.backends import Backend
from dsalab.result import TrialResult
from dsalab.trial import Trial

#: CPU detectors calibrated
DETECTORS = (Backend.CPU_NUMBA.value, Backend.CPU_NATIVE.value)
#: normal ratios of the calibration runs
RATIOS = (0.0, 1.0)
#: packet sizes of the calibration runs, bytes
PACKETS = (128 << 10, 512 << 10)
#: normal ratio of the mixed guest (zero and normal pages at random), for the stream-restart cost
MIXED = 0.5
#: channels of the runs that measure senders sharing the cores (:data:`PARALLEL_POINTS`)
PARALLEL = 2
#: every calibration point: (detector, normal ratio, packet bytes), one channel; then
#: :data:`PARALLEL_POINTS`, (detector, normal ratio, packet bytes, channels)
POINTS = (
    tuple((d, r, p) for d in DETECTORS for r in RATIOS for p in PACKETS)
    + tuple((d, MIXED, PACKETS[-1]) for d in DETECTORS)
    + tuple((d, r, PACKETS[-1], PARALLEL) for d in DETECTORS for r in RATIOS)
)
#: page size of every run, bytes
PAGE = 4096


@dataclasses.dataclass(frozen=True)
class Figure:
    """A measured cost: its median over repeats (canonical unit), the spread (half the range over the median),
    how many repeats, and how it was derived."""

    value: float
    spread: float
    repeats: int
    how: str
    values: tuple[float, ...] = ()

    def note(self) -> str:
        """``median of N ...; spread ±x%``."""
        return f"{self.how}; median of {self.repeats}, spread ±{100 * self.spread:.0f}%"


def figure(values: Sequence[float], how: str) -> Figure:
    """Median and spread of per-repeat values."""
    med = statistics.median(values)
    spread = (max(values) - min(values)) / 2 / abs(med) if med else 0.0
    return Figure(med, spread, len(values), how, tuple(values))


def trial_of(point: tuple, guest_bytes: int) -> Trial:
    """The engine trial of one calibration point ((detector, normal ratio, packet bytes[, channels]))."""
    detector, ratio, packet, *rest = point
    channels = rest[0] if rest else 1
    return Trial(
        guest_bytes=guest_bytes, normal_ratio=ratio, channels=channels, packet_bytes=packet, detector=detector, seed=0
    )


def label(point: tuple) -> str:
    """A calibration point in words, for progress."""
    channels = f", {point[3]} channels" if len(point) > 3 else ""
    return f"engine {point[0]} ratio {point[1]:g} packet {point[2] >> 10} KiB{channels}"


def _sender(r: TrialResult) -> float:
    """The one sender's thread CPU, ms (from /proc, which is read while it exists)."""
    return r.thread_cpu_ms["multifdsend_0"]


def _receiver(r: TrialResult) -> float:
    return r.thread_cpu_ms["multifdrecv_0"]


def _senders_beyond_detection(r: TrialResult) -> float:
    """Every sender's thread CPU minus detection, ns."""
    cpu = sum(v for k, v in r.thread_cpu_ms.items() if k.startswith("multifdsend_"))
    return (cpu - r.detect_cpu_ms) * 1e6


def costs_of_repeat(runs: Mapping[tuple, TrialResult], boundaries: int) -> dict[str, float]:
    """Every engine-derived cost (ns, canonical units) from one repeat's runs of :data:`POINTS`; ``boundaries``:
    the zero pages of the mixed guest that follow a normal page."""
    any_run = next(iter(runs.values()))
    n = any_run.trial.guest_bytes // PAGE
    ms = 1e6  # ns per ms
    out: dict[str, float] = {}
    for d in DETECTORS:
        out[f"zero_check.{d}.zero_page"] = statistics.fmean(runs[d, 0.0, p].detect_cpu_ms * ms / n for p in PACKETS)
        out[f"zero_check.{d}.normal_page"] = statistics.fmean(runs[d, 1.0, p].detect_cpu_ms * ms / n for p in PACKETS)
        mixed = runs[d, MIXED, PACKETS[-1]]
        zero, normal = n - mixed.normal_pages, mixed.normal_pages
        same_packet = [runs[d, r, PACKETS[-1]].detect_cpu_ms * ms / n for r in RATIOS]  # ns per zero, normal page
        apart = zero * same_packet[0] + normal * same_packet[1]
        out[f"zero_check.{d}.boundary"] = (mixed.detect_cpu_ms * ms - apart) / max(boundaries, 1)
    small, large = PACKETS

    def split(value: Callable[[TrialResult], float], pairs: Iterable[tuple[str, float]]) -> tuple[float, float]:
        """(per page, per packet) of ``value`` (ms) solved from the two packet sizes, averaged over ``pairs``."""
        per_page, per_packet = [], []
        for d, ratio in pairs:
            a, b = runs[d, ratio, small], runs[d, ratio, large]
            slope = (value(a) - value(b)) * ms / (a.packets - b.packets)
            per_packet.append(slope)
            per_page.append((value(b) * ms - slope * b.packets) / n)
        return statistics.fmean(per_page), statistics.fmean(per_packet)

    main_page, main_b = split(lambda r: r.thread_cpu_ms["live_migration"], [(d, r) for d in DETECTORS for r in RATIOS])
    out["main_page"] = main_page
    out["main_packet"] = 0.0
    out["wakeup"] = main_b
    ys = [((_sender(runs[d, 0.0, p]) - runs[d, 0.0, p].detect_cpu_ms) * ms, runs[d, 0.0, p].packets)
          for d in DETECTORS for p in PACKETS]  # fmt: skip
    out["packet"] = sum(y * k for y, k in ys) / sum(k * k for _, k in ys)

    def beyond_detection(d: str, ratio: float, p: int) -> float:
        r = runs[d, ratio, p]
        return (_sender(r) - r.detect_cpu_ms) * ms

    out["send_normal_page"] = statistics.fmean(
        (beyond_detection(d, 1.0, p) - beyond_detection(d, 0.0, p)) / n for d in DETECTORS for p in PACKETS
    )
    large = PACKETS[-1]

    def growth(d: str, channels: int) -> float:
        """Sender CPU beyond detection from normal ratio 0 to 1, packets of 512 KiB, ns."""
        key = (lambda r: (d, r, large)) if channels == 1 else (lambda r: (d, r, large, channels))
        return _senders_beyond_detection(runs[key(1.0)]) - _senders_beyond_detection(runs[key(0.0)])

    out["send_parallel"] = statistics.fmean(growth(d, PARALLEL) / growth(d, 1) for d in DETECTORS)
    out["receive_page"], out["receive_packet"] = split(_receiver, [(d, 0.0) for d in DETECTORS])
    out["receive_byte"] = statistics.fmean(
        (_receiver(runs[d, 1.0, p]) - _receiver(runs[d, 0.0, p])) * ms / (n * PAGE) for d in DETECTORS for p in PACKETS
    )
    return out


#: how each engine-derived cost was solved, for its source string
HOW = {
    "zero_page": "detect_cpu_ms per page of an all-zero guest (mean of both packet sizes)",
    "normal_page": "detect_cpu_ms per page of an all-normal guest (mean of both packet sizes)",
    "boundary": "detect_cpu_ms of a guest with normal pages at random (normal ratio 0.5, packets of 512 KiB) beyond "
    "its zero and normal pages at the all-zero and all-normal guests' cost per page, per zero page that follows "
    "a normal page",
    "main_page": "live_migration thread CPU = pages x main_page + packets x main_packet, solved from packets of "
    "128 KiB and 512 KiB (both detectors, normal ratio 0 and 1)",
    "main_packet": "folded into host.wakeup (live_migration blocked once per packet in these runs, so its "
    "per-packet CPU is one hand-off)",
    "wakeup": "live_migration thread CPU per packet (solved with main_page), in runs where it outruns its one "
    "sender and blocks once per packet: what one blocking hand-off costs the engine",
    "packet": "multifdsend_0 thread CPU minus detect_cpu_ms per packet of an all-zero guest (least squares through "
    "0 over packets of 128 KiB and 512 KiB, both detectors)",
    "send_normal_page": "growth of multifdsend_0 CPU minus detect_cpu_ms per page from normal ratio 0 to 1",
    "send_parallel": f"growth of all senders' CPU minus detect_cpu_ms from normal ratio 0 to 1 with {PARALLEL} "
    "channels over the same with 1 channel (packets of 512 KiB, mean of both detectors)",
    "receive_page": "multifdrecv_0 thread CPU of an all-zero guest = pages x receive_page + packets x "
    "receive_packet, solved from packets of 128 KiB and 512 KiB",
    "receive_packet": "multifdrecv_0 thread CPU per packet of an all-zero guest, solved with receive_page",
    "receive_byte": "growth of multifdrecv_0 thread CPU per payload byte from normal ratio 0 to 1 (the destination "
    "faulted in before the clock, Trial.prealloc)",
}


def describe(guest_bytes: int) -> str:
    """The runs behind every engine-derived cost, for source strings."""
    return (
        f"engine runs (dsalab.migration.run_trial), {guest_bytes >> 20} MiB guest, 1 channel (and {PARALLEL}), "
        "4 KiB pages, cpu-numba and cpu-native, normal ratio 0 and 1 (and 0.5), packets 128 KiB and 512 KiB, "
        "interleaved after a warm-up"
    )
