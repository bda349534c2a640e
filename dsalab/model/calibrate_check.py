"""Against this machine: the model with this machine's calibrated profile beside the engine, point by point.

:func:`against_engine` runs the engine over :data:`GRID` (``cpu-numba`` and ``cpu-native``, normal ratio 0 / 0.5
/ 1, channels 1 / 2, packets 128 KiB / 512 KiB), repeats interleaved, and puts the median of each metric beside
:func:`dsalab.model.predict` of the same trial. The engine's time is compared without its setup
(``total_time_ms - setup_time_ms``: opening the detector, the sockets and the threads, which the model does not
model). :func:`cpu_share` measures how much of this machine's cores a process gets right now: on a machine
shared with other work, wall times stretch by what the others take, which no profile of the hardware can know.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence

from dsalab.backends import Backend
from dsalab.model.predict import predict
from dsalab.model.profile import HardwareProfile
from dsalab.trial import Trial

#: the check's points: (detector, normal ratio, channels, packet bytes)
GRID = tuple(
    (d, r, c, p)
    for d in (Backend.CPU_NUMBA.value, Backend.CPU_NATIVE.value)
    for r in (0.0, 0.5, 1.0)
    for c in (1, 2)
    for p in (128 << 10, 512 << 10)
)
#: the agreement the model aims at (a fraction of the engine's value)
TOLERANCE = 0.15


@dataclasses.dataclass(frozen=True)
class Row:
    """One point: the engine's medians and the model's prediction (ms)."""

    detector: str
    normal_ratio: float
    channels: int
    packet_bytes: int
    engine_host_cpu_ms: float
    model_host_cpu_ms: float
    engine_time_ms: float  # without setup
    engine_setup_ms: float
    model_time_ms: float
    engine_sender_cpu_ms: float  # all multifdsend_<i> threads
    model_sender_cpu_ms: float
    engine_receiver_cpu_ms: float
    model_receiver_cpu_ms: float
    repeats: int
    #: the engine's own (lowest, highest) over the repeats, ms: how much the measured quantity itself moves
    engine_host_cpu_range: tuple[float, float] = (math.nan, math.nan)
    engine_time_range: tuple[float, float] = (math.nan, math.nan)

    @property
    def host_ratio(self) -> float:
        """Model over engine, host CPU."""
        return self.model_host_cpu_ms / self.engine_host_cpu_ms

    @property
    def time_ratio(self) -> float:
        """Model over engine, total time (without setup)."""
        return self.model_time_ms / self.engine_time_ms

    def spread(self, metric: str) -> float:
        """The engine's own highest over lowest of ``metric`` (``host`` or ``time``) over the repeats."""
        low, high = self.engine_host_cpu_range if metric == "host" else self.engine_time_range
        return high / low if low > 0 else math.inf

    def in_range(self, metric: str) -> bool:
        """Whether the model's ``metric`` lies between the engine's lowest and highest repeat."""
        low, high = self.engine_host_cpu_range if metric == "host" else self.engine_time_range
        model = self.model_host_cpu_ms if metric == "host" else self.model_time_ms
        return low <= model <= high


def trial_of(point: tuple[str, float, int, int], guest_bytes: int) -> Trial:
    """The trial of one grid point."""
    d, r, c, p = point
    return Trial(guest_bytes=guest_bytes, normal_ratio=r, channels=c, packet_bytes=p, detector=d, seed=0)


def cpu_share(seconds: float = 0.3) -> float:
    """Share (0..1) of this process's usable cores that busy threads obtain now: one thread per core runs the
    native OR-reduce loop over a 4 MiB buffer for about ``seconds`` (0.05..10); their CPU time over wall time x
    cores."""
    import threading

    import numpy as np

    from dsalab import kernels

    seconds = min(max(float(seconds), 0.05), 10.0)
    cores = len(os.sched_getaffinity(0))
    cpu = [0.0] * cores
    start = threading.Barrier(cores + 1, timeout=10)

    def busy(i: int) -> None:
        buf = np.ones(4 << 20, dtype=np.uint8)
        start.wait()
        c0, w0 = time.thread_time(), time.perf_counter()
        while time.perf_counter() - w0 < seconds:
            kernels.bandwidth_reference(buf, 1)  # the GIL is released inside
        cpu[i] = time.thread_time() - c0

    threads = [threading.Thread(target=busy, args=(i,), name=f"cpu_share_{i}") for i in range(cores)]
    for t in threads:
        t.start()
    start.wait()
    w0 = time.perf_counter()
    for t in threads:
        t.join(seconds + 10)
    return min(1.0, sum(cpu) / ((time.perf_counter() - w0) * cores))


def _senders(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if k.startswith("multifdsend_"))


def run_engine(
    guest_bytes: int,
    repeats: int,
    points: Sequence[tuple[str, float, int, int]] = GRID,
    progress: Callable[[int, int], None] | None = None,
) -> dict[tuple[str, float, int, int], list]:
    """The engine's results over ``points``, ``repeats`` each, interleaved: point -> list of TrialResult."""
    from dsalab.migration import GuestMemory, run_trial

    guests = {r: GuestMemory(guest_bytes, normal_ratio=r, seed=0) for r in sorted({p[1] for p in points})}
    runs: dict[tuple[str, float, int, int], list] = {p: [] for p in points}
    done = 0
    for _ in range(repeats):
        for point in points:
            runs[point].append(run_trial(trial_of(point, guest_bytes), guest=guests[point[1]]))
            done += 1
            if progress is not None:
                progress(done, repeats * len(points))
    return runs


