"""The figure of the Jupyter panels: a plotly ``FigureWidget`` that fills its cell and survives a page reload.

Two defects of the stock ``FigureWidget`` (plotly 6/7, an anywidget) are fixed here, at their cause:

- **Size.** anywidget renders the view before JupyterLab attaches it to the page, so plotly.js measures a
  detached element and falls back to its default 700 px width; nothing resizes it later (the Lumino resize
  messages of the old extension never reach an anywidget view). :class:`LiveFigure` ships plotly's own widget
  module with a wrapper around its ``render``: a ``ResizeObserver`` on the view's element re-runs plotly's
  responsive resize whenever the cell's width changes (first attach, window resize, side panel opened); the
  figure's config sets ``responsive`` so that plotly installs that resize, and the layout has no fixed width.
- **Reload.** ``FigureWidget`` syncs its full state (``_widget_data``, ``_widget_layout``) only when built or
  displayed directly; later edits travel as one-off restyle/relayout messages. A page reload asks the kernel for
  every widget's stored state and gets the figure as it was built (empty traces, placeholder titles), and later
  messages, which send only what changed, patch that stale copy. :meth:`LiveFigure.batch_update` stores the full
  state after every batch of edits, so a reloaded page draws the current figure.
"""

from __future__ import annotations

import contextlib
import functools
import pathlib
import re
from copy import deepcopy

import plotly
import plotly.graph_objects as go

#: the export statement of plotly's widget module, whose default export is the anywidget {initialize, render}
_EXPORT = re.compile(r"export\s*\{([^{}]*?)\b([A-Za-z_$][\w$]*) as default\b([^{}]*)\};?\s*$")

#: appended to plotly's module: the same widget, its render wrapped to follow the element's width
_WRAPPER = """
const __dsalabLive = () => {
  const inner = %(original)s();
  return {
    initialize(ctx) { return inner.initialize ? inner.initialize(ctx) : undefined; },
    render(ctx) {
      const stop = inner.render(ctx);
      const el = ctx.el;
      el.classList.add("dsalab-live-figure");
      el.style.width = "100%%";
      let width = -1;
      const fit = () => {
        const w = el.getBoundingClientRect().width;
        if (w > 0 && Math.abs(w - width) >= 1 && typeof el._responsiveChartHandler === "function") {
          width = w;
          el._responsiveChartHandler();
        }
      };
      const observer = new ResizeObserver(fit);
      observer.observe(el);
      // the first plot is drawn asynchronously: fit again once plotly says it is there
      const rendered = (event) => { if (event.detail && event.detail.element === el) { width = -1; fit(); } };
      document.addEventListener("plotlywidget-after-render", rendered);
      return () => {
        observer.disconnect();
        document.removeEventListener("plotlywidget-after-render", rendered);
        if (typeof stop === "function") stop();
      };
    },
  };
};
export {%(others)s __dsalabLive as default};
"""


@functools.cache
def widget_module() -> str:
    """plotly's widget module (JavaScript) with its default export wrapped by :data:`_WRAPPER`; plotly's own
    module unchanged when its export statement is not the expected one (then the figure is drawn as plotly draws
    it, and :func:`responsive_module_found` says so)."""
    path = pathlib.Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"
    text = path.read_text(encoding="utf-8")
    found = _find_export(text)
    if found is None:
        return text
    start, end, original, others = found
    names = ", ".join(n.strip() for n in others)
    wrapper = _WRAPPER % {"original": original, "others": f" {names}," if names else ""}
    return text[:start] + wrapper + text[end:]  # the bundle's licence comment kept after it


def _find_export(text: str) -> tuple[int, int, str, list[str]] | None:
    """(start and end offsets of the final export statement, the default export's local name, the other exported
    entries), or None."""
    # the bundle ends with a licence comment: the export statement is the last one before it
    at = text.rfind("export{")
    if at < 0:
        at = text.rfind("export {")
    if at < 0:
        return None
    end = text.find("}", at)
    m = _EXPORT.match(text[at : end + 1])
    if m is None:
        return None
    return at, end + 1, m.group(2), [e for e in (m.group(1) + m.group(3)).split(",") if e.strip()]


def responsive_module_found() -> bool:
    """Whether plotly's widget module had the export statement the resize wrapper needs."""
    return "__dsalabLive" in widget_module()


class LiveFigure(go.FigureWidget):
    """A ``FigureWidget`` as wide as its cell (no fixed width; it follows the cell's width) whose stored state
    is the figure as drawn, so that a page reload redraws it (see the module docstring)."""

    _esm = widget_module()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.layout.width = None
        self.layout.autosize = True
        self._config = {**self._config, "responsive": True, "displaylogo": False}
        self.store_state()

    def store_state(self) -> None:
        """Make the synced state the figure's current traces and layout (what a reloaded page draws)."""
        self._widget_data = deepcopy(self._data)
        self._widget_layout = deepcopy(self._layout_obj._props)

    @contextlib.contextmanager
    def batch_update(self):
        """plotly's ``batch_update`` (the edits inside go to the page as one message), then :meth:`store_state`."""
        with super().batch_update():
            yield
        self.store_state()
