"""Shared look of every figure: labels, parameter and metric names, colours, titles, axis settings.

The vocabulary the figures need (metric units and names, thread roles) is imported here and nowhere else in
:mod:`dsalab.plots`, so that moving it is a one-file change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dsalab import schema
from dsalab.analysis import swept_dims
from dsalab.caveats import caveats
from dsalab.threads import SOURCE_THREADS, thread_order
from dsalab.units import format_bytes

__all__ = [
    "COLORS",
    "DETECTOR_COLORS",
    "DETECTOR_SYMBOLS",
    "HEIGHT",
    "METRIC_SHORT",
    "PARAM_LABELS",
    "PARAM_SHORT",
    "SOURCE_THREADS",
    "TEMPLATE",
    "THREAD_FIXED",
    "WIDTH",
    "axis_kind",
    "cap",
    "color",
    "figure_title",
    "fit_title",
    "format_value",
    "label",
    "line_dash",
    "line_style",
    "mean_pm",
    "metric_units",
    "new_figure",
    "plain",
    "point_label",
    "short_metric",
    "subtitle",
    "thread_colors",
    "thread_order",
]

#: how swept parameters (Trial field names) are labelled on axes and legends: one rule for every axis title,
#: "Name (units)" (:func:`label`); categories have no units, and sizes none either: their ticks read "128 KiB"
#: (:func:`format_value`, :func:`axis_kind`)
PARAM_LABELS = {
    "batch_size": "Batch size (pages per DSA batch)",
    "packet_bytes": "Multifd packet size",
    "devices": "DSA devices (count)",
    "channels": "Multifd channels (count)",
    "normal_ratio": "Normal page ratio (fraction of pages non-zero)",
    "force_normal_ratio": "Forced normal ratio (fraction of zero pages)",
    "detector": "Zero-page detector",
    "completion": "DSA completion mode",
    "guest_bytes": "Guest RAM",
    "cpu_fraction": "Detection done on the CPU (fraction)",
    "page_size": "Page size (bytes)",
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
#: short metric names for panel titles, legends and the explorer's metric menu
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
#: default static image size, px
WIDTH, HEIGHT = 1000, 600
#: the plotly template of every figure and panel
TEMPLATE = "plotly_white"
#: the one palette of every figure and panel: plotly's / matplotlib's default ten, then ten more chosen for
#: contrast with them and with each other (CIELAB distance >= 25), so that up to twenty lines or threads differ
COLORS = (
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
    "#000000",
    "#637939",
    "#93003a",
    "#f99379",
    "#023fa5",
    "#008856",
    "#a1caf1",
    "#882d17",
    "#e7ba52",
    "#7b4173",
)
#: fixed colours of the threads every migration has (the senders take the others, in order)
THREAD_FIXED = {"live_migration": "#7f7f7f", "dsa_completion": "#d62728"}
#: the colour of each detector where a figure colours by detector (the tuning panel), and black for a panel's
#: line of one metric: none of them a thread's colour, so that one figure with both never repeats a colour
DETECTOR_COLORS = {
    "cpu-numba": "#e7ba52",
    "cpu-native": "#882d17",
    "dsa-emulated": "#7b4173",
    "dsa-hardware": "#637939",
}
NEUTRAL = "#000000"
#: the marker of each detector's lines (with the dash, what tells two detectors' lines of one colour apart)
DETECTOR_SYMBOLS = {
    "cpu-numba": "diamond",
    "cpu-native": "triangle-up",
    "dsa-emulated": "circle",
    "dsa-hardware": "square",
}
#: line dashes: CPU detectors dashed, DSA detectors solid; each detector of a family its own dash, and a figure
#: with more lines than colours takes the next dashes for its next round of colours
_DASHES = {
    "cpu": ("dash", "dot", "dashdot", "6px,2px,1px,2px,1px,2px"),
    "dsa": ("solid", "longdash", "longdashdot", "14px,3px,3px,3px"),
}
_FAMILY_RANK = {"cpu-numba": 0, "cpu-native": 1, "dsa-emulated": 0, "dsa-hardware": 1}


def color(i: int) -> str:
    """The ``i``-th colour of :data:`COLORS` (cycling), as ``"#rrggbb"``: trace ``i`` of a figure, or detector
    ``i`` of the tuning panel."""
    return COLORS[i % len(COLORS)]


def thread_colors(names: Iterable[str]) -> dict[str, str]:
    """A distinct colour for each thread name: :data:`THREAD_FIXED` for the fixed roles, the rest of
    :data:`COLORS` in thread order for the others (senders, receivers, device engines), never a colour of
    :data:`DETECTOR_COLORS` or :data:`NEUTRAL` (13 colours; more threads than that repeat them)."""
    fixed = {*THREAD_FIXED.values(), *DETECTOR_COLORS.values(), NEUTRAL}
    free = [c for c in COLORS if c not in fixed]
    out: dict[str, str] = {}
    others = [n for n in sorted(set(names), key=thread_order) if n not in THREAD_FIXED]
    out.update({n: free[i % len(free)] for i, n in enumerate(others)})
    out.update({n: c for n, c in THREAD_FIXED.items() if n in set(names)})
    return out


def line_dash(point: Mapping[str, Any], round_: int = 0) -> str:
    """The line dash of a line at ``point``: dashed for a CPU detector (``cpu-*``; cpu-numba ``"dash"``,
    cpu-native ``"dot"``), solid otherwise (dsa-hardware long-dashed); ``round_`` (how many times the figure's
    colours went round) takes the detector's next dash, so that no two lines share both colour and dash."""
    detector = str(point.get("detector", ""))
    dashes = _DASHES["cpu" if detector.startswith("cpu") else "dsa"]
    return dashes[(_FAMILY_RANK.get(detector, 0) + 2 * round_) % len(dashes)]


