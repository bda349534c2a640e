"""A hardware profile for tests that does not depend on this machine: made from a dictionary of plain numbers
(sources say "test"), with the published DSA device; `profile_doc(**changes)` gives the TOML document."""

from __future__ import annotations

import copy
from typing import Any

from dsalab.model.profile import HardwareProfile
from dsalab.model.published import DEVICE, ESTIMATES

#: dotted key -> (value, unit); costs of the order this machine measures
NUMBERS: dict[str, tuple[float, str]] = {
    "host.cores": (2, "cores"),
    "host.memory_read_bandwidth": (10, "GB/s"),
    "host.page_bytes": (4096, "B"),
    "host.main_page": (50, "ns/page"),
    "host.main_packet": (2, "us/packet"),
    "host.packet": (2, "us/packet"),
    "host.send_page": (50, "ns/page"),
    "host.send_byte": (0.1, "ns/B"),
    "host.receive_page": (30, "ns/page"),
    "host.receive_byte": (0.1, "ns/B"),
    "host.receive_packet": (2, "us/packet"),
    "host.wakeup": (3, "us/wakeup"),
    "network.bandwidth": (20, "Gbit/s"),
    "network.message": (1, "us/message"),
    "dsa.devices": (4, "count"),
    "dsa.prepare_descriptor": (10, "ns/descriptor"),
    "dsa.submit_write": (1, "us/submission"),
    "host.zero_check.cpu-numba.zero_page": (300, "ns/page"),
    "host.zero_check.cpu-numba.normal_page": (10, "ns/page"),
    "host.zero_check.cpu-native.zero_page": (250, "ns/page"),
    "host.zero_check.cpu-native.normal_page": (8, "ns/page"),
}


def _put(doc: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[leaf] = value


def profile_doc(name: str = "test-profile", **changes: Any) -> dict[str, Any]:
    """The TOML document of the test profile; ``changes`` maps dotted keys (``__`` for ``.``) to replacement
    inline tables, or to None to drop the key."""
    doc: dict[str, Any] = {"profile": {"name": name}}
    for key, (value, unit) in NUMBERS.items():
        _put(doc, key, {"value": value, "unit": unit, "source": "test"})
    _put(doc, "network.same_host", {"value": True, "source": "test"})
    for key, entry in {**DEVICE, **ESTIMATES}.items():
        _put(doc, key, entry.to_toml())
    for raw, value in changes.items():
        *parents, leaf = raw.replace("__", ".").split(".")
        table = doc
        for p in parents:
            table = table.setdefault(p, {})
        if value is None:
            table.pop(leaf, None)
        else:
            table[leaf] = value
    return copy.deepcopy(doc)


def test_profile(name: str = "test-profile", **changes: Any) -> HardwareProfile:
    """The test profile, checked like a file."""
    return HardwareProfile.from_dict(profile_doc(name, **changes), f"<{name}>")


test_profile.__test__ = False  # a factory, not a test
