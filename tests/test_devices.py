"""Opening devices from specs, discovery, the hardware path's bookkeeping, and `dsalab devices`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dsalab import _binding, devices
from dsalab.cli import app
from dsalab.errors import DeviceNotFound


def test_emulated_spec_defaults_and_settings():
    with devices.open_device("emu") as dev:
        assert dev.backend == "dsa-emulated"
        info = dev.info()
        assert (info["mode"], info["wq_size"], info["max_batch"], info["submit_path"]) == (
            "shared",
            128,
            1024,
            "emulated",
        )
    spec = "emu:engines=2,wq_size=16,mode=dedicated,gbps=10,latency_us=2,fault_rate=0.001,queue_full_rate=0.01,seed=1"
    with devices.open_device(spec) as dev:
        assert dev.settings["engines"] == 2 and dev.settings["gbps"] == 10.0
        assert dev.info()["mode"] == "dedicated" and dev.info()["wq_size"] == 16


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("emu:turbo=1", r"unknown key 'turbo'; allowed: engines \(int, default 4\), wq_size"),
        ("emu:engines=0", r"engines=0 is out of range; allowed: 1 to 64"),
        ("emu:gbps=fast", r"gbps='fast' is not a float"),
        ("emu:mode=round", r"mode='round' is not allowed; allowed: shared, dedicated"),
        ("emu:engines", r"'engines' needs a value"),
        ("gpu0", r"device spec 'gpu0' is not allowed; allowed: 'emu\[:key=value,...\]' or a path"),
        ("/dev/dsa/wq0.0?fast", r"option 'fast' is not allowed; allowed: \?write"),
        ("", "non-empty string"),
    ],
)
def test_bad_specs_name_the_problem(spec, match):
    with pytest.raises(ValueError, match=match):
        devices.open_device(spec)


def test_missing_queue_lists_what_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no DSA work queue at /dev/dsa/wq9.9; this machine has: none"):
        devices.open_device("/dev/dsa/wq9.9", sysfs_root=tmp_path / "none")
    assert issubclass(DeviceNotFound, FileNotFoundError)


@pytest.fixture
def fake_queue(tmp_path):
    """A sysfs entry and a stand-in character device (a plain file) for wq0.0, dedicated, 16 deep."""
    sysfs = tmp_path / "sys"
    (sysfs / "wq0.0").mkdir(parents=True)
    for k, v in {
        "mode": "dedicated",
        "size": "16",
        "max_batch_size": "32",
        "state": "enabled",
        "type": "user",
        "priority": "10",
        "name": "dsalab",
    }.items():
        (sysfs / "wq0.0" / k).write_text(v + "\n")
    (sysfs / "dsa0").mkdir()
    (sysfs / "dsa0" / "state").write_text("enabled\n")
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "wq0.0").write_bytes(bytes(4096))  # a portal's worth: mappable, as for a privileged process
    return sysfs, dev


def test_hardware_queue_reads_sysfs_and_picks_its_path(fake_queue):
    sysfs, dev = fake_queue
    with devices.open_device(f"{dev}/wq0.0?write", sysfs_root=sysfs) as q:
        info = q.info()
        assert q.backend == "dsa-hardware"
        assert (info["mode"], info["wq_size"]) == ("dedicated", 16)
        assert info["submit_path"] == "write" and info["max_batch"] == 0  # write(): no batches
    portal_possible = _binding.build_facts()["built_with_portal_isa"] and _binding.cpu_has("movdir64b")
    with devices.open_device(f"{dev}/wq0.0", sysfs_root=sysfs) as q:
        assert q.info()["submit_path"] == ("portal" if portal_possible else "write")


def test_devices_cli_lists_queues_and_suggests_a_config(fake_queue, tmp_path):
    sysfs, dev = fake_queue
    runner = CliRunner()
    r = runner.invoke(app, ["devices", "--sysfs-root", str(sysfs), "--dev-root", str(dev)])
    assert r.exit_code == 0, r.output
    assert "wq0.0" in r.output and "mode dedicated, size 16" in r.output and "access: portal" in r.output
    out = tmp_path / "dsalab.conf"
    r = runner.invoke(app, ["devices", "--sysfs-root", str(sysfs), "--suggest-config", str(out)])
    assert r.exit_code == 0 and "accel-config load-config -c" in r.output
    config = json.loads(out.read_text())
    wq = config[0]["groups"][0]["grouped_workqueues"][0]
    assert config[0]["dev"] == "dsa0" and wq["mode"] == "shared" and wq["size"] == 128 and wq["type"] == "user"
    assert wq["name"] == "dsalab" and len(config[0]["groups"][0]["grouped_engines"]) == 4
    r = runner.invoke(app, ["devices", "--suggest-config", str(out), "--device", "gpu1"])
    assert r.exit_code == 2 and "device name 'gpu1' is not allowed" in r.output


def test_devices_cli_without_dsa(tmp_path):
    r = CliRunner().invoke(app, ["devices", "--sysfs-root", str(tmp_path / "absent")])
    assert r.exit_code == 0 and "emulated device" in r.output
