"""The seed's published figures (:mod:`dsalab.reference`) beside ours: the savings of the cover letter's two
scenarios, and ours at the points that migrate the same kind of guest."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsalab import reference
from dsalab.analysis import paired_saving, saving_pairs, summarize_over
from dsalab.report.page import esc, mean_std, number, table
from dsalab.trial import Trial


@dataclasses.dataclass(frozen=True)
class SeedScenario:
    """One scenario of the cover letter: CPU and DSA host CPU (stated totals, ms), total time (ms), guest (GB)."""

    scenario: int
    fields: dict[str, float]
    cpu_ms: float
    dsa_ms: float
    cpu_time_ms: float
    dsa_time_ms: float
    guest_gb: float

    @property
    def cpu_saved_pct(self) -> float:
        """Host CPU saved by DSA, % of CPU detection's."""
        return 100.0 * (self.cpu_ms - self.dsa_ms) / self.cpu_ms

    @property
    def time_saved_pct(self) -> float:
        """Total time saved by DSA, % of CPU detection's."""
        return 100.0 * (self.cpu_time_ms - self.dsa_time_ms) / self.cpu_time_ms


def seed_scenarios() -> list[SeedScenario]:
    """The cover letter's scenarios with their published numbers (:mod:`dsalab.reference`)."""
    stats = reference.migration_stats()
    out = []
    for scenario, fields in reference.SCENARIOS.items():
        rows = {m: stats[(stats.scenario == scenario) & (stats["mode"] == m)].iloc[0] for m in ("cpu", "dsa")}
        out.append(
            SeedScenario(
                scenario,
                dict(fields),
                float(reference.STATED_TOTALS_MS[(scenario, "cpu")]),
                float(reference.STATED_TOTALS_MS[(scenario, "dsa")]),
                float(rows["cpu"].total_time_ms),
                float(rows["dsa"].total_time_ms),
                float(rows["cpu"].total_ram_kb) * 1024 / 1e9,
            )
        )
    return out


def base_fields(ds) -> dict[str, Any]:
    """The trial fields every point of ``ds`` shares: its base trial (attributes ``base_trial`` or ``trial``, JSON),
    else a default :class:`~dsalab.trial.Trial`'s."""
    fields = {f.name: f.default for f in dataclasses.fields(Trial)}
    for key in ("base_trial", "trial"):
        text = ds.attrs.get(key)
        if isinstance(text, str):
            try:
                fields.update(json.loads(text))
                break
            except (ValueError, TypeError):
                continue
    return fields


def _points(ds, others: list[str]) -> list[dict[str, Any]]:
    values = [[v.item() if hasattr(v, "item") else v for v in ds[d].values] for d in others]
    return [dict(zip(others, combo, strict=True)) for combo in itertools.product(*values)] or [{}]


def matches(ds, scenario: SeedScenario) -> list[dict[str, Any]]:
    """The points of ``ds`` (other parameters than ``detector``) that migrate the scenario's guest: its
    normal_ratio and force_normal_ratio, from the point or else from the base trial."""
    base = base_fields(ds)
    others = [d for d in ds["status"].dims if d not in ("detector", "repeat")]
    found = []
    for point in _points(ds, others):
        fields = base | point
        if all(np.isclose(float(fields.get(k, np.nan)), v) for k, v in scenario.fields.items()):
            found.append(point)
    return found


def _ours(ds, dsa: str, cpu: str, metric: str, point: dict[str, Any]) -> tuple[float, float, int]:
    _, pct = paired_saving(ds, dsa, cpu, metric)
    mean, std, n = summarize_over(pct)
    sel = {k: v for k, v in point.items() if k in mean.dims}
    return float(mean.sel(sel)), float(std.sel(sel)), int(n.sel(sel))


def _saving(mean: float, std: float, n: int) -> str:
    """A saving in percent over ``n`` repeat pairs: ``mean ± std % (n=N)`` (no ± below two pairs; "no pair")."""
    return f"{mean_std(mean, std, n=n)} % (n={n})" if n else "no pair"


def _where(fields: dict[str, float]) -> str:
    forced = fields.get("force_normal_ratio", 0.0)
    return f"all-zero guest, {forced:g} of it forced normal" if forced else "all-zero guest"


def seed_section(runs: Sequence[tuple[str, Any]]) -> str:
    """Section "The seed's published figures beside ours": per scenario the seed's host CPU and total time saved
    by DSA, and ours (mean ± std over repeat pairs) at every point of every run that migrates the same guest."""
    out = ['<h2 id="seed">The seed\'s published figures beside ours</h2>']
    comparable = [(n, ds) for n, ds in runs if saving_pairs(ds)]
    if not comparable:
        out.append(
            '<p class="note">The seed compared CPU detection with DSA; no run here sweeps both a cpu-* and a dsa-* '
            "detector, so its figures do not apply.</p>"
        )
        return "\n".join(out)
    rows = []
    for sc in seed_scenarios():
        seed_cells = [
            f"{sc.scenario}: {_where(sc.fields)}",
            f"{number(sc.cpu_ms)} → {number(sc.dsa_ms)} ms ({number(sc.cpu_ms / sc.guest_gb)} → "
            f"{number(sc.dsa_ms / sc.guest_gb)} ms/GB)",
            f"{sc.cpu_saved_pct:.1f} %",
            f"{sc.time_saved_pct:.1f} %",
        ]
        ours = []
        for name, ds in comparable:
            for dsa, cpu in saving_pairs(ds):
                for point in matches(ds, sc):
                    cpu_pct = _ours(ds, dsa, cpu, "host_cpu_ms_per_gb", point)
                    time_pct = _ours(ds, dsa, cpu, "total_time_ms", point)
                    what = ", ".join(f"{k}={v}" for k, v in point.items()) or "every point"
                    where = f"{name}: " if name else ""
                    ours.append([f"{where}{dsa} vs {cpu} at {what}", _saving(*cpu_pct), _saving(*time_pct)])
        if not ours:
            ours = [["no point here migrates this guest", "–", "–"]]
        for i, o in enumerate(ours):
            rows.append((seed_cells if i == 0 else ["", "", "", ""]) + o)
    header = [
        "seed scenario (100 GB guest, 8 channels)",
        "seed host CPU, CPU → DSA",
        "seed: host CPU saved",
        "seed: total time saved",
        "ours: run, pair and point",
        "ours: host CPU saved",
        "ours: total time saved",
    ]
    out.append(table(header, rows, numeric=(2, 3, 5, 6)))
    setup = reference.SEED_SETUP
    out.append(
        f'<p class="note">Seed: {esc(setup["cpu"])}, {number(setup["guest_bytes"] / 1e9)} GB guest, '
        f"{setup['channels']} multifd channels, {setup['devices']} DSA device, a real network; host CPU is the "
        "cover letter's stated totals of the source threads. Ours: the saving of each DSA point against its "
        "CPU-detector twin, paired by repeat (the summary's definition), in percent, so that guests of other sizes "
        "compare; absolute times do not.</p>"
    )
    return "\n".join(out)
