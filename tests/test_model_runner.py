"""Runner ``model`` in sweep files and the CLI: every point of a model sweep is predict() of its trial, the dataset
records the profile it came from, a bad or missing profile is a one-line error naming the file and key, every
shipped sweep runs on the model unchanged, and model sweeps fsync their partial file per batch, not per trial."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from model_fixtures import test_profile
from typer.testing import CliRunner

from dsalab import results, sweepfile
from dsalab import sweep as sw
from dsalab.backends import Backend
from dsalab.cli import app
from dsalab.errors import SweepFileError
from dsalab.model import predict

pytestmark = pytest.mark.timeout(180)
ROOT = pathlib.Path(__file__).resolve().parent.parent
cli = CliRunner()
MODEL_SWEEP = """
name = "m"
runner = "model"
hardware = "{hardware}"
repeats = 3
warmups = 2
seed = 5
[base]
guest_bytes = "64MiB"
channels = 2
[sweep]
detector = ["cpu-numba", "cpu-native", "dsa-hardware"]
normal_ratio = [0.0, 0.5, 1.0]
packet_bytes = ["128KiB", "512KiB"]
"""


@pytest.fixture
def profile_file(tmp_path) -> pathlib.Path:
    path = tmp_path / "hw" / "testhost.toml"
    path.parent.mkdir()
    path.write_text(test_profile("testhost").to_toml())
    return path


def model_sweep(tmp_path, hardware: str, text: str = MODEL_SWEEP) -> pathlib.Path:
    path = tmp_path / "sweeps" / "m.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace("{hardware}", hardware))
    return path


def test_model_sweep_points_equal_predict_and_attrs_carry_the_profile(tmp_path, profile_file, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the profile path is relative to the current directory
    spec = sweepfile.load(model_sweep(tmp_path, "hw/testhost.toml"))
    assert spec.runner == "model" and spec.hardware == "hw/testhost.toml"
    assert (spec.repeats, spec.warmups, spec.file_repeats, spec.file_warmups) == (1, 0, 3, 2)  # deterministic
    ds = sw.run_sweep(spec, partial=tmp_path / "p.jsonl", progress=False)
    results.validate(ds)
    assert ds.sizes["repeat"] == 1 and ds.attrs["trials_failed"] == 0
    assert ds.attrs["backend"] == "model" and set(ds["backend"].values.ravel()) == {"model"}
    assert ds.attrs["runner"] == "model" and ds.attrs["hardware_profile"] == "testhost"
    assert ds.attrs["hardware_path"] == "hw/testhost.toml"
    assert ds.attrs["hardware_toml"] == profile_file.read_text()
    assert ds.attrs["repeats_in_file"] == 3 and "deterministic" in ds.attrs["model_note"]
    profile = test_profile("testhost")
    for point in spec.points():
        expected = predict(spec.trial(point, 0), profile).metrics()
        got = ds.sel({k: v for k, v in point.items()}).isel(repeat=0)
        for name in ("host_cpu_ms", "total_time_ms", "zero_pages", "normal_pages", "transferred_bytes", "packets"):
            assert float(got[name]) == pytest.approx(expected[name], rel=1e-12), (point, name)
    # written and read back, the provenance survives
    out = results.write(ds, tmp_path / "m.nc")
    back = results.read(out)
    assert back.attrs["hardware_toml"] == profile_file.read_text() and back.attrs["backend"] == "model"


def test_profile_path_falls_back_to_the_sweep_files_directory(tmp_path, profile_file, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = sweepfile.load(model_sweep(tmp_path, "../hw/testhost.toml"))
    assert pathlib.Path(spec.hardware).resolve() == profile_file.resolve()
    assert spec.hardware_text == profile_file.read_text()


def test_hardware_may_name_a_shipped_profile(tmp_path, profile_file, monkeypatch):
    import dsalab.reference

    monkeypatch.setattr(dsalab.reference, "HARDWARE_DIR", profile_file.parent)
    monkeypatch.chdir(tmp_path)
    spec = sweepfile.load(model_sweep(tmp_path, "testhost"))
    assert pathlib.Path(spec.hardware) == profile_file and spec.hardware_text == profile_file.read_text()
    r = cli.invoke(app, ["run", "--runner", "model", "--hardware", "testhost", "--guest", "1GiB"])
    assert r.exit_code == 0 and "hardware profile testhost" in r.output, r.output
    with pytest.raises(SweepFileError, match="hardware profile 'nosuch' not found"):
        sweepfile.load(model_sweep(tmp_path, "nosuch"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MODEL_SWEEP, "hardware: hardware profile 'nowhere.toml' not found"),
        (MODEL_SWEEP.replace('hardware = "{hardware}"\n', ""), "hardware: missing; runner 'model' needs"),
        (MODEL_SWEEP.replace('runner = "model"', 'runner = "engine"'), "hardware: is only for runner = 'model'"),
        (MODEL_SWEEP.replace('"{hardware}"', "3"), "hardware: 3 is not allowed"),
        (MODEL_SWEEP.replace('runner = "model"', 'runner = "qemu"'), "hardware: is only for runner = 'model'"),
    ],
)
def test_bad_hardware_key_is_a_sweep_file_error_naming_file_and_key(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("{hardware}", "nowhere.toml"))
    with pytest.raises(SweepFileError) as err:
        sweepfile.load(path)
    assert str(err.value).startswith(f"sweep file {path}: ") and expected in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"host__main_page": {"value": -1, "unit": "ns/page", "source": "x"}}, "key host.main_page = -1"),
        ({"host__main_page": {"value": 1, "unit": "furlongs", "source": "x"}}, "unit 'furlongs' is not allowed"),
        ({"host__wakeup": None}, "missing keys host.wakeup"),
        ({"host__zero_check__cpu-native": None}, "no CPU costs for detector cpu-native"),
        ({"dsa__devices": {"value": 0, "unit": "count", "source": "x"}}, "no DSA device (dsa.devices = 0)"),
    ],
)
def test_bad_profile_fails_before_anything_runs(tmp_path, monkeypatch, change, expected):
    import tomli_w
    from model_fixtures import profile_doc

    (tmp_path / "bad.toml").write_text(tomli_w.dumps(profile_doc("bad", **change)))
    monkeypatch.chdir(tmp_path)
    spec = sweepfile.load(model_sweep(tmp_path, "bad.toml"))
    with pytest.raises(SweepFileError) as err:
        sw.run_sweep(spec, partial=tmp_path / "p.jsonl", progress=False)
    message = str(err.value)
    assert message.startswith(f"sweep file {spec.path}: hardware: ") and expected in message, message
    assert not (tmp_path / "p.jsonl").exists()  # nothing ran
    r = cli.invoke(app, ["sweep", spec.path, "--out", str(tmp_path / "o.nc"), "--quiet"])
    assert r.exit_code == 2 and expected in r.output and "Traceback" not in r.output


def test_override_runner_and_hardware_and_partial_files_never_mix(tmp_path, profile_file):
    engine = sweepfile.load(ROOT / "data/sweeps/quick.toml")
    model = sweepfile.override(engine, "model", str(profile_file))
    assert model.runner == "model" and model.runner_from == "command line" and model.repeats == 1
    assert model.hardware_text == profile_file.read_text() and model.text == engine.text
    other = tmp_path / "other.toml"
    other.write_text(test_profile("other").to_toml())
    assert len({engine.sha256, model.sha256, sweepfile.override(engine, "model", str(other)).sha256}) == 3
    back = sweepfile.override(model, "engine")
    assert (back.runner, back.hardware, back.repeats, back.warmups) == ("engine", "", 3, 1)
    assert back.sha256 == engine.sha256
    for args, expected in [
        (("model", None), "--hardware: missing"),
        ((None, str(profile_file)), "--hardware: is only for runner 'model'"),
        (("magic", None), "--runner: 'magic' is not allowed"),
        (("model", str(tmp_path / "none.toml")), "--hardware: hardware profile"),
    ]:
        with pytest.raises(SweepFileError, match=expected):
            sweepfile.override(engine, *args)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "data/sweeps").glob("*.toml")))
def test_every_shipped_sweep_runs_on_the_model_unchanged(tmp_path, profile_file, name):
    spec = sweepfile.override(sweepfile.load(ROOT / "data/sweeps" / name), "model", str(profile_file))
    ds = sw.run_sweep(spec, partial=tmp_path / "p.jsonl", progress=False)
    results.validate(ds)
    errors = sorted({str(e) for e in ds["error"].values.ravel() if e})
    assert ds.attrs["trials_failed"] == 0, errors[:3]
    assert ds.attrs["backend"] == "model" and ds.sizes["repeat"] == 1


def test_model_sweep_fsyncs_the_partial_file_per_batch_and_resumes(tmp_path, profile_file, monkeypatch):
    import dsalab.partial

    calls = []
    real = dsalab.partial.os.fsync
    monkeypatch.setattr(dsalab.partial.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    text = MODEL_SWEEP.replace(
        'packet_bytes = ["128KiB", "512KiB"]', "batch_size = { start = 1, stop = 45 , step = 1 }"
    )
    spec = sweepfile.load(model_sweep(tmp_path, str(profile_file), text))
    n = spec.n_points
    assert n == 3 * 3 * 45 > 2 * sw.MODEL_BATCH
    partial = tmp_path / "p.jsonl"
    ds = sw.run_sweep(spec, partial=partial, progress=False)
    # header (+ its directory), one per full batch, the rest on close: far fewer than one per trial
    assert len(calls) <= 2 + n // sw.MODEL_BATCH + 1 <= 8, len(calls)
    lines = partial.read_text().splitlines()
    assert len(lines) == n + 1  # every trial is in the file when the sweep returns
    # a crash after 100 trials: the resumed sweep predicts only the rest and gives the same dataset
    partial.write_text("\n".join(lines[:101]) + "\n")
    done = []
    again = sw.run_sweep(spec, partial=partial, resume=True, progress=False, on_trial=lambda *a: done.append(a))
    assert len(done) == n - 100
    np.testing.assert_array_equal(again["host_cpu_ms"].values, ds["host_cpu_ms"].values)


def test_execute_model_needs_a_profile_and_tune_runs_on_the_model(tmp_path, profile_file):
    from dsalab import tune

    trial = sweepfile.load(ROOT / "data/sweeps/quick.toml").trial({}, 0)
    out = sw.execute(trial, "model")
    assert out["result"] is None and "needs a hardware profile" in out["error"]
    out = sw.execute(trial, "model", test_profile())
    assert out["result"]["backend"] == "model" and out["error"] == ""
    spec = sweepfile.override(sweepfile.load(ROOT / "data/sweeps/tune.toml"), "model", str(profile_file))
    found, ds = tune.tune(spec)
    assert ds.attrs["runner"] == "model" and found.scores[tune.point_key(found.best)] is not None


def test_model_sweep_on_dask_equals_serial(tmp_path, profile_file):
    from distributed import Client, LocalCluster

    spec = sweepfile.override(sweepfile.load(ROOT / "data/sweeps/seed-scenarios.toml"), "model", str(profile_file))
    serial = sw.run_sweep(spec, partial=tmp_path / "a.jsonl", progress=False)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        on_dask = sw.run_sweep(spec, partial=tmp_path / "b.jsonl", client=client, progress=False, scheduler="t")
    np.testing.assert_array_equal(on_dask["host_cpu_ms"].values, serial["host_cpu_ms"].values)
    assert on_dask.attrs["backend"] == "model" and on_dask.attrs["trials_failed"] == 0


def test_cli_run_with_the_model_prints_a_model_table(tmp_path, profile_file):
    out = tmp_path / "r.nc"
    args = ["run", "--runner", "model", "--hardware", str(profile_file), "--guest", "100GiB", "--channels", "8"]
    r = cli.invoke(app, [*args, "--detector", "dsa-hardware", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "predicted by the model for hardware profile testhost" in r.output
    assert "\nmodel: 100 GiB guest" in r.output and "dsa_completion" in r.output and "multifdsend_7" in r.output
    assert "note: These numbers are predicted by dsalab.model from hardware profile testhost" in r.output
    ds = results.read(out)
    assert str(ds["backend"].values.ravel()[0]) == Backend.MODEL
    for bad, expected in [
        (["run", "--runner", "model"], "--runner model needs --hardware FILE"),
        (["run", "--hardware", str(profile_file)], "--hardware is only for --runner model"),
        (["run", "--runner", "magic"], "--runner 'magic' is not allowed: engine, model, qemu"),
        (["run", "--runner", "model", "--hardware", str(tmp_path / "no.toml")], "does not exist"),
    ]:
        r = cli.invoke(app, bad)
        assert r.exit_code == 2 and expected in r.output, r.output


def test_cli_sweep_with_runner_model_writes_a_model_dataset(tmp_path, profile_file):
    out = tmp_path / "q.nc"
    args = ["sweep", str(ROOT / "data/sweeps/quick.toml"), "--runner", "model", "--hardware", str(profile_file)]
    r = cli.invoke(app, [*args, "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "predicted by the model for hardware profile" in r.output
    ds = results.read(out)
    assert ds.attrs["runner"] == "model" and ds.attrs["runner_from"] == "command line"
    assert ds.attrs["hardware_profile"] == "testhost" and not sw.partial_path_for(out).exists()
    assert "note: These numbers are predicted by dsalab.model from hardware profile testhost" in r.output
    r = cli.invoke(app, ["summary", str(out), "--model", str(profile_file)])
    assert r.exit_code == 2 and "--model compares an engine run with the model" in r.output


ENGINE_SWEEP = """
name = "e"
seed = 3
[base]
guest_bytes = "4MiB"
normal_ratio = 0.5
channels = 2
[sweep]
detector = ["cpu-numba", "dsa-emulated"]
batch_size = [32, 128]
"""


def test_summary_shows_the_models_saving_beside_each_measured_dsa_point(tmp_path, profile_file):
    from dsalab import analysis
    from dsalab.model.beside import model_beside
    from dsalab.trial import Trial

    path = tmp_path / "e.toml"
    path.write_text(ENGINE_SWEEP)
    out = tmp_path / "e.nc"
    r = cli.invoke(app, ["sweep", str(path), "--out", str(out), "--quiet", "--model", str(profile_file)])
    assert r.exit_code == 0, r.output
    assert "model beside the measurement (host CPU saved by DSA, %): hardware profile testhost" in r.output
    assert "dsa-emulated vs cpu-numba (mean over 2 points): measured " in r.output
    ds = results.read(out)
    table = model_beside(ds, profile_file)
    measured = analysis.summarize(ds).savings
    assert len(table) == 2 and list(table.measured_saved_pct) == list(measured.saved_pct)
    profile = test_profile("testhost")
    for _, row in table.iterrows():
        trial = Trial(guest_bytes=4 << 20, normal_ratio=0.5, channels=2, seed=3, **row.point)
        cpu = predict(trial.replace(detector="cpu-numba"), profile).host_cpu_ms_per_gb
        dsa = predict(trial.replace(detector="dsa-emulated"), profile).host_cpu_ms_per_gb
        assert row.model_saved_pct == pytest.approx(100 * (cpu - dsa) / cpu)
        assert f"model {row.model_saved_pct:6.1f}%" in r.output
    # the same lines from a stored file; a bad profile is a clear error
    r2 = cli.invoke(app, ["summary", str(out), "--model", str(profile_file)])
    assert r2.exit_code == 0 and "model beside the measurement" in r2.output
    r3 = cli.invoke(app, ["summary", str(out), "--model", str(tmp_path / "none.toml")])
    assert r3.exit_code == 2 and "--model: hardware profile" in r3.output and "does not exist" in r3.output
