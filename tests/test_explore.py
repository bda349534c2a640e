"""dsalab.explore: small grids in the results layout, and finding result files; `dsalab plot` on them."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest
from typer.testing import CliRunner

from dsalab import explore
from dsalab.cli import app
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
