"""Runner ``qemu`` in sweep files and on the command line (``dsalab run --runner qemu``, ``dsalab sweep``): a
point QEMU cannot honour is a failed point carrying the message; QEMU's version and accelerator reach the
dataset (QEMU cases skipped where QEMU >= 9.0 is not installed)."""

from __future__ import annotations

import json

import pytest
import xarray as xr
from qemu_support import no_qemu_outlives_the_test
from typer.testing import CliRunner

from dsalab import qemu, sweepfile
from dsalab import sweep as sw
from dsalab.cli import app
from dsalab.errors import SweepFileError
from dsalab.migration import GuestMemory

__all__ = ["no_qemu_outlives_the_test"]  # the autouse fixture, used by being imported
cli = CliRunner()
version = qemu.qemu_version()
needs_qemu = pytest.mark.skipif(
    version is None or version < (9, 0, 0), reason=f"QEMU >= 9.0 not installed (qemu-system-x86_64: {version})"
)
SWEEP = """
name = "q"
runner = "qemu"
seed = 4

[base]
guest_bytes = "16MiB"
detector = "cpu-native"
normal_ratio = 0.5

[sweep]
packet_bytes = ["512KiB", "1MiB"]
"""


def test_a_sweep_file_names_the_qemu_runner_and_binary(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text(SWEEP.replace("seed = 4", 'seed = 4\nqemu = "/opt/qemu/bin/qemu-system-x86_64"'))
    spec = sweepfile.load(path)
    assert (spec.runner, spec.qemu) == ("qemu", "/opt/qemu/bin/qemu-system-x86_64")
    other = sweepfile.override(spec, qemu="qemu-system-x86_64")
    assert other.qemu == "qemu-system-x86_64" and other.sha256 != spec.sha256  # partial files never mix binaries
    engine = sweepfile.override(spec, "engine")
    assert engine.qemu == "" and engine.runner == "engine"
    with pytest.raises(SweepFileError, match="--qemu: is only for runner 'qemu'"):
        sweepfile.override(engine, qemu="qemu-system-x86_64")


def test_a_missing_binary_fails_the_sweep_before_anything_runs(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text(SWEEP.replace("seed = 4", 'seed = 4\nqemu = "/nope/qemu-system-x86_64"'))
    spec = sweepfile.load(path)
    with pytest.raises(SweepFileError, match=r"q\.toml: qemu: .*/nope/qemu-system-x86_64.* not installed"):
        sw.run_sweep(spec, partial=tmp_path / "p.jsonl", progress=False)
    assert not (tmp_path / "p.jsonl").exists()
    r = cli.invoke(app, ["sweep", str(path), "--quiet", "--out", str(tmp_path / "o.nc")])
    assert r.exit_code == 2 and "not installed" in r.output and "Traceback" not in r.output


@needs_qemu
@pytest.mark.timeout(600)
def test_a_point_qemu_cannot_honour_is_a_failed_point_with_the_message(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text(SWEEP)
    spec = sweepfile.load(path)
    ds = sw.run_sweep(spec, partial=tmp_path / "p.jsonl", progress=False)
    assert ds.attrs["backend"] == "qemu" and ds.attrs["trials_failed"] == 1
    assert ds.attrs["qemu_version"] == ".".join(map(str, version)) and ds.attrs["qemu_accel"] in ("kvm", "tcg")
    assert ds.attrs["qemu_zero_page_detection_ran"] == "multifd" and ds.attrs["runner"] == "qemu"
    ok = ds.sel(packet_bytes=512 << 10).isel(repeat=0)
    failed = ds.sel(packet_bytes=1 << 20).isel(repeat=0)
    guest = GuestMemory("16MiB", normal_ratio=0.5, seed=spec.trial_seed(0), shared=True)
    assert int(ok["zero_pages"]) == guest.zero_pages and int(ok["normal_pages"]) == guest.normal_pages
    assert str(ok["error"].item()) == "" and int(ok["verified"]) == 1
    message = str(failed["error"].item())
    assert message.startswith("QemuCannotHonour: Trial field packet_bytes=1048576 cannot be honoured by QEMU ")
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()[1:]]
    done = [line for line in lines if line["result"] is not None]
    assert done and done[0]["qemu"]["qemu_extra_normal_pages"] > 0  # each trial's own QEMU facts, kept


@needs_qemu
@pytest.mark.timeout(300)
def test_dsalab_run_runner_qemu_prints_the_table_and_writes_the_dataset(tmp_path):
    out = tmp_path / "q.nc"
    args = ["run", "--runner", "qemu", "--guest", "16MiB", "--detector", "cpu-native", "--seed", "2"]
    r = cli.invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "multifdsend_1" in r.output and "verified yes" in r.output and "zero-page-detection multifd" in r.output
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds.attrs["backend"] == "qemu" and ds.attrs["qemu_accel"] in ("kvm", "tcg")
    assert ds.attrs["qemu_version"] == ".".join(map(str, version))
    ds.close()
    r = cli.invoke(app, [*args, "--packet", "1MiB"])
    assert r.exit_code == 2 and "Trial field packet_bytes=1048576 cannot be honoured by QEMU" in r.output


def test_dsalab_run_qemu_options_are_checked():
    r = cli.invoke(
        app, ["run", "--runner", "qemu", "--qemu", "/nope/qemu", "--guest", "1MiB", "--detector", "cpu-native"]
    )
    assert r.exit_code == 2 and "/nope/qemu" in r.output and "not installed" in r.output
    r = cli.invoke(app, ["run", "--qemu", "/usr/bin/qemu-system-x86_64", "--guest", "1MiB"])
    assert r.exit_code == 2 and "--qemu is only for --runner qemu" in r.output
