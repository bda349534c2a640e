"""Private numba kernels: plain arrays and scalars in and out, no validation (that is :mod:`dsalab.kernels`).

Pages are scanned as 64-bit words in 256-byte blocks (32 words) with an exit at the first non-zero block.
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, types

from dsalab.config import NUMBA_OPTIONS, ngjit

BLOCK_WORDS = 32  # 256 bytes


@ngjit
def words_zero(words, start, stop):
    """True if words[start:stop] are all zero (256-byte blocks, early exit)."""
    i = start
    while i + BLOCK_WORDS <= stop:
        acc = np.uint64(0)
        for k in range(BLOCK_WORDS):
            acc |= words[i + k]
        if acc != 0:
            return False
        i += BLOCK_WORDS
    acc = np.uint64(0)
    for k in range(i, stop):
        acc |= words[k]
    return acc == 0


@ngjit
def zero_pages_range(words, words_per_page, first, last, out):
    """out[p] = page p is all zero, for pages [first, last).

    The loop runs over slices from index 0 and writes the block loop out (not a call to :func:`words_zero`):
    with indices LLVM cannot prove non-negative, numba's negative-index wraparound stops vectorisation and the
    kernel runs at a third of the speed."""
    w = words[first * words_per_page : last * words_per_page]
    o = out[first:last]
    for p in range(w.size // words_per_page):
        base = p * words_per_page
        stop = base + words_per_page
        zero = True
        i = base
        while i + BLOCK_WORDS <= stop:
            acc = np.uint64(0)
            for k in range(BLOCK_WORDS):
                acc |= w[i + k]
            if acc != 0:
                zero = False
                break
            i += BLOCK_WORDS
        if zero and i < stop:  # pages smaller than one block
            acc = np.uint64(0)
            for k in range(i, stop):
                acc |= w[k]
            zero = acc == 0
        o[p] = zero


@ngjit
def bytes_zero(data):
    """True if a 1-D uint8 array (any length) is all zero."""
    n8 = data.size // 8
    for i in range(n8 * 8, data.size):
        if data[i] != 0:
            return False
    if n8 == 0:
        return True
    return words_zero(data[: n8 * 8].view(np.uint64), 0, n8)


@ngjit
def equal_pages_range(a, b, words_per_page, first, last, out):
    """out[p] = page p of a equals page p of b, for pages [first, last) (word arrays, early exit per block)."""
    wa = a[first * words_per_page : last * words_per_page]
    wb = b[first * words_per_page : last * words_per_page]
    o = out[first:last]
    for p in range(wa.size // words_per_page):
        base = p * words_per_page
        stop = base + words_per_page
        eq = True
        i = base
        while i + BLOCK_WORDS <= stop:
            acc = np.uint64(0)
            for k in range(BLOCK_WORDS):
                acc |= wa[i + k] ^ wb[i + k]
            if acc != 0:
                eq = False
                break
            i += BLOCK_WORDS
        if eq and i < stop:  # pages smaller than one block
            acc = np.uint64(0)
            for k in range(i, stop):
                acc |= wa[k] ^ wb[k]
            eq = acc == 0
        o[p] = eq


# C-callable form of the zero check, ``int f(const void *buf, size_t len)``, for native loops that take a
# function pointer (the multifd sender). Built lazily: compiling a cfunc costs a second on first use.
_CFUNC_SIG = types.intc(types.voidptr, types.size_t)
_cfunc = None


def _cf_is_zero(ptr, length):
    data = carray(ptr, (length,), dtype=np.uint8)
    return 1 if bytes_zero(data) else 0


def zero_check_cfunc():
    """The numba ``@cfunc`` zero check (compiled on first call)."""
    global _cfunc
    if _cfunc is None:
        _cfunc = cfunc(_CFUNC_SIG, nopython=True, cache=NUMBA_OPTIONS["cache"])(_cf_is_zero)
    return _cfunc
