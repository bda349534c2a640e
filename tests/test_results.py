"""The result schema: validate() catches layout mistakes, provenance is complete and netCDF-safe, files combine
over a ``run`` dimension, and the summary finds the right points on a constructed dataset."""

from __future__ import annotations

import json
import math
import os
import pathlib

import numpy as np
import pytest
import xarray as xr

from dsalab import analysis, results, sweepfile
from dsalab.migration import Trial, run_trial
from dsalab.results import SchemaError, TrialRecord
from dsalab.sweep import sweep_attrs

TEXT = """
name = "made"
repeats = 3
seed = 3
[base]
guest_bytes = "4MiB"
[sweep]
detector = ["cpu-numba", "dsa-emulated"]
batch_size = [32, 128]
packet_bytes = ["64KiB", "256KiB"]
"""


@pytest.fixture(scope="module")
def one_result():
    return run_trial(Trial(guest_bytes="4MiB", detector="cpu-native"))


def made(one_result, text: str = TEXT) -> xr.Dataset:
    """A dataset in the sweep layout whose every point holds the same real result (tests then set metrics)."""
    spec = sweepfile.loads(text, "made.toml")
    records = [TrialRecord(p, r, one_result) for r in range(spec.repeats) for p in spec.points()]
    return results.build_dataset(records, spec.params, spec.repeats, sweep_attrs(spec))


def test_provenance_attributes_are_present_and_netcdf_safe(one_result, tmp_path):
    ds = made(one_result)
    for key in [
        "schema_version",
        "sweep_file",
        "sweep_name",
        "sweep_sha256",
        "seed",
        "repeats",
        "warmups",
        "runner",
        "scheduler",
        "base_trial",
        "dsalab_version",
        "git_commit",
        "git_dirty",
        "machine_python_version",
        "machine_numba_version",
        "machine_cffi_version",
        "machine_cpu_model",
        "machine_cpu_flags",
        "machine_cpu_count",
        "machine_memory_bytes",
        "machine_kernel",
        "machine_hostname",
        "machine_date",
    ]:
        assert key in ds.attrs, key
    for key, value in ds.attrs.items():
        assert isinstance(value, str | int | float) and not isinstance(value, bool), key
    assert json.loads(ds.attrs["base_trial"])["guest_bytes"] == 4 * 2**20
    results.write(ds, tmp_path / "a.nc")
    assert results.read(tmp_path / "a.nc").attrs["sweep_file"] == ds.attrs["sweep_file"]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda ds: ds.drop_vars("zero_pages"), "variable zero_pages is missing"),
        (lambda ds: ds.assign(zero_pages=ds["zero_pages"].astype("float64")), "zero_pages is float64; expected int64"),
        (lambda ds: ds["host_cpu_ms"].attrs.update(units="s") or ds, "host_cpu_ms.attrs['units'] is 's'"),
        (lambda ds: ds.attrs.update(nested=[1, 2]) or ds, "attribute nested is a list"),
        (lambda ds: ds.attrs.update(flag=True) or ds, "attribute flag is a bool"),
        (lambda ds: ds.attrs.update(schema_version=99) or ds, "schema_version is 99"),
        (lambda ds: ds.assign(status=ds["status"].where(ds["repeat"] > 0, "meh")), "status holds ['meh']"),
        (lambda ds: ds.isel(repeat=0), "'repeat' is missing"),
    ],
)
def test_validate_rejects_what_breaks_the_schema(one_result, tmp_path, break_it, expected):
    ds = made(one_result)
    results.validate(ds)
    broken = break_it(ds.copy(deep=True))
    with pytest.raises(SchemaError) as err:
        results.validate(broken)
    assert expected in str(err.value)
    with pytest.raises(SchemaError):
        results.write(broken, tmp_path / "b.nc")
    assert not (tmp_path / "b.nc").exists()


def test_read_validates(one_result, tmp_path):
    ds = made(one_result).drop_vars("worker")
    ds.to_netcdf(tmp_path / "raw.nc", engine="h5netcdf")
    with pytest.raises(SchemaError, match=r"raw\.nc: .*variable worker is missing"):
        results.read(tmp_path / "raw.nc")


