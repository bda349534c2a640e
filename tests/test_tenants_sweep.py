"""Tenant scenarios as sweep parameters (runner "model"): a grid's dataset, failed points recorded, sweep files
checked, and a Dask LocalCluster gives the same points as a serial run."""

from __future__ import annotations

import numpy as np
import pytest
import tenants_support
import xarray as xr
from typer.testing import CliRunner

from dsalab.cli import app
from dsalab.errors import SweepFileError
from dsalab.model import tenants, tenants_sweep

pytestmark = pytest.mark.timeout(180)
PROFILE = tenants_support.profile()
PARAMS = {"tenants": [2, 6], "devices": [1, 2], "wq_size": [4, 128], "wq_mode": ["shared"],
          "policy": ["fifo", "quota"]}  # fmt: skip
BASE = {"guest": "2MiB", "channels": 2, "batch_size": 8, "packet": "64KiB", "max_retries": 2}


def test_grid_has_one_dimension_per_parameter_and_each_point_is_its_own_run():
    ds = tenants_sweep.grid(PROFILE, PARAMS, base=BASE)
    assert list(ds["status"].dims) == list(PARAMS)
    assert (ds["status"] == "ok").all() and ds.attrs["points_failed"] == 0
    assert ds.attrs["runner"] == "model" and ds.attrs["backend"] == "model"
    for name in ds.data_vars:
        assert ds[name].attrs.get("long_name"), name
    one = dict(tenants=6, devices=1, wq_size=4, wq_mode="shared", policy="fifo")
    alone = tenants.run(tenants.scenario(profile=PROFILE, **BASE, **one), PROFILE, provenance=False)
    at = ds.sel(**one)
    assert float(at["migration_time_ms_worst"]) == pytest.approx(float(alone.migration_time_ms.max()))
    assert float(at["fallback_share"]) == pytest.approx(float(alone.fallback_share))
    assert float(at["fallback_share"]) > 0  # a 4-entry queue for 6 tenants x 2 channels fills
    more = ds["migration_time_ms_worst"].sel(tenants=6, wq_mode="shared", policy="fifo", wq_size=128)
    assert float(more.sel(devices=2)) < float(more.sel(devices=1))


def test_a_refused_point_is_recorded_not_raised():
    ds = tenants_sweep.grid(PROFILE, {"wq_size": [8, 500]}, base=BASE | {"tenants": 2, "devices": 1})
    assert list(ds["status"].values) == ["ok", "failed"]
    assert "500" in str(ds["error"].sel(wq_size=500).values) and "128" in str(ds["error"].sel(wq_size=500).values)
    assert np.isnan(float(ds["migration_time_ms_mean"].sel(wq_size=500)))
    # a dedicated queue serves one process: tenants sharing one are a refused point
    ds = tenants_sweep.grid(PROFILE, {"tenants": [1, 2]}, base=BASE | {"devices": 1, "wq_mode": "dedicated"})
    assert list(ds["status"].values) == ["ok", "failed"]
    assert "dedicated work queue 0 of device 0" in str(ds["error"].sel(tenants=2).values)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[sweep]\nrunner = "engine"\nhardware = "x.toml"\n[params]\ndevices = [1]\n', ["runner", "engine", "model"]),
        ("[sweep]\n[params]\ndevices = [1]\n", ["hardware"]),
        ('[sweep]\nhardware = "HW"\n[params]\ncolour = [1]\n', ["colour", "tenants, guest"]),
        ('[sweep]\nhardware = "HW"\n[params]\ndevices = []\n', ["non-empty list"]),
        ('[sweep]\nhardware = "HW"\n[extra]\n[params]\ndevices = [1]\n', ["extra", "sweep, base, params"]),
    ],
)
def test_sweep_file_errors_name_the_file_and_key(tmp_path, text, words):
    hw = tenants_support.profile_file(tmp_path)
    path = tmp_path / "s.toml"
    path.write_text(text.replace("HW", str(hw)))
    with pytest.raises(SweepFileError) as info:
        tenants_sweep.read_file(path)
    assert str(path) in str(info.value)
    for w in words:
        assert w in str(info.value)


def _file(tmp_path):
    hw = tenants_support.profile_file(tmp_path)
    path = tmp_path / "tenants-small.toml"
    path.write_text(
        f'[sweep]\nname = "small"\nrunner = "model"\nkind = "tenants"\nhardware = "{hw}"\n'
        '[base]\nguest = "2MiB"\nbatch_size = 8\npacket = "64KiB"\n'
        '[params]\ntenants = [2, 4]\ndevices = [1, 2]\npolicy = ["fifo", "dedicated"]\n'
    )
    return path


def test_shipped_sweep_files_read(tmp_path):
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    files = sorted((root / "data" / "sweeps" / "tenants").glob("*.toml"))
    assert files
    for f in files:
        assert tenants_sweep.is_tenants_file(f)
        text = f.read_text()
        hw = tenants_support.profile_file(tmp_path)  # the shipped profile may not exist in this checkout yet
        local = tmp_path / f.name
        local.write_text(text.replace('hardware = "data/hardware/spr-8457c-dsa.toml"', f'hardware = "{hw}"'))
        _, params, _, attrs = tenants_sweep.read_file(local)
        assert params and attrs["sweep_file"] == local.read_text()


@pytest.mark.slow
def test_local_cluster_gives_the_same_points_as_serial(tmp_path):
    from distributed import Client, LocalCluster

    path = _file(tmp_path)
    serial = tenants_sweep.run_file(path)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c,
        Client(c) as client,
    ):
        dask = tenants_sweep.run_file(path, client=client)
        out = tmp_path / "cli.nc"
        r = CliRunner().invoke(
            app, ["tenants", "--sweep", str(path), "--scheduler", c.scheduler_address, "--out", str(out)]
        )
        assert r.exit_code == 0, r.output
    assert dask.attrs["scheduler"] == "dask" and serial.attrs["scheduler"] == "serial"
    numbers = [k for k in serial.data_vars if k not in ("status", "error")]
    xr.testing.assert_allclose(dask[numbers], serial[numbers])
    by_cli = xr.load_dataset(out, engine="h5netcdf")
    xr.testing.assert_allclose(by_cli[numbers], serial[numbers])
    assert "migration_time_ms_worst" in r.output and "model" in r.output


def test_cli_sweep_refuses_a_remote_scheduler(tmp_path):
    r = CliRunner().invoke(app, ["tenants", "--sweep", str(_file(tmp_path)), "--scheduler", "tcp://10.0.0.1:8786"])
    assert r.exit_code == 2 and "loopback" in r.output


def test_dsalab_sweep_hands_a_tenants_file_to_the_tenant_model(tmp_path):
    out = tmp_path / "via-sweep.nc"
    r = CliRunner().invoke(app, ["sweep", str(_file(tmp_path)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "migration_time_ms_worst" in r.output and out.is_file()
    ds = xr.load_dataset(out, engine="h5netcdf")
    assert ds.attrs["sweep_name"] == "small" and {"tenants", "devices", "policy"} <= set(ds.dims)
