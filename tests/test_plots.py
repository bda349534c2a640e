"""dsalab.plots: figures built from a small real dataset carry its numbers and labels; exports are valid files;
an exported HTML figure renders in headless Chromium."""

from __future__ import annotations

import ast
import dataclasses
import os
import pathlib
import shutil
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest

from dsalab import explore, plots, reference, results, widgets
from dsalab.migration import Trial

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def ds():
    base = Trial(guest_bytes="4MiB", channels=2, packet_bytes="64KiB")
    grid = {"detector": ["cpu-numba", "cpu-native"], "normal_ratio": [0.0, 1.0], "batch_size": [32, 128]}
    return explore.run_grid(base, grid, repeats=2)


@pytest.fixture(scope="module")
def scaling_ds():
    return explore.run_grid(Trial(guest_bytes="4MiB", detector="cpu-native"), {"channels": [1, 2]}, repeats=2)


# -- labels and values --------------------------------------------------------------------------------------------


def test_dataset_is_complete(ds):
    assert (ds.status == "ok").all(), ds.error.values
    assert dict(ds.sizes) == {"detector": 2, "normal_ratio": 2, "batch_size": 2, "repeat": 2, "thread": 5}


def test_label_from_attrs(ds):
    assert plots.label(ds, "host_cpu_ms_per_gb") == "Host CPU per GB of guest RAM migrated (ms/GB)"
    assert plots.label(ds, "verified") == "Destination equals source, byte for byte"  # unit "1" is left out
    assert plots.label(ds, "packet_bytes") == plots.PARAM_LABELS["packet_bytes"]


def test_plain_numbers_for_heatmap_cells():
    assert plots.plain(1392.4) == "1,390" and plots.plain(463.2) == "463" and plots.plain(0.012345) == "0.0123"
    assert plots.plain(157.0, 2) == "160" and plots.plain(-12.345) == "-12.3" and plots.plain(0) == "0"
    assert plots.plain(float("nan")) == "n/a" and plots.plain(999.7) == "1,000"
    assert plots.mean_pm(1392.4, 157.0) == "1,390 ± 160" and plots.mean_pm(463.0, float("nan")) == "463"


def test_heatmap_cells_and_axes_read_plainly(ds):
    big = ds.copy(deep=True)
    big["host_cpu_ms_per_gb"] = big.host_cpu_ms_per_gb * 0 + 1390.0 + 160.0 * (big.repeat - 0.5) * np.sqrt(2)
    fig = plots.heatmap(big, x="batch_size", y="normal_ratio")
    cells = [c for t in fig.data for row in t.text for c in row]
    assert cells and all(c == "1,390 ± 160" for c in cells), cells[:3]  # not "1.39e+03 ±1.6e+02"
    assert fig.layout.xaxis.title.text == plots.PARAM_LABELS["batch_size"] == "Batch size (pages per DSA batch)"
    assert fig.layout.yaxis.title.text == "Normal page ratio (fraction of pages non-zero)"


#: the one axis-title rule: "Name (units)" for numbers; a category axis (detector, thread, trial) may have no units
AXIS_TITLE = __import__("re").compile(r"[A-Z][^()]*( \([^()]+\))?")


def _axis_titles(fig):
    for name in dir(fig.layout):
        if name.startswith(("xaxis", "yaxis")) and fig.layout[name] is not None:
            axis = fig.layout[name]
            if axis.title.text:
                yield name, axis.title.text, axis.type


def test_one_axis_title_rule_with_units(ds, scaling_ds):
    figs = {**plots.overview(ds), **{f"scaling-{k}": f for k, f in plots.overview(scaling_ds).items()}}
    figs["thread-ref"] = plots.thread_cpu(ds, reference=True)
    figs["heatmap"] = plots.heatmap(ds, x="batch_size", y="normal_ratio")
    seen = 0
    for kind, fig in figs.items():
        for axis, text, kind_of_axis in _axis_titles(fig):
            seen += 1
            assert AXIS_TITLE.fullmatch(text), f"{kind} {axis}: {text!r} does not read 'Name (units)'"
            numeric = kind_of_axis != "category" and "detector" not in text.lower()
            assert not numeric or text.endswith(")"), f"{kind} {axis}: {text!r} has no units"
    assert seen >= 10


