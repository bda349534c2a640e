"""A metric against the swept parameters: lines over one parameter (batch size, packet size, devices, channels),
and heatmaps over two. Error bars and the ± of heatmap cells are one sample standard deviation over repeats
(:func:`dsalab.analysis.mean_std`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from dsalab.analysis import mean_std, points, require_swept, select_point
from dsalab.errors import InvalidArgument
from dsalab.plots.style import (
    HEIGHT,
    PARAM_SHORT,
    axis_kind,
    cap,
    figure_title,
    fit_title,
    format_value,
    label,
    line_style,
    mean_pm,
    new_figure,
    point_label,
    short_metric,
)

#: the height of one legend entry, px
LEGEND_ROW_PX = 21


def _add_lines(
    fig: go.Figure, ds, x: str, metric: str, colors: dict, *, row=None, col=None, legend: bool = True
) -> int:
    """One line per combination of the other swept parameters; returns how many lines.

    ``colors`` is the figure's: line key -> colour index, one index per line's own parameter values (without the
    detector) and x, given in order, so that the twins of a line in other rows and the other detectors' lines at
    the same values share its colour, told apart by the detector's dash and marker (:func:`line_style`)."""
    mean, std, _ = mean_std(ds, metric)
    groups = sorted(points(ds, [x]), key=lambda p: str(p.get("detector", "")))  # one detector's lines together
    titled: set[str] = set()
    for point in groups:
        m = select_point(mean, point)
        s = select_point(std, point)
        full = point_label(point) or short_metric(metric)
        detector = str(point["detector"]) if "detector" in point else ""
        rest = {k: v for k, v in point.items() if k != "detector"}
        index = colors.setdefault((x, point_label(rest)), len(colors))
        # every line its own legend group (a click hides it in every row), the detector's name over its first
        first = detector and detector not in titled and legend
        titled.add(detector)
        fig.add_scatter(
            x=ds[x].values,
            y=m.values,
            error_y={"type": "data", "array": s.values, "visible": True},
            mode="lines+markers",
            name=(point_label(rest) or detector) if detector else full,
            legendgroup=f"{x}|{full}",
            legendgrouptitle_text=detector if first else None,
            showlegend=legend,
            hovertemplate=f"{full}<br>{x}=%{{x}}<br>{metric}=%{{y:.3g}}<extra></extra>",
            row=row,
            col=col,
            **line_style(point, index),
        )
    kind = axis_kind(ds, x)
    if row is None:
        fig.update_xaxes(title_text=label(ds, x), **kind)
        fig.update_yaxes(title_text=label(ds, metric))
    else:
        fig.update_xaxes(title_text=label(ds, x), row=row, col=col, **kind)
        fig.update_yaxes(title_text=label(ds, metric), row=row, col=col)
    fig.update_layout(legend={"tracegroupgap": 0})
    return len(groups)


def lines(ds, x: str, metric: str = "host_cpu_ms_per_gb") -> go.Figure:
    """A metric against one swept parameter, mean ± standard deviation over repeats, one line per combination of
    the other swept parameters."""
    require_swept(ds, [x], "figure 'lines'")
    fig = new_figure()
    _add_lines(fig, ds, x, metric, {})
    fig.update_layout(title=figure_title(f"{cap(short_metric(metric))} against {x.replace('_', ' ')}", ds, [x]))
    fit_title(fig)
    return fig


def _multi_lines(ds, xs: Sequence[str], metrics: Sequence[str], title: str) -> go.Figure:
    fig = new_figure(
        rows=len(metrics),
        cols=len(xs),
        subplot_titles=[
            f"{short_metric(m)} vs {PARAM_SHORT.get(x) or x.replace('_', ' ')}" for m in metrics for x in xs
        ],
        vertical_spacing=0.16,
        horizontal_spacing=0.1,
    )
    colors: dict = {}  # each column's lines (the other parameters) their own colours; rows' twins the same
    for r, metric in enumerate(metrics, start=1):
        for c, x in enumerate(xs, start=1):
            _add_lines(fig, ds, x, metric, colors, row=r, col=c, legend=(r == 1))
    # tall enough for the legend (one entry per line, a title per detector): plotly clips a longer one
    entries = sum(1 + bool(t.legendgrouptitle.text) for t in fig.data if t.showlegend is not False)
    height = max(380 * len(metrics) + 120, LEGEND_ROW_PX * entries + 200)
    fig.update_layout(title=figure_title(title, ds, xs), height=height)
    fit_title(fig)
    return fig


def batch_and_packet(ds, metrics: Sequence[str] = ("host_cpu_ms_per_gb", "throughput_mbps")) -> go.Figure:
    """Host CPU per GB and throughput against batch size and packet size (whichever are swept), error bars over
    repeats; the other swept parameters are one line each."""
    xs = [d for d in ("batch_size", "packet_bytes") if d in ds.dims and ds.sizes[d] > 1]
    if not xs:
        raise InvalidArgument("figure 'batch-packet' needs batch_size or packet_bytes swept over more than one value")
    return _multi_lines(ds, xs, metrics, "Host CPU and throughput against batch size and packet size")


def scaling(ds, metrics: Sequence[str] = ("host_cpu_ms_per_gb", "throughput_mbps")) -> go.Figure:
    """Device-count and channel scaling: the metrics against devices and channels (whichever are swept)."""
    xs = [d for d in ("devices", "channels") if d in ds.dims and ds.sizes[d] > 1]
    if not xs:
        raise InvalidArgument("figure 'scaling' needs devices or channels swept over more than one value")
    return _multi_lines(ds, xs, metrics, "Scaling with DSA devices and multifd channels")


def heatmap(ds, metric: str = "host_cpu_ms_per_gb", x: str = "batch_size", y: str = "packet_bytes") -> go.Figure:
    """A metric over two swept parameters (mean over repeats, ± the standard deviation in each cell), one panel per
    combination of the others (at most 6)."""
    require_swept(ds, [x, y], "figure 'heatmap'")
    mean, std, _ = mean_std(ds, metric)
    panels = points(ds, [x, y])
    if len(panels) > 6:
        raise InvalidArgument(
            f"heatmap: {len(panels)} panels (other swept parameters); at most 6 are allowed, select a subset first "
            "(ds.sel)"
        )
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    fig = new_figure(
        rows=nrows,
        cols=ncols,
        subplot_titles=[point_label(p) for p in panels] if panels != [{}] else None,
        horizontal_spacing=0.12,
        vertical_spacing=0.2 if nrows > 1 else 0.1,
    )
    lo, hi = float(np.nanmin(mean.values)), float(np.nanmax(mean.values))
    for i, point in enumerate(panels):
        r, c = i // ncols + 1, i % ncols + 1
        m = select_point(mean, point).transpose(y, x)
        s = select_point(std, point).transpose(y, x)
        text = [[mean_pm(a, b) for a, b in zip(ra, rb, strict=True)] for ra, rb in zip(m.values, s.values, strict=True)]
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
        fig.update_xaxes(title_text=label(ds, x), type="category", row=r, col=c)
        fig.update_yaxes(title_text=label(ds, y) if c == 1 else "", type="category", row=r, col=c)
    fig.update_layout(height=max(HEIGHT, 160 + 300 * nrows))
    fig.update_layout(title=figure_title(f"{cap(short_metric(metric))} (mean over repeats)", ds, [x, y]))
    fit_title(fig)
    return fig
