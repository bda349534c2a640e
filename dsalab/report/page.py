"""The report's HTML: the page around the sections, tables, figures (plotly.js embedded once, in the head).

Every string that comes from a dataset goes through :func:`esc` (``html.escape``); figures are plotly's own JSON
(which escapes ``<``, ``>`` and ``/``), drawn by the one embedded plotly.js, so the file opens offline.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

#: the page's style: readable tables, figures the width of the page, facets side by side
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 24px 48px; color: #222; line-height: 1.45; }
h1 { margin-top: 24px; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 36px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tbody td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.differs td { background: #fff6dd; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 8px; overflow-x: auto; font-size: 13px; }
.caveat { background: #fff3cd; border-left: 4px solid #e0a800; padding: 6px 10px; margin: 6px 0; }
.note { color: #555; font-size: 14px; }
.facets { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
.facets > div { min-width: 0; }
@media (max-width: 1100px) { .facets { grid-template-columns: minmax(0, 1fr); } }
td { overflow-wrap: anywhere; }
.figure { width: 100%; min-height: 200px; }
nav ul { columns: 2; } details { margin: 8px 0; }
"""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and attributes."""
    return html.escape(str(value), quote=True)


def number(value: Any) -> str:
    """A number as people read it: 3 significant figures for small ones, whole for large ones, "–" for NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 100 or (value == int(value) and magnitude >= 1):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 0.01 else f"{value:.2g}"


def mean_std(mean: Any, std: Any, unit: str = "", n: int | None = None) -> str:
    """``mean ± std unit``, both in :func:`number`'s format; no ± part when std is NaN or when the count ``n`` (if
    given) is below 2: one value has no spread to show, and "± 0" would read as exact."""
    out = number(mean)
    few = n is not None and n < 2
    if not few and isinstance(std, int | float) and math.isfinite(std) and math.isfinite(float(mean)):
        out += f" ± {number(std)}"
    return out + (f" {esc(unit)}" if unit and out != "–" else "")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = (), cls: str = "") -> str:
    """An HTML table; cells are escaped text, except ``Raw`` ones; columns in ``numeric`` are right-aligned."""
    out = [f'<table class="{esc(cls)}">' if cls else "<table>", "<thead><tr>"]
    out += [f"<th>{esc(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        css = ""
        if isinstance(row, Row):
            css, row = f' class="{esc(row.cls)}"', row.cells
        out.append(f"<tr{css}>")
        for i, cell in enumerate(row):
            attr = ' class="num"' if i in numeric else ""
            out.append(f"<td{attr}>{cell.html if isinstance(cell, Raw) else esc(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class Raw:
    """HTML already built (escaped where it holds data): a table cell that :func:`table` does not escape again."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text


class Row:
    """A table row with a CSS class (``"differs"``: the runs of a comparison disagree there)."""

    def __init__(self, cells: Sequence[Any], cls: str) -> None:
        self.cells, self.cls = cells, cls


def figure_div(fig: Any, div_id: str) -> str:
    """One figure as a ``<div>`` and the script that draws it with the page's plotly.js (not embedded again); the
    figure fills the width of its container and follows it when the window is resized."""
    import plotly.io as pio

    fig = fig.update_layout(width=None, autosize=True)
    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        default_width="100%",
        default_height=f"{int(fig.layout.height or 500)}px",
        config={"displaylogo": False, "responsive": True},
    )


def plotly_js() -> str:
    """plotly.js itself (minified, a few MB), for the one ``<script>`` in the page's head."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


#: once the page has loaded, every figure takes its container's final width (a figure drawn while the page was
#: still being parsed saw its container before the rest of the layout existed; plotly follows window resizes only)
RESIZE_ON_LOAD = (
    'window.addEventListener("load", function () { document.querySelectorAll(".js-plotly-plot")'
    ".forEach(function (d) { Plotly.Plots.resize(d); }); });"
)


def html_page(title: str, body: Sequence[str], *, with_plotly: bool = True) -> str:
    """The whole self-contained page: ``title`` (escaped here), the ``body`` parts (HTML) in order."""
    script = f'<script type="text/javascript">{plotly_js()}</script>' if with_plotly else ""
    resize = f'<script type="text/javascript">{RESIZE_ON_LOAD}</script>' if with_plotly else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>{script}</head>\n<body>\n"
        + "\n".join(body)
        + f"\n{resize}\n</body></html>\n"
    )
