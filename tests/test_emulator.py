"""The emulated device: the same descriptors and completion records as the hardware, its work queue, timing
model and injected faults, seen through raw submissions."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dsalab import _binding
from dsalab.devices import open_device, open_write_path

SUCCESS, PAGE_FAULT_NOBOF, BATCH_FAIL, BATCH_PAGE_FAULT, BAD_OPCODE, DESC_CNT_ERANGE = 1, 3, 5, 6, 0x10, 0x14
OK, EINVAL, EQUEUE_FULL, EGONE = 0, 1, 4, 5


def wait_record(req: _binding.RawRequest, i: int | None = None, timeout: float = 10.0) -> dict[str, int]:
    """Poll record ``i`` (None: the batch record) until its status is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = req.record(i)
        if rec["status"]:
            return rec
        time.sleep(0.0005)
    raise AssertionError(f"no completion record within {timeout} s")


def pages(n: int, nonzero: dict[int, int] | None = None) -> list[np.ndarray]:
    out = [np.zeros(4096, dtype=np.uint8) for _ in range(n)]
    for p, off in (nonzero or {}).items():
        out[p][off] = 7
    return out


@pytest.mark.timeout(30)
def test_compval_results_and_bytes_completed():
    with open_device("emu:gbps=0") as dev:
        srcs = pages(2, {1: 1000})
        zero = _binding.RawRequest("compval", srcs[:1])
        assert zero.submit(dev._handle, batch=False) == OK
        assert wait_record(zero, 0) == {"status": SUCCESS, "result": 0, "bytes_completed": 4096, "fault_addr": 0}
        other = _binding.RawRequest("compval", srcs[1:])
        other.submit(dev._handle, batch=False)
        rec = wait_record(other, 0)
        assert (rec["status"], rec["result"], rec["bytes_completed"]) == (SUCCESS, 1, 1000)


@pytest.mark.timeout(30)
def test_compare_and_batch_records():
    with open_device("emu:gbps=0") as dev:
        a = pages(3, {2: 5})
        b = pages(3)
        req = _binding.RawRequest("compare", a, b)
        assert req.submit(dev._handle, batch=True) == OK
        batch = wait_record(req)
        assert batch["status"] == SUCCESS and batch["bytes_completed"] == 3  # descriptors completed
        assert [req.record(i)["result"] for i in range(3)] == [0, 0, 1]
        assert all(req.record(i)["status"] == SUCCESS for i in range(3))


@pytest.mark.timeout(30)
def test_injected_page_fault_is_a_partial_completion():
    with open_device("emu:gbps=0,fault_rate=1.0,seed=2") as dev:
        big = np.zeros(4 * 4096, dtype=np.uint8)
        req = _binding.RawRequest("compval", [big])
        req.submit(dev._handle, batch=False)
        rec = wait_record(req, 0)
        assert rec["status"] == PAGE_FAULT_NOBOF
        assert rec["bytes_completed"] % 4096 == 0 and rec["bytes_completed"] < big.nbytes
        assert rec["fault_addr"] == req.address(0) + rec["bytes_completed"]
        # a batch's descriptor list faults too: nothing ran
        batch = _binding.RawRequest("compval", pages(2))
        batch.submit(dev._handle, batch=True)
        assert wait_record(batch)["status"] == BATCH_PAGE_FAULT
        assert dev.info()["page_faults"] == 2


@pytest.mark.timeout(30)
def test_difference_before_the_fault_completes_normally():
    """A page fault after a difference was found does not matter: the hardware answers "differs"."""
    with open_device("emu:gbps=0,fault_rate=1.0,seed=11") as dev:
        for _ in range(20):
            buf = np.zeros(8 * 4096, dtype=np.uint8)
            buf[3] = 1  # before any fault point except offset 0
            req = _binding.RawRequest("compval", [buf])
            req.submit(dev._handle, batch=False)
            rec = wait_record(req, 0)
            if rec["status"] == SUCCESS:
                assert rec["result"] == 1 and rec["bytes_completed"] == 3
            else:  # the fault hit the first page
                assert rec["status"] == PAGE_FAULT_NOBOF and rec["bytes_completed"] == 0


