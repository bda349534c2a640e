"""The offload API: results identical to the CPU kernels in every case, counters that say who did what,
futures and callbacks, many threads at once, and faults that never lose a page or hang."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsalab import _binding, kernels
from dsalab.devices import open_device, open_write_path
from dsalab.errors import DsalabError, Unsupported
from dsalab.offload import REASONS, Offloader

FAST = "emu:gbps=0"  # no timing model: as fast as the host runs it
MODES = [m for m in ("thread", "poll", "umwait") if m != "umwait" or _binding.umwait_supported()]


def random_pages(rng: np.random.Generator, npages: int, page_size: int = 4096, zero_ratio: float = 0.5) -> np.ndarray:
    buf = np.zeros(npages * page_size, dtype=np.uint8)
    for p in np.flatnonzero(rng.random(npages) >= zero_ratio):
        buf[p * page_size + rng.integers(0, page_size)] = rng.integers(1, 256)
    return buf


def assert_accounted(stats: dict) -> None:
    """Every page was answered once: by a device, or by the CPU for a named reason; no waiter missed a wake-up."""
    assert stats["pages_offloaded"] + sum(stats["pages_cpu_by_reason"].values()) == stats["pages"]
    assert stats["stalls"] == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("completion", MODES)
@pytest.mark.parametrize("batch_size", [1, 8, 32, 128, 512])
def test_equal_to_cpu_kernels(completion, batch_size):
    rng = np.random.default_rng(batch_size)
    with Offloader([FAST, FAST], batch_size=batch_size, completion=completion) as off:
        for npages in (0, 1, 7, 300):
            buf = random_pages(rng, npages)
            assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf, kernel="numpy").tolist()
        s = off.stats()
        assert_accounted(s)
        assert s["pages_offloaded"] == s["pages"] == 308 and s["pages_cpu"] == 0
        if batch_size > 1:
            assert s["batches"] > 0


@pytest.mark.timeout(120)
@given(
    data=st.data(),
    page_size=st.sampled_from([4096, 8192, 65536]),
    batch_size=st.integers(1, 64),
    cpu_fraction=st.sampled_from([0.0, 0.25, 1.0]),
)
def test_hypothesis_zero_and_compare(data, page_size, batch_size, cpu_fraction):
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    npages = data.draw(st.integers(0, 40))
    buf = random_pages(rng, npages, page_size, zero_ratio=data.draw(st.floats(0, 1)))
    other = buf.copy()
    if npages:
        for p in rng.choice(npages, min(npages, 3), replace=False):
            other[p * page_size + rng.integers(0, page_size)] ^= 0x11
    with Offloader(
        FAST, batch_size=batch_size, cpu_fraction=cpu_fraction, completion=data.draw(st.sampled_from(MODES))
    ) as off:
        assert off.find_zero_pages(buf, page_size).tolist() == kernels.find_zero_pages(buf, page_size).tolist()
        assert (
            off.compare_pages(buf, other, page_size).tolist() == kernels.compare_pages(buf, other, page_size).tolist()
        )
        s = off.stats()
        assert_accounted(s)
        assert s["pages_cpu_by_reason"]["fraction"] == 2 * int(npages * cpu_fraction)


@pytest.mark.timeout(120)
def test_page_faults_are_finished_on_the_cpu_and_counted():
    rng = np.random.default_rng(5)
    buf = random_pages(rng, 2000, zero_ratio=0.7)
    with Offloader("emu:gbps=0,fault_rate=0.2,seed=9", batch_size=16) as off:
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        s = off.stats()
    assert_accounted(s)
    assert s["page_faults"] > 0 and s["pages_cpu_by_reason"]["page_fault"] > 0
    assert s["pages_offloaded"] > 0 and s["partial_bytes_on_cpu"] > 0
    assert s["devices"][0]["page_faults"] == s["page_faults"]


@pytest.mark.timeout(120)
def test_full_queue_is_retried_then_falls_back():
    rng = np.random.default_rng(6)
    buf = random_pages(rng, 512)
    with Offloader("emu:gbps=0,queue_full_rate=0.5,seed=1", batch_size=8, max_retries=32) as off:
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        retried = off.stats()
    assert retried["retries"] > 0 and retried["pages_offloaded"] == 512
    with Offloader("emu:gbps=0,queue_full_rate=1.0", batch_size=8, max_retries=3) as off:
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        refused = off.stats()
    assert refused["pages_cpu_by_reason"]["queue_full"] == 512 and refused["retries"] == 3 * 512 // 8
    assert_accounted(refused)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("completion", MODES)
def test_device_lost_mid_run(completion):
    rng = np.random.default_rng(7)
    buf = random_pages(rng, 1000)
    with Offloader("emu:gbps=0,vanish_after=5", batch_size=16, completion=completion, timeout_ms=2000) as off:
        for _ in range(3):
            assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        s = off.stats()
    assert_accounted(s)
    assert s["pages_cpu_by_reason"]["device_gone"] > 0 and s["devices"][0]["gone"]


@pytest.mark.timeout(120)
def test_dedicated_queue_is_never_overfilled():
    rng = np.random.default_rng(8)
    buf = random_pages(rng, 4096)
    with Offloader("emu:gbps=5,mode=dedicated,wq_size=4", batch_size=8, completion="poll") as off:
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        s = off.stats()
    assert s["devices"][0]["dropped"] == 0  # the submitter kept within the queue's credits
    assert_accounted(s)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("devices", [1, 2, 4])
def test_large_requests_never_stall(devices):
    """Many batches per request, with the timing model on: the completion thread wakes the submitter at every
    half window, and never leaves it to its one-second guard."""
    buf = np.zeros(32 << 20, dtype=np.uint8)
    with Offloader(["emu:gbps=30"] * devices, batch_size=128, completion="thread") as off:
        for _ in range(4):
            assert off.find_zero_pages(buf).all()
        s = off.stats()
    assert_accounted(s)
    assert s["batches"] == 4 * (32 << 20) // 4096 // 128


@pytest.mark.timeout(120)
def test_write_path_sends_single_descriptors():
    rng = np.random.default_rng(9)
    buf = random_pages(rng, 200)
    with open_write_path("emu:gbps=0") as dev, Offloader(dev, batch_size=64) as off:
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        s = off.stats()
    assert s["batches"] == 0 and s["descriptors"] == 200 and s["pages_offloaded"] == 200


@pytest.mark.timeout(180)
def test_sixteen_threads_with_faults_lose_nothing():
    rng = np.random.default_rng(10)
    bufs = [random_pages(rng, int(rng.integers(1, 200))) for _ in range(8)]
    expected = [kernels.find_zero_pages(b).tolist() for b in bufs]
    specs = [
        "emu:gbps=0,fault_rate=0.05,queue_full_rate=0.05,wq_size=8,seed=1",
        "emu:gbps=20,fault_rate=0.05,queue_full_rate=0.05,wq_size=8,seed=2",
    ]
    with Offloader(specs, batch_size=16, max_retries=4) as off:

        def work(i: int) -> bool:
            return all(off.find_zero_pages(bufs[(i + k) % 8]).tolist() == expected[(i + k) % 8] for k in range(25))

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            assert all(pool.map(work, range(16), timeout=150))
        s = off.stats()
    assert_accounted(s)
    assert s["requests"] == 16 * 25


@pytest.mark.timeout(60)
def test_futures_and_callbacks():
    rng = np.random.default_rng(11)
    a = random_pages(rng, 64)
    b = a.copy()
    b[4096 * 10] ^= 1
    got, event = [], threading.Event()
    with Offloader(FAST) as off:
        fut = off.submit_zero_check(a, callback=lambda r: (got.append(r), event.set()))
        result = fut.result(timeout=30)
        assert event.wait(30)
        assert len(got) == 1 and got[0] is result
        assert result.tolist() == kernels.find_zero_pages(a).tolist()
        eq = off.compare(a, b, callback=got.append).result(timeout=30)
        assert eq.tolist() == [i != 10 for i in range(64)]
        # the callback gets the exception when the work fails
        failed = threading.Event()
        seen = []

        def boom():
            raise DsalabError("device on fire")

        f = off._future(boom, lambda r: (seen.append(r), failed.set()))
        assert failed.wait(30) and isinstance(seen[0], DsalabError) and f.exception() is seen[0]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"completion='irq' is not allowed; allowed: thread, poll, umwait"):
        Offloader(FAST, completion="irq")
    with pytest.raises(ValueError, match="batch_size=0"):
        Offloader(FAST, batch_size=0)
    with pytest.raises(ValueError, match="cpu_fraction=2"):
        Offloader(FAST, cpu_fraction=2)
    with pytest.raises(TypeError, match="Device objects or spec strings"):
        Offloader([3.5])
    with Offloader(FAST) as off:
        with pytest.raises(ValueError, match="not a whole number of 4096-byte pages"):
            off.find_zero_pages(bytes(5000))
        with pytest.raises(ValueError, match="page_size=100 is not allowed"):
            off.submit_zero_check(bytes(8192), 100)
        with pytest.raises(ValueError, match="same length"):
            off.compare(bytes(8192), bytes(4096))
    with pytest.raises(ValueError, match="closed"):
        off.find_zero_pages(bytes(4096))


def test_umwait_where_supported_or_a_clear_error():
    if _binding.umwait_supported():
        with Offloader(FAST, completion="umwait") as off:
            assert off.find_zero_pages(bytes(8192)).tolist() == [True, True]
    else:
        with pytest.raises(Unsupported, match=r"WAITPKG.*allowed here: thread, poll"):
            Offloader(FAST, completion="umwait")


def test_devices_opened_by_the_offloader_are_closed_with_it():
    dev = open_device(FAST)
    with Offloader([dev, FAST]) as off:
        owned = off._owned
    assert dev._handle is not None and all(d._handle is None for d in owned)
    dev.close()
    assert set(REASONS) == {"fraction", "page_fault", "queue_full", "device_gone", "timeout", "error", "closed"}
