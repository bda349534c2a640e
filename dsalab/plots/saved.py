"""Saved by DSA: host CPU and total time of each DSA point minus its CPU-detector twin, paired by repeat."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dsalab.analysis import paired_saving, points, require_swept, saving_pairs, select_point, summarize_over
from dsalab.backends import Backend
from dsalab.errors import InvalidArgument
from dsalab.plots.runs import split_runs
from dsalab.plots.style import (
    PARAM_SHORT,
    color,
    figure_title,
    fit_title,
    metric_units,
    new_figure,
    point_label,
    short_metric,
)

#: the metrics of the figure's panels, top to bottom
SAVED_METRICS = ("host_cpu_ms_per_gb", "total_time_ms")
#: height of one panel, px
PANEL_PX = 330
#: bar pattern of points the model predicted (measured points are plain)
MODEL_PATTERN = "/"
#: what the figure says at a DSA point that has no pair (no CPU-detector twin with a successful trial)
NO_PAIR = "no pair"


def applies(ds) -> bool:
    """Whether ``ds`` sweeps ``detector`` over at least one DSA and one CPU detector (what the figure compares)."""
    return bool(saving_pairs(ds))


def _runs(data) -> list[tuple[str, Any]]:
    """(run name, dataset) of a dataset, one with a ``run`` dimension (each run with only the points, detectors and
    repeats it ran: :func:`dsalab.plots.runs.split_runs`, as the report splits it) or a mapping of them."""
    if isinstance(data, Mapping) and not hasattr(data, "data_vars"):  # a Dataset is a Mapping too
        out = [(str(k), v) for k, v in data.items()]
    elif "run" in getattr(data, "dims", {}):
        out = split_runs(data)
    else:
        out = [("", data)]
    if not out:
        raise InvalidArgument("saved_by_dsa(data={}) is not allowed: give a result dataset or a mapping of them")
    return out


def _is_model(ds, dsa: str, point: Mapping[str, Any]) -> bool:
    """True when the successful trials of the DSA point were predicted by the model (backend ``model``)."""
    sub = select_point(ds.sel(detector=dsa), point)
    ok = np.asarray(sub["status"].values).astype(str) == "ok"
    backends = np.asarray(sub["backend"].values).astype(str)[ok]
    return bool(len(backends)) and bool((backends == str(Backend.MODEL)).all())


def saved_points(ds, dsa: str, cpu: str, metric: str) -> list[dict[str, Any]]:
    """One dict per DSA point of ``ds``: ``point`` (the other swept parameters of more than one value), ``label``,
    ``saved`` (mean over repeat pairs of CPU twin minus DSA, units of ``metric``; NaN without a pair), ``std``
    (sample std over the pairs, ddof=1; NaN for fewer than two pairs: one pair has no spread to show), ``pct``
    (mean saved percent of the twin's value), ``pairs`` and ``model`` (True when the model predicted the DSA
    point). The pairs and the saving are :func:`dsalab.analysis.paired_saving`'s (twin: :func:`~dsalab.analysis.
    cpu_twin`)."""
    saved, pct = paired_saving(ds, dsa, cpu, metric)
    mean, std, n = summarize_over(saved)
    pct_mean = summarize_over(pct)[0]
    out = []
    for point in points(ds, ["detector"]):
        pairs = int(select_point(n, point))
        out.append(
            {
                "point": point,
                "label": point_label(point) or "the only point",
                "saved": float(select_point(mean, point)),
                "std": float(select_point(std, point)) if pairs >= 2 else float("nan"),
                "pct": float(select_point(pct_mean, point)),
                "pairs": pairs,
                "model": _is_model(ds, dsa, point),
            }
        )
    return out


def _bars(fig: go.Figure, pts: list[dict[str, Any]], row: int, metric: str, name: str, key: str, colour: str):
    """The bars of one run and detector pair in panel ``row``: points of two pairs or more with their error bars,
    the others (one pair: no spread to show; none: no bar) in a second trace without, in the same slot (one legend
    entry, ``key`` the offset and legend group)."""
    first = True
    for spread in (True, False):
        some = [p for p in pts if (p["pairs"] >= 2) == spread]
        if not some:
            continue
        pm = " ± %{error_y.array:.2g}" if spread else ""
        fig.add_bar(
            x=[p["label"] for p in some],
            y=[p["saved"] for p in some],
            error_y={"type": "data", "array": [p["std"] for p in some], "visible": spread},
            text=[f"{p['pct']:.0f}%" if np.isfinite(p["pct"]) and row == 1 else "" for p in some],
            textposition="inside",
            insidetextanchor="start",
            customdata=[[p["pairs"], "model" if p["model"] else "measured", f"{p['pct']:.1f}"] for p in some],
            hovertemplate=(
                f"%{{x}}<br>saved %{{y:.3g}} {metric_units(metric)}{pm}"
                "<br>mean of the per-repeat savings: %{customdata[2]}%"
                "<br>%{customdata[0]} repeat pairs, %{customdata[1]}<extra></extra>"
            ),
            marker={"color": colour, "pattern": {"shape": [MODEL_PATTERN if p["model"] else "" for p in some]}},
            name=name,
            legendgroup=key,
            offsetgroup=key,
            showlegend=row == 1 and first,
            row=row,
            col=1,
        )
        first = False


def _axis_title(metric: str) -> str:
    units = metric_units(metric)
    what = "Host CPU" if metric.startswith("host_cpu") else short_metric(metric).capitalize()
    return f"{what} saved ({units})" if units else f"{what} saved"


def saved_by_dsa(data, metrics: Sequence[str] = SAVED_METRICS) -> go.Figure:
    """Host CPU per GB (top) and total time (bottom) each DSA point saves against its CPU-detector twin (same other
    parameters, same repeat), mean over repeat pairs ± their sample standard deviation; above zero DSA saves.

    Parameters
    ----------
    data : a result dataset swept over ``detector`` (a DSA and a CPU one at least), one with a ``run`` dimension,
        or a mapping run name -> dataset (runs overlaid, one bar colour per run and detector pair)
    metrics : the metrics of the panels, top to bottom (units of each on its axis)

    Bars the model predicted (backend ``model``) are hatched and named "(model)". The label on each bar of the top
    panel is the summary's saving of that point (:func:`dsalab.analysis.summarize`: the mean over repeat pairs of
    the saving in percent of the twin's value; with noisy repeats its sign can differ from the bar's, a mean of
    differences).
    """
    runs = _runs(data)
    for name, ds in runs:
        require_swept(ds, ["detector"], f"figure 'saved'{' of run ' + name if name else ''}")
        if not applies(ds):
            dets = ", ".join(str(d) for d in ds["detector"].values)
            raise InvalidArgument(f"figure 'saved' needs a dsa-* and a cpu-* detector; the dataset has {dets}")
    fig = new_figure(
        rows=len(metrics),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1 if len(metrics) > 1 else 0,
    )
    trace = 0
    dims: list[str] = []  # the swept parameters of every run, in order of appearance: the x axis names them all
    unpaired: list[str] = []  # DSA points with no pair of successful trials, listed under the title
    categories: list[str] = []  # the x axis: every run's points, in order
    for name, ds in runs:
        # run names come from files and attributes: text, never plotly markup (plotly shows &lt; &gt; &amp; as
        # the characters, but not &quot;, and a quote outside a tag is only text)
        shown_name = html.escape(name, quote=False)
        for dsa, cpu in saving_pairs(ds):
            for row, metric in enumerate(metrics, start=1):
                pts = saved_points(ds, dsa, cpu, metric)
                dims += [d for d in pts[0]["point"] if d not in dims]
                categories += [p["label"] for p in pts if p["label"] not in categories]
                what = f"{dsa} vs {cpu}" + (" (model)" if all(p["model"] for p in pts) else "")
                label = f"{shown_name}: {what}" if name else what
                key = f"{name}|{dsa}|{cpu}"
                _bars(fig, pts, row, metric, label, key, color(trace))
                missing = [p["label"] for p in pts if p["pairs"] == 0]
                if missing:  # said on the plot, not left as a gap
                    fig.add_scatter(
                        x=missing,
                        y=[0.0] * len(missing),
                        mode="text",
                        text=[NO_PAIR] * len(missing),
                        textposition="top center",
                        textfont={"color": color(trace)},
                        name=f"{label}: {NO_PAIR}",
                        legendgroup=key,
                        showlegend=False,
                        hoverinfo="skip",
                        row=row,
                        col=1,
                    )
                    if row == 1:
                        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
                        unpaired.append(f"{label} at {', '.join(missing[:4])}{more}")
                fig.update_yaxes(title_text=_axis_title(metric), row=row, col=1)
                fig.add_hline(y=0, line={"color": "black", "width": 1}, row=row, col=1)
            trace += 1
    shown = ", ".join(PARAM_SHORT.get(d) or d.replace("_", " ") for d in dims)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=categories)
    fig.update_xaxes(title_text=f"Parameter point: {shown}" if shown else "", row=len(metrics))
    bars = [t for t in fig.data if t.type == "bar"]
    only = f": {bars[0].name}" if trace == 1 else ""
    text = (
        f"Saved by DSA against CPU detection{only}<br>"
        "<sup>CPU-detector twin minus DSA point, "
        "paired by repeat · above 0: DSA saves · error bars: ±1 std of the paired differences (2+ pairs)</sup>"
    )
    if unpaired:
        text += f"<br><sup>{NO_PAIR} (no CPU-detector twin that succeeded): {'; '.join(unpaired)}</sup>"
    if len(runs) == 1:
        title = figure_title(text, runs[0][1], ["detector", *dims])
    else:
        names = " · ".join(html.escape(n, quote=False) for n, _ in runs)
        title = {"text": f"{text}<br><sup>runs: {names}</sup>", "x": 0.02}
    fig.update_layout(
        title=title,
        barmode="group",
        height=PANEL_PX * len(metrics) + 200,
        showlegend=trace > 1,  # one pair of one run: its name is in the title instead
        uniformtext={"minsize": 9, "mode": "hide"},
    )
    fit_title(fig)
    return fig
