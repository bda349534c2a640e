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


def _start_slow_cli_sweep(tmp_path):
    """`dsalab sweep` in a child process, its trials slowed by a bandwidth limit (the engine sleeps), so that the
    test can act mid-sweep: (process, sweep file, output, partial file)."""
    text = TEXT.replace("normal_ratio = 0.5", 'normal_ratio = 0.5\nmax_bandwidth_bytes = "16MiB"')
    path = tmp_path / "slow.toml"
    path.write_text(text)
    out = tmp_path / "slow.nc"
    exe = pathlib.Path(sys.executable).parent / "dsalab"
    proc = subprocess.Popen([str(exe), "sweep", str(path), "--out", str(out), "--quiet"], stderr=subprocess.PIPE)
    return proc, path, out, sw.partial_path_for(out)


def test_cli_sweep_killed_mid_run_resumes(tmp_path):
    proc, path, out, partial = _start_slow_cli_sweep(tmp_path)
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


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def three_done(tmp_path_factory):
    """A partial file of TEXT's sweep after three finished trials (its bytes), and the spec."""
    tmp = tmp_path_factory.mktemp("three")
    spec = spec_of(tmp)
    partial = tmp / "p.jsonl"

    def stop_after_three(task, outcome, done, total):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        sw.run_sweep(spec, partial=partial, progress=False, on_trial=stop_after_three)
    return spec, partial.read_bytes()


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _record(data: bytes, **changes) -> bytes:
    obj = json.loads(_lines(data)[1])
    for name, value in changes.items():
        if name.startswith("result."):
            obj["result"][name.removeprefix("result.")] = value
        elif value is ...:
            del obj[name]
        else:
            obj[name] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("line", "make", "expected"),
    [
        (2, lambda d: b"3", "line 2: 3 is not a trial record"),  # was AttributeError
        (2, lambda d: b"[]", "line 2: [] is not a trial record"),
        (2, lambda d: b'"text"', "line 2: 'text' is not a trial record"),
        (2, lambda d: _record(d, key=...), "line 2: trial record without 'key'"),  # was KeyError
        (2, lambda d: _record(d, error=...), "line 2: trial record without 'error'"),
        (2, lambda d: _record(d, key=["x"]), "line 2: trial record key=['x'] is not allowed"),
        (2, lambda d: _record(d, result=[1]), "line 2: trial record result=[1] is not allowed"),
        (2, lambda d: _record(d, result={"bogus": 1}), "line 2: result is not a trial result (InvalidArgument"),
        (3, lambda d: _record(d, **{"result.trial": 5}), "line 3: result is not a trial result ("),
        (3, lambda d: _record(d, **{"result.zero_pages": "many"}), "zero_pages='many' is not allowed"),
        (3, lambda d: _record(d, **{"result.zero_pages": 2**70}), "line 3: result zero_pages=1180591620717411303424"),
        (3, lambda d: _record(d, **{"result.total_bytes": 0}), "line 3: result is not a trial result (ZeroDivision"),
        (3, lambda d: _record(d, **{"result.thread_cpu_ms": {"t": "x"}}), "thread_cpu_ms={'t': 'x'}"),
        (2, lambda d: b"{not json", "line 2 is not JSON; only the last line may be cut short"),
        (2, lambda d: b"\xff\xfe\x00", "line 2 is not JSON"),
        (2, lambda d: b"", "line 2 is not JSON"),
        (1, lambda d: _record(d), "is not a partial-file header; expected {"),
        (1, lambda d: _lines(d)[0].replace(b'"version": 1', b'"version": 7'), "line 1: header version 7 is not"),
        (1, lambda d: _lines(d)[0].replace(b'"sha256": "', b'"sha256": "0'), "line 1: the file belongs to another"),
    ],
)
def test_a_corrupt_line_of_a_partial_file_is_an_error_naming_the_file_and_line(
    three_done, tmp_path, line, make, expected
):
    spec, data = three_done
    lines = _lines(data)
    lines[line - 1] = make(data)
    partial = tmp_path / "p.jsonl"
    partial.write_bytes(b"\n".join(lines) + b"\n")
    before = partial.read_bytes()
    with pytest.raises(sweepfile.SweepFileError) as err:
        sw.run_sweep(spec, partial=partial, resume=True, progress=False, on_trial=lambda *a: pytest.fail("ran"))
    message = str(err.value)
    assert message.startswith(f"partial file {partial}: line {line}") and expected in message
    assert "\n" not in message
    assert partial.read_bytes() == before  # nothing dropped from a file that is an error


