"""Running sweeps: the dataset has exactly the declared dimensions, survives netCDF, resumes after a kill, records
failed trials, and gives the same points and page counts on a Dask LocalCluster as serially."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from dsalab import results, sweepfile
from dsalab import sweep as sw
from dsalab.cli import app

pytestmark = pytest.mark.timeout(180)
runner = CliRunner()

TEXT = """
name = "tiny"
repeats = 2
warmups = 1
seed = 11
[base]
guest_bytes = "4MiB"
channels = 2
normal_ratio = 0.5
[sweep]
detector = ["cpu-numba", "cpu-native"]
packet_bytes = ["64KiB", "256KiB"]
"""
#: deterministic given the seed: what must agree between runs (timings and CPU may not)
STABLE = [
    "status",
    "error",
    "backend",
    "zero_pages",
    "normal_pages",
    "total_bytes",
    "transferred_bytes",
    "pages_sent",
    "packets",
    "verified",
    "mismatched_pages",
]


def spec_of(tmp_path, text: str = TEXT):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return sweepfile.load(path)


def assert_same_but_timings(actual: xr.Dataset, expected: xr.Dataset) -> None:
    assert dict(actual.sizes) == dict(expected.sizes)
    for c in expected.coords:
        if c != "thread":
            xr.testing.assert_identical(actual[c], expected[c])
    for name in STABLE:
        xr.testing.assert_identical(actual[name], expected[name])


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    spec = spec_of(tmp)
    return spec, sw.run_sweep(spec, partial=tmp / "p.jsonl", progress=False)


def test_dataset_has_exactly_the_declared_dimensions_and_coordinates(serial):
    spec, ds = serial
    assert ds["zero_pages"].dims == ("detector", "packet_bytes", "repeat")
    assert ds["thread_cpu_ms"].dims == ("detector", "packet_bytes", "repeat", "thread")
    assert set(ds.dims) == {"detector", "packet_bytes", "repeat", "thread"}
    assert list(ds["detector"].values) == ["cpu-numba", "cpu-native"]
    assert ds["packet_bytes"].dtype == np.int64 and list(ds["packet_bytes"].values) == [65536, 262144]
    assert list(ds["repeat"].values) == [0, 1]
    assert (ds["status"] == "ok").all() and (ds["verified"] == 1).all()
    assert set(ds["backend"].sel(detector="cpu-native").values.ravel()) == {"cpu-native"}
    pages = 4 * 2**20 // 4096
    assert ((ds["zero_pages"] + ds["normal_pages"]) == pages).all()
    # same seed within a repeat: every point migrates the same memory; repeats differ
    zeros = ds["zero_pages"].values
    assert (zeros[..., 0] == zeros[0, 0, 0]).all() and (zeros[..., 1] == zeros[0, 0, 1]).all()
    assert ds.attrs["sweep_file"] == spec.text and ds.attrs["seed"] == 11 and ds.attrs["warmups"] == 1
    results.validate(ds)


def test_netcdf_round_trip_is_identical(serial, tmp_path):
    _, ds = serial
    path = results.write(ds, tmp_path / "out.nc")
    back = results.read(path)
    xr.testing.assert_identical(back, ds)
    assert back["zero_pages"].dtype == np.int64 and back["verified"].dtype == np.int8


def test_same_sweep_file_and_seed_give_the_same_guest_memory(serial, tmp_path):
    _, ds = serial
    again = sw.run_sweep(spec_of(tmp_path), partial=tmp_path / "p.jsonl", progress=False)
    assert_same_but_timings(again, ds)


def test_interrupted_sweep_resumes_and_equals_an_uninterrupted_one(serial, tmp_path):
    spec, expected = serial
    partial = tmp_path / "p.jsonl"
    seen = []

    class Stop(Exception):
        pass

    def stop_after_three(task, outcome, done, total):
        seen.append(task)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        sw.run_sweep(spec, partial=partial, progress=False, on_trial=stop_after_three)
    lines = partial.read_text().splitlines()
    assert len(lines) == 1 + 3  # header + the three finished trials
    with pytest.raises(sweepfile.SweepFileError, match="pass --resume"):
        sw.run_sweep(spec, partial=partial, progress=False)
    ran = []
    ds = sw.run_sweep(spec, partial=partial, resume=True, progress=False, on_trial=lambda t, *a: ran.append(t))
    assert len(ran) == len(list(sw.tasks(spec))) - 3  # only what was missing ran
    assert_same_but_timings(ds, expected)


def test_cli_sweep_killed_mid_run_resumes(tmp_path):
    # trials slowed by a bandwidth limit (the engine sleeps), so the kill lands mid-sweep
    text = TEXT.replace("normal_ratio = 0.5", 'normal_ratio = 0.5\nmax_bandwidth_bytes = "16MiB"')
    path = tmp_path / "slow.toml"
    path.write_text(text)
    out = tmp_path / "slow.nc"
    partial = sw.partial_path_for(out)
    exe = pathlib.Path(sys.executable).parent / "dsalab"
    proc = subprocess.Popen([str(exe), "sweep", str(path), "--out", str(out), "--quiet"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if partial.exists() and len(partial.read_text().splitlines()) >= 1 + 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"the sweep ended before it was killed: {proc.stderr.read().decode()}")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stderr.close()
    kept = [json.loads(x) for x in partial.read_text().splitlines()[1:] if x.strip().endswith("}")]
    total = len(list(sw.tasks(sweepfile.load(path))))
    assert 3 <= len(kept) < total and not out.exists()
    r = runner.invoke(app, ["sweep", str(path), "--out", str(out), "--quiet"])
    assert r.exit_code == 2 and "--resume" in r.output
    r = runner.invoke(app, ["sweep", str(path), "--out", str(out), "--quiet", "--resume"])
    assert r.exit_code == 0, r.output
    assert not partial.exists()
    resumed = results.read(out)
    fresh = sw.run_sweep(sweepfile.load(path), partial=tmp_path / "fresh.jsonl", progress=False)
    assert_same_but_timings(resumed, fresh)


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    # a timeout below what a bandwidth-limited trial needs makes the engine fail that point only
    text = TEXT.replace('packet_bytes = ["64KiB", "256KiB"]', "max_bandwidth_bytes = [0, 1]")
    text = text.replace("normal_ratio = 0.5", "normal_ratio = 0.5\nio_timeout_ms = 200")
    spec = spec_of(tmp_path, text)
    ds = sw.run_sweep(spec, partial=tmp_path / "p.jsonl", progress=False)
    ok = ds["status"].sel(max_bandwidth_bytes=0)
    bad = ds["status"].sel(max_bandwidth_bytes=1)
    assert (ok == "ok").all() and (bad == "failed").all()
    assert all(e for e in ds["error"].sel(max_bandwidth_bytes=1).values.ravel())
    assert (ds["zero_pages"].sel(max_bandwidth_bytes=1) == -1).all()
    assert ds.attrs["trials_failed"] == 4
    results.validate(ds)


def test_local_cluster_gives_the_same_points_and_page_counts(serial, tmp_path):
    from distributed import Client, LocalCluster

    spec, expected = serial
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        ds = sw.run_sweep(spec, partial=tmp_path / "p.jsonl", client=client, progress=False, scheduler="local:2")
        assert_same_but_timings(ds, expected)
        assert (ds["worker"] != "").all()
        # the CLI on the same cluster, by address (loopback only)
        out = tmp_path / "cli.nc"
        r = runner.invoke(
            app, ["sweep", str(spec.path), "--out", str(out), "--quiet", "--scheduler", cluster.scheduler_address]
        )
        assert r.exit_code == 0, r.output
    by_cli = results.read(out)
    assert by_cli.attrs["scheduler"] == cluster.scheduler_address
    assert_same_but_timings(by_cli, expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--scheduler", "http://x"], "--scheduler 'http://x' is not allowed: give a Dask scheduler address"),
        (["--local-workers", "0"], "--local-workers 0 is not allowed: an int >= 1"),
        (["--local-workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "exclude each other"),
    ],
)
def test_cli_rejects_bad_scheduler_options(tmp_path, args, expected):
    spec = spec_of(tmp_path)
    r = runner.invoke(app, ["sweep", spec.path, "--quiet", *args])
    assert r.exit_code == 2 and expected in r.output


def test_cli_rejects_an_invalid_sweep_file_before_running(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TEXT.replace("repeats = 2", "repeats = 0"))
    r = runner.invoke(app, ["sweep", str(path), "--quiet", "--out", str(tmp_path / "o.nc")])
    assert r.exit_code == 2
    assert f"sweep file {path}: repeats: 0 is not allowed; it must be an int from 1 to 1000" in r.output
    assert not (tmp_path / "o.nc.partial.jsonl").exists()
