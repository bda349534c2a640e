"""The native CPU kernels (native/kernels.c) and the guest memory fill (native/guest.c)."""

from __future__ import annotations

import numpy as np

from dsalab._binding.native import check, ffi, lib


def _ptr(arr: np.ndarray):
    return ffi.from_buffer("uint8_t[]", arr, require_writable=False)


def is_zero(view: np.ndarray) -> bool:
    """Native zero test of a 1-D uint8 view (any length)."""
    return bool(lib.dsl_is_zero(_ptr(view), view.nbytes))


def find_zero_pages(view: np.ndarray, page_size: int, threads: int) -> np.ndarray:
    """Native zero-page bitmap of a 1-D uint8 view that is a whole number of pages."""
    n = view.nbytes // page_size
    out = np.empty(n, dtype=np.bool_)
    st = lib.dsl_find_zero_pages(ffi.from_buffer(view), n, page_size, ffi.from_buffer(out), threads)
    if st:
        check(st, f"find_zero_pages(page_size={page_size}, threads={threads})")
    return out


def find_zero_pages_with(fn_address: int, view: np.ndarray, page_size: int) -> np.ndarray:
    """Zero-page bitmap computed by the C function at ``fn_address`` (``int f(const void*, size_t)``)."""
    n = view.nbytes // page_size
    out = np.empty(n, dtype=np.uint8)
    fn = ffi.cast("dsl_zero_fn", fn_address)
    check(
        lib.dsl_find_zero_pages_fn(fn, _ptr(view), n, page_size, ffi.from_buffer("uint8_t[]", out)),
        f"find_zero_pages_fn(page_size={page_size})",
    )
    return out.view(np.bool_)


def compare_pages(a: np.ndarray, b: np.ndarray, page_size: int, threads: int) -> np.ndarray:
    """Native page-equality bitmap of two equal-length 1-D uint8 views."""
    n = a.nbytes // page_size
    out = np.empty(n, dtype=np.uint8)
    check(
        lib.dsl_compare_pages(_ptr(a), _ptr(b), n, page_size, ffi.from_buffer("uint8_t[]", out), threads),
        f"compare_pages(page_size={page_size}, threads={threads})",
    )
    return out.view(np.bool_)


def or_reduce(view: np.ndarray, threads: int) -> int:
    """OR of every 64-bit word of a 1-D uint8 view, without early exit (the memory-read bandwidth reference)."""
    return int(lib.dsl_or_reduce(_ptr(view), view.nbytes, threads))


def native_zero_fn_address() -> int:
    """Address of the native ``int dsl_is_zero(const void*, size_t)``, for loops that take a function pointer."""
    return int(ffi.cast("uintptr_t", lib.dsl_native_zero_fn()))


# ---------------------------------------------------------------- guest memory and the multifd engine


def fill_pages(view: np.ndarray, page_size: int, normal: np.ndarray, seed: int, touch_zero: bool, threads: int) -> None:
    """Fill a page-aligned uint8 view: random bytes where ``normal`` (uint8 per page) is 1, zeros elsewhere."""
    n = view.nbytes // page_size
    st = lib.dsl_fill_pages(
        ffi.from_buffer(view), n, page_size, ffi.from_buffer(normal), seed & (2**64 - 1), int(touch_zero), threads
    )
    check(st, f"fill_pages(page_size={page_size}, threads={threads})")
