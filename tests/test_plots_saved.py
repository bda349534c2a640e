"""The "saved by DSA" figure: each DSA point minus its CPU-detector twin, paired by repeat (the summary's saving,
one definition), error bars of the spread over repeat pairs, zero marked, units on the axes, model points
labelled; registered as kind "saved", so `dsalab plot` exports it."""

from __future__ import annotations

import pytest
from report_fixtures import run_sweep_file
from typer.testing import CliRunner

from dsalab import analysis, plots, results
from dsalab.cli import app
from dsalab.errors import InvalidArgument
from dsalab.plots.saved import MODEL_PATTERN, saved_points
from dsalab.plots.style import point_label

pytestmark = pytest.mark.timeout(300)
cli = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("saved")


@pytest.fixture(scope="module")
def ds(folder):
    out, _ = run_sweep_file(folder, "emu")
    assert (out.status == "ok").all(), out.error.values
    return out


@pytest.fixture(scope="module")
def model_ds(folder):
    return run_sweep_file(folder, "mod", runner="model")[0]


def expected(ds, metric: str, forced: float) -> tuple[float, float, int]:
    """Mean, sample std (ddof=1) and count of CPU twin minus DSA point over repeats, by hand."""
    values = ds[metric].sel(force_normal_ratio=forced)
    diff = (values.sel(detector="cpu-numba") - values.sel(detector="dsa-emulated")).values
    return float(diff.mean()), float(diff.std(ddof=1)), len(diff)


def test_bars_are_paired_differences_with_their_spread(ds):
    fig = plots.saved_by_dsa(ds)
    top, bottom = (t for t in fig.data if t.type == "bar")
    assert top.name == bottom.name == "dsa-emulated vs cpu-numba"
    assert list(top.x) == [point_label({"force_normal_ratio": v}) for v in (0.5, 0.0)]
    for trace, metric in ((top, "host_cpu_ms_per_gb"), (bottom, "total_time_ms")):
        for i, forced in enumerate((0.5, 0.0)):
            mean, std, n = expected(ds, metric, forced)
            assert trace.y[i] == pytest.approx(mean)
            assert trace.error_y.array[i] == pytest.approx(std)
            assert trace.customdata[i][0] == n == 3


def test_the_label_is_the_summarys_saving(ds):
    """One definition: the percent on each bar is the summary's saved_pct of that point."""
    summary = analysis.summarize(ds).savings
    points = saved_points(ds, "dsa-emulated", "cpu-numba", "host_cpu_ms_per_gb")
    for p in points:
        (row,) = [
            r for r in summary.itertuples() if r.point == {"force_normal_ratio": p["point"]["force_normal_ratio"]}
        ]
        assert p["pct"] == pytest.approx(row.saved_pct)
        assert p["pairs"] == row.n
    top = plots.saved_by_dsa(ds).data[0]
    assert list(top.text) == [f"{p['pct']:.0f}%" for p in points]


def test_zero_line_axis_titles_with_units(ds):
    fig = plots.saved_by_dsa(ds)
    zeros = [s for s in fig.layout.shapes if s.y0 == 0 and s.y1 == 0]
    assert len(zeros) == 2  # one per panel
    assert fig.layout.yaxis.title.text == "Host CPU saved (ms/GB)"
    assert fig.layout.yaxis2.title.text == "Total time saved (ms)"
    assert fig.layout.xaxis2.title.text.startswith("parameter point (")
    assert "above 0: DSA saves" in fig.layout.title.text


def test_a_failed_trial_drops_its_pair_only(ds):
    broken = ds.copy(deep=True)
    broken["status"].loc[{"detector": "dsa-emulated", "force_normal_ratio": 0.5, "repeat": 0}] = "failed"
    (p, _) = saved_points(broken, "dsa-emulated", "cpu-numba", "host_cpu_ms_per_gb")
    values = ds.host_cpu_ms_per_gb.sel(force_normal_ratio=0.5, repeat=[1, 2])
    diff = (values.sel(detector="cpu-numba") - values.sel(detector="dsa-emulated")).values
    assert p["pairs"] == 2
    assert p["saved"] == pytest.approx(diff.mean()) and p["std"] == pytest.approx(diff.std(ddof=1))


def test_model_points_are_labelled(model_ds):
    fig = plots.saved_by_dsa(model_ds)
    bars = [t for t in fig.data if t.type == "bar"]
    assert all(t.name == "dsa-hardware vs cpu-numba (model)" for t in bars)
    assert all(list(t.marker.pattern.shape) == [MODEL_PATTERN, MODEL_PATTERN] for t in bars)
    assert all(c[1] == "model" for c in bars[0].customdata)


def test_runs_overlaid(ds, model_ds):
    fig = plots.saved_by_dsa({"measured": ds, "model": model_ds})
    names = [t.name for t in fig.data if t.showlegend]
    assert names == ["measured: dsa-emulated vs cpu-numba", "model: dsa-hardware vs cpu-numba (model)"]
    measured = next(t for t in fig.data if t.name.startswith("measured"))
    assert list(measured.marker.pattern.shape) == ["", ""]
    assert len({t.marker.color for t in fig.data if t.showlegend}) == 2


def test_applies_only_with_a_dsa_and_a_cpu_detector(ds):
    assert plots.REGISTRY["saved"].applies(ds)
    assert "saved" in plots.overview(ds)
    cpu_only = ds.sel(detector=["cpu-numba"])
    assert not plots.REGISTRY["saved"].applies(cpu_only)
    assert "saved" not in plots.overview(cpu_only)
    with pytest.raises(InvalidArgument, match="needs a dsa-\\* and a cpu-\\* detector"):
        plots.saved_by_dsa(_as_two_cpu(cpu_only))
    with pytest.raises(InvalidArgument, match="needs detector swept over more than one value"):
        plots.saved_by_dsa(cpu_only)


def _as_two_cpu(one):
    """The CPU points twice, as two CPU detectors: a detector sweep with nothing to offload."""
    import xarray as xr

    other = one.assign_coords(detector=["cpu-native"])
    return xr.concat([one, other], dim="detector")


def test_dsalab_plot_exports_it(ds, folder, monkeypatch):
    monkeypatch.chdir(folder)
    results.write(ds, folder / "emu.nc")
    r = cli.invoke(app, ["plot", "emu.nc", "--kind", "saved", "--formats", "html", "--out", "figs"])
    assert r.exit_code == 0, r.output
    written = (folder / "figs" / "emu-saved.html").read_text()
    assert "dsa-emulated vs cpu-numba" in written
    r = cli.invoke(app, ["plot", "emu.nc", "--formats", "html", "--out", "auto"])
    assert r.exit_code == 0, r.output
    assert "auto/emu-saved.html" in r.output