def test_palette_colours_are_distinct_and_many():
    assert len(plots.COLORS) >= 20 and len(set(c.lower() for c in plots.COLORS)) == len(plots.COLORS)
    senders = [f"multifdsend_{i}" for i in range(8)]
    colors = plots.thread_colors(["live_migration", "dsa_completion", *senders])
    assert len(set(colors.values())) == 10  # every thread its own colour (the seed's blues repeated)


def test_lines_distinct_colours_cpu_dashed_grouped_by_detector(ds):
    import xarray as xr

    # 16 lines along batch size (2 detectors x 2 normal ratios x 4 channel counts), as in the exported figure
    dsa = ds.assign_coords(detector=["cpu-numba", "dsa-emulated"])
    wide = xr.concat([dsa] * 4, dim="channels").assign_coords(channels=[1, 2, 4, 8])
    fig = plots.lines(wide, "batch_size")
    assert len(fig.data) == 16
    assert len({(t.line.color, t.line.dash) for t in fig.data}) == 16  # no two lines share colour and dash
    assert len({t.line.color for t in fig.data}) == 8  # coloured by their own values, the same for both detectors
    titles = []
    for t in fig.data:
        (detector,) = [d for d in ("cpu-numba", "dsa-emulated") if d in t.legendgroup]
        assert detector not in t.name  # the group title names it
        assert t.line.dash == ("dash" if detector.startswith("cpu") else "solid")  # CPU lines dashed
        assert t.marker.symbol == plots.style.DETECTOR_SYMBOLS[detector] and "channels" in t.name
        titles += [t.legendgrouptitle.text] if t.legendgrouptitle.text else []
    assert titles == ["cpu-numba", "dsa-emulated"]  # over each detector's first line


def test_format_value():
    assert plots.format_value("packet_bytes", 512 << 10) == "512 KiB"
    assert plots.format_value("packet_bytes", 4 << 20) == "4 MiB"
    assert plots.format_value("packet_bytes", 6000) == "6000 B"
    assert plots.format_value("normal_ratio", 0.25) == "0.25"
    assert plots.format_value("detector", "cpu-native") == "cpu-native"


def test_lines_mean_and_error_bars(ds):
    fig = plots.lines(ds, "batch_size")
    assert fig.layout.xaxis.title.text == plots.PARAM_LABELS["batch_size"]
    assert "ms/GB" in fig.layout.yaxis.title.text
    assert len(fig.data) == 4  # detector x normal_ratio
    expected = ds.host_cpu_ms_per_gb.sel(detector="cpu-native", normal_ratio=1.0)
    trace = next(t for t in fig.data if "cpu-native" in t.legendgroup and t.name == "normal 1")
    np.testing.assert_allclose(trace.y, expected.mean("repeat").values)
    np.testing.assert_allclose(trace.error_y.array, expected.std("repeat", ddof=1).values)  # sample std


def test_thread_cpu_stacks_add_up_to_host_cpu(ds):
    fig = plots.thread_cpu(ds)
    bars = [t for t in fig.data if t.type == "bar"]
    assert {t.name for t in bars} == {"live_migration", "multifdsend_0", "multifdsend_1"}
    stacked = np.nansum([np.asarray(t.x, dtype=float) for t in bars], axis=0)[::-1]  # first point on top
    expected = ds.host_cpu_ms.mean("repeat").transpose("detector", "normal_ratio", "batch_size").values.ravel()
    np.testing.assert_allclose(stacked, expected, rtol=1e-6)
    assert bars[0].y[-1] == "cpu-numba, normal 0, batch 32"


