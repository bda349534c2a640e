"""`dsalab run` and `dsalab scenarios` from the command line: tables, datasets, clear errors."""

from __future__ import annotations

import xarray as xr
from typer.testing import CliRunner

from dsalab.cli import app

runner = CliRunner()


def test_run_prints_seed_table_and_writes_dataset(tmp_path):
    out = tmp_path / "trial.nc"
    r = runner.invoke(
        app, ["run", "--guest", "8MiB", "--channels", "2", "--detector", "cpu-native", "--quiet", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "runtime(msec)" in r.output and "multifdsend_1" in r.output and "verified yes" in r.output
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.attrs["backend"] == "cpu-native" and int(ds["verified"].item()) == 1
    assert "machine_cpu_model" in ds.attrs and "git_commit" in ds.attrs
    ds.close()


def test_run_rejects_bad_values_with_a_clear_message():
    r = runner.invoke(app, ["run", "--guest", "5000", "--quiet"])
    assert r.exit_code == 2
    assert "guest_bytes=5000 is not allowed" in r.output
    r = runner.invoke(app, ["run", "--detector", "abacus", "--quiet"])
    assert r.exit_code == 2 and "cpu-numba, cpu-native, dsa-emulated, dsa-hardware" in r.output
    r = runner.invoke(app, ["run", "--packet", "3 bananas", "--quiet"])
    assert r.exit_code == 2 and "is not a size" in r.output


def test_run_reports_an_unwritable_out_path_without_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    r = runner.invoke(app, ["run", "--guest", "4MiB", "--quiet", "--out", str(blocker / "trial.nc")])
    assert r.exit_code == 2, r.exception
    assert f"error: cannot write {blocker / 'trial.nc'}" in r.output and "Traceback" not in r.output