def test_open_combines_runs_over_a_run_dimension(one_result, tmp_path):
    a = made(one_result)
    b = made(one_result, TEXT.replace("seed = 3", "seed = 4").replace('"256KiB"]', '"1MiB"]'))
    results.write(a, tmp_path / "host1" / "a.nc")
    results.write(b, tmp_path / "host2" / "b.nc")
    ds = results.open(str(tmp_path / "*" / "*.nc"))
    assert list(ds["run"].values) == ["a", "b"]
    assert list(ds["packet_bytes"].values) == [65536, 262144, 1048576]  # outer join
    assert ds["zero_pages"].dtype == np.int64 and ds["verified"].dtype == np.int8
    # a point a run did not sweep is "not run" there
    missing = ds.sel(run="a", packet_bytes=1048576)
    assert (missing["status"] == "failed").all() and (missing["error"] == "not run").all()
    assert (missing["zero_pages"] == -1).all()
    assert (ds.sel(run="b", packet_bytes=1048576)["status"] == "ok").all()
    # what differs between runs is a per-run variable, what agrees stays an attribute
    assert list(ds["run_seed"].values) == [3, 4]
    assert "seed" not in ds.attrs and ds.attrs["sweep_name"] == "made"
    results.validate(ds)
    assert results.open([tmp_path / "host1" / "a.nc"]).identical(a)
    with pytest.raises(SchemaError, match="no result files match"):
        results.open(str(tmp_path / "nothing-*.nc"))


def test_open_refuses_runs_of_different_parameters(one_result, tmp_path):
    results.write(made(one_result), tmp_path / "a.nc")
    other = TEXT.replace("batch_size = [32, 128]", "channels = [1, 2]")
    results.write(made(one_result, other), tmp_path / "b.nc")
    with pytest.raises(SchemaError, match="only files sweeping the same parameters combine"):
        results.open([tmp_path / "a.nc", tmp_path / "b.nc"])


def test_default_path_is_host_date_sweep_commit():
    import datetime
    import socket

    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    p = results.default_path("quick", when=when, commit="0123456789abcdef")
    assert str(p) == f"data/results/{socket.gethostname()}/2026-01-02T030405-quick-01234567.nc"


def test_summary_finds_the_right_points_on_a_constructed_dataset(one_result):
    ds = made(one_result)
    shape = ds["host_cpu_ms_per_gb"].shape  # detector, batch_size, packet_bytes, repeat
    rng = np.random.default_rng(0)
    cpu = 100.0 + rng.uniform(0, 5, shape)
    time_ms = 50.0 + rng.uniform(0, 5, shape)
    # cpu-numba: lowest CPU at batch 128 / 64 KiB, shortest time at batch 32 / 256 KiB
    cpu[0, 1, 0, :] = [40.0, 42.0, 44.0]
    time_ms[0, 0, 1, :] = [10.0, 11.0, 12.0]
    # dsa-emulated: lowest CPU at batch 32 / 256 KiB; one failed repeat there must not count
    cpu[1, 0, 1, :] = [20.0, 22.0, 1.0]
    time_ms[1, 1, 1, :] = [5.0, 5.0, 5.0]
    ds["host_cpu_ms_per_gb"][:] = cpu
    ds["total_time_ms"][:] = time_ms
    ds["status"][1, 0, 1, 2] = "failed"
    s = analysis.summarize(ds)
    best = {(r.detector, r.metric): r for _, r in s.best.iterrows()}
    r = best["cpu-numba", "host_cpu_ms_per_gb"]
    assert r.point == {"batch_size": 128, "packet_bytes": 65536} and r["mean"] == pytest.approx(42.0)
    assert r["std"] == pytest.approx(2.0) and r.n == 3
    assert best["cpu-numba", "total_time_ms"].point == {"batch_size": 32, "packet_bytes": 262144}
    r = best["dsa-emulated", "host_cpu_ms_per_gb"]
    assert r.point == {"batch_size": 32, "packet_bytes": 262144} and r["mean"] == pytest.approx(21.0) and r.n == 2
    assert best["dsa-emulated", "total_time_ms"].point == {"batch_size": 128, "packet_bytes": 262144}
    # the saving, paired by repeat, at batch 32 / 256 KiB
    row = s.savings[s.savings.point == {"batch_size": 32, "packet_bytes": 262144}].iloc[0]
    per_repeat = 100.0 * (cpu[0, 0, 1, :2] - cpu[1, 0, 1, :2]) / cpu[0, 0, 1, :2]
    assert row.saved_pct == pytest.approx(per_repeat.mean())
    assert row.saved_pct_std == pytest.approx(per_repeat.std(ddof=1)) and row.n == 2
    overall = s.overall.iloc[0]
    assert (overall.dsa, overall.cpu, overall.n) == ("dsa-emulated", "cpu-numba", 4 * 3 - 1)
    all_pairs = 100.0 * (cpu[0] - cpu[1]) / cpu[0]
    mask = np.ones(all_pairs.shape, bool)
    mask[0, 1, 2] = False
    assert overall.saved_pct == pytest.approx(all_pairs[mask].mean())
    text = analysis.format_summary(s, ds)
    assert "dsa-emulated vs cpu-numba" in text and "1 failed" in text


