"""Sweep files: a TOML description of a parameter grid, checked completely before anything runs.

A sweep file names a base :class:`~dsalab.migration.Trial`, the Trial fields to sweep with their values, the
repeats, warm-ups, seed and runner::

    name = "batch-packet"          # used in result file names
    description = "what this sweep asks"   # optional
    runner = "engine"              # "engine" (the multifd engine), "model" (the what-if model) or "qemu" (real QEMU)
    hardware = "data/hardware/spr-8457c-dsa.toml"   # runner "model" only: the hardware profile it predicts for
    qemu = "/usr/bin/qemu-system-x86_64"   # runner "qemu" only: the QEMU binary (default: on PATH)
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

``runner = "model"`` predicts every point with :func:`dsalab.model.predict` on the hardware profile ``hardware``
names (a path relative to the current directory, else to the sweep file's directory; the profile's content is
checked by :func:`dsalab.sweep.model_profile`). The model is deterministic (the guest seed changes nothing), so it
runs one repeat and no warm-up: ``repeats`` and ``warmups`` become 1 and 0, the file's values are kept in
:attr:`SweepSpec.file_repeats` and :attr:`SweepSpec.file_warmups`. :func:`override` sets the runner and profile
given on the command line (``dsalab sweep FILE --runner model --hardware FILE``) over the file's.

``runner = "qemu"`` runs every point on two real QEMU processes (:func:`dsalab.qemu.run_trial`) of the binary
``qemu`` names (a path or a name on PATH; default ``qemu-system-x86_64``, ``--qemu`` on the command line). A point
that QEMU cannot honour (e.g. ``packet_bytes`` other than 512 KiB on a QEMU without ``multifd-packet-size``)
is a failed point carrying the message naming the field and the QEMU version, like any failed trial.

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
from dsalab.sweep_ranges import MAX_VALUES, RANGE_KEYS  # noqa: F401 (sweep files' limits and range keys)
from dsalab.sweep_ranges import values as _values
from dsalab.trial import Trial

#: runners a sweep file may name today
RUNNERS: tuple[str, ...] = (Runner.ENGINE, Runner.MODEL, Runner.QEMU)
#: runners planned but not available yet
FUTURE_RUNNERS: tuple[str, ...] = ()
#: top-level keys: key -> (TOML type, what is allowed)
TOP_KEYS: dict[str, str] = {
    "name": "a string of 1 to 100 ASCII letters, digits, '-', '_' or '.'",
    "description": "a string",
    "runner": f"one of {', '.join(RUNNERS)}",
    "hardware": 'the path of a hardware profile (TOML), e.g. "data/hardware/spr-8457c-dsa.toml"; runner "model" only',
    "qemu": 'the QEMU binary, a path or a name on PATH (default "qemu-system-x86_64"); runner "qemu" only',
    "repeats": validate.LIMITS["repeats"].allowed,
    "warmups": validate.LIMITS["warmups"].allowed,
    "seed": validate.LIMITS["seed"].allowed,
    "base": "a table of Trial fields",
    "sweep": "a table: Trial field -> list of values or {start, stop, step|factor}",
}
#: Trial fields a sweep may set (the seed is derived from the top-level seed, per repeat)
SWEEPABLE = tuple(f for f in Trial.fields() if f != "seed")
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
    runner : what runs a trial (``engine`` or ``model``)
    repeats : measured repeats per grid point (1 for the model: it is deterministic)
    warmups : discarded passes over the grid before the measured repeats (0 for the model)
    seed : sweep seed; trial seeds derive from it and the repeat (:meth:`trial_seed`)
    base : Trial fields shared by every point, as written in the file
    params : swept Trial field -> its values, normalized as the Trial stores them (sizes in bytes), in file order
    description : free text
    hardware : runner ``model``: the hardware profile's path, as found (else "")
    hardware_text : runner ``model``: the hardware profile file's exact content (else "")
    file_repeats, file_warmups : ``repeats`` and ``warmups`` as the file gives them (before the model's 1 and 0)
    runner_from : where runner and hardware came from: "file" or "command line"
    qemu : runner ``qemu``: the QEMU binary as given ("" = ``qemu-system-x86_64`` on PATH)
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
    hardware: str = ""
    hardware_text: str = ""
    file_repeats: int = 0
    file_warmups: int = 0
    runner_from: str = "file"
    qemu: str = ""

    @property
    def sha256(self) -> str:
        """SHA-256 of the file content, hex (names partial files; resume checks it); for a runner other than the
        engine, of the content, the runner and the hardware profile's text, so a partial file never mixes runners
        or profiles."""
        h = hashlib.sha256(self.text.encode())
        if self.runner != Runner.ENGINE:
            h.update(f"\0runner={self.runner}\0hardware=".encode() + self.hardware_text.encode())
        if self.qemu:
            h.update(f"\0qemu={self.qemu}".encode())
        return h.hexdigest()

    @property
    def hardware_sha256(self) -> str:
        """SHA-256 of the hardware profile's text, hex ("" without one)."""
        return hashlib.sha256(self.hardware_text.encode()).hexdigest() if self.hardware_text else ""

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
    runner = _runner(doc.get("runner", Runner.ENGINE.value), lambda m: fail("runner", m))
    hardware = doc.get("hardware")
    if hardware is not None and not isinstance(hardware, str):
        raise fail("hardware", f"{_short(hardware)} is not allowed; it must be {TOP_KEYS['hardware']}")
    if hardware is not None and runner != Runner.MODEL:
        raise fail("hardware", f"is only for runner = 'model' (runner is {runner!r}); remove it or set the runner")
    if runner == Runner.MODEL and hardware is None:
        raise fail("hardware", f"missing; runner 'model' needs {TOP_KEYS['hardware']}")
    qemu = _qemu(doc.get("qemu"), runner, lambda m: fail("qemu", m))
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
        file_repeats=repeats,
        file_warmups=warmups,
        qemu=qemu,
    )
    if hardware is not None:
        spec = _with_hardware(spec, *_read_hardware(hardware, path, lambda m: fail("hardware", m)))
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


def override(
    spec: SweepSpec, runner: str | None = None, hardware: str | None = None, qemu: str | None = None
) -> SweepSpec:
    """``spec`` with the runner, hardware profile and QEMU binary given on the command line (``--runner``,
    ``--hardware``, ``--qemu``) in place of the file's; ``None`` keeps the file's. ``hardware`` is a path
    relative to the current directory and needs runner ``model``; ``qemu`` needs runner ``qemu``; a ``--runner``
    other than ``model`` drops the file's profile, one other than ``qemu`` the file's QEMU binary."""

    def fail(option: str, message: str) -> SweepFileError:
        return SweepFileError(f"sweep file {spec.path}: {option}: {message}")

    if runner is None and hardware is None and qemu is None:
        return spec
    new = _runner(spec.runner if runner is None else runner, lambda m: fail("--runner", m))
    binary = _qemu(qemu, new, lambda m: fail("--qemu", m)) if qemu is not None else spec.qemu
    if new != Runner.MODEL:
        if hardware is not None:
            raise fail("--hardware", f"is only for runner 'model' (runner is {new!r}); add --runner model")
        return dataclasses.replace(
            spec,
            runner=new,
            hardware="",
            hardware_text="",
            repeats=spec.file_repeats,
            warmups=spec.file_warmups,
            runner_from="command line",
            qemu=binary if new == Runner.QEMU else "",
        )
    if hardware is None and not spec.hardware:
        raise fail("--hardware", f"missing; runner 'model' needs {TOP_KEYS['hardware']}")
    found = (spec.hardware, spec.hardware_text)
    if hardware is not None:
        found = _read_hardware(hardware, None, lambda m: fail("--hardware", m))
    return _with_hardware(dataclasses.replace(spec, runner=new, runner_from="command line"), *found)


def _runner(runner: object, err) -> str:
    if isinstance(runner, str) and runner in FUTURE_RUNNERS:
        raise err(f"{runner!r} is not available yet; allowed: {', '.join(RUNNERS)}")
    if not isinstance(runner, str) or runner not in RUNNERS:
        raise err(f"{_short(runner)} is not allowed; allowed: {', '.join(RUNNERS)}")
    return runner


def _qemu(qemu: object, runner: str, err) -> str:
    """The QEMU binary of key ``qemu`` (None: not given, "")."""
    if qemu is None:
        return ""
    if not isinstance(qemu, str) or not qemu or "\0" in qemu:
        raise err(f"{_short(qemu)} is not allowed; it must be {TOP_KEYS['qemu']}")
    if runner != Runner.QEMU:
        raise err(f"is only for runner 'qemu' (runner is {runner!r}); remove it or set the runner")
    return qemu


def _read_hardware(hardware: str, sweep_path: str | None, err) -> tuple[str, str]:
    """(path as found, text) of a hardware profile: ``hardware`` relative to the current directory, else (for a
    sweep file's key) to the sweep file's directory, else a bare name of a shipped profile (``spr-8457c-dsa``:
    :data:`dsalab.reference.HARDWARE_DIR`/spr-8457c-dsa.toml, as :func:`dsalab.model.profile.find` does)."""
    if not hardware:
        raise err(f"'' is not allowed; it must be {TOP_KEYS['hardware']}")
    candidates = [pathlib.Path(hardware)]
    if sweep_path is not None and sweep_path != "<string>" and not candidates[0].is_absolute():
        candidates.append(pathlib.Path(sweep_path).parent / hardware)
    if candidates[0].suffix == "" and candidates[0].name == hardware:
        from dsalab import reference  # deferred: pandas is not needed to read a sweep file

        candidates.append(reference.HARDWARE_DIR / f"{hardware}.toml")
    found = next((c for c in candidates if _is_file(c)), None)
    if found is None:
        where = " or ".join(str(c) for c in dict.fromkeys(candidates))
        raise err(f"hardware profile {_short(hardware)} not found (looked for {where}); see data/hardware/*.toml")
    try:
        return str(found), found.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise err(f"hardware profile {found} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


def _is_file(path: pathlib.Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte: not a file we can read
        return False


def _with_hardware(spec: SweepSpec, hardware: str, text: str) -> SweepSpec:
    """``spec`` for the model: its profile, and one repeat without warm-ups (the model is deterministic)."""
    return dataclasses.replace(spec, hardware=hardware, hardware_text=text, repeats=1, warmups=0)


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


def _key(key: str) -> str:
    """A TOML key as it appears in an error: as written when short and printable, else its cut ``repr``."""
    return key if key.isprintable() and 0 < len(key) <= 80 else _short(key)


def _short(value: object, limit: int = 80) -> str:
    """``repr`` of a value, cut to ``limit`` characters (error messages stay one short line)."""
    return validate.short_repr(value, limit)
