"""The high-level offload API the seed's reviewer asked for: "do all the batching internally".

>>> from dsalab.offload import Offloader
>>> with Offloader(["emu"]) as off:                    # doctest: +SKIP
...     zero = off.find_zero_pages(buf)                # same contract as dsalab.kernels.find_zero_pages
...     fut = off.compare(a, b, callback=print)        # the reviewer's start_memcmp: a Future, and a callback

Requests are split into batches of ``batch_size`` descriptors, sent round-robin over the devices, retried a
bounded number of times when a queue is full, and finished on the CPU for whatever a device did not do (page
faults, full queues, a device that went away, a timeout). Results are always complete and equal to the CPU
kernels'; ``stats()`` says who did what. The waiting calls release the GIL; no per-page work runs in Python.

Life cycle: :meth:`Offloader.close` may race calls in other threads. It refuses new calls, makes the calls in
flight finish on the CPU at once (their results are complete; ``stats()`` counts those pages under "closed"),
waits for them (at most :data:`CLOSE_TIMEOUT_S`), and only then frees the native layer. A call that starts after
``close()`` began raises :class:`~dsalab.errors.InvalidArgument` ("closed"), also from a Future queued before
close. A :class:`~dsalab.devices.Device` refuses ``close()`` while an open Offloader uses it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import numbers
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from dsalab import _binding, validate
from dsalab.buffers import BufferLike, page_view
from dsalab.config import PAGE_SIZE
from dsalab.devices import Device, open_device
from dsalab.errors import DeviceGone, DeviceTimeout, InvalidArgument, InvalidType

COMPLETIONS = tuple(_binding.COMPLETION_MODES)
#: CPU fallback reasons, as ``stats()["pages_cpu_by_reason"]`` names them
REASONS = ("fraction", "page_fault", "queue_full", "device_gone", "timeout", "error", "closed")
#: allowed ``timeout_ms``, ms (1 us to 1 hour)
TIMEOUT_MS_RANGE = (0.001, 3_600_000.0)
#: largest ``spin_us``, us: a waiter spins at most this long before it naps (and never past a deadline)
MAX_SPIN_US = 1000.0
#: largest ``workers``
MAX_WORKERS = 256
#: how long :meth:`Offloader.close` waits for the calls in flight to return, s
CLOSE_TIMEOUT_S = 30.0
_worker = threading.local()  # .offload is set in the threads behind futures

Callback = Callable[[Any], None]


class NativeDetector(NamedTuple):
    """What :meth:`Offloader.native_detector` returns: a ``dsl_detect_fn`` address and its context."""

    fn_address: int
    ctx: Any


def _check(name: str, value: object, ok: bool, allowed: str) -> None:
    if not ok:
        validate.refuse(name, value, allowed)


class Offloader:
    """Zero checks and page compares on DSA devices, with batching, retry and CPU fallback inside.

    Parameters
    ----------
    devices : Device objects, spec strings (``"emu:gbps=30"``, ``"/dev/dsa/wq0.0"``), or an int count of default
        emulated devices. Devices opened here from specs or a count are closed by :meth:`close`.
    batch_size : descriptors (pages) per batch descriptor, 1..1024 (the DSA spec's maximum,
        :data:`dsalab.validate.MAX_BATCH_SIZE`; 1 sends single descriptors)
    completion : "thread" (a dsa_completion thread polls every outstanding record, as in the seed), "poll" (the
        submitter polls its own records), "umwait" (UMONITOR/UMWAIT; needs WAITPKG)
    max_retries : retries of a full queue before the CPU does that batch (the kernel's default is 32)
    cpu_fraction : fraction of each request checked on the CPU while the device works (as Intel DTO splits)
    timeout_ms : a batch not complete by then is done on the CPU, ms
    spin_us : how long a waiter spins before it naps, us
    workers : threads behind :meth:`submit_zero_check` and :meth:`compare` futures, 1 to 256

    Bad values raise :class:`~dsalab.errors.InvalidArgument` naming the value and the allowed range:
    ``timeout_ms`` 0.001 to 3,600,000 ms, ``spin_us`` 0 to 1000 us (finite numbers only).
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
        batch_size = validate.check("batch_size", batch_size)  # the same rule and limit as a Trial's
        max_retries = validate.check("max_retries", max_retries)
        cpu_fraction = validate.check("cpu_fraction", cpu_fraction)
        lo, hi = TIMEOUT_MS_RANGE
        _check("timeout_ms", timeout_ms, _is_num(timeout_ms) and lo <= timeout_ms <= hi, f"{lo:g} to {hi:,.0f} ms")
        _check("spin_us", spin_us, _is_num(spin_us) and 0 <= spin_us <= MAX_SPIN_US, f"0 to {MAX_SPIN_US:g} us")
        _check("workers", workers, _is_int(workers) and 1 <= workers <= MAX_WORKERS, f"an int from 1 to {MAX_WORKERS}")
        self._handle: Any = None
        self._cond = threading.Condition()  # _closing, _calls, _handle
        self._close_lock = threading.Lock()  # one close() at a time
        self._closing, self._calls = False, 0
        self._final_stats: dict[str, Any] | None = None  # the counters at close()
        self.devices, self._owned = self._open(devices)
        self.batch_size, self.completion = batch_size, completion
        self.cpu_fraction, self.max_retries = float(cpu_fraction), max_retries
        acquired: list[Device] = []
        try:
            for d in self.devices:  # a device in use refuses close() until this Offloader is closed
                d._acquire()
                acquired.append(d)
            self._handle = _binding.offload_create(
                [d._handle for d in self.devices],
                batch_size=batch_size,
                completion=_binding.COMPLETION_MODES[completion],
                max_retries=max_retries,
                cpu_fraction=float(cpu_fraction),
                timeout_ns=max(1, int(timeout_ms * 1e6)),
                spin_ns=int(spin_us * 1e3),
            )
        except BaseException:
            for d in acquired:
                d._release()
            for d in self._owned:
                d.close()
            raise
        self._pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="dsalab_offload", initializer=_mark_worker
        )

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
        if self._handle is None or self._closing:
            raise InvalidArgument("this Offloader is closed; allowed: calls before close()")
        return self._handle

    @contextlib.contextmanager
    def _call(self) -> Any:
        """One call in flight: refused once close() began; close() waits for it before freeing the native layer."""
        with self._cond:
            handle = self._live()
            self._calls += 1
        try:
            yield handle
        except DeviceGone:
            if self._closing:  # close() began between the check above and the native call
                raise InvalidArgument(
                    "this Offloader was closed as the call started; allowed: calls before close()"
                ) from None
            raise
        finally:
            with self._cond:
                self._calls -= 1
                self._cond.notify_all()

    def _device(self, device: object) -> int:
        ok = _is_int(device) and -1 <= device < len(self.devices)
        _check("device", device, ok, f"-1 (round-robin) or a device index from 0 to {len(self.devices) - 1}")
        return int(device)  # type: ignore[call-overload]

    def _zero(self, view: np.ndarray, ps: int, device: int) -> np.ndarray:
        with self._call() as handle:
            return _binding.offload_zero_pages(handle, view, ps, device)

    def _compare(self, va: np.ndarray, vb: np.ndarray, ps: int, device: int) -> np.ndarray:
        with self._call() as handle:
            return _binding.offload_compare_pages(handle, va, vb, ps, device)

    def find_zero_pages(self, buf: BufferLike, page_size: int = PAGE_SIZE, *, device: int = -1) -> np.ndarray:
        """Which pages of ``buf`` are all zero (bool per page); same contract as
        :func:`dsalab.kernels.find_zero_pages`. ``device`` pins the request to one device (-1: round-robin)."""
        view, ps = page_view(buf, page_size)
        return self._zero(view, ps, self._device(device))

    def compare_pages(
        self, a: BufferLike, b: BufferLike, page_size: int = PAGE_SIZE, *, device: int = -1
    ) -> np.ndarray:
        """Which pages of ``a`` equal the same page of ``b`` (bool per page)."""
        va, ps = page_view(a, page_size, "a")
        vb, _ = page_view(b, ps, "b")
        if va.nbytes != vb.nbytes:
            raise InvalidArgument(f"a is {va.nbytes} bytes but b is {vb.nbytes}; they must have the same length")
        return self._compare(va, vb, ps, self._device(device))

    # ------------------------------------------------------------ futures and callbacks

    def _future(self, fn: Callable[[], np.ndarray], callback: Callback | None) -> concurrent.futures.Future:
        with self._cond:  # no submission once close() began (the pool is shut down then)
            self._live()
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
        self._live()
        return self._future(lambda: self._zero(view, ps, -1), callback)

    def compare(
        self, a: BufferLike, b: BufferLike, page_size: int = PAGE_SIZE, callback: Callback | None = None
    ) -> concurrent.futures.Future:
        """Start a page compare (the reviewer's ``start_memcmp``): a Future of the bool-per-page array, True where
        the pages are equal; ``callback`` is called once with the same result (or the exception)."""
        va, ps = page_view(a, page_size, "a")
        vb, _ = page_view(b, ps, "b")
        if va.nbytes != vb.nbytes:
            raise InvalidArgument(f"a is {va.nbytes} bytes but b is {vb.nbytes}; they must have the same length")
        self._live()
        return self._future(lambda: self._compare(va, vb, ps, -1), callback)

    # ------------------------------------------------------------ counters and life cycle

    def stats(self) -> dict[str, Any]:
        """Counters: pages offloaded, pages on the CPU by reason (fraction, page_fault, queue_full, device_gone,
        timeout, error, closed), batches, descriptors, retries (full-queue refusals retried), page faults,
        timeouts, device busy time (ms), and each device's own counters. After close(): the counters at close."""
        with self._cond:
            if self._final_stats is not None:
                return self._final_stats
        with self._call() as handle:
            return self._stats(handle)

    def _stats(self, handle: Any) -> dict[str, Any]:
        raw = _binding.offload_stats(handle)
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

    def native_detector(self) -> NativeDetector:
        """The batch zero-page detector as native code calls it, without Python or the GIL.

        Returns a :class:`NativeDetector`: ``fn_address``, the address of a C function of type ``dsl_detect_fn``
        (``native/dsalab.h``), and ``ctx``, the ``dsl_offload *`` to pass it as its first argument. The multifd
        engine's sender threads call it for each packet (:mod:`dsalab.migration.detectors`). Both stay valid
        until :meth:`close`, which the caller must not run while native code may still call the function; a
        closed Offloader raises :class:`~dsalab.errors.InvalidArgument`.
        """
        return NativeDetector(_binding.offload_detect_fn_address(), self._live())

    def close(self) -> None:
        """Refuse new calls, let the calls in flight finish on the CPU and wait for them (at most
        :data:`CLOSE_TIMEOUT_S` s: then DeviceTimeout, nothing freed, close() may be called again), free the native
        layer, close the devices this Offloader opened. Futures not started yet fail with InvalidArgument."""
        in_worker = getattr(_worker, "offload", False)
        if not self._close_lock.acquire(blocking=not in_worker):
            # a future's callback closes while another thread's close() waits for this very worker to finish:
            # leave the closing to that close() instead of waiting for it (each would wait for the other)
            with self._cond:
                self._closing = True
            return
        try:
            self._close_locked()
        finally:
            self._close_lock.release()

    def _close_locked(self) -> None:
        with self._cond:
            if self._handle is None:
                return
            self._closing = True
        handle = self._handle
        if not _binding.offload_close(handle, CLOSE_TIMEOUT_S):
            raise DeviceTimeout(f"close(): calls still in flight after {CLOSE_TIMEOUT_S:g} s; nothing was freed")
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        with self._cond:
            while self._calls:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeviceTimeout(
                        f"close(): {self._calls} call(s) still in flight after {CLOSE_TIMEOUT_S:g} s; nothing was freed"
                    )
                self._cond.wait(min(left, 0.1))
        # futures not started yet fail at once ("closed"); a close() from a future's callback cannot wait
        self._pool.shutdown(wait=not getattr(_worker, "offload", False))
        final = self._stats(handle)  # every call has returned: these counters are final
        _binding.offload_destroy(handle)
        with self._cond:
            self._handle, self._final_stats = None, final
        for d in self.devices:
            d._release()
        for d in self._owned:
            d.close()

    def __enter__(self) -> Offloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten Offloader must not keep its devices in use
        with contextlib.suppress(Exception):
            if getattr(self, "_handle", None) is not None:
                self.close()


def _mark_worker() -> None:
    _worker.offload = True


_is_int = validate.is_int
_is_num = validate.is_real
