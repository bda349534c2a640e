"""Writing figures: self-contained HTML, and static images (PNG, SVG, PDF, ...) through kaleido and Chromium."""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from dsalab.errors import InvalidArgument
from dsalab.plots.style import HEIGHT, WIDTH

#: export formats :func:`export` writes
FORMATS = ("html", "png", "svg", "pdf", "jpeg", "webp")
#: raster images (PNG, JPEG, WebP) are drawn at this many device pixels per layout pixel: a 1,000 px wide figure
#: is a 2,000 px wide PNG, sharp on high-density screens and in print
SCALE = 2


def _ensure_browser() -> None:
    """kaleido 1.x drives a Chrome; point it at the system Chromium when nothing else is configured."""
    if os.environ.get("BROWSER_PATH"):
        return
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            os.environ["BROWSER_PATH"] = found
            return


def export_many(
    figs: Mapping[str, go.Figure] | Sequence[tuple[str | pathlib.Path, go.Figure]],
    formats: Sequence[str] = ("html", "png", "svg"),
    *,
    width: int = WIDTH,
    height: int | None = None,
) -> list[pathlib.Path]:
    """Write several figures (path without suffix -> figure), static images in one kaleido session; ``width`` and
    ``height`` are the static images' layout size in px (default: :data:`WIDTH`, each figure's own height); raster
    images have :data:`SCALE` times as many pixels."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InvalidArgument(f"unknown export format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    items = list(figs.items()) if isinstance(figs, Mapping) else list(figs)
    written: list[pathlib.Path] = []
    static_figs, static_paths, static_kw = [], [], []
    for base, fig in items:
        base = pathlib.Path(base)
        if base.suffix.lstrip(".") in FORMATS:
            base = base.with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = base.with_name(f"{base.name}.{fmt}")
            if fmt == "html":
                fig.write_html(path, include_plotlyjs=True, full_html=True, config={"displaylogo": False})
            else:
                static_figs.append(fig)
                static_paths.append(path)
                static_kw.append(fmt)
            written.append(path)
    if static_figs:
        import plotly.io as pio

        _ensure_browser()
        heights = [height or int(f.layout.height or HEIGHT) for f in static_figs]
        pio.write_images(
            static_figs,
            static_paths,
            format=static_kw,
            width=[width] * len(static_figs),
            height=heights,
            scale=[SCALE] * len(static_figs),
        )
    return written


def export(
    fig: go.Figure, path: str | pathlib.Path, formats: Sequence[str] = ("html", "png", "svg")
) -> list[pathlib.Path]:
    """Write ``fig`` as ``path.<format>`` for each format: self-contained HTML (plotly.js embedded, opens
    offline) and static images through kaleido (PNG, SVG, PDF, ...). Returns the paths written."""
    return export_many([(path, fig)], formats)
