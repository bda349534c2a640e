"""Numbers with units, as hardware profiles write them: ``{value = 0.7, unit = "us", source = "..."}``.

Each quantity of a profile has a *kind* (a time, a time per page, a rate, a size, a count, a flag); a kind allows
a fixed set of units and converts them to one canonical unit (ns for times, bytes/s for rates, bytes for sizes).
A unit outside the set is an error that names it and lists what is allowed.
"""

from __future__ import annotations

import dataclasses

from dsalab.errors import InvalidArgument

#: time units -> ns
_TIME = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}
#: rate units -> bytes/s
_RATE = {
    "B/s": 1.0,
    "MB/s": 1e6,
    "GB/s": 1e9,
    "MiB/s": float(1 << 20),
    "GiB/s": float(1 << 30),
    "Mbit/s": 1e6 / 8,
    "Gbit/s": 1e9 / 8,
}
#: size units -> bytes
_SIZE = {"B": 1.0, "KiB": float(1 << 10), "MiB": float(1 << 20), "GiB": float(1 << 30)}
#: the things a cost may be per
PER = ("page", "packet", "descriptor", "message", "batch", "B", "poll", "wakeup", "submission")


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a quantity measures: its canonical unit and the units a profile may write it in (unit -> factor)."""

    canonical: str
    units: dict[str, float]

    def to_canonical(self, value: float, unit: str, where: str) -> float:
        """``value`` in ``unit`` converted to :attr:`canonical`; an unknown unit raises naming ``where``."""
        if unit not in self.units:
            raise InvalidArgument(f"{where}: unit {unit!r:.40} is not allowed; allowed: {', '.join(self.units)}")
        return value * self.units[unit]

    def from_canonical(self, value: float, unit: str) -> float:
        """The inverse of :meth:`to_canonical`."""
        return value / self.units[unit]


def _per(thing: str) -> Kind:
    return Kind(f"ns/{thing}", {f"{t}/{thing}": f for t, f in _TIME.items()})


#: every kind a profile uses, by name
KINDS: dict[str, Kind] = {
    "time": Kind("ns", dict(_TIME)),
    "rate": Kind("B/s", dict(_RATE)),
    "size": Kind("B", dict(_SIZE)),
    "count": Kind("count", {"count": 1.0, "cores": 1.0, "engines": 1.0, "entries": 1.0, "descriptors": 1.0}),
    "fraction": Kind("fraction", {"fraction": 1.0, "%": 0.01}),
    **{f"time/{t}": _per(t) for t in PER},
}


@dataclasses.dataclass(frozen=True)
class Quantity:
    """One number of a profile: its value in the canonical unit of its kind, the unit and value as written, and
    where the number comes from (a command that measured it, or a publication and where in it)."""

    value: float
    unit: str
    written: float
    source: str

    @classmethod
    def of(cls, kind: str, written: float, unit: str, source: str, where: str = "quantity") -> Quantity:
        """A quantity of ``kind`` written as ``written`` ``unit``."""
        return cls(KINDS[kind].to_canonical(float(written), unit, where), unit, float(written), source)

    def to_toml(self) -> dict[str, object]:
        """The inline table a profile file holds."""
        return {"value": self.written, "unit": self.unit, "source": self.source}
