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
    assert fig.layout.xaxis2.title.text.startswith("Parameter point: ")
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


# -- review fixes (issue 14): the twin, one pair, overlays, names ------------------------------------------------


def _hand(values, status=None, attrs=None):
    """host_cpu_ms_per_gb and total_time_ms over (detector, batch_size, repeat), by hand; ``status`` as values."""
    import numpy as np
    import xarray as xr

    dims = ("detector", "batch_size", "repeat")
    data = np.array(values, dtype=float)
    status = np.array(status if status is not None else np.full(data.shape, "ok"), dtype=object)
    error = np.where(status == "ok", "", "boom").astype(object)
    detectors = ["cpu-numba", "dsa-emulated"]
    backend = np.where(status == "ok", np.array(detectors)[:, None, None], "").astype(object)
    return xr.Dataset(
        {
            "host_cpu_ms_per_gb": (dims, data),
            "total_time_ms": (dims, data * 10),
            "status": (dims, status),
            "error": (dims, error),
            "backend": (dims, backend),
        },
        coords={"detector": detectors, "batch_size": [32, 64], "repeat": [0, 1]},
        attrs=attrs or {},
    )


def test_the_twin_ignores_dsa_only_fields_same_seed():
    """A sweep (repeats are seeds): the CPU trial at batch 32 repeat 0 failed; the DSA point at batch 32 pairs
    with the CPU trial of the same repeat at batch 64 (batch_size changes nothing for a CPU detector)."""
    values = [[[100, 110], [104, 114]], [[60, 70], [50, 55]]]
    status = [[["failed", "ok"], ["ok", "ok"]], [["ok", "ok"], ["ok", "ok"]]]
    ds = _hand(values, status, {"seed": 7})
    saved, _ = analysis.paired_saving(ds, "dsa-emulated", "cpu-numba")
    assert saved.sel(batch_size=32).values.tolist() == [104 - 60, 110 - 70]  # repeat 0 from batch 64, same seed
    assert saved.sel(batch_size=64).values.tolist() == [104 - 50, 114 - 55]
    (p32, p64) = saved_points(ds, "dsa-emulated", "cpu-numba", "host_cpu_ms_per_gb")
    assert p32["pairs"] == p64["pairs"] == 2


def test_history_twin_is_any_cpu_run_of_the_point(folder):
    """A panel's history: CPU ran only at batch 128, DSA at 32 and 128 (twice at 32). Every DSA run has its twin
    (the mean of the CPU runs: every trial of a history used the one seed); nothing is left blank."""
    import math

    from dsalab import explore
    from dsalab.trial import Trial

    base = Trial(guest_bytes="4MiB", channels=2, packet_bytes="64KiB", normal_ratio=0.0)
    runs = [
        base.replace(detector="cpu-numba", batch_size=128),
        base.replace(detector="dsa-emulated", batch_size=32),
        base.replace(detector="dsa-emulated", batch_size=128),
        base.replace(detector="dsa-emulated", batch_size=32),
    ]
    history = [(t, *explore.run_one(t)) for t in runs]
    assert all(r is not None for _, r, _ in history), [e for *_, e in history]
    hist = explore.history_dataset(history, ["batch_size", "detector"])
    assert not analysis.repeats_are_seeds(hist)
    cpu = history[0][1].host_cpu_ms_per_gb
    pts = {p["point"]["batch_size"]: p for p in saved_points(hist, "dsa-emulated", "cpu-numba", "host_cpu_ms_per_gb")}
    assert pts[32]["pairs"] == 2 and pts[128]["pairs"] == 1
    dsa32 = [history[1][1].host_cpu_ms_per_gb, history[3][1].host_cpu_ms_per_gb]
    assert pts[32]["saved"] == pytest.approx(cpu - sum(dsa32) / 2)
    assert pts[128]["saved"] == pytest.approx(cpu - history[2][1].host_cpu_ms_per_gb)
    assert math.isnan(pts[128]["std"])  # one pair: no spread shown
    fig = plots.saved_by_dsa(hist)
    assert "no pair" not in fig.layout.title.text


