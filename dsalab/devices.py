"""DSA devices: open an emulated device or a real work queue from a spec string, list the hardware queues.

Specs:

- ``"emu"`` or ``"emu:engines=4,wq_size=128,mode=shared,gbps=30,latency_us=1,fault_rate=0.001,queue_full_rate=0.01,
  seed=1"`` — the emulated device (see :data:`EMU_KEYS` for every key, its type, range and default);
- ``"/dev/dsa/wq0.0"`` — a hardware work queue: the portal (ENQCMD/MOVDIR64B) where this process may map it,
  else ``write()`` (add ``?write`` to force the write() path).

Every device says which backend it is (``dsa-emulated`` or ``dsa-hardware``) so results are labelled honestly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import pathlib
import socket
import threading
from collections.abc import Sequence
from typing import Any

from dsalab import _binding, discovery
from dsalab.backends import Backend
from dsalab.device_spec import (  # noqa: F401 (EMU_KEYS)
    EMU_KEYS,
    MODES,
    PRIORITIES,
    check_spec,
    parse_emu_spec,
    split_queue_spec,
)
from dsalab.errors import DevicePermissionError, InvalidArgument

_live_ids: set[int] = set()
_ids_lock = threading.Lock()


def _next_id() -> int:
    """The smallest device number not in use: engine thread names (dsa_engine_<dev>_<i>) must fit Linux's 15
    characters, so numbers are reused rather than counted up forever."""
    with _ids_lock:
        i = next(n for n in itertools.count() if n not in _live_ids)
        _live_ids.add(i)
        return i


def _release_id(i: int) -> None:
    with _ids_lock:
        _live_ids.discard(i)


_users_lock = threading.Lock()


@dataclasses.dataclass(eq=False)
class Device:
    """An open DSA device (emulated or a hardware work queue). Close it when done (or use ``with``).

    While an open :class:`dsalab.offload.Offloader` uses the device, :meth:`close` is refused with
    :class:`~dsalab.errors.InvalidArgument` (the Offloader's native layer holds the device): close the Offloader
    first."""

    spec: str
    backend: str  #: "dsa-emulated" or "dsa-hardware"
    name: str
    settings: dict[str, Any]
    _handle: Any = dataclasses.field(repr=False)
    _keep: list = dataclasses.field(default_factory=list, repr=False)
    _users: int = dataclasses.field(default=0, repr=False)  #: open Offloaders using it (under _users_lock)

    def _acquire(self) -> None:
        """Count one more user (an Offloader); refused on a closed device."""
        with _users_lock:
            self._check_open()
            self._users += 1

    def _release(self) -> None:
        """Count one user fewer."""
        with _users_lock:
            self._users = max(0, self._users - 1)

    def info(self) -> dict[str, Any]:
        """Queue mode and size, max batch size, submission path, counters (submitted, refused, executed,
        page faults, dropped) and busy time (ms) of the device."""
        self._check_open()
        raw = _binding.device_info(self._handle)
        out: dict[str, Any] = dict(raw)
        out["mode"] = "shared" if raw["shared"] else "dedicated"
        out["submit_path"] = _binding.SUBMIT_PATHS.get(raw["submit_path"], "unknown")
        out["busy_ms"] = raw["busy_ns"] / 1e6
        out["gone"] = bool(raw["gone"])
        out["backend"] = self.backend
        return out

    @property
    def id(self) -> int:
        """Device number (names the emulated engines: dsa_engine_<id>_<i>)."""
        return int(self.info()["id"])

    def _check_open(self) -> None:
        if self._handle is None:
            raise InvalidArgument(f"device {self.name} ({self.spec}) is closed")

    def close(self) -> None:
        """Close the device: engine threads stop, the queue's file is closed (idempotent). Refused with
        InvalidArgument while an open Offloader uses the device."""
        with _users_lock:
            if self._users:
                raise InvalidArgument(
                    f"device {self.name} ({self.spec}) is in use by {self._users} open Offloader(s); "
                    "close them first (allowed: closing a device no open Offloader uses)"
                )
            handle, self._handle = self._handle, None
        if handle is not None:
            _binding.device_close(handle)
            if self.backend == Backend.DSA_EMULATED and self.name.startswith("emu"):
                _release_id(int(self.name[3:]))
        for obj in self._keep:
            obj.close()
        self._keep.clear()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten device must not leave engine threads behind
        with contextlib.suppress(Exception):
            self.close()


def open_emulated(spec: str = "emu") -> Device:
    """Open an emulated device from an ``emu[:key=value,...]`` spec."""
    s = parse_emu_spec(spec)
    did = _next_id()
    try:
        handle = _binding.emu_open(
            engines=s["engines"],
            wq_size=s["wq_size"],
            shared=int(s["mode"] == "shared"),
            gbps=s["gbps"],
            latency_us=s["latency_us"],
            fault_rate=s["fault_rate"],
            queue_full_rate=s["queue_full_rate"],
            seed=s["seed"],
            vanish_after=s["vanish_after"],
            device_id=did,
            max_batch=s["max_batch"],
            priority=PRIORITIES.index(s["priority"]),
        )
    except DevicePermissionError:
        _release_id(did)
        raise DevicePermissionError(  # the only permission an emulated device needs
            f"device spec {spec!r}: priority=high needs CAP_SYS_NICE (nice -10 for the engine threads), which this "
            "process lacks; allowed without it: priority=normal or priority=idle"
        ) from None
    except BaseException:
        _release_id(did)
        raise
    return Device(spec, Backend.DSA_EMULATED, f"emu{did}", s, handle)


def open_device(spec: str, *, sysfs_root: pathlib.Path = discovery.SYSFS_ROOT) -> Device:
    """Open a device from its spec: ``"emu[:key=value,...]"`` or a work queue path ``/dev/dsa/wqX.Y[?write]``.

    A path must be the character device of an idxd DSA work queue (checked with ``stat`` and sysfs before it is
    opened, and again with ``fstat`` in C after): a regular file, a directory, a link to one, or another driver's
    device is refused with ``InvalidArgument`` and left untouched. Raises ``ValueError`` naming a bad key or
    value (and listing what is allowed), ``FileNotFoundError`` for a missing queue (naming the queues that
    exist); all are :class:`dsalab.DsalabError`."""
    check_spec(spec)
    if spec == "emu" or spec.startswith("emu:"):
        return open_emulated(spec)
    path, force_write = split_queue_spec(spec)
    discovery.check_queue_device(path, sysfs_root)
    handle = _binding.hw_open(path, str(sysfs_root), str(discovery.char_root(sysfs_root)), force_write)
    info = _binding.device_info(handle)
    settings = {
        "mode": "shared" if info["shared"] else "dedicated",
        "wq_size": info["wq_size"],
        "max_batch": info["max_batch"],
        "submit_path": _binding.SUBMIT_PATHS[info["submit_path"]],
    }
    return Device(spec, Backend.DSA_HARDWARE, os.path.basename(path), settings, handle)


def discover(
    sysfs_root: pathlib.Path = discovery.SYSFS_ROOT, dev_root: pathlib.Path = discovery.DEV_ROOT
) -> list[discovery.WorkQueue]:
    """The hardware work queues of this machine (empty without DSA)."""
    return discovery.work_queues(sysfs_root, dev_root)


class _Pipe:
    """The two ends of a socketpair, closed together."""

    def __init__(self) -> None:
        self.submit_end, self.device_end = socket.socketpair()
        self.submit_end.setblocking(False)  # a full socket answers EAGAIN: "queue full, retry"

    def close(self) -> None:
        self.submit_end.close()
        self.device_end.close()


def open_write_path(spec: str = "emu", *, mode: str = "shared", wq_size: int = 128) -> Device:
    """A hardware-style device that submits with ``write()`` of 64-byte descriptors to a socket, whose far end
    is an emulated device reading descriptors as the kernel's idxd driver does (and refusing batches, as the
    kernel does). This is the path real queues take when the portal cannot be mapped; here it runs for real
    against the emulator. Closing it closes both."""
    if mode not in MODES:
        raise InvalidArgument(f"mode={mode!r} is not allowed; allowed: {', '.join(MODES)}")
    emu = open_emulated(spec)
    pipe = _Pipe()
    try:
        _binding.emu_serve_fd(emu._handle, pipe.device_end.fileno())
        handle = _binding.hw_open_fd(pipe.submit_end.fileno(), mode == "shared", wq_size, f"write->{emu.name}")
    except BaseException:
        emu.close()
        pipe.close()
        raise
    dev = Device(
        f"write:{spec}",
        Backend.DSA_EMULATED,
        f"write->{emu.name}",
        {"mode": mode, "wq_size": wq_size, "submit_path": "write", "far_end": emu.settings},
        handle,
    )
    dev._keep.extend([emu, pipe])  # closed after the writer: the emulator first sees EOF... then stops
    return dev


def suggest_accel_config(
    devices: Sequence[str] | None = None,
    *,
    wq_size: int = 128,
    engines: int = 4,
    max_batch_size: int = 1024,
    sysfs_root: pathlib.Path = discovery.SYSFS_ROOT,
) -> list[dict[str, Any]]:
    """An ``accel-config load-config -c FILE`` configuration for dsalab: on every device (those in sysfs, or
    ``devices`` such as ["dsa0", "dsa2"]), one group holding one shared user work queue named "dsalab" of
    ``wq_size`` descriptors and ``engines`` engines; block-on-fault off (faults fall back to the CPU)."""
    names = list(devices) if devices else [d["name"] for d in discovery.devices(sysfs_root)] or ["dsa0"]
    config = []
    for name in names:
        if not name.startswith("dsa") or not name[3:].isdigit():
            raise InvalidArgument(f"device name {name!r} is not allowed; allowed: dsa<N>, e.g. dsa0")
        n = name[3:]
        config.append(
            {
                "dev": name,
                "read_buffer_limit": 0,
                "groups": [
                    {
                        "dev": f"group{n}.0",
                        "grouped_workqueues": [
                            {
                                "dev": f"wq{n}.0",
                                "mode": "shared",
                                "size": wq_size,
                                "group_id": 0,
                                "priority": 10,
                                "block_on_fault": 0,
                                "max_batch_size": max_batch_size,
                                "max_transfer_size": 2097152,
                                "type": "user",
                                "driver_name": "user",
                                "name": "dsalab",
                                "threshold": wq_size,
                            }
                        ],
                        "grouped_engines": [{"dev": f"engine{n}.{e}", "group_id": 0} for e in range(engines)],
                    }
                ],
            }
        )
    return config
