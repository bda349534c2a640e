"""A Trial mapped onto recorded QEMU capability answers (tests/data/qemu/*.json): QEMU 10.0.2 and 7.2.22 recorded
from real replies, the DSA series' v5 and later versions derived from the patch (pure: no QEMU runs here)."""

from __future__ import annotations

import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qemu_support import no_qemu_outlives_the_test

from dsalab.errors import DsalabError, InvalidArgument
from dsalab.qemu import capabilities, qemu_version
from dsalab.qemu.capabilities import Capabilities, reduce_schema
from dsalab.qemu.mapping import UNLIMITED_BYTES_PER_S, QemuCannotHonour, plan
from dsalab.trial import Trial

__all__ = ["no_qemu_outlives_the_test"]  # the autouse fixture, used by being imported
DATA = pathlib.Path(__file__).parent / "data" / "qemu"
Q10 = Capabilities.load(DATA / "qemu-10.0.2.json")
Q72 = Capabilities.load(DATA / "qemu-7.2.22.json")
V5 = Capabilities.load(DATA / "dsa-v5.json")
LATER = Capabilities.load(DATA / "dsa-later.json")
BASE = Trial(guest_bytes="64MiB", detector="cpu-native")
WQS = ("/dev/dsa/wq0.0", "/dev/dsa/wq2.0")


def test_recorded_files_say_where_they_came_from():
    for name in ("qemu-10.0.2", "qemu-7.2.22"):
        doc = json.loads((DATA / f"{name}.json").read_text())
        assert doc["source"].startswith("recorded from a real reply") and doc["how"]
    for name in ("dsa-v5", "dsa-later"):
        doc = json.loads((DATA / f"{name}.json").read_text())
        assert doc["source"].startswith("derived from the patch") and "NOT recorded" in doc["how"]
    assert (Q10.version, Q72.version) == ((10, 0, 2), (7, 2, 22))
    assert Q10.zero_page_detection == ("none", "legacy", "multifd") and Q72.zero_page_detection == ()
    assert "multifd" in Q72.capabilities and "multifd-dsa-accel" in V5.parameters


def test_qemu_10_finds_zero_pages_in_its_multifd_threads_with_the_trials_limits():
    p = plan(BASE.replace(channels=4, max_bandwidth_bytes="100MiB", downtime_limit_ms=500), Q10)
    assert p.zero_page_detection == "multifd"
    assert p.parameters == {
        "multifd-channels": 4,
        "max-bandwidth": 100 << 20,
        "downtime-limit": 500,
        "zero-page-detection": "multifd",
    }
    assert p.destination_parameters == {"multifd-channels": 4}
    assert p.capabilities == [{"capability": "multifd", "state": True}]
    assert plan(BASE, Q10).parameters["max-bandwidth"] == UNLIMITED_BYTES_PER_S  # 0 = unlimited


def test_the_limits_qemu_takes_map():
    p = plan(BASE.replace(downtime_limit_ms=2_000_000, max_bandwidth_bytes=10), Q10)
    assert (p.parameters["downtime-limit"], p.parameters["max-bandwidth"]) == (2_000_000, 10)


def test_qemu_7_2_has_multifd_but_its_main_thread_finds_zero_pages():
    p = plan(BASE, Q72)
    assert p.zero_page_detection == "legacy" and "zero-page-detection" not in p.parameters
    assert p.parameters["multifd-channels"] == 2


@pytest.mark.parametrize(
    ("caps", "changes", "field"),
    [
        (Q10, {"packet_bytes": "1MiB"}, "packet_bytes=1048576"),
        (Q72, {"packet_bytes": "128KiB"}, "packet_bytes=131072"),
        (LATER, {"packet_bytes": "1MiB"}, "packet_bytes=1048576"),
        (Q10, {"force_normal_ratio": 0.5}, "force_normal_ratio=0.5"),
        (V5, {"force_normal_ratio": 0.505}, "force_normal_ratio=0.505"),
        (Q10, {"detector": "dsa-hardware", "devices": WQS}, "detector='dsa-hardware'"),
        (Q72, {"detector": "dsa-hardware", "devices": WQS}, "detector='dsa-hardware'"),
        (V5, {"detector": "dsa-emulated"}, "detector='dsa-emulated'"),
        (V5, {"detector": "dsa-hardware", "devices": 2}, "devices=2"),
        (V5, {"detector": "dsa-hardware", "devices": WQS, "cpu_fraction": 0.1}, "cpu_fraction=0.1"),
        (V5, {"detector": "dsa-hardware", "devices": WQS, "batch_size": 64}, "batch_size=64"),
        (V5, {"detector": "dsa-hardware", "devices": WQS, "completion": "poll"}, "completion='poll'"),
        (Q10, {"detector": "cpu-numba"}, "detector='cpu-numba'"),
        (Q10, {"dirty_rate_bytes_per_s": "1MiB"}, "dirty_rate_bytes_per_s=1048576"),
        (Q10, {"page_size": 8192}, "page_size=8192"),
        (Q10, {"huge_pages": True}, "huge_pages=True"),
        (Q10, {"downtime_limit_ms": 300.5}, "downtime_limit_ms=300.5"),
        (Q10, {"downtime_limit_ms": 3_000_000}, "downtime_limit_ms=3000000.0"),
        (Q72, {"downtime_limit_ms": 2_000_001}, "downtime_limit_ms=2000001.0"),
        (Q10, {"max_bandwidth_bytes": 1}, "max_bandwidth_bytes=1"),
        (Q10, {"max_bandwidth_bytes": 9}, "max_bandwidth_bytes=9"),
        (V5, {"packet_bytes": "256KiB"}, "packet_bytes=262144"),
        (V5, {"packet_bytes": "4MiB"}, "packet_bytes=4194304"),
    ],
)
def test_a_field_qemu_cannot_honour_is_an_error_naming_the_field_and_the_version(caps, changes, field):
    with pytest.raises(QemuCannotHonour) as info:
        plan(BASE.replace(**changes), caps)
    message = str(info.value)
    assert f"Trial field {field} " in message and caps.version_text in message and "\n" not in message
    assert isinstance(info.value, InvalidArgument) and isinstance(info.value, DsalabError)


def test_the_v5_series_takes_packet_size_normal_ratio_and_dsa_queues():
    trial = BASE.replace(
        detector="dsa-hardware", devices=WQS, packet_bytes="1MiB", batch_size=256, force_normal_ratio=0.25
    )
    p = plan(trial, V5)
    assert p.zero_page_detection == "multifd-dsa-accel"
    assert p.parameters["multifd-dsa-accel"] == "/dev/dsa/wq0.0 /dev/dsa/wq2.0"
    assert p.parameters["multifd-packet-size"] == p.destination_parameters["multifd-packet-size"] == 1 << 20
    assert p.parameters["multifd-normal-page-ratio"] == 25
    assert plan(BASE.replace(packet_bytes=4190208), V5).parameters["multifd-packet-size"] == 4190208
    assert V5.defaults["multifd-normal-page-ratio"] == 101  # the series' default: off


def test_later_series_versions_take_accel_path_and_dsa_accel():
    p = plan(BASE.replace(detector="dsa-hardware", devices=WQS), LATER)
    assert p.zero_page_detection == "dsa-accel" and p.parameters["zero-page-detection"] == "dsa-accel"
    assert p.parameters["accel-path"] == ["dsa:/dev/dsa/wq0.0", "dsa:/dev/dsa/wq2.0"]
    with pytest.raises(QemuCannotHonour, match=r"force_normal_ratio=0\.5 .*QEMU 9\.2\.50"):
        plan(BASE.replace(force_normal_ratio=0.5), LATER)


@settings(max_examples=100, deadline=None)
@given(
    caps=st.sampled_from([Q10, Q72, V5, LATER]),
    detector=st.sampled_from(["cpu-numba", "cpu-native", "dsa-emulated", "dsa-hardware"]),
    devices=st.sampled_from([1, WQS, ("emu:gbps=30",)]),
    packet_pages=st.sampled_from([32, 128, 256]),
    force=st.sampled_from([0.0, 0.25, 0.333]),
    dirty=st.sampled_from([0, 1 << 20]),
    batch=st.sampled_from([32, 128, 256]),
)
def test_every_trial_either_maps_or_names_a_field_and_the_version(
    caps, detector, devices, packet_pages, force, dirty, batch
):
    trial = BASE.replace(
        detector=detector,
        devices=devices,
        packet_bytes=packet_pages * 4096,
        force_normal_ratio=force,
        dirty_rate_bytes_per_s=dirty,
        batch_size=batch,
    )
    try:
        p = plan(trial, caps)
    except QemuCannotHonour as exc:
        text = str(exc)
        assert caps.version_text in text
        assert any(text.startswith(f"Trial field {f}=") for f in Trial.fields())
        return
    assert set(p.parameters) <= caps.parameters
    assert dirty == 0 and detector not in ("cpu-numba", "dsa-emulated")
    assert (packet_pages == 128) or "multifd-packet-size" in p.parameters
    assert force == 0 or p.parameters["multifd-normal-page-ratio"] == round(force * 100)


def test_malformed_replies_are_refused():
    with pytest.raises(InvalidArgument, match="malformed"):
        Capabilities.from_replies({"qemu": {"major": 10}}, [], {})
    with pytest.raises(InvalidArgument, match="malformed"):
        Capabilities.from_replies({"qemu": {"major": 9, "minor": 0, "micro": 0}}, [{"name": "multifd"}], {})


def test_reduce_schema_follows_numbered_types():
    schema = [
        {"name": "query-migrate-parameters", "meta-type": "command", "ret-type": "42"},
        {"name": "42", "meta-type": "object", "members": [{"name": "zero-page-detection", "type": "7"}]},
        {"name": "7", "meta-type": "enum", "members": [{"name": "none"}, {"name": "multifd"}]},
    ]
    assert reduce_schema(schema) == {"parameters": ["zero-page-detection"], "zero-page-detection": ["none", "multifd"]}
    assert reduce_schema([]) == {"parameters": []}


def test_the_probe_matches_the_recorded_answer_of_the_same_version():
    if qemu_version() != (10, 0, 2):
        pytest.skip(f"needs QEMU 10.0.2 (this machine has {qemu_version()}) to compare with the recorded answer")
    live = capabilities.probe()
    assert (live.capabilities, live.parameters, live.zero_page_detection) == (
        Q10.capabilities,
        Q10.parameters,
        Q10.zero_page_detection,
    )