def test_points_without_a_pair_are_listed_not_blank():
    values = [[[100, 110], [104, 114]], [[60, 70], [50, 55]]]
    status = [[["failed", "failed"], ["failed", "failed"]], [["ok", "ok"], ["ok", "ok"]]]  # no CPU trial at all
    ds = _hand(values, status, {"seed": 7})
    fig = plots.saved_by_dsa(ds)
    assert "no pair (no CPU-detector twin that succeeded): dsa-emulated vs cpu-numba at batch 32, batch 64" in (
        fig.layout.title.text
    )
    notes = [t for t in fig.data if t.type == "scatter" and t.mode == "text"]
    assert len(notes) == 2 and all(list(t.text) == ["no pair", "no pair"] for t in notes)  # one per panel


def test_one_pair_has_no_error_bar(model_ds):
    """The model runs one repeat: one pair per point has no spread, so no "± 0" bar (NaN hides it)."""
    import math

    bars = [t for t in plots.saved_by_dsa(model_ds).data if t.type == "bar"]
    assert len(bars) == 2  # one per panel
    for trace in bars:
        assert trace.error_y.visible is False and all(math.isnan(v) for v in trace.error_y.array)
        assert all(c[0] == 1 for c in trace.customdata) and "±" not in trace.hovertemplate


def test_error_bars_only_where_two_pairs_or_more(ds):
    """One point with a single pair beside one with three: its bar has no error bar; same slot, one legend entry."""
    broken = ds.copy(deep=True)
    broken["status"].loc[{"detector": "dsa-emulated", "force_normal_ratio": 0.0, "repeat": [0, 1]}] = "failed"
    fig = plots.saved_by_dsa(broken)
    top = [t for t in fig.data if t.type == "bar" and t.xaxis == "x"]
    assert [(list(t.x), t.error_y.visible) for t in top] == [
        ([point_label({"force_normal_ratio": 0.5})], True),
        ([point_label({"force_normal_ratio": 0.0})], False),
    ]
    assert len({t.offsetgroup for t in top}) == 1 and [t.showlegend for t in top] == [True, False]
    assert list(fig.layout.xaxis.categoryarray) == [point_label({"force_normal_ratio": v}) for v in (0.5, 0.0)]


def test_overlaid_runs_name_every_swept_parameter_on_the_x_axis(ds):
    other = ds.rename({"force_normal_ratio": "normal_ratio"})  # a run that sweeps the normal ratio instead
    fig = plots.saved_by_dsa({"a": ds, "b": other})
    assert fig.layout.xaxis2.title.text == "Parameter point: force normal ratio, normal"


def test_run_names_are_text_not_markup(ds):
    name = '<a href="https://example.com/x">click</a> <b>b</b>'
    fig = plots.saved_by_dsa({name: ds, "other": ds})
    shown = [t.name for t in fig.data] + [fig.layout.title.text]
    assert not any("<a " in s or "<b>" in s for s in shown), shown
    assert any(s.startswith('&lt;a href="https://example.com/x"&gt;click&lt;/a&gt;') for s in shown)
    one = plots.saved_by_dsa({name: ds})
    assert "<a " not in one.layout.title.text and "&lt;b&gt;" in one.layout.title.text


def test_a_combined_file_has_no_phantom_runs(ds, model_ds, folder):
    """results.open of two grids (cpu-numba + dsa-emulated x3 repeats; cpu-numba + dsa-hardware x1): each run's
    bars are its own detector pair, no empty legend entry for the other run's detector."""
    results.write(ds, folder / "emu.nc")
    results.write(model_ds, folder / "mod.nc")
    combined = results.open([folder / "emu.nc", folder / "mod.nc"])
    fig = plots.saved_by_dsa(combined)
    names = [t.name for t in fig.data if t.showlegend]
    assert names == ["emu: dsa-emulated vs cpu-numba", "mod: dsa-hardware vs cpu-numba (model)"]
    bars = [t for t in fig.data if t.type == "bar"]
    assert all(all(c[0] == (3 if t.name.startswith("emu") else 1) for c in t.customdata) for t in bars)


def test_dsa_only_fields_are_the_qemu_mappings():
    """analysis (data layer) keeps its own copy of the DSA-only fields: it must be the engine's list."""
    from dsalab.qemu.mapping import DSA_ONLY

    assert set(analysis.DSA_ONLY) == set(DSA_ONLY)
