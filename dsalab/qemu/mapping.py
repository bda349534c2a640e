"""A Trial mapped onto what one QEMU offers (pure: no process): the ``migrate-set-capabilities`` and
``migrate-set-parameters`` arguments, or :class:`QemuCannotHonour` naming the field, its value and the QEMU
version. Nothing a Trial asks is dropped silently: a field either maps onto QEMU, is one QEMU's paused guest
makes moot by construction (listed in :data:`MOOT`), or is refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dsalab.backends import Backend
from dsalab.errors import InvalidArgument
from dsalab.qemu.capabilities import Capabilities
from dsalab.trial import Trial

#: QEMU's multifd packet before the DSA series made it a parameter: 512 KiB (128 pages of 4 KiB)
DEFAULT_PACKET_BYTES = 512 << 10
#: x86's target page, the only page QEMU's RAM migration of an x86 guest uses
QEMU_PAGE_SIZE = 4096
#: max-bandwidth given to QEMU for "unlimited": far above what loopback carries (QEMU's default is 128 MiB/s)
UNLIMITED_BYTES_PER_S = 1 << 40
#: the smallest max-bandwidth QEMU honours: it limits per 1/10 s (XFER_LIMIT_RATIO), and 1..9 B/s round to 0,
#: which it takes for "no limit"
MIN_BANDWIDTH_BYTES_PER_S = 10
#: multifd-packet-size's range in the DSA series (migration/options.c: the default is also the least), bytes
SERIES_PACKET_BYTES = (DEFAULT_PACKET_BYTES, 1023 * QEMU_PAGE_SIZE)
#: the largest downtime-limit QEMU accepts (MAX_MIGRATE_DOWNTIME: 2000 s), ms
MAX_DOWNTIME_MS = 2_000_000
#: fields QEMU has nothing for and that change nothing in a paused guest's single pass (the engine reaches
#: the same state: nothing dirtied, one pass), with why
MOOT = {
    "max_iterations": "the VM is paused: one pass, nothing dirtied, so no round limit applies",
    "seed": "seeds the guest memory (GuestMemory), which QEMU maps",
    "io_timeout_ms": "bounds the wait for migration progress (dsalab's watchdog, not a QEMU parameter)",
}
#: fields that only mean something for the DSA detectors (the engine ignores them for CPU detectors too)
DSA_ONLY = ("devices", "batch_size", "completion", "cpu_fraction")
#: migration parameter -> the Trial field it comes from (to name the field when a parameter is missing)
PARAMETER_FIELDS = {
    "multifd-channels": "channels",
    "max-bandwidth": "max_bandwidth_bytes",
    "downtime-limit": "downtime_limit_ms",
    "zero-page-detection": "detector",
    "multifd-dsa-accel": "detector",
    "accel-path": "detector",
    "multifd-packet-size": "packet_bytes",
    "multifd-normal-page-ratio": "force_normal_ratio",
}


class QemuCannotHonour(InvalidArgument):
    """A Trial field this QEMU cannot honour (the message names the field, its value and the QEMU version)."""


@dataclasses.dataclass(frozen=True)
class MigrationPlan:
    """What to tell both QEMUs (``capabilities``: ``migrate-set-capabilities`` items; ``parameters``:
    ``migrate-set-parameters`` arguments, the source's) and how zero pages are found (``zero_page_detection``:
    ``multifd``, ``legacy`` (QEMU < 9.0: the main migration thread), ``dsa-accel`` or ``multifd-dsa-accel``)."""

    capabilities: list[dict[str, Any]]
    parameters: dict[str, Any]
    destination_parameters: dict[str, Any]
    zero_page_detection: str


def _refuse(caps: Capabilities, field: str, value: object, why: str) -> QemuCannotHonour:
    return QemuCannotHonour(f"Trial field {field}={value!r} cannot be honoured by {caps.version_text}: {why}")


def _dsa_paths(trial: Trial, caps: Capabilities) -> list[str]:
    if trial.detector == Backend.DSA_EMULATED:
        why = "QEMU cannot use dsalab's emulated DSA device; use dsa-hardware"
        raise _refuse(caps, "detector", trial.detector, why)
    specs = trial.devices
    if not isinstance(specs, tuple) or not all(s.startswith("/dev/dsa/") for s in specs):
        why = "QEMU opens DSA work queues by path: give devices as /dev/dsa/wqD.Q paths"
        raise _refuse(caps, "devices", specs, why)
    if trial.cpu_fraction > 0:
        raise _refuse(caps, "cpu_fraction", trial.cpu_fraction, "QEMU's DSA offload has no CPU share; allowed is 0")
    if trial.completion != "thread":
        raise _refuse(caps, "completion", trial.completion, "QEMU's DSA offload waits in a dsa_completion thread")
    if trial.batch_size != trial.packet_pages:
        raise _refuse(
            caps, "batch_size", trial.batch_size, f"QEMU batches one packet's pages: allowed is {trial.packet_pages}"
        )
    return list(specs)


def plan(trial: Trial, caps: Capabilities) -> MigrationPlan:
    """The :class:`MigrationPlan` of ``trial`` on the QEMU described by ``caps``; raises
    :class:`QemuCannotHonour` for the first field it cannot honour."""
    if "multifd" not in caps.capabilities:
        raise _refuse(caps, "channels", trial.channels, "this QEMU has no multifd capability")
    if trial.page_size != QEMU_PAGE_SIZE:
        raise _refuse(caps, "page_size", trial.page_size, f"an x86 guest migrates {QEMU_PAGE_SIZE}-byte pages")
    if trial.dirty_rate_bytes_per_s:
        raise _refuse(
            caps, "dirty_rate_bytes_per_s", trial.dirty_rate_bytes_per_s, "the VM is paused (no guest OS writes)"
        )
    if trial.huge_pages:
        raise _refuse(caps, "huge_pages", True, "guest memory is a shared memfd, which transparent huge pages skip")
    down = trial.downtime_limit_ms
    if down != int(down) or not 1 <= down <= MAX_DOWNTIME_MS:
        raise _refuse(caps, "downtime_limit_ms", down, f"QEMU takes a whole number of ms from 1 to {MAX_DOWNTIME_MS}")
    if 0 < trial.max_bandwidth_bytes < MIN_BANDWIDTH_BYTES_PER_S:
        least = MIN_BANDWIDTH_BYTES_PER_S
        why = f"QEMU limits per 1/10 s, so this means no limit there: allowed is 0 (unlimited) or >= {least}"
        raise _refuse(caps, "max_bandwidth_bytes", trial.max_bandwidth_bytes, why)
    params: dict[str, Any] = {
        "multifd-channels": trial.channels,
        "max-bandwidth": trial.max_bandwidth_bytes or UNLIMITED_BYTES_PER_S,
        "downtime-limit": int(trial.downtime_limit_ms),
    }
    both: dict[str, Any] = {"multifd-channels": trial.channels}
    if trial.detector == Backend.CPU_NUMBA:
        raise _refuse(
            caps, "detector", trial.detector, "QEMU finds zero pages with its own C code; use cpu-native (or a dsa-*)"
        )
    if trial.detector == Backend.CPU_NATIVE:
        if "multifd" in caps.zero_page_detection:
            params["zero-page-detection"] = mode = "multifd"
        else:  # QEMU < 9.0: save_zero_page in the main migration thread
            mode = "legacy"
    else:
        paths = _dsa_paths(trial, caps)
        if caps.has("multifd-dsa-accel"):  # series v5 (on top of multifd zero page detection)
            params["multifd-dsa-accel"] = " ".join(paths)
            if "multifd" in caps.zero_page_detection:
                params["zero-page-detection"] = "multifd"
            mode = "multifd-dsa-accel"
        elif caps.has("accel-path") and "dsa-accel" in caps.zero_page_detection:  # later versions
            params["accel-path"] = [f"dsa:{p}" for p in paths]
            params["zero-page-detection"] = mode = "dsa-accel"
        else:
            raise _refuse(
                caps, "detector", trial.detector, "this QEMU has no DSA offload (multifd-dsa-accel or accel-path)"
            )
    if trial.packet_bytes != DEFAULT_PACKET_BYTES:
        if not caps.has("multifd-packet-size"):
            raise _refuse(
                caps, "packet_bytes", trial.packet_bytes, f"no multifd-packet-size: allowed is {DEFAULT_PACKET_BYTES}"
            )
        low, high = SERIES_PACKET_BYTES
        if not low <= trial.packet_bytes <= high:
            raise _refuse(caps, "packet_bytes", trial.packet_bytes, f"multifd-packet-size takes {low} to {high}")
        params["multifd-packet-size"] = both["multifd-packet-size"] = trial.packet_bytes
    if trial.force_normal_ratio > 0:
        percent = trial.force_normal_ratio * 100
        if not caps.has("multifd-normal-page-ratio"):
            raise _refuse(caps, "force_normal_ratio", trial.force_normal_ratio, "no multifd-normal-page-ratio")
        if abs(percent - round(percent)) > 1e-9:
            raise _refuse(
                caps, "force_normal_ratio", trial.force_normal_ratio, "multifd-normal-page-ratio is a whole percent"
            )
        params["multifd-normal-page-ratio"] = round(percent)
    missing = sorted(p for p in params if p not in caps.parameters)
    if missing:
        field = PARAMETER_FIELDS[missing[0]]
        raise _refuse(caps, field, getattr(trial, field), f"no migration parameter {missing[0]}")
    return MigrationPlan([{"capability": "multifd", "state": True}], params, both, mode)
