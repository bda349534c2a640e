"""The model beside a measurement: for each DSA point of an engine sweep's dataset, the host CPU the engine
measured DSA to save against CPU detection, and the saving :func:`dsalab.model.predict` gives for the same trials
on a hardware profile (with the profile's real DSA device standing for the emulated one).

This is what ``make run`` prints after the quick sweep (``dsalab sweep FILE --model PROFILE``, ``dsalab summary
RESULT --model PROFILE``): the emulated device shares the host's cores, so its measured saving is a lower bound;
the model says what a real device would save on this host.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from dsalab.errors import InvalidArgument
from dsalab.trial import Trial

#: columns of :func:`model_beside`'s table
COLUMNS = (
    "dsa",
    "cpu",
    "point",
    "measured_saved_pct",
    "measured_saved_pct_std",
    "n",
    "model_cpu_ms_per_gb",
    "model_dsa_ms_per_gb",
    "model_saved_pct",
)


def _trial_fields(ds, point: dict[str, Any]) -> dict[str, Any]:
    """Trial keyword arguments of a point of ``ds``: the base trial, then the point's coordinates."""
    try:
        base = json.loads(ds.attrs["base_trial"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(
            "dataset has no base_trial attribute (JSON of the sweep's base Trial); only sweep results have one"
        ) from None
    fields = {**base, **point}
    devices = fields.get("devices")
    if isinstance(devices, str):  # coordinates join device specs with ";"
        fields["devices"] = int(devices) if devices.isdigit() else tuple(d for d in devices.split(";") if d)
    elif isinstance(devices, list):
        fields["devices"] = tuple(devices)
    return fields


def model_beside(ds, profile: Any) -> pd.DataFrame:
    """One row per (DSA detector, CPU detector, point of the other swept parameters) of an engine sweep's
    dataset: the measured host CPU saving (``measured_saved_pct``, mean and std over paired repeats, %, and ``n``)
    and the model's (``model_saved_pct``, %, from ``model_cpu_ms_per_gb`` and ``model_dsa_ms_per_gb``, host CPU
    ms per GB) for the same trials on ``profile`` (a :class:`~dsalab.model.HardwareProfile` or its TOML path).

    Raises :class:`~dsalab.errors.InvalidArgument` for a dataset the model produced (nothing measured to compare).
    """
    from dsalab import analysis
    from dsalab.model import predict
    from dsalab.model.profile import load

    if "model" in str(ds.attrs.get("backend", "")).split(","):
        raise InvalidArgument(
            f"dataset of sweep {ds.attrs.get('sweep_name', '?')} was predicted by the model (backend model); "
            "--model compares an engine run with the model"
        )
    prof = load(profile)
    rows = []
    for _, r in analysis.summarize(ds).savings.iterrows():
        if r.n == 0:
            continue
        fields = _trial_fields(ds, dict(r.point))
        cpu = predict(Trial(**{**fields, "detector": r.cpu}), prof).host_cpu_ms_per_gb
        dsa = predict(Trial(**{**fields, "detector": r.dsa}), prof).host_cpu_ms_per_gb
        rows.append(
            {
                "dsa": r.dsa,
                "cpu": r.cpu,
                "point": r.point,
                "measured_saved_pct": r.saved_pct,
                "measured_saved_pct_std": r.saved_pct_std,
                "n": r.n,
                "model_cpu_ms_per_gb": cpu,
                "model_dsa_ms_per_gb": dsa,
                "model_saved_pct": 100.0 * (cpu - dsa) / cpu if cpu > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def format_model_beside(table: pd.DataFrame, profile: Any, *, max_rows: int = 20) -> str:
    """:func:`model_beside`'s table as text: per pair of detectors the mean over points, then one line per point."""
    name = getattr(profile, "name", "") or os.fspath(profile)
    where = getattr(profile, "path", "")
    lines = [
        f"model beside the measurement (host CPU saved by DSA, %): hardware profile {name}"
        + (f" ({where})" if where else "")
        + ", its real DSA device in place of the emulated one"
    ]
    if table.empty:
        lines.append("  no DSA point with a CPU detector beside it in this dataset: nothing to compare")
        return "\n".join(lines)
    for (dsa, cpu), rows in table.groupby(["dsa", "cpu"], sort=False):
        lines.append(
            f"  {dsa} vs {cpu} (mean over {len(rows)} points): measured {rows.measured_saved_pct.mean():.1f}%, "
            f"model (real DSA) {rows.model_saved_pct.mean():.1f}%"
        )
        shown = rows.head(max_rows)
        points = [", ".join(f"{k}={v}" for k, v in p.items()) or "(the only point)" for p in shown.point]
        width = max(map(len, points))
        for point, (_, r) in zip(points, shown.iterrows(), strict=True):
            lines.append(
                f"    {point:<{width}}  measured {r.measured_saved_pct:6.1f}% ± {r.measured_saved_pct_std:<5.1f} "
                f"model {r.model_saved_pct:6.1f}% ({r.model_cpu_ms_per_gb:.1f} -> {r.model_dsa_ms_per_gb:.1f} ms/GB)"
            )
        if len(rows) > max_rows:
            lines.append(f"    ... {len(rows) - max_rows} more points")
    return "\n".join(lines)