@pytest.mark.parametrize(
    "tail",
    [b'{"kind": "trial", "key": "[false, 1, {\\"detector', b"\x00" * 64, b"\xff"],
    ids=["cut-json", "power-cut-zeros", "cut-utf8"],
)
def test_a_torn_last_line_is_dropped_with_a_warning_and_its_trial_runs_again(three_done, tmp_path, tail):
    spec, data = three_done
    partial = tmp_path / "p.jsonl"
    partial.write_bytes(data + tail)
    with pytest.warns(sw.PartialFileWarning, match=r"p\.jsonl: line 5, the last, is incomplete .* runs again"):
        loaded = sw.PartialFile(partial, spec, resume=True)
    loaded.close()
    assert len(loaded.done) == 3 and partial.read_bytes() == data
    ran = []
    with pytest.warns(sw.PartialFileWarning):
        partial.write_bytes(data + tail)
        sw.run_sweep(spec, partial=partial, resume=True, progress=False, on_trial=lambda t, *a: ran.append(t))
    assert len(ran) == len(list(sw.tasks(spec))) - 3


def test_a_torn_header_starts_the_file_afresh(three_done, tmp_path):
    spec, data = three_done
    partial = tmp_path / "p.jsonl"
    partial.write_bytes(_lines(data)[0][:20])
    with pytest.warns(sw.PartialFileWarning, match="line 1, the last"):
        sw.PartialFile(partial, spec, resume=True).close()
    assert partial.read_bytes() == _lines(data)[0] + b"\n"


def test_a_complete_last_line_without_its_newline_is_kept(three_done, tmp_path):
    spec, data = three_done
    partial = tmp_path / "p.jsonl"
    partial.write_bytes(data[:-1])
    loaded = sw.PartialFile(partial, spec, resume=True)
    loaded.close()
    assert len(loaded.done) == 3 and partial.read_bytes() == data  # was padded with a NUL byte


def test_cli_resume_of_a_corrupt_or_torn_partial_file(three_done, tmp_path):
    spec, data = three_done
    out = tmp_path / "o.nc"
    partial = sw.partial_path_for(out)
    lines = _lines(data)
    partial.write_bytes(b"\n".join([lines[0], b"7", *lines[2:]]) + b"\n")
    r = runner.invoke(app, ["sweep", spec.path, "--out", str(out), "--quiet", "--resume"])
    assert r.exit_code == 2, r.exception
    assert f"error: partial file {partial}: line 2: 7 is not a trial record" in r.output
    assert "Traceback" not in r.output
    partial.write_bytes(data + b'{"kind": "tri')
    r = runner.invoke(app, ["sweep", spec.path, "--out", str(out), "--quiet", "--resume", "--no-summary"])
    assert r.exit_code == 0, r.output
    assert f"warning: partial file {partial}: line 5, the last, is incomplete" in r.output
    assert not partial.exists() and (results.read(out)["status"] == "ok").all()


def test_the_result_and_its_directory_are_fsynced_before_the_partial_file_goes(tmp_path, monkeypatch):
    spec = spec_of(tmp_path, TEXT.replace("repeats = 2", "repeats = 1").replace("warmups = 1", "warmups = 0"))
    out = tmp_path / "res" / "o.nc"
    partial = sw.partial_path_for(out)
    events = []
    real_fsync, real_unlink = os.fsync, pathlib.Path.unlink

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def unlink(self, missing_ok=False):
        events.append(("unlink", str(self)))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    r = runner.invoke(app, ["sweep", spec.path, "--out", str(out), "--quiet", "--no-summary"])
    assert r.exit_code == 0, r.output
    gone = events.index(("unlink", str(partial)))
    synced = [p for kind, p in events[:gone] if kind == "fsync"]
    assert any(p.startswith(str(out.parent / f".{out.name}.")) and p.endswith(".tmp") for p in synced), synced
    assert str(out.parent) in synced  # the rename is durable before the partial file is deleted
    last_dir_sync = max(i for i, p in enumerate(synced) if p == str(out.parent))
    assert last_dir_sync > max(i for i, p in enumerate(synced) if p.endswith(".tmp"))


