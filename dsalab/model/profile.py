"""Hardware profiles: a host, its network and its DSA devices, every number with its unit and its source.

A profile is a TOML file (``data/hardware/*.toml``)::

    [profile]
    name = "spr-8457c-dsa"
    description = "..."

    [host]
    cores = { value = 96, unit = "cores", source = "Intel ARK, Xeon Platinum 8457C: 48 cores x 2 sockets" }
    main_page = { value = 180, unit = "ns/page", source = "fitted: seed_cpu_runtime.csv, mode cpu" }

    [host.zero_check.cpu-numba]
    zero_page = { value = 240, unit = "ns/page", source = "dsalab calibrate" }
    ...

    [dsa]
    throughput = { transfer = [256, 1024, 4096], value = [6, 28, 30], unit = "GB/s", source = "..." }

:data:`SPEC` lists every key, its kind (the units it may be written in), what it means and what is allowed.
:meth:`HardwareProfile.load` refuses a missing or unknown key, a negative cost or an unknown unit with an error
naming the file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import pathlib
import tomllib
from collections.abc import Mapping
from typing import Any

from dsalab.backends import Backend
from dsalab.errors import InvalidArgument
from dsalab.model.quantities import KINDS, Quantity

#: detectors whose CPU costs a profile gives (``host.zero_check.<detector>``)
CPU_DETECTORS = (Backend.CPU_NUMBA.value, Backend.CPU_NATIVE.value)
#: how the DSA offload layer submits descriptors, and the profile key of each path's cost
SUBMIT_PATHS = {"enqcmd": "submit_enqcmd", "movdir64b": "submit_movdir64b", "write": "submit_write"}


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of a profile: its kind (:data:`dsalab.model.quantities.KINDS`, or ``bool`` / ``choice`` /
    ``curve``), what it means, and the smallest value allowed (for numbers)."""

    kind: str
    meaning: str
    low: float = 0.0
    positive: bool = False
    choices: tuple[str, ...] = ()


