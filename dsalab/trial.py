"""One parameter point of a migration experiment: a frozen, validated :class:`Trial`."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any

import numpy as np

from dsalab.buffers import check_page_size
from dsalab.device_spec import check_spec as check_device_spec
from dsalab.errors import InvalidArgument
from dsalab.units import parse_bytes

#: how zero pages are found, and the backend label results carry
DETECTORS = ("cpu-numba", "cpu-native", "dsa-emulated", "dsa-hardware")
#: completion modes of the DSA offload layer
COMPLETIONS = ("thread", "poll", "umwait")
#: largest guest a Trial describes, bytes (1 EiB: a model may predict guests larger than any one machine)
MAX_GUEST_BYTES = 1 << 60
#: largest page, bytes (x86's 1 GiB huge page)
#: largest bandwidth limit and dirty rate, bytes/s (256 TiB/s)
MAX_RATE_BYTES_PER_S = 1 << 48
#: largest I/O timeout, ms (one hour)
MAX_IO_TIMEOUT_MS = 3_600_000
#: largest seed (the devices' seeds and NumPy's generators take 63 bits)
MAX_SEED = 2**63 - 1


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

    Every field is checked when the Trial is built: a bad value raises :class:`~dsalab.errors.InvalidArgument`
    or :class:`~dsalab.errors.InvalidType` naming the field, the value and what is allowed. Ints may be any
    integer type (NumPy's too) and numbers any finite real; they are stored as ``int`` / ``float``. Limits:
    ``guest_bytes`` <= :data:`MAX_GUEST_BYTES` (a Trial is a description: whether this machine can hold the
    guest is checked by :func:`~dsalab.migration.run_trial`), ``page_size`` <= :data:`dsalab.config.MAX_PAGE_SIZE`,
    rates <= :data:`MAX_RATE_BYTES_PER_S`, ``seed`` 0 to :data:`MAX_SEED`, ``io_timeout_ms`` 100 to
    :data:`MAX_IO_TIMEOUT_MS`.
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
        for name in ("guest_bytes", "packet_bytes", "max_bandwidth_bytes", "dirty_rate_bytes_per_s"):
            set_(self, name, parse_bytes(getattr(self, name), name))
        try:
            check_page_size(self.page_size)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"Trial field {exc}") from None
        ps = int(self.page_size)
        set_(self, "page_size", ps)
        _require(
            0 < self.guest_bytes <= MAX_GUEST_BYTES and self.guest_bytes % ps == 0,
            "guest_bytes",
            self.guest_bytes,
            f"a positive multiple of page_size ({ps}) up to {MAX_GUEST_BYTES} (1 EiB)",
        )
        for name in ("normal_ratio", "force_normal_ratio", "cpu_fraction"):
            set_(self, name, _real(self, name, 0.0, 1.0, "a number from 0.0 to 1.0"))
        set_(self, "channels", _int(self, "channels", 1, 64, "an int from 1 to 64"))
        _require(
            self.packet_bytes >= ps and self.packet_bytes % ps == 0 and self.packet_bytes // ps <= 65536,
            "packet_bytes",
            self.packet_bytes,
            f"a multiple of page_size ({ps}) from {ps} to {65536 * ps} bytes",
        )
        for name in ("detector", "completion"):
            value = getattr(self, name)
            if isinstance(value, str) and type(value) is not str:  # e.g. numpy.str_
                set_(self, name, str(value))
        _require(
            isinstance(self.detector, str) and self.detector in DETECTORS,
            "detector",
            self.detector,
            ", ".join(DETECTORS),
        )
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
        set_(self, "batch_size", _int(self, "batch_size", 1, 1024, "an int from 1 to 1024"))
        _require(
            isinstance(self.completion, str) and self.completion in COMPLETIONS,
            "completion",
            self.completion,
            ", ".join(COMPLETIONS),
        )
        for name, what in (("max_bandwidth_bytes", "0 = unlimited"), ("dirty_rate_bytes_per_s", "0 = idle guest")):
            value = getattr(self, name)
            _require(0 <= value <= MAX_RATE_BYTES_PER_S, name, value, f"bytes/s >= 0 ({what}), at most 2**48")
        set_(
            self,
            "downtime_limit_ms",
            _real(self, "downtime_limit_ms", 0.0, math.inf, "a finite number of ms > 0", low_open=True),
        )
        set_(self, "max_iterations", _int(self, "max_iterations", 1, 10000, "an int from 1 to 10000"))
        set_(self, "seed", _int(self, "seed", 0, MAX_SEED, "an int from 0 to 2**63-1"))
        set_(
            self,
            "io_timeout_ms",
            _int(self, "io_timeout_ms", 100, MAX_IO_TIMEOUT_MS, f"an int of ms from 100 to {MAX_IO_TIMEOUT_MS}"),
        )
        if isinstance(self.huge_pages, np.bool_):
            set_(self, "huge_pages", bool(self.huge_pages))
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
        return tuple(f"emu:seed={(self.seed + i) % (MAX_SEED + 1)}" for i in range(self.devices))

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


def _int(trial: Trial, name: str, low: int, high: int, allowed: str) -> int:
    """Field ``name`` as an int from ``low`` to ``high`` (any integer type but bool)."""
    value = getattr(trial, name)
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= int(value) <= high
    _require(ok, name, value, allowed)
    return int(value)


def _real(trial: Trial, name: str, low: float, high: float, allowed: str, *, low_open: bool = False) -> float:
    """Field ``name`` as a finite float from ``low`` to ``high`` (``low`` excluded with ``low_open``)."""
    value = getattr(trial, name)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        try:
            f = float(value)
        except (OverflowError, ValueError):  # an int too large for a float
            f = math.nan
        ok = math.isfinite(f) and (low < f if low_open else low <= f) and f <= high
    _require(ok, name, value, allowed)
    return f


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise InvalidArgument(f"Trial field {name}={_short_repr(value)} is not allowed: allowed is {allowed}")


def _short_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` for a one-line message: cut to ``limit`` characters, never raising."""
    try:
        text = repr(value)
    except Exception:  # a foreign object whose repr fails must not hide the error about it
        text = f"<{type(value).__name__} object>"
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
