"""Figures of the tenant contention model (datasets of :mod:`dsalab.model.tenants_data` and grids of
:mod:`dsalab.model.tenants_sweep`), in the house style; every title says the figures come from the model.

- :func:`tenant_times`: each tenant's migration time beside its time alone on the host, sorted;
- :func:`utilisation`: each device's utilisation over time;
- :func:`compare`: average and worst tenant of a metric for several labelled runs (e.g. all-CPU, DSA with
  fallback, DSA with QoS);
- :func:`cpu_breakdown`: the average tenant's host CPU split into what it costs alone, retry spin, extra
  completion polling and fallback checks, for several labelled runs;
- :func:`grid_lines`: a grid's average and worst case of a metric against one swept parameter, one line pair per
  value of another.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from dsalab.plots.style import color, label, new_figure

#: said in every title: these are the model's figures, not measurements
MODEL = "model (simulated)"


def _title(text: str, ds, *, policy: bool = True) -> dict:
    sub = f"{MODEL}; profile {ds.attrs.get('profile_name', '?')}"
    if policy and "policy" in ds.attrs:
        sub += f"; policy {ds.attrs['policy']}"
    return {"text": f"{text}<br><sup>{sub}</sup>"}


def tenant_times(ds) -> go.Figure:
    """Each tenant's migration time (ms), slowest first, beside its predicted time alone on the host."""
    order = np.argsort(-ds["migration_time_ms"].values, kind="stable")
    names = [str(n) for n in ds["tenant"].values[order]]
    fig = new_figure()
    fig.add_bar(x=names, y=ds["migration_time_ms"].values[order], name="with the other tenants", marker_color=color(0))
    fig.add_scatter(
        x=names, y=ds["predicted_time_ms"].values[order], name="alone", mode="markers", marker_color=color(1)
    )
    fig.update_yaxes(title_text=label(ds, "migration_time_ms"))
    fig.update_xaxes(title_text="Tenant, slowest first", showticklabels=len(names) <= 40)
    fig.update_layout(title=_title("Migration time of each tenant", ds))
    return fig


def utilisation(ds) -> go.Figure:
    """Busy share of each device over time (one line per device)."""
    fig = new_figure()
    for i, d in enumerate(ds["device"].values):
        fig.add_scatter(
            x=ds["time_ms"].values, y=ds["device_utilisation"].sel(device=d).values, name=f"device {d}",
            mode="lines", line={"color": color(i)},
        )  # fmt: skip
    fig.update_yaxes(title_text=label(ds, "device_utilisation"), range=[0, 1.05])
    fig.update_xaxes(title_text=label(ds, "time_ms"))
    fig.update_layout(title=_title("Device utilisation over time", ds))
    return fig


def compare(runs: Mapping[str, object], metric: str = "migration_time_ms") -> go.Figure:
    """Average and worst tenant of ``metric`` for each labelled run (label -> tenants dataset)."""
    labels = list(runs)
    first = next(iter(runs.values()))
    fig = new_figure()
    avg = [float(runs[k][metric].mean()) for k in labels]  # type: ignore[index]
    worst = [float(runs[k][metric].max()) for k in labels]  # type: ignore[index]
    fig.add_bar(x=labels, y=avg, name="average tenant", marker_color=color(0))
    fig.add_bar(x=labels, y=worst, name="worst tenant", marker_color=color(3))
    fig.update_yaxes(title_text=label(first, metric))
    title = _title(f"{label(first, metric)}: average and worst tenant", first, policy=False)
    fig.update_layout(barmode="group", title=title)
    return fig


def grid_lines(ds, metric: str, x: str, by: str | None = None) -> go.Figure:
    """A grid's ``<metric>_mean`` (solid) and ``<metric>_worst`` (dashed) against parameter ``x``, one pair per
    value of ``by``; other parameters must have one value (select them first)."""
    fig = new_figure()
    keys = list(ds[by].values) if by else [None]
    for i, key in enumerate(keys):
        sub = ds.sel({by: key}) if by else ds
        name = f"{by} {key}" if by else ""
        for part, dash in (("mean", "solid"), ("worst", "dash")):
            var = f"{metric}_{part}"
            fig.add_scatter(
                x=sub[x].values, y=np.asarray(sub[var].values, dtype=float).ravel(),
                name=f"{name} {'average' if part == 'mean' else 'worst'}".strip(), mode="lines+markers",
                line={"color": color(i), "dash": dash},
            )  # fmt: skip
    fig.update_xaxes(title_text=label(ds, x))
    fig.update_yaxes(title_text=label(ds, f"{metric}_mean").replace(", average over tenants", ""))
    fig.update_layout(title=_title(f"{label(ds, f'{metric}_mean').split(',')[0]} against {x}", ds))
    return fig


#: the parts of a tenant's host CPU (dataset variable, legend), in stacking order
CPU_PARTS = (
    ("predicted_host_cpu_ms", "alone (predict)"),
    ("retry_cpu_ms", "retry spin (ENQCMD + PAUSE)"),
    ("wait_cpu_ms", "extra completion polling"),
    ("fallback_cpu_ms", "fallback checks on the CPU"),
)


def cpu_breakdown(runs: Mapping[str, object]) -> go.Figure:
    """The average tenant's host CPU (ms) of each labelled run, stacked by :data:`CPU_PARTS`; a run without the
    parts (all-CPU) is one bar of its ``host_cpu_ms``."""
    labels = list(runs)
    first = next(iter(runs.values()))
    fig = new_figure()
    for i, (var, name) in enumerate(CPU_PARTS):
        y = [float(runs[k][var].mean()) if var in runs[k] else None for k in labels]  # type: ignore[index,operator]
        if var == "predicted_host_cpu_ms":
            y = [v if v is not None else float(runs[k]["host_cpu_ms"].mean()) for k, v in zip(labels, y, strict=True)]  # type: ignore[index]
        fig.add_bar(x=labels, y=y, name=name, marker_color=color(i))
    fig.update_yaxes(title_text="Host CPU per tenant, average (ms)")
    fig.update_layout(barmode="stack", title=_title("Where a tenant's host CPU goes", first, policy=False))
    return fig
