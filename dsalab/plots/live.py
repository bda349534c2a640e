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
  every widget's state (ipywidgets' ``request_states``, answered by each widget's ``get_state``) and got the
  figure as it was built (empty traces, placeholder titles), which later messages, sending only what changed,
  patch. :meth:`LiveFigure.get_state` puts the current traces and layout in that answer, so a reloaded page draws
  the current figure; while the figure is shown, an edit sends nothing more than plotly sends. Before any view
  shows it (a panel's figure is edited before the panel is displayed, inside a container), edits also update
  the synced state, which the first view draws.
"""

from __future__ import annotations

import functools
import pathlib
import re
import warnings
from copy import deepcopy

import plotly
import plotly.graph_objects as go

#: an ECMAScript identifier as esbuild writes them (``$`` included: ``$e``, ``j4t``)
_IDENT = r"[A-Za-z_$][\w$]*"
#: an export list (``export{TD as FigureModel,$e as default};``) or a default export of a name
#: (``export default j4t;``); the last one in the bundle is its own (an earlier one may sit inside a string)
_EXPORT_LIST = re.compile(r"export\s*\{([^{}]*)\}\s*;?")
_EXPORT_DEFAULT = re.compile(rf"export\s+default\s+({_IDENT})\s*;")
_ENTRY = re.compile(rf"\s*({_IDENT})(?:\s+as\s+({_IDENT}))?\s*")

#: appended to plotly's module: the same widget, its render wrapped to follow the element's width. The default
#: export may be the anywidget object or a (possibly async) function returning it; render may return a cleanup
#: function or a promise of one.
_WRAPPER = """
const __dsalabLive = async () => {
  const inner = typeof %(original)s === "function" ? await %(original)s() : %(original)s;
  return {
    initialize(ctx) { return inner.initialize ? inner.initialize(ctx) : undefined; },
    async render(ctx) {
      const stop = await inner.render(ctx);
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


class ResponsiveModuleWarning(UserWarning):
    """plotly's widget module could not be wrapped: the panels' figures are drawn as plotly draws them (700 px
    wide, not following the cell)."""


def bundle_path() -> pathlib.Path:
    """The installed plotly's widget module (``widgetbundle.js``)."""
    return pathlib.Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"


@functools.cache
def widget_module() -> str:
    """plotly's widget module (JavaScript) with its default export wrapped by :data:`_WRAPPER`. When its export
    statement is not one :func:`wrap_module` knows, plotly's own module unchanged, with a
    :class:`ResponsiveModuleWarning` (the figure is then drawn as plotly draws it; :func:`responsive_module_found`
    says so)."""
    text = bundle_path().read_text(encoding="utf-8")
    wrapped = wrap_module(text)
    if wrapped is None:
        warnings.warn(
            f"dsalab.plots.live: plotly {plotly.__version__}'s widget module ({bundle_path()}) has no export "
            "statement with a default export of a name; the panels' figures will not follow the cell's width "
            "(drawn at plotly's default 700 px)",
            ResponsiveModuleWarning,
            stacklevel=2,
        )
        return text
    return wrapped


def wrap_module(text: str) -> str | None:
    """The ES module ``text`` with its default export replaced by :data:`_WRAPPER` around it (its other exports
    kept), or None when its last export statement has no default export of a name."""
    found = _find_export(text)
    if found is None:
        return None
    start, end, original, others = found
    names = ", ".join(others)
    wrapper = _WRAPPER % {"original": original, "others": f" {names}," if names else ""}
    return text[:start] + wrapper + text[end:]  # the bundle's licence comment kept after it


def _find_export(text: str) -> tuple[int, int, str, list[str]] | None:
    """(start and end offsets of the final export statement, the default export's local name, the other exported
    entries as written), or None."""
    last = None
    for m in _EXPORT_LIST.finditer(text):
        last = m
    for m in _EXPORT_DEFAULT.finditer(text):
        if last is None or m.start() > last.start():
            last = m
    if last is None:
        return None
    if last.re is _EXPORT_DEFAULT:
        return last.start(), last.end(), last.group(1), []
    original, others = None, []
    for entry in last.group(1).split(","):
        if not entry.strip():
            continue
        m = _ENTRY.fullmatch(entry)
        if m is None:  # not "name" or "name as alias": a form this wrapper does not know
            return None
        local, exported = m.group(1), m.group(2) or m.group(1)
        if exported == "default":
            original = local
        else:
            others.append(f"{local} as {exported}" if m.group(2) else local)
    if original is None:
        return None
    return last.start(), last.end(), original, others


def responsive_module_found() -> bool:
    """Whether plotly's widget module had the export statement the resize wrapper needs."""
    return "__dsalabLive" in widget_module()


class LiveFigure(go.FigureWidget):
    """A ``FigureWidget`` as wide as its cell (no fixed width; it follows the cell's width) whose state, when a
    page asks for it (a reload) or creates a view of it, is the figure as it is now (see the module docstring).

    Like plotly's ``FigureWidget``, not thread-safe: edit it from one thread (the kernel's), not from a background
    thread while the kernel also edits or serves it."""

    _esm = widget_module()

    #: the synced traits that hold the whole figure
    FIGURE_TRAITS = ("_widget_data", "_widget_layout")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.layout.width = None
        self.layout.autosize = True
        self._config = {**self._config, "responsive": True, "displaylogo": False}

    def get_state(self, key=None, drop_defaults: bool = False) -> dict:
        """ipywidgets' ``get_state`` (what a page gets when it opens the widget or asks for its state: a reload's
        ``request_states`` / ``request_state``), the figure traits first set, silently, to the current traces
        and layout: edits made in or out of ``batch_update``, or by a block that raised, are all in it."""
        keys = self.keys if key is None else [key] if isinstance(key, str) else list(key)
        built = "_data" in self.__dict__ and "_layout_obj" in self.__dict__  # not while the comm opens
        for name in self.FIGURE_TRAITS if built else ():
            if name in keys:
                # no change event: what is sent is this return value, not a trait update
                self._trait_values[name] = deepcopy(self._figure_value(name))
        return super().get_state(key=key, drop_defaults=drop_defaults)

    def _figure_value(self, name: str):
        return self._data if name == "_widget_data" else self._layout_obj._props

    def _after_edit(self) -> None:
        """After plotly sent an edit: while no view shows the figure (built, not yet displayed; or displayed in
        a container, whose ``_repr_mimebundle_`` plotly never calls), the page's model holds the state the next
        view draws, and an edit message may reach that model before plotly's module has loaded and listens
        (then it is lost): keep the model's figure traits current instead. With a view, the edit messages alone
        (plotly's; a page reload gets the state from :meth:`get_state`)."""
        if self._view_count:
            return
        for name in self.FIGURE_TRAITS:
            setattr(self, name, deepcopy(self._figure_value(name)))  # sent only when it differs

    # every edit plotly sends passes one of these (a batch_update's in one _send_update_msg, even when it raised)
    def _send_relayout_msg(self, *args, **kwargs):
        super()._send_relayout_msg(*args, **kwargs)
        self._after_edit()

    def _send_restyle_msg(self, *args, **kwargs):
        super()._send_restyle_msg(*args, **kwargs)
        self._after_edit()

    def _send_update_msg(self, *args, **kwargs):
        super()._send_update_msg(*args, **kwargs)
        self._after_edit()

    def _send_addTraces_msg(self, *args, **kwargs):
        super()._send_addTraces_msg(*args, **kwargs)
        self._after_edit()

    def _send_deleteTraces_msg(self, *args, **kwargs):
        super()._send_deleteTraces_msg(*args, **kwargs)
        self._after_edit()

    def _send_moveTraces_msg(self, *args, **kwargs):
        super()._send_moveTraces_msg(*args, **kwargs)
        self._after_edit()
