"""Sweep files: a TOML description of a parameter grid, checked completely before anything runs.

A sweep file names a base :class:`~dsalab.migration.Trial`, the Trial fields to sweep with their values, the
repeats, warm-ups, seed and runner::

    name = "batch-packet"          # used in result file names
    description = "what this sweep asks"   # optional
    runner = "engine"              # the multifd engine; "model" and "qemu" are not available yet
    repeats = 3                    # measured repeats of every grid point (the `repeat` dimension)
    warmups = 1                    # discarded passes over the grid before the measured repeats
    seed = 42                      # sweep seed: each trial's guest seed is derived from it and the repeat

    [base]                         # Trial fields shared by every point (sizes may be strings: "256MiB")
    guest_bytes = "256MiB"
    channels = 2

    [sweep]                        # one dimension per key, in this order; values as a list or a range
    detector = ["cpu-numba", "dsa-emulated"]
    batch_size = { start = 16, stop = 256, factor = 2 }   # 16, 32, 64, 128, 256 (stop included)
    packet_bytes = ["128KiB", "512KiB"]
    normal_ratio = { start = 0.0, stop = 1.0, step = 0.25 }

Every grid point's Trial is built up front, so a bad value fails before the first trial runs; every error is a
:class:`~dsalab.errors.SweepFileError` (one line) naming the file, the key, the value and what is allowed.

Limits: a range's start, stop and step/factor are finite numbers (or size strings), step > 0 or factor > 1, and
stop >= start (an empty range is an error); one parameter has at most :data:`MAX_VALUES` values (a range is counted
before it is expanded), the grid at most :data:`MAX_POINTS` points, the sweep at most :data:`MAX_TRIALS` trials
(points x (repeats + warm-ups)); ``seed`` is an int from 0 to 2**63 - 1 and ``name`` at most :data:`MAX_NAME`
characters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import pathlib
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from dsalab import validate
from dsalab.backends import Runner
from dsalab.errors import InvalidArgument, SweepFileError
from dsalab.trial import Trial

#: runners a sweep file may name today
RUNNERS: tuple[str, ...] = (Runner.ENGINE,)
#: runners planned but not available yet
FUTURE_RUNNERS: tuple[str, ...] = (Runner.MODEL, Runner.QEMU)
#: top-level keys: key -> (TOML type, what is allowed)
TOP_KEYS: dict[str, str] = {
    "name": "a string of 1 to 100 ASCII letters, digits, '-', '_' or '.'",
    "description": "a string",
    "runner": f"one of {', '.join(RUNNERS)}",
    "repeats": validate.LIMITS["repeats"].allowed,
    "warmups": validate.LIMITS["warmups"].allowed,
    "seed": validate.LIMITS["seed"].allowed,
    "base": "a table of Trial fields",
    "sweep": "a table: Trial field -> list of values or {start, stop, step|factor}",
}
#: Trial fields a sweep may set (the seed is derived from the top-level seed, per repeat)
SWEEPABLE = tuple(f for f in Trial.fields() if f != "seed")
#: keys of a range table
RANGE_KEYS = ("start", "stop", "step", "factor")
#: most values of one swept parameter (a list, or a range counted before it is expanded)
MAX_VALUES = 10_000
#: most points of the whole grid
MAX_POINTS = 100_000
#: most trials of a sweep: grid points x (repeats + warm-ups)
MAX_TRIALS = 100_000
#: longest sweep name (it is part of result file names)
MAX_NAME = 100
#: errors of building a Trial from a sweep file's values that mean "this value is not allowed"
_BAD_VALUE = (ValueError, TypeError, ArithmeticError)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file.

    Attributes
    ----------
    name : sweep name (result file names use it)
    path : the file it came from ("<string>" when parsed from text)
    text : the file's exact content (stored in every result dataset)
    runner : what runs a trial (``engine``)
    repeats : measured repeats per grid point
    warmups : discarded passes over the grid before the measured repeats
    seed : sweep seed; trial seeds derive from it and the repeat (:meth:`trial_seed`)
    base : Trial fields shared by every point, as written in the file
    params : swept Trial field -> its values, normalized as the Trial stores them (sizes in bytes), in file order
    description : free text
    """

    name: str
    path: str
    text: str
    runner: str
    repeats: int
    warmups: int
    seed: int
    base: Mapping[str, Any]
    params: Mapping[str, tuple[Any, ...]]
    description: str = ""

    @property
    def sha256(self) -> str:
        """SHA-256 of the file content, hex (names partial files; resume checks it)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def dims(self) -> tuple[str, ...]:
        """Swept parameters, in dimension order."""
        return tuple(self.params)

    @property
    def n_points(self) -> int:
        """Grid points (product of the value counts)."""
        return math.prod(len(v) for v in self.params.values())

    def points(self) -> Iterator[dict[str, Any]]:
        """Every grid point as {parameter: value}, the last parameter varying fastest."""
        names = list(self.params)
        for combo in itertools.product(*self.params.values()):
            yield dict(zip(names, combo, strict=True))

    def trial_seed(self, repeat: int, warmup: bool = False) -> int:
        """Guest seed of a repeat (same for every point of the repeat, so points compare on the same memory),
        derived reproducibly from the sweep seed with NumPy's ``SeedSequence``; warm-ups get their own seeds."""
        entropy = [self.seed, 1 if warmup else 0, repeat]
        return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])

    def trial(self, point: Mapping[str, Any], repeat: int, warmup: bool = False) -> Trial:
        """The Trial of a grid point and repeat."""
        return Trial(**{**self.base, **point, "seed": self.trial_seed(repeat, warmup)})


def load(path: str | pathlib.Path) -> SweepSpec:
    """Read and validate a sweep file (raises :class:`SweepFileError` naming the file, key and what is allowed)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SweepFileError(f"sweep file {path}: cannot be read ({exc.strerror or exc})") from None
    return loads(text, str(path))


def loads(text: str, path: str = "<string>") -> SweepSpec:
    """Validate sweep-file text; ``path`` only names it in errors."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(f"sweep file {path}: not valid TOML: {exc}") from None

    def fail(key: str, message: str) -> SweepFileError:
        return SweepFileError(f"sweep file {path}: {key}: {message}")

    unknown = [k for k in doc if k not in TOP_KEYS]
    if unknown:
        raise fail(_key(unknown[0]), f"unknown key; allowed keys are {', '.join(TOP_KEYS)}")
    for key in ("name", "sweep"):
        if key not in doc:
            raise fail(key, f"missing; it must be {TOP_KEYS[key]}")

    name = doc["name"]
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= MAX_NAME
        or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
        or name in (".", "..")
    ):
        raise fail("name", f"{_short(name)} is not allowed; it must be {TOP_KEYS['name']}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise fail("description", f"{_short(description)} is not allowed; it must be a string")
    runner = doc.get("runner", Runner.ENGINE.value)
    if isinstance(runner, str) and runner in FUTURE_RUNNERS:
        raise fail("runner", f"{runner!r} is not available yet; allowed: {', '.join(RUNNERS)}")
    if not isinstance(runner, str) or runner not in RUNNERS:
        raise fail("runner", f"{_short(runner)} is not allowed; allowed: {', '.join(RUNNERS)}")
    repeats = _int("repeats", doc.get("repeats", 1), fail)
    warmups = _int("warmups", doc.get("warmups", 0), fail)
    seed = _int("seed", doc.get("seed", 0), fail)

    base = doc.get("base", {})
    if not isinstance(base, dict):
        raise fail("base", f"must be {TOP_KEYS['base']}, got {type(base).__name__}")
    for key in base:
        _check_field(key, lambda m, k=key: fail(f"base.{_key(k)}", m))
    try:
        base_trial = Trial(**base)
    except _BAD_VALUE as exc:
        raise fail("base", str(exc)) from None

    sweep = doc["sweep"]
    if not isinstance(sweep, dict) or not sweep:
        raise fail("sweep", f"must be a non-empty table: Trial field -> values; allowed fields: {', '.join(SWEEPABLE)}")
    params: dict[str, tuple[Any, ...]] = {}
    for key, spec in sweep.items():
        where = f"sweep.{_key(key)}"

        def err(m: str, where: str = where) -> SweepFileError:
            return fail(where, m)

        _check_field(key, err)
        if key in base:
            raise err(f"is also set in [base]; set it in one place ({key} is swept here)")
        raw = _values(spec, err)
        normalized = []
        for value in raw:
            try:
                trial = base_trial.replace(**{key: value})
            except _BAD_VALUE as exc:
                raise err(f"value {_short(value)}: {exc}") from None
            normalized.append(getattr(trial, key))
        if len(set(map(_hashable, normalized))) != len(normalized):
            raise err(f"values {_short(raw)} repeat a value (after converting sizes to bytes); each value once")
        params[key] = tuple(normalized)

    spec = SweepSpec(
        name=name,
        path=path,
        text=text,
        runner=runner,
        repeats=repeats,
        warmups=warmups,
        seed=seed,
        base=dict(base),
        params=params,
        description=description,
    )
    if spec.n_points > MAX_POINTS:
        raise fail("sweep", f"{spec.n_points} grid points; at most {MAX_POINTS} are allowed")
    trials = spec.n_points * (repeats + warmups)
    if trials > MAX_TRIALS:
        raise fail(
            "repeats",
            f"{spec.n_points} grid points x ({repeats} repeats + {warmups} warm-ups) = {trials} trials; "
            f"at most {MAX_TRIALS} are allowed",
        )
    for point in spec.points():  # combinations can fail where single values do not (e.g. packet vs page size)
        try:
            spec.trial(point, 0)
        except _BAD_VALUE as exc:
            raise fail("sweep", f"grid point {point}: {exc}") from None
    return spec


def _check_field(key: str, err) -> None:
    if key == "seed":
        raise err("the guest seed is derived from the top-level seed; set 'seed = N' at the top of the file")
    if key not in SWEEPABLE:
        raise err(f"unknown Trial field; allowed: {', '.join(SWEEPABLE)}")


def _int(key: str, value: object, fail) -> int:
    """Top-level int ``key`` by the rule and limit of :mod:`dsalab.validate` (the same as a Trial's)."""
    try:
        return int(validate.check(key, value, message="{value} is not allowed; it must be {allowed}"))
    except InvalidArgument as exc:
        raise fail(key, str(exc)) from None


def _hashable(v: Any) -> Any:
    """A hashable stand-in for a normalized value (lists and tables nest in TOML)."""
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _hashable(x)) for k, x in v.items()))
    return v


def _values(spec: object, err) -> list[Any]:
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
            f"{_short(spec)} is not allowed; give a list of values or a range table "
            "{ start = A, stop = B, step = S } or { start = A, stop = B, factor = F }"
        )
    unknown = [k for k in spec if k not in RANGE_KEYS]
    if unknown:
        raise err(f"unknown range key {_short(unknown[0])}; allowed: {', '.join(RANGE_KEYS)}")
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
            raise err(f"range {key}={_short(v)} is not allowed; it must be a number or a size string like '64KiB'")
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


def _key(key: str) -> str:
    """A TOML key as it appears in an error: as written when short and printable, else its cut ``repr``."""
    return key if key.isprintable() and 0 < len(key) <= 80 else _short(key)


def _quotient(a: int | float, b: int | float) -> float:
    """``a / b`` as a float, ``inf`` where it is too large for one (huge TOML integers)."""
    try:
        return a / b
    except OverflowError:
        return math.inf


def _short(value: object, limit: int = 80) -> str:
    """``repr`` of a value, cut to ``limit`` characters (error messages stay one short line)."""
    return validate.short_repr(value, limit)