def test_summary_without_a_detector_dimension(one_result):
    ds = made(one_result, TEXT.replace('detector = ["cpu-numba", "dsa-emulated"]\n', ""))
    s = analysis.summarize(ds)
    assert set(s.best.detector) == {"cpu-numba"} and len(s.savings) == 0


def test_write_uses_a_unique_temporary_file_in_the_same_directory(one_result, tmp_path, monkeypatch):
    targets = []
    real = xr.Dataset.to_netcdf

    def recording(self, path=None, *args, **kwargs):
        targets.append(pathlib.Path(path))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", recording)
    ds = made(one_result)
    out = tmp_path / "out.nc"
    results.write(ds, out)
    results.write(ds, out)
    assert len(targets) == 2 and targets[0] != targets[1]  # two writers of one path never share a temp file
    assert all(t.parent == tmp_path and t != out for t in targets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]  # nothing left behind
    assert (out.stat().st_mode & 0o777) == 0o666 & ~_umask()  # not mkstemp's 0600
    xr.testing.assert_identical(results.read(out), ds)


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_write_fsyncs_the_file_before_the_rename_and_the_directory_after(one_result, tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd)
    )
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", str(a), str(b))) or real_replace(a, b))
    monkeypatch.setattr(pathlib.Path, "replace", lambda self, b: os.replace(self, b))
    out = tmp_path / "out.nc"
    results.write(made(one_result), out)
    renames = [e for e in events if e[0] == "replace"]
    assert len(renames) == 1 and renames[0][2] == str(out)
    tmp = renames[0][1]
    assert events.index(("fsync", tmp)) < events.index(renames[0]) < events.index(("fsync", str(tmp_path)))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(one_result, tmp_path, monkeypatch):
    ds = made(one_result)
    out = tmp_path / "out.nc"
    results.write(ds, out)
    before = out.read_bytes()
    real = xr.Dataset.to_netcdf

    def half_then_fail(self, path=None, *args, **kwargs):
        real(self, path, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        results.write(ds, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda good: b"", "cannot be read as a netCDF-4 result file written by dsalab"),
        (lambda good: b"not a netCDF file at all\n" * 10, "cannot be read as a netCDF-4 result file"),
        (lambda good: good[: len(good) // 2], "cannot be read as a netCDF-4 result file"),  # truncated
        (lambda good: good[:8], "cannot be read as a netCDF-4 result file"),  # only the HDF5 signature
        (lambda good: b"CDF\x01" + bytes(100), "cannot be read as a netCDF-4 result file"),  # classic netCDF header
    ],
    ids=["empty", "text", "half", "signature", "classic"],
)
def test_open_of_a_foreign_or_truncated_file_is_a_schema_error(one_result, tmp_path, make, expected):
    results.write(made(one_result), tmp_path / "good.nc")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(make((tmp_path / "good.nc").read_bytes()))
    with pytest.raises(SchemaError) as err:
        results.open(bad)
    assert str(err.value).startswith(f"{bad}: ") and expected in str(err.value) and "\n" not in str(err.value)


def test_open_of_a_netcdf_without_our_schema_is_a_schema_error(tmp_path):
    path = tmp_path / "foreign.nc"
    xr.Dataset({"temperature": ("x", np.arange(3.0))}, attrs={"title": "weather"}).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(SchemaError, match=r"foreign\.nc: not a dsalab result dataset: no 'status' variable"):
        results.open(path)


# ---------------------------------------------------------------- one vocabulary, one result type (issue 10)


def test_metric_views_derive_from_the_one_table():
    from dsalab import metrics

    assert list(results.METRICS) == [m.name for m in metrics.TABLE]
    assert {m.name for m in metrics.TABLE if m.kind == "int"} == results.INT_METRICS
    assert {"verified", "converged"} == results.FLAG_METRICS
    assert all(results.units(m.name) == m.units and results.long_name(m.name) == m.long_name for m in metrics.TABLE)
    assert {m.kind for m in metrics.TABLE} == {"float", "int", "flag", "thread"}


def test_results_open_is_public_without_shadowing_the_builtin():
    assert "open" not in vars(results)  # inside the module, open() is the builtin again
    assert results.open is results.open_files
    from dsalab.results import open as opened

    assert opened is results.open_files


def test_backend_names_compare_equal_to_their_strings(one_result):
    from dsalab.backends import DETECTORS, Backend

    assert one_result.backend == "cpu-native" and one_result.backend is Backend.CPU_NATIVE
    assert DETECTORS == ("cpu-numba", "cpu-native", "dsa-emulated", "dsa-hardware")
    assert json.dumps(one_result.to_dict()["backend"]) == '"cpu-native"'
    assert one_result.to_dataset()["backend"].values.ravel().tolist() == ["cpu-native"]


def test_a_result_refuses_an_unknown_backend(one_result):
    data = one_result.to_dict()
    data["backend"] = "gpu"
    with pytest.raises(ValueError, match=r"backend='gpu' is not allowed: allowed is cpu-numba, cpu-native, "):
        type(one_result).from_dict(data)


def test_cpu_sums_by_role():
    from dsalab.threads import Role, cpu_sums, role

    cpu = {
        "live_migration": 1.0,
        "multifdsend_0": 2.0,
        "dsa_completion": 4.0,
        "multifdrecv_0": 8.0,
        "dsa_engine_0_1": 16.0,
        "guest_dirty": 32.0,
        "python": 64.0,
    }
    s = cpu_sums(cpu)
    assert (s.host_cpu_ms, s.destination_cpu_ms, s.device_cpu_ms, s.guest_cpu_ms) == (7.0, 8.0, 16.0, 32.0)
    assert role("multifdsend_12") is Role.SOURCE and role("python") is None


#: a query-migrate reply and per-thread CPU recorded from QEMU 10.0 (64 MiB guest, 2 channels, multifd zero pages)
QEMU_REPLY = {
    "status": "completed",
    "total-time": 151,
    "setup-time": 3,
    "downtime": 9,
    "ram": {
        "transferred": 35_930_412,
        "total": 68_026_368,
        "duplicate": 8_311,
        "normal": 8_297,
        "dirty-sync-count": 3,
    },
}
QEMU_CPU = {"live_migration": 12.5, "multifdsend_0": 40.0, "multifdsend_1": 41.5, "multifdrecv_0": 30.0}


def qemu_recorded():
    from dsalab import qemu

    trial = Trial(guest_bytes="64MiB", normal_ratio=0.5, channels=2, detector="cpu-native", seed=3)
    return qemu.qemu_result(trial, QEMU_REPLY, QEMU_CPU, qemu_version="10.0.2", accel="tcg", mismatched=0)


def test_a_qemu_result_is_a_trial_result_with_its_sums_from_the_shared_function():
    from dsalab.qemu import QemuResult
    from dsalab.result import TrialResult

    r = qemu_recorded()
    assert isinstance(r, QemuResult) and isinstance(r, TrialResult)
    assert r.backend == "qemu" and r.qemu_version == "10.0.2"
    assert r.host_cpu_ms == 94.0 and r.destination_cpu_ms == 30.0 and r.sender_cpu_ms == 81.5
    assert (r.zero_pages, r.normal_pages, r.pages_sent, r.dirty_sync_count) == (8311, 8297, 16608, 3)
    assert r.verified and r.converged
    assert math.isnan(r.detect_cpu_ms) and math.isnan(r.packet_overhead_fraction)
    assert "qemu: 64 MiB guest" in r.table()


def test_a_qemu_result_enters_build_dataset_and_a_file(tmp_path):
    r = qemu_recorded()
    ds = results.build_dataset([TrialRecord({"channels": 2}, 0, r)], {"channels": [2]}, 1)
    assert ds["backend"].values.ravel().tolist() == ["qemu"]
    assert int(ds["zero_pages"].item()) == 8311 and int(ds["packets"].item()) == -1
    assert float(ds["thread_cpu_ms"].sel(thread="multifdsend_1").item()) == 41.5
    back = results.read(results.write(ds, tmp_path / "q.nc"))
    assert float(back["host_cpu_ms"].item()) == 94.0
    again = type(r).from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.query_migrate == QEMU_REPLY and again.backend == "qemu"
