"""dsalab.widgets: the panels' callbacks, driven from code, run trials (or select points) and update the figure."""

from __future__ import annotations

import pathlib

import ipywidgets as W
import numpy as np
import pytest

from dsalab import explore, plots, results
from dsalab.errors import DsalabError, InvalidArgument
from dsalab.migration import Trial
from dsalab.trial import DETECTORS
from dsalab.widgets import CONTROLLED, SweepExplorer, TuningPanel

pytestmark = pytest.mark.timeout(300)

BASE = Trial(guest_bytes="4MiB", detector="cpu-native", channels=2)


def test_sliders_act_on_release_only():
    panel = TuningPanel(BASE)
    assert set(panel.controls) == set(CONTROLLED)
    sliders = [c for c in panel.controls.values() if isinstance(c, W.SelectionSlider)]
    assert len(sliders) == 5
    assert all(s.continuous_update is False for s in sliders)
    assert panel.trial() == BASE  # the controls start at the base trial
    assert panel.history == []


def test_changing_a_control_runs_a_trial_and_updates_the_figure():
    panel = TuningPanel(BASE)
    figure = panel.figure
    panel.controls["batch_size"].value = 32
    assert len(panel.history) == 1
    trial, result, error = panel.history[0]
    assert error == "" and result is not None and result.verified
    assert trial.batch_size == 32 and trial.guest_bytes == BASE.guest_bytes
    assert panel.figure is figure  # updated in place, not rebuilt
    assert panel.trial_values() == [pytest.approx(result.host_cpu_ms_per_gb)]
    assert panel.trial_values("throughput_mbps") == [pytest.approx(result.throughput_mbps)]
    assert set(panel.thread_trace.x) == {"live_migration", "multifdsend_0", "multifdsend_1"}
    np.testing.assert_allclose(sum(panel.thread_trace.y), result.host_cpu_ms, rtol=1e-6)
    assert "verified yes" in panel.status.value

    panel.controls["normal_ratio"].value = 0.25
    panel.controls["channels"].value = 1
    assert len(panel.history) == 3
    labels = figure.layout.xaxis.categoryarray
    assert len(labels) == 3 and labels[-1].startswith("#3 cpu-native")
    assert set(panel.thread_trace.x) == {"live_migration", "multifdsend_0"}  # the last trial's threads
    assert panel.history[-1][0].channels == 1 and panel.history[-1][0].normal_ratio == 0.25


def test_run_once_without_auto_run():
    panel = TuningPanel(BASE, auto_run=False)
    panel.controls["packet_bytes"].value = 64 << 10
    assert panel.history == []
    result = panel.run_once()
    assert result is not None and result.trial.packet_bytes == 64 << 10
    assert len(panel.trial_values()) == 1
    panel.clear()
    assert panel.history == [] and panel.trial_values() == []


@pytest.mark.skipif(pathlib.Path("/dev/dsa").exists(), reason="this machine has DSA work queues")
def test_a_failed_trial_is_kept_and_explained():
    panel = TuningPanel(BASE, auto_run=False)
    panel.controls["detector"].value = "dsa-hardware"  # no DSA hardware here: the trial fails
    assert panel.run_once() is None
    _, result, error = panel.history[0]
    assert result is None and error
    assert "failed" in panel.status.value
    assert panel.trial_values() == [None]


def test_history_dataset_and_save(tmp_path):
    panel = TuningPanel(BASE)
    panel.controls["batch_size"].value = 32
    panel.controls["batch_size"].value = 64
    panel.controls["normal_ratio"].value = 0.0
    panel.controls["batch_size"].value = 32
    panel.run_once()  # batch 32, normal 0 again: a second repeat
    ds = panel.history_dataset()
    assert dict(ds.sizes) == {
        "batch_size": 2,
        "normal_ratio": 2,
        "repeat": 2,
        "thread": 5,
    }  # 2 senders, 2 receivers, live_migration
    assert list(ds.batch_size.values) == [32, 64]
    ok = ds.status.sel(batch_size=32, normal_ratio=0.0)
    assert list(ok.values) == ["ok", "ok"]
    hole = ds.sel(batch_size=64, normal_ratio=0.0, repeat=1)  # run once only: its second repeat is a hole
    assert (hole.status, hole.error) == ("failed", "not run")
    assert np.isnan(hole.host_cpu_ms)
    assert ds.host_cpu_ms_per_gb.attrs["units"] == "ms/GB"
    first = panel.history[0][1]
    assert float(ds.host_cpu_ms.sel(batch_size=32, normal_ratio=0.5, repeat=0)) == pytest.approx(first.host_cpu_ms)
    path = panel.save(tmp_path / "history.nc")
    back = explore.load(path)
    assert plots.overview(back).keys() >= {"threads", "latency", "batch-packet"}


