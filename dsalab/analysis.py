"""What a sweep found: the best parameter point per detector, the host CPU DSA saves against CPU detection, and
where offload stops paying (break-even); the statistics every figure and panel shows.

One rule for every statistic here and in :mod:`dsalab.plots` and :mod:`dsalab.widgets`:

- only successful trials (``status == "ok"``) count; failed ones are NaN and left out;
- means and standard deviations are over ``repeat``; the standard deviation is the sample one (``ddof=1``), 0 for
  a single successful repeat and NaN for none;
- where two series are compared (DSA against CPU detection), the comparison is made per repeat first (repeat *r*
  of every point migrates the same guest memory, seed ``base.seed + r``, so the pairs are like for like; a repeat
  counts only when both of its trials succeeded) and then summarised, so its spread is the spread of the
  difference, not of the two metrics.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dsalab.backends import is_cpu, is_dsa
from dsalab.caveats import caveats as find_caveats
from dsalab.errors import InvalidArgument
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
        ``host_cpu_ms_per_gb`` over the repeat pairs (:func:`cpu_twin`), ``saved_pct`` (100 * (cpu - dsa) / cpu)
        mean and std over the pairs, count
    overall : one row per (DSA detector, CPU detector): the saving over every point and repeat
    caveats : what the figures cannot tell by themselves, one sentence each (:func:`dsalab.caveats.caveats`)
    """

    best: pd.DataFrame
    savings: pd.DataFrame
    overall: pd.DataFrame
    caveats: list[str] = dataclasses.field(default_factory=list)


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
            mean, std, n = summarize_over(ok_values(sub, metric))
            row = {"detector": label, "criterion": meaning, "metric": metric}
            arr = np.asarray(mean.transpose(*dims).values, dtype=float) if dims else np.asarray(mean.values)
            if np.all(np.isnan(arr)):
                rows.append(row | {"point": "no successful trial", "mean": np.nan, "std": np.nan, "n": 0})
                continue
            flat = int(np.nanargmin(arr))
            index = np.unravel_index(flat, arr.shape) if dims else ()
            sel = dict(zip(dims, index, strict=True))
            rows.append(
                row
                | {
                    "point": _point(sub, dims, index),
                    "mean": float(mean.isel(sel)),
                    "std": float(std.isel(sel)),
                    "n": int(n.isel(sel)),
                }
            )
    best = pd.DataFrame(rows, columns=["detector", "criterion", "metric", "point", "mean", "std", "n"])
    savings, overall = _savings(ds)
    return Summary(best, savings, overall, find_caveats(ds))


def _savings(ds) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = ["dsa", "cpu", "point", "cpu_ms_per_gb", "dsa_ms_per_gb", "saved_pct", "saved_pct_std", "n"]
    ocols = ["dsa", "cpu", "saved_pct", "saved_pct_std", "n"]
    if "detector" not in ds["status"].dims:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=ocols)
    rows, orows = [], []
    others = [d for d in param_dims(ds) if d != "detector"]
    for dsa, cpu in saving_pairs(ds):
        c, d = cpu_twin(ds, dsa, cpu)  # the means below are over the pairs the saving counts
        _, saved = paired_saving(ds, dsa, cpu)  # per repeat, paired: same guest memory
        stacked = saved.stack(point=others) if others else saved.expand_dims(point=[0])
        cm, dm = summarize_over(c)[0], summarize_over(d)[0]
        sm, ss, sn = summarize_over(saved)
        for i in range(stacked.sizes["point"]):
            sel = {k: stacked["point"].values[i][j] for j, k in enumerate(others)} if others else {}
            rows.append(
                {
                    "dsa": dsa,
                    "cpu": cpu,
                    "point": {k: v.item() if hasattr(v, "item") else v for k, v in sel.items()},
                    "cpu_ms_per_gb": float(cm.sel(sel)),
                    "dsa_ms_per_gb": float(dm.sel(sel)),
                    "saved_pct": float(sm.sel(sel)),
                    "saved_pct_std": float(ss.sel(sel)),
                    "n": int(sn.sel(sel)),
                }
            )
        om, os_, on = summarize_over(saved, saved.dims)  # every point and repeat
        orows.append({"dsa": dsa, "cpu": cpu, "saved_pct": float(om), "saved_pct_std": float(os_), "n": int(on)})
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(orows, columns=ocols)


