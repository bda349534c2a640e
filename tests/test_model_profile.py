"""Hardware profiles (dsalab.model.profile) and what `dsalab calibrate` writes: a quick calibration round-trips
through TOML, carries every key with a source naming the command, and a bad profile is refused with an error
naming the file, the key and what is allowed."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib

import pytest
import tomli_w

from dsalab.errors import DsalabError
from dsalab.model import calibrate as cal
from dsalab.model.profile import (
    CPU_DETECTORS,
    OPTIONAL,
    SPEC,
    ZERO_CHECK,
    ZERO_CHECK_OPTIONAL,
    HardwareProfile,
)

pytestmark = pytest.mark.timeout(300)

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[HardwareProfile, pathlib.Path]:
    """One quick calibration of this machine (one repeat), saved."""
    profile = cal.calibrate(quick=True, repeats=1, name="test-host")
    path = tmp_path_factory.mktemp("hw") / "test-host.toml"
    profile.save(path)
    return profile, path


def test_calibrated_profile_round_trips(quick):
    profile, path = quick
    loaded = HardwareProfile.load(path)
    assert loaded.name == profile.name == "test-host"
    assert dict(loaded.entries) == dict(profile.entries)
    assert dict(loaded.about) == dict(profile.about)
    assert loaded.path == str(path)


def test_every_key_is_there_with_its_source(quick):
    profile, _ = quick
    tables = [*ZERO_CHECK, *ZERO_CHECK_OPTIONAL]
    keys = set(SPEC) | set(OPTIONAL) | {f"host.zero_check.{d}.{z}" for d in CPU_DETECTORS for z in tables}
    assert keys == set(profile.entries)
    for key in keys:
        assert "dsalab calibrate" in profile.source(key), key
    measured = [k for k in keys if k.startswith(("host.", "network."))] + ["dsa.prepare_descriptor", "dsa.submit_write"]
    for key in measured:
        if key not in ("host.cores", "host.page_bytes", "network.same_host"):
            assert "median of 1" in profile.source(key), key
    assert profile.flag("network.same_host") is True
    assert profile["dsa.devices"] == 4  # one Sapphire Rapids socket's devices, as a what-if
    for key in ("profile", "name", "created", "command", "dsalab_version", "git_commit", "cpu_model", "kernel"):
        assert key == "profile" or profile.about[key], key


def test_calibrated_costs_are_plausible(quick):
    """Costs a 4 KiB page cannot do without are > 0; none is negative (clipped fits say so)."""
    profile, _ = quick
    for d in CPU_DETECTORS:
        assert profile[f"host.zero_check.{d}.zero_page"] > 0
        assert profile[f"host.zero_check.{d}.normal_page"] > 0
    for key in ("host.packet", "host.wakeup", "host.receive_byte", "network.bandwidth", "dsa.submit_write"):
        assert profile[key] > 0, key
    assert profile["host.cores"] >= 1


def test_repeats_is_checked():
    with pytest.raises(DsalabError, match=r"repeats=0 is not allowed: allowed is a whole number 1\.\.100"):
        cal.calibrate(quick=True, repeats=0)


# ---- bad profiles: the loader (dsalab/model/profile.py) ----


@pytest.fixture(scope="module")
def good_doc(quick) -> dict:
    return tomllib.loads(quick[1].read_text())


def _write(tmp_path: pathlib.Path, doc: dict) -> pathlib.Path:
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def test_missing_key_names_file_key_and_rule(tmp_path, good_doc):
    doc = tomllib.loads(tomli_w.dumps(good_doc))
    del doc["host"]["wakeup"]
    path = _write(tmp_path, doc)
    with pytest.raises(DsalabError) as e:
        HardwareProfile.load(path)
    msg = str(e.value)
    assert str(path) in msg and "host.wakeup" in msg and "every key of SPEC is required" in msg


def test_negative_cost_names_file_key_and_rule(tmp_path, good_doc):
    doc = tomllib.loads(tomli_w.dumps(good_doc))
    doc["host"]["main_page"]["value"] = -1.0
    path = _write(tmp_path, doc)
    with pytest.raises(DsalabError, match=r"bad\.toml: key host\.main_page = -1 is not allowed: allowed is >= 0"):
        HardwareProfile.load(path)


def test_unknown_unit_names_file_key_and_allowed_units(tmp_path, good_doc):
    doc = tomllib.loads(tomli_w.dumps(good_doc))
    doc["host"]["send_byte"]["unit"] = "furlongs"
    path = _write(tmp_path, doc)
    with pytest.raises(DsalabError) as e:
        HardwareProfile.load(path)
    msg = str(e.value)
    assert str(path) in msg and "host.send_byte" in msg and "'furlongs' is not allowed" in msg and "ns/B" in msg


def test_unknown_key_lists_what_is_allowed(tmp_path, good_doc):
    doc = tomllib.loads(tomli_w.dumps(good_doc))
    doc["host"]["warp_drive"] = {"value": 1, "unit": "ns/page", "source": "x"}
    path = _write(tmp_path, doc)
    with pytest.raises(DsalabError, match=r"bad\.toml: unknown key 'host\.warp_drive'; allowed: host\.cores"):
        HardwareProfile.load(path)


def test_half_a_zero_check_table_is_refused(tmp_path, good_doc):
    """A detector's table with zero_page but no normal_page used to load, then predict() failed with a KeyError."""
    doc = tomllib.loads(tomli_w.dumps(good_doc))
    del doc["host"]["zero_check"]["cpu-native"]["normal_page"]
    path = _write(tmp_path, doc)
    with pytest.raises(DsalabError) as e:
        HardwareProfile.load(path)
    msg = str(e.value)
    assert str(path) in msg and "host.zero_check.cpu-native.normal_page" in msg


def test_a_directory_is_refused_with_the_library_error(tmp_path):
    """Loading a directory (or an unreadable file) used to raise IsADirectoryError, outside DsalabError."""
    with pytest.raises(DsalabError, match=r"hardware profile .* cannot be read"):
        HardwareProfile.load(tmp_path)


def test_empty_source_is_refused(tmp_path, good_doc):
    doc = tomllib.loads(tomli_w.dumps(good_doc))
    doc["host"]["packet"]["source"] = ""
    path = _write(tmp_path, doc)
    with pytest.raises(DsalabError, match=r"bad\.toml: key host\.packet must say where its number comes from"):
        HardwareProfile.load(path)


def test_cli_writes_the_profile_and_prints_the_table(tmp_path):
    out = tmp_path / "hw" / "me.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "dsalab.cli", "calibrate", "--quick", "--repeats", "1", "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "host.zero_check.cpu-native.zero_page" in proc.stdout
    assert HardwareProfile.load(out)["host.cores"] >= 1


def test_cli_refuses_bad_repeats(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dsalab.cli", "calibrate", "--repeats", "0", "--out", str(tmp_path / "x.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "repeats=0 is not allowed" in proc.stderr
    assert not (tmp_path / "x.toml").exists()
