"""One parameter point of a migration experiment: a frozen, validated :class:`Trial`."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from dsalab.buffers import check_page_size
from dsalab.device_spec import check_spec as check_device_spec
from dsalab.errors import InvalidArgument
from dsalab.units import parse_bytes

#: how zero pages are found, and the backend label results carry
DETECTORS = ("cpu-numba", "cpu-native", "dsa-emulated", "dsa-hardware")
#: completion modes of the DSA offload layer
COMPLETIONS = ("thread", "poll", "umwait")


@dataclasses.dataclass(frozen=True)
class Trial:
    """A migration trial: guest, network, detector and DSA settings. Units are in the names or below.

    Attributes
    ----------
    guest_bytes : guest RAM, bytes (a string like ``"4GiB"`` is accepted and converted)
    page_size : bytes per page (4096)
    normal_ratio : fraction of guest pages that are normal (non-zero), 0..1
    force_normal_ratio : fraction of the pages found zero that are sent as normal pages anyway, 0..1 (the seed's
        ``multifd-normal-page-ratio``, to load the network)
    channels : multifd channels (TCP connections and sender threads), 1..64
    packet_bytes : bytes of guest pages per multifd packet (default 512 KiB = 128 pages, the seed's
        ``multifd-packet-size``); a multiple of ``page_size``
    detector : how zero pages are found: ``cpu-numba``, ``cpu-native``, ``dsa-emulated``, ``dsa-hardware``
    devices : DSA devices: a count of default devices, or a tuple of device specs (``"emu:gbps=30"``,
        ``"/dev/dsa/wq0.0"``)
    batch_size : pages per DSA batch descriptor, 1..1024
    completion : DSA completion waiting: ``thread`` (a dsa_completion thread), ``poll``, ``umwait``
    cpu_fraction : fraction of each detection request done on the CPU instead of the device, 0..1
    max_bandwidth_bytes : migration bandwidth limit, bytes/s (0 = unlimited)
    dirty_rate_bytes_per_s : guest dirtying rate, bytes of pages per second (0 = idle guest)
    downtime_limit_ms : the final phase must fit in this at the measured bandwidth, ms (QEMU's default 300)
    max_iterations : pre-copy rounds at most before the final phase is forced (the trial then says it did not
        converge)
    seed : seed of guest memory, dirtying and injected faults
    io_timeout_ms : a channel that makes no progress for this long fails the trial, ms
    huge_pages : back guest memory with transparent huge pages
    """

    guest_bytes: int = 256 << 20
    page_size: int = 4096
    normal_ratio: float = 0.5
    force_normal_ratio: float = 0.0
    channels: int = 2
    packet_bytes: int = 512 << 10
    detector: str = "cpu-numba"
    devices: int | tuple[str, ...] = 1
    batch_size: int = 128
    completion: str = "thread"
    cpu_fraction: float = 0.0
    max_bandwidth_bytes: int = 0
    dirty_rate_bytes_per_s: int = 0
    downtime_limit_ms: float = 300.0
    max_iterations: int = 30
    seed: int = 0
    io_timeout_ms: int = 30000
    huge_pages: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "guest_bytes", parse_bytes(self.guest_bytes, "guest_bytes"))
        set_(self, "packet_bytes", parse_bytes(self.packet_bytes, "packet_bytes"))
        set_(self, "max_bandwidth_bytes", parse_bytes(self.max_bandwidth_bytes, "max_bandwidth_bytes"))
        set_(self, "dirty_rate_bytes_per_s", parse_bytes(self.dirty_rate_bytes_per_s, "dirty_rate_bytes_per_s"))
        try:
            check_page_size(self.page_size)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"Trial field {exc}") from None
        ps = self.page_size
        _require(
            self.guest_bytes > 0 and self.guest_bytes % ps == 0,
            "guest_bytes",
            self.guest_bytes,
            f"a positive multiple of page_size ({ps})",
        )
        for name in ("normal_ratio", "force_normal_ratio", "cpu_fraction"):
            value = getattr(self, name)
            _require(_is_number(value) and 0.0 <= value <= 1.0, name, value, "a number from 0.0 to 1.0")
            set_(self, name, float(value))
        _require(_is_int(self.channels) and 1 <= self.channels <= 64, "channels", self.channels, "an int from 1 to 64")
        _require(
            self.packet_bytes >= ps and self.packet_bytes % ps == 0 and self.packet_bytes // ps <= 65536,
            "packet_bytes",
            self.packet_bytes,
            f"a multiple of page_size ({ps}) from {ps} to {65536 * ps} bytes",
        )
        _require(self.detector in DETECTORS, "detector", self.detector, ", ".join(DETECTORS))
        if isinstance(self.devices, list):
            set_(self, "devices", tuple(self.devices))
        if isinstance(self.devices, tuple):
            _require(
                len(self.devices) >= 1 and all(isinstance(d, str) and d for d in self.devices),
                "devices",
                self.devices,
                "a count >= 1 or a non-empty tuple of device spec strings",
            )
            for spec in self.devices:  # by shape only: whether a queue path exists is checked when it is opened
                try:
                    check_device_spec(spec)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"Trial field devices: {exc}") from None
        else:
            _require(
                _is_int(self.devices) and 1 <= self.devices <= 64,
                "devices",
                self.devices,
                "a count from 1 to 64 or a tuple of device spec strings",
            )
        _require(
            _is_int(self.batch_size) and 1 <= self.batch_size <= 1024,
            "batch_size",
            self.batch_size,
            "an int from 1 to 1024",
        )
        _require(self.completion in COMPLETIONS, "completion", self.completion, ", ".join(COMPLETIONS))
        _require(
            self.max_bandwidth_bytes >= 0,
            "max_bandwidth_bytes",
            self.max_bandwidth_bytes,
            "bytes/s >= 0 (0 = unlimited)",
        )
        _require(
            self.dirty_rate_bytes_per_s >= 0,
            "dirty_rate_bytes_per_s",
            self.dirty_rate_bytes_per_s,
            "bytes/s >= 0 (0 = idle guest)",
        )
        _require(
            _is_number(self.downtime_limit_ms) and self.downtime_limit_ms > 0,
            "downtime_limit_ms",
            self.downtime_limit_ms,
            "a number of ms > 0",
        )
        _require(
            _is_int(self.max_iterations) and 1 <= self.max_iterations <= 10000,
            "max_iterations",
            self.max_iterations,
            "an int from 1 to 10000",
        )
        _require(_is_int(self.seed) and self.seed >= 0, "seed", self.seed, "an int >= 0")
        _require(
            _is_int(self.io_timeout_ms) and self.io_timeout_ms >= 100,
            "io_timeout_ms",
            self.io_timeout_ms,
            "an int of ms >= 100",
        )
        _require(isinstance(self.huge_pages, bool), "huge_pages", self.huge_pages, "True or False")

    @property
    def packet_pages(self) -> int:
        """Pages per multifd packet."""
        return self.packet_bytes // self.page_size

    @property
    def device_specs(self) -> tuple[str, ...]:
        """The device specs this trial opens (a count becomes that many default devices of its detector)."""
        if isinstance(self.devices, tuple):
            return self.devices
        if self.detector == "dsa-hardware":
            return ()  # discovered at run time
        return tuple(f"emu:seed={self.seed + i}" for i in range(self.devices))

    def replace(self, **changes: Any) -> Trial:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Fields as plain values (devices as a list when specs are given)."""
        d = dataclasses.asdict(self)
        if isinstance(self.devices, tuple):
            d["devices"] = list(self.devices)
        return d

    def to_json(self) -> str:
        """The trial as a JSON string (netCDF attributes cannot hold nested values)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """Names of every field, the names a sweep file may use."""
        return tuple(f.name for f in dataclasses.fields(cls))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise InvalidArgument(f"Trial field {name}={value!r} is not allowed: allowed is {allowed}")
