"""dsalab.report and ``dsalab report``: one self-contained HTML file (no network reference, plotly.js exactly
once), every figure that applies drawn in its own div, the sweep file and the caveats shown as text (dataset text
escaped), the summary's numbers and the seed's published figures beside ours, several runs compared; and the page
renders in headless Chromium with no console error."""

from __future__ import annotations

import html.parser
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from report_fixtures import NASTY, run_sweep_file
from typer.testing import CliRunner

from dsalab import analysis, report, results
from dsalab.caveats import caveats
from dsalab.cli import app
from dsalab.errors import DsalabError, InvalidArgument, InvalidType
from dsalab.report.figures import kinds

pytestmark = pytest.mark.timeout(300)
cli = CliRunner()
PLOTLY_BANNER = "* plotly.js v"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def emulated(folder):
    """(dataset, sweep file text) of the engine sweep: cpu-numba against dsa-emulated on the seed's two guests."""
    ds, text = run_sweep_file(folder, "emu")
    assert (ds.status == "ok").all(), ds.error.values
    return ds, text


@pytest.fixture(scope="module")
def modelled(folder):
    """(dataset, sweep file text) of the same sweep predicted by the model (dsa-hardware)."""
    return run_sweep_file(folder, "mod", runner="model")


@pytest.fixture(scope="module")
def page(emulated) -> str:
    return report.build(emulated[0])


