"""Life cycle of the offload layer and its devices under hostile use (issue 9, items 1, 2, 4, 6, 7): close() racing
calls in other threads, a caller closing a device an Offloader still uses, engines asleep in the timing model,
dedicated-queue credits after timeouts, and out-of-range arguments.

Cases that crashed the interpreter (SIGSEGV) or hung before the fix run in a child process with a bound, so that
a regression fails one test instead of killing or stalling the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from dsalab import _binding, kernels
from dsalab.devices import open_device, open_write_path
from dsalab.errors import DsalabError, InvalidArgument
from dsalab.offload import MAX_SPIN_US, Offloader

MODES = [m for m in ("thread", "poll", "umwait") if m != "umwait" or _binding.umwait_supported()]


def run_child(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter; fail (not crash, not hang) if it dies, errs or overruns."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child did not finish within {timeout} s (a hang): {exc.stdout!r} {exc.stderr!r}")
    assert proc.returncode == 0, f"child exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def pages(npages: int, seed: int = 0, page_size: int = 4096) -> np.ndarray:
    rng = np.random.default_rng(seed)
    buf = np.zeros(npages * page_size, dtype=np.uint8)
    for p in np.flatnonzero(rng.random(npages) < 0.5):
        buf[p * page_size + rng.integers(0, page_size)] = rng.integers(1, 256)
    return buf


# ---------------------------------------------------------------- item 1: close() racing synchronous calls


@pytest.mark.timeout(200)
@pytest.mark.parametrize("completion", ["thread", "poll"])
def test_close_racing_synchronous_calls_in_a_child(completion):
    """Threads inside find_zero_pages / compare_pages (4 MiB on a slow emulated device) while close() runs: every
    call returns a complete, correct answer or a DsalabError; nothing crashes; close() frees only after them."""
    out = run_child(
        f"""
        import threading, time
        import numpy as np
        from dsalab import kernels
        from dsalab.errors import DsalabError
        from dsalab.offload import Offloader

        rng = np.random.default_rng(1)
        buf = np.zeros(4 << 20, dtype=np.uint8)
        buf[rng.integers(0, buf.size, 300)] = 7
        other = buf.copy()
        other[::65536] ^= 1
        want_zero = kernels.find_zero_pages(buf).tolist()
        want_eq = kernels.compare_pages(buf, other).tolist()
        answered = refused = 0
        for round in range(3):
            off = Offloader(["emu:gbps=0.05"], completion="{completion}", timeout_ms=600000)
            results, errors = [], []

            def work(kind):
                try:
                    if kind:
                        results.append(("eq", off.compare_pages(buf, other).tolist()))
                    else:
                        results.append(("zero", off.find_zero_pages(buf).tolist()))
                except DsalabError as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(i % 2,)) for i in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.05 * round)
            off.close()
            for t in threads:
                t.join(60)
                assert not t.is_alive(), "a call did not return after close()"
            for kind, got in results:
                assert got == (want_eq if kind == "eq" else want_zero), kind
            assert all("closed" in str(e) for e in errors), errors
            answered += len(results)
            refused += len(errors)
            try:
                off.find_zero_pages(buf)
                raise AssertionError("a call after close() was accepted")
            except DsalabError as exc:
                assert "closed" in str(exc)
        print("ok", answered, refused)
        """
    )
    assert out.startswith("ok")


@pytest.mark.timeout(120)
def test_close_finishes_calls_in_flight_on_the_cpu_even_at_a_glacial_device():
    """gbps=1e-9 (a page every ~70 minutes) and an hour's timeout: close() makes the call in flight finish on the
    CPU and counts those pages as 'closed'; the answer is still right."""
    out = run_child(
        """
        import threading, time
        import numpy as np
        from dsalab import kernels
        from dsalab.devices import open_device
        from dsalab.offload import Offloader

        buf = np.zeros(64 * 4096, dtype=np.uint8)
        buf[5 * 4096 + 3] = 1
        dev = open_device("emu:gbps=0.000000001")
        off = Offloader([dev], timeout_ms=3600000, batch_size=8)
        got = []
        t = threading.Thread(target=lambda: got.append(off.find_zero_pages(buf)))
        t.start()
        for _ in range(500):  # bounded: until the call has tasks with the device
            if dev.info()["submitted"]:
                break
            time.sleep(0.01)
        off.close()
        t.join(60)
        assert not t.is_alive()
        assert got[0].tolist() == kernels.find_zero_pages(buf).tolist()
        dev.close()  # the engines are asleep in the timing model: close wakes them
        print("ok")
        """,
        timeout=90,
    )
    assert out.strip() == "ok"


def test_closed_pages_are_counted():
    buf = pages(64)
    off = Offloader(["emu:gbps=0.000000001"], timeout_ms=3600000, batch_size=8, completion="poll")
    import threading

    got = []
    t = threading.Thread(target=lambda: got.append(off.find_zero_pages(buf)))
    t.start()
    deadline = time.monotonic() + 20
    while not off.devices[0].info()["submitted"] and time.monotonic() < deadline:
        time.sleep(0.01)
    with off._call() as handle:  # look at the counters after close began, before the native state is freed
        assert _binding.offload_close(handle, 0.0) is False  # our own call is inside: not idle
        t.join(30)
        s = _binding.offload_stats(handle)
    off.close()
    assert not t.is_alive() and got[0].tolist() == kernels.find_zero_pages(buf).tolist()
    assert s["pages_cpu_closed"] > 0
    assert s["pages_offloaded"] + sum(s[k] for k in s if k.startswith("pages_cpu_")) == s["pages"] == 64


def test_native_close_refuses_new_calls():
    off = Offloader("emu:gbps=0")
    handle = off._handle
    assert _binding.offload_close(handle, 1.0) is True
    with pytest.raises(DsalabError, match="EGONE"):
        _binding.offload_zero_pages(handle, np.zeros(4096, np.uint8), 4096, -1)
    off.close()


# ---------------------------------------------------------------- item 2: a caller-closed Device still in use


@pytest.mark.timeout(120)
def test_closing_a_device_an_offloader_uses_is_refused_in_a_child():
    out = run_child(
        """
        import numpy as np
        from dsalab.devices import open_device
        from dsalab.errors import InvalidArgument
        from dsalab.offload import Offloader

        dev = open_device("emu")
        off = Offloader([dev])
        try:
            dev.close()
            print("close accepted")
        except InvalidArgument as exc:
            assert "in use by 1 open Offloader" in str(exc), exc
        assert off.find_zero_pages(np.zeros(8192, np.uint8)).tolist() == [True, True]
        off.close()
        dev.close()  # no user left: allowed
        dev.close()  # idempotent
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_device_users_are_counted_per_offloader():
    dev = open_device("emu:gbps=0")
    a, b = Offloader([dev, dev]), Offloader([dev])
    with pytest.raises(InvalidArgument, match="in use by 3 open Offloader"):
        dev.close()
    a.close()
    with pytest.raises(InvalidArgument, match="in use by 1 open Offloader"):
        dev.close()
    b.close()
    dev.close()
    with pytest.raises(InvalidArgument, match="closed"):
        Offloader([dev])