def test_thread_cpu_beside_the_seed_per_gb(ds):
    fig = plots.thread_cpu(ds, reference=True)
    seed = reference.cpu_runtime()
    stats = reference.migration_stats()
    gb = float(stats[(stats.scenario == 1) & (stats["mode"] == "dsa")].total_ram_kb.iloc[0]) * 1024 / 1e9
    completion = next(t for t in fig.data if t.name == "dsa_completion")
    groups, labels = completion.y
    i = list(labels).index("scenario 1 (dsa, 0.5 forced normal)")
    assert groups[i].startswith("seed")
    row = seed[(seed.scenario == 1) & (seed["mode"] == "dsa") & (seed.thread == "dsa_completion")]
    assert completion.x[i] == pytest.approx(float(row.runtime_ms.iloc[0]) / gb)
    assert "ms/GB" in fig.layout.xaxis.title.text


def test_heatmap_cells_are_means(ds):
    fig = plots.heatmap(ds, x="batch_size", y="normal_ratio")
    assert len(fig.data) == 2  # one panel per detector
    z = np.asarray(fig.data[1].z, dtype=float)
    expected = ds.host_cpu_ms_per_gb.sel(detector="cpu-native").mean("repeat").transpose("normal_ratio", "batch_size")
    np.testing.assert_allclose(z, expected.values)


def test_batch_and_packet_and_scaling(ds, scaling_ds):
    fig = plots.batch_and_packet(ds)
    assert len(fig.data) == 2 * 4  # two metrics x four lines
    with pytest.raises(ValueError, match="devices or channels"):
        plots.scaling(ds)
    fig = plots.scaling(scaling_ds)
    assert list(fig.data[0].x) == [1, 2]
    np.testing.assert_allclose(fig.data[1].y, scaling_ds.throughput_mbps.mean("repeat").values)


def test_each_panel_column_has_its_own_lines():
    ds = explore.run_grid(Trial(guest_bytes="4MiB", detector="cpu-native"), {"devices": [1, 2], "channels": [1, 2]})
    fig = plots.scaling(ds)
    first_row = [t for t in fig.data if t.yaxis == "y" or t.yaxis == "y2"]
    assert [t.name for t in first_row] == ["channels 1", "channels 2", "devices 1", "devices 2"]
    assert all(t.showlegend for t in first_row)
    assert len({t.line.color for t in first_row}) == 4  # no colour means two things in one legend
    np.testing.assert_allclose(first_row[2].y, ds.host_cpu_ms_per_gb.sel(devices=1).values.ravel())


def test_crossings():
    assert plots.crossings(np.array([0, 0.5, 1.0]), np.array([-2.0, -1.0, 1.0])) == [0.75]
    assert plots.crossings(np.array([0, 1.0]), np.array([-1.0, -1.0])) == []
    assert plots.crossings(np.array([0, 0.5, 1.0]), np.array([1.0, np.nan, -1.0])) == [0.5]


def test_break_even_difference_and_crossing(ds):
    curves = plots.break_even_points(ds, offload="cpu-native", baseline="cpu-numba")
    assert len(curves) == 2  # one per batch size
    mean = ds.host_cpu_ms_per_gb.mean("repeat")
    diff = (mean.sel(detector="cpu-native") - mean.sel(detector="cpu-numba")).sel(batch_size=32)
    np.testing.assert_allclose(curves[0]["difference"], diff.values)
    # a dataset with a known crossing: offload 100 ms/GB cheaper at ratio 0, 300 dearer at ratio 1 -> 0.25
    known = ds.copy(deep=True)
    cpu = known.host_cpu_ms_per_gb
    cpu.loc[{"detector": "cpu-numba"}] = 1000.0
    cpu.loc[{"detector": "cpu-native", "normal_ratio": 0.0}] = 900.0
    cpu.loc[{"detector": "cpu-native", "normal_ratio": 1.0}] = 1300.0
    curves = plots.break_even_points(known, offload="cpu-native")
    assert curves[0]["crossings"] == [pytest.approx(0.25)]
    fig = plots.break_even(known, offload="cpu-native")
    assert any(s.type == "line" and s.x0 == pytest.approx(0.25) for s in fig.layout.shapes)
    assert any("break-even 0.25" in (a.text or "") for a in fig.layout.annotations)