def saving_pairs(ds) -> list[tuple[str, str]]:
    """(DSA detector, CPU detector) pairs a dataset swept over ``detector`` can compare, in coordinate order; ``[]``
    when it does not sweep detectors or lacks a DSA or a CPU one."""
    if "detector" not in ds.dims:
        return []
    names = [str(d) for d in ds["detector"].values]
    return [(dsa, cpu) for dsa in names if is_dsa(dsa) for cpu in names if is_cpu(cpu)]


#: Trial fields only the DSA detectors use (the engine ignores them for CPU detectors; the same list as
#: :data:`dsalab.qemu.mapping.DSA_ONLY`, which this data-layer module cannot import)
DSA_ONLY = ("devices", "batch_size", "completion", "cpu_fraction")


def repeats_are_seeds(ds) -> bool:
    """Whether repeat *r* of every point of ``ds`` ran with seed ``base.seed + r`` (a sweep or a tuning run:
    attribute ``seed``; :func:`dsalab.explore.run_grid`: ``grid``; a dataset that records neither), rather than
    being the *r*-th run of that point with the one trial's seed (:func:`dsalab.explore.history_dataset`, a panel's
    history or ``results_dataset``: attribute ``trial`` alone)."""
    return not ("trial" in ds.attrs and "seed" not in ds.attrs and "grid" not in ds.attrs)


def _first_valid(da, dims: Sequence[str]):
    """``da`` with each NaN replaced by the first finite value along ``dims`` (in coordinate order, the other
    dimensions fixed); NaN stays where there is none."""
    rest = [d for d in da.dims if d not in dims]
    t = da.transpose(*rest, *dims)
    arr = np.asarray(t.values, dtype=float)
    flat = arr.reshape((*arr.shape[: len(rest)], -1))
    ok = np.isfinite(flat)
    first = np.take_along_axis(flat, np.argmax(ok, axis=-1)[..., None], axis=-1)
    first = np.where(ok.any(axis=-1, keepdims=True), first, np.nan)
    return t.copy(data=np.where(ok, flat, first).reshape(arr.shape)).transpose(*da.dims)


def cpu_twin(ds, dsa: str, cpu: str, metric: str = "host_cpu_ms_per_gb"):
    """(twin, dsa values) of ``metric``: for every trial of DSA detector ``dsa``, the value of its CPU-detector twin,
    and its own value; both NaN where the pair is incomplete (either trial failed, not run, or no twin).

    The twin of a DSA trial is the ``cpu`` trial with the same guest (size, normal and forced-normal ratios, seed),
    channels, packet size, dirty rate, bandwidth and every other swept parameter, **ignoring the fields only DSA
    uses** (:data:`DSA_ONLY`: batch_size, completion, devices, cpu_fraction), which change nothing for a CPU
    detector:

    - repeats that are seeds (:func:`repeats_are_seeds`: a sweep file, a tuning run, a grid): the ``cpu`` trial of
      the same repeat (same seed, same guest memory) at the same DSA-only values if it succeeded, else the first
      that succeeded at other DSA-only values, in coordinate order;
    - repeats that are only the r-th run of a point (a panel's history, ``results_dataset``: every trial ran with
      the trial's one seed, so every CPU trial of the point migrated the same guest): the mean of the ``cpu``
      trials of the point that succeeded, over repeats and DSA-only values.

    Returns two DataArrays over the swept parameters but ``detector``, and ``repeat``, in the metric's units.
    """
    values = ok_values(ds, metric)
    c, d = values.sel(detector=cpu), values.sel(detector=dsa)
    shared = [k for k in DSA_ONLY if k in c.dims]
    if repeats_are_seeds(ds):
        twin = _first_valid(c, shared) if shared else c
    else:
        over = [k for k in (*shared, "repeat") if k in c.dims]
        twin = summarize_over(c, over)[0].broadcast_like(c).transpose(*c.dims) if over else c
    both = twin.notnull() & d.notnull()
    return twin.where(both), d.where(both)


def paired_saving(ds, dsa: str, cpu: str, metric: str = "host_cpu_ms_per_gb"):
    """What DSA detector ``dsa`` saves against CPU detector ``cpu`` in ``metric``, per repeat: the one definition the
    summary, the report and the "saved by DSA" figure share.

    Each DSA trial is paired with its CPU-detector twin (:func:`cpu_twin`: same parameters but the DSA-only ones,
    same seed); a pair counts only when both trials succeeded (else NaN), so a DSA point with no twin has no pair.

    Returns
    -------
    (saved, saved_pct) : DataArrays over the other swept parameters and ``repeat``: ``saved = cpu - dsa`` in the
    metric's units (above 0: DSA saves) and ``saved_pct = 100 * saved / cpu``
    """
    c, d = cpu_twin(ds, dsa, cpu, metric)
    saved = c - d
    return saved, 100.0 * saved / c


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
    lines.extend(f"note: {c}" for c in summary.caveats)
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


# -- statistics over repeats (the figures and panels use these) ----------------------------------------------------

#: dimensions of a result dataset that are not swept parameters
NON_PARAM_DIMS = ("repeat", "thread")


def swept_dims(ds) -> list[str]:
    """The swept parameters of a dataset (its dimensions but repeat and thread), in order."""
    return [d for d in ds.dims if d not in NON_PARAM_DIMS]


def ok_values(ds, name: str):
    """A metric as floats with failed trials as NaN (integer metrics store -1 there, flags -1)."""
    da = ds[name]
    if "status" in ds:
        da = da.where(ds["status"] == "ok")
    return da.astype(float)


def summarize_over(da, dims: Sequence[str] = ("repeat",)):
    """(mean, standard deviation, count) of a float DataArray over ``dims``, NaN left out, by the module's rule:
    sample standard deviation (``ddof=1``) where at least two values count, 0 where one does, NaN where none."""
    dims = [d for d in dims if d in da.dims]
    if not dims:
        return da, da.where(da.isnull(), 0.0), da.notnull().astype(int)
    n = da.notnull().sum(dims)
    total = da.fillna(0.0).sum(dims)
    mean = (total / n.where(n > 0)).where(n > 0)
    squares = ((da - mean) ** 2).fillna(0.0).sum(dims)
    std = np.sqrt(squares / (n - 1).where(n > 1))
    return mean, std.where(n != 1, 0.0), n


def mean_std(ds, name: str, dims: Sequence[str] = ("repeat",)):
    """(mean, standard deviation, count) of a metric over ``dims`` (repeats by default), failed trials left out;
    the standard deviation follows the module's rule (``ddof=1``; 0 for one successful trial, NaN for none).

    Parameters
    ----------
    ds : a result dataset (:func:`dsalab.results.build_dataset`)
    name : a metric of it, e.g. ``"host_cpu_ms_per_gb"``; the mean and std keep its units
    dims : dimensions to reduce; those the metric lacks are ignored

    Returns
    -------
    (mean, std, count) : three DataArrays over the remaining dimensions (count is an int, trials that succeeded)
    """
    return summarize_over(ok_values(ds, name), dims)