def compare(profile: HardwareProfile, runs: dict[tuple[str, float, int, int], list]) -> list[Row]:
    """Each point's engine medians beside the model's prediction of the same trial with ``profile``."""
    rows = []
    for point, rs in runs.items():
        m = predict(rs[0].trial, profile)
        med = statistics.median
        hosts = [r.host_cpu_ms for r in rs]
        times = [r.total_time_ms - r.setup_time_ms for r in rs]
        rows.append(
            Row(
                *point,
                engine_host_cpu_ms=med(hosts),
                model_host_cpu_ms=m.host_cpu_ms,
                engine_time_ms=med(times),
                engine_setup_ms=med(r.setup_time_ms for r in rs),
                model_time_ms=m.total_time_ms,
                engine_sender_cpu_ms=med(_senders(r.thread_cpu_ms) for r in rs),
                model_sender_cpu_ms=_senders(m.thread_cpu_ms),
                engine_receiver_cpu_ms=med(r.destination_cpu_ms for r in rs),
                model_receiver_cpu_ms=m.destination_cpu_ms,
                repeats=len(rs),
                engine_host_cpu_range=(min(hosts), max(hosts)),
                engine_time_range=(min(times), max(times)),
            )
        )
    return rows


def against_engine(
    profile: HardwareProfile,
    guest_bytes: int,
    repeats: int,
    points: Sequence[tuple[str, float, int, int]] = GRID,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """Run the engine over ``points`` (``repeats`` each, interleaved) and predict each with ``profile``."""
    return compare(profile, run_engine(guest_bytes, repeats, points, progress))


def within(rows: Sequence[Row], metric: str, tolerance: float = TOLERANCE) -> int:
    """How many rows have ``metric`` (``host`` or ``time``) within ``tolerance`` of the engine."""
    return sum(abs(getattr(r, f"{metric}_ratio") - 1) <= tolerance for r in rows)


def in_engine_range(rows: Sequence[Row], metric: str) -> int:
    """How many rows have the model's ``metric`` between the engine's lowest and highest repeat."""
    return sum(r.in_range(metric) for r in rows)


def geometric_mean(rows: Sequence[Row], metric: str) -> float:
    """Geometric mean of the model/engine ratios of ``metric`` (``host`` or ``time``)."""
    return math.exp(statistics.fmean(math.log(getattr(r, f"{metric}_ratio")) for r in rows))


def format_rows(rows: Sequence[Row]) -> str:
    """The table of engine vs model (ms) and the ratios, with a summary line per metric."""
    head = (
        f"{'detector':10} {'ratio':>5} {'ch':>2} {'packet':>7} | {'host engine':>11} {'model':>7} {'ratio':>5} | "
        f"{'time engine':>11} {'model':>7} {'ratio':>5} | {'send eng':>8} {'model':>7} | {'recv eng':>8} {'model':>7} "
        f"| {'engine max/min':>14}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.detector:10} {r.normal_ratio:5.1f} {r.channels:2d} {r.packet_bytes >> 10:5d}Ki | "
            f"{r.engine_host_cpu_ms:11.1f} {r.model_host_cpu_ms:7.1f} {r.host_ratio:5.2f} | "
            f"{r.engine_time_ms:11.1f} {r.model_time_ms:7.1f} {r.time_ratio:5.2f} | "
            f"{r.engine_sender_cpu_ms:8.1f} {r.model_sender_cpu_ms:7.1f} | "
            f"{r.engine_receiver_cpu_ms:8.1f} {r.model_receiver_cpu_ms:7.1f} | "
            f"{r.spread('host'):6.2f} {r.spread('time'):7.2f}"
        )
    for metric in ("host", "time"):
        spreads = sorted(r.spread(metric) for r in rows)
        lines.append(
            f"{metric}: {within(rows, metric)}/{len(rows)} points within ±{TOLERANCE:.0%}, geometric mean of "
            f"model/engine {geometric_mean(rows, metric):.2f}; {in_engine_range(rows, metric)}/{len(rows)} inside "
            f"the engine's own range over its repeats, whose max/min is {statistics.median(spreads):.2f} at the "
            f"median point and {spreads[-1]:.2f} at the worst"
        )
    return "\n".join(lines)


def frame(rows: Sequence[Row]):
    """The rows as a long ``pandas.DataFrame``: the point (detector, normal_ratio, channels, packet_bytes),
    ``metric`` (``host_cpu_ms``, or ``total_time_ms`` without setup), ``engine`` (median), ``model``, ``ratio``."""
    import pandas as pd

    out = []
    for r in rows:
        point = {"detector": r.detector, "normal_ratio": r.normal_ratio, "channels": r.channels}
        point["packet_bytes"] = r.packet_bytes
        out.append({**point, "metric": "host_cpu_ms", "engine": r.engine_host_cpu_ms, "model": r.model_host_cpu_ms})
        out.append({**point, "metric": "total_time_ms", "engine": r.engine_time_ms, "model": r.model_time_ms})
    df = pd.DataFrame(out)
    df["ratio"] = df["model"] / df["engine"]
    return df
