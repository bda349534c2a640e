"""Options shared by the whole package, kept in one place (numba flags, defaults)."""

from __future__ import annotations

import os

#: numba options of every private kernel: no GIL (callers split work over threads), cached on disk.
NUMBA_OPTIONS = {"nogil": True, "cache": True, "boundscheck": False, "error_model": "numpy"}


def __getattr__(name: str):
    """``ngjit``, the one jit alias of the package (datashader's idea), made on first use so that importing this
    module (page-size limits, defaults) does not load numba."""
    if name == "ngjit":
        import numba

        globals()["ngjit"] = value = numba.njit(**NUMBA_OPTIONS)
        return value
    raise AttributeError(f"module 'dsalab.config' has no attribute {name!r}")


#: default page size of guest memory, bytes
PAGE_SIZE = 4096

#: smallest page size the kernels accept, bytes (one cache line)
MIN_PAGE_SIZE = 64
#: largest page size the kernels, devices and trials take, bytes (1 GiB, the largest huge page)
MAX_PAGE_SIZE = 1 << 30


def default_threads() -> int:
    """Threads a kernel uses when the caller does not say: the CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))
