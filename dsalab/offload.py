"""The high-level offload API the seed's reviewer asked for: "do all the batching internally".

>>> from dsalab.offload import Offloader
>>> with Offloader(["emu"]) as off:                    # doctest: +SKIP
...     zero = off.find_zero_pages(buf)                # same contract as dsalab.kernels.find_zero_pages
...     fut = off.compare(a, b, callback=print)        # the reviewer's start_memcmp: a Future, and a callback

Requests are split into batches of ``batch_size`` descriptors, sent round-robin over the devices, retried a
bounded number of times when a queue is full, and finished on the CPU for whatever a device did not do (page
faults, full queues, a device that went away, a timeout). Results are always complete and equal to the CPU
kernels'; ``stats()`` says who did what. The waiting calls release the GIL; no per-page work runs in Python.
"""

from __future__ import annotations

import concurrent.futures
import numbers
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dsalab import _binding
from dsalab.buffers import BufferLike, page_view
from dsalab.config import PAGE_SIZE
from dsalab.devices import Device, open_device
from dsalab.errors import InvalidArgument, InvalidType

COMPLETIONS = tuple(_binding.COMPLETION_MODES)
#: CPU fallback reasons, as ``stats()["pages_cpu_by_reason"]`` names them
REASONS = ("fraction", "page_fault", "queue_full", "device_gone", "timeout", "error")

Callback = Callable[[Any], None]


def _check(name: str, value: object, ok: bool, allowed: str) -> None:
    if not ok:
        raise InvalidArgument(f"{name}={value!r} is not allowed; allowed: {allowed}")


