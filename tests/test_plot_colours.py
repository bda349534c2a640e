"""Colours, dashes, legends and axis titles of the figures at the size of the repo's own sweeps (data/sweeps/*.toml,
on a dataset of the sweep's grid with made-up values: the look depends on the grid, not on the numbers), and of
the panels' one figure each."""

from __future__ import annotations

import collections
import pathlib

import numpy as np
import pytest
import xarray as xr

from dsalab import explore, plots, sweepfile
from dsalab.migration import Trial
from dsalab.plots import style
from dsalab.trial import DETECTORS
from dsalab.widgets import SweepExplorer, TuningPanel

pytestmark = pytest.mark.timeout(300)

SWEEPS = sorted((pathlib.Path(__file__).resolve().parent.parent / "data" / "sweeps").glob("*.toml"))


def sweep_grid(path: pathlib.Path) -> xr.Dataset:
    """A result-shaped dataset over the sweep file's grid (two repeats), the line figures' metrics made up."""
    spec = sweepfile.load(path)
    coords = {k: list(v) for k, v in spec.params.items()}
    dims = [*coords, "repeat"]
    shape = [len(v) for v in coords.values()] + [2]
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {m: (dims, rng.random(shape) + 1) for m in ("host_cpu_ms_per_gb", "throughput_mbps")},
        coords={**coords, "repeat": [0, 1]},
    )
    ds["status"] = (dims, np.full(shape, "ok", dtype=object))
    return ds


def line_figures(ds) -> dict:
    figs = {kind: plots.figure(ds, kind) for kind in ("batch-packet", "scaling") if plots.REGISTRY[kind].applies(ds)}
    figs.update({f"lines {x}": plots.lines(ds, x) for x in plots.swept_dims(ds) if ds.sizes[x] > 1})
    return figs


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_no_two_lines_share_colour_and_dash_at_the_sweeps_size(path):
    ds = sweep_grid(path)
    for kind, fig in line_figures(ds).items():
        lines = [t for t in fig.data if t.type == "scatter" and "lines" in (t.mode or "")]
        shown = [(t.line.color, t.line.dash) for t in lines if t.showlegend is not False]
        repeated = [k for k, n in collections.Counter(shown).items() if n > 1]
        assert not repeated, f"{path.name} {kind}: {len(shown)} lines, colour and dash repeated: {repeated}"
        for t in lines:
            detector = next((d for d in DETECTORS if d in t.hovertemplate), "")
            assert (t.line.dash in ("solid", "longdash", "longdashdot", "14px,3px,3px,3px")) != detector.startswith(
                "cpu"
            ), (kind, t.name, t.line.dash)  # CPU lines dashed, the others not
            assert t.marker.color == t.line.color


def test_batch_packet_sweep_colours_lines_by_their_own_values():
    ds = sweep_grid(next(p for p in SWEEPS if p.stem == "batch-packet"))
    fig = plots.batch_and_packet(ds)
    shown = [t for t in fig.data if t.showlegend is not False]
    assert len(shown) == 24
    by_name = collections.defaultdict(set)
    for t in shown:
        by_name[(t.xaxis, t.name)].add((t.line.color, t.legendgroup.split("|")[0]))
    # the CPU and DSA lines at the same packet (or batch) share a colour, told apart by dash and marker
    assert all(len({c for c, _ in v}) == 1 for v in by_name.values()) and len(by_name) == 12
    assert len({t.line.color for t in shown}) == 12  # 6 per column, no colour in both columns


def test_a_legend_click_hides_one_line_in_every_row():
    ds = sweep_grid(next(p for p in SWEEPS if p.stem == "quick"))
    fig = plots.batch_and_packet(ds)
    groups = collections.Counter(t.legendgroup for t in fig.data)
    shown = [t.legendgroup for t in fig.data if t.showlegend is not False]
    assert len(set(shown)) == len(shown)  # each entry its own group: not all of one detector's lines at once
    assert all(groups[g] == 2 for g in shown)  # with its twin in the second row
    titles = [t.legendgrouptitle.text for t in fig.data if t.legendgrouptitle.text]
    assert sorted(titles) == ["cpu-numba", "cpu-numba", "dsa-emulated", "dsa-emulated"]  # one per detector per column


