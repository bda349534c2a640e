"""``dsalab tenants``: prints average and worst case per metric, says the figures are the model's, writes the
dataset; bad options end in one error line."""

from __future__ import annotations

import pytest
import tenants_support
from typer.testing import CliRunner

from dsalab.cli import app

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()


def test_tenants_prints_average_and_worst_and_writes_the_dataset(tmp_path):
    import xarray as xr

    hw = tenants_support.profile_file(tmp_path)
    out = tmp_path / "t.nc"
    args = ["tenants", "--tenants", "6", "--guest", "4MiB", "--devices", "1", "--hardware", str(hw)]
    r = runner.invoke(app, [*args, "--policy", "priority", "--priorities", "15,1", "--wq-size", "8", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "model" in r.output and "average" in r.output and "worst" in r.output
    for metric in ("migration_time_ms", "host_cpu_ms", "fallback_pages", "queue_delay_us", "fairness_jain"):
        assert metric in r.output
    ds = xr.load_dataset(out, engine="h5netcdf")
    assert ds.sizes["tenant"] == 6 and ds.attrs["policy"] == "priority" and ds.attrs["profile_name"] == "tenants-test"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--policy", "lottery"], ["policy", "lottery", "fifo"]),
        (["--priorities", "16"], ["priority", "16", "1 to 15"]),
        (["--priorities", "x"], ["--priorities", "1 to 15"]),
        (["--channels", "0"], ["channels", "0"]),
        (["--wq-size", "500"], ["entries", "500", "128"]),
        (["--hardware", "/nonexistent.toml"], ["/nonexistent.toml", "does not exist"]),
    ],
)
def test_tenants_refuses_bad_options_in_one_line(tmp_path, extra, words):
    hw = tenants_support.profile_file(tmp_path)
    r = runner.invoke(
        app, ["tenants", "--tenants", "2", "--guest", "1MiB", "--devices", "1", "--hardware", str(hw), *extra]
    )
    assert r.exit_code == 2, r.output
    line = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert len(line) == 1
    for w in words:
        assert w in line[0], (w, line[0])
