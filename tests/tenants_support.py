"""A hardware profile for the tenant tests: the published DSA device (:mod:`dsalab.model.published`) on a host whose
CPU costs are round test values (every source says so). Not a profile of any machine."""

from __future__ import annotations

import pathlib

from dsalab.model.profile import HardwareProfile
from dsalab.model.published import DEVICE, ESTIMATES
from dsalab.model.quantities import Quantity

_T = "tests/tenants_support.py: a round test value, not a measurement"

HOST = {
    "host.cores": ("count", 96, "cores"),
    "host.memory_read_bandwidth": ("rate", 200, "GB/s"),
    "host.page_bytes": ("size", 4096, "B"),
    "host.main_page": ("time/page", 100, "ns/page"),
    "host.main_packet": ("time/packet", 1000, "ns/packet"),
    "host.packet": ("time/packet", 2000, "ns/packet"),
    "host.send_page": ("time/page", 50, "ns/page"),
    "host.send_byte": ("time/B", 0.05, "ns/B"),
    "host.receive_page": ("time/page", 50, "ns/page"),
    "host.receive_byte": ("time/B", 0.05, "ns/B"),
    "host.receive_packet": ("time/packet", 2000, "ns/packet"),
    "host.wakeup": ("time/wakeup", 3000, "ns/wakeup"),
    "host.zero_check.cpu-native.zero_page": ("time/page", 250, "ns/page"),
    "host.zero_check.cpu-native.normal_page": ("time/page", 20, "ns/page"),
    "network.bandwidth": ("rate", 100, "Gbit/s"),
    "network.message": ("time/message", 1000, "ns/message"),
    "dsa.devices": ("count", 1, "count"),
    "dsa.prepare_descriptor": ("time/descriptor", 20, "ns/descriptor"),
}


def profile(**changes) -> HardwareProfile:
    """The test profile (``changes`` as :meth:`HardwareProfile.replace` takes them)."""
    from dsalab.model.profile import Setting

    entries = {k: Quantity.of(kind, v, unit, _T) for k, (kind, v, unit) in HOST.items()}
    entries["network.same_host"] = Setting(False, _T)
    entries.update(DEVICE)
    entries.update(ESTIMATES)
    entries["dsa.submit_write"] = Quantity.of("time/submission", 2, "us/submission", _T)
    prof = HardwareProfile("tenants-test", entries, {"name": "tenants-test", "description": _T})
    return prof.replace(**changes) if changes else prof


def profile_file(directory: pathlib.Path, **changes) -> pathlib.Path:
    """The test profile saved as TOML in ``directory``."""
    path = directory / "tenants-test.toml"
    profile(**changes).save(path)
    return path


def emulated(gbps: float, latency_us: float, cpu_page_ns: float, submit_ns: float) -> HardwareProfile:
    """The test profile with the emulated device's timing model (``gbps`` flat over transfer sizes, ``latency_us``)
    and the given CPU costs of a fallback page and of a submission (measured on the emulator by the caller)."""
    from dsalab.model.profile import Curve

    base = profile()
    entries = dict(base.entries)
    src = "the emulated device's spec (emu: gbps, latency_us)"
    entries["dsa.throughput"] = Curve((4096.0,), (gbps * 1e9,), "GB/s", (gbps,), src)
    entries["dsa.completion_latency"] = Quantity.of("time", latency_us, "us", src)
    measured = "measured on the emulator by the caller"
    entries["host.zero_check.cpu-native.zero_page"] = Quantity.of("time/page", cpu_page_ns, "ns/page", measured)
    entries["dsa.submit_enqcmd"] = Quantity.of("time/submission", submit_ns, "ns/submission", measured)
    return HardwareProfile("tenants-emulated", entries, {"name": "tenants-emulated"})
