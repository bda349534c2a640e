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


def _run_options() -> dict[str, object]:
    import typer

    command = typer.main.get_command(app).commands["run"]
    return {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def test_every_trial_field_is_a_run_option_with_its_default():
    """`dsalab run` derives its options from Trial (it copied 16 of 18 fields and their defaults by hand)."""
    from dsalab.migration import Trial

    opts = _run_options()
    for field in Trial.fields():
        flag = "--" + field.replace("_", "-")
        assert flag in opts, f"Trial field {field} has no option {flag}"
        assert opts[flag].name == field and opts[flag].help
    for old in ("--guest", "--packet", "--max-bandwidth", "--dirty-rate", "--no-huge-pages", "--out", "--quiet"):
        assert old in opts
    assert opts["--guest"] is opts["--guest-bytes"] and opts["--guest"].default == "256MiB"
    assert opts["--io-timeout-ms"].default == Trial().io_timeout_ms and opts["--max-iterations"].default == 30
    assert "multifd channels" in opts["--channels"].help  # from Trial's docstring


def test_run_takes_fields_it_did_not_have_before(tmp_path):
    import json

    out = tmp_path / "trial.nc"
    args = ["run", "--guest-bytes", "4MiB", "--packet-bytes", "64KiB", "--io-timeout-ms", "5000", "--max-iterations"]
    r = runner.invoke(app, [*args, "3", "--detector", "cpu-native", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        trial = json.loads(ds.attrs["trial"])
    assert (trial["guest_bytes"], trial["packet_bytes"]) == (4 << 20, 64 << 10)
    assert (trial["io_timeout_ms"], trial["max_iterations"]) == (5000, 3)
    r = runner.invoke(app, ["run", "--io-timeout-ms", "5", "--quiet"])
    assert r.exit_code == 2 and "io_timeout_ms=5 is not allowed" in r.output
