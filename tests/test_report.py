"""dsalab.report and ``dsalab report``: one self-contained HTML file (no network reference, plotly.js exactly
once), every figure that applies drawn in its own div, the sweep file and the caveats shown as text (dataset text
escaped), the summary's numbers and the seed's published figures beside ours, several runs compared; and the page
renders in headless Chromium with no console error."""

from __future__ import annotations

import html.parser
import json
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
from dsalab.report.figures import build_figure, kinds

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


# -- review fixes (issue 14) ----------------------------------------------------------------------------------------


class Tables(html.parser.HTMLParser):
    """Every table of a page: a list of rows, each a list of cell texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(squash("".join(self._cell)))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def find(self, first_header: str) -> list[list[str]]:
        return next(t for t in self.tables if t and t[0] and t[0][0] == first_header)


def _what_ran(page: str) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in Tables(page).tables[0][1:]}


def test_combined_files_of_different_grids_have_no_phantom_points(emulated, modelled, folder):
    """results.open of the engine run (cpu-numba + dsa-emulated, 3 repeats) and the model run (cpu-numba +
    dsa-hardware, 1 repeat): each run keeps its own detectors, points and repeats."""
    results.write(emulated[0], folder / "emu.nc")
    results.write(modelled[0], folder / "mod.nc")
    combined = results.open([folder / "emu.nc", folder / "mod.nc"])
    runs = dict(report.runs_of(combined))
    assert list(runs["emu"].detector.values) == ["cpu-numba", "dsa-emulated"] and runs["emu"].sizes["repeat"] == 3
    assert list(runs["mod"].detector.values) == ["cpu-numba", "dsa-hardware"] and runs["mod"].sizes["repeat"] == 1
    page = report.build(combined)
    rows = _what_ran(page)
    assert rows["trials"] == ["12, all succeeded", "4, all succeeded"]
    assert rows["repeats"] == ["3", "1"]
    assert rows["swept parameters (values)"] == ["detector (2), force_normal_ratio (2)"] * 2
    (script,) = [s for s in Parsed(page).scripts if '"fig-saved"' in s]
    assert set(re.findall(r'"name":"([^"]+)"', script)) == {
        "emu: dsa-emulated vs cpu-numba",
        "mod: dsa-hardware vs cpu-numba (model)",
    }
    visible = squash(Parsed(page).visible)
    assert "(n=0)" not in visible and "no successful trial" not in visible and "no pair" not in visible


def test_trials_not_run_are_counted_apart_from_failed(emulated):
    ds = emulated[0].copy(deep=True)
    at = {"detector": "dsa-emulated", "force_normal_ratio": 0.0}
    ds["status"].loc[at] = "failed"
    ds["error"].loc[at] = "not run"  # a sweep stopped before these trials
    ds["status"].loc[{"detector": "cpu-numba", "force_normal_ratio": 0.0, "repeat": 0}] = "failed"
    assert _what_ran(report.build(ds))["trials"] == ["9 (1 failed); 3 not run"]


def _with_base(ds, **fields):
    out = ds.copy(deep=True)
    base = json.loads(out.attrs["base_trial"])
    out.attrs["base_trial"] = json.dumps(base | fields)
    return out


def test_the_seeds_thread_figure_only_where_the_seeds_guest_ran(emulated):
    half = _with_base(emulated[0], normal_ratio=0.5)  # quick.toml's half-random guest: not the seed's
    assert "threads-seed" not in kinds(half)
    page = report.build(half)
    assert "fig-threads-seed" not in report.figure_ids(page)
    assert "no point here migrates this guest" in Parsed(page).visible
    # one of the two points migrates a seed guest (forced 0.5); the other (forced 0.25) is not drawn beside it
    mixed = emulated[0].assign_coords(force_normal_ratio=[0.5, 0.25])
    assert "threads-seed" in kinds(mixed)
    ours = [y for y in build_figure(mixed, "threads-seed").data[0].y[0] if y.startswith("dsalab")]
    whole = [y for y in build_figure(emulated[0], "threads-seed").data[0].y[0] if y.startswith("dsalab")]
    assert len(ours) == 2 and len(whole) == 4  # two detectors at one point, against two at two points


def _as_qemu(ds, accel: str, detection: str):
    out = ds.assign_coords(detector=["cpu-native", "dsa-hardware"]).copy(deep=True)
    out["backend"][:] = "qemu"
    out.attrs.update(qemu_version_ran="7.2.22", qemu_accel_ran=accel, qemu_zero_page_detection_ran=detection)
    return out


def test_qemu_runs_show_what_qemu_did_and_its_caveats(emulated):
    ds = _as_qemu(emulated[0], "tcg", "legacy")
    found = caveats(ds)
    assert len(found) == 2
    assert found[0].startswith("QEMU 7.2.22 ran with TCG (software emulation), not KVM")
    assert found[1].startswith("QEMU 7.2.22 found zero pages in its main migration thread")
    page = report.build(ds)
    rows = _what_ran(page)
    assert rows["QEMU accelerator (kvm, tcg)"] == ["tcg"]
    assert rows["QEMU version that ran"] == ["7.2.22"]
    assert rows["QEMU zero-page detection"] == ["legacy"]
    visible = squash(Parsed(page).visible)
    for sentence in found:
        assert squash(sentence) in visible
    assert "No caveat applies" not in visible
    # KVM, and each detector found its zero pages as it asked: nothing to say
    fine = _as_qemu(emulated[0], "kvm", "multifd,multifd-dsa-accel")
    assert caveats(fine) == []
    odd = caveats(_as_qemu(emulated[0], "kvm", "multifd,dsa-accel,<b>x</b>"))
    assert odd == []  # dsa-accel is one of the DSA detector's modes; markup is not a mode
    wrong = caveats(_as_qemu(emulated[0], "kvm", "none"))
    assert len(wrong) == 1 and "found zero pages with none, not what the detectors asked for" in wrong[0]


def test_seed_scenarios_in_their_own_rows(emulated, page):
    """Scenario 1 (0.5 forced normal, 22.3 %) beside our forced-0.5 point, scenario 2 (22.0 %) beside forced 0.0."""
    ds = emulated[0]
    table = Tables(page).find("seed scenario (100 GB guest, 8 channels)")
    rows = {r[0][:2]: r for r in table[1:] if r[0]}
    assert set(rows) == {"1:", "2:"}
    for scenario, forced, pct in (("1:", 0.5, "22.3 %"), ("2:", 0.0, "22.0 %")):
        row = rows[scenario]
        assert row[2] == pct
        assert row[4] == f"dsa-emulated vs cpu-numba at force_normal_ratio={forced}"
        _, saved = analysis.paired_saving(ds.sel(force_normal_ratio=forced), "dsa-emulated", "cpu-numba")
        mean, std, n = analysis.summarize_over(saved)
        assert row[5] == f"{report.page.mean_std(float(mean), float(std))} % (n={int(n)})"


def test_one_pair_shows_no_plus_minus_and_none_says_no_pair(emulated, modelled):
    model_page = squash(Parsed(report.build(modelled[0])).visible)
    assert "± 0 % (n=1)" not in model_page
    assert re.search(r"-?\d[\d.,]* % \(n=1\)", model_page)
    ds = emulated[0].copy(deep=True)
    ds["status"].loc[{"detector": "dsa-emulated", "force_normal_ratio": 0.0}] = "failed"
    tables = Tables(report.build(ds))
    points = tables.find("pair")
    (row,) = [r for r in points[1:] if r[1] == "force_normal_ratio=0.0"]
    assert row[4:] == ["no pair", "0"]
    seed = tables.find("seed scenario (100 GB guest, 8 channels)")
    (row,) = [r for r in seed[1:] if r[4].endswith("force_normal_ratio=0.0")]
    assert row[5:] == ["no pair", "no pair"]


def test_summary_means_are_over_the_pairs(emulated):
    """With a failed DSA trial, CPU ms/GB and DSA ms/GB are the means over the pairs the saving counts."""
    ds = emulated[0].copy(deep=True)
    at = {"detector": "dsa-emulated", "force_normal_ratio": 0.5, "repeat": 0}
    ds["status"].loc[at] = "failed"
    (row,) = [r for r in analysis.summarize(ds).savings.itertuples() if r.point == {"force_normal_ratio": 0.5}]
    values = ds.host_cpu_ms_per_gb.sel(force_normal_ratio=0.5, repeat=[1, 2])
    assert row.cpu_ms_per_gb == pytest.approx(float(values.sel(detector="cpu-numba").mean()))
    assert row.dsa_ms_per_gb == pytest.approx(float(values.sel(detector="dsa-emulated").mean()))
    assert row.n == 2


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("one.nc", "--out one.nc is the result file one.nc: it would be overwritten"),
        ("sub/../one.nc", "is the result file one.nc"),
        ("link.nc", "is the result file one.nc"),
        ("one.txt", "--out one.txt is not allowed: the report is one HTML file, give a name ending in .html or .htm"),
        ("report", "give a name ending in .html or .htm"),
    ],
)
def test_cli_refuses_an_output_that_is_an_input_or_not_html(emulated, folder, monkeypatch, out, message):
    monkeypatch.chdir(folder)
    results.write(emulated[0], folder / "one.nc")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "link.nc").unlink(missing_ok=True)
    (folder / "link.nc").symlink_to("one.nc")
    before = (folder / "one.nc").read_bytes()
    r = cli.invoke(app, ["report", "one.nc", "-o", out])
    assert r.exit_code == 2 and message in r.output, r.output
    assert (folder / "one.nc").read_bytes() == before  # the result is untouched
    assert not (folder / out).exists() or out.endswith(".nc")


def test_a_qemu_trials_caveats():
    """One QEMU trial (``dsalab run --runner qemu``): TCG and legacy zero-page detection are said; KVM with the
    detection the detector asked for is not."""
    from test_results import QEMU_CPU, QEMU_REPLY

    from dsalab import qemu
    from dsalab.trial import Trial

    trial = Trial(guest_bytes="64MiB", normal_ratio=0.5, channels=2, detector="cpu-native", seed=3)

    def one(accel: str, detection: str) -> list[str]:
        r = qemu.qemu_result(
            trial, QEMU_REPLY, QEMU_CPU, qemu_version="7.2.22", accel=accel, mismatched=0, zero_page_detection=detection
        )
        return caveats(r)

    tcg = one("tcg", "legacy")
    assert tcg[0].startswith("QEMU 7.2.22 ran with TCG (software emulation), not KVM")
    assert tcg[1].startswith("QEMU 7.2.22 found zero pages in its main migration thread")
    assert one("kvm", "multifd") == []


def test_summary_of_combined_files_of_different_grids_shows_only_what_each_ran(emulated, modelled, folder):
    """dsalab summary of a glob of two result files: each run's own detectors, no phantom dsa-hardware points in
    the engine run (the joined grid's other detector, never run there)."""
    from typer.testing import CliRunner

    from dsalab.cli import app

    results.write(emulated[0], folder / "sum-emu.nc")
    results.write(modelled[0], folder / "sum-mod.nc")
    out = CliRunner().invoke(app, ["summary", str(folder / "sum-*.nc")])
    assert out.exit_code == 0, out.output
    emu, mod = out.output.split("== sum-mod")
    assert "dsa-emulated" in emu and "dsa-hardware" not in emu
    assert "dsa-hardware" in mod and "dsa-emulated" not in mod
