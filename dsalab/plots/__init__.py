"""Plotly figures of result datasets (the layout of :func:`dsalab.results.build_dataset`), and their export.

Every figure takes a dataset and needs nothing else to look right: titles and axis labels come from the
variables' ``long_name`` and ``units``, swept parameters the figure does not put on an axis become one trace (or
panel) each, parameters with a single value are named in the subtitle, and error bars are one standard deviation
over the ``repeat`` dimension (failed trials, NaN, are left out).

- :func:`thread_cpu`: per-thread CPU as stacked bars, like the seed's tables (optionally beside the seed's
  published figures, per GB of guest RAM so that the two are comparable);
- :func:`lines`, :func:`batch_and_packet`, :func:`heatmap`: a metric against batch size and packet size;
- :func:`scaling`: device-count and channel scaling;
- :func:`break_even`: host CPU per GB of offload minus CPU detection against normal_ratio, the crossing marked;
- :func:`latency`: total time and downtime over repeats, per detector;
- :func:`overview`: every figure that applies to a dataset; :func:`export` writes HTML, PNG, SVG.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dsalab import results
from dsalab.migration.accounting import SOURCE_THREADS, thread_order

#: dimensions that are not swept parameters
NON_PARAM_DIMS = ("repeat", "thread")
#: how swept parameters (Trial field names) are labelled on axes and legends
PARAM_LABELS = {
    "batch_size": "batch size (pages per DSA batch descriptor)",
    "packet_bytes": "multifd packet size",
    "devices": "DSA devices",
    "channels": "multifd channels",
    "normal_ratio": "normal page ratio (fraction of guest pages that are non-zero)",
    "force_normal_ratio": "forced normal ratio",
    "detector": "zero-page detector",
    "completion": "DSA completion mode",
    "guest_bytes": "guest RAM",
    "cpu_fraction": "fraction of detection done on the CPU",
    "page_size": "page size (bytes)",
}
#: short parameter names for legends and bar labels
PARAM_SHORT = {
    "batch_size": "batch",
    "packet_bytes": "packet",
    "devices": "devices",
    "channels": "channels",
    "normal_ratio": "normal",
    "detector": "",
    "completion": "",
    "guest_bytes": "guest",
}
#: the figure kinds :func:`figure` and ``dsalab plot --kind`` know
KINDS = ("threads", "batch-packet", "heatmap", "scaling", "break-even", "latency")
#: default static image size, px
WIDTH, HEIGHT = 1000, 600
TEMPLATE = "plotly_white"


# -- labels -------------------------------------------------------------------------------------------------------


def label(ds, name: str) -> str:
    """Axis label of a variable or coordinate: its ``long_name`` and ``(units)``, or the parameter label."""
    if name in PARAM_LABELS:
        return PARAM_LABELS[name]
    attrs = ds[name].attrs if name in ds.variables else {}
    if not attrs and name in results.METRICS:
        u, text = results.METRICS[name]
        attrs = {"units": u, "long_name": text}
    text = str(attrs.get("long_name", name.replace("_", " ")))
    u = attrs.get("units")
    text = text[:1].upper() + text[1:]
    return f"{text} ({u})" if u and u != "1" else text


#: short metric names for panel titles and legends
METRIC_SHORT = {
    "host_cpu_ms_per_gb": "host CPU per GB",
    "host_cpu_ms": "host CPU",
    "throughput_mbps": "throughput",
    "total_time_ms": "total time",
    "downtime_ms": "downtime",
    "setup_time_ms": "setup time",
    "detect_cpu_ms": "detection CPU",
    "device_busy_ms": "device busy time",
}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _short_metric(name: str) -> str:
    if name in METRIC_SHORT:
        return METRIC_SHORT[name]
    return results.METRICS[name][1] if name in results.METRICS else name.replace("_", " ")


def format_value(dim: str, value: Any) -> str:
    """A parameter value as people read it (packet sizes in KiB/MiB, ratios as numbers)."""
    if isinstance(value, np.generic):
        value = value.item()
    if dim in ("packet_bytes", "guest_bytes") and isinstance(value, int | float):
        v = int(value)
        for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
            if v >= 1 << shift and v % (1 << shift) == 0:
                return f"{v >> shift} {unit}"
        return f"{v} B"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _point_label(point: Mapping[str, Any]) -> str:
    parts = []
    for dim, value in point.items():
        short = PARAM_SHORT.get(dim, dim.replace("_", " "))
        v = format_value(dim, value)
        parts.append(f"{short} {v}" if short else v)
    return ", ".join(parts)


def swept_dims(ds) -> list[str]:
    """The swept parameters of a dataset (its dimensions but repeat and thread), in order."""
    return [d for d in ds.dims if d not in NON_PARAM_DIMS]


def _subtitle(ds, shown: Iterable[str]) -> str:
    """Fixed parameters (size-1 dimensions, or the base trial of the attributes) and repeats, as one line."""
    shown = set(shown)
    fixed = {d: ds[d].values[0] for d in swept_dims(ds) if ds.sizes[d] == 1 and d not in shown}
    parts = [_point_label({d: v}) if PARAM_SHORT.get(d, "x") else format_value(d, v) for d, v in fixed.items()]
    if "total_bytes" in ds and np.isfinite(ds.total_bytes.where(ds.total_bytes > 0)).any():
        gib = float(ds.total_bytes.where(ds.total_bytes > 0).max()) / 2**20
        parts.append(f"guest {gib:g} MiB")
    if "repeat" in ds.dims:
        parts.append(f"{ds.sizes['repeat']} repeat(s)")
    backends = sorted({str(b) for b in np.ravel(ds.backend.values) if b}) if "backend" in ds else []
    if backends:
        parts.append("backend " + ", ".join(backends))
    failed = int((ds.status != "ok").sum()) if "status" in ds else 0
    if failed:
        parts.append(f"{failed} failed trial(s) left out")
    return " · ".join(parts)


def _title(text: str, ds, shown: Iterable[str]) -> dict:
    sub = _subtitle(ds, shown)
    return {"text": f"{text}<br><sup>{sub}</sup>" if sub else text, "x": 0.02}


# -- reductions ---------------------------------------------------------------------------------------------------


def _ok(ds, name: str):
    """A metric with failed trials as NaN (integer metrics store -1 there)."""
    da = ds[name]
    if "status" in ds:
        da = da.where(ds.status == "ok")
    return da.astype(float)


def mean_std(ds, name: str, dims: Sequence[str] = ("repeat",)):
    """(mean, standard deviation, count) of a metric over ``dims`` (repeats by default), failed trials left out."""
    da = _ok(ds, name)
    dims = [d for d in dims if d in da.dims]
    if not dims:
        return da, da * 0.0, da.notnull().astype(int)
    return da.mean(dims, skipna=True), da.std(dims, skipna=True, ddof=0), da.notnull().sum(dims)


def _groups(ds, exclude: Sequence[str]) -> list[dict[str, Any]]:
    """Every combination of the swept dimensions of size > 1 not in ``exclude`` (one dict each)."""
    dims = [d for d in swept_dims(ds) if d not in exclude and ds.sizes[d] > 1]
    values = [list(ds[d].values) for d in dims]
    return [dict(zip(dims, combo, strict=True)) for combo in itertools.product(*values)] or [{}]


def _sel(ds, point: Mapping[str, Any]):
    """Select one value of each dimension in ``point``, and the only value of every other size-1 dimension."""
    sub = ds.sel({k: v for k, v in point.items()}) if point else ds
    squeeze = [d for d in swept_dims(sub) if sub.sizes[d] == 1]
    return sub.isel({d: 0 for d in squeeze}) if squeeze else sub


def _axis_kind(ds, dim: str) -> dict:
    """Axis settings for a swept parameter: log-2 for sizes and counts that double, categories for strings."""
    vals = ds[dim].values
    if vals.dtype.kind in "OUS":
        return {"type": "category"}
    v = np.asarray(vals, dtype=float)
    if dim in ("batch_size", "packet_bytes", "guest_bytes") and (v > 0).all():
        ticks = [format_value(dim, x) for x in vals]
        return {"type": "log", "tickvals": list(v), "ticktext": ticks}
    if dim in ("devices", "channels"):
        return {"tickvals": list(v), "ticktext": [format_value(dim, x) for x in vals]}
    return {}


_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _new_figure(rows: int = 1, cols: int = 1, **kw) -> go.Figure:
    fig = make_subplots(rows=rows, cols=cols, **kw) if rows * cols > 1 or kw else go.Figure()
    fig.update_layout(template=TEMPLATE, legend={"title": {"text": ""}}, margin={"t": 90})
    return fig


# -- per-thread CPU -----------------------------------------------------------------------------------------------


def _thread_colors(names: Sequence[str]) -> dict[str, str]:
    senders = [n for n in names if n.startswith("multifdsend_")]
    blues = ["#08519c", "#2171b5", "#4292c6", "#6baed6", "#9ecae1", "#3182bd", "#6a51a3", "#807dba"]
    out = {n: blues[i % len(blues)] for i, n in enumerate(senders)}
    out.update({"live_migration": "#636363", "dsa_completion": "#e6550d"})
    others = [n for n in names if n not in out]
    out.update({n: _color(i + 2) for i, n in enumerate(others)})
    return out


def _ours_by_thread(ds, per_gb: bool) -> tuple[list[str], dict[str, list[float]], list[float]]:
    """(bar labels, thread -> CPU ms per bar, guest GB per bar) of every point of the dataset, mean over repeats."""
    cpu, _, _ = mean_std(ds, "thread_cpu_ms")
    gb = mean_std(ds, "total_bytes")[0] / 1e9
    labels, per_thread, gbs = [], {}, []
    threads = [str(t) for t in ds.thread.values if SOURCE_THREADS.match(str(t))]
    points = _groups(ds, [])
    for point in points:
        sub = _sel(cpu, point)
        g = float(_sel(gb, point))
        labels.append(_point_label(point) or "this run")
        gbs.append(g)
        for t in threads:
            v = float(sub.sel(thread=t)) if t in sub.thread.values else np.nan
            per_thread.setdefault(t, []).append(v / g if per_gb and g > 0 else v)
    return labels, per_thread, gbs


def _seed_by_thread(per_gb: bool) -> tuple[list[str], dict[str, list[float]]]:
    from dsalab import reference

    runtime = reference.cpu_runtime()
    stats = reference.migration_stats()
    labels, per_thread = [], {}
    keys = list(dict.fromkeys(zip(runtime.scenario, runtime["mode"], strict=True)))
    for scenario, mode in keys:
        rows = runtime[(runtime.scenario == scenario) & (runtime["mode"] == mode)]
        st = stats[(stats.scenario == scenario) & (stats["mode"] == mode)]
        gb = float(st.total_ram_kb.iloc[0]) * 1024 / 1e9
        ratio = float(rows.normal_ratio.iloc[0])
        labels.append(f"scenario {scenario} ({mode}, normal {ratio:g})")
        for t in set(per_thread) | set(rows.thread):
            per_thread.setdefault(t, [np.nan] * (len(labels) - 1))
        for t in per_thread:
            match = rows[rows.thread == t].runtime_ms
            v = float(match.iloc[0]) if len(match) else np.nan
            per_thread[t].append(v / gb if per_gb else v)
    return labels, per_thread


def thread_cpu(ds, *, reference: bool = False, per_gb: bool | None = None) -> go.Figure:
    """Per-thread host CPU (source side: live_migration, multifdsend_*, dsa_completion) as stacked bars, one bar per
    parameter point (mean over repeats), the total above each bar, as in the seed's tables.

    Parameters
    ----------
    ds : a result dataset
    reference : put the seed's published figures (:mod:`dsalab.reference`) beside ours
    per_gb : divide by GB of guest RAM migrated (default: when ``reference``, since the seed's guest was 100 GB)
    """
    per_gb = reference if per_gb is None else per_gb
    labels, ours, _ = _ours_by_thread(ds, per_gb)
    groups = ["dsalab (this machine)"] * len(labels)
    data = {t: list(v) for t, v in ours.items()}
    if reference:
        seed_labels, seed = _seed_by_thread(per_gb)
        for t in set(data) | set(seed):
            data[t] = data.get(t, [np.nan] * len(labels)) + seed.get(t, [np.nan] * len(seed_labels))
        labels = labels + seed_labels
        groups = groups + ["seed (published, 100 GB guest)"] * len(seed_labels)
    names = sorted(data, key=thread_order)
    colors = _thread_colors(names)
    # horizontal bars, first point on top: long parameter labels stay readable however many points there are
    y = [groups[::-1], labels[::-1]] if reference else labels[::-1]
    fig = _new_figure()
    for t in names:
        fig.add_bar(
            y=y,
            x=data[t][::-1],
            name=t,
            orientation="h",
            marker_color=colors[t],
            hovertemplate=f"{t}: %{{x:.1f}}<extra></extra>",
        )
    totals = np.nansum(np.array([data[t] for t in names], dtype=float), axis=0) if names else np.zeros(len(labels))
    fig.add_scatter(
        y=y,
        x=totals[::-1],
        mode="text",
        text=[f"  {v:.0f}" if v >= 10 else f"  {v:.2f}" for v in totals[::-1]],
        textposition="middle right",
        showlegend=False,
        hoverinfo="skip",
        name="total",
    )
    unit = "ms/GB" if per_gb else "ms"
    what = "Host CPU per thread" + (" per GB of guest RAM" if per_gb else "")
    fig.update_layout(
        barmode="stack",
        title=_title(what + (", ours beside the seed's" if reference else ""), ds, swept_dims(ds)),
        xaxis_title=f"CPU time ({unit}) of the source-side threads; total at the right",
        yaxis_title="",
        legend_traceorder="normal",
        height=max(HEIGHT // 2, 170 + 30 * len(labels)),
    )
    fig.update_xaxes(range=[0, float(np.nanmax(totals)) * 1.15 if len(totals) and np.nanmax(totals) > 0 else 1])
    return fig


# -- metric against parameters ------------------------------------------------------------------------------------


def _add_lines(
    fig: go.Figure, ds, x: str, metric: str, *, row=None, col=None, legend: bool = True, color_offset: int = 0
) -> int:
    """One line per combination of the other swept parameters; returns how many lines."""
    mean, std, _ = mean_std(ds, metric)
    groups = _groups(ds, [x])
    for i, point in enumerate(groups, start=color_offset):
        m = _sel(mean, point)
        s = _sel(std, point)
        name = _point_label(point) or _short_metric(metric)
        fig.add_scatter(
            x=ds[x].values,
            y=m.values,
            error_y={"type": "data", "array": s.values, "visible": True},
            mode="lines+markers",
            name=name,
            legendgroup=name,
            showlegend=legend,
            line_color=_color(i),
            hovertemplate=f"{name}<br>{x}=%{{x}}<br>{metric}=%{{y:.3g}}<extra></extra>",
            row=row,
            col=col,
        )
    kind = _axis_kind(ds, x)
    if row is None:
        fig.update_xaxes(title_text=label(ds, x), **kind)
        fig.update_yaxes(title_text=label(ds, metric))
    else:
        fig.update_xaxes(title_text=label(ds, x), row=row, col=col, **kind)
        fig.update_yaxes(title_text=label(ds, metric), row=row, col=col)
    return len(groups)


def lines(ds, x: str, metric: str = "host_cpu_ms_per_gb") -> go.Figure:
    """A metric against one swept parameter, mean ± standard deviation over repeats, one line per combination of
    the other swept parameters."""
    _need(ds, [x], "lines")
    fig = _new_figure()
    _add_lines(fig, ds, x, metric)
    fig.update_layout(title=_title(f"{_cap(_short_metric(metric))} against {x.replace('_', ' ')}", ds, [x]))
    return fig


def _multi_lines(ds, xs: Sequence[str], metrics: Sequence[str], title: str) -> go.Figure:
    fig = _new_figure(
        rows=len(metrics),
        cols=len(xs),
        subplot_titles=[
            f"{_short_metric(m)} vs {PARAM_SHORT.get(x) or x.replace('_', ' ')}" for m in metrics for x in xs
        ],
        vertical_spacing=0.16,
        horizontal_spacing=0.1,
    )
    for r, metric in enumerate(metrics, start=1):
        offset = 0  # each column has its own lines (the other parameters): its own colours and legend entries
        for c, x in enumerate(xs, start=1):
            offset += _add_lines(fig, ds, x, metric, row=r, col=c, legend=(r == 1), color_offset=offset)
    fig.update_layout(title=_title(title, ds, xs), height=380 * len(metrics) + 120)
    return fig


def batch_and_packet(ds, metrics: Sequence[str] = ("host_cpu_ms_per_gb", "throughput_mbps")) -> go.Figure:
    """Host CPU per GB and throughput against batch size and packet size (whichever are swept), error bars over
    repeats; the other swept parameters are one line each."""
    xs = [d for d in ("batch_size", "packet_bytes") if d in ds.dims and ds.sizes[d] > 1]
    if not xs:
        raise ValueError("figure 'batch-packet' needs batch_size or packet_bytes swept over more than one value")
    return _multi_lines(ds, xs, metrics, "Host CPU and throughput against batch size and packet size")


def scaling(ds, metrics: Sequence[str] = ("host_cpu_ms_per_gb", "throughput_mbps")) -> go.Figure:
    """Device-count and channel scaling: the metrics against devices and channels (whichever are swept)."""
    xs = [d for d in ("devices", "channels") if d in ds.dims and ds.sizes[d] > 1]
    if not xs:
        raise ValueError("figure 'scaling' needs devices or channels swept over more than one value")
    return _multi_lines(ds, xs, metrics, "Scaling with DSA devices and multifd channels")


def heatmap(ds, metric: str = "host_cpu_ms_per_gb", x: str = "batch_size", y: str = "packet_bytes") -> go.Figure:
    """A metric over two swept parameters (mean over repeats), one panel per combination of the others."""
    _need(ds, [x, y], "heatmap")
    mean, std, _ = mean_std(ds, metric)
    panels = _groups(ds, [x, y])
    if len(panels) > 6:
        raise ValueError(f"heatmap: {len(panels)} panels (other swept parameters); select a subset first (ds.sel)")
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig = _new_figure(
        rows=nrows,
        cols=ncols,
        subplot_titles=[_point_label(p) for p in panels] if panels != [{}] else None,
        horizontal_spacing=0.12,
        vertical_spacing=0.2 if nrows > 1 else 0.1,
    )
    lo, hi = float(np.nanmin(mean.values)), float(np.nanmax(mean.values))
    for i, point in enumerate(panels):
        r, c = i // ncols + 1, i % ncols + 1
        m = _sel(mean, point).transpose(y, x)
        s = _sel(std, point).transpose(y, x)
        text = [
            [f"{a:.3g}<br>±{b:.2g}" for a, b in zip(ra, rb, strict=True)]
            for ra, rb in zip(m.values, s.values, strict=True)
        ]
        fig.add_heatmap(
            x=[format_value(x, v) for v in ds[x].values],
            y=[format_value(y, v) for v in ds[y].values],
            z=m.values,
            text=text,
            texttemplate="%{text}",
            zmin=lo,
            zmax=hi,
            colorscale="Viridis",
            showscale=(i == 0),
            colorbar={"title": {"text": label(ds, metric), "side": "right"}},
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>",
            row=r,
            col=c,
        )
        fig.update_xaxes(title_text=PARAM_SHORT.get(x) or x, type="category", row=r, col=c)
        fig.update_yaxes(title_text=PARAM_SHORT.get(y) or y if c == 1 else "", type="category", row=r, col=c)
    if panels == [{}]:
        fig.update_xaxes(title_text=label(ds, x))
        fig.update_yaxes(title_text=label(ds, y))
    fig.update_layout(height=max(HEIGHT, 160 + 300 * nrows))
    fig.update_layout(title=_title(f"{_cap(_short_metric(metric))} (mean over repeats)", ds, [x, y]))
    return fig


# -- break-even ----------------------------------------------------------------------------------------------------


def _pick_detectors(ds, offload: str | None, baseline: str | None) -> tuple[str, str]:
    dets = [str(d) for d in ds.detector.values]
    if offload is None:
        offload = next((d for d in dets if d.startswith("dsa")), dets[-1])
    if baseline is None:
        baseline = next((d for d in dets if d.startswith("cpu") and d != offload), None)
        baseline = baseline or next(d for d in dets if d != offload)
    for d in (offload, baseline):
        if d not in dets:
            raise ValueError(f"detector {d!r} is not in the dataset (it has {', '.join(dets)})")
    return offload, baseline


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


def break_even_points(
    ds, metric: str = "host_cpu_ms_per_gb", *, offload: str | None = None, baseline: str | None = None
) -> list[dict[str, Any]]:
    """The offload-minus-baseline difference against normal_ratio for each combination of the other swept
    parameters: dicts with the point, the detectors, ``normal_ratio``, ``difference`` and ``error`` arrays, and
    ``crossings`` (normal ratios where the difference changes sign: offload stops or starts paying)."""
    _need(ds, ["normal_ratio", "detector"], "break-even")
    offload, baseline = _pick_detectors(ds, offload, baseline)
    mean, std, n = mean_std(ds, metric)
    out = []
    for point in _groups(ds, ["normal_ratio", "detector"]):
        a, b = _sel(mean.sel(detector=offload), point), _sel(mean.sel(detector=baseline), point)
        sa, sb = _sel(std.sel(detector=offload), point), _sel(std.sel(detector=baseline), point)
        na = np.maximum(_sel(n.sel(detector=offload), point).values, 1)
        nb = np.maximum(_sel(n.sel(detector=baseline), point).values, 1)
        diff = (a - b).values
        err = np.sqrt(sa.values**2 / na + sb.values**2 / nb)  # standard error of the difference of means
        ratio = ds.normal_ratio.values.astype(float)
        out.append(
            {
                "point": point,
                "offload": offload,
                "baseline": baseline,
                "normal_ratio": ratio,
                "offload_mean": a.values,
                "baseline_mean": b.values,
                "difference": diff,
                "error": err,
                "crossings": crossings(ratio, diff),
            }
        )
    return out


def break_even(
    ds, metric: str = "host_cpu_ms_per_gb", *, offload: str | None = None, baseline: str | None = None
) -> go.Figure:
    """Where offload stops paying: the metric (host CPU per GB) of the offload detector minus that of CPU
    detection, against normal_ratio, ± the standard error; below zero offload saves CPU. The crossing of zero
    is marked. Top: both detectors; bottom: the difference.

    ``offload`` defaults to the first ``dsa-*`` detector of the dataset (else its last), ``baseline`` to the first
    ``cpu-*`` detector that is not ``offload``.
    """
    curves = break_even_points(ds, metric, offload=offload, baseline=baseline)
    off, base = curves[0]["offload"], curves[0]["baseline"]
    fig = _new_figure(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=[f"{_short_metric(metric)}: {off} and {base}", f"{off} minus {base} (below 0: {off} saves)"],
    )
    notes = []
    for i, c in enumerate(curves):
        name = _point_label(c["point"])
        prefix = f"{name}: " if name else ""
        for det, key, dash in ((off, "offload_mean", "solid"), (base, "baseline_mean", "dot")):
            fig.add_scatter(
                x=c["normal_ratio"],
                y=c[key],
                mode="lines+markers",
                name=f"{prefix}{det}",
                line={"color": _color(i), "dash": dash},
                row=1,
                col=1,
            )
        fig.add_scatter(
            x=c["normal_ratio"],
            y=c["difference"],
            error_y={"type": "data", "array": c["error"], "visible": True},
            mode="lines+markers",
            name=f"{prefix}{off} − {base}",
            line={"color": _color(i)},
            row=2,
            col=1,
        )
        for k, xc in enumerate(c["crossings"]):
            fig.add_vline(x=xc, line={"color": _color(i), "dash": "dash"}, row=2, col=1)
            fig.add_annotation(
                x=xc,
                y=0,
                text=f"break-even {xc:.2f}",
                showarrow=True,
                arrowhead=2,
                ax=40 if k % 2 == 0 else -40,
                ay=-40 - 28 * ((k + i) % 3),  # staggered: crossings close together stay readable
                row=2,
                col=1,
            )
        if not c["crossings"]:
            d = c["difference"][np.isfinite(c["difference"])]
            if len(d):
                notes.append(f"{prefix}{off} {'saves' if (d < 0).all() else 'costs more'} over the whole range")
    fig.add_hline(y=0, line={"color": "black", "width": 1}, row=2, col=1)
    fig.update_xaxes(title_text=label(ds, "normal_ratio"), row=2, col=1)
    fig.update_yaxes(title_text=label(ds, metric), row=1, col=1)
    fig.update_yaxes(title_text=f"difference ({results.METRICS.get(metric, ('',))[0]})", row=2, col=1)
    if notes:
        fig.add_annotation(
            text="<br>".join(notes), xref="paper", yref="paper", x=0, y=-0.16, showarrow=False, align="left"
        )
    title = "Break-even: where offload stops paying"
    fig.update_layout(title=_title(title, ds, ["normal_ratio", "detector"]), height=750 + 18 * len(notes))
    return fig


# -- latency distributions ----------------------------------------------------------------------------------------


def latency(ds, metrics: Sequence[str] = ("total_time_ms", "downtime_ms"), by: str = "detector") -> go.Figure:
    """Distributions over repeats (and every other swept parameter) of total time and downtime, one box per value
    of ``by`` (default: detector), every trial shown as a point."""
    fig = _new_figure(rows=1, cols=len(metrics), subplot_titles=[_short_metric(m) for m in metrics])
    keys = [v for v in ds[by].values] if by in ds.dims else [None]
    for c, metric in enumerate(metrics, start=1):
        da = _ok(ds, metric)
        for i, key in enumerate(keys):
            sub = da.sel({by: key}) if key is not None else da
            vals = sub.values.ravel()
            vals = vals[np.isfinite(vals)]
            name = format_value(by, key) if key is not None else "all trials"
            fig.add_box(
                y=vals,
                name=name,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker_color=_color(i),
                legendgroup=name,
                showlegend=(c == 1),
                row=1,
                col=c,
            )
        fig.update_yaxes(title_text=label(ds, metric), row=1, col=c)
        fig.update_xaxes(title_text=PARAM_LABELS.get(by, by) if by in ds.dims else "", row=1, col=c)
    fig.update_layout(title=_title("Latency distributions over repeats", ds, [by]))
    return fig


# -- CPU kernels ----------------------------------------------------------------------------------------------------

#: what each case of the kernel benchmark holds
KERNEL_CASES = {
    "all-zero": "all zero",
    "half-random": "half zero, half random",
    "half-last-byte": "half zero, half last-byte",
    "hot-1MiB": "1 MiB zero, in cache",
}


def kernel_bandwidth(rows) -> go.Figure:
    """Zero-page kernels against the memory-read bandwidth reference (``benchmarks/bench_kernels.py`` rows, or
    :func:`dsalab.explore.kernel_benchmark`): GB/s per kernel, one panel per case, one bar per thread count;
    the reference (a loop that ORs every byte, no early exit) is the limit a scan that reads every byte can reach.
    """
    import pandas as pd

    df = pd.DataFrame(rows)
    cases = list(dict.fromkeys(df.case))
    kernels = list(dict.fromkeys(["reference", *df.kernel]))
    fig = _new_figure(
        rows=1, cols=len(cases), subplot_titles=[KERNEL_CASES.get(c, c) for c in cases], horizontal_spacing=0.05
    )
    for i, threads in enumerate(sorted(df.threads.unique())):
        for c, case in enumerate(cases, start=1):
            sub = df[(df.case == case) & (df.threads == threads)].set_index("kernel").reindex(kernels)
            fig.add_bar(
                x=kernels,
                y=sub.gbps,
                name=f"{threads} thread(s)",
                legendgroup=str(threads),
                showlegend=(c == 1),
                marker_color=_color(i),
                text=[f"{v:.1f}" if np.isfinite(v) else "" for v in sub.gbps],
                textposition="outside",
                hovertemplate="%{x}: %{y:.2f} GB/s<extra></extra>",
                row=1,
                col=c,
            )
    fig.update_yaxes(title_text="GB/s (higher is better)", col=1)
    size = int(df["bytes"].max()) if "bytes" in df else 0
    fig.update_layout(
        barmode="group",
        title={
            "text": "Zero-page kernels against the memory-read bandwidth reference"
            + (f"<br><sup>{format_value('guest_bytes', size)} buffers; median of repeats</sup>" if size else ""),
            "x": 0.02,
        },
    )
    return fig


# -- overview, export ---------------------------------------------------------------------------------------------


def _need(ds, dims: Sequence[str], kind: str) -> None:
    missing = [d for d in dims if d not in ds.dims or ds.sizes[d] < 2]
    if missing:
        swept = ", ".join(f"{d} ({ds.sizes[d]})" for d in swept_dims(ds)) or "none"
        raise ValueError(
            f"figure {kind!r} needs {', '.join(missing)} swept over more than one value; this dataset sweeps {swept}"
        )


def _applies(ds, kind: str) -> bool:
    big = {d for d in swept_dims(ds) if ds.sizes[d] > 1}
    return {
        "threads": "thread_cpu_ms" in ds,
        "latency": True,
        "batch-packet": bool(big & {"batch_size", "packet_bytes"}),
        "heatmap": {"batch_size", "packet_bytes"} <= big,
        "scaling": bool(big & {"devices", "channels"}),
        "break-even": {"normal_ratio", "detector"} <= big,
    }[kind]


_BUILDERS: dict[str, Callable[[Any], go.Figure]] = {
    "threads": thread_cpu,
    "batch-packet": batch_and_packet,
    "heatmap": heatmap,
    "scaling": scaling,
    "break-even": break_even,
    "latency": latency,
}


def figure(ds, kind: str) -> go.Figure:
    """The figure of one kind (:data:`KINDS`) for a dataset; ValueError says why when it does not apply."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown figure kind {kind!r}; choose from {', '.join(KINDS)}")
    return _BUILDERS[kind](ds)


