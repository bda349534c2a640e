"""The values of one swept parameter of a sweep file: a list as is, or a range table expanded (split from
:mod:`dsalab.sweepfile`, which uses it; errors go through the caller's ``err``, which names the file and key)."""

from __future__ import annotations

import math
from typing import Any

from dsalab import validate

#: most values of one swept parameter (a list, or a range counted before it is expanded)
MAX_VALUES = 10_000
#: keys of a range table
RANGE_KEYS = ("start", "stop", "step", "factor")


def values(spec: object, err) -> list[Any]:
    """The values of one swept parameter: a list as is, or a range table expanded (stop included).

    A range's start, stop and step/factor must be finite numbers (or size strings); it must hold at least one
    value and at most :data:`MAX_VALUES` (counted before anything is expanded).
    """
    if isinstance(spec, list):
        if not spec:
            raise err("the list of values is empty; give at least one value")
        if len(spec) > MAX_VALUES:
            raise err(f"the list has {len(spec)} values; at most {MAX_VALUES} are allowed")
        return spec
    if not isinstance(spec, dict):
        raise err(
            f"{short(spec)} is not allowed; give a list of values or a range table "
            "{ start = A, stop = B, step = S } or { start = A, stop = B, factor = F }"
        )
    unknown = [k for k in spec if k not in RANGE_KEYS]
    if unknown:
        raise err(f"unknown range key {short(unknown[0])}; allowed: {', '.join(RANGE_KEYS)}")
    if "start" not in spec or "stop" not in spec or ("step" in spec) == ("factor" in spec):
        raise err("a range needs start, stop and exactly one of step (arithmetic) or factor (geometric)")
    from dsalab.units import parse_bytes

    def number(key: str) -> int | float:
        v = spec[key]
        if isinstance(v, str):  # sizes such as "64KiB"
            try:
                return parse_bytes(v, f"range {key}")
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise err(str(exc)) from None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise err(f"range {key}={short(v)} is not allowed; it must be a number or a size string like '64KiB'")
        if isinstance(v, float) and not math.isfinite(v):
            raise err(f"range {key}={v!r} is not allowed; it must be a finite number")
        return v

    start, stop = number("start"), number("stop")
    if "step" in spec:
        step = number("step")
        if step <= 0:
            raise err(f"range step={step!r} is not allowed; it must be > 0")
        if stop < start:
            raise err(f"range start={start!r}, stop={stop!r} is empty; it needs stop >= start")
        span = _quotient(stop - start, step)
        if not span < MAX_VALUES:
            raise err(
                f"range start={start!r}, stop={stop!r}, step={step!r} has more than {MAX_VALUES} values; "
                f"at most {MAX_VALUES} are allowed"
            )
        n = math.floor(span + 1e-9) + 1
        if all(isinstance(x, int) for x in (start, step)):
            return [start + i * step for i in range(n)]
        return [round(start + i * step, 12) for i in range(n)]
    factor = number("factor")
    if factor <= 1:
        raise err(f"range factor={factor!r} is not allowed; it must be > 1")
    if start <= 0:
        raise err(f"range start={start!r} is not allowed with a factor; it must be > 0")
    if stop < start:
        raise err(f"range start={start!r}, stop={stop!r} is empty; it needs stop >= start")
    count = math.log(_quotient(stop, start)) / math.log(factor) if stop > start else 0.0
    if not count < MAX_VALUES:
        raise err(
            f"range start={start!r}, stop={stop!r}, factor={factor!r} has more than {MAX_VALUES} values; "
            f"at most {MAX_VALUES} are allowed"
        )
    out: list[Any] = []
    v = start
    while v <= stop * (1 + 1e-12) and len(out) <= MAX_VALUES:
        out.append(v)
        v = v * factor
    return out


def _quotient(a: int | float, b: int | float) -> float:
    """``a / b`` as a float, ``inf`` where it is too large for one (huge TOML integers)."""
    try:
        return a / b
    except OverflowError:
        return math.inf


def short(value: object, limit: int = 80) -> str:
    """``repr`` of a value, cut to ``limit`` characters (error messages stay one short line)."""
    return validate.short_repr(value, limit)