def test_size_axes_carry_units_in_their_ticks_not_bytes():
    ds = sweep_grid(next(p for p in SWEEPS if p.stem == "batch-packet"))
    fig = plots.lines(ds, "packet_bytes")
    assert fig.layout.xaxis.title.text == "Multifd packet size" and "KiB" in fig.layout.xaxis.ticktext[0]
    assert plots.label(ds, "guest_bytes") == "Guest RAM"


def test_latency_axis_of_a_parameter_without_a_label_follows_the_rule():
    ds = explore.run_grid(Trial(guest_bytes="4MiB", detector="cpu-native"), {"completion": ["thread", "poll"]}, 2)
    ds["completion"].attrs["long_name"] = "DSA completion mode"
    fig = plots.latency(ds.rename(completion="wait_mode"), by="wait_mode")
    assert fig.layout.xaxis.title.text == "DSA completion mode"  # not the variable name "wait_mode"


def test_panel_detector_colours_are_no_thread_colours():
    panel = TuningPanel(Trial(guest_bytes="4MiB", detector="dsa-emulated", channels=2))
    panel.run_once()
    fig = panel.figure
    detectors = {t.marker.color for t in fig.data if t.name in DETECTORS}
    threads = set(panel.thread_trace.marker.color)
    assert len(detectors) == len(DETECTORS) and len(threads) >= 3
    assert not detectors & threads, detectors & threads
    assert not detectors & set(plots.thread_colors(["live_migration", "dsa_completion"] + [
        f"multifdsend_{i}" for i in range(11)]).values())  # fmt: skip


def test_explorer_line_colours_are_no_thread_colours():
    ds = explore.run_grid(Trial(guest_bytes="4MiB", detector="dsa-emulated", channels=2), {"batch_size": [32, 64]}, 1)
    explorer = SweepExplorer(ds)
    fig = explorer.figure
    threads = set(fig.data[2].marker.color)
    assert threads and not {fig.data[0].line.color, fig.data[1].marker.color} & threads
    assert style.NEUTRAL not in threads


@pytest.fixture(scope="module")
def cpu_and_dsa():
    base = Trial(guest_bytes="4MiB", channels=2, normal_ratio=0.5)
    grid = {"detector": ["cpu-numba", "dsa-emulated"], "batch_size": [32, 128], "normal_ratio": [0.0, 1.0]}
    return explore.run_grid(base, grid, 2)


#: the one axis-title rule: "Name (units)" for numbers (a category axis may have no units)
AXIS_TITLE = __import__("re").compile(r"[A-Z][^()]*( \([^()]+\))?")


@pytest.mark.parametrize("kind", ["threads", "batch-packet", "break-even", "latency", "saved"])
def test_axis_title_rule_on_a_cpu_and_dsa_dataset(cpu_and_dsa, kind):
    fig = plots.overview(cpu_and_dsa)[kind]
    titles = [(n, fig.layout[n].title.text) for n in dir(fig.layout) if n.startswith(("xaxis", "yaxis"))]
    titles = [(n, t) for n, t in titles if fig.layout[n] is not None and t]
    assert titles
    for name, text in titles:
        assert AXIS_TITLE.fullmatch(text), f"{kind} {name}: {text!r} does not read 'Name (units)'"
        assert "(bytes)" not in text or "KiB" not in str(fig.layout[name].ticktext), (kind, name, text)


def test_the_legend_of_the_largest_sweep_fits_the_figure():
    fig = plots.batch_and_packet(sweep_grid(next(p for p in SWEEPS if p.stem == "tune")))
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    assert entries == 40 and fig.layout.height >= 21 * entries + 100  # plotly clips a legend taller than that
