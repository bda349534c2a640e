"""`dsalab info`, dsalab.info() and DSA discovery (against a fake sysfs tree)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import dsalab
from dsalab import discovery, machine
from dsalab.cli import app


def test_info_dict_has_provenance():
    d = dsalab.info()
    for key in (
        "python_version",
        "numba_version",
        "cffi_version",
        "cpu_model",
        "cpu_flags",
        "cpu_count",
        "memory_bytes",
        "kernel",
        "hostname",
        "built_with_idxd_h",
        "built_with_portal_isa",
        "git_commit",
        "dsa_devices",
        "dsa_work_queues",
        "date",
    ):
        assert key in d, key
    for flag in machine.RELEVANT_FLAGS:
        assert isinstance(d[f"cpu_has_{flag}"], bool)
    assert d["cpu_count"] >= 1 and d["memory_bytes"] > 0


def test_flat_info_is_netcdf_safe():
    for key, value in machine.flat_info().items():
        assert isinstance(value, str | int | float), key
        assert not isinstance(value, bool), key


def test_info_cli_text_and_json():
    runner = CliRunner()
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0, r.output
    assert "cpu" in r.output and "<linux/idxd.h>" in r.output and "enqcmd" in r.output
    r = runner.invoke(app, ["info", "--json"])
    assert r.exit_code == 0
    assert json.loads(r.output)["python_version"]


def test_info_console_script():
    r = subprocess.run([sys.executable, "-m", "dsalab.cli", "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "native" in r.stdout


@pytest.fixture
def fake_dsa(tmp_path):
    """A sysfs tree with one device and two queues, and a /dev/dsa with one of them (/dev/zero, mappable)."""
    sysfs = tmp_path / "sys"
    dev = tmp_path / "dev"
    (sysfs / "dsa0").mkdir(parents=True)
    for name, value in {"state": "enabled", "max_batch_size": "1024", "max_engines": "4"}.items():
        (sysfs / "dsa0" / name).write_text(value + "\n")
    for wq, mode in (("wq0.0", "shared"), ("wq0.1", "dedicated")):
        (sysfs / wq).mkdir()
        attrs = {
            "mode": mode,
            "size": "128",
            "priority": "10",
            "state": "enabled",
            "type": "user",
            "name": "dsalab",
            "max_batch_size": "1024",
            "max_transfer_size": "2097152",
        }
        for k, v in attrs.items():
            (sysfs / wq / k).write_text(v + "\n")
    dev.mkdir()
    (dev / "wq0.0").symlink_to("/dev/zero")  # a character device that may be mapped and written
    return sysfs, dev


def test_discovery_reads_sysfs(fake_dsa):
    sysfs, dev = fake_dsa
    queues = discovery.work_queues(sysfs, dev)
    assert [q.name for q in queues] == ["wq0.0", "wq0.1"]
    q0, q1 = queues
    assert (q0.mode, q0.size, q0.priority, q0.max_batch_size, q0.device) == ("shared", 128, 10, 1024, "dsa0")
    assert q0.dev_exists and q0.access == "portal"
    assert q1.mode == "dedicated" and not q1.dev_exists and q1.access.startswith("none")
    assert "not usable" in q1.advice
    devs = discovery.devices(sysfs)
    assert devs[0]["name"] == "dsa0" and devs[0]["max_batch_size"] == 1024


def test_discovery_without_dsa(tmp_path):
    assert discovery.work_queues(tmp_path / "absent", tmp_path) == []
    assert discovery.devices(tmp_path / "absent") == []


def test_portal_access_write_only(tmp_path):
    """A character device that cannot be mapped (like a queue without CAP_SYS_RAWIO) means write()."""
    assert discovery.portal_access(tmp_path / "missing").startswith("none: cannot open")
    # /dev/null opens read-write but cannot be mapped shared-writable: the write() case
    assert discovery.portal_access(discovery.pathlib.Path("/dev/null")) == "write"
