"""What a sweep found: the best parameter point per detector and the host CPU DSA saves against CPU detection.

Only successful trials (``status == "ok"``) count. Means and standard deviations are over ``repeat``; the DSA
saving is computed per repeat first (repeat *r* of every point migrates the same guest memory, so the pairs are
like for like) and then summarised, so its spread is the spread of the saving, not of the two metrics.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from dsalab.results import param_dims

#: the two criteria of "best": metric -> what it means
CRITERIA = {
    "host_cpu_ms_per_gb": "lowest host CPU per GB moved",
    "total_time_ms": "shortest total time",
}


@dataclasses.dataclass
class Summary:
    """Result of :func:`summarize`.

    Attributes
    ----------
    best : one row per (detector, criterion): the point (other swept parameters), mean, std and count over repeats
    savings : one row per (DSA detector, CPU detector, point of the other parameters): both means of
        ``host_cpu_ms_per_gb``, ``saved_pct`` (100 * (cpu - dsa) / cpu) mean and std over repeats, count
    overall : one row per (DSA detector, CPU detector): the saving over every point and repeat
    """

    best: pd.DataFrame
    savings: pd.DataFrame
    overall: pd.DataFrame


def _ok(ds, name: str):
    return ds[name].where(ds["status"] == "ok")


def _detectors(ds) -> list[tuple[str, Any]]:
    """(label, selection) per detector: a coordinate value when swept, else the one detector of the base trial."""
    if "detector" in ds["status"].dims:
        return [(str(d), ds.sel(detector=d)) for d in ds["detector"].values]
    label = ""
    if "base_trial" in ds.attrs:
        label = json.loads(ds.attrs["base_trial"]).get("detector", "")
    if not label:
        ok = ds["backend"].values[ds["status"].values == "ok"]
        label = ",".join(sorted(set(map(str, ok)))) or "unknown"
    return [(label, ds)]


def _point(sub, dims: list[str], index: tuple[int, ...]) -> dict[str, Any]:
    return {
        d: sub[d].values[i].item() if hasattr(sub[d].values[i], "item") else sub[d].values[i]
        for d, i in zip(dims, index, strict=True)
    }


def summarize(ds) -> Summary:
    """Best points per detector and the DSA vs CPU saving of one run (a dataset without a ``run`` dimension)."""
    if "run" in ds.dims:
        raise ValueError("summarize one run at a time: ds.sel(run=name) (the dataset has a run dimension)")
    rows = []
    for label, sub in _detectors(ds):
        dims = [d for d in param_dims(sub) if d in sub["status"].dims]
        for metric, meaning in CRITERIA.items():
            values = _ok(sub, metric)
            mean = values.mean("repeat", skipna=True)
            n = values.count("repeat")
            row = {"detector": label, "criterion": meaning, "metric": metric}
            arr = np.asarray(mean.transpose(*dims).values, dtype=float) if dims else np.asarray(mean.values)
            if np.all(np.isnan(arr)):
                rows.append(row | {"point": "no successful trial", "mean": np.nan, "std": np.nan, "n": 0})
                continue
            flat = int(np.nanargmin(arr))
            index = np.unravel_index(flat, arr.shape) if dims else ()
            sel = dict(zip(dims, index, strict=True))
            at = values.isel(sel)
            rows.append(
                row
                | {
                    "point": _point(sub, dims, index),
                    "mean": float(at.mean(skipna=True)),
                    "std": float(at.std(skipna=True, ddof=1)) if int(n.isel(sel)) > 1 else 0.0,
                    "n": int(n.isel(sel)),
                }
            )
    best = pd.DataFrame(rows, columns=["detector", "criterion", "metric", "point", "mean", "std", "n"])
    savings, overall = _savings(ds)
    return Summary(best, savings, overall)


def _savings(ds) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = ["dsa", "cpu", "point", "cpu_ms_per_gb", "dsa_ms_per_gb", "saved_pct", "saved_pct_std", "n"]
    ocols = ["dsa", "cpu", "saved_pct", "saved_pct_std", "n"]
    if "detector" not in ds["status"].dims:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=ocols)
    names = [str(d) for d in ds["detector"].values]
    cpus = [d for d in names if d.startswith("cpu")]
    dsas = [d for d in names if d.startswith("dsa")]
    metric = _ok(ds, "host_cpu_ms_per_gb")
    rows, orows = [], []
    others = [d for d in param_dims(ds) if d != "detector"]
    for dsa in dsas:
        for cpu in cpus:
            c = metric.sel(detector=cpu)
            d = metric.sel(detector=dsa)
            saved = 100.0 * (c - d) / c  # per repeat, paired: same guest memory
            stacked = saved.stack(point=others) if others else saved.expand_dims(point=[0])
            cm = c.mean("repeat", skipna=True)
            dm = d.mean("repeat", skipna=True)
            for i in range(stacked.sizes["point"]):
                s = stacked.isel(point=i)
                n = int(s.count())
                sel = {k: stacked["point"].values[i][j] for j, k in enumerate(others)} if others else {}
                rows.append(
                    {
                        "dsa": dsa,
                        "cpu": cpu,
                        "point": {k: v.item() if hasattr(v, "item") else v for k, v in sel.items()},
                        "cpu_ms_per_gb": float(cm.sel(sel)) if sel else float(cm),
                        "dsa_ms_per_gb": float(dm.sel(sel)) if sel else float(dm),
                        "saved_pct": float(s.mean(skipna=True)) if n else np.nan,
                        "saved_pct_std": float(s.std(skipna=True, ddof=1)) if n > 1 else (0.0 if n else np.nan),
                        "n": n,
                    }
                )
            flat = saved.values.ravel()
            flat = flat[~np.isnan(flat)]
            orows.append(
                {
                    "dsa": dsa,
                    "cpu": cpu,
                    "saved_pct": float(flat.mean()) if flat.size else np.nan,
                    "saved_pct_std": float(flat.std(ddof=1)) if flat.size > 1 else (0.0 if flat.size else np.nan),
                    "n": int(flat.size),
                }
            )
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(orows, columns=ocols)


def _fmt_point(point: Any) -> str:
    if not isinstance(point, dict):
        return str(point)
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "(the only point)"


def format_summary(summary: Summary, ds=None, *, max_rows: int = 20) -> str:
    """The summary as text (``ds`` adds a header line: sweep, host, date, failed trials)."""
    lines = []
    if ds is not None:
        failed = int((ds["status"] == "failed").sum())
        lines.append(
            f"sweep {ds.attrs.get('sweep_name', '?')} on {ds.attrs.get('machine_hostname', '?')} "
            f"({ds.attrs.get('machine_date', '?')}, git {str(ds.attrs.get('git_commit', '?'))[:8]}): "
            f"{int(ds['status'].size)} trials, {failed} failed"
        )
        if failed:
            errors = sorted({str(e) for e in ds["error"].values[ds["status"].values == "failed"]})
            for e in errors[:3]:
                lines.append(f"  failed: {e[:160]}")
    lines.append("best point per detector (mean ± std over repeats):")
    for _, r in summary.best.iterrows():
        if r.n == 0:
            lines.append(f"  {r.detector:<13} {r.criterion:<30} no successful trial")
            continue
        lines.append(
            f"  {r.detector:<13} {r.criterion:<30} {r['mean']:10.1f} ± {r['std']:<8.1f} "
            f"{_unit(r.metric):<6} n={r.n}  at {_fmt_point(r.point)}"
        )
    if len(summary.overall):
        lines.append("host CPU saved by DSA vs CPU detection (host_cpu_ms_per_gb, paired by repeat):")
        for _, r in summary.overall.iterrows():
            if r.n == 0:
                lines.append(f"  {r.dsa} vs {r.cpu}: no pair of successful trials")
                continue
            lines.append(
                f"  {r.dsa} vs {r.cpu}: {r.saved_pct:.1f}% ± {r.saved_pct_std:.1f}% over {r.n} pairs (all points)"
            )
        shown = summary.savings[summary.savings.n > 0].head(max_rows)
        for _, r in shown.iterrows():
            lines.append(
                f"    {_fmt_point(r.point):<40} {r.cpu_ms_per_gb:8.1f} -> {r.dsa_ms_per_gb:8.1f} ms/GB  "
                f"saved {r.saved_pct:6.1f}% ± {r.saved_pct_std:.1f}% (n={r.n})"
            )
        if int((summary.savings.n > 0).sum()) > max_rows:
            lines.append(f"    ... {int((summary.savings.n > 0).sum()) - max_rows} more points")
    return "\n".join(lines)


def _unit(metric: str) -> str:
    from dsalab.results import units

    return units(metric)
