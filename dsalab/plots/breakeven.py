"""Where offload stops paying: the offload detector's metric minus CPU detection's against normal_ratio."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dsalab.analysis import break_even_points
from dsalab.plots.style import (
    color,
    figure_title,
    fit_title,
    label,
    metric_units,
    new_figure,
    point_label,
    short_metric,
)


def break_even(
    ds, metric: str = "host_cpu_ms_per_gb", *, offload: str | None = None, baseline: str | None = None
) -> go.Figure:
    """Where offload stops paying: the metric (host CPU per GB) of the offload detector minus that of CPU
    detection, against normal_ratio; below zero offload saves CPU. Top: both detectors (mean over repeats);
    bottom: the difference, paired by repeat, ± its standard error (:func:`dsalab.analysis.break_even_points`),
    each crossing of zero marked.

    ``offload`` defaults to the first ``dsa-*`` detector of the dataset (else its last), ``baseline`` to the first
    ``cpu-*`` detector that is not ``offload``.
    """
    curves = break_even_points(ds, metric, offload=offload, baseline=baseline)
    off, base = curves[0]["offload"], curves[0]["baseline"]
    fig = new_figure(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=[f"{short_metric(metric)}: {off} and {base}", f"{off} minus {base} (below 0: {off} saves)"],
    )
    notes = []
    for i, c in enumerate(curves):
        name = point_label(c["point"])
        prefix = f"{name}: " if name else ""
        for det, key, dash in ((off, "offload_mean", "solid"), (base, "baseline_mean", "dash")):
            fig.add_scatter(
                x=c["normal_ratio"],
                y=c[key],
                mode="lines+markers",
                name=f"{prefix}{det}",
                line={"color": color(i), "dash": dash},
                row=1,
                col=1,
            )
        fig.add_scatter(
            x=c["normal_ratio"],
            y=c["difference"],
            error_y={"type": "data", "array": c["error"], "visible": True},
            mode="lines+markers",
            name=f"{prefix}{off} − {base}",
            line={"color": color(i)},
            row=2,
            col=1,
        )
        for k, xc in enumerate(c["crossings"]):
            fig.add_vline(x=xc, line={"color": color(i), "dash": "dash"}, row=2, col=1)
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
    fig.update_yaxes(title_text=f"Difference, {off} minus {base} ({metric_units(metric)})", row=2, col=1)
    if notes:
        fig.add_annotation(
            text="<br>".join(notes), xref="paper", yref="paper", x=0, y=-0.16, showarrow=False, align="left"
        )
    title = "Break-even: where offload stops paying"
    fig.update_layout(title=figure_title(title, ds, ["normal_ratio", "detector"]), height=750 + 18 * len(notes))
    fit_title(fig)
    return fig
