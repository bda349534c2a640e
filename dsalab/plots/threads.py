"""Per-thread host CPU as stacked bars, as in the seed's tables, optionally beside the seed's published figures."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dsalab.analysis import mean_std, points, select_point, swept_dims
from dsalab.plots.style import (
    HEIGHT,
    SOURCE_THREADS,
    figure_title,
    fit_title,
    new_figure,
    point_label,
    thread_colors,
    thread_order,
)

#: legend rows: px per entry, and the plot's margins below and above a legend as tall as the plot
LEGEND_ROW_PX = 22
LEGEND_MARGIN_PX = 110


def _ours_by_thread(ds, per_gb: bool) -> tuple[list[str], dict[str, list[float]], list[float]]:
    """(bar labels, thread -> CPU ms per bar, guest GB per bar) of every point of the dataset, mean over repeats."""
    cpu, _, _ = mean_std(ds, "thread_cpu_ms")
    gb = mean_std(ds, "total_bytes")[0] / 1e9
    labels, per_thread, gbs = [], {}, []
    threads = [str(t) for t in ds.thread.values if SOURCE_THREADS.match(str(t))]
    for point in points(ds):
        sub = select_point(cpu, point)
        g = float(select_point(gb, point))
        labels.append(point_label(point) or "this run")
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
        forced = reference.SCENARIOS[int(scenario)]["force_normal_ratio"]
        what = f"{forced:g} forced normal" if forced else "all zero"
        labels.append(f"scenario {scenario} ({mode}, {what})")
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
    colors = thread_colors(names)
    # horizontal bars, first point on top: long parameter labels stay readable however many points there are
    y = [groups[::-1], labels[::-1]] if reference else labels[::-1]
    fig = new_figure()
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
        title=figure_title(what + (", ours beside the seed's" if reference else ""), ds, swept_dims(ds)),
        xaxis_title=f"Source-side thread CPU time, total at the right ({unit})",
        yaxis_title="",
        legend_traceorder="normal",
        height=max(HEIGHT // 2, 170 + 30 * len(labels)),
    )
    fit_title(fig)
    # tall enough that the legend (one row per thread) shows every thread without scrolling
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 90
    fig.update_layout(height=max(fig.layout.height, top + LEGEND_MARGIN_PX + LEGEND_ROW_PX * len(names)))
    fig.update_xaxes(range=[0, float(np.nanmax(totals)) * 1.15 if len(totals) and np.nanmax(totals) > 0 else 1])
    return fig
