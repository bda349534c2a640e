"""dsalab.plots.live: the resize wrapper around plotly's widget module (every export form anywidget allows, run in
node; the installed plotly's real bundle parsed), and LiveFigure's state (a page asking for it gets the figure as
it is; edits send only plotly's own messages)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import plotly.graph_objects as go
import pytest

from dsalab.plots import live

pytestmark = pytest.mark.timeout(120)


def _node() -> str | None:
    """node on PATH, else the one Playwright ships (a pinned dev dependency), else None."""
    found = shutil.which("node")
    if found:
        return found
    try:
        from playwright._impl._driver import compute_driver_executable

        node = compute_driver_executable()[0]
    except Exception:  # no Playwright: the node tests skip
        return None
    return str(node) if shutil.which(str(node)) else None


NODE = _node()
needs_node = pytest.mark.skipif(NODE is None, reason="no node (on PATH or Playwright's) to run the module")

#: (module text, the default export's local name, the other entries kept) for each export form
FORMS = {
    "esbuild, dollar name": (
        "const $e = () => ({ render: render0 }); const TD = 1; export{TD as FigureModel,$e as default};",
        "$e",
        ["TD as FigureModel"],
    ),
    "default first, spaces": (
        "const w = { render: render0, initialize: init0 }; const TD = 1;\nexport { w as default , TD };\n",
        "w",
        ["TD"],
    ),
    "object default": ("const obj = { render: render0 };\nexport{obj as default};", "obj", []),
    "export default name, async factory": (
        "async function j4t() { return { render: async (ctx) => render0(ctx) }; }\nexport default j4t;\n",
        "j4t",
        [],
    ),
}
#: what every test module declares before its export: an inner render that records its call and returns a cleanup
PRELUDE = """
globalThis.calls = [];
const render0 = (ctx) => { calls.push("render"); return () => calls.push("inner stop"); };
const init0 = () => { calls.push("initialize"); };
"""
#: loads the wrapped module with the few browser globals the wrapper uses, renders once, cleans up
HARNESS = """
globalThis.ResizeObserver = class { constructor(f) { this.f = f; } observe() { calls.push("observe"); this.f(); }
  disconnect() { calls.push("disconnect"); } };
globalThis.document = { addEventListener() { calls.push("listen"); }, removeEventListener() {} };
const mod = await import(process.argv[2]);
const widget = await mod.default();
if (widget.initialize) widget.initialize({});
const el = { classList: { add() {} }, style: {}, getBoundingClientRect: () => ({ width: 500 }),
  _responsiveChartHandler: () => calls.push("resize") };
