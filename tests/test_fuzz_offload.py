"""Fuzzing the public offload API (issue 9): whatever a caller passes to ``Offloader(...)`` and to its calls, the
outcome is a result equal to the CPU kernels' or a :class:`~dsalab.errors.DsalabError` with a one-line message,
never a crash, a hang or another exception type."""

from __future__ import annotations

import fractions
import threading

import numpy as np
import pytest
from fuzzing import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from dsalab import kernels
from dsalab.devices import open_device
from dsalab.errors import DsalabError
from dsalab.offload import Offloader

FUZZ = settings(max_examples=examples(80), deadline=None)

# numbers of every kind a careless caller passes: ints of any size, floats with NaN and infinities, bools,
# fractions, numpy scalars, strings and None
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 5000),
    st.booleans(),
    st.fractions(max_denominator=1000).map(fractions.Fraction),
    st.integers(0, 300).map(np.int64),
    st.floats(allow_nan=True, allow_infinity=True).map(np.float64),
    st.sampled_from(["1", "", None, [1], 1j]),
)
# device specs, good and bad; every good one is fast (no timing model or a quick one), so no call waits long
SPECS = st.sampled_from(
    [
        "emu:gbps=0",
        "emu:gbps=0,engines=1,wq_size=2,mode=dedicated",
        "emu:gbps=50,fault_rate=0.3,queue_full_rate=0.3,seed=3",
        "emu:gbps=0,vanish_after=3",
        "emu:gbps=0,max_batch=2",
        "emu:gbps=nan",
        "emu:gbps=-1",
        "emu:engines=0",
        "emu:bogus=1",
        "emu:",
        "emu:gbps",
        "",
        "wq0.0",
        "/nonexistent/dsa/wq9.9",
        "emu:gbps=0?write",
    ]
)
DEVICES = st.one_of(
    SPECS,
    st.lists(SPECS, max_size=3),
    st.integers(-2, 3),
    st.sampled_from([65, 10**20, True, None, 2.5, [], [3.5], {"emu": 1}, b"emu"]),
)


def one_line(exc: BaseException) -> None:
    assert isinstance(exc, DsalabError), f"{type(exc).__name__}: {exc}"
    assert "\n" not in str(exc) and str(exc), repr(exc)


def pages(rng: np.random.Generator, npages: int, page_size: int) -> np.ndarray:
    buf = np.zeros(npages * page_size, dtype=np.uint8)
    for p in np.flatnonzero(rng.random(npages) < 0.5):
        buf[p * page_size + rng.integers(0, page_size)] = rng.integers(1, 256)
    return buf


def page_pair(rng: np.random.Generator, npages: int) -> tuple[np.ndarray, np.ndarray]:
    """Random 4 KiB pages, and a copy with one byte changed (when there is a byte)."""
    buf = pages(rng, npages, 4096)
    other = buf.copy()
    if buf.size:
        other[int(rng.integers(0, buf.size))] ^= 0x5A
    return buf, other


