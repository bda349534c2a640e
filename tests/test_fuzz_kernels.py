"""Fuzzing the kernels' public entry points (issue 9): whatever the buffer (any dtype, shape, contiguity, length,
buffer type) and whatever the arguments (page sizes including 0, negatives, non-powers of two and huge ones,
threads, kernel names, function addresses), every call ends in a right result or a DsalabError: never a crash,
never another exception type."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from fuzzing import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsalab import kernels
from dsalab.errors import DsalabError

FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = [
    np.uint8,
    np.int8,
    np.int16,
    np.uint32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
    np.complex128,
    np.bool_,
    "datetime64[ns]",
    "timedelta64[s]",
    "S3",
    "U2",
    "V5",
    np.dtype([("a", "u1"), ("b", "<f8")]),
    object,
    np.dtype([("a", "u1"), ("o", object)]),
]

page_sizes = st.one_of(
    st.sampled_from([64, 128, 4096, 65536, 2**21, 2**30]),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 63, 96, 100, 4095, 4097, 3 * 4096, -4096, 2**31, 2**40, 2**64, 2**70]),
    st.sampled_from([4096.0, float("nan"), float("inf"), "4096", None, True, b"x", [4096], np.int64(4096)]),
    st.sampled_from([np.uint64(4096), np.int32(-64), np.array(4096), np.array([64, 128])]),
)
threads = st.one_of(
    st.none(),
    st.integers(-3, 300),
    st.sampled_from([0, 255, 256, 257, 300000, 2**31, 2**63, 2**70, -(2**70)]),
    st.sampled_from([1.0, float("nan"), "2", True, False, np.int64(2), np.uint8(3), np.array(2), [1]]),
)
kernel_names = st.one_of(
    st.sampled_from(kernels.KERNELS),
    st.sampled_from(["NUMBA", "", "c", None, 1, b"numba", ("numba",), np.array(["numba", "native"])]),
)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.one_of(st.just(()), st.lists(st.integers(0, 70), min_size=1, max_size=3)))
    n = int(np.prod(shape)) if shape else 1
    if n * max(dtype.itemsize, 1) > 1 << 20:
        shape, n = (4,), 4
    a = np.zeros(shape, dtype=dtype)
    if n and dtype.kind not in "OV" and dtype.names is None and draw(st.booleans()):
        flat = a.reshape(-1).view(np.uint8)
        for i in draw(st.lists(st.integers(0, max(flat.size - 1, 0)), max_size=4)):
            if flat.size:
                flat[i] = draw(st.integers(1, 255))
    how = draw(st.sampled_from(["c", "f", "step", "transpose", "offset", "readonly"]))
    if how == "f" and a.ndim:
        a = np.asfortranarray(a)
    elif how == "step" and a.ndim and a.shape[0] > 1:
        a = a[::2]
    elif how == "transpose" and a.ndim > 1:
        a = a.T
    elif how == "offset" and a.ndim == 1 and dtype == np.uint8 and a.size > 1:
        a = a[1:]  # unaligned for 64-bit words
    elif how == "readonly":
        a.flags.writeable = False
    return a


@st.composite
def byte_objects(draw):
    data = draw(st.one_of(st.binary(max_size=9000), st.integers(0, 6).map(lambda k: bytes(64 * 2**k))))
    kind = draw(st.sampled_from(["bytes", "bytearray", "memoryview", "mv-strided", "mv-cast", "mmap", "np-offset"]))
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    if kind == "mv-strided":
        return memoryview(data)[::3]
    if kind == "mv-cast" and len(data) >= 8:
        return memoryview(data[: len(data) // 8 * 8]).cast("d")
    if kind == "mmap" and data:
        m = mmap.mmap(-1, len(data))
        m.write(data)
        return m
    if kind == "np-offset" and len(data) > 1:
        return np.frombuffer(b"\0" + data, dtype=np.uint8)[1:]
    return data


buffers = st.one_of(
    arrays(),
    byte_objects(),
    st.sampled_from(["text", None, 12, 3.5, [0] * 64, object(), np.float64(0.0)]),
)


def reference_zero(view: np.ndarray, page_size: int) -> list[bool]:
    raw = view.tobytes()
    return [not any(raw[i : i + page_size]) for i in range(0, len(raw), page_size)]


def _bytes_of(buf) -> bytes | None:
    """The bytes a kernel must see, or None where it must refuse the buffer."""
    if isinstance(buf, np.ndarray):
        return buf.tobytes() if buf.flags.c_contiguous and not buf.dtype.hasobject else None
    if isinstance(buf, str):
        return None
    try:
        mv = memoryview(buf)
    except TypeError:
        return None
    return mv.tobytes() if mv.c_contiguous else None


@FUZZ
@given(buf=buffers, page_size=page_sizes, kernel=kernel_names, nthreads=threads)
def test_find_zero_pages_fuzz(buf, page_size, kernel, nthreads):
    try:
        got = kernels.find_zero_pages(buf, page_size, kernel=kernel, threads=nthreads)
    except DsalabError:
        return
    raw = _bytes_of(buf)
    ps = int(page_size)
    assert raw is not None and len(raw) % ps == 0
    assert got.dtype == np.bool_ and got.tolist() == [not any(raw[i : i + ps]) for i in range(0, len(raw), ps)]


@FUZZ
@given(a=buffers, b=buffers, page_size=page_sizes, kernel=kernel_names, nthreads=threads, same=st.booleans())
def test_compare_pages_fuzz(a, b, page_size, kernel, nthreads, same):
    if same:
        b = a
    try:
        got = kernels.compare_pages(a, b, page_size, kernel=kernel, threads=nthreads)
    except DsalabError:
        return
    ra, rb, ps = _bytes_of(a), _bytes_of(b), int(page_size)
    assert ra is not None and rb is not None and len(ra) == len(rb) and len(ra) % ps == 0
    assert got.tolist() == [ra[i : i + ps] == rb[i : i + ps] for i in range(0, len(ra), ps)]


@FUZZ
@given(buf=buffers, kernel=kernel_names)
def test_is_zero_fuzz(buf, kernel):
    try:
        got = kernels.is_zero(buf, kernel=kernel)
    except DsalabError:
        return
    raw = _bytes_of(buf)
    assert raw is not None and got == (not any(raw))


@FUZZ
@given(buf=buffers, nthreads=threads)
def test_bandwidth_reference_fuzz(buf, nthreads):
    try:
        got = kernels.bandwidth_reference(buf, threads=nthreads)
    except DsalabError:
        return
    raw = _bytes_of(buf)
    assert raw is not None and (got == 0) == (not any(raw))


@pytest.fixture(scope="module")
def addresses():
    return [kernels.native_zero_check_address(), kernels.numba_zero_check_address()]


@FUZZ
@given(
    buf=buffers,
    page_size=page_sizes,
    which=st.sampled_from([0, 1, "zero", "junk"]),
    junk=st.sampled_from([2**64, 2**70, -(2**70), "0x1000", None, 1.5, True, b"\0"]),  # small ints: test_kernels
)
def test_find_zero_pages_via_pointer_fuzz(addresses, buf, page_size, which, junk):
    address = addresses[which] if isinstance(which, int) else 0 if which == "zero" else junk
    try:
        got = kernels.find_zero_pages_via_pointer(buf, page_size, address=address)
    except DsalabError:
        return
    raw, ps = _bytes_of(buf), int(page_size)
    assert address in addresses and raw is not None
    assert got.tolist() == [not any(raw[i : i + ps]) for i in range(0, len(raw), ps)]
