"""One parameter point of a migration experiment: a frozen, validated :class:`Trial`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from dsalab import validate
from dsalab.backends import DETECTORS as _DETECTORS
from dsalab.backends import Backend
from dsalab.buffers import check_page_size
from dsalab.device_spec import check_spec as check_device_spec
from dsalab.errors import InvalidArgument
from dsalab.units import parse_bytes
from dsalab.validate import MAX_SEED

#: how zero pages are found, and the backend label results carry (:class:`~dsalab.backends.Backend` members)
DETECTORS: tuple[str, ...] = _DETECTORS
#: completion modes of the DSA offload layer
COMPLETIONS = ("thread", "poll", "umwait")
#: largest guest a Trial describes, bytes (1 EiB: a model may predict guests larger than any one machine)
MAX_GUEST_BYTES = 1 << 60
#: largest page, bytes (x86's 1 GiB huge page)
#: largest bandwidth limit and dirty rate, bytes/s (256 TiB/s)
MAX_RATE_BYTES_PER_S = 1 << 48
#: largest I/O timeout, ms (one hour)
MAX_IO_TIMEOUT_MS = int(validate.LIMITS["io_timeout_ms"].high)


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
    batch_size : pages per DSA batch descriptor, 1..1024 (:data:`dsalab.validate.MAX_BATCH_SIZE`, the DSA spec's)
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
    prealloc : fault in the source and destination memory before the clock starts (QEMU's ``prealloc=on``), so
        that page faults in a fresh mapping are not counted as migration time; False measures a cold destination

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
    detector: str = Backend.CPU_NUMBA.value
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
    prealloc: bool = True

    def __post_init__(self) -> None:
        """Check and normalize every field by :data:`FIELD_RULES` (page_size first: other fields depend on it)."""
        values: dict[str, Any] = {}
        for name in ("page_size", *(n for n in FIELD_RULES if n != "page_size")):
            values[name] = FIELD_RULES[name](name, getattr(self, name), values)
            object.__setattr__(self, name, values[name])

    @property
    def packet_pages(self) -> int:
        """Pages per multifd packet."""
        return self.packet_bytes // self.page_size

    @property
    def device_specs(self) -> tuple[str, ...]:
        """The device specs this trial opens (a count becomes that many default devices of its detector)."""
        if isinstance(self.devices, tuple):
            return self.devices
        if self.detector == Backend.DSA_HARDWARE:
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


#: how a Trial refuses a value
_MESSAGE = "Trial field {name}={value} is not allowed: allowed is {allowed}"

#: a field's rule: (field name, value as given, the fields checked so far) -> the value as stored
Rule = Callable[[str, object, Mapping[str, Any]], Any]


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        validate.refuse(name, value, allowed, message=_MESSAGE)


def _limited(name: str, value: object, _: Mapping[str, Any]) -> int | float:
    """A number within :data:`dsalab.validate.LIMITS` of the field's name."""
    return validate.check(name, value, message=_MESSAGE)


def _choice(options: tuple[str, ...]) -> Rule:
    """One of ``options`` (any str subclass, e.g. numpy.str_, stored as str)."""

    def rule(name: str, value: object, _: Mapping[str, Any]) -> str:
        _require(isinstance(value, str) and value in options, name, value, ", ".join(options))
        return str(value)

    return rule


def _page_size(name: str, value: object, _: Mapping[str, Any]) -> int:
    try:
        return check_page_size(value)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"Trial field {exc}") from None


def _guest_bytes(name: str, value: object, done: Mapping[str, Any]) -> int:
    n, ps = parse_bytes(value, name), done["page_size"]
    allowed = f"a positive multiple of page_size ({ps}) up to {MAX_GUEST_BYTES} (1 EiB)"
    _require(0 < n <= MAX_GUEST_BYTES and n % ps == 0, name, n, allowed)
    return n


def _packet_bytes(name: str, value: object, done: Mapping[str, Any]) -> int:
    n, ps = parse_bytes(value, name), done["page_size"]
    allowed = f"a multiple of page_size ({ps}) from {ps} to {65536 * ps} bytes"
    _require(n >= ps and n % ps == 0 and n // ps <= 65536, name, n, allowed)
    return n


def _rate(what: str) -> Rule:
    """A rate in bytes/s (a size string accepted), 0 meaning ``what``."""

    def rule(name: str, value: object, _: Mapping[str, Any]) -> int:
        n = parse_bytes(value, name)
        _require(0 <= n <= MAX_RATE_BYTES_PER_S, name, n, f"bytes/s >= 0 ({what}), at most 2**48")
        return n

    return rule


def _devices(name: str, value: object, _: Mapping[str, Any]) -> int | tuple[str, ...]:
    if isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, tuple):
        return validate.check(name, value, message=_MESSAGE)
    ok = len(value) >= 1 and all(isinstance(d, str) and d for d in value)
    _require(ok, name, value, "a count >= 1 or a non-empty tuple of device spec strings")
    for spec in value:  # by shape only: whether a queue path exists is checked when it is opened
        try:
            check_device_spec(spec)
        except InvalidArgument as exc:
            raise InvalidArgument(f"Trial field devices: {exc}") from None
    return tuple(str(d) for d in value)


def _flag(name: str, value: object, _: Mapping[str, Any]) -> bool:
    _require(isinstance(value, bool | np.bool_), name, value, "True or False")
    return bool(value)


#: field -> its rule: how a value given to :class:`Trial` is checked and stored (limits in :mod:`dsalab.validate`)
FIELD_RULES: dict[str, Rule] = {
    "guest_bytes": _guest_bytes,
    "page_size": _page_size,
    "normal_ratio": _limited,
    "force_normal_ratio": _limited,
    "channels": _limited,
    "packet_bytes": _packet_bytes,
    "detector": _choice(DETECTORS),
    "devices": _devices,
    "batch_size": _limited,
    "completion": _choice(COMPLETIONS),
    "cpu_fraction": _limited,
    "max_bandwidth_bytes": _rate("0 = unlimited"),
    "dirty_rate_bytes_per_s": _rate("0 = idle guest"),
    "downtime_limit_ms": _limited,
    "max_iterations": _limited,
    "seed": _limited,
    "io_timeout_ms": _limited,
    "huge_pages": _flag,
    "prealloc": _flag,
}