def overview(ds, kinds: Sequence[str] | None = None) -> dict[str, go.Figure]:
    """Every figure kind that applies to the dataset (or those of ``kinds`` that do), by kind."""
    kinds = KINDS if kinds is None else kinds
    for k in kinds:
        if k not in _BUILDERS:
            raise ValueError(f"unknown figure kind {k!r}; choose from {', '.join(KINDS)}")
    return {k: figure(ds, k) for k in kinds if _applies(ds, k)}


#: export formats :func:`export` writes
FORMATS = ("html", "png", "svg", "pdf", "jpeg", "webp")


def _ensure_browser() -> None:
    """kaleido 1.x drives a Chrome; point it at the system Chromium when nothing else is configured."""
    if os.environ.get("BROWSER_PATH"):
        return
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            os.environ["BROWSER_PATH"] = found
            return


def export_many(
    figs: Mapping[str, go.Figure] | Sequence[tuple[str | pathlib.Path, go.Figure]],
    formats: Sequence[str] = ("html", "png", "svg"),
    *,
    width: int = WIDTH,
    height: int | None = None,
) -> list[pathlib.Path]:
    """Write several figures (path without suffix -> figure), static images in one kaleido session."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown export format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    items = list(figs.items()) if isinstance(figs, Mapping) else list(figs)
    written: list[pathlib.Path] = []
    static_figs, static_paths, static_kw = [], [], []
    for base, fig in items:
        base = pathlib.Path(base)
        if base.suffix.lstrip(".") in FORMATS:
            base = base.with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = base.with_name(f"{base.name}.{fmt}")
            if fmt == "html":
                fig.write_html(path, include_plotlyjs=True, full_html=True, config={"displaylogo": False})
            else:
                static_figs.append(fig)
                static_paths.append(path)
                static_kw.append(fmt)
            written.append(path)
    if static_figs:
        import plotly.io as pio

        _ensure_browser()
        heights = [height or int(f.layout.height or HEIGHT) for f in static_figs]
        pio.write_images(
            static_figs,
            static_paths,
            format=static_kw,
            width=[width] * len(static_figs),
            height=heights,
        )
    return written


def export(
    fig: go.Figure, path: str | pathlib.Path, formats: Sequence[str] = ("html", "png", "svg")
) -> list[pathlib.Path]:
    """Write ``fig`` as ``path.<format>`` for each format: self-contained HTML (plotly.js embedded, opens
    offline) and static images through kaleido (PNG, SVG, PDF, ...). Returns the paths written."""
    return export_many([(path, fig)], formats)