class Offloader:
    """Zero checks and page compares on DSA devices, with batching, retry and CPU fallback inside.

    Parameters
    ----------
    devices : Device objects, spec strings (``"emu:gbps=30"``, ``"/dev/dsa/wq0.0"``), or an int count of default
        emulated devices. Devices opened here from specs or a count are closed by :meth:`close`.
    batch_size : descriptors (pages) per batch descriptor, 1..4096 (1 sends single descriptors)
    completion : "thread" (a dsa_completion thread polls every outstanding record, as in the seed), "poll" (the
        submitter polls its own records), "umwait" (UMONITOR/UMWAIT; needs WAITPKG)
    max_retries : retries of a full queue before the CPU does that batch (the kernel's default is 32)
    cpu_fraction : fraction of each request checked on the CPU while the device works (as Intel DTO splits)
    timeout_ms : a batch not complete by then is done on the CPU, ms
    spin_us : how long a waiter spins before it naps, us
    workers : threads behind :meth:`submit_zero_check` and :meth:`compare` futures
    """

    def __init__(
        self,
        devices: Sequence[Device | str] | Device | str | int,
        *,
        batch_size: int = 128,
        completion: str = "thread",
        max_retries: int = 32,
        cpu_fraction: float = 0.0,
        timeout_ms: float = 1000.0,
        spin_us: float = 5.0,
        workers: int = 4,
    ) -> None:
        _check("completion", completion, completion in COMPLETIONS, ", ".join(COMPLETIONS))
        _check("batch_size", batch_size, _is_int(batch_size) and 1 <= batch_size <= 4096, "an int from 1 to 4096")
        _check("max_retries", max_retries, _is_int(max_retries) and 0 <= max_retries <= 1_000_000, "an int >= 0")
        _check("cpu_fraction", cpu_fraction, _is_num(cpu_fraction) and 0 <= cpu_fraction <= 1, "0.0 to 1.0")
        _check("timeout_ms", timeout_ms, _is_num(timeout_ms) and timeout_ms > 0, "a number of ms > 0")
        _check("spin_us", spin_us, _is_num(spin_us) and spin_us >= 0, "a number of us >= 0")
        _check("workers", workers, _is_int(workers) and workers >= 1, "an int >= 1")
        self.devices, self._owned = self._open(devices)
        self.batch_size, self.completion = batch_size, completion
        self.cpu_fraction, self.max_retries = float(cpu_fraction), max_retries
        self._lock = threading.Lock()
        try:
            self._handle = _binding.offload_create(
                [d._handle for d in self.devices],
                batch_size=batch_size,
                completion=_binding.COMPLETION_MODES[completion],
                max_retries=max_retries,
                cpu_fraction=float(cpu_fraction),
                timeout_ns=int(timeout_ms * 1e6),
                spin_ns=int(spin_us * 1e3),
            )
        except BaseException:
            for d in self._owned:
                d.close()
            raise
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="dsalab_offload")

    @staticmethod
    def _open(devices: Any) -> tuple[list[Device], list[Device]]:
        if isinstance(devices, bool):
            raise InvalidType("devices must be Device objects, spec strings or a count, got a bool")
        if isinstance(devices, numbers.Integral):
            _check("devices", devices, 1 <= devices <= 64, "a count from 1 to 64, spec strings or Device objects")
            opened = [open_device("emu") for _ in range(int(devices))]
            return opened, list(opened)
        if isinstance(devices, Device | str):
            devices = [devices]
        out, owned = [], []
        try:
            for d in devices:
                if isinstance(d, Device):
                    out.append(d)
                elif isinstance(d, str):
                    dev = open_device(d)
                    out.append(dev)
                    owned.append(dev)
                else:
                    raise InvalidType(f"devices must hold Device objects or spec strings, got {type(d).__name__}")
        except BaseException:
            for d in owned:
                d.close()
            raise
        if not out:
            raise InvalidArgument("devices is empty; give at least one device, spec string or a count")
        return out, owned

    # ------------------------------------------------------------ synchronous calls

    def _live(self) -> Any:
        if self._handle is None:
            raise InvalidArgument("this Offloader is closed")
        return self._handle

    def find_zero_pages(self, buf: BufferLike, page_size: int = PAGE_SIZE, *, device: int = -1) -> np.ndarray:
        """Which pages of ``buf`` are all zero (bool per page); same contract as
        :func:`dsalab.kernels.find_zero_pages`. ``device`` pins the request to one device (-1: round-robin)."""
        view, ps = page_view(buf, page_size)
        return _binding.offload_zero_pages(self._live(), view, ps, device)

    def compare_pages(
        self, a: BufferLike, b: BufferLike, page_size: int = PAGE_SIZE, *, device: int = -1
    ) -> np.ndarray:
        """Which pages of ``a`` equal the same page of ``b`` (bool per page)."""
        va, ps = page_view(a, page_size, "a")
        vb, _ = page_view(b, ps, "b")
        if va.nbytes != vb.nbytes:
            raise InvalidArgument(f"a is {va.nbytes} bytes but b is {vb.nbytes}; they must have the same length")
        return _binding.offload_compare_pages(self._live(), va, vb, ps, device)

    # ------------------------------------------------------------ futures and callbacks

    def _future(self, fn: Callable[[], np.ndarray], callback: Callback | None) -> concurrent.futures.Future:
        fut = self._pool.submit(fn)
        if callback is not None:
            fut.add_done_callback(lambda f: callback(f.exception() if f.exception() is not None else f.result()))
        return fut

    def submit_zero_check(
        self, buf: BufferLike, page_size: int = PAGE_SIZE, callback: Callback | None = None
    ) -> concurrent.futures.Future:
        """Start a zero check; returns a Future of the bool-per-page array. ``callback`` is called once with the
        same array (or the exception). Bad arguments raise here, not in the future."""
        view, ps = page_view(buf, page_size)
        handle = self._live()
        return self._future(lambda: _binding.offload_zero_pages(handle, view, ps, -1), callback)

    def compare(
        self, a: BufferLike, b: BufferLike, page_size: int = PAGE_SIZE, callback: Callback | None = None
    ) -> concurrent.futures.Future:
        """Start a page compare (the reviewer's ``start_memcmp``): a Future of the bool-per-page array, True where
        the pages are equal; ``callback`` is called once with the same result (or the exception)."""
        va, ps = page_view(a, page_size, "a")
        vb, _ = page_view(b, ps, "b")
        if va.nbytes != vb.nbytes:
            raise InvalidArgument(f"a is {va.nbytes} bytes but b is {vb.nbytes}; they must have the same length")
        handle = self._live()
        return self._future(lambda: _binding.offload_compare_pages(handle, va, vb, ps, -1), callback)

    # ------------------------------------------------------------ counters and life cycle

    def stats(self) -> dict[str, Any]:
        """Counters: pages offloaded, pages on the CPU by reason (fraction, page_fault, queue_full, device_gone,
        timeout, error), batches, descriptors, retries (full-queue refusals retried), page faults, timeouts,
        device busy time (ms), and each device's own counters."""
        raw = _binding.offload_stats(self._live())
        by_reason = {r: raw[f"pages_cpu_{r}"] for r in REASONS}
        return {
            "requests": raw["requests"],
            "pages": raw["pages"],
            "pages_offloaded": raw["pages_offloaded"],
            "pages_cpu": sum(by_reason.values()),
            "pages_cpu_by_reason": by_reason,
            "batches": raw["batches"],
            "descriptors": raw["descriptors"],
            "retries": raw["retries"],
            "queue_full_retries": raw["retries"],
            "page_faults": raw["page_faults"],
            "partial_bytes_on_cpu": raw["partial_bytes_on_cpu"],
            "timeouts": raw["timeouts"],
            "stalls": raw["stalls"],
            "device_busy_ms": raw["device_busy_ns"] / 1e6,
            "devices": [d.info() for d in self.devices],
        }

    def _native_handle(self) -> Any:
        """The native ``dsl_offload *`` (internal: the multifd engine's senders call it without Python)."""
        return self._live()

    @staticmethod
    def _native_detect_fn_address() -> int:
        """Address of the native detector function matching :meth:`_native_handle` (internal)."""
        return _binding.offload_detect_fn_address()

    def close(self) -> None:
        """Wait for pending futures, free the native layer, close the devices this Offloader opened."""
        with self._lock:
            if self._handle is None:
                return
            self._pool.shutdown(wait=True)
            _binding.offload_destroy(self._handle)
            self._handle = None
            for d in self._owned:
                d.close()

    def __enter__(self) -> Offloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)
