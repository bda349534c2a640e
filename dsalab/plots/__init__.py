"""Plotly figures of result datasets (the layout of :func:`dsalab.results.build_dataset`), and their export.

Every figure takes a dataset and needs nothing else to look right: titles and axis labels come from the
variables' ``long_name`` and ``units``, swept parameters the figure does not put on an axis become one trace (or
panel) each, parameters with a single value are named in the subtitle, and error bars are one sample standard
deviation (``ddof=1``) over the ``repeat`` dimension (failed trials, NaN, are left out); the statistics are
:mod:`dsalab.analysis`'s, so a figure and the summary agree.

- :func:`thread_cpu`: per-thread CPU as stacked bars, like the seed's tables (optionally beside the seed's
  published figures, per GB of guest RAM so that the two are comparable);
- :func:`lines`, :func:`batch_and_packet`, :func:`heatmap`: a metric against batch size and packet size;
- :func:`scaling`: device-count and channel scaling;
- :func:`break_even`: host CPU per GB of offload minus CPU detection against normal_ratio, paired by repeat, the
  crossing marked;
- :func:`saved_by_dsa`: host CPU and total time each DSA point saves against its CPU-detector twin, paired by
  repeat, with error bars;
- :func:`latency`: total time and downtime over repeats, per detector;
- :func:`kernel_bandwidth`: the CPU kernels against the memory-read bandwidth reference;
- :func:`figure`, :func:`overview`: a figure kind of :data:`REGISTRY` by name, or every kind that applies to a
  dataset; :func:`export` writes HTML, PNG, SVG.

The package: :mod:`~dsalab.plots.style` (labels, colours, titles, shared by every figure),
:mod:`~dsalab.plots.threads`, :mod:`~dsalab.plots.parameters`, :mod:`~dsalab.plots.breakeven`,
:mod:`~dsalab.plots.distributions`, :mod:`~dsalab.plots.saved`, :mod:`~dsalab.plots.benchmark` (one family of
figures each), :mod:`~dsalab.plots.registry` (the figure kinds) and :mod:`~dsalab.plots.exporting`.
"""

from __future__ import annotations

from dsalab.analysis import NON_PARAM_DIMS, break_even_points, crossings, mean_std, swept_dims
from dsalab.plots.benchmark import KERNEL_CASES, kernel_bandwidth
from dsalab.plots.breakeven import break_even
from dsalab.plots.distributions import latency
from dsalab.plots.exporting import FORMATS, SCALE, export, export_many
from dsalab.plots.parameters import batch_and_packet, heatmap, lines, scaling
from dsalab.plots.registry import KINDS, REGISTRY, FigureKind, figure, overview
from dsalab.plots.saved import saved_by_dsa
from dsalab.plots.style import (
    COLORS,
    DETECTOR_COLORS,
    HEIGHT,
    METRIC_SHORT,
    NEUTRAL,
    PARAM_LABELS,
    PARAM_SHORT,
    TEMPLATE,
    WIDTH,
    color,
    format_value,
    label,
    line_dash,
    mean_pm,
    plain,
    short_metric,
    thread_colors,
)
from dsalab.plots.threads import thread_cpu

__all__ = [
    "COLORS",
    "DETECTOR_COLORS",
    "FORMATS",
    "HEIGHT",
    "KERNEL_CASES",
    "KINDS",
    "METRIC_SHORT",
    "NEUTRAL",
    "NON_PARAM_DIMS",
    "PARAM_LABELS",
    "PARAM_SHORT",
    "REGISTRY",
    "SCALE",
    "TEMPLATE",
    "WIDTH",
    "FigureKind",
    "batch_and_packet",
    "break_even",
    "break_even_points",
    "color",
    "crossings",
    "export",
    "export_many",
    "figure",
    "format_value",
    "heatmap",
    "kernel_bandwidth",
    "label",
    "latency",
    "line_dash",
    "lines",
    "mean_pm",
    "mean_std",
    "overview",
    "plain",
    "saved_by_dsa",
    "scaling",
    "short_metric",
    "swept_dims",
    "thread_colors",
    "thread_cpu",
]
