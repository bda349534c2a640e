"""Sizes and rates written the way people write them: ``"4GiB"``, ``"512KiB"``, ``"1G"`` (binary, as QEMU)."""

from __future__ import annotations

import numbers
import re

from dsalab.errors import InvalidArgument, InvalidType

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tib": 1 << 40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}


def parse_bytes(value: object, name: str = "size") -> int:
    """Bytes from an int or a string such as ``"4GiB"``, ``"512 KiB"``, ``"1G"`` (K/M/G/T are binary, as in
    QEMU; kB/MB/GB/TB are decimal)."""
    if isinstance(value, bool):
        raise InvalidType(f"{name} must be a size in bytes (int) or a string like '4GiB', got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        raise InvalidType(
            f"{name} must be a size in bytes (int) or a string like '4GiB', got {type(value).__name__} {value!r}"
        )
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise InvalidArgument(
            f"{name}={value!r} is not a size; allowed: an int of bytes or a number with a unit "
            "(B, KiB, MiB, GiB, TiB, K, M, G, T binary; kB, MB, GB, TB decimal), e.g. '4GiB'"
        )
    size = float(m.group(1)) * _UNITS[unit]
    if not size.is_integer():
        raise InvalidArgument(f"{name}={value!r} is not a whole number of bytes")
    return int(size)


def format_bytes(n: float, *, whole: bool = False) -> str:
    """A byte count as people read it, in binary units (the largest the value reaches), one decimal:
    ``4294967296`` -> ``"4.0 GiB"``, ``1610612736`` -> ``"1.5 GiB"``, ``100`` -> ``"100 B"``. With ``whole=True`` a
    whole number of the unit shows no decimals (``524288`` -> ``"512 KiB"``), as tables and labels write sizes.
    The one formatter of sizes (messages, tables, labels)."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.0f} {unit}" if whole and float(value).is_integer() else f"{value:.1f} {unit}"
    return f"{int(n)} B"
