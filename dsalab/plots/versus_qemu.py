"""The engine against a real QEMU, paired by repeat: figures of :func:`dsalab.engine_vs_qemu.compare`'s rows.

Each figure has one panel per scenario (a normal ratio). Rows are plain dicts (``scenario``, ``runner``,
``repeat``, ``prealloc``, ``total_time_ms``, ``cpu_ms_per_gb[<role>]``); preallocated repeats are paired by their
``repeat`` number, and a cold run (``prealloc`` False) is shown apart, labelled "cold".
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dsalab.plots.style import HEIGHT, color, new_figure

#: the runners and their colours
RUNNER_COLORS = {"engine": color(0), "qemu": color(1)}
#: how :func:`ratios` names a metric
METRIC_NAMES = {
    "total_time_ms": "total time",
    "cpu_ms_per_gb[live_migration]": "live_migration CPU/GB",
    "cpu_ms_per_gb[multifdsend_*]": "multifdsend_* CPU/GB",
    "cpu_ms_per_gb[multifdrecv_*]": "multifdrecv_* CPU/GB",
    "transferred_bytes": "transferred bytes",
}
#: thread roles (as in the rows' ``cpu_ms_per_gb[<role>]``) and their colours, source side first
ROLE_COLORS = {"live_migration": "#636363", "multifdsend_*": "#2171b5", "multifdrecv_*": "#9ecae1"}


def _scenarios(rows: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r["scenario"] for r in rows))


def _label(r: dict) -> str:
    return f"{r['repeat']}" if r["prealloc"] else "cold"


def _title(text: str, rows: Sequence[dict]) -> dict:
    per = [
        sum(1 for r in rows if r["prealloc"] and r["runner"] == "engine" and r["scenario"] == n)
        for n in _scenarios(rows)
    ]
    runs = max(per, default=0)
    sub = f"same GuestMemory and Trial on both runners, {runs} preallocated repeats per runner, alternating"
    return {"text": f"{text}<br><sup>{sub}</sup>", "x": 0.02}


def _panel_titles(rows: Sequence[dict]) -> list[str]:
    ratio = {r["scenario"]: r["normal_ratio"] for r in rows}
    return [f"{s} (normal ratio {ratio[s]})" for s in _scenarios(rows)]


def time_by_repeat(rows: Sequence[dict]) -> go.Figure:
    """Total migration time of each repeat, engine and QEMU side by side (the cold runs last), one panel per
    scenario, ms."""
    names = _scenarios(rows)
    fig = new_figure(1, len(names), subplot_titles=_panel_titles(rows), shared_yaxes=True)
    for col, name in enumerate(names, start=1):
        for runner, c in RUNNER_COLORS.items():
            mine = [r for r in rows if r["scenario"] == name and r["runner"] == runner]
            fig.add_bar(
                x=[_label(r) for r in mine],
                y=[r["total_time_ms"] for r in mine],
                name=runner,
                marker_color=c,
                legendgroup=runner,
                showlegend=col == 1,
                hovertemplate=f"{runner}<br>repeat %{{x}}<br>%{{y:.0f}} ms<extra></extra>",
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="Repeat", type="category", row=1, col=col)
    fig.update_yaxes(title_text="Total time (ms)", row=1, col=1)
    fig.update_layout(barmode="group", title=_title("Total migration time, engine vs QEMU", rows), height=HEIGHT)
    return fig


def cpu_by_role(rows: Sequence[dict]) -> go.Figure:
    """CPU per GB of guest RAM by thread role (``live_migration``, ``multifdsend_*``, ``multifdrecv_*``), stacked,
    engine and QEMU side by side in each repeat, one panel per scenario, ms/GB."""
    names = _scenarios(rows)
    fig = new_figure(1, len(names), subplot_titles=_panel_titles(rows), shared_yaxes=True)
    for col, name in enumerate(names, start=1):
        mine = [r for r in rows if r["scenario"] == name]
        x = [[_label(r) for r in mine], [r["runner"] for r in mine]]
        for role, c in ROLE_COLORS.items():
            fig.add_bar(
                x=x,
                y=[r[f"cpu_ms_per_gb[{role}]"] for r in mine],
                name=role,
                marker_color=c,
                legendgroup=role,
                showlegend=col == 1,
                hovertemplate=f"{role}<br>%{{x}}<br>%{{y:.0f}} ms/GB<extra></extra>",
                row=1,
                col=col,
            )
    fig.update_yaxes(title_text="CPU per GB of guest RAM (ms/GB)", row=1, col=1)
    fig.update_layout(barmode="stack", title=_title("CPU by thread role, engine vs QEMU", rows), height=HEIGHT)
    return fig


def ratios(
    rows: Sequence[dict], metrics: Sequence[str] = ("total_time_ms", "cpu_ms_per_gb[multifdsend_*]")
) -> go.Figure:
    """Engine/QEMU ratio of each metric per preallocated repeat (1 = equal; below 1 the engine is faster or
    cheaper), one panel per scenario."""
    names = _scenarios(rows)
    fig = new_figure(1, len(names), subplot_titles=_panel_titles(rows), shared_yaxes=True)
    for col, name in enumerate(names, start=1):
        warm = [r for r in rows if r["scenario"] == name and r["prealloc"]]
        by = {(r["runner"], r["repeat"]): r for r in warm}
        reps = sorted({r["repeat"] for r in warm if ("engine", r["repeat"]) in by and ("qemu", r["repeat"]) in by})
        for i, m in enumerate(metrics):
            ys = [by["engine", k][m] / by["qemu", k][m] if by["qemu", k][m] else None for k in reps]
            fig.add_scatter(
                x=[str(k) for k in reps],
                y=ys,
                mode="lines+markers",
                name=METRIC_NAMES.get(m, m),
                line_color=color(i + 2),
                legendgroup=m,
                showlegend=col == 1,
                hovertemplate=f"{METRIC_NAMES.get(m, m)}<br>repeat %{{x}}<br>engine/QEMU %{{y:.2f}}<extra></extra>",
                row=1,
                col=col,
            )
        fig.add_hline(y=1.0, line_dash="dot", line_color="#7f7f7f", row=1, col=col)
        fig.update_xaxes(title_text="Repeat", type="category", row=1, col=col)
    fig.update_yaxes(title_text="Engine / QEMU (ratio)", rangemode="tozero", row=1, col=1)
    fig.update_layout(title=_title("Engine/QEMU ratio per repeat", rows), height=HEIGHT)
    return fig