def line_style(point: Mapping[str, Any], index: int) -> dict:
    """Line and marker settings of the ``index``-th line colour of a figure at ``point``: the colour
    ``color(index)`` (a figure gives one index to each line's own parameter values, the same for every
    detector), the detector's dash (:func:`line_dash`, the next one past the palette's end) and marker."""
    c = color(index)
    symbol = DETECTOR_SYMBOLS.get(str(point.get("detector", "")), "circle")
    return {
        "line": {"color": c, "dash": line_dash(point, index // len(COLORS))},
        "marker": {"color": c, "symbol": symbol},
    }


def plain(value: float, digits: int = 3) -> str:
    """A number rounded to ``digits`` significant digits, written plainly with thousands separators:
    ``plain(1392.4) == "1,390"``, ``plain(0.01234) == "0.0123"``; ``"n/a"`` for NaN or infinity."""
    v = float(value)
    if not np.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    places = digits - 1 - int(np.floor(np.log10(abs(v))))
    rounded = round(v, places)
    return f"{rounded:,.{max(places, 0)}f}"


def mean_pm(mean: float, std: float) -> str:
    """``"1,390 ± 160"``: a mean to three significant digits and its spread to two (:func:`plain`); the mean
    alone when the spread is not a number (one repeat)."""
    if not np.isfinite(float(std)):
        return plain(mean)
    return f"{plain(mean)} ± {plain(std, 2)}"


def cap(text: str) -> str:
    """``text`` with its first letter in upper case."""
    return text[:1].upper() + text[1:]


def _schema_metric(name: str) -> tuple[str, str] | None:
    """(units, long_name) of a metric of the result schema, None for a name that is not one (the one place that
    reads the metric table)."""
    return tuple(schema.METRICS[name]) if name in schema.METRICS else None


def metric_units(name: str) -> str:
    """Units of a metric of the result schema (``"ms/GB"``, ...), ``""`` for a name that is not one."""
    known = _schema_metric(name)
    return known[0] if known else ""


def label(ds, name: str) -> str:
    """Axis title of a variable or coordinate, by the one rule of every figure: ``"Name (units)"``, the name
    being its ``long_name`` without any parenthesised remark (or the parameter label of :data:`PARAM_LABELS`),
    the units left out when they are ``"1"`` (a fraction or flag) or none."""
    if name in PARAM_LABELS:
        return PARAM_LABELS[name]
    attrs = ds[name].attrs if ds is not None and name in ds.variables else {}
    known = _schema_metric(name)
    if not attrs and known:
        attrs = {"units": known[0], "long_name": known[1]}
    text = cap(_PARENTHESES.sub("", str(attrs.get("long_name", name.replace("_", " ")))).strip())
    u = attrs.get("units")
    return f"{text} ({u})" if u and u != "1" else text


#: a parenthesised remark in a long name ("total migration time (setup included)")
_PARENTHESES = re.compile(r"\s*\([^()]*\)")


def short_metric(name: str) -> str:
    """A metric's short name for panel titles, legends and menus: :data:`METRIC_SHORT`, else the schema's
    ``long_name``, else the variable name with spaces (``"total time"``, ``"host CPU per GB"``)."""
    if name in METRIC_SHORT:
        return METRIC_SHORT[name]
    known = _schema_metric(name)
    return known[1] if known else name.replace("_", " ")


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


def point_label(point: Mapping[str, Any]) -> str:
    """A parameter point as a legend entry: ``"batch 32, packet 64 KiB, cpu-native"``."""
    parts = []
    for dim, value in point.items():
        short = PARAM_SHORT.get(dim, dim.replace("_", " "))
        v = format_value(dim, value)
        parts.append(f"{short} {v}" if short else v)
    return ", ".join(parts)


def subtitle(ds, shown: Iterable[str]) -> str:
    """Fixed parameters (size-1 dimensions not in ``shown``), guest size, repeats, backends and failed trials, as
    one line."""
    shown = set(shown)
    fixed = {d: ds[d].values[0] for d in swept_dims(ds) if ds.sizes[d] == 1 and d not in shown}
    parts = [point_label({d: v}) if PARAM_SHORT.get(d, "x") else format_value(d, v) for d, v in fixed.items()]
    if "total_bytes" in ds and np.isfinite(ds.total_bytes.where(ds.total_bytes > 0)).any():
        parts.append(f"guest {format_bytes(float(ds.total_bytes.where(ds.total_bytes > 0).max()), whole=True)}")
    if "repeat" in ds.dims:
        parts.append(f"{ds.sizes['repeat']} repeat(s)")
    backends = sorted({str(b) for b in np.ravel(ds.backend.values) if b}) if "backend" in ds else []
    if backends:
        parts.append("backend " + ", ".join(backends))
    failed = int((ds.status != "ok").sum()) if "status" in ds else 0
    if failed:
        parts.append(f"{failed} failed trial(s) left out")
    return " · ".join(parts)


#: a caveat in a title is broken into lines of at most this many characters
CAVEAT_LINE_CHARS = 120
#: :func:`fit_title`: the top margin for the title's first line, and each line under it, px
TITLE_TOP_PX = 40
TITLE_LINE_PX = 21
#: the gap between the title and the plot (room for subplot titles), px
TITLE_GAP_PX = 26


def _wrap(sentence: str, width: int = CAVEAT_LINE_CHARS) -> list[str]:
    lines: list[str] = []
    for word in sentence.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def figure_title(text: str, ds, shown: Iterable[str]) -> dict:
    """A plotly title dict: ``text`` over the :func:`subtitle` of ``ds`` and its caveats
    (:func:`dsalab.caveats.caveats`: e.g. that the emulated device shared the host's cores), the margin above the
    plot grown to fit them."""
    sub = subtitle(ds, shown)
    parts = [text] + ([f"<sup>{sub}</sup>"] if sub else [])
    parts += [f"<sup><i>{line}</i></sup>" for c in caveats(ds) for line in _wrap(c)]
    if len(parts) <= 2:
        return {"text": "<br>".join(parts), "x": 0.02}
    # more lines than the default top margin holds: plotly anchors a title by its first line, so that line is
    # lifted above the plot by the lines under it; fit_title grows the top margin to match
    lift = TITLE_GAP_PX + TITLE_LINE_PX * (len(parts) - 1)
    return {"text": "<br>".join(parts), "x": 0.02, "yref": "paper", "y": 1.0, "yanchor": "bottom", "pad": {"b": lift}}


def fit_title(fig: go.Figure) -> go.Figure:
    """Grow the top margin of ``fig`` so that a :func:`figure_title` of more than two lines (a caveat under the
    subtitle) sits above the plot, not over it; returns ``fig``."""
    lines = str(fig.layout.title.text or "").count("<br>") + 1
    if lines > 2:
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 90
        fig.update_layout(margin={"t": max(top, TITLE_TOP_PX + TITLE_GAP_PX + TITLE_LINE_PX * (lines - 1))})
    return fig


def axis_kind(ds, dim: str) -> dict:
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


def new_figure(rows: int = 1, cols: int = 1, **kw) -> go.Figure:
    """An empty figure in the house template (subplots when ``rows * cols > 1`` or subplot options are given)."""
    fig = make_subplots(rows=rows, cols=cols, **kw) if rows * cols > 1 or kw else go.Figure()
    fig.update_layout(template=TEMPLATE, legend={"title": {"text": ""}}, margin={"t": 90})
    return fig