#: every key of a profile outside ``host.zero_check`` (which has :data:`ZERO_CHECK` per detector)
SPEC: dict[str, Key] = {
    "host.cores": Key("count", "cores the migration's threads may run on", 1, True),
    "host.memory_read_bandwidth": Key("rate", "memory read bandwidth of the host (one socket)", positive=True),
    "host.page_bytes": Key("size", "page size the per-page costs were measured at", 1, True),
    "host.main_page": Key("time/page", "live_migration CPU per guest page (walk, queue the page)"),
    "host.main_packet": Key("time/packet", "live_migration CPU per packet handed to a sender"),
    "host.packet": Key("time/packet", "sender CPU per packet beyond detection and payload (header, offsets, call)"),
    "host.send_page": Key("time/page", "sender CPU per normal page sent, beyond its bytes"),
    "host.send_byte": Key("time/B", "sender CPU per payload byte sent"),
    "host.receive_page": Key("time/page", "receiver CPU per guest page in a packet (zero or normal)"),
    "host.receive_byte": Key("time/B", "receiver CPU per payload byte received and placed"),
    "host.receive_packet": Key("time/packet", "receiver CPU per packet"),
    "host.wakeup": Key("time/wakeup", "CPU of one blocking wait and wake-up of a thread (both sides)"),
    "network.bandwidth": Key("rate", "bandwidth of the migration network (all channels together)", positive=True),
    "network.message": Key("time/message", "time one packet's message adds on the network beyond its bytes"),
    "network.same_host": Key("bool", "source and destination share this host's cores (loopback)"),
    "dsa.devices": Key("count", "DSA devices the host has", 0),
    "dsa.engines_per_device": Key("count", "engines per device (the tenant model's engines)", 1, True),
    "dsa.work_queues": Key("count", "work queues per device (the tenant model's queues)", 1, True),
    "dsa.wq_entries": Key("count", "work-queue entries per device, all queues together", 1, True),
    "dsa.max_batch": Key("count", "most descriptors in one batch", 1, True),
    "dsa.descriptor_bytes": Key("size", "bytes of one descriptor (recorded; not in the model's costs)", 1, True),
    "dsa.completion_record_bytes": Key(
        "size", "bytes of one completion record (recorded; not in the model's costs)", 1, True
    ),
    "dsa.throughput": Key("curve", "one device's compare-value throughput against transfer size"),
    "dsa.completion_latency": Key("time", "fixed device latency of one submitted descriptor (batch or single)"),
    "dsa.prepare_descriptor": Key("time/descriptor", "CPU to fill one descriptor of a batch"),
    "dsa.submit_enqcmd": Key("time/submission", "CPU of one ENQCMD submission (shared work queue)"),
    "dsa.submit_movdir64b": Key("time/submission", "CPU of one MOVDIR64B submission (dedicated work queue)"),
    "dsa.submit_write": Key("time/submission", "CPU of one write() submission to the idxd character device"),
    "dsa.submit_path": Key("choice", "how descriptors are submitted", choices=tuple(SUBMIT_PATHS)),
    "dsa.poll": Key("time/poll", "CPU of one poll of a completion record"),
    "dsa.busy_poll": Key("bool", "the completion thread busy-polls while work is outstanding"),
}
#: optional keys outside ``host.zero_check`` (a profile without one reads as :data:`OPTIONAL_DEFAULTS` says)
OPTIONAL: dict[str, Key] = {
    "host.send_parallel": Key(
        "fraction",
        "sender CPU per normal page sent (its bytes and the rest) when two or more senders share the cores, as a "
        "fraction of one lone sender's",
        positive=True,
    ),
}
#: canonical value of an optional key that a profile leaves out
OPTIONAL_DEFAULTS: dict[str, float] = {"host.send_parallel": 1.0}
#: keys of each ``host.zero_check.<detector>`` table
ZERO_CHECK: dict[str, Key] = {
    "zero_page": Key("time/page", "CPU to find that a zero page is zero (reads the whole page)"),
    "normal_page": Key("time/page", "CPU to find that a normal page is not zero (stops at its first non-zero byte)"),
}
#: optional keys of a ``host.zero_check.<detector>`` table (0 where absent)
ZERO_CHECK_OPTIONAL: dict[str, Key] = {
    "boundary": Key(
        "time/page",
        "extra CPU to check a zero page that follows a normal page (the memory stream restarts), per such page",
    ),
}


@dataclasses.dataclass(frozen=True)
class Curve:
    """A throughput curve: bytes/s at each transfer size (bytes, increasing); read between points on a log-size
    scale and held flat beyond the ends."""

    transfer_bytes: tuple[float, ...]
    bytes_per_s: tuple[float, ...]
    unit: str
    written: tuple[float, ...]
    source: str

    def at(self, transfer_bytes: float) -> float:
        """Throughput at ``transfer_bytes``, bytes/s."""
        xs, ys = self.transfer_bytes, self.bytes_per_s
        if transfer_bytes <= xs[0]:
            return ys[0]
        if transfer_bytes >= xs[-1]:
            return ys[-1]
        for i in range(1, len(xs)):
            if transfer_bytes <= xs[i]:
                f = math.log(transfer_bytes / xs[i - 1]) / math.log(xs[i] / xs[i - 1])
                return ys[i - 1] + f * (ys[i] - ys[i - 1])
        return ys[-1]  # not reached

    def to_toml(self) -> dict[str, object]:
        """The inline table a profile file holds."""
        return {
            "transfer": [int(x) for x in self.transfer_bytes],
            "value": list(self.written),
            "unit": self.unit,
            "source": self.source,
        }


@dataclasses.dataclass(frozen=True)
class Setting:
    """A flag or a choice of a profile, with its source."""

    value: bool | str
    source: str

    def to_toml(self) -> dict[str, object]:
        """The inline table a profile file holds."""
        return {"value": self.value, "source": self.source}


Entry = Quantity | Curve | Setting


