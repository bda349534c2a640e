"""Device spec strings, checked without opening anything: ``emu[:key=value,...]`` or ``/dev/dsa/wqX.Y[?write]``.

A light module (no native code, no numba): :class:`dsalab.migration.Trial` checks its device specs here when it
is built, and :func:`dsalab.devices.open_device` parses them here before it opens anything. Whether a queue path
exists, and is the character device of an idxd work queue, is checked when it is opened
(:func:`dsalab.discovery.check_queue_device`), since a trial may be described on another machine.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dsalab.errors import InvalidArgument

#: key -> (type, minimum, maximum, default, meaning) of the emulated device's spec
EMU_KEYS: dict[str, tuple[type, float, float, Any, str]] = {
    "engines": (int, 1, 64, 4, "engine threads"),
    "wq_size": (int, 1, 4096, 128, "work queue depth, descriptors"),
    "mode": (str, 0, 0, "shared", "shared (refuses when full, like ENQCMD) or dedicated (like MOVDIR64B)"),
    "gbps": (float, 0, 10000, 30.0, "timing model bandwidth, GB/s (0: no timing model)"),
    "latency_us": (float, 0, 1e6, 1.0, "timing model latency per submitted descriptor, us"),
    "fault_rate": (float, 0, 1, 0.0, "probability of a page fault per descriptor"),
    "queue_full_rate": (float, 0, 1, 0.0, "probability that a submission is refused as if the queue were full"),
    "seed": (int, 0, 2**63 - 1, 0, "seed of the injected faults"),
    "vanish_after": (int, 0, 2**63 - 1, 0, "the device disappears after this many descriptors (0: never)"),
    "max_batch": (int, 2, 4096, 1024, "descriptors per batch"),
    "priority": (
        str,
        0,
        0,
        "normal",
        "engine threads' priority: normal, idle (SCHED_IDLE: the host's threads first) or high (nice -10: the "
        "device's work first; needs CAP_SYS_NICE)",
    ),
}
MODES = ("shared", "dedicated")
#: the emulated engines' priorities, in the order of dsl_emu_config.priority (0, 1, 2)
PRIORITIES = ("normal", "idle", "high")
#: the allowed values of each str key
CHOICES: dict[str, tuple[str, ...]] = {"mode": MODES, "priority": PRIORITIES}
#: the name of a DSA work queue's character device (and of its sysfs directory): wq<device>.<queue>
QUEUE_NAME = re.compile(r"wq[0-9]{1,4}\.[0-9]{1,4}")
#: longest queue path accepted (Linux's PATH_MAX is 4096 bytes with its NUL)
MAX_PATH_BYTES = 4095
QUEUE_OPTIONS = ("", "write")
ALLOWED_SPECS = "'emu[:key=value,...]' or a path /dev/dsa/wqX.Y[?write]"


def _allowed_keys() -> str:
    return ", ".join(f"{k} ({t.__name__}, default {d})" for k, (t, _, _, d, _) in EMU_KEYS.items())


def parse_emu_spec(spec: str) -> dict[str, Any]:
    """The settings of an ``emu[:key=value,...]`` spec, defaults filled in; raises naming a bad key or value."""
    if not isinstance(spec, str):
        raise InvalidArgument(f"device spec must be a string ({ALLOWED_SPECS}), got {type(spec).__name__}")
    head, _, tail = spec.partition(":")
    if head != "emu":
        raise InvalidArgument(
            f"device spec {spec!r} is not an emulated device spec; allowed: 'emu' or 'emu:key=value,...'"
        )
    out = {k: d for k, (_, _, _, d, _) in EMU_KEYS.items()}
    for item in filter(None, (p.strip() for p in tail.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if key not in EMU_KEYS:
            raise InvalidArgument(f"device spec {spec!r}: unknown key {key!r}; allowed: {_allowed_keys()}")
        if not eq:
            raise InvalidArgument(f"device spec {spec!r}: {key!r} needs a value ({key}=...)")
        typ, lo, hi, _, meaning = EMU_KEYS[key]
        raw = raw.strip()
        if typ is str:
            if raw not in CHOICES[key]:
                raise InvalidArgument(
                    f"device spec {spec!r}: {key}={raw!r} is not allowed; allowed: {', '.join(CHOICES[key])}"
                )
            out[key] = raw
            continue
        try:
            value = typ(raw)
        except ValueError:
            raise InvalidArgument(
                f"device spec {spec!r}: {key}={raw!r} is not a{'n' if typ is int else ''} {typ.__name__}; "
                f"{key} is the {meaning}"
            ) from None
        if (isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi:
            raise InvalidArgument(
                f"device spec {spec!r}: {key}={raw} is out of range; allowed: {lo} to {hi} ({meaning})"
            )
        out[key] = value
    return out


def split_queue_spec(spec: str) -> tuple[str, bool]:
    """``(path, force_write)`` of a ``/dev/dsa/wqX.Y[?write]`` spec, checked by shape only (an absolute path
    whose last part is ``wqX.Y``, no NUL, at most 4095 bytes); raises naming what is wrong and what is allowed."""
    if not isinstance(spec, str):
        raise InvalidArgument(f"device spec must be a string ({ALLOWED_SPECS}), got {type(spec).__name__}")
    path, _, option = spec.partition("?")
    if not path.startswith("/"):
        raise InvalidArgument(f"device spec {spec!r} is not allowed; allowed: {ALLOWED_SPECS}")
    if option not in QUEUE_OPTIONS:
        raise InvalidArgument(f"device spec {spec!r}: option {option!r} is not allowed; allowed: ?write")
    if "\0" in path:
        raise InvalidArgument(f"device spec {spec!r}: the path holds a NUL character; allowed: {ALLOWED_SPECS}")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InvalidArgument(
            f"device spec {path[:40]!r}... is a path of {len(path)} characters; allowed: at most {MAX_PATH_BYTES} bytes"
        )
    name = path.rstrip("/").rpartition("/")[2]
    if path.endswith("/") or not QUEUE_NAME.fullmatch(name):
        raise InvalidArgument(
            f"device spec {spec!r}: {name!r} is not a work queue name; allowed: a path ending in wqX.Y "
            "(the idxd driver's character device, e.g. /dev/dsa/wq0.0), optionally with ?write"
        )
    return path, option == "write"


def check_spec(spec: object) -> str:
    """Check one device spec by shape, opening nothing; return it. Raises :class:`InvalidArgument` naming the
    spec and what is allowed (``emu[:key=value,...]`` with known keys and valid values, or
    ``/dev/dsa/wqX.Y[?write]``)."""
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument(f"device spec must be a non-empty string ({ALLOWED_SPECS}), got {spec!r}")
    if spec == "emu" or spec.startswith("emu:"):
        parse_emu_spec(spec)
    else:
        split_queue_spec(spec)
    return spec