@pytest.mark.timeout(300)
@FUZZ
@given(
    devices=DEVICES,
    options=st.fixed_dictionaries(
        {
            "batch_size": st.one_of(st.integers(-2, 4100), NUMBERS),
            "completion": st.sampled_from(["thread", "poll", "umwait", "irq", "", None, 1]),
            "max_retries": st.one_of(st.integers(-2, 64), NUMBERS),
            "cpu_fraction": st.one_of(st.floats(0, 1), NUMBERS),
            "timeout_ms": st.one_of(st.floats(0.0005, 2000), NUMBERS),
            "spin_us": st.one_of(st.floats(0, 1200), NUMBERS),
            "workers": st.one_of(st.integers(-1, 300), NUMBERS),
        }
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_offloader_arguments(devices, options, seed):
    try:
        off = Offloader(devices, **options)
    except Exception as exc:
        one_line(exc)
        return
    rng = np.random.default_rng(seed)
    try:
        buf, other = page_pair(rng, int(rng.integers(0, 40)))
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        assert off.compare_pages(buf, other).tolist() == kernels.compare_pages(buf, other).tolist()
        fut = off.submit_zero_check(buf)
        assert fut.result(timeout=120).tolist() == kernels.find_zero_pages(buf).tolist()
        s = off.stats()
        assert s["pages_offloaded"] + s["pages_cpu"] == s["pages"]
    finally:
        off.close()


BUFFERS = st.one_of(
    st.integers(0, 9).map(lambda n: np.zeros(n * 4096, np.uint8)),
    st.integers(0, 3).map(lambda n: np.ones((n, 1024), np.float32)),
    st.integers(0, 9).map(lambda n: bytes(n * 4096)),
    st.integers(0, 9).map(lambda n: bytearray(n * 4096)),
    st.integers(0, 4).map(lambda n: memoryview(bytes(n * 8192))),
    st.integers(1, 4).map(lambda n: np.zeros(n * 8192, np.uint8)[::2]),
    st.integers(0, 9999).map(lambda n: np.zeros(n, np.uint8)),
    st.sampled_from(["abc", None, 3, [0] * 4096, np.zeros(4096, object)]),
)
PAGE_SIZES = st.one_of(
    st.sampled_from([4096, 64, 8192, 65536, 2**31, 2**32, 2**40, 2**80]),
    st.integers(-5, 5000),
    NUMBERS,
)
HINTS = st.one_of(st.integers(-3, 4), NUMBERS)


@pytest.fixture(scope="module")
def shared():
    dev = open_device("emu:gbps=0,fault_rate=0.2,seed=5")
    off = Offloader([dev, "emu:gbps=0"], batch_size=4)
    yield off
    off.close()
    dev.close()


@pytest.mark.timeout(300)
@FUZZ
@given(a=BUFFERS, b=BUFFERS, page_size=PAGE_SIZES, device=HINTS, which=st.sampled_from(["zero", "cmp", "fut", "fcmp"]))
def test_offloader_calls(shared, a, b, page_size, device, which):
    def cpu() -> list:
        return (
            kernels.find_zero_pages(a, page_size)
            if which in ("zero", "fut")
            else kernels.compare_pages(a, b, page_size)
        ).tolist()

    try:
        if which == "zero":
            got = shared.find_zero_pages(a, page_size, device=device)
        elif which == "cmp":
            got = shared.compare_pages(a, b, page_size, device=device)
        elif which == "fut":
            got = shared.submit_zero_check(a, page_size).result(timeout=120)
        else:
            got = shared.compare(a, b, page_size).result(timeout=120)
    except Exception as exc:
        one_line(exc)
        return
    assert got.tolist() == cpu()


@pytest.mark.timeout(120)
@settings(max_examples=examples(30), deadline=None)
@given(
    closes=st.integers(1, 3),
    callers=st.integers(1, 4),
    which=st.sampled_from(["zero", "cmp", "fut"]),
    delay=st.sampled_from([0.0, 0.001, 0.01]),
)
def test_close_racing_any_call(closes, callers, which, delay):
    """close() (from several threads) racing any call: results are right or the error says 'closed'."""
    import time

    buf = np.zeros(256 * 4096, np.uint8)
    buf[::8192] = 1
    want = kernels.find_zero_pages(buf).tolist()
    want_eq = [True] * 256
    off = Offloader(["emu:gbps=2", "emu:gbps=2"], batch_size=16)
    bad: list[BaseException] = []

    def call() -> None:
        try:
            if which == "zero":
                ok = off.find_zero_pages(buf).tolist() == want
            elif which == "cmp":
                ok = off.compare_pages(buf, buf).tolist() == want_eq
            else:
                ok = off.submit_zero_check(buf).result(timeout=60).tolist() == want
            if not ok:
                bad.append(AssertionError("wrong answer"))
        except DsalabError as exc:
            if "closed" not in str(exc):
                bad.append(exc)
        except BaseException as exc:
            bad.append(exc)

    def close() -> None:
        try:
            off.close()
        except BaseException as exc:
            bad.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    time.sleep(delay)
    closers = [threading.Thread(target=close) for _ in range(closes)]
    for t in closers:
        t.start()
    for t in threads + closers:
        t.join(60)
        assert not t.is_alive()
    assert not bad, bad


GOOD_SPECS = st.sampled_from(
    [
        "emu:gbps=0",
        "emu:gbps=0,engines=1,wq_size=2,mode=dedicated",
        "emu:gbps=50,fault_rate=0.3,queue_full_rate=0.3,seed=3",
        "emu:gbps=0,vanish_after=3",
        "emu:gbps=0,max_batch=2",
        "emu:gbps=5,wq_size=1,mode=dedicated",
    ]
)


@pytest.mark.timeout(300)
@FUZZ
@given(
    devices=st.one_of(GOOD_SPECS, st.lists(GOOD_SPECS, min_size=1, max_size=3), st.integers(1, 2)),
    options=st.fixed_dictionaries(
        {
            "batch_size": st.one_of(st.integers(1, 1024), st.sampled_from([1, 2, 1024])),
            "completion": st.sampled_from(["thread", "poll"]),
            "max_retries": st.integers(0, 1000),
            "cpu_fraction": st.one_of(st.floats(0, 1), st.sampled_from([0, 1, 0.5])),
            "timeout_ms": st.one_of(st.floats(0.001, 2000), st.sampled_from([0.001, 3_600_000])),
            "spin_us": st.one_of(st.floats(0, 1000), st.sampled_from([0, 1000])),
            "workers": st.integers(1, 8),
        }
    ),
    npages=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
)
def test_offloader_valid_arguments_answer_like_the_cpu(devices, options, npages, seed):
    """Every combination of allowed values (edges included) answers exactly as the CPU kernels, every page
    accounted for once."""
    buf, other = page_pair(np.random.default_rng(seed), npages)
    with Offloader(devices, **options) as off:
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        assert off.compare_pages(buf, other).tolist() == kernels.compare_pages(buf, other).tolist()
        s = off.stats()
    assert s["pages_offloaded"] + s["pages_cpu"] == s["pages"] == 2 * npages
    assert s["stalls"] == 0