@dataclasses.dataclass(frozen=True)
class HardwareProfile:
    """A host, its network and DSA devices (see the module docstring); ``entries`` maps dotted keys
    (``"host.main_page"``, ``"host.zero_check.cpu-numba.zero_page"``) to their quantities, in canonical units
    (ns, bytes, bytes/s). ``about`` holds the ``[profile]`` table (name, description, provenance)."""

    name: str
    entries: Mapping[str, Entry]
    about: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    path: str = ""

    @functools.cached_property
    def _numbers(self) -> dict[str, float]:
        return OPTIONAL_DEFAULTS | {k: e.value for k, e in self.entries.items() if isinstance(e, Quantity)}

    def __getitem__(self, key: str) -> float:
        """The value of a number in its canonical unit (ns, bytes, bytes/s, count)."""
        try:
            return self._numbers[key]
        except KeyError:
            if key in self.entries:
                raise InvalidArgument(f"profile {self.name}: {key} is not a number") from None
            raise

    def flag(self, key: str) -> bool | str:
        """The value of a flag or choice (``network.same_host``, ``dsa.busy_poll``, ``dsa.submit_path``)."""
        entry = self.entries[key]
        if not isinstance(entry, Setting):
            raise InvalidArgument(f"profile {self.name}: {key} is not a flag or choice")
        return entry.value

    @property
    def throughput(self) -> Curve:
        """One device's throughput curve."""
        curve = self.entries["dsa.throughput"]
        assert isinstance(curve, Curve)
        return curve

    @functools.cached_property
    def detectors(self) -> tuple[str, ...]:
        """The CPU detectors this profile has costs for."""
        return tuple(d for d in CPU_DETECTORS if f"host.zero_check.{d}.zero_page" in self.entries)

    def source(self, key: str) -> str:
        """Where the number of ``key`` comes from."""
        return self.entries[key].source

    def replace(self, name: str | None = None, **values: float | bool | str) -> HardwareProfile:
        """A copy with some entries changed (dotted keys given with ``__`` for ``.``, values in canonical units:
        ``profile.replace(dsa__devices=4)``); changed entries say so in their source."""
        entries = dict(self.entries)
        for raw, value in values.items():
            key = raw.replace("__", ".")
            old = entries.get(key)
            if old is None:
                raise InvalidArgument(f"profile {self.name}: no key {key}; allowed: {', '.join(sorted(entries))}")
            note = "changed for a what-if"
            if isinstance(old, Quantity):
                if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                    raise InvalidArgument(f"profile {self.name}: {key}={value!r} must be a finite number")
                _check_number(self.name, key, _spec(key), float(value))
                unit = KINDS[_spec(key).kind]
                entries[key] = Quantity(float(value), old.unit, unit.from_canonical(value, old.unit), note)
            elif isinstance(old, Setting):
                entries[key] = Setting(_check_setting(self.name, key, {"value": value}).value, note)
            else:
                raise InvalidArgument(f"profile {self.name}: {key} cannot be replaced this way")
        return HardwareProfile(name or self.name, entries, dict(self.about), "")

    def table(self):
        """Every entry as a ``pandas.DataFrame``: key, value and unit as written, canonical value, source."""
        import pandas as pd

        rows = []
        for key, e in self.entries.items():
            if isinstance(e, Quantity):
                rows.append((key, e.written, e.unit, e.value, e.source))
            elif isinstance(e, Curve):
                written = ", ".join(f"{x:g} B: {y:g}" for x, y in zip(e.transfer_bytes, e.written, strict=True))
                rows.append((key, written, e.unit, None, e.source))
            else:
                rows.append((key, e.value, "", None, e.source))
        return pd.DataFrame(rows, columns=["key", "value", "unit", "canonical", "source"])

    def with_throughput(self, factor: float) -> HardwareProfile:
        """A copy whose devices are ``factor`` times as fast at every transfer size (a what-if)."""
        if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 0):
            raise InvalidArgument(f"throughput factor={factor!r} is not allowed: allowed is a number > 0")
        c = self.throughput
        note = f"{c.source}; x {factor:g} for a what-if"
        curve = Curve(
            c.transfer_bytes,
            tuple(y * factor for y in c.bytes_per_s),
            c.unit,
            tuple(w * factor for w in c.written),
            note,
        )
        return HardwareProfile(self.name, {**self.entries, "dsa.throughput": curve}, dict(self.about), "")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HardwareProfile:
        """Read and check a profile file; errors name the file, the key and what is allowed."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise InvalidArgument(f"hardware profile {path!r} does not exist; see data/hardware/*.toml") from None
        except tomllib.TOMLDecodeError as e:
            raise InvalidArgument(f"hardware profile {path}: not valid TOML: {e}") from None
        except OSError as e:
            raise InvalidArgument(f"hardware profile {path!r} cannot be read: {e.strerror or e}") from None
        return cls.from_dict(doc, path)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "profile") -> HardwareProfile:
        """A profile from a parsed TOML document (``where`` names it in errors)."""
        about = doc.get("profile")
        if not isinstance(about, Mapping) or not isinstance(about.get("name"), str) or not about["name"]:
            raise InvalidArgument(f'{where}: needs a [profile] table with name = "..."')
        flat = _flatten({k: v for k, v in doc.items() if k != "profile"})
        entries: dict[str, Entry] = {}
        for key, raw in flat.items():
            entries[key] = _entry(where, key, raw)
        missing = sorted(set(SPEC) - set(entries))
        if missing:
            wanted = "; ".join(
                f"{k} ({', '.join(KINDS[SPEC[k].kind].units) if SPEC[k].kind in KINDS else SPEC[k].kind})"
                for k in missing
            )
            raise InvalidArgument(f"{where}: missing keys {wanted}; every key of SPEC is required")
        for d in CPU_DETECTORS:
            half = [f"host.zero_check.{d}.{z}" for z in ZERO_CHECK if f"host.zero_check.{d}.{z}" not in entries]
            if 0 < len(half) < len(ZERO_CHECK):
                raise InvalidArgument(
                    f"{where}: missing keys {', '.join(half)}; a zero_check table needs {list(ZERO_CHECK)}"
                )
        if not any(f"host.zero_check.{d}.zero_page" in entries for d in CPU_DETECTORS):
            raise InvalidArgument(f"{where}: needs [host.zero_check.<detector>] for one of {', '.join(CPU_DETECTORS)}")
        return cls(about["name"], entries, dict(about), where if where.endswith(".toml") else "")

    def to_toml(self) -> str:
        """The profile as TOML text (what :meth:`load` reads)."""
        import tomli_w

        doc: dict[str, Any] = {"profile": dict(self.about)}
        for key, entry in self.entries.items():
            *parents, leaf = key.split(".")
            table = doc
            for p in parents:
                table = table.setdefault(p, {})
            table[leaf] = entry.to_toml()
        return tomli_w.dumps(doc)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the profile to ``path`` (through a temporary file and a rename)."""
        text = self.to_toml()
        tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)