def points(ds, exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every combination of the swept dimensions of size > 1 not in ``exclude`` (one dict each; ``[{}]`` if none)."""
    dims = [d for d in swept_dims(ds) if d not in exclude and ds.sizes[d] > 1]
    values = [list(ds[d].values) for d in dims]
    return [dict(zip(dims, combo, strict=True)) for combo in itertools.product(*values)] or [{}]


def select_point(ds, point: Mapping[str, Any]):
    """Select one value of each dimension in ``point``, and the only value of every other size-1 dimension."""
    sub = ds.sel(dict(point)) if point else ds
    squeeze = [d for d in swept_dims(sub) if sub.sizes[d] == 1]
    return sub.isel({d: 0 for d in squeeze}) if squeeze else sub


def require_swept(ds, dims: Sequence[str], what: str) -> None:
    """Raise :class:`~dsalab.errors.InvalidArgument` unless each of ``dims`` is swept over more than one value;
    ``what`` (e.g. ``"figure 'heatmap'"``) names what needs them."""
    missing = [d for d in dims if d not in ds.dims or ds.sizes[d] < 2]
    if missing:
        swept = ", ".join(f"{d} ({ds.sizes[d]})" for d in swept_dims(ds)) or "none"
        raise InvalidArgument(
            f"{what} needs {', '.join(missing)} swept over more than one value; this dataset sweeps {swept}"
        )


def crossings(x: np.ndarray, y: np.ndarray) -> list[float]:
    """Where the piecewise-linear curve (x, y) crosses zero (NaN points skipped; a point at exactly 0 counts)."""
    ok = np.isfinite(y)
    x, y = np.asarray(x, dtype=float)[ok], np.asarray(y, dtype=float)[ok]
    out = []
    for i in range(len(x)):
        if y[i] == 0:
            out.append(float(x[i]))
        elif i + 1 < len(x) and y[i] * y[i + 1] < 0:
            out.append(float(x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i])))
    return out


def pick_detectors(ds, offload: str | None = None, baseline: str | None = None) -> tuple[str, str]:
    """(offload, baseline) detectors of a dataset swept over ``detector``: ``offload`` defaults to the first
    ``dsa-*`` detector (else the last), ``baseline`` to the first ``cpu-*`` detector that is not ``offload``."""
    dets = [str(d) for d in ds.detector.values]
    if offload is None:
        offload = next((d for d in dets if is_dsa(d)), dets[-1])
    if baseline is None:
        baseline = next((d for d in dets if is_cpu(d) and d != offload), None)
        baseline = baseline or next(d for d in dets if d != offload)
    for d in (offload, baseline):
        if d not in dets:
            raise InvalidArgument(f"detector {d!r} is not in the dataset (it has {', '.join(dets)})")
    return offload, baseline


def break_even_points(
    ds, metric: str = "host_cpu_ms_per_gb", *, offload: str | None = None, baseline: str | None = None
) -> list[dict[str, Any]]:
    """The offload-minus-baseline difference of ``metric`` against normal_ratio, paired by repeat, for each
    combination of the other swept parameters.

    Returns
    -------
    one dict per combination: ``point`` (the other parameters), ``offload`` and ``baseline`` (detector names),
    arrays over normal_ratio: ``normal_ratio``, ``offload_mean`` and ``baseline_mean`` (each detector's mean over
    its successful repeats, units of ``metric``), ``difference`` (mean over repeats of offload minus baseline of the
    same repeat, both successful), ``error`` (its standard error: sample std of the paired differences / sqrt(pairs);
    0 for one pair), ``pairs`` (how many); and ``crossings`` (normal ratios where the difference changes sign:
    offload stops or starts paying). Detectors default as :func:`pick_detectors` says.
    """
    require_swept(ds, ["normal_ratio", "detector"], "figure 'break-even'")
    offload, baseline = pick_detectors(ds, offload, baseline)
    values = ok_values(ds, metric)
    mean, _, _ = summarize_over(values)
    diff, spread, pairs = summarize_over(values.sel(detector=offload) - values.sel(detector=baseline))
    error = spread / np.sqrt(pairs.where(pairs > 0))
    ratio = ds.normal_ratio.values.astype(float)
    out = []
    for point in points(ds, ["normal_ratio", "detector"]):
        d = select_point(diff, point).values
        out.append(
            {
                "point": point,
                "offload": offload,
                "baseline": baseline,
                "normal_ratio": ratio,
                "offload_mean": select_point(mean.sel(detector=offload), point).values,
                "baseline_mean": select_point(mean.sel(detector=baseline), point).values,
                "difference": d,
                "error": select_point(error, point).values,
                "pairs": select_point(pairs, point).values,
                "crossings": crossings(ratio, d),
            }
        )
    return out
