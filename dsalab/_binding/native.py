"""The boundary itself: the only place that imports the compiled ``dsalab._native`` (``ffi`` and ``lib``).

At import, the ABI version and the source hash the module was built from are checked (before anything else reads
``lib``), so that a stale build (for example in a Jupyter kernel started before ``make``) fails loudly instead of
misbehaving. Then the C enumerations, which reach Python through the cdef (``DSL_*`` constants of native/dsl.h),
become ``IntEnum``s, and :func:`check` turns a non-zero native status into an exception from :mod:`dsalab.errors`.
"""

from __future__ import annotations

import enum
import hashlib
import os
import pathlib

from dsalab import errors

_ABI_VERSION = 6
_REBUILD = "rebuild it (`make setup`, or `pip install --no-build-isolation -e .`) and restart the Python kernel"

try:
    from dsalab._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise errors.StaleBuildError(f"dsalab's native module is not built: {exc}; {_REBUILD}") from exc


def source_build_id(native_dir: pathlib.Path) -> str | None:
    """Hash of the C sources in ``native_dir`` (as ``native/build_native.py`` computes it), or None."""
    files = sorted(native_dir.glob("*.[ch]"))
    if not files:
        return None
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def check_build(
    built_abi: int, built_id: str, *, expected_abi: int = _ABI_VERSION, source_id: str | None = None
) -> None:
    """Raise :class:`~dsalab.errors.StaleBuildError` if the compiled module does not match this code."""
    if built_abi != expected_abi:
        raise errors.StaleBuildError(
            f"dsalab._native was built for native ABI {built_abi} but this dsalab needs ABI {expected_abi}: {_REBUILD}"
        )
    if source_id is not None and source_id != built_id and os.environ.get("DSALAB_ALLOW_STALE") != "1":
        raise errors.StaleBuildError(
            f"dsalab._native was built from other native sources (build {built_id}, sources now {source_id}): "
            f"{_REBUILD} (DSALAB_ALLOW_STALE=1 skips this check)"
        )


def build_id() -> str:
    """Hash of the native sources the loaded module was built from."""
    return ffi.string(lib.dsl_build_id()).decode()


_checkout_native = pathlib.Path(__file__).resolve().parents[2] / "native"
check_build(lib.dsl_abi_version(), build_id(), source_id=source_build_id(_checkout_native))


class Status(enum.IntEnum):
    """Native status codes (``DSL_*``)."""

    OK = lib.DSL_OK
    EINVAL = lib.DSL_EINVAL
    ENOMEM = lib.DSL_ENOMEM
    ENODEV = lib.DSL_ENODEV
    EQUEUE_FULL = lib.DSL_EQUEUE_FULL
    EGONE = lib.DSL_EGONE
    ETIMEDOUT = lib.DSL_ETIMEDOUT
    EIO = lib.DSL_EIO
    EUNSUPPORTED = lib.DSL_EUNSUPPORTED
    EPERM = lib.DSL_EPERM


class CompletionMode(enum.IntEnum):
    """How the offload layer waits for completions (``DSL_COMPLETION_*``); ``label`` is the Python name."""

    THREAD = lib.DSL_COMPLETION_THREAD
    POLL = lib.DSL_COMPLETION_POLL
    UMWAIT = lib.DSL_COMPLETION_UMWAIT

    @property
    def label(self) -> str:
        """The name :class:`dsalab.offload.Offloader` takes: "thread", "poll" or "umwait"."""
        return self.name.lower()


class DeviceBackend(enum.IntEnum):
    """What a native device is (``DSL_BACKEND_*``, ``dsl_device_info.backend``)."""

    EMULATED = lib.DSL_BACKEND_EMU
    HARDWARE = lib.DSL_BACKEND_HW


class SubmitPath(enum.IntEnum):
    """How descriptors reach a device (``DSL_SUBMIT_*``, ``dsl_device_info.submit_path``)."""

    PORTAL = lib.DSL_SUBMIT_PORTAL
    WRITE = lib.DSL_SUBMIT_WRITE
    RING = lib.DSL_SUBMIT_RING

    @property
    def label(self) -> str:
        """The name ``Device.info()`` reports: "portal", "write" or "emulated"."""
        return "emulated" if self is SubmitPath.RING else self.name.lower()


class FaultMode(enum.IntEnum):
    """The multifd engine's injected receiver faults (``DSL_FAULT_*``, ``dsl_mig_config.fail_mode``)."""

    NONE = lib.DSL_FAULT_NONE
    RECEIVER_EXIT = lib.DSL_FAULT_RECEIVER_EXIT
    RECEIVER_RESET = lib.DSL_FAULT_RECEIVER_RESET
    RECEIVER_STALL = lib.DSL_FAULT_RECEIVER_STALL

    @property
    def label(self) -> str:
        """The fault's name in a trial: "receiver-exit", "receiver-reset" or "receiver-stall" ("none" for 0)."""
        return self.name.lower().replace("_", "-")


#: completion mode name -> native value ("thread", "poll", "umwait")
COMPLETION_MODES: dict[str, CompletionMode] = {m.label: m for m in CompletionMode}
#: native submit path -> the name ``Device.info()`` reports
SUBMIT_PATHS: dict[int, str] = {p.value: p.label for p in SubmitPath}
#: injected fault name -> native fail_mode (FaultMode.NONE is "no fault", not a kind)
FAULT_MODES: dict[str, FaultMode] = {f.label: f for f in FaultMode if f is not FaultMode.NONE}


_EXCEPTIONS: dict[Status, type[errors.NativeError]] = {
    Status.EINVAL: errors.NativeInvalidArgument,
    Status.ENOMEM: errors.NativeOutOfMemory,
    Status.ENODEV: errors.DeviceNotFound,
    Status.EQUEUE_FULL: errors.QueueFull,
    Status.EGONE: errors.DeviceGone,
    Status.ETIMEDOUT: errors.DeviceTimeout,
    Status.EIO: errors.NativeIOError,
    Status.EUNSUPPORTED: errors.Unsupported,
    Status.EPERM: errors.DevicePermissionError,
}


def check(status: int, what: str) -> None:
    """Raise the exception of a non-zero native ``status``; ``what`` says which call, with its arguments."""
    if status == Status.OK:
        return
    try:
        st = Status(status)
    except ValueError:
        raise errors.NativeError(f"{what}: unknown native status {status}", status) from None
    raise _EXCEPTIONS[st](f"{what}: {st.name}", int(st))
