"""A :class:`~dsalab.trial.Trial`'s fields as command-line options, derived from the dataclass.

Each field becomes ``--<field-name>`` (underscores as dashes) with its help line from Trial's docstring and the
field's default. :data:`ALIASES` keeps the shorter
names ``dsalab run`` had before (``--guest``, ``--packet``, ``--max-bandwidth``, ``--dirty-rate``) beside the
fields' own. Sizes and rates (fields ending in ``_bytes`` or ``_bytes_per_s``) take strings such as ``4GiB``;
``devices`` takes a count or device specs separated by ``;``; booleans are ``--x/--no-x`` flags.

``--runner``, ``--hardware`` and ``--qemu`` (:data:`RUNNER_HELP`, :func:`model_result`, :func:`check_runner`)
choose what turns the Trial into a result: the engine runs it, the model predicts it for a hardware profile, two
real QEMU processes migrate it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

import typer

from dsalab.trial import Trial

#: older, shorter option names kept working (each field's own ``--field-name`` works too)
ALIASES = {
    "guest_bytes": "--guest",
    "packet_bytes": "--packet",
    "max_bandwidth_bytes": "--max-bandwidth",
    "dirty_rate_bytes_per_s": "--dirty-rate",
}
_SIZE = re.compile(r"_bytes(_per_s)?$")
_UNITS = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def _size_text(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it: ``256MiB``, ``4096``, ``0``."""
    for size, unit in _UNITS:
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def field_help() -> dict[str, str]:
    """Each Trial field's description from the ``Attributes`` section of Trial's docstring (one line each)."""
    doc = inspect.getdoc(Trial) or ""
    section = doc.split("----------\n", 1)[1] if "Attributes\n----------\n" in doc else ""
    out: dict[str, str] = {}
    name = ""
    for line in section.splitlines():
        if not line.strip():
            break
        m = re.match(r"^(\w+) : (.*)$", line)
        if m:
            name = m.group(1)
            out[name] = m.group(2)
        elif name and line.startswith(" "):
            out[name] += " " + line.strip()
    return {k: _plain(v) for k, v in out.items()}


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``x`` -> x, :data:`~a.b.X` -> X."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _kind(f: dataclasses.Field) -> str:
    if f.name == "devices":
        return "devices"
    if _SIZE.search(f.name):
        return "size"
    return str(f.type)


#: the option's Python type for typer, per kind of field
_TYPES: dict[str, Any] = {"size": str, "devices": str, "int": int, "float": float, "str": str, "bool": bool}


def trial_parameters() -> list[inspect.Parameter]:
    """One keyword-only ``inspect.Parameter`` per Trial field, whose ``typer.Option`` has the field's default."""
    helps = field_help()
    params = []
    for f in dataclasses.fields(Trial):
        kind = _kind(f)
        flag = "--" + f.name.replace("_", "-")
        names = [f"{flag}/--no-{flag[2:]}"] if kind == "bool" else [*filter(None, [ALIASES.get(f.name)]), flag]
        default = _size_text(f.default) if kind == "size" else str(f.default) if kind == "devices" else f.default
        text = helps.get(f.name, f"Trial field {f.name}")
        if kind == "size" and "4GiB" not in text:
            text += " (a size such as 4GiB)"
        elif kind == "devices":
            text = "DSA devices: a count, or device specs separated by ';'"
        option = typer.Option(default, *names, help=text)
        annotation = _TYPES.get(kind, str)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
    return params


def trial_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """The Trial keyword arguments from option values: options not given (None) left out, ``devices`` as a
    count or a tuple of specs. Pass the result to ``Trial(**...)`` (which checks every value)."""
    out = {k: v for k, v in values.items() if v is not None}
    devices = out.get("devices")
    if isinstance(devices, str):
        out["devices"] = int(devices) if devices.isdigit() else tuple(d for d in devices.split(";") if d)
    return out


#: help of ``--runner`` (``dsalab run``, ``dsalab sweep``)
RUNNER_HELP = (
    "engine (run the trial here), model (predict it for the --hardware profile, running nothing) or qemu (migrate "
    "it between two real QEMU processes; --qemu names the binary)."
)
#: help of ``--qemu``
QEMU_HELP = "QEMU binary for --runner qemu: a path or a name on PATH (default qemu-system-x86_64)."


def check_runner(runner: str | None, hardware: str | None, qemu: str | None) -> None:
    """End the command, naming the option, when ``--runner`` is unknown or ``--hardware``/``--qemu`` do not go
    with it."""
    from dsalab.backends import Runner
    from dsalab.cli._app import fail

    if runner not in (None, *Runner):
        fail(f"--runner {runner!r} is not allowed: {', '.join(Runner)}")
    if qemu is not None and runner != Runner.QEMU:
        fail(f"--qemu is only for --runner qemu (runner is {runner or Runner.ENGINE}); add --runner qemu")
    if hardware is not None and runner != Runner.MODEL:
        fail(f"--hardware is only for --runner model (runner is {runner or Runner.ENGINE}); add --runner model")


#: help of ``--hardware``
HARDWARE_HELP = "Hardware profile (TOML) the model predicts for, e.g. data/hardware/spr-8457c-dsa.toml."


def model_result(trial: Trial, runner: str | None, hardware: str | None):
    """The model's :class:`~dsalab.result.TrialResult` of ``trial`` for ``--runner model --hardware FILE``, or
    None for the engine (``runner`` None or ``engine``, no ``hardware``: the caller runs the trial). A wrong
    combination or a bad profile ends the command with a message naming the option."""
    from dsalab.backends import Runner
    from dsalab.cli._app import fail
    from dsalab.errors import DsalabError

    check_runner(runner, hardware, None)
    if runner != Runner.MODEL:
        if hardware is not None:
            fail(f"--hardware is only for --runner model (runner is {runner or Runner.ENGINE}); add --runner model")
        return None
    if hardware is None:
        fail(f"--runner model needs --hardware FILE: {HARDWARE_HELP}")
    from dsalab.model import predict
    from dsalab.model.profile import load

    try:
        profile = load(hardware)
        result = predict(trial, profile)
    except DsalabError as exc:
        fail(f"--hardware {hardware}: {exc}")
    import typer

    typer.echo(f"predicted by the model for hardware profile {profile.name} ({hardware}); nothing was run")
    return result


def with_trial_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command every Trial field as an option. ``command``'s first parameter receives the values
    given, as a dict of Trial keyword arguments (see :func:`trial_kwargs`); its other parameters stay its own."""
    own = list(inspect.signature(command).parameters.values())
    hints = typing.get_type_hints(command)
    fields = Trial.fields()

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in fields}
        return command(trial_kwargs(values), **kwargs)

    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(p.name, p.annotation)) for p in own[1:]]
    params = trial_parameters() + rest
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer reads the signature above, not the command's
    return wrapper