const stop = await widget.render({ el, model: {} });
stop();
console.log(JSON.stringify({ calls, exports: Object.keys(mod).sort(), width: el.style.width }));
"""


@pytest.mark.parametrize("form", FORMS)
def test_find_export_reads_every_form(form):
    text, original, others = FORMS[form]
    found = live._find_export(text)
    assert found is not None and (found[2], found[3]) == (original, others)
    assert text[found[0] : found[1]].startswith("export")


@pytest.mark.parametrize("text", ["export{a,b};", "export{a as b};", "const x = 1;", "export default {render};"])
def test_find_export_none_without_a_default_name(text):
    assert live._find_export(text) is None and live.wrap_module(text) is None


@needs_node
@pytest.mark.parametrize("form", FORMS)
def test_wrapped_module_runs_for_every_export_form(form, tmp_path):
    text, _, others = FORMS[form]
    wrapped = live.wrap_module(PRELUDE + text)
    assert wrapped is not None
    (tmp_path / "module.mjs").write_text(wrapped)
    (tmp_path / "harness.mjs").write_text(HARNESS)
    run = subprocess.run(
        [NODE, str(tmp_path / "harness.mjs"), (tmp_path / "module.mjs").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert "render" in out["calls"] and "observe" in out["calls"] and "resize" in out["calls"], out
    assert out["calls"].index("disconnect") < out["calls"].index("inner stop"), out  # the cleanup chained
    assert out["width"] == "100%"
    kept = sorted(e.split(" as ")[-1] for e in others)
    assert out["exports"] == sorted(["default", *kept]), out


@needs_node
def test_installed_plotly_bundle_is_wrapped_and_parses(tmp_path):
    module = live.widget_module()
    assert live.responsive_module_found() and module.count("__dsalabLive as default") == 1
    path = tmp_path / "widget.mjs"
    path.write_text(module)
    run = subprocess.run([NODE, "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    # the wrapped name is one the bundle declares (not a fragment of it, as "e" of "$e" was)
    _, _, original, _ = live._find_export(live.bundle_path().read_text(encoding="utf-8"))
    assert f"typeof {original} ===" in module


def test_unknown_export_falls_back_with_a_warning(tmp_path, monkeypatch):
    bundle = tmp_path / "widgetbundle.js"
    bundle.write_text("const a = 1; export{a as FigureModel};")
    monkeypatch.setattr(live, "bundle_path", lambda: bundle)
    live.widget_module.cache_clear()
    try:
        with pytest.warns(live.ResponsiveModuleWarning, match="700 px"):
            assert live.widget_module() == bundle.read_text()
    finally:
        monkeypatch.undo()
        live.widget_module.cache_clear()
    assert live.responsive_module_found()


# -- state ----------------------------------------------------------------------------------------------------


class RecordingComm:
    """A comm that keeps what the kernel sends: (state keys, buffer bytes) per message."""

    kernel = object()
    comm_id = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], int]] = []

    def send(self, data=None, metadata=None, buffers=None) -> None:
        keys = sorted(data.get("state", {})) if isinstance(data, dict) else []
        self.sent.append((keys, sum(memoryview(b).nbytes for b in buffers or ())))

    def on_msg(self, *a) -> None: ...
    def on_close(self, *a) -> None: ...
    def close(self, *a, **k) -> None: ...


def _figure(n: int = 50_000, views: int = 1) -> live.LiveFigure:
    """A LiveFigure of ``n`` points shown by ``views`` views (what the page's views report in ``_view_count``)."""
    fig = live.LiveFigure(go.Figure([go.Scattergl(x=np.arange(n, dtype=float), y=np.random.default_rng(0).random(n))]))
    fig._view_count = views
    fig.comm = RecordingComm()
    return fig


def test_an_edit_sends_no_whole_figure():
    fig = _figure()
    with fig.batch_update():
        fig.layout.title.text = "new title"
    fig.data[0].name = "renamed"  # outside batch_update too
    keys = {k for ks, _ in fig.comm.sent for k in ks}
    assert keys and not keys & set(live.LiveFigure.FIGURE_TRAITS), fig.comm.sent
    assert sum(b for _, b in fig.comm.sent) < 10_000  # the 50k points are not sent again


def test_a_state_request_gets_the_figure_as_it_is():
    fig = _figure(10)
    with fig.batch_update():
        fig.data[0].y = np.arange(10.0)
    fig.add_scatter(x=[1], y=[2], name="added outside a batch")
    fig.update_layout(title_text="changed outside a batch")
    with pytest.raises(RuntimeError), fig.batch_update():
        fig.data[0].name = "set by a block that raised"
        raise RuntimeError
    fig.comm.sent.clear()
    fig._handle_msg({"content": {"data": {"method": "request_state"}}, "buffers": []})  # what a reloaded page asks
    ((keys, _),) = fig.comm.sent
    assert set(live.LiveFigure.FIGURE_TRAITS) <= set(keys)
    state = fig.get_state(drop_defaults=False)  # what ipywidgets' request_states answers with, per widget
    data, layout = state["_widget_data"], state["_widget_layout"]
    assert len(data) == 2 and data[1]["name"] == "added outside a batch"
    assert data[0]["name"] == "set by a block that raised"
    assert layout["title"]["text"] == "changed outside a batch"
    np.testing.assert_array_equal(fig._widget_data[0]["y"], np.arange(10.0))
    # a state for other keys leaves the figure traits alone
    assert set(fig.get_state(key="_config")) == {"_config"}


def test_before_any_view_the_synced_state_follows_the_edits():
    """A panel edits its figure before it is displayed (in a container): the page's model must hold the current
    figure when it creates the first view, whether or not plotly's module listened to the edit messages yet."""
    fig = _figure(10, views=0)
    with fig.batch_update():
        fig.layout.title.text = "drawn first"
    fig.add_scatter(x=[1], y=[2], name="added outside a batch")
    keys = {k for ks, _ in fig.comm.sent for k in ks}
    assert set(live.LiveFigure.FIGURE_TRAITS) <= keys, fig.comm.sent
    assert fig._widget_layout["title"]["text"] == "drawn first" and len(fig._widget_data) == 2
