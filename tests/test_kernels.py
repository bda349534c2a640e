"""CPU zero-page kernels against the obviously-right NumPy reference, edge cases and error cases."""

from __future__ import annotations

import mmap
import resource
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsalab import _binding, kernels
from dsalab.buffers import MAX_THREADS
from dsalab.errors import DsalabError, InvalidArgument, InvalidType

PAGE_SIZES = [64, 128, 256, 512, 4096, 8192, 65536]


def naive_zero_pages(data: bytes, page_size: int) -> list[bool]:
    """Slow and plainly right: each page compared with a page of zeros."""
    zero = bytes(page_size)
    return [data[i : i + page_size] == zero for i in range(0, len(data), page_size)]


def naive_equal_pages(a: bytes, b: bytes, page_size: int) -> list[bool]:
    return [a[i : i + page_size] == b[i : i + page_size] for i in range(0, len(a), page_size)]


@st.composite
def paged_buffers(draw, page_sizes=PAGE_SIZES[:5], max_pages=12):
    """A buffer of whole pages, each page either zero, random, or zero but a few bytes."""
    ps = draw(st.sampled_from(page_sizes))
    npages = draw(st.integers(0, max_pages))
    buf = bytearray(ps * npages)
    for p in range(npages):
        kind = draw(st.sampled_from(["zero", "few", "random"]))
        if kind == "few":
            for off in draw(st.lists(st.integers(0, ps - 1), min_size=1, max_size=3)):
                buf[p * ps + off] = draw(st.integers(1, 255))
        elif kind == "random":
            buf[p * ps : (p + 1) * ps] = draw(st.binary(min_size=ps, max_size=ps))
    return bytes(buf), ps


@pytest.mark.parametrize("kernel", kernels.KERNELS)
@given(case=paged_buffers(), threads=st.integers(1, 3))
def test_find_zero_pages_matches_reference(kernel, case, threads):
    data, ps = case
    got = kernels.find_zero_pages(data, ps, kernel=kernel, threads=threads)
    assert got.dtype == np.bool_
    assert got.tolist() == naive_zero_pages(data, ps)


@pytest.mark.parametrize("kernel", kernels.KERNELS)
@pytest.mark.parametrize("page_size", [64, 4096])
def test_single_nonzero_byte_at_every_offset(kernel, page_size):
    """A page that is zero but for one byte is not zero, wherever that byte is; its neighbours stay zero."""
    npages = 3
    for off in range(page_size):
        buf = np.zeros(npages * page_size, dtype=np.uint8)
        buf[page_size + off] = 0x80
        got = kernels.find_zero_pages(buf, page_size, kernel=kernel, threads=1)
        assert got.tolist() == [True, False, True], off