class Parsed(html.parser.HTMLParser):
    """Tags with their attributes, the text of each script, and the page's visible text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return "".join(self.text)


def squash(text: str) -> str:
    return " ".join(text.split())


# -- one self-contained file ---------------------------------------------------------------------------------------


def test_no_network_reference_and_plotly_js_once(page):
    parsed = Parsed(page)
    for tag, attrs in parsed.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not re.match(r"(?i)\s*(https?:)?//", value), (tag, key, value)
        if tag == "script":
            assert "src" not in attrs, attrs  # every script is inline: the file opens offline
        assert tag not in ("link", "iframe", "img"), (tag, attrs)
    assert page.count(PLOTLY_BANNER) == 1  # plotly.js embedded once, not once per figure
    assert sum(PLOTLY_BANNER in s for s in parsed.scripts) == 1
    assert len(page) < 2 * len(report.page.plotly_js())


def test_every_figure_that_applies_has_its_div(emulated, page):
    ds = emulated[0]
    expected = [f"fig-{k}" for k in kinds(ds)]
    assert {"fig-saved", "fig-threads", "fig-threads-seed", "fig-latency"} <= set(expected)
    assert report.figure_ids(page) == expected
    parsed = Parsed(page)
    divs = {a.get("id") for t, a in parsed.tags if t == "div"}
    for div_id in expected:
        assert div_id in divs
        assert sum(f'"{div_id}"' in s and "Plotly.newPlot" in s for s in parsed.scripts) == 1, div_id
    assert "Not drawn" not in page


def test_sweep_file_and_dataset_text_are_shown_as_text(emulated, page):
    ds, text = emulated
    parsed = Parsed(page)
    assert text.strip() in parsed.visible  # the sweep file as written, character for character
    assert ds.attrs["sweep_file"] == text
    # the HTML in it stays text: no script or b element came from the dataset
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not any("alert(1)" in s and "Plotly" not in s for s in parsed.scripts)
    assert "<b>bold</b>" not in page
    assert NASTY in parsed.visible
    for key in ("git_commit", "machine_hostname", "machine_cpu_model", "machine_numpy_version", "dsalab_version"):
        assert str(ds.attrs[key]) in parsed.visible, key


def test_emulated_caveat_and_backends(emulated):
    ds = emulated[0].copy(deep=True)
    ds["cores"][:] = 1  # as on a one-core host: every emulated trial had more busy threads than cores
    found = caveats(ds)
    assert found and "emulated DSA shares the host's cores" in found[0]
    visible = squash(Parsed(report.build(ds)).visible)
    for sentence in found:
        assert squash(sentence) in visible
    assert "dsa-emulated: the engine with zero checks offloaded to a software DSA" in visible


def test_model_caveat(modelled):
    ds = modelled[0]
    visible = squash(Parsed(report.build(ds)).visible)
    assert "predicted by dsalab.model from hardware profile spr-8457c-dsa; nothing was migrated" in visible
    assert "model: predicted by dsalab.model from a hardware profile" in visible


def test_summary_numbers_are_the_analysis(emulated, page):
    ds = emulated[0]
    s = analysis.summarize(ds)
    visible = Parsed(page).visible
    (overall,) = s.overall.itertuples()
    assert f"{report.page.mean_std(overall.saved_pct, overall.saved_pct_std)} %" in visible
    for r in s.savings.itertuples():
        assert f"{report.page.mean_std(r.saved_pct, r.saved_pct_std)} %" in visible
    assert analysis.format_summary(s, ds) in visible  # dsalab summary's text, verbatim


def test_seed_figures_beside_ours(emulated, page):
    ds = emulated[0]
    visible = squash(Parsed(page).visible)
    assert "22.3 %" in visible and "22.0 %" in visible  # the cover letter's 41922 -> 32568 and 11154 -> 8700 ms
    for forced in (0.5, 0.0):  # both of the seed's guests ran here: each has our paired saving beside it
        _, pct = analysis.paired_saving(ds.sel(force_normal_ratio=forced), "dsa-emulated", "cpu-numba")
        mean, std, n = analysis.summarize_over(pct)
        cell = f"{report.page.mean_std(float(mean), float(std))} % (n={int(n)})"
        assert f"dsa-emulated vs cpu-numba at force_normal_ratio={forced}" in visible
        assert cell in visible


def test_seed_section_says_when_it_does_not_apply(emulated):
    cpu_only = emulated[0].sel(detector=["cpu-numba"])
    text = report.build(cpu_only)
    assert "so its figures do not apply" in text
    assert "fig-saved" not in report.figure_ids(text)


# -- several runs ---------------------------------------------------------------------------------------------------


def test_two_runs_compared(emulated, modelled):
    page = report.build({"measured": emulated[0], "model": modelled[0]})
    ids = report.figure_ids(page)
    assert ids.count("fig-saved") == 1  # one figure, the runs overlaid
    assert {"fig-threads-0", "fig-threads-1", "fig-latency-0", "fig-latency-1"} <= set(ids)
    parsed = Parsed(page)
    (script,) = [s for s in parsed.scripts if '"fig-saved"' in s]
    names = set(re.findall(r'"name":"([^"]+)"', script))
    assert names == {"measured: dsa-emulated vs cpu-numba", "model: dsa-hardware vs cpu-numba (model)"}
    visible = squash(parsed.visible)
    assert "Highlighted rows differ between the runs" in visible
    assert page.count('<tr class="differs"><td>runner</td><td>engine</td><td>model</td></tr>') == 1
    for text in (emulated[1], modelled[1]):
        assert text.strip() in parsed.visible
    assert page.count(PLOTLY_BANNER) == 1


def test_combined_files_are_split_into_runs_with_their_attributes(emulated, folder):
    a, b = folder / "a.nc", folder / "b.nc"
    results.write(emulated[0], a)
    other = emulated[0].copy(deep=True)
    other.attrs["sweep_file"] = "# another sweep file\n" + other.attrs["sweep_file"]
    results.write(other, b)
    combined = results.open([a, b])
    assert "run" in combined.dims
    runs = report.runs_of(combined)
    assert [n for n, _ in runs] == ["a", "b"]
    assert runs[1][1].attrs["sweep_file"].startswith("# another sweep file")
    visible = Parsed(report.build(combined)).visible
    assert "# another sweep file" in visible


def test_bad_input_is_refused(emulated):
    with pytest.raises(InvalidType, match="report data=int"):
        report.build(42)
    with pytest.raises(InvalidArgument, match="empty"):
        report.build([])
    with pytest.raises(InvalidArgument, match="names has 1 entries for 2 datasets"):
        report.build([emulated[0], emulated[0]], names=["one"])
    with pytest.raises(InvalidType, match="a result dataset"):
        report.build({"x": np.zeros(3)})
    assert issubclass(InvalidType, DsalabError)


# -- the command line -----------------------------------------------------------------------------------------------


def test_cli_writes_the_report_and_prints_its_path(emulated, modelled, folder, monkeypatch):
    monkeypatch.chdir(folder)
    results.write(emulated[0], folder / "one.nc")
    results.write(modelled[0], folder / "two.nc")
    r = cli.invoke(app, ["report", "one.nc"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "data/reports/one.html"
    assert report.figure_ids((folder / "data/reports/one.html").read_text())
    out = folder / "cmp" / "both.html"
    r = cli.invoke(app, ["report", "one.nc", "two.nc", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(out)
    assert "fig-threads-1" in report.figure_ids(out.read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report"], "give PATHS"),
        (["report", "missing.nc"], "no result files match missing.nc"),
        (["report", "one.nc", "-o", "."], "is a directory"),
        (["report", "one.nc", "--latest"], "not both"),
        (["report", "bad.nc"], "cannot read bad.nc"),
    ],
)
def test_cli_errors_are_one_line(emulated, folder, monkeypatch, args, message):
    monkeypatch.chdir(folder)
    results.write(emulated[0], folder / "one.nc")
    (folder / "bad.nc").write_text("not netCDF")
    r = cli.invoke(app, args)
    assert r.exit_code == 2 and message in r.output, r.output


# -- in a real browser ----------------------------------------------------------------------------------------------


def _chromium() -> str | None:
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not _chromium(), reason="no Chromium (make setup installs Debian's)")
def test_report_renders_in_chromium_without_console_errors(emulated, modelled, folder):
    path = report.write({"measured": emulated[0], "model": modelled[0]}, folder / "render.html")
    profile = tempfile.mkdtemp(prefix="dsalab-report-chromium-")
    try:
        dom = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--log-level=0",
                "--virtual-time-budget=10000",
                "--window-size=1300,1000",
                "--dump-dom",
                path.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=150,
            stdin=subprocess.DEVNULL,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "CONSOLE" not in dom.stderr, [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    ids = report.figure_ids(path.read_text())
    drawn = re.findall(r'<div id="(fig-[a-z0-9-]+)" class="plotly-graph-div js-plotly-plot"', dom.stdout)
    assert drawn == ids  # plotly drew every figure (it adds js-plotly-plot to a div it has drawn)
    assert dom.stdout.count('class="main-svg"') >= len(ids)
    assert "fig-saved" in drawn