def find(spec: str | os.PathLike[str]) -> pathlib.Path:
    """The file of a profile given as a path, or as the bare name of a shipped profile (``"spr-8457c-dsa"`` ->
    ``data/hardware/spr-8457c-dsa.toml``)."""
    path = pathlib.Path(spec)
    if not path.exists() and path.suffix == "" and path.name == os.fspath(spec):
        from dsalab import reference  # deferred: pandas is not needed to read a profile

        shipped = reference.HARDWARE_DIR / f"{path.name}.toml"
        if shipped.exists():
            return shipped
    return path


def load(profile: HardwareProfile | str | os.PathLike[str]) -> HardwareProfile:
    """``profile`` itself, or the profile read from its path (or shipped name, see :func:`find`)."""
    return profile if isinstance(profile, HardwareProfile) else HardwareProfile.load(find(profile))


def _allowed(key: Key) -> str:
    """What a key's value may be: its units, or its kind."""
    if key.kind in KINDS:
        return "units " + ", ".join(KINDS[key.kind].units)
    return ", ".join(key.choices) if key.choices else key.kind


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> leaves (an inline table with ``value`` or ``transfer`` is a leaf)."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and "value" not in v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _spec(key: str) -> Key:
    parts = key.split(".")
    if len(parts) == 4 and parts[:2] == ["host", "zero_check"] and parts[2] in CPU_DETECTORS:
        spec = ZERO_CHECK.get(parts[3]) or ZERO_CHECK_OPTIONAL.get(parts[3])
        if spec is not None:
            return spec
    spec = SPEC.get(key) or OPTIONAL.get(key)
    if spec is None:
        tables = [*ZERO_CHECK, *ZERO_CHECK_OPTIONAL]
        allowed = ", ".join([*SPEC, *OPTIONAL, *(f"host.zero_check.<{'|'.join(CPU_DETECTORS)}>.{z}" for z in tables)])
        raise InvalidArgument(f"unknown key {key!r:.80}; allowed: {allowed}")
    return spec


