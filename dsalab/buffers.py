"""Validation of buffers and page sizes: every public entry point that takes memory goes through here."""

from __future__ import annotations

import mmap
import numbers

import numpy as np

from dsalab.config import MAX_PAGE_SIZE, MIN_PAGE_SIZE
from dsalab.errors import InvalidArgument, InvalidType

BufferLike = np.ndarray | bytes | bytearray | memoryview | mmap.mmap


#: largest page size accepted, bytes: 1 GiB, the largest huge page of x86-64


def check_page_size(page_size: object, name: str = "page_size") -> int:
    """Return ``page_size`` as an int, bytes; raise unless it is a power of two from 64 to 1 GiB."""
    if type(page_size) is int and MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE and not page_size & (page_size - 1):
        return page_size  # fast path
    if isinstance(page_size, bool) or not isinstance(page_size, numbers.Integral):
        raise InvalidType(f"{name} must be an int (bytes), got {type(page_size).__name__} {page_size!r}")
    ps = int(page_size)
    if not MIN_PAGE_SIZE <= ps <= MAX_PAGE_SIZE or ps & (ps - 1):
        raise InvalidArgument(
            f"{name}={ps} is not allowed: it must be a power of two from {MIN_PAGE_SIZE} bytes to "
            f"{MAX_PAGE_SIZE} (1 GiB), e.g. 4096, 2097152"
        )
    return ps


#: most threads one kernel call may use (``native/dsl.h`` DSL_MAX_THREADS is the same): a thread per share,
#: so a larger value only starts threads that fight over the same cores
MAX_THREADS = 256


def check_threads(threads: object, name: str = "threads") -> int:
    """Return ``threads`` as an int; raise unless it is an int from 1 to :data:`MAX_THREADS` (256)."""
    if type(threads) is int and 1 <= threads <= MAX_THREADS:
        return threads  # fast path
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise InvalidType(
            f"{name} must be an int from 1 to {MAX_THREADS} or None, got {type(threads).__name__} {threads!r}"
        )
    if not 1 <= int(threads) <= MAX_THREADS:
        raise InvalidArgument(
            f"{name}={int(threads)} is not allowed: it must be from 1 to {MAX_THREADS} (or None for all CPUs, "
            f"at most {MAX_THREADS})"
        )
    return int(threads)


def byte_view(buf: BufferLike, name: str = "buf") -> np.ndarray:
    """A read-only 1-D uint8 numpy view of any C-contiguous buffer, without copying."""
    if isinstance(buf, np.ndarray):
        if buf.ndim == 1 and buf.dtype == np.uint8 and buf.flags.c_contiguous:
            return buf  # fast path
        if buf.dtype.hasobject:
            raise InvalidType(
                f"{name} is a numpy array of dtype {buf.dtype} (references to Python objects, not memory); "
                "allowed: an array of a plain dtype (numbers, bytes, bool, ...)"
            )
        if not buf.flags.c_contiguous:
            raise InvalidArgument(
                f"{name} is a non-contiguous numpy array (shape {buf.shape}, strides {buf.strides}); "
                "a C-contiguous buffer is required: pass np.ascontiguousarray(...)"
            )
        return buf.reshape(-1).view(np.uint8) if buf.ndim else buf.reshape(1).view(np.uint8)
    if isinstance(buf, str):
        raise InvalidType(f"{name} must be a buffer (bytes, bytearray, memoryview, mmap, numpy array), got str")
    try:
        mv = memoryview(buf)
    except TypeError:
        raise InvalidType(
            f"{name} must be a buffer (bytes, bytearray, memoryview, mmap, numpy array), got {type(buf).__name__}"
        ) from None
    if not mv.c_contiguous:
        raise InvalidArgument(
            f"{name} is a non-contiguous memoryview (shape {mv.shape}, strides {mv.strides}); "
            "a C-contiguous buffer is required"
        )
    return np.frombuffer(mv.cast("B") if mv.ndim != 1 or mv.format != "B" else mv, dtype=np.uint8)


def page_view(buf: BufferLike, page_size: object, name: str = "buf") -> tuple[np.ndarray, int]:
    """Validate ``buf`` and ``page_size``; return (1-D uint8 view, page size in bytes)."""
    ps = check_page_size(page_size)
    view = byte_view(buf, name)
    if view.nbytes % ps:
        lo = view.nbytes - view.nbytes % ps
        raise InvalidArgument(
            f"{name} is {view.nbytes} bytes, not a whole number of {ps}-byte pages "
            f"({view.nbytes / ps:.3f} pages); allowed: a multiple of {ps}, e.g. {lo} or {lo + ps}"
        )
    return view, ps
