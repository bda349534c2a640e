"""dsalab.explore: small grids in the results layout, and finding result files; `dsalab plot` on them."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from dsalab import benchmarking, explore
from dsalab.cli import app
from dsalab.errors import DsalabError
from dsalab.migration import Trial

pytestmark = pytest.mark.timeout(300)

BASE = Trial(guest_bytes="4MiB", detector="cpu-native", channels=2)


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    ds = explore.run_grid(BASE, {"detector": ["cpu-numba", "cpu-native"], "batch_size": [16, 64]}, repeats=2)
    path = tmp_path_factory.mktemp("results") / "host" / "quick.nc"
    path.parent.mkdir()
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_run_grid_layout_and_seeds():
    seen = []
    ds = explore.run_grid(
        BASE, {"normal_ratio": [0.0, 1.0]}, repeats=2, progress=lambda i, n, t: seen.append((i, n, t.seed))
    )
    assert dict(ds.sizes) == {"normal_ratio": 2, "repeat": 2, "thread": 5}
    assert (ds.status == "ok").all() and (ds.verified == 1).all()
    assert seen == [(0, 4, 0), (1, 4, 1), (2, 4, 0), (3, 4, 1)]  # repeat r runs with seed base.seed + r
    assert (ds.normal_pages.sel(normal_ratio=0.0) == 0).all()
    assert (ds.zero_pages.sel(normal_ratio=1.0) == 0).all()
    assert ds.attrs["source"] == "dsalab.explore.run_grid" and '"guest_bytes": 4194304' in ds.attrs["trial"]


def test_run_grid_records_failures():
    bad = Trial(guest_bytes="4MiB", detector="dsa-hardware", devices=("/dev/dsa/wq99.99",))
    with pytest.warns(explore.TrialsFailedWarning, match=r"1 of 1 trials failed .*the first, dsa-hardware at"):
        ds = explore.run_grid(bad, {"batch_size": [8]}, repeats=1, warmup=False)
    assert ds.status.item() == "failed" and ds.error.item()


def test_run_grid_rejects_unknown_fields():
    with pytest.raises(ValueError, match="not Trial fields"):
        explore.run_grid(BASE, {"bogus": [1]})


def test_find_and_latest(result_file, tmp_path):
    root = result_file.parent.parent
    assert explore.find_results(root) == [result_file]
    assert explore.find_results(str(root / "**" / "*.nc")) == [result_file]
    assert explore.find_results(result_file) == [result_file]
    newer = result_file.parent / "newer.nc"
    shutil.copy(result_file, newer)
    os.utime(newer, (result_file.stat().st_mtime + 10,) * 2)
    assert explore.latest_result(root) == newer
    assert explore.latest_result(tmp_path / "nothing-here") is None
    newer.unlink()


def test_cli_plot_writes_files(result_file, tmp_path):
    out = tmp_path / "figures"
    r = CliRunner().invoke(app, ["plot", str(result_file), "--kind", "threads,batch-packet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    printed = [pathlib.Path(line) for line in r.output.split()]
    names = sorted(p.name for p in printed)
    assert names == sorted(f"quick-{k}.{f}" for k in ("threads", "batch-packet") for f in ("html", "png"))
    for p in printed:
        assert p.is_file() and p.stat().st_size > 0
    assert (out / "quick-threads.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in (out / "quick-threads.html").read_text()[:2_000_000]


def test_cli_plot_latest_and_auto(result_file, tmp_path):
    out = tmp_path / "figures"
    root = result_file.parent.parent
    r = CliRunner().invoke(app, ["plot", "--latest", "--results", str(root), "--out", str(out), "--formats", "html"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [
        "quick-batch-packet.html",
        "quick-latency.html",
        "quick-threads.html",
    ]
    r = CliRunner().invoke(app, ["plot", "--latest", "--results", str(tmp_path / "empty")])
    assert r.exit_code == 0 and "nothing to plot" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "pie"], "unknown --kind pie; choose from auto, threads, batch-packet"),
        (["--kind", "scaling"], "figure 'scaling' needs devices or channels"),
        (["--formats", "gif"], "unknown --formats gif"),
    ],
)
def test_cli_plot_rejects_bad_options(result_file, tmp_path, args, message):
    r = CliRunner().invoke(app, ["plot", str(result_file), "--out", str(tmp_path / "f"), *args])
    assert r.exit_code == 2
    assert message in r.output
    assert not (tmp_path / "f").exists()


def test_cli_plot_needs_a_path(tmp_path):
    r = CliRunner().invoke(app, ["plot"])
    assert r.exit_code == 2 and "give PATH" in r.output
    r = CliRunner().invoke(app, ["plot", str(tmp_path / "none*.nc")])
    assert r.exit_code == 2 and "no result files match" in r.output


# ---------------------------------------------------------------- the notebooks' one-call helpers


def test_load_or_run_grid(result_file):
    stored = explore.load_or_run_grid(str(result_file), BASE, {"bogus": [1]})  # a stored file: the grid never runs
    assert dict(stored.sizes) == dict(explore.load(result_file).sizes) and stored.attrs["source"].endswith("run_grid")
    ran = explore.load_or_run_grid("", BASE, {"normal_ratio": [0.0, 1.0]}, repeats=1, warmup=False)
    assert dict(ran.sizes)["normal_ratio"] == 2 and (ran.status == "ok").all()
    with pytest.raises(explore.InvalidArgument, match="not Trial fields"):
        explore.load_or_run_grid("", BASE, {"bogus": [1]})


def test_load_refuses_a_file_that_is_not_a_result(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_text("not netCDF")
    with pytest.raises(DsalabError, match="cannot be read as a netCDF-4 result file"):
        explore.load(bad)


@pytest.mark.timeout(120)
def test_kernel_benchmark_measures_and_reads_a_stored_run(tmp_path):
    rows = explore.kernel_benchmark(size_mib=1, repeats=1, threads=[1])
    assert set(rows.case) == {"all-zero", "half-random", "half-last-byte", "hot-1MiB"}
    assert {"reference", "numpy", "numba", "native"} <= set(rows.kernel) and (rows.gbps > 0).all()
    path = benchmarking.write_json(tmp_path / "kernels.json", "kernels", {"size_mib": 1}, rows.to_dict("records"))
    stored = explore.kernel_benchmark(stored=str(path))
    assert stored[["case", "kernel", "threads"]].equals(rows[["case", "kernel", "threads"]])
    assert np.allclose(stored.gbps, rows.gbps)
    other = benchmarking.write_json(tmp_path / "offload.json", "offload", {}, [])
    with pytest.raises(DsalabError, match=r"is not a 'kernels' benchmark result: its benchmark is 'offload'"):
        explore.kernel_benchmark(stored=other)
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(DsalabError, match="is not a benchmark JSON file"):
        explore.kernel_benchmark(stored=tmp_path / "junk.json")
    with pytest.raises(DsalabError, match=r"size_mib=0 is not allowed"):
        explore.kernel_benchmark(size_mib=0)
    with pytest.raises(DsalabError, match=r"repeats=0 is not allowed"):
        explore.kernel_benchmark(size_mib=1, repeats=0)


@pytest.mark.timeout(120)
def test_format_break_even():
    ds = explore.run_grid(
        BASE, {"normal_ratio": [0.0, 1.0], "detector": ["cpu-numba", "cpu-native"]}, repeats=2, warmup=False
    )
    # offload - baseline goes from -1 to +3 ms/GB: it crosses zero a quarter of the way, at normal ratio 0.25
    ds["host_cpu_ms_per_gb"].loc[{"detector": "cpu-numba"}] = 10.0
    ds["host_cpu_ms_per_gb"].loc[{"detector": "cpu-native", "normal_ratio": 0.0}] = 9.0
    ds["host_cpu_ms_per_gb"].loc[{"detector": "cpu-native", "normal_ratio": 1.0}] = 13.0
    text = explore.format_break_even(ds, offload="cpu-native", baseline="cpu-numba")
    assert text == "cpu-native - cpu-numba: host_cpu_ms_per_gb crosses zero at normal ratio: 0.25"
    ds["host_cpu_ms_per_gb"].loc[{"detector": "cpu-native"}] = 5.0
    text = explore.format_break_even(ds, offload="cpu-native", baseline="cpu-numba")
    assert text.endswith("crosses zero at normal ratio: nowhere in range")


def test_find_results_refuses_an_empty_path(tmp_path, monkeypatch):
    (tmp_path / "stray.nc").write_bytes(b"not ours")
    monkeypatch.chdir(tmp_path)  # an empty path would have meant every *.nc below the current directory
    with pytest.raises(explore.InvalidArgument, match="results path is empty"):
        explore.find_results("")


def test_cli_turns_a_bad_path_into_one_error_line():
    exe = pathlib.Path(sys.executable).parent / "dsalab"
    proc = subprocess.run([str(exe), "plot", ""], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: results path is empty; allowed: a netCDF file, a directory of them, or a glob"
    ), proc.stderr


def test_dataset_trial_reads_the_sweeps_base_then_the_grids_trial():
    import xarray as xr

    base = Trial(detector="dsa-emulated", channels=4, guest_bytes="8MiB")
    grid = Trial(detector="cpu-native", batch_size=64)
    ds = xr.Dataset(attrs={"base_trial": base.to_json(), "trial": grid.to_json()})
    assert explore.dataset_trial(ds) == base  # a sweep file's base first
    assert explore.dataset_trial(xr.Dataset(attrs={"trial": grid.to_json()})) == grid
    # unreadable or foreign attributes: the next one, else a default Trial(); unknown fields are left out
    foreign = dict(grid.to_dict(), field_of_a_later_version=1)
    assert explore.dataset_trial(xr.Dataset(attrs={"base_trial": "{not json", "trial": json.dumps(foreign)})) == grid
    assert explore.dataset_trial(xr.Dataset(attrs={"trial": '{"channels": 0}'})) == Trial()
    assert explore.dataset_trial(xr.Dataset()) == Trial()