def test_a_forgotten_offloader_releases_its_devices():
    import gc

    dev = open_device("emu:gbps=0")
    off = Offloader([dev])
    del off
    gc.collect()
    dev.close()
    assert dev._handle is None


# ---------------------------------------------------------------- item 4: sleeps that close can wake


@pytest.mark.timeout(120)
def test_device_close_wakes_an_engine_asleep_in_the_timing_model_in_a_child():
    """A descriptor on a device at gbps=1e-9 keeps an engine asleep for ~70 minutes of modelled time; closing
    the device must not wait for it."""
    out = run_child(
        """
        import time
        import numpy as np
        from dsalab import _binding
        from dsalab.devices import open_device

        dev = open_device("emu:gbps=0.000000001,engines=2")
        src = [np.zeros(4096, np.uint8), np.zeros(4096, np.uint8)]
        req = _binding.RawRequest("compval", src)
        assert req.submit(dev._handle, True) == 0
        for _ in range(500):
            if dev.info()["busy_ns"]:
                break  # an engine took the batch and sleeps until its modelled completion
            time.sleep(0.01)
        dev.close()
        print("ok", req.record()["status"])
        """,
        timeout=60,
    )
    assert out.startswith("ok")


def test_spin_us_has_an_upper_bound():
    with pytest.raises(InvalidArgument, match=r"spin_us=1000000000.0 is not allowed; allowed: 0 to 1000 us"):
        Offloader("emu", spin_us=1e9)
    with Offloader("emu:gbps=0", spin_us=MAX_SPIN_US) as off:
        assert off.find_zero_pages(np.zeros(8192, np.uint8)).tolist() == [True, True]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("completion", MODES)
