"""The cover letter's two scenarios, run here and laid beside the published figures.

The seed's guest was a fresh 100 GB VM, all zero pages. Scenario 1's "50% normal pages" were zero pages *forced*
to be sent as normal by the series' ``multifd-normal-page-ratio`` option: an all-zero guest with
``force_normal_ratio = 0.5`` (``normal_ratio = 0.0``), not a guest half full of data. Scenario 2 is the same guest
with nothing forced. Each is run with CPU zero-page detection (the baseline) and with DSA; the seed used a 100 GB
guest, 8 channels and one DSA device on two Sapphire Rapids hosts. Here the guest is scaled to fit the machine,
and the DSA device is the emulated one unless a real one is given: results say which.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from dsalab import reference
from dsalab.backends import Backend
from dsalab.migration import Trial, TrialResult, run_trial

#: scenario number -> the Trial fields that make it (see the module docstring and shared/reference/README.md)
SCENARIOS = reference.SCENARIOS


def scenario_trials(
    guest_bytes: int | str = "1GiB",
    *,
    channels: int = 8,
    cpu_detector: str = Backend.CPU_NUMBA,
    dsa_detector: str = Backend.DSA_EMULATED,
    devices: int | tuple[str, ...] = 1,
    seed: int = 0,
) -> dict[tuple[int, str], Trial]:
    """The four trials: (scenario, "cpu"|"dsa") -> Trial, each with its scenario's fields of :data:`SCENARIOS`."""
    out = {}
    for scenario, fields in SCENARIOS.items():
        base = Trial(guest_bytes=guest_bytes, channels=channels, devices=devices, seed=seed, **fields)
        out[(scenario, "cpu")] = base.replace(detector=cpu_detector)
        out[(scenario, "dsa")] = base.replace(detector=dsa_detector)
    return out


def _ours(scenario: int, mode: str, r: TrialResult) -> dict:
    return {
        "scenario": scenario,
        "mode": mode,
        "source": "dsalab",
        "backend": r.backend,
        "guest_bytes": r.total_bytes,
        "normal_ratio": r.trial.normal_ratio,
        "force_normal_ratio": r.trial.force_normal_ratio,
        "host_cpu_ms": r.host_cpu_ms,
        "host_cpu_ms_per_gb": r.host_cpu_ms_per_gb,
        "total_time_ms": r.total_time_ms,
        "downtime_ms": r.downtime_ms,
        "throughput_mbps": r.throughput_mbps,
        "transferred_bytes": r.transferred_bytes,
        "verified": r.verified,
    }


def _published() -> list[dict]:
    stats = reference.migration_stats()
    rows = []
    for _, s in stats.iterrows():
        key = (int(s.scenario), s["mode"])
        total = reference.STATED_TOTALS_MS[key]
        guest = s.total_ram_kb * 1024
        rows.append(
            {
                "scenario": key[0],
                "mode": key[1],
                "source": "seed",
                "backend": "cpu" if key[1] == "cpu" else Backend.DSA_HARDWARE.value,
                "guest_bytes": guest,
                **SCENARIOS[key[0]],
                "host_cpu_ms": float(total),
                "host_cpu_ms_per_gb": total / (guest / 1e9),
                "total_time_ms": float(s.total_time_ms),
                "downtime_ms": float(s.downtime_ms),
                "throughput_mbps": float(s.throughput_mbps),
                "transferred_bytes": int(s.transferred_ram_kb * 1024),
                "verified": True,
            }
        )
    return rows


def compare_seed_scenarios(
    guest_bytes: int | str = "1GiB",
    *,
    channels: int = 8,
    cpu_detector: str = Backend.CPU_NUMBA,
    dsa_detector: str = Backend.DSA_EMULATED,
    devices: int | tuple[str, ...] = 1,
    seed: int = 0,
    warmup: bool = True,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[tuple[int, str], TrialResult]]:
    """Run both scenarios in both modes; return (comparison table, our results).

    The table has one row per (scenario, mode, source) with the seed's published figures beside ours, and a
    ``cpu_saved_pct`` column: how much less host CPU the DSA mode used than the CPU mode of the same source.
    Absolute times are not comparable across machines and guest sizes; CPU per GB and the saving are. With
    ``warmup``, scenario 1 runs once in each mode first, unmeasured.
    """
    trials = scenario_trials(
        guest_bytes, channels=channels, cpu_detector=cpu_detector, dsa_detector=dsa_detector, devices=devices, seed=seed
    )
    if warmup:  # one discarded run of each mode at full size: JIT compiles, memory and devices get warm
        for mode in ("cpu", "dsa"):
            if progress is not None:
                progress(f"warm-up ({mode}): {trials[(1, mode)].detector}")
            run_trial(trials[(1, mode)])
    results = {}
    for key, trial in trials.items():
        if progress is not None:
            progress(f"scenario {key[0]} ({key[1]}): {trial.detector}")
        results[key] = run_trial(trial)
    rows = _published() + [_ours(s, m, r) for (s, m), r in results.items()]
    table = pd.DataFrame(rows).sort_values(["scenario", "source", "mode"], ignore_index=True)
    saved = []
    for _, row in table.iterrows():
        cpu = table[(table.scenario == row.scenario) & (table.source == row.source) & (table["mode"] == "cpu")]
        base = float(cpu.host_cpu_ms.iloc[0])
        saved.append(0.0 if row["mode"] == "cpu" else 100.0 * (base - row.host_cpu_ms) / base)
    table["cpu_saved_pct"] = saved
    return table, results


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison as a text table."""
    cols = [
        "scenario",
        "mode",
        "source",
        "backend",
        "force_normal_ratio",
        "host_cpu_ms_per_gb",
        "cpu_saved_pct",
        "total_time_ms",
        "downtime_ms",
        "throughput_mbps",
    ]
    return table[cols].to_string(index=False, float_format=lambda v: f"{v:.1f}")