def _entry(where: str, key: str, raw: Any) -> Entry:
    try:
        spec = _spec(key)
    except InvalidArgument as e:
        raise InvalidArgument(f"{where}: {e}") from None
    if not isinstance(raw, Mapping) or "source" not in raw or not isinstance(raw["source"], str):
        raise InvalidArgument(
            f'{where}: key {key} must be an inline table {{value = ..., unit = "...", source = "..."}}, got {raw!r:.80}'
        )
    if not raw["source"].strip():
        raise InvalidArgument(f"{where}: key {key} must say where its number comes from: source is empty")
    extra = set(raw) - {"value", "unit", "source", "transfer"}
    if extra:
        raise InvalidArgument(f"{where}: key {key} has unknown fields {sorted(extra)}; allowed: value, unit, source")
    if spec.kind in ("bool", "choice"):
        return _check_setting(where, key, raw)
    if spec.kind == "curve":
        return _curve(where, key, raw)
    value, unit = raw.get("value"), raw.get("unit")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{where}: key {key} value={value!r:.40} must be a finite number")
    if not isinstance(unit, str):
        raise InvalidArgument(f"{where}: key {key} needs a unit; allowed: {', '.join(KINDS[spec.kind].units)}")
    q = Quantity.of(spec.kind, value, unit, raw["source"], f"{where}: key {key}")
    _check_number(where, key, spec, q.value)
    return q


def _check_number(where: str, key: str, spec: Key, value: float) -> None:
    if value < spec.low or (spec.positive and value <= 0):
        allowed = f"> {spec.low:g}" if spec.positive and spec.low == 0 else f">= {spec.low:g}"
        raise InvalidArgument(f"{where}: key {key} = {value:g} is not allowed: allowed is {allowed} ({spec.meaning})")
    if spec.kind == "count" and not float(value).is_integer():
        raise InvalidArgument(f"{where}: key {key} = {value:g} must be a whole number ({spec.meaning})")


def _check_setting(where: str, key: str, raw: Mapping[str, Any]) -> Setting:
    spec = _spec(key)
    value = raw.get("value")
    if spec.kind == "bool" and not isinstance(value, bool):
        raise InvalidArgument(f"{where}: key {key} value={value!r:.40} must be true or false ({spec.meaning})")
    if spec.kind == "choice" and value not in spec.choices:
        raise InvalidArgument(f"{where}: key {key} value={value!r:.40} is not allowed; allowed: {spec.choices}")
    return Setting(value, str(raw.get("source", "")))


def _curve(where: str, key: str, raw: Mapping[str, Any]) -> Curve:
    xs, ys, unit = raw.get("transfer"), raw.get("value"), raw.get("unit")
    ok = isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys) >= 1
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in xs + ys)
    if not ok:
        raise InvalidArgument(
            f"{where}: key {key} needs transfer = [bytes, ...] and value = [rate, ...] of the same length, "
            "finite numbers"
        )
    if any(b <= a for a, b in itertools.pairwise(xs)) or xs[0] <= 0 or any(y <= 0 for y in ys):
        raise InvalidArgument(f"{where}: key {key}: transfer sizes must increase from > 0 and rates be > 0")
    rate = KINDS["rate"]
    converted = tuple(rate.to_canonical(float(y), str(unit), f"{where}: key {key}") for y in ys)
    return Curve(tuple(float(x) for x in xs), converted, str(unit), tuple(float(y) for y in ys), raw["source"])