HOLD = """
import sys, time
from dsalab import sweep
with sweep.exclusive(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def test_a_second_process_may_not_write_the_same_partial_file(tmp_path):
    spec = spec_of(tmp_path)
    partial = tmp_path / "p.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(partial)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(sw.OutputInUse, match=rf"p\.jsonl is being written by another sweep \(pid {holder.pid} on "):
            sw.run_sweep(spec, partial=partial, progress=False, on_trial=lambda *a: pytest.fail("ran"))
        assert not partial.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert not sw.lock_path(partial).exists()  # the holder removed its lock file
    with sw.exclusive(partial), sw.exclusive(partial):  # free again; the same thread may nest it
        pass


def test_another_thread_may_not_write_the_same_partial_file(tmp_path):
    import threading

    spec = spec_of(tmp_path)
    partial = tmp_path / "p.jsonl"
    caught = []

    def other():
        try:
            sw.run_sweep(spec, partial=partial, progress=False)
        except sw.OutputInUse as exc:
            caught.append(exc)

    with sw.exclusive(partial):
        t = threading.Thread(target=other)
        t.start()
        t.join(timeout=60)
    assert not t.is_alive() and len(caught) == 1
    assert "another sweep in this process" in str(caught[0])


def test_a_stale_lock_file_of_a_killed_sweep_does_not_block(tmp_path):
    partial = tmp_path / "p.jsonl"
    sw.lock_path(partial).write_text("pid 999999 on elsewhere\n")  # left behind, nobody holds the flock
    with sw.exclusive(partial) as lock:
        assert lock.read_text() == f"pid {os.getpid()} on {__import__('socket').gethostname()}\n"
    assert not lock.exists()


def test_cli_refuses_a_second_concurrent_sweep_of_the_same_output(tmp_path):
    first, path, out, partial = _start_slow_cli_sweep(tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not partial.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, first.stderr.read().decode()
        # --resume too: the old code then appended to the same partial file as the running sweep
        r = runner.invoke(app, ["sweep", str(path), "--out", str(out), "--quiet", "--resume"])
        assert r.exit_code == 2, r.output
        assert f"slow.nc is being written by another sweep (pid {first.pid} on " in r.output
        os.kill(first.pid, signal.SIGKILL)  # the kernel drops its lock; the lock file stays behind
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=30)
        first.stderr.close()
    assert sw.lock_path(out).exists()
    r = runner.invoke(app, ["sweep", str(path), "--out", str(out), "--quiet", "--resume", "--no-summary"])
    assert r.exit_code == 0, r.output
    assert not partial.exists() and not sw.lock_path(out).exists() and not sw.lock_path(partial).exists()
    assert (results.read(out)["status"] == "ok").all()


def test_cli_sweep_refuses_an_out_path_it_cannot_use_before_running(tmp_path):
    spec = spec_of(tmp_path)
    r = runner.invoke(app, ["sweep", spec.path, "--quiet", "--out", str(tmp_path)])
    assert r.exit_code == 2 and f"--out {tmp_path} is a directory" in r.output
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    r = runner.invoke(app, ["sweep", spec.path, "--quiet", "--out", str(blocker / "o.nc")])
    assert r.exit_code == 2, r.exception
    assert f"error: cannot create the lock file {blocker / 'o.nc.lock'}" in r.output


def test_an_outcome_that_cannot_be_stored_is_recorded_as_a_failed_trial(three_done, tmp_path):
    spec, data = three_done
    good = json.loads(_lines(data)[1])
    outcome = {"result": dict(good["result"], zero_pages=2**70), "error": "", "worker": good["worker"]}
    partial = tmp_path / "p.jsonl"
    written = sw.PartialFile(partial, spec, resume=False)
    task = next(sw.tasks(spec))
    written.append(task, outcome)  # was stored as is; building the dataset then raised OverflowError
    written.close()
    reread = sw.PartialFile(partial, spec, resume=True)
    reread.close()
    for loaded in (written, reread):
        result, error, worker = loaded.records[task.key]
        assert result is None and worker == good["worker"]
        assert error.startswith("invalid result: result zero_pages=1180591620717411303424 is not allowed")


@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_partial_line_past_the_int_digit_limit_is_corrupt_not_a_crash(three_done, tmp_path, where):
    # json.loads raises a plain ValueError (not JSONDecodeError) for an int of over 4300 digits
    spec, data = three_done
    lines = _lines(data)
    huge = b'{"kind": "trial", "key": ' + b"9" * 5000 + b"}"
    lines.insert(2 if where == "middle" else len(lines), huge)
    partial = tmp_path / "p.jsonl"
    partial.write_bytes(b"\n".join(lines) + b"\n")
    if where == "middle":
        with pytest.raises(sw.SweepFileError, match="line 3 is not JSON"):
            sw.PartialFile(partial, spec, resume=True)
    else:
        with pytest.warns(sw.PartialFileWarning, match="the last, is incomplete"):
            sw.PartialFile(partial, spec, resume=True)._fh.close()


def test_a_lock_whose_writer_cannot_be_recorded_is_given_back(tmp_path, monkeypatch):
    partial = tmp_path / "p.jsonl"
    real_pwrite = os.pwrite

    def full_disk(fd, data, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(sw.OutputInUse, match="cannot record the writer"), sw.exclusive(partial):
        pass
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    with sw.exclusive(partial):  # not held for ever by the failed attempt
        pass
