"""What-if questions answered by the model: what DSA saves against CPU detection, where it stops paying
(break-even normal ratio), which batch and packet size is cheapest, and how the answer moves with the device's
throughput, the completion mode and the core count. Every function predicts (fast, deterministic) and returns a
``pandas.DataFrame``; savings are percent of the CPU twin's value (positive: DSA saves)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from dsalab.analysis import crossings
from dsalab.backends import Backend
from dsalab.errors import InvalidArgument
from dsalab.model.predict import predict
from dsalab.model.profile import CPU_DETECTORS, HardwareProfile, load
from dsalab.trial import Trial

Profile = HardwareProfile | str | os.PathLike[str]


def saving(trial: Trial, profile: Profile, *, baseline: str = Backend.CPU_NATIVE.value) -> dict[str, float]:
    """``trial`` with DSA (``dsa-hardware``) against its twin with ``baseline`` detection: host CPU (ms) and total
    time (ms) of both, and the percent saved (``host_cpu_saved_pct``, ``time_saved_pct``)."""
    if baseline not in CPU_DETECTORS:
        raise InvalidArgument(f"baseline={baseline!r} is not allowed: allowed is one of {', '.join(CPU_DETECTORS)}")
    prof = load(profile)
    dsa = predict(trial.replace(detector=Backend.DSA_HARDWARE.value), prof)
    cpu = predict(trial.replace(detector=baseline), prof)
    return {
        "dsa_host_cpu_ms": dsa.host_cpu_ms,
        "cpu_host_cpu_ms": cpu.host_cpu_ms,
        "host_cpu_saved_pct": _saved(dsa.host_cpu_ms, cpu.host_cpu_ms),
        "dsa_total_time_ms": dsa.total_time_ms,
        "cpu_total_time_ms": cpu.total_time_ms,
        "time_saved_pct": _saved(dsa.total_time_ms, cpu.total_time_ms),
    }


def _saved(dsa: float, cpu: float) -> float:
    """Percent of ``cpu`` that ``dsa`` saves (NaN when ``cpu`` is 0: nothing to save)."""
    return 100 * (1 - dsa / cpu) if cpu else float("nan")


def savings(trials: Iterable[tuple[dict[str, object], Trial]], profile: Profile, **kw: str) -> pd.DataFrame:
    """:func:`saving` of each ``(labels, trial)``; the labels become columns."""
    prof = load(profile)
    return pd.DataFrame([{**labels, **saving(t, prof, **kw)} for labels, t in trials])


def break_even(base: Trial, profile: Profile, ratios: Sequence[float] | None = None, **kw: str) -> pd.DataFrame:
    """Host CPU saved against the normal ratio (0..1, 101 points by default); ``df.attrs["break_even"]`` lists the
    normal ratios where the saving changes sign (DSA stops or starts paying)."""
    xs = list(np.linspace(0, 1, 101) if ratios is None else ratios)
    df = savings((({"normal_ratio": r}, base.replace(normal_ratio=float(r))) for r in xs), profile, **kw)
    df.attrs["break_even"] = crossings(np.asarray(xs, float), df["host_cpu_saved_pct"].to_numpy())
    return df


def best_batch_packet(
    base: Trial, profile: Profile, batch_sizes: Sequence[int], packet_bytes: Sequence[int], **kw: str
) -> pd.DataFrame:
    """Every batch size x packet size (bytes) with DSA, sorted by host CPU (cheapest first); batch sizes larger
    than a packet's pages are left out (a batch never spans packets)."""
    grid = (
        ({"batch_size": b, "packet_bytes": p}, base.replace(batch_size=b, packet_bytes=p))
        for p in packet_bytes
        for b in batch_sizes
        if b <= p // base.page_size
    )
    return savings(grid, profile, **kw).sort_values("dsa_host_cpu_ms", kind="stable").reset_index(drop=True)


def sensitivity(
    base: Trial,
    profile: Profile,
    *,
    throughput_factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    completions: Sequence[str] = ("thread", "poll"),
    cores: Sequence[int] = (),
    **kw: str,
) -> pd.DataFrame:
    """How the saving moves with the device's throughput (x the profile's curve), the completion mode and the
    host's cores: one row per combination, columns ``throughput_factor``, ``completion``, ``cores`` and
    :func:`saving`'s."""
    prof = load(profile)
    rows = []
    for n in cores or (int(prof["host.cores"]),):
        p_cores = prof.replace(host__cores=n) if n != prof["host.cores"] else prof
        for f in throughput_factors:
            p = p_cores.with_throughput(f) if f != 1 else p_cores
            for c in completions:
                labels = {"throughput_factor": f, "completion": c, "cores": n}
                rows.append({**labels, **saving(base.replace(completion=c), p, **kw)})
    return pd.DataFrame(rows)