@pytest.mark.parametrize("kernel", kernels.KERNELS)
@pytest.mark.parametrize("page_size", [*PAGE_SIZES, 2 << 20])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_first_and_last_page(kernel, page_size, threads):
    npages = 7
    buf = np.zeros(npages * page_size, dtype=np.uint8)
    buf[0] = 1
    buf[-1] = 1
    expected = [False] + [True] * (npages - 2) + [False]
    assert kernels.find_zero_pages(buf, page_size, kernel=kernel, threads=threads).tolist() == expected


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_native_code_paths_agree(isa):
    """Every native code path this CPU has gives the reference answer."""
    if (isa == "avx2" and not _binding.cpu_has("avx2")) or (
        isa == "avx512" and not (_binding.cpu_has("avx512f") and _binding.cpu_has("avx512bw"))
    ):
        pytest.skip(f"this CPU lacks {isa}")
    rng = np.random.default_rng(3)
    buf = np.zeros(64 * 4096, dtype=np.uint8)
    for p in rng.choice(64, 20, replace=False):
        buf[p * 4096 + rng.integers(0, 4096)] = rng.integers(1, 256)
    expected = kernels.find_zero_pages(buf, kernel="numpy")
    try:
        _binding.set_kernel_isa(isa)
        assert _binding.kernel_isa() == isa
        assert kernels.find_zero_pages(buf, kernel="native").tolist() == expected.tolist()
        for ps in (64, 128, 256, 512):
            assert kernels.find_zero_pages(buf, ps, kernel="native").tolist() == naive_zero_pages(buf.tobytes(), ps)
        for n in (0, 1, 7, 63, 64, 65, 300, 4095):
            assert kernels.is_zero(bytes(n)) is True
            if n:
                b = bytearray(n)
                b[-1] = 1
                assert kernels.is_zero(b) is False
    finally:
        _binding.set_kernel_isa("auto")


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.uint16, np.int32, np.uint64, np.float32, np.float64, np.complex128]
)
@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_any_dtype(dtype, kernel):
    arr = np.zeros((4, 4096 // np.dtype(dtype).itemsize), dtype=dtype)
    arr[2, -1] = 1
    assert kernels.find_zero_pages(arr, kernel=kernel).tolist() == [True, True, False, True]


def test_negative_zero_is_not_a_zero_page():
    """-0.0 has its sign bit set: the page is not all zero bytes."""
    arr = np.zeros(512, dtype=np.float64)
    arr[3] = -0.0
    assert kernels.find_zero_pages(arr).tolist() == [False]


@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_buffer_types(kernel):
    data = bytearray(3 * 4096)
    data[4096 * 2 + 5] = 9
    m = mmap.mmap(-1, len(data))
    m.write(bytes(data))
    for buf in (bytes(data), data, memoryview(data), m, np.frombuffer(data, dtype=np.uint8)):
        assert kernels.find_zero_pages(buf, kernel=kernel).tolist() == [True, True, False]
    m.close()


def test_empty_buffer():
    for k in kernels.KERNELS:
        assert kernels.find_zero_pages(b"", kernel=k).size == 0
        assert kernels.compare_pages(b"", b"", kernel=k).size == 0
    assert kernels.is_zero(b"") is True


@given(n=st.integers(0, 5000), pos=st.integers(0, 4999), kernel=st.sampled_from(kernels.KERNELS))
def test_is_zero_any_length(n, pos, kernel):
    b = bytearray(n)
    assert kernels.is_zero(b, kernel=kernel) is True
    if n:
        b[pos % n] = 1
        assert kernels.is_zero(b, kernel=kernel) is False


@pytest.mark.parametrize("kernel", kernels.KERNELS)
@given(case=paged_buffers(), data=st.data())
def test_compare_pages_matches_reference(kernel, case, data):
    a, ps = case
    b = bytearray(a)
    for _ in range(data.draw(st.integers(0, 4))):
        if b:
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= data.draw(st.integers(1, 255))
    got = kernels.compare_pages(a, bytes(b), ps, kernel=kernel, threads=data.draw(st.integers(1, 3)))
    assert got.tolist() == naive_equal_pages(a, bytes(b), ps)


@pytest.mark.parametrize("which", ["numba", "native"])
def test_zero_check_function_pointer(which):
    """The C-callable zero checks (numba @cfunc and native) work when called from C through a pointer."""
    addr = kernels.numba_zero_check_address() if which == "numba" else kernels.native_zero_check_address()
    assert isinstance(addr, int) and addr != 0
    buf = np.zeros(5 * 4096, dtype=np.uint8)
    buf[4096 * 3 + 4095] = 1
    buf[7] = 2
    got = kernels.find_zero_pages_via_pointer(buf, address=addr)
    assert got.tolist() == [False, True, True, False, True]


def test_bandwidth_reference_reads_everything():
    buf = np.zeros(3 * 4096 + 17, dtype=np.uint8)
    assert kernels.bandwidth_reference(buf, 2) == 0
    buf[-1] = 0x40
    assert kernels.bandwidth_reference(buf, 1) != 0
    assert kernels.bandwidth_reference(buf, 3) != 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("ps", [0, 1, 32, 63, 100, 4095, 4097, 3 * 4096, -4096])
def test_bad_page_size(ps):
    with pytest.raises(ValueError, match=rf"page_size={ps} is not allowed.*power of two from 64 bytes to 1073741824"):
        kernels.find_zero_pages(bytes(8192), ps)
    with pytest.raises(InvalidArgument):
        kernels.compare_pages(bytes(8192), bytes(8192), ps)


@pytest.mark.parametrize("ps", [4096.0, "4096", None, True])
def test_page_size_wrong_type(ps):
    with pytest.raises(TypeError, match="page_size must be an int"):
        kernels.find_zero_pages(bytes(8192), ps)


def test_length_not_whole_pages():
    with pytest.raises(ValueError, match=r"is 5000 bytes, not a whole number of 4096-byte pages.*4096 or 8192"):
        kernels.find_zero_pages(bytes(5000))


def test_non_contiguous():
    arr = np.zeros((8, 4096), dtype=np.uint8)[:, ::2]
    with pytest.raises(ValueError, match="non-contiguous"):
        kernels.find_zero_pages(arr, 2048)
    with pytest.raises(ValueError, match="non-contiguous"):
        kernels.find_zero_pages(memoryview(bytearray(16384))[::2], 2048)


def test_unknown_kernel():
    with pytest.raises(ValueError, match=r"kernel='avx' is not known; allowed: numba, native, numpy"):
        kernels.find_zero_pages(bytes(4096), kernel="avx")
    with pytest.raises(ValueError, match="allowed"):
        kernels.is_zero(bytes(4), kernel="gpu")


@pytest.mark.parametrize("threads", [0, -1, 257, 300000, 2**70])
@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_bad_threads(threads, kernel):
    with pytest.raises(ValueError, match=rf"threads={threads} is not allowed: it must be from 1 to 256"):
        kernels.find_zero_pages(bytes(4096), kernel=kernel, threads=threads)
    with pytest.raises(ValueError, match=rf"threads={threads} is not allowed: it must be from 1 to 256"):
        kernels.compare_pages(bytes(4096), bytes(4096), kernel=kernel, threads=threads)
    with pytest.raises(ValueError, match=rf"threads={threads} is not allowed: it must be from 1 to 256"):
        kernels.bandwidth_reference(bytes(4096), threads=threads)


@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_thread_cap_itself_is_allowed(kernel):
    buf = np.zeros(300 * 64, dtype=np.uint8)
    buf[64 * 299] = 1
    expected = [True] * 299 + [False]
    assert kernels.find_zero_pages(buf, 64, kernel=kernel, threads=MAX_THREADS).tolist() == expected
    assert kernels.compare_pages(buf, buf, 64, kernel=kernel, threads=MAX_THREADS).all()


def test_python_and_native_caps_agree():
    assert MAX_THREADS == _binding.lib.DSL_MAX_THREADS == 256


_HUGE_THREADS = """
import numpy as np
from dsalab import _binding
from dsalab.errors import NativeInvalidArgument
buf = np.zeros(300000 * 64, dtype=np.uint8)
for call in (lambda: _binding.find_zero_pages(buf, 64, 300000), lambda: _binding.compare_pages(buf, buf, 64, 300000)):
    try:
        call()
    except NativeInvalidArgument as exc:
        print("refused:", exc)
"""


@pytest.mark.timeout(120)
def test_native_kernels_refuse_more_threads_than_the_cap():
    """Issue 9 item 5: 300000 threads gave a 9.6 MB array on the caller's stack (SIGSEGV); now a status code.
    In a child with the usual 8 MiB stack, so that the old crash fails this test, not the run."""

    def small_stack():
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
        resource.setrlimit(
            resource.RLIMIT_STACK, (8 << 20 if hard == resource.RLIM_INFINITY else min(8 << 20, hard), hard)
        )

    r = subprocess.run(
        [sys.executable, "-c", _HUGE_THREADS], capture_output=True, text=True, timeout=100, preexec_fn=small_stack
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.count("refused:") == 2 and "EINVAL" in r.stdout, r.stdout


def test_threads_wrong_type():
    with pytest.raises(TypeError, match="threads must be an int"):
        kernels.find_zero_pages(bytes(4096), threads=1.5)


def test_not_a_buffer():
    with pytest.raises(TypeError, match="must be a buffer"):
        kernels.find_zero_pages("0000" * 1024)
    with pytest.raises(TypeError, match="must be a buffer"):
        kernels.find_zero_pages([0] * 4096)


def test_compare_length_mismatch():
    with pytest.raises(ValueError, match="a is 8192 bytes but b is 4096"):
        kernels.compare_pages(bytes(8192), bytes(4096))


def test_errors_share_one_root():
    for exc in (InvalidArgument, InvalidType):
        assert issubclass(exc, DsalabError)


# ---- escapes the fuzzer found (issue 9): each was a bare TypeError/ValueError/OverflowError or worse ----


@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_object_arrays_are_refused(kernel):
    for buf in (np.zeros(512, dtype=object), np.zeros(64, dtype=[("a", "u1"), ("o", object)])):
        with pytest.raises(InvalidType, match=r"buf is a numpy array of dtype .* \(references to Python objects"):
            kernels.find_zero_pages(buf, 64, kernel=kernel)
        with pytest.raises(InvalidType, match=r"references to Python objects"):
            kernels.is_zero(buf, kernel=kernel)


@pytest.mark.parametrize("page_size", [2**31, 2**64, 2**70])
@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_page_size_above_1_gib_is_refused(page_size, kernel):
    with pytest.raises(InvalidArgument, match=rf"page_size={page_size} is not allowed: .* to 1073741824 \(1 GiB\)"):
        kernels.find_zero_pages(b"", page_size, kernel=kernel)
    with pytest.raises(InvalidArgument, match="1 GiB"):
        kernels.compare_pages(b"", b"", page_size, kernel=kernel)


def test_kernel_name_of_another_type_is_refused():
    for kernel in (np.array(["numba", "native"]), None, b"numba", ["numba"]):
        with pytest.raises(InvalidArgument, match=r"kernel=.* is not known; allowed: numba, native, numpy"):
            kernels.find_zero_pages(bytes(4096), kernel=kernel)


_BAD_ADDRESSES = """
from dsalab import kernels
from dsalab.errors import InvalidArgument, InvalidType
for address in (1, -1, 4096, 2**64, 2**70, "0x1000"):
    try:
        kernels.find_zero_pages_via_pointer(bytes(4096), address=address)
    except (InvalidArgument, InvalidType) as exc:
        print("refused:", exc)
"""


@pytest.mark.timeout(120)
def test_pointer_kernel_refuses_unknown_addresses():
    """C would jump to the address (SIGSEGV on the old code, hence a child): only the two zero checks of the
    package are accepted."""
    r = subprocess.run([sys.executable, "-c", _BAD_ADDRESSES], capture_output=True, text=True, timeout=100)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    lines = r.stdout.splitlines()
    assert len(lines) == 6, r.stdout
    assert all("is not a known zero check; allowed: kernels.native_zero_check_address()" in x for x in lines[:5])
    assert "address must be an int" in lines[5]