def test_break_even_error_bars_are_paired_by_repeat(ds):
    fig = plots.break_even(ds, offload="cpu-native", baseline="cpu-numba")
    diff = (ds.host_cpu_ms_per_gb.sel(detector="cpu-native") - ds.host_cpu_ms_per_gb.sel(detector="cpu-numba")).sel(
        batch_size=32
    )  # repeat r of both detectors migrated the same guest memory
    expected = diff.std("repeat", ddof=1).values / np.sqrt(2)
    trace = next(t for t in fig.data if t.yaxis == "y2" and t.name.startswith("batch 32"))
    np.testing.assert_allclose(trace.y, diff.mean("repeat").values)
    np.testing.assert_allclose(trace.error_y.array, expected)


def test_heatmap_cells_show_the_sample_std(ds):
    fig = plots.heatmap(ds, x="batch_size", y="normal_ratio")
    std = ds.host_cpu_ms_per_gb.sel(detector="cpu-numba", normal_ratio=0.0, batch_size=32).std(ddof=1)
    assert fig.data[0].text[0][0].endswith(f"± {plots.plain(float(std), 2)}")


def test_break_even_defaults_to_dsa_minus_cpu(ds):
    renamed = ds.assign_coords(detector=["cpu-numba", "dsa-emulated"])
    (curve,) = plots.break_even_points(renamed.sel(batch_size=[32]))
    assert (curve["offload"], curve["baseline"]) == ("dsa-emulated", "cpu-numba")


def test_latency_shows_every_ok_trial(ds):
    failed = ds.copy(deep=True)
    failed["status"].loc[{"detector": "cpu-native", "repeat": 0}] = "failed"
    fig = plots.latency(failed)
    boxes = {(t.xaxis, t.name): t for t in fig.data}
    assert len(boxes[("x", "cpu-numba")].y) == 8
    assert len(boxes[("x", "cpu-native")].y) == 4  # failed trials left out
    assert "failed trial" in fig.layout.title.text


def test_overview_and_unknown_kind(ds, scaling_ds):
    assert set(plots.overview(ds)) == {"threads", "batch-packet", "break-even", "latency"}
    assert set(plots.overview(scaling_ds)) == {"threads", "scaling", "latency"}
    with pytest.raises(ValueError, match="unknown figure kind 'pie'"):
        plots.figure(ds, "pie")
    with pytest.raises(ValueError, match="packet_bytes"):
        plots.heatmap(ds)


def test_one_registry_of_figure_kinds(ds, monkeypatch):
    assert (
        plots.KINDS
        == tuple(plots.REGISTRY)
        == ("threads", "batch-packet", "heatmap", "scaling", "break-even", "saved", "latency")
    )
    assert all(k.name == name for name, k in plots.REGISTRY.items())
    # a kind registered once is known everywhere: by figure(), by overview() and in its error messages
    made = []
    kind = plots.FigureKind("count", lambda d: made.append(d) or plots.latency(d), lambda d: "repeat" in d.dims)
    monkeypatch.setitem(plots.REGISTRY, "count", kind)
    assert plots.figure(ds, "count").layout.title.text.startswith("Latency")
    assert "count" in plots.overview(ds) and len(made) == 2
    with pytest.raises(ValueError, match=r"choose from threads, .*, latency, count"):
        plots.figure(ds, "pie")
    monkeypatch.setitem(plots.REGISTRY, "count", dataclasses.replace(kind, applies=lambda d: False))
    assert "count" not in plots.overview(ds)


def test_style_names_are_public():
    assert plots.color(0) == plots.COLORS[0] == "#1f77b4" and plots.color(len(plots.COLORS) + 1) == plots.color(1)
    assert plots.short_metric("host_cpu_ms_per_gb") == "host CPU per GB"  # METRIC_SHORT
    assert plots.short_metric("zero_pages") == results.METRICS["zero_pages"][1]  # the schema's long name
    assert plots.short_metric("my_metric") == "my metric"
    # the widgets use only public names of the plots package
    tree = ast.parse(pathlib.Path(widgets.__file__).read_text())
    private = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")]
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    assert not [a for a in private if a in {"_color", "_short_metric"}] and used >= {"DETECTOR_COLORS", "short_metric"}


