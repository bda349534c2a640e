"""One rule and one limit per quantity, for every entry point that takes it (a leaf module: nothing heavy).

:class:`~dsalab.trial.Trial`, :class:`~dsalab.offload.Offloader` and :mod:`dsalab.sweepfile` check their numbers
here, so that the same quantity is accepted or refused alike everywhere:

- an int is any integer type but ``bool`` (Python's, NumPy's: ``numbers.Integral``) and is stored as ``int``;
- a real is any finite real but ``bool`` (``numbers.Real``; NaN and infinities refused) and is stored as ``float``;
- limits are those of :data:`LIMITS`, each with the reason it is true.

A refusal raises :class:`~dsalab.errors.InvalidArgument` with a one-line message naming the field, the value and
what is allowed; callers choose the framing (``message``) so that their messages stay as documented.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

from dsalab.errors import InvalidArgument

#: pages in one DSA batch descriptor at most: the DSA 1.0 spec's maximum batch size (GENCAP "maximum supported
#: batch size" is 1024 on every Sapphire/Emerald/Granite Rapids DSA; idxd exposes it as max_batch_size)
MAX_BATCH_SIZE = 1024
#: the seeds of devices and of NumPy's generators take 63 bits
MAX_SEED = 2**63 - 1


class Limit(NamedTuple):
    """The allowed range of one quantity: ``low`` .. ``high`` (``low`` excluded when ``low_open``)."""

    kind: type  #: int or float
    low: float
    high: float
    allowed: str  #: what is allowed, as messages say it
    low_open: bool = False


#: quantity -> its limit (one limit per quantity, whoever takes it)
LIMITS: dict[str, Limit] = {
    "batch_size": Limit(int, 1, MAX_BATCH_SIZE, f"an int from 1 to {MAX_BATCH_SIZE}"),
    "channels": Limit(int, 1, 64, "an int from 1 to 64"),
    "devices": Limit(int, 1, 64, "a count from 1 to 64 or a tuple of device spec strings"),
    "max_iterations": Limit(int, 1, 10000, "an int from 1 to 10000"),
    "seed": Limit(int, 0, MAX_SEED, "an int from 0 to 2**63-1"),
    "io_timeout_ms": Limit(int, 100, 3_600_000, "an int of ms from 100 to 3600000"),
    "normal_ratio": Limit(float, 0.0, 1.0, "a number from 0.0 to 1.0"),
    "force_normal_ratio": Limit(float, 0.0, 1.0, "a number from 0.0 to 1.0"),
    "cpu_fraction": Limit(float, 0.0, 1.0, "a number from 0.0 to 1.0"),
    "downtime_limit_ms": Limit(float, 0.0, math.inf, "a finite number of ms > 0", low_open=True),
    "max_retries": Limit(int, 0, 1_000_000, "an int >= 0"),
    "repeats": Limit(int, 1, 1000, "an int from 1 to 1000"),
    "warmups": Limit(int, 0, 100, "an int from 0 to 100"),
}

#: default framing of a refusal
MESSAGE = "{name}={value} is not allowed; allowed: {allowed}"


def is_int(value: object) -> bool:
    """Any integer type but bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A finite real number of any type but bool (NaN, infinities and reals too large for a float refused)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (OverflowError, ValueError, TypeError):
        return False


def within(value: object, limit: Limit) -> int | float | None:
    """``value`` as ``limit.kind`` when it follows the rule and lies within the limit, else None."""
    if limit.kind is int:
        if not is_int(value):
            return None
        v: int | float = int(value)  # type: ignore[arg-type]
    else:
        if not is_real(value):
            return None
        v = float(value)  # type: ignore[arg-type]
    low_ok = limit.low < v if limit.low_open else limit.low <= v
    return v if low_ok and v <= limit.high else None


def check(
    name: str, value: object, limit: Limit | None = None, *, message: str = MESSAGE, quantity: str | None = None
) -> int | float:
    """``value`` normalized (int or float) if allowed for ``name``; else :class:`InvalidArgument`.

    ``limit`` defaults to :data:`LIMITS`\\ [``quantity`` or ``name``]; ``message`` is a format string with
    ``{name}``, ``{value}`` (a short repr) and ``{allowed}``."""
    limit = limit or LIMITS[quantity or name]
    v = within(value, limit)
    if v is None:
        refuse(name, value, limit.allowed, message=message)
    return v  # type: ignore[return-value]


def refuse(name: str, value: object, allowed: str, *, message: str = MESSAGE) -> None:
    """Raise :class:`InvalidArgument` naming ``name``, ``value`` and what is ``allowed``."""
    raise InvalidArgument(message.format(name=name, value=short_repr(value), allowed=allowed))


def short_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` for a one-line message: cut to ``limit`` characters, never raising."""
    try:
        text = repr(value)
    except Exception:  # a foreign object whose repr fails must not hide the error about it
        text = f"<{type(value).__name__} object>"
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
