"""Opening devices from specs, discovery, the hardware path's bookkeeping, and `dsalab devices`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dsalab import _binding, devices
from dsalab.cli import app
from dsalab.errors import DeviceNotFound, InvalidArgument, NativeInvalidArgument
from dsalab.migration.trial import Trial


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


def _fake_sysfs(tmp_path, rdev="1:5", devname="dsa/wq0.0"):
    """A sysfs tree laid out like the kernel's: bus/dsa/devices/{dsa0,wq0.0} and dev/char/<rdev>/uevent, which
    names the character device ``rdev`` as ``devname``. Returns bus/dsa/devices (the ``sysfs_root``)."""
    sysfs = tmp_path / "sys" / "bus" / "dsa" / "devices"
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
    char = tmp_path / "sys" / "dev" / "char" / rdev
    char.mkdir(parents=True)
    major, minor = rdev.split(":")
    (char / "uevent").write_text(f"MAJOR={major}\nMINOR={minor}\nDEVNAME={devname}\nDEVMODE=0600\n")
    return sysfs


@pytest.fixture
def fake_queue(tmp_path):
    """wq0.0, dedicated, 16 deep: a fake sysfs that says character device 1:5 is the idxd driver's dsa/wq0.0,
    and dev/wq0.0 a link to /dev/zero (1:5), a real character device that may be written (and mapped, as a
    portal is for a privileged process) without harm."""
    assert os.stat("/dev/zero").st_rdev == os.makedev(1, 5)
    sysfs = _fake_sysfs(tmp_path)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "wq0.0").symlink_to("/dev/zero")
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


# ---- issue 9, item 3: nothing but an idxd work queue's character device is opened for submission ----


def _refused(spec, sysfs, match):
    with pytest.raises(InvalidArgument, match=match):
        devices.open_device(spec, sysfs_root=sysfs)


def test_regular_file_named_like_a_queue_is_refused_and_unchanged(tmp_path):
    sysfs = _fake_sysfs(tmp_path)
    victim = tmp_path / "wq0.0"
    content = b"precious results\n" * 300
    victim.write_bytes(content)
    before = victim.stat()
    for spec in (str(victim), f"{victim}?write"):
        _refused(spec, sysfs, rf"device path {victim} is a regular file, not a DSA work queue; allowed: the character")
    after = victim.stat()
    assert victim.read_bytes() == content
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_link_to_a_regular_file_directory_and_fifo_are_refused(tmp_path):
    sysfs = _fake_sysfs(tmp_path)
    target = tmp_path / "results.nc"
    target.write_bytes(b"data" * 1000)
    links = tmp_path / "links"
    links.mkdir()
    (links / "wq0.0").symlink_to(target)
    _refused(f"{links}/wq0.0", sysfs, r"is a regular file \(through a symbolic link\), not a DSA work queue")
    assert target.read_bytes() == b"data" * 1000
    d = tmp_path / "dirs" / "wq0.0"
    d.mkdir(parents=True)
    _refused(str(d), sysfs, r"is a directory, not a DSA work queue")
    fifo = tmp_path / "fifos" / "wq0.0"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    _refused(str(fifo), sysfs, r"is a FIFO, not a DSA work queue")


def test_character_device_of_another_driver_is_refused(tmp_path):
    sysfs = _fake_sysfs(tmp_path)  # says 1:5 is dsa/wq0.0, nothing about 1:3
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "wq0.0").symlink_to("/dev/null")
    _refused(f"{tmp_path}/dev/wq0.0", sysfs, r"is character device 1:3 \(through a symbolic link\) \(no .*uevent\)")
    other = tmp_path / "other"
    sysfs2 = _fake_sysfs(other, devname="zero")  # 1:5 is the memory driver's /dev/zero
    (other / "wq0.0").symlink_to("/dev/zero")
    _refused(f"{other}/wq0.0", sysfs2, r"character device 1:5 .*\(DEVNAME=zero\), not the idxd driver's dsa/wq0.0")
    # a queue's device under another queue's name: sysfs names 1:5 dsa/wq0.0, the path says wq0.1
    (tmp_path / "dev" / "wq0.1").symlink_to("/dev/zero")
    _refused(f"{tmp_path}/dev/wq0.1", sysfs, r"\(DEVNAME=dsa/wq0.0\), not the idxd driver's dsa/wq0.1")


def test_native_open_checks_the_opened_file_itself(tmp_path):
    """The C side refuses too (fstat after open, then sysfs), whatever the Python side let through."""
    sysfs = _fake_sysfs(tmp_path)
    chars = str(tmp_path / "sys" / "dev" / "char")
    victim = tmp_path / "wq0.0"
    victim.write_bytes(b"keep me")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "wq0.0").symlink_to("/dev/null")
    for path in (str(victim), f"{tmp_path}/d/wq0.0"):
        for force_write in (False, True):
            with pytest.raises(NativeInvalidArgument):
                _binding.hw_open(path, str(sysfs), chars, force_write)
    assert victim.read_bytes() == b"keep me"
    with pytest.raises(DeviceNotFound):  # never created
        _binding.hw_open(f"{tmp_path}/new/wq0.0", str(sysfs), chars, True)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("emu:turbo=1", r"Trial field devices: device spec 'emu:turbo=1': unknown key 'turbo'"),
        ("emu:gbps=nan", r"gbps=nan is out of range; allowed: 0 to 10000"),
        ("emu:engines=1e3", r"engines='1e3' is not an int"),
        ("/tmp/results.nc", r"'results.nc' is not a work queue name; allowed: a path ending in wqX.Y"),
        ("/dev/dsa/wq0.0?fast", r"option 'fast' is not allowed; allowed: \?write"),
        ("dev/dsa/wq0.0", r"is not allowed; allowed: 'emu\[:key=value,...\]' or a path /dev/dsa/wqX.Y"),
        ("/dev/dsa/wq0.0\0", r"NUL character"),
        ("", r"devices=\(\'\',\) is not allowed"),
    ],
)
def test_trial_checks_device_specs_when_built(spec, match):
    with pytest.raises(InvalidArgument, match=match):
        Trial(devices=(spec,))


def test_trial_accepts_queue_paths_that_do_not_exist_here():
    """Whether the queue exists is checked when it is opened: a trial may be described on another machine."""
    t = Trial(devices=("/dev/dsa/wq3.1?write", "emu:gbps=10,mode=dedicated"))
    assert t.devices == ("/dev/dsa/wq3.1?write", "emu:gbps=10,mode=dedicated")


def test_device_spec_module_is_light():
    """Trial checks specs without loading the native module or numba."""
    code = "import sys, dsalab.device_spec; print(sorted(m for m in sys.modules if 'numba' in m or '_native' in m))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_discovery_never_opens_a_regular_file(tmp_path):
    sysfs = _fake_sysfs(tmp_path)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "wq0.0").write_bytes(b"not a queue")
    (q,) = devices.discover(sysfs, dev)
    assert q.access == f"none: {dev}/wq0.0 is a regular file, not a character device"
    assert "not usable" in q.advice