def test_plots_modules_are_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in pathlib.Path(plots.__file__).parent.glob("*.py")}
    assert len(sizes) > 5 and max(sizes.values()) <= 400, sizes


def test_results_written_and_read_back_plot_the_same(ds, tmp_path):
    path = tmp_path / "grid.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = explore.load(path)
    np.testing.assert_allclose(plots.lines(back, "batch_size").data[0].y, plots.lines(ds, "batch_size").data[0].y)


# -- export -------------------------------------------------------------------------------------------------------


def png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium and kaleido write) to an array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.int32)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros_like(line)
        for i in range(len(line)):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


def _colors(pixels: np.ndarray) -> int:
    return len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))


needs_chromium = pytest.mark.skipif(
    not (os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="no Chromium (make setup installs Debian's)",
)


@needs_chromium
def test_export_html_png_svg(ds, tmp_path):
    fig = plots.thread_cpu(ds)
    paths = plots.export(fig, tmp_path / "threads", formats=("html", "png", "svg"))
    assert [p.name for p in paths] == ["threads.html", "threads.png", "threads.svg"]
    html = paths[0].read_text()
    assert "plotly" in html and "Plotly.newPlot" in html
    assert "cdn.plot.ly" not in html.split("Plotly.newPlot")[1]  # plotly.js embedded, not fetched
    assert len(html) > 1_000_000
    png = paths[1].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = png_pixels(png)
    assert (
        pixels.shape[1] == plots.SCALE * plots.WIDTH == 2000 and _colors(pixels) > 10
    )  # bars, text: not a blank image
    root = ET.parse(paths[2]).getroot()
    assert root.tag.endswith("svg")
    assert "Host CPU per thread" in paths[2].read_text()


def test_export_rejects_unknown_format(ds, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        plots.export(plots.latency(ds), tmp_path / "x", formats=("html", "gif"))


def _chromium() -> str:
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="dsalab-chromium-")
    try:
        return subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--log-level=0",
                "--virtual-time-budget=5000",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@needs_chromium
def test_console_errors_are_seen(tmp_path):
    """The check below can fail: a page with a script error shows up in Chromium's log."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>notDefinedAnywhere();</script></body></html>")
    r = _headless(page.as_uri(), "--dump-dom")
    assert "CONSOLE" in r.stderr and "notDefinedAnywhere" in r.stderr


@needs_chromium
def test_exported_html_renders_in_chromium(ds, tmp_path):
    (html,) = plots.export(plots.break_even(ds, offload="cpu-native"), tmp_path / "break-even", formats=("html",))
    dom = _headless(html.as_uri(), "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "CONSOLE" not in dom.stderr, [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert 'class="main-svg"' in dom.stdout  # plotly drew its svg
    assert dom.stdout.count('class="point"') >= 8  # the markers of the curves
    shot = tmp_path / "shot.png"
    r = _headless(html.as_uri(), "--window-size=1000,750", f"--screenshot={shot}")
    assert r.returncode == 0, r.stderr[-2000:]
    pixels = png_pixels(shot.read_bytes())
    assert _colors(pixels) > 10  # lines, text and the colour of each curve: not a blank page
    assert (pixels.reshape(-1, 3)[::7] != 255).any(axis=1).mean() > 0.02


def test_thread_figure_is_tall_enough_for_its_legend(ds):
    # notebook 01's figure: our point(s) beside the seed's; every thread's legend row must fit, dsa_completion too
    one = ds.sel(detector=["cpu-native"], normal_ratio=[0.0], batch_size=[32])
    fig = plots.thread_cpu(one, reference=True)
    entries = [t.name for t in fig.data if t.showlegend is not False]
    assert "dsa_completion" in entries and len(entries) >= 8
    plot_height = fig.layout.height - fig.layout.margin.t - 80  # plotly's default bottom margin
    assert plot_height >= 20 * len(entries), (fig.layout.height, len(entries))