def test_save_goes_through_results_write(tmp_path, monkeypatch):
    panel = TuningPanel(BASE, auto_run=False)
    panel.run_once()
    calls = []
    write = results.write
    monkeypatch.setattr(results, "write", lambda ds, path: calls.append(path) or write(ds, path))
    path = panel.save(tmp_path / "sub" / "history.nc")
    assert calls == [tmp_path / "sub" / "history.nc"] and path == calls[0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.nc"]  # atomic: no temporary file left
    back = results.read(path)
    results.validate(back)
    assert back.attrs["source"] == "dsalab.widgets.TuningPanel"
    assert back.attrs["machine_hostname"] and "git_commit" in back.attrs and "dsalab_version" in back.attrs
    assert back.attrs["trial"] == BASE.to_json()


def test_save_refuses_an_empty_history_and_writes_nothing(tmp_path):
    with pytest.raises(DsalabError, match="history is empty"):
        TuningPanel(BASE, auto_run=False).save(tmp_path / "history.nc")
    assert list(tmp_path.iterdir()) == []


def test_empty_history_has_no_dataset():
    with pytest.raises(InvalidArgument, match="history is empty"):
        TuningPanel(BASE).history_dataset()


@pytest.fixture(scope="module")
def sweep():
    grid = {"normal_ratio": [0.0, 0.5, 1.0], "batch_size": [32, 128]}
    return explore.run_grid(BASE, grid, repeats=2)


def test_sweep_explorer_selects_instead_of_running(sweep):
    explorer = SweepExplorer(sweep)
    assert explorer.controls["channels"].disabled  # not swept
    assert not explorer.controls["batch_size"].disabled
    assert list(explorer.controls["batch_size"].options) == [("32", 32), ("128", 128)]
    mean = sweep.host_cpu_ms_per_gb.mean("repeat")
    fig = explorer.figure
    explorer.controls["batch_size"].value = 128
    explorer.controls["normal_ratio"].value = 1.0
    assert explorer.selection() == {"normal_ratio": 1.0, "batch_size": 128}
    np.testing.assert_allclose(fig.data[0].y, mean.sel(batch_size=128).values)  # along normal_ratio
    assert fig.data[1].y[0] == pytest.approx(float(mean.sel(batch_size=128, normal_ratio=1.0)))
    explorer.x_axis.value = "batch_size"
    np.testing.assert_allclose(fig.data[0].y, mean.sel(normal_ratio=1.0).values)
    explorer.metric.value = "throughput_mbps"
    tput = sweep.throughput_mbps.mean("repeat").sel(normal_ratio=1.0)
    np.testing.assert_allclose(fig.data[0].y, tput.values)
    assert "Mbit/s" in fig.layout.yaxis.title.text
    cpu = sweep.thread_cpu_ms.mean("repeat").sel(normal_ratio=1.0, batch_size=128)
    cpu = cpu.sel(thread=["live_migration", "multifdsend_0", "multifdsend_1"])  # source side only
    assert sum(fig.data[2].y) == pytest.approx(float(cpu.sum()))


def test_sweep_explorer_needs_a_swept_dimension(sweep):
    with pytest.raises(InvalidArgument, match="nothing to explore"):
        SweepExplorer(sweep.isel(normal_ratio=0, batch_size=0, drop=True))


def test_sweep_explorer_other_parameters_get_a_dropdown():
    ds = explore.run_grid(BASE, {"guest_bytes": [1 << 20, 4 << 20], "normal_ratio": [0.0, 1.0]}, repeats=1)
    explorer = SweepExplorer(ds)
    assert list(explorer.extra) == ["guest_bytes"]
    assert [label for label, _ in explorer.extra["guest_bytes"].options] == ["1 MiB", "4 MiB"]
    explorer.extra["guest_bytes"].value = 4 << 20
    assert explorer.selection() == {"guest_bytes": 4 << 20, "normal_ratio": 0.0}
    mean = ds.host_cpu_ms_per_gb.mean("repeat")
    assert explorer.figure.data[1].y[0] == pytest.approx(float(mean.sel(guest_bytes=4 << 20, normal_ratio=0.0)))


# -- issue 14: the figures as a browser draws them ------------------------------------------------------------------


def _stored(fig):
    """What a reloaded page draws: the widget's synced traces and layout (the traits the kernel sends a new page;
    get_state() would give the same, serialised)."""
    assert {"_widget_data", "_widget_layout"} <= set(fig.get_state())
    return fig._widget_data, fig._widget_layout


def test_panel_figure_state_survives_a_reload():
    panel = TuningPanel(BASE)
    panel.controls["batch_size"].value = 32
    panel.controls["detector"].value = "cpu-numba"
    data, layout = _stored(panel.figure)
    by_name = {(d["type"], d.get("name")): d for d in data}
    assert by_name[("bar", "cpu-native")]["y"] == [pytest.approx(panel.history[0][1].host_cpu_ms_per_gb)]
    assert by_name[("scatter", "cpu-numba")]["y"] == [pytest.approx(panel.history[1][1].throughput_mbps)]
    assert list(layout["xaxis"]["categoryarray"]) == list(panel.figure.layout.xaxis.categoryarray)
    threads = next(d for d in data if d.get("name") == "CPU per thread")
    assert len(threads["x"]) == 3 and len(threads["marker"]["color"]) == 3


def test_explorer_figure_state_survives_a_reload(sweep):
    explorer = SweepExplorer(sweep)
    explorer.controls["batch_size"].value = 128
    data, layout = _stored(explorer.figure)
    mean = sweep.host_cpu_ms_per_gb.mean("repeat").sel(batch_size=128)
    np.testing.assert_allclose(data[0]["y"], mean.values)
    assert len(data[2]["x"]) == 3 and all(v > 0 for v in data[2]["y"])  # the per-thread bars, not empty
    assert layout["annotations"][0]["text"] != "metric"  # the real titles, not the placeholders
    assert "ms/GB" in layout["yaxis"]["title"]["text"]


def test_widget_figures_are_full_width_and_responsive():
    from dsalab.plots import live

    for fig in (TuningPanel(BASE).figure, SweepExplorer.__new__(SweepExplorer)._build_figure()):
        assert fig.layout.width is None and fig.layout.autosize is True  # no fixed (700 px default) width
        assert fig.get_state()["_config"]["responsive"] is True
        assert "_widget_layout" in fig.get_state() and "width" not in fig.get_state()["_widget_layout"]
    assert live.responsive_module_found()  # the resize wrapper is in the module the page loads
    module = live.LiveFigure._esm
    assert "ResizeObserver" in module and module.count("__dsalabLive as default") == 1


def test_explorer_fixed_values_come_from_the_dataset(sweep):
    explorer = SweepExplorer(sweep)  # the sweep ran cpu-native only, 2 channels, 4 MiB guests
    assert explorer.controls["detector"].value == "cpu-native" and explorer.controls["detector"].disabled
    assert explorer.controls["channels"].value == 2 and explorer.controls["channels"].disabled
    # a sweep file's dataset names its base trial
    ds = sweep.copy()
    ds.attrs = {"base_trial": Trial(detector="dsa-emulated", channels=4).to_json()}
    explorer = SweepExplorer(ds)
    assert (explorer.controls["detector"].value, explorer.controls["channels"].value) == ("dsa-emulated", 4)


def test_panel_trials_are_markers_with_a_detector_legend():
    panel = TuningPanel(BASE)
    fig = panel.figure
    assert all(t.mode == "markers" for t in fig.data if t.type == "scatter")  # unrelated trials: no line
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == list(DETECTORS) and fig.layout.legend.title.text == "detector"
    assert len({t.marker.color for t in fig.data if t.type == "bar" and t.name in DETECTORS}) == len(DETECTORS)
