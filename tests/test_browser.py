"""The panels and the report in a real browser: JupyterLab started here (127.0.0.1, a random free port, a token,
its own runtime/config/settings folders), driven by Playwright with the system Chromium (no browser download).

- Notebook 06 (a copy with small parameters) runs all its cells; the tuning panel shows its controls and a
  drawn figure as wide as its cell, with no widget error; the figure follows the cell when the cell widens; a
  slider moved by the keyboard adds a trial to the figure; after saving and reloading the page (the kernel still
  running) every widget figure is drawn again, the new trial included, without touching a control.
- A self-contained HTML report (:func:`dsalab.report.build`) opened from a file draws every figure with no
  console error.

Skipped, with the reason, only when no Chromium is on PATH. A failing step leaves a screenshot in test-output/
(and the JupyterLab server's log there); with DSALAB_SCREENSHOTS=1 a passing test leaves one too.
"""

from __future__ import annotations

import contextlib
import os
import re

import browser_support as bs
import pytest

CHROMIUM = bs.find_chromium()
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on PATH (make chromium installs it)"),
    # the signal method: a timeout raises in the test, so the server and browser are stopped by their context
    # managers (the thread method would os._exit and leave the server, in a session of its own, running)
    pytest.mark.timeout(180, method="signal"),
]
#: bounded page waits, ms
STEP_MS = 60_000
RUN_ALL_MS = 120_000
#: what JupyterLab and ipywidgets print when a widget cannot be shown
WIDGET_ERRORS = re.compile(r"Error displaying widget|Failed to (load|create) (model|view)|Traceback|Model not found")
ALL_RUN = """() => { const ps = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));
    return ps.length > 0 && ps.every((p) => /\\[\\d+\\]/.test(p.textContent)); }"""
HAS_TICK = """([root, prefix]) => Array.from(root.querySelectorAll('.js-plotly-plot .xtick text'))
    .some((t) => t.textContent.startsWith(prefix))"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def page_of(browser, name: str):
    """A new page (1400 x 1000) whose console errors and page errors are collected in ``page.errors``; a
    screenshot goes to test-output/<name>.png when the block fails (an earlier run's is removed first)."""
    bs.forget_output(name)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    try:
        yield page
        if os.environ.get("DSALAB_SCREENSHOTS"):  # to look at a passing run too: test-output/<name>-passed.png
            bs.screenshot_on_failure(page, f"{name}-passed")
    except BaseException:
        shot = bs.screenshot_on_failure(page, name)
        print(f"screenshot of the failure: {shot}")
        raise
    finally:
        context.close()


def _panel(page):
    """The output area of notebook 06's first panel (the tuning panel's cell)."""
    return page.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea")


def _wait_idle(page) -> None:
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=STEP_MS)
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=STEP_MS)


