"""Distributions over repeats: total time and downtime, one box per detector, every trial a point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from dsalab.analysis import ok_values
from dsalab.plots.style import (
    color,
    figure_title,
    fit_title,
    format_value,
    label,
    new_figure,
    short_metric,
)


def latency(ds, metrics: Sequence[str] = ("total_time_ms", "downtime_ms"), by: str = "detector") -> go.Figure:
    """Distributions over repeats (and every other swept parameter) of total time and downtime, one box per value
    of ``by`` (default: detector), every successful trial shown as a point."""
    fig = new_figure(rows=1, cols=len(metrics), subplot_titles=[short_metric(m) for m in metrics])
    keys = [v for v in ds[by].values] if by in ds.dims else [None]
    for c, metric in enumerate(metrics, start=1):
        da = ok_values(ds, metric)
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
                marker_color=color(i),
                legendgroup=name,
                showlegend=(c == 1),
                row=1,
                col=c,
            )
        fig.update_yaxes(title_text=label(ds, metric), row=1, col=c)
        fig.update_xaxes(title_text=label(ds, by) if by in ds.dims else "", row=1, col=c)
    fig.update_layout(title=figure_title("Latency distributions over repeats", ds, [by]))
    fit_title(fig)
    return fig