@pytest.mark.timeout(30)
def test_batch_count_out_of_range():
    with open_device("emu:gbps=0,max_batch=4") as dev:
        one = _binding.RawRequest("compval", pages(1))
        one.submit(dev._handle, batch=True)
        assert wait_record(one)["status"] == DESC_CNT_ERANGE
        five = _binding.RawRequest("compval", pages(5))
        five.submit(dev._handle, batch=True)
        assert wait_record(five)["status"] == DESC_CNT_ERANGE


@pytest.mark.timeout(30)
def test_timing_model_busy_time_and_no_early_completion():
    with open_device("emu:gbps=1,latency_us=100,engines=1") as dev:
        buf = np.zeros(4 << 20, dtype=np.uint8)  # 4 MiB at 1 GB/s: the model says 4.19 ms + 0.1 ms
        req = _binding.RawRequest("compval", [buf])
        t0 = time.monotonic()
        req.submit(dev._handle, batch=False)
        wait_record(req, 0)
        assert time.monotonic() - t0 >= (buf.nbytes / 1e9 + 100e-6) * 0.999
        assert dev.info()["busy_ns"] == buf.nbytes  # 1 GB/s = 1 byte/ns


@pytest.mark.timeout(30)
def test_shared_queue_refuses_when_full_and_dedicated_drops():
    slow = "gbps=0.001,latency_us=0,engines=1,wq_size=2"  # 1 MB/s: a 4 KiB page keeps the engine 4 ms
    for mode in ("shared", "dedicated"):
        with open_device(f"emu:{slow},mode={mode}") as dev:
            reqs = [_binding.RawRequest("compval", pages(1)) for _ in range(6)]
            statuses = [r.submit(dev._handle, batch=False) for r in reqs]
            info = dev.info()
            if mode == "shared":
                assert EQUEUE_FULL in statuses and info["refused_full"] >= 1 and info["dropped"] == 0
            else:  # MOVDIR64B has no answer: the descriptor is lost, and counted
                assert set(statuses) == {OK} and info["dropped"] >= 1


@pytest.mark.timeout(30)
def test_injected_queue_full_and_vanishing_device():
    with open_device("emu:queue_full_rate=1.0") as dev:
        assert _binding.RawRequest("compval", pages(1)).submit(dev._handle, batch=False) == EQUEUE_FULL
    with open_device("emu:gbps=0,vanish_after=2") as dev:
        reqs = [_binding.RawRequest("compval", pages(1)) for _ in range(3)]
        assert [r.submit(dev._handle, batch=False) for r in reqs] == [OK, OK, EGONE]
        assert dev.info()["gone"] is True


@pytest.mark.timeout(30)
def test_engine_threads_are_named_as_device_time():
    from dsalab.migration import accounting

    with open_device("emu:engines=3") as dev:
        threads = accounting.snapshot()
        engines = {f"dsa_engine_{dev.id}_{i}" for i in range(3)}
        assert engines <= {s.name for s in threads.values()}
        tids = {tid for tid, s in threads.items() if s.name in engines}
    # closed: these engine threads are gone (compared by thread id: a device opened elsewhere may reuse the id)
    assert not tids & {tid for tid, s in accounting.snapshot().items() if s.name in engines}


@pytest.mark.timeout(30)
def test_write_path_through_a_socket_refuses_batches():
    with open_write_path("emu:gbps=0") as dev:
        info = dev.info()
        assert info["submit_path"] == "write" and info["max_batch"] == 0
        src = pages(2, {0: 9})
        single = _binding.RawRequest("compval", src[:1])
        assert single.submit(dev._handle, batch=False) == OK
        rec = wait_record(single, 0)
        assert (rec["status"], rec["result"]) == (SUCCESS, 1)
        batch = _binding.RawRequest("compval", src)
        assert batch.submit(dev._handle, batch=True) == EINVAL  # as the kernel's write() refuses BATCH