def test_the_spin_honours_the_deadline(completion):
    """The longest spin and a deadline far shorter than it, on a glacial device: every page is answered (on the
    CPU, reason timeout) and the call returns."""
    buf = pages(32)
    with Offloader("emu:gbps=0.000000001", spin_us=MAX_SPIN_US, timeout_ms=0.05, completion=completion) as off:
        assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        s = off.stats()
    assert s["pages_cpu_by_reason"]["timeout"] == 32 and s["timeouts"] >= 1


# ---------------------------------------------------------------- item 6: dedicated-queue credits


@pytest.mark.timeout(120)
@pytest.mark.parametrize("completion", MODES)
def test_dedicated_queue_credits_come_back_after_timeouts(completion):
    """Timeouts forced on a dedicated queue (tiny timeout, slow timing model) must not leave it 'full': a later
    Offloader with a sane timeout on the same device offloads again."""
    dev = open_device("emu:mode=dedicated,wq_size=16,gbps=0.001,engines=2")
    keep = []  # old code let the device read timed-out buffers later: keep them alive until the device closes
    try:
        with Offloader([dev], timeout_ms=0.001, batch_size=8, completion=completion) as hasty:
            for seed in range(3):
                buf = pages(64, seed)
                keep.append(buf)
                assert hasty.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
            s = hasty.stats()
        assert s["timeouts"] > 0
        with Offloader([dev], timeout_ms=60000, batch_size=8, completion=completion) as patient:
            buf = pages(64, 9)
            keep.append(buf)
            assert patient.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
            s = patient.stats()
        assert s["pages_offloaded"] == 64, s["pages_cpu_by_reason"]
    finally:
        dev.close()


@pytest.mark.timeout(120)
def test_dedicated_credits_come_back_on_a_device_that_cannot_revoke():
    """The write() path cannot take a descriptor back: a timed-out task's credits return once the device has
    completed it (the graveyard is reaped), so the queue is not 'full' forever."""
    dev = open_write_path("emu:gbps=0.0001,latency_us=100", mode="dedicated", wq_size=2)  # 41 ms a page
    keep = []
    try:
        with Offloader([dev], timeout_ms=0.001, batch_size=1) as hasty:
            buf = pages(8)
            keep.append(buf)
            assert hasty.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
            assert hasty.stats()["timeouts"] > 0
            far_end = dev._keep[0]
            deadline = time.monotonic() + 60
            while far_end.info()["executed"] < dev.info()["submitted"] and time.monotonic() < deadline:
                time.sleep(0.01)  # bounded: until the device has done what was given up
            buf = pages(8, 1)
            keep.append(buf)  # this call reaps the graveyard first: the completed tasks give their credits back
            assert hasty.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
        # closing reaps what is left; a patient Offloader on the same queue then has every credit
        with Offloader([dev], timeout_ms=60000, batch_size=1) as patient:
            buf = pages(2, 3)
            keep.append(buf)
            assert patient.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
            s = patient.stats()
        assert s["pages_offloaded"] == 2, s["pages_cpu_by_reason"]
    finally:
        dev.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("completion", ["thread", "poll"])
def test_a_refused_batch_is_not_waited_for_in_a_child(completion):
    """A batch the full dedicated queue refused has nothing to wait for: it went to the CPU at once, instead of
    waiting out the whole timeout (an hour here) and counting as a timeout. Found by the fuzz tests."""
    out = run_child(
        f"""
        import numpy as np
        from dsalab import kernels
        from dsalab.offload import Offloader

        buf = np.zeros(289 * 4096, np.uint8)
        buf[5 * 4096] = 1
        spec = "emu:gbps=0,engines=1,wq_size=2,mode=dedicated"
        with Offloader([spec], batch_size=2, completion="{completion}", timeout_ms=3600000) as off:
            assert off.find_zero_pages(buf).tolist() == kernels.find_zero_pages(buf).tolist()
            s = off.stats()
        assert s["timeouts"] == 0, s["timeouts"]
        assert s["pages_offloaded"] + s["pages_cpu_by_reason"]["queue_full"] == 289, s
        print("ok")
        """,
        timeout=90,
    )
    assert out.strip() == "ok"


# ---------------------------------------------------------------- item 7: numbers that overflowed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout_ms": float("inf")}, r"timeout_ms=inf is not allowed; allowed: 0.001 to 3,600,000 ms"),
        ({"timeout_ms": float("nan")}, r"timeout_ms=nan is not allowed"),
        ({"timeout_ms": 10**30}, r"timeout_ms=10{30} is not allowed"),
        ({"timeout_ms": 1e-9}, r"timeout_ms=1e-09 is not allowed"),
        ({"spin_us": float("inf")}, r"spin_us=inf is not allowed"),
        ({"cpu_fraction": float("nan")}, r"cpu_fraction=nan is not allowed"),
        ({"workers": 10**6}, r"workers=1000000 is not allowed; allowed: an int from 1 to 256"),
    ],
)
def test_numbers_out_of_range_get_a_one_line_error(kwargs, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        Offloader("emu:gbps=0", **kwargs)
    assert "\n" not in str(info.value)


def test_device_hint_out_of_range():
    with Offloader(["emu:gbps=0", "emu:gbps=0"]) as off:
        for bad in (2, -2, 10**30, 1.5, True):
            with pytest.raises(InvalidArgument, match=r"device=.* is not allowed; allowed: -1 \(round-robin\)"):
                off.find_zero_pages(np.zeros(4096, np.uint8), device=bad)
        assert off.compare_pages(bytes(4096), bytes(4096), device=1).tolist() == [True]


# ---------------------------------------------------------------- stress, small


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", [0, 1])
def test_stress_small(seed):
    """benchmarks/stress_offload.py on 20,000 pages and 8 threads: faults, full queues, a vanishing device and
    close() racing the last calls; every page answered exactly once, equal to the CPU's answer."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "stress_offload.py"
    spec = importlib.util.spec_from_file_location("stress_offload", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(pages=20_000, threads=8, seed=seed, window_pages=256)
    assert res["ok"], res["problems"]
    assert res["answered_by_offloader"] + res["answered_by_cpu_after_close"] == 20_000
    assert res["device_vanished"] and res["wrong_answers"] == 0


def test_close_from_a_callback_while_another_thread_closes_does_not_hang():
    # the main thread's close() waits for the pool's workers; a worker's callback calling close() must not wait for
    # the main thread's close() in turn (each waited for the other, for ever)
    code = textwrap.dedent(
        """
        import time, numpy as np
        from dsalab.offload import Offloader
        off = Offloader(["emu"])
        def cb(res):
            time.sleep(0.2)
            off.close()
            print("callback close returned", flush=True)
        fut = off.submit_zero_check(np.zeros(4096 * 8, np.uint8), callback=cb)
        assert fut.result().all()
        off.close()
        print("main close returned", flush=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "main close returned" in proc.stdout and "callback close returned" in proc.stdout
