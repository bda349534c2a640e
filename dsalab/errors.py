"""Exceptions of dsalab: one root, :class:`DsalabError`, for every failure the package reports.

Native status codes (``DSL_*`` in ``native/dsl.h``) become the typed exceptions below in
:mod:`dsalab._binding`; bad arguments raise :class:`InvalidArgument` / :class:`InvalidType`, which are also
``ValueError`` / ``TypeError`` so that ordinary ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class DsalabError(Exception):
    """Root of every exception raised by dsalab."""


class InvalidArgument(DsalabError, ValueError):
    """An argument has a value that is not allowed; the message names it and what is allowed."""


class InvalidType(DsalabError, TypeError):
    """An argument has a type that is not allowed; the message names it and what is allowed."""


class StaleBuildError(DsalabError, ImportError):
    """The compiled ``dsalab._native`` does not match this Python code: rebuild, then restart the kernel."""


class NativeError(DsalabError):
    """A native call returned a non-zero status; ``status`` holds the :class:`dsalab._binding.Status`."""

    status: int = -1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NativeInvalidArgument(NativeError, ValueError):
    """The native layer rejected an argument (DSL_EINVAL)."""


class NativeOutOfMemory(NativeError, MemoryError):
    """The native layer could not allocate memory or start a thread (DSL_ENOMEM)."""


class DeviceNotFound(NativeError, FileNotFoundError):
    """No such DSA device or work queue (DSL_ENODEV)."""


class QueueFull(NativeError):
    """The work queue refused a descriptor because it is full (DSL_EQUEUE_FULL, ENQCMD's retry)."""


class DeviceGone(NativeError):
    """The device went away: disabled, removed or its queue drained (DSL_EGONE)."""


class DeviceTimeout(NativeError, TimeoutError):
    """A bounded wait ran out (DSL_ETIMEDOUT)."""


class NativeIOError(NativeError, OSError):
    """A system call of the native layer failed (DSL_EIO)."""


class Unsupported(NativeError):
    """This build or this CPU lacks what the call needs (DSL_EUNSUPPORTED)."""


class DevicePermissionError(NativeError, PermissionError):
    """The process may not use the device this way (DSL_EPERM)."""


class MigrationError(DsalabError):
    """A migration trial failed: the message names the channel and what happened."""


class SweepFileError(DsalabError, ValueError):
    """A sweep file is invalid: the message names the file, the key and what is allowed."""
