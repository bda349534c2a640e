"""What a QEMU binary supports for migration: its version, ``query-migrate-capabilities``,
``query-migrate-parameters`` and, from ``query-qmp-schema``, every migration parameter it knows and the values
of ``zero-page-detection``.

:func:`probe` asks a real binary (one short-lived ``-S -nodefaults`` process, stopped by its PID);
:meth:`Capabilities.from_replies` builds the same from recorded replies (``tests/data/qemu/*.json``, written by
:func:`record`). :func:`dsalab.qemu.mapping.plan` maps a Trial onto what a :class:`Capabilities` has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dsalab.errors import InvalidArgument
from dsalab.qemu import qmp
from dsalab.qemu.process import STOP_TIMEOUT_S, QemuProcess, find_binary, stop_all

#: seconds a probe may take from start to its last answer
PROBE_TIMEOUT_S = 30.0
#: the DSA series' migration parameters (v5: the first three; later versions: accel-path)
DSA_PARAMETERS = ("multifd-dsa-accel", "multifd-normal-page-ratio", "multifd-packet-size", "accel-path")

_CACHE: dict[tuple[str, float, str], Capabilities] = {}


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What one QEMU binary offers for migration.

    Attributes
    ----------
    version : (major, minor, micro)
    package : QEMU's package string (e.g. Debian's version), "" if none
    capabilities : names of ``query-migrate-capabilities``
    parameters : migration parameter names (the keys of ``query-migrate-parameters`` and, where the schema was
        read, every member of its reply type: optional parameters left unset do not appear in the reply)
    zero_page_detection : the values ``zero-page-detection`` takes (``()``: no such parameter, QEMU < 9.0,
        whose main migration thread finds zero pages: "legacy")
    defaults : ``query-migrate-parameters``'s reply as recorded
    source : where this came from: "probed", "recorded ..." or "derived from the patch ..."
    """

    version: tuple[int, int, int]
    package: str
    capabilities: frozenset[str]
    parameters: frozenset[str]
    zero_page_detection: tuple[str, ...]
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str = "probed"

    @property
    def version_text(self) -> str:
        """``"QEMU 10.0.2"``, the way errors name this binary."""
        return "QEMU " + ".".join(map(str, self.version))

    def has(self, parameter: str) -> bool:
        """True when migration parameter ``parameter`` exists."""
        return parameter in self.parameters

    @classmethod
    def from_replies(
        cls,
        version: Mapping[str, Any],
        capabilities: Sequence[Mapping[str, Any]],
        parameters: Mapping[str, Any],
        schema: Mapping[str, Any] | None = None,
        source: str = "probed",
    ) -> Capabilities:
        """From the replies of ``query-version``, ``query-migrate-capabilities``, ``query-migrate-parameters``
        and the reduced schema of :func:`reduce_schema` (``{"parameters": [...], "zero-page-detection": [...]}``,
        None: the reply's keys only). Raises :class:`~dsalab.errors.InvalidArgument` for a malformed reply."""
        try:
            q = version["qemu"]
            ver = (int(q["major"]), int(q["minor"]), int(q["micro"]))
            caps = frozenset(str(c["capability"]) for c in capabilities)
            params = set(map(str, parameters))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"QEMU capability replies are malformed ({type(exc).__name__}: {exc})") from None
        schema = schema or {}
        params |= set(map(str, schema.get("parameters", ())))
        zpd = tuple(map(str, schema.get("zero-page-detection", ())))
        if not zpd and "zero-page-detection" in params:  # no schema: the values QEMU >= 9.0 has
            zpd = ("none", "legacy", "multifd")
        return cls(ver, str(version.get("package", "")).strip(), caps, frozenset(params), zpd, dict(parameters), source)

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Capabilities:
        """From a file written by :func:`record` (or one derived from a patch in the same layout)."""
        doc = json.loads(pathlib.Path(path).read_text())
        return cls.from_replies(
            doc["query-version"],
            doc["query-migrate-capabilities"],
            doc["query-migrate-parameters"],
            doc.get("schema"),
            source=str(doc.get("source", f"recorded in {path}")),
        )


def reduce_schema(schema: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """From ``query-qmp-schema``'s reply: the member names of ``query-migrate-parameters``' return type and the
    values of its ``zero-page-detection`` member's enum (QEMU numbers its type names, so they are followed by
    reference, not by name)."""
    by_name = {e.get("name"): e for e in schema}
    command = by_name.get("query-migrate-parameters", {})
    ret = by_name.get(command.get("ret-type"), {})
    members = ret.get("members", [])
    out: dict[str, list[str]] = {"parameters": sorted(m["name"] for m in members)}
    zpd = next((m for m in members if m["name"] == "zero-page-detection"), None)
    if zpd is not None:
        enum = by_name.get(zpd["type"], {})
        values = enum.get("values") or [m["name"] for m in enum.get("members", [])]
        out["zero-page-detection"] = list(values)
    return out


async def _ask(proc: QemuProcess) -> dict[str, Any]:
    client = await qmp.connect(proc, time.monotonic() + PROBE_TIMEOUT_S)
    try:
        replies = {}
        for cmd in ("query-version", "query-migrate-capabilities", "query-migrate-parameters", "query-qmp-schema"):
            replies[cmd] = await qmp.call(client, proc, cmd)
        return replies
    finally:
        await qmp.close(client, proc)


def probe_replies(binary: str) -> dict[str, Any]:
    """The raw replies of one short-lived QEMU (``-S -nodefaults``, TCG, stopped by its PID) of ``binary``:
    ``query-version``, ``query-migrate-capabilities``, ``query-migrate-parameters`` and the reduced schema
    (:func:`reduce_schema`) under ``schema``."""
    with tempfile.TemporaryDirectory(prefix="dsalab-qemu-probe-") as tmp:
        proc = QemuProcess(binary, ["-machine", "q35,accel=tcg", "-m", "16M"], name="probe", workdir=tmp)
        try:
            replies = asyncio.run(_ask(proc))
        finally:
            stop_all([proc])
    replies["schema"] = reduce_schema(replies.pop("query-qmp-schema"))
    return replies


def probe(qemu: str | None = None) -> Capabilities:
    """The :class:`Capabilities` of QEMU binary ``qemu`` (None: ``qemu-system-x86_64`` on PATH), asked once per
    binary (path and modification time) and process; callable inside a running event loop (Jupyter)."""
    return qmp.outside_running_loop(_probe, qemu, bound_s=PROBE_TIMEOUT_S + 3 * STOP_TIMEOUT_S, what="probe")


def _probe(qemu: str | None) -> Capabilities:
    binary = find_binary(qemu)
    key = (binary, os.stat(binary).st_mtime, os.environ.get("QEMU_MODULE_DIR", ""))
    if key not in _CACHE:
        r = probe_replies(binary)
        _CACHE[key] = Capabilities.from_replies(
            r["query-version"], r["query-migrate-capabilities"], r["query-migrate-parameters"], r["schema"]
        )
    return _CACHE[key]


def record(path: str | pathlib.Path, qemu: str | None = None, how: str = "") -> dict[str, Any]:
    """Write the replies of :func:`probe_replies` to ``path`` (JSON) with where they came from; returns them.
    ``how``: how the binary was obtained (e.g. ``apt-get download`` + ``dpkg -x``)."""
    binary = find_binary(qemu)
    replies = probe_replies(binary)
    v = replies["query-version"]
    doc = {
        "source": f"recorded from a real reply of {os.path.basename(binary)} {v.get('package', '')}".strip(),
        "how": how or f"dsalab.qemu.capabilities.record on {binary}",
        **replies,
    }
    pathlib.Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc
