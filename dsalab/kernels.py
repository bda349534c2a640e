"""CPU zero-page kernels: numba baselines, a native C reference, and a NumPy reference.

>>> import numpy as np
>>> from dsalab import kernels
>>> buf = np.zeros(4 * 4096, dtype=np.uint8); buf[4096 + 7] = 1
>>> kernels.find_zero_pages(buf).tolist()
[True, False, True, True]
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

import numpy as np

from dsalab import _binding, _numba_kernels
from dsalab.buffers import MAX_THREADS, BufferLike, byte_view, check_threads, page_view
from dsalab.config import PAGE_SIZE, default_threads
from dsalab.errors import InvalidArgument, InvalidType

#: kernel names accepted by :func:`find_zero_pages` and :func:`compare_pages`
KERNELS = ("numba", "native", "numpy")

_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_size = 0


def _executor(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    """A shared pool for the numba kernels (they release the GIL), grown on demand."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="dsalab_kernel")
            _pool_size = threads
        return _pool


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    q, r = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + q + (1 if i < r else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _parallel(fn: Callable[[int, int], None], n: int, threads: int) -> None:
    threads = min(threads, max(n, 1))
    if threads == 1:
        fn(0, n)
        return
    futures = [_executor(threads).submit(fn, a, b) for a, b in _split(n, threads)]
    for f in futures:
        f.result()


def _check_kernel(kernel: str) -> str:
    if not isinstance(kernel, str) or kernel not in KERNELS:
        raise InvalidArgument(f"kernel={kernel!r} is not known; allowed: {', '.join(KERNELS)}")
    return kernel


def _resolve_threads(threads: int | None) -> int:
    return min(default_threads(), MAX_THREADS) if threads is None else check_threads(threads)


def find_zero_pages(
    buf: BufferLike, page_size: int = PAGE_SIZE, *, kernel: str = "numba", threads: int | None = None
) -> np.ndarray:
    """Which pages of ``buf`` are entirely zero.

    Parameters
    ----------
    buf : numpy array (any dtype), bytes, bytearray, memoryview or mmap; C-contiguous, a whole number of pages
    page_size : page size in bytes, a power of two from 64 to 1 GiB (MAX_PAGE_SIZE)
    kernel : "numba" (default), "native" (C, AVX-512/AVX2) or "numpy" (reference)
    threads : threads to scan with, 1 to :data:`~dsalab.buffers.MAX_THREADS` (256); None: every CPU this process
        may use, at most 256; "numpy" is single-threaded

    Returns
    -------
    numpy bool array with one entry per page, True where the page is all zero
    """
    view, ps = page_view(buf, page_size)
    _check_kernel(kernel)
    nthreads = _resolve_threads(threads)
    npages = view.nbytes // ps
    if kernel == "native":
        return _binding.find_zero_pages(view, ps, nthreads)
    if kernel == "numpy":
        return numpy_find_zero_pages(view, ps)
    out = np.empty(npages, dtype=np.bool_)
    words = view.view(np.uint64)
    wpp = ps // 8
    _parallel(lambda a, b: _numba_kernels.zero_pages_range(words, wpp, a, b, out), npages, nthreads)
    return out


def numpy_find_zero_pages(view: np.ndarray, page_size: int) -> np.ndarray:
    """NumPy reference: True where a page of a 1-D uint8 view is all zero (one ``.any`` per page row of 64-bit
    words; single-threaded, as NumPy reductions are)."""
    if view.nbytes == 0:
        return np.zeros(0, dtype=np.bool_)
    return ~view.view(np.uint64).reshape(-1, page_size // 8).any(axis=1)


def is_zero(buf: BufferLike, *, kernel: str = "native") -> bool:
    """True if every byte of ``buf`` (any length, C-contiguous) is zero."""
    view = byte_view(buf)
    _check_kernel(kernel)
    if kernel == "native":
        return _binding.is_zero(view)
    if kernel == "numba":
        return bool(_numba_kernels.bytes_zero(view))
    return not view.any()


def compare_pages(
    a: BufferLike,
    b: BufferLike,
    page_size: int = PAGE_SIZE,
    *,
    kernel: str = "numba",
    threads: int | None = None,
) -> np.ndarray:
    """Which pages of ``a`` equal the same page of ``b`` (the reviewers' memcmp), as a bool array.

    ``a`` and ``b`` must have the same length, a whole number of ``page_size``-byte pages; ``threads`` as for
    :func:`find_zero_pages` (1 to 256, or None).
    """
    va, ps = page_view(a, page_size, "a")
    vb, _ = page_view(b, ps, "b")
    if va.nbytes != vb.nbytes:
        raise InvalidArgument(f"a is {va.nbytes} bytes but b is {vb.nbytes}; they must have the same length")
    _check_kernel(kernel)
    nthreads = _resolve_threads(threads)
    npages = va.nbytes // ps
    if kernel == "native":
        return _binding.compare_pages(va, vb, ps, nthreads)
    if kernel == "numpy":
        if npages == 0:
            return np.zeros(0, dtype=np.bool_)
        return (va.reshape(npages, ps) == vb.reshape(npages, ps)).all(axis=1)
    out = np.empty(npages, dtype=np.bool_)
    wa, wb, wpp = va.view(np.uint64), vb.view(np.uint64), ps // 8
    _parallel(lambda s, e: _numba_kernels.equal_pages_range(wa, wb, wpp, s, e, out), npages, nthreads)
    return out


def numba_zero_check_address() -> int:
    """Address of the numba ``@cfunc`` zero check, ``int f(const void *buf, size_t len)``.

    Native loops (the multifd sender) call the numba baseline through this pointer, without the interpreter.
    """
    return int(_numba_kernels.zero_check_cfunc().address)


def native_zero_check_address() -> int:
    """Address of the native C zero check, same signature as :func:`numba_zero_check_address`."""
    return _binding.native_zero_fn_address()


def find_zero_pages_via_pointer(buf: BufferLike, page_size: int = PAGE_SIZE, *, address: int) -> np.ndarray:
    """Zero-page bitmap computed in C by calling the zero check at ``address`` once per page.

    ``address`` must be one of the zero checks of this module (:func:`native_zero_check_address`,
    :func:`numba_zero_check_address`): C would jump to any other number, so any other is refused."""
    view, ps = page_view(buf, page_size)
    if isinstance(address, bool) or not isinstance(address, int):
        raise InvalidType(f"address must be an int (a zero check's address), got {type(address).__name__}")
    known = (native_zero_check_address(), numba_zero_check_address())
    if address not in known:
        raise InvalidArgument(
            f"address={address:#x} is not a known zero check; allowed: kernels.native_zero_check_address() "
            "or kernels.numba_zero_check_address()"
        )
    return _binding.find_zero_pages_with(address, view, ps)


def bandwidth_reference(buf: BufferLike, threads: int = 1) -> int:
    """OR every byte of ``buf`` with no early exit (native); the memory-read bandwidth reference loop.

    ``threads``: 1 to 256 (the native loop uses at most 64)."""
    return _binding.or_reduce(byte_view(buf), check_threads(threads))