def test_notebook_06_panels_in_jupyterlab(browser, tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    bs.small_notebook(
        bs.ROOT / "notebooks" / "06-interactive-tuning.ipynb", root / "06.ipynb", {"guest": "4MiB", "grid_repeats": 1}
    )
    with bs.LabServer(root, tmp_path / "lab") as lab, page_of(browser, "notebook-06") as page:
        page.goto(lab.page_url("06.ipynb"), timeout=STEP_MS)
        _wait_idle(page)
        page.click("#jp-top-panel >> text=Run", timeout=STEP_MS)
        page.click("li.lm-Menu-item:has-text('Run All Cells')", timeout=STEP_MS)
        page.wait_for_function(ALL_RUN, timeout=RUN_ALL_MS)

        # the controls, a drawn figure, no widget error
        panel = _panel(page)
        assert panel.locator(".widget-hslider").count() == 5  # batch, packet, devices, channels, normal ratio
        assert panel.locator(".widget-dropdown").count() == 2  # detector, completion
        assert "batch size" in panel.inner_text() and "verified yes" in panel.inner_text()
        (fig,) = panel.evaluate(bs.COUNT_MARKS)
        assert fig["traces"] >= 3 and fig["marks"] >= 3 and any(t.startswith("#3 ") for t in fig["xticks"]), fig
        notebook_text = page.locator(".jp-Notebook").inner_text()
        assert not WIDGET_ERRORS.search(notebook_text), WIDGET_ERRORS.search(notebook_text)
        # as wide as the cell's output (not plotly's 700 px default), and following it when it widens
        area = panel.evaluate("(e) => e.querySelector('.js-plotly-plot').parentElement.getBoundingClientRect().width")
        assert fig["width"] >= 0.95 * area and fig["width"] > 800, (fig["width"], area)
        page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current", timeout=STEP_MS)  # close the file panel
        page.wait_for_function(
            "([e, w]) => e.querySelector('.js-plotly-plot').getBoundingClientRect().width > w + 100",
            arg=[panel.element_handle(), fig["width"]],
            timeout=STEP_MS,
        )

        # a slider moved (keyboard on its handle, released at once): the figure gains a trial
        panel.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(HAS_TICK, arg=[panel.element_handle(), "#4 "], timeout=STEP_MS)

        # save, reload with the kernel running: every widget figure is drawn again, the new trial included
        page.keyboard.press("Control+s")
        page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=STEP_MS)
        page.reload(timeout=STEP_MS)
        _wait_idle(page)
        panel = _panel(page)
        page.wait_for_function(HAS_TICK, arg=[panel.element_handle(), "#4 "], timeout=STEP_MS)
        explorer = page.locator(".jp-CodeCell").nth(4).locator(".jp-OutputArea")
        for name, area in (("panel", panel), ("explorer", explorer)):
            (fig,) = area.evaluate(bs.COUNT_MARKS)
            assert fig["traces"] >= 3 and fig["marks"] >= 3, (name, fig)
        titles = explorer.evaluate(
            "(e) => Array.from(e.querySelectorAll('.annotation-text, .gtitle')).map((t) => t.textContent)"
        )
        assert "metric" not in titles and any("along" in t for t in titles), titles  # not the placeholders
        if os.environ.get("DSALAB_SCREENSHOTS"):
            for name, area in (("panel", panel), ("explorer", explorer)):
                area.scroll_into_view_if_needed(timeout=STEP_MS)
                area.screenshot(path=str(bs.OUTPUT / f"notebook-06-{name}-after-reload.png"), timeout=STEP_MS)
        assert not WIDGET_ERRORS.search(page.locator(".jp-Notebook").inner_text())
        assert not [e for e in page.errors if re.search(r"widget|plotly|model", e, re.I)], page.errors


def test_html_report_draws_every_figure(browser, tmp_path):
    from dsalab import explore, report
    from dsalab.migration import Trial

    base = Trial(guest_bytes="4MiB", channels=2, normal_ratio=0.0)
    ds = explore.run_grid(base, {"detector": ["cpu-numba", "dsa-emulated"], "force_normal_ratio": [0.0, 0.5]}, 2)
    path = tmp_path / "report.html"
    path.write_text(report.build(ds), encoding="utf-8")
    with page_of(browser, "report") as page:
        drawn = bs.open_html_and_check(page, path)
        assert len(drawn) == len(report.figure_ids(path.read_text(encoding="utf-8"))) >= 2
        assert "saved" in page.inner_text("body").lower()  # the saved-by-DSA figure is there


def test_open_html_and_check_finds_an_empty_figure(browser, tmp_path):
    import plotly.graph_objects as go

    empty = tmp_path / "empty.html"
    go.Figure(layout={"title": {"text": "nothing"}}).write_html(empty, include_plotlyjs=True)
    with page_of(browser, "empty-figure") as page, pytest.raises(AssertionError, match="drew nothing"):
        bs.open_html_and_check(page, empty, timeout_ms=5_000)  # the drawing wait only; the load has LOAD_MS


def test_wrapped_widget_module_loads_in_chromium(browser):
    """The installed plotly's widget module, wrapped, imports in the real browser and its default export gives
    the anywidget object (what JupyterLab's anywidget loader calls)."""
    from dsalab.plots import live

    assert live.responsive_module_found()
    with page_of(browser, "widget-module") as page:
        page.set_content("<html><body></body></html>")
        got = page.evaluate(
            """async (text) => {
                const mod = await import(URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
                const widget = await mod.default();
                return { exports: Object.keys(mod).sort(), widget: Object.keys(widget).sort() };
            }""",
            live.widget_module(),
        )
        assert got == {"exports": ["FigureModel", "FigureView", "default"], "widget": ["initialize", "render"]}, got
        assert not page.errors, page.errors
