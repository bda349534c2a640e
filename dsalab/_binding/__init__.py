"""The one module that touches the compiled ``dsalab._native`` (``ffi`` and ``lib``).

Every other module calls the small typed wrappers here. A non-zero native status becomes an exception from
:mod:`dsalab.errors`; the C status codes are mirrored by :class:`Status`. At import, the ABI version and the
source hash the module was built from are checked, so that a stale build (for example in a Jupyter kernel
started before ``make``) fails loudly instead of misbehaving.
"""

from __future__ import annotations

import enum
import hashlib
import os
import pathlib

import numpy as np

from dsalab import errors

_ABI_VERSION = 5
_REBUILD = "rebuild it (`make setup`, or `pip install --no-build-isolation -e .`) and restart the Python kernel"

try:
    from dsalab._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise errors.StaleBuildError(f"dsalab's native module is not built: {exc}; {_REBUILD}") from exc


class Status(enum.IntEnum):
    """Native status codes (``DSL_*``)."""

    OK = lib.DSL_OK
    EINVAL = lib.DSL_EINVAL
    ENOMEM = lib.DSL_ENOMEM
    ENODEV = lib.DSL_ENODEV
    EQUEUE_FULL = lib.DSL_EQUEUE_FULL
    EGONE = lib.DSL_EGONE
    ETIMEDOUT = lib.DSL_ETIMEDOUT
    EIO = lib.DSL_EIO
    EUNSUPPORTED = lib.DSL_EUNSUPPORTED
    EPERM = lib.DSL_EPERM


class CompletionMode(enum.IntEnum):
    """How the offload layer waits for completions (``DSL_COMPLETION_*``); ``label`` is the Python name."""

    THREAD = lib.DSL_COMPLETION_THREAD
    POLL = lib.DSL_COMPLETION_POLL
    UMWAIT = lib.DSL_COMPLETION_UMWAIT

    @property
    def label(self) -> str:
        """The name :class:`dsalab.offload.Offloader` takes: "thread", "poll" or "umwait"."""
        return self.name.lower()


class DeviceBackend(enum.IntEnum):
    """What a native device is (``DSL_BACKEND_*``, ``dsl_device_info.backend``)."""

    EMULATED = lib.DSL_BACKEND_EMU
    HARDWARE = lib.DSL_BACKEND_HW


class SubmitPath(enum.IntEnum):
    """How descriptors reach a device (``DSL_SUBMIT_*``, ``dsl_device_info.submit_path``)."""

    PORTAL = lib.DSL_SUBMIT_PORTAL
    WRITE = lib.DSL_SUBMIT_WRITE
    RING = lib.DSL_SUBMIT_RING

    @property
    def label(self) -> str:
        """The name ``Device.info()`` reports: "portal", "write" or "emulated"."""
        return "emulated" if self is SubmitPath.RING else self.name.lower()


class FaultMode(enum.IntEnum):
    """The multifd engine's injected receiver faults (``DSL_FAULT_*``, ``dsl_mig_config.fail_mode``)."""

    NONE = lib.DSL_FAULT_NONE
    RECEIVER_EXIT = lib.DSL_FAULT_RECEIVER_EXIT
    RECEIVER_RESET = lib.DSL_FAULT_RECEIVER_RESET
    RECEIVER_STALL = lib.DSL_FAULT_RECEIVER_STALL

    @property
    def label(self) -> str:
        """The fault's name in a trial: "receiver-exit", "receiver-reset" or "receiver-stall" ("none" for 0)."""
        return self.name.lower().replace("_", "-")


#: completion mode name -> native value ("thread", "poll", "umwait")
COMPLETION_MODES: dict[str, CompletionMode] = {m.label: m for m in CompletionMode}
#: native submit path -> the name ``Device.info()`` reports
SUBMIT_PATHS: dict[int, str] = {p.value: p.label for p in SubmitPath}
#: injected fault name -> native fail_mode (FaultMode.NONE is "no fault", not a kind)
FAULT_MODES: dict[str, FaultMode] = {f.label: f for f in FaultMode if f is not FaultMode.NONE}


_EXCEPTIONS: dict[Status, type[errors.NativeError]] = {
    Status.EINVAL: errors.NativeInvalidArgument,
    Status.ENOMEM: errors.NativeOutOfMemory,
    Status.ENODEV: errors.DeviceNotFound,
    Status.EQUEUE_FULL: errors.QueueFull,
    Status.EGONE: errors.DeviceGone,
    Status.ETIMEDOUT: errors.DeviceTimeout,
    Status.EIO: errors.NativeIOError,
    Status.EUNSUPPORTED: errors.Unsupported,
    Status.EPERM: errors.DevicePermissionError,
}


def check(status: int, what: str) -> None:
    """Raise the exception of a non-zero native ``status``; ``what`` says which call, with its arguments."""
    if status == Status.OK:
        return
    try:
        st = Status(status)
    except ValueError:
        raise errors.NativeError(f"{what}: unknown native status {status}", status) from None
    raise _EXCEPTIONS[st](f"{what}: {st.name}", int(st))


def source_build_id(native_dir: pathlib.Path) -> str | None:
    """Hash of the C sources in ``native_dir`` (as ``native/build_native.py`` computes it), or None."""
    files = sorted(native_dir.glob("*.[ch]"))
    if not files:
        return None
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def check_build(
    built_abi: int, built_id: str, *, expected_abi: int = _ABI_VERSION, source_id: str | None = None
) -> None:
    """Raise :class:`~dsalab.errors.StaleBuildError` if the compiled module does not match this code."""
    if built_abi != expected_abi:
        raise errors.StaleBuildError(
            f"dsalab._native was built for native ABI {built_abi} but this dsalab needs ABI {expected_abi}: {_REBUILD}"
        )
    if source_id is not None and source_id != built_id and os.environ.get("DSALAB_ALLOW_STALE") != "1":
        raise errors.StaleBuildError(
            f"dsalab._native was built from other native sources (build {built_id}, sources now {source_id}): "
            f"{_REBUILD} (DSALAB_ALLOW_STALE=1 skips this check)"
        )


def build_id() -> str:
    """Hash of the native sources the loaded module was built from."""
    return ffi.string(lib.dsl_build_id()).decode()


_checkout_native = pathlib.Path(__file__).resolve().parent.parent / "native"
check_build(lib.dsl_abi_version(), build_id(), source_id=source_build_id(_checkout_native))


# ---------------------------------------------------------------- build and CPU facts


def build_facts() -> dict[str, bool | int | str]:
    """What the native module was compiled with."""
    return {
        "native_abi": int(lib.dsl_abi_version()),
        "native_build_id": build_id(),
        "built_with_idxd_h": bool(lib.dsl_built_with_idxd_h()),
        "built_with_portal_isa": bool(lib.dsl_built_with_portal_isa()),
        "built_with_waitpkg": bool(lib.dsl_built_with_waitpkg()),
        "kernel_isa": ffi.string(lib.dsl_kernel_isa()).decode(),
    }


def cpu_has(feature: str) -> bool:
    """Run-time CPU feature test (CPUID): avx2, avx512f, avx512bw, enqcmd, movdir64b, waitpkg."""
    r = lib.dsl_cpu_has(feature.encode())
    if r < 0:
        raise errors.InvalidArgument(
            f"unknown CPU feature {feature!r}; allowed: avx2, avx512f, avx512bw, enqcmd, movdir64b, waitpkg"
        )
    return bool(r)


def set_kernel_isa(isa: str) -> None:
    """Force the native kernels' code path: "avx512", "avx2", "scalar" or "auto" (tests use this)."""
    st = lib.dsl_set_kernel_isa(isa.encode())
    if st == Status.EINVAL:
        raise errors.InvalidArgument(f"unknown kernel ISA {isa!r}; allowed: auto, avx512, avx2, scalar")
    check(st, f"set_kernel_isa({isa!r})")


def kernel_isa() -> str:
    """The native kernels' code path in use."""
    return ffi.string(lib.dsl_kernel_isa()).decode()


def set_thread_name(name: str) -> None:
    """Name the calling OS thread (what /proc/self/task/*/comm shows; 15 characters at most)."""
    check(lib.dsl_set_thread_name(name.encode()), f"set_thread_name({name!r})")


# ---------------------------------------------------------------- kernels


def _ptr(arr: np.ndarray):
    return ffi.from_buffer("uint8_t[]", arr, require_writable=False)


def is_zero(view: np.ndarray) -> bool:
    """Native zero test of a 1-D uint8 view (any length)."""
    return bool(lib.dsl_is_zero(_ptr(view), view.nbytes))


def find_zero_pages(view: np.ndarray, page_size: int, threads: int) -> np.ndarray:
    """Native zero-page bitmap of a 1-D uint8 view that is a whole number of pages."""
    n = view.nbytes // page_size
    out = np.empty(n, dtype=np.bool_)
    st = lib.dsl_find_zero_pages(ffi.from_buffer(view), n, page_size, ffi.from_buffer(out), threads)
    if st:
        check(st, f"find_zero_pages(page_size={page_size}, threads={threads})")
    return out


def find_zero_pages_with(fn_address: int, view: np.ndarray, page_size: int) -> np.ndarray:
    """Zero-page bitmap computed by the C function at ``fn_address`` (``int f(const void*, size_t)``)."""
    n = view.nbytes // page_size
    out = np.empty(n, dtype=np.uint8)
    fn = ffi.cast("dsl_zero_fn", fn_address)
    check(
        lib.dsl_find_zero_pages_fn(fn, _ptr(view), n, page_size, ffi.from_buffer("uint8_t[]", out)),
        f"find_zero_pages_fn(page_size={page_size})",
    )
    return out.view(np.bool_)


def compare_pages(a: np.ndarray, b: np.ndarray, page_size: int, threads: int) -> np.ndarray:
    """Native page-equality bitmap of two equal-length 1-D uint8 views."""
    n = a.nbytes // page_size
    out = np.empty(n, dtype=np.uint8)
    check(
        lib.dsl_compare_pages(_ptr(a), _ptr(b), n, page_size, ffi.from_buffer("uint8_t[]", out), threads),
        f"compare_pages(page_size={page_size}, threads={threads})",
    )
    return out.view(np.bool_)


def or_reduce(view: np.ndarray, threads: int) -> int:
    """OR of every 64-bit word of a 1-D uint8 view, without early exit (the memory-read bandwidth reference)."""
    return int(lib.dsl_or_reduce(_ptr(view), view.nbytes, threads))


def native_zero_fn_address() -> int:
    """Address of the native ``int dsl_is_zero(const void*, size_t)``, for loops that take a function pointer."""
    return int(ffi.cast("uintptr_t", lib.dsl_native_zero_fn()))


# ---------------------------------------------------------------- guest memory and the multifd engine


def fill_pages(view: np.ndarray, page_size: int, normal: np.ndarray, seed: int, touch_zero: bool, threads: int) -> None:
    """Fill a page-aligned uint8 view: random bytes where ``normal`` (uint8 per page) is 1, zeros elsewhere."""
    n = view.nbytes // page_size
    st = lib.dsl_fill_pages(
        ffi.from_buffer(view), n, page_size, ffi.from_buffer(normal), seed & (2**64 - 1), int(touch_zero), threads
    )
    check(st, f"fill_pages(page_size={page_size}, threads={threads})")


CHANNEL_STAT_FIELDS = tuple(f for f, _ in ffi.typeof("dsl_chan_stats").fields)


class MigrationEngine:
    """The native multifd data path of one migration (``native/multifd.c``): channel threads, rounds, dirty
    tracking. Owned by :func:`dsalab.migration.run_trial`; call :meth:`destroy` exactly once."""

    def __init__(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        page_size: int,
        send_fds: list[int],
        recv_fds: list[int],
        packet_pages: int,
        *,
        zero_fn_address: int = 0,
        detect_fn_address: int = 0,
        detect_ctx: object = None,
        detect_devices: int = 0,
        force_normal_ratio: float = 0.0,
        seed: int = 0,
        max_bandwidth: int = 0,
        io_timeout_ms: int = 30000,
        fail_channel: int = -1,
        fail_after_packets: int = 0,
        fail_mode: int = FaultMode.NONE,
    ) -> None:
        self._keep = [
            ffi.from_buffer(src),
            ffi.from_buffer(dst, require_writable=True),
            ffi.new("int[]", send_fds),
            ffi.new("int[]", recv_fds),
        ]
        cfg = ffi.new("dsl_mig_config *")
        cfg.src = ffi.cast("uint8_t *", self._keep[0])
        cfg.dst = ffi.cast("uint8_t *", self._keep[1])
        cfg.npages = src.nbytes // page_size
        cfg.page_size = page_size
        cfg.channels = len(send_fds)
        cfg.send_fds = self._keep[2]
        cfg.recv_fds = self._keep[3]
        cfg.packet_pages = packet_pages
        cfg.zero_fn = ffi.cast("dsl_zero_fn", zero_fn_address)
        cfg.detect_fn = ffi.cast("dsl_detect_fn", detect_fn_address)
        cfg.detect_ctx = ffi.NULL if detect_ctx is None else ffi.cast("void *", detect_ctx)
        cfg.detect_devices = detect_devices
        cfg.force_normal_ratio = force_normal_ratio
        cfg.seed = seed & (2**64 - 1)
        cfg.max_bandwidth = max_bandwidth
        cfg.io_timeout_ms = io_timeout_ms
        cfg.fail_channel = fail_channel
        cfg.fail_after_packets = fail_after_packets
        cfg.fail_mode = fail_mode
        self.channels = len(send_fds)
        self.npages = cfg.npages
        self._words = (self.npages + 63) // 64
        out = ffi.new("dsl_mig **")
        check(lib.dsl_mig_create(cfg, out), "dsl_mig_create")
        self._m = out[0]

    def error(self) -> str:
        """The first failure, naming the channel and what happened ("" if none)."""
        return ffi.string(lib.dsl_mig_error(self._m)).decode(errors="replace")

    def send_pages(self, bitmap: np.ndarray | None) -> tuple[int, int]:
        """Send the pages set in ``bitmap`` (uint64 words; None = all) and sync; (status, pages queued)."""
        queued = ffi.new("uint64_t *")
        bm = ffi.NULL if bitmap is None else ffi.cast("uint64_t *", ffi.from_buffer(bitmap))
        st = lib.dsl_mig_send_pages(self._m, bm, queued)
        return int(st), int(queued[0])

    def finish(self) -> int:
        """END on every channel and wait for the receivers; the status."""
        return int(lib.dsl_mig_finish(self._m))

    def bytes_sent(self) -> int:
        """Bytes written to the channels so far (headers and payload)."""
        return int(lib.dsl_mig_bytes_sent(self._m))

    def pages_sent(self) -> int:
        """Pages sent so far (zero pages included)."""
        return int(lib.dsl_mig_pages_sent(self._m))

    def channel_stats(self, channel: int) -> dict[str, int]:
        """Counters of one channel (``dsl_chan_stats``)."""
        out = ffi.new("dsl_chan_stats *")
        check(lib.dsl_mig_channel_stats(self._m, channel, out), f"channel_stats({channel})")
        return {f: int(getattr(out, f)) for f in CHANNEL_STAT_FIELDS}

    def new_bitmap(self) -> np.ndarray:
        """An empty dirty bitmap of this guest (uint64 words)."""
        return np.zeros(max(self._words, 1), dtype=np.uint64)

    def dirtier_start(self, rate_bytes_per_s: int, seed: int) -> None:
        """Start the guest_dirty thread."""
        check(lib.dsl_mig_dirtier_start(self._m, rate_bytes_per_s, seed & (2**64 - 1)), "dirtier_start")

    def dirtier_stop(self) -> int:
        """Stop the guest_dirty thread; pages it dirtied."""
        return int(lib.dsl_mig_dirtier_stop(self._m))

    def dirtier_cpu_ns(self) -> int:
        """CPU time the stopped guest_dirty thread used, ns."""
        return int(lib.dsl_mig_dirtier_cpu_ns(self._m))

    def dirty_sync(self, bitmap: np.ndarray) -> int:
        """Take and clear the dirty bitmap into ``bitmap``; the number of dirty pages."""
        return int(lib.dsl_mig_dirty_sync(self._m, ffi.cast("uint64_t *", ffi.from_buffer(bitmap))))

    def abort(self, reason: str) -> None:
        """Fail the migration now with ``reason`` (the busy senders are appended); every wait gives up."""
        lib.dsl_mig_abort(self._m, reason.encode(errors="replace"))

    def stop(self, timeout_ms: int) -> str:
        """Wake and join every engine thread, waiting ``timeout_ms`` ms in all at most: "" once all have ended,
        else the threads still running (then never :meth:`destroy`: keep this object and retry later)."""
        if self._m is None or lib.dsl_mig_stop(self._m, max(int(timeout_ms), 0)) == lib.DSL_OK:
            return ""
        return ffi.string(lib.dsl_mig_stuck(self._m)).decode(errors="replace")

    def destroy(self) -> None:
        """Join every thread and free the engine (idempotent); call after :meth:`stop` returned "". A thread
        still running after io_timeout_ms + 1 s raises :class:`DeviceTimeout` and the engine is left allocated."""
        if self._m is not None:
            check(lib.dsl_mig_destroy(self._m), "dsl_mig_destroy")
            self._m = None


# ---------------------------------------------------------------- DSA devices and the offload layer

DEVICE_INFO_FIELDS = tuple(f for f, _ in ffi.typeof("dsl_device_info").fields)
OFFLOAD_STAT_FIELDS = tuple(f for f, _ in ffi.typeof("dsl_offload_stats").fields)


def emu_open(**cfg: float | int) -> object:
    """Open an emulated device; ``cfg`` holds the fields of ``dsl_emu_config``. Returns the device handle."""
    c = ffi.new("dsl_emu_config *")
    for key, value in cfg.items():
        setattr(c, key, value)
    out = ffi.new("dsl_device **")
    check(lib.dsl_emu_open(c, out), f"dsl_emu_open({cfg})")
    return out[0]


def emu_serve_fd(dev: object, fd: int) -> None:
    """Make an emulated device the far end of a write() path: it reads 64-byte descriptors from ``fd``."""
    check(lib.dsl_emu_serve_fd(dev, fd), f"dsl_emu_serve_fd(fd={fd})")


def hw_open(path: str, sysfs_root: str, char_root: str, force_write: bool) -> object:
    """Open a hardware work queue (``/dev/dsa/wqX.Y``); portal where mappable, else write(). The C side refuses
    anything but a character device that ``char_root`` (``/sys/dev/char``) names ``dsa/wqX.Y``."""
    out = ffi.new("dsl_device **")
    st = lib.dsl_hw_open(os.fsencode(path), os.fsencode(sysfs_root), os.fsencode(char_root), int(force_write), out)
    check(st, f"dsl_hw_open({path!r})")
    return out[0]


def hw_open_fd(fd: int, shared: bool, wq_size: int, name: str) -> object:
    """A hardware-style device that submits with write() of 64-byte descriptors to ``fd``."""
    out = ffi.new("dsl_device **")
    check(lib.dsl_hw_open_fd(fd, int(shared), wq_size, name.encode(), out), f"dsl_hw_open_fd(fd={fd})")
    return out[0]


def device_close(dev: object) -> None:
    """Close a device (joins its engine threads)."""
    lib.dsl_device_close(dev)


def device_info(dev: object) -> dict[str, int]:
    """The device's ``dsl_device_info`` as a dict."""
    out = ffi.new("dsl_device_info *")
    check(lib.dsl_device_get_info(dev, out), "dsl_device_get_info")
    return {f: int(getattr(out, f)) for f in DEVICE_INFO_FIELDS}


def layout() -> dict[str, int]:
    """Sizes and field offsets of the descriptor and completion record as compiled."""
    fields = [
        "desc.completion_addr", "desc.src_addr", "desc.desc_list_addr", "desc.dst_addr", "desc.src2_addr",
        "desc.comp_pattern", "desc.xfer_size", "desc.desc_count", "desc.int_handle",
        "cr.status", "cr.result", "cr.bytes_completed", "cr.fault_addr",
    ]  # fmt: skip
    out = {f: int(lib.dsl_layout(f.encode())) for f in fields}
    out["desc.size"] = int(lib.dsl_desc_size())
    out["cr.size"] = int(lib.dsl_cr_size())
    return out


class RawRequest:
    """One descriptor (or a batch of them) with its completion records, submitted by hand: for tests and for
    looking at the device's exact answers. Keeps the memory alive until it is dropped."""

    def __init__(self, op: str, sources: list[np.ndarray], others: list[np.ndarray] | None = None, pattern: int = 0):
        n = len(sources)
        self._keep = [sources, others]
        self.descs = ffi.new(f"uint8_t[{64 * n + 64}]")  # room to align to 64
        self.crs = ffi.new(f"uint8_t[{32 * n + 32 + 64}]")
        base_d = (int(ffi.cast("uintptr_t", self.descs)) + 63) & ~63
        base_c = (int(ffi.cast("uintptr_t", self.crs)) + 31) & ~31
        self._desc = [ffi.cast("struct dsa_hw_desc *", base_d + 64 * i) for i in range(n)]
        self._cr = [ffi.cast("struct dsa_completion_record *", base_c + 32 * i) for i in range(n)]
        self._bcr = ffi.cast("struct dsa_completion_record *", base_c + 32 * n)
        self._batch = ffi.new("uint8_t[128]")
        self._bdesc = ffi.cast("struct dsa_hw_desc *", (int(ffi.cast("uintptr_t", self._batch)) + 63) & ~63)
        for i, src in enumerate(sources):
            if op == "compval":
                lib.dsl_desc_compval(self._desc[i], ffi.from_buffer(src), src.nbytes, pattern, self._cr[i])
            else:
                lib.dsl_desc_compare(
                    self._desc[i], ffi.from_buffer(src), ffi.from_buffer(others[i]), src.nbytes, self._cr[i]
                )
        lib.dsl_desc_batch(self._bdesc, self._desc[0], n, self._bcr)

    def word1(self, batch: bool = False) -> int:
        """Flags (bits 23:0) and opcode (bits 31:24) of the descriptor."""
        return int(lib.dsl_desc_word1(self._bdesc if batch else self._desc[0]))

    def submit(self, dev: object, batch: bool) -> int:
        """Submit the batch descriptor, or the first descriptor alone; the native status."""
        return int(lib.dsl_device_submit(dev, self._bdesc if batch else self._desc[0]))

    def record(self, i: int | None = None) -> dict[str, int]:
        """Completion record ``i`` (None: the batch's)."""
        cr = self._bcr if i is None else self._cr[i]
        return {
            "status": int(cr.status),
            "result": int(cr.result),
            "bytes_completed": int(cr.bytes_completed),
            "fault_addr": int(cr.fault_addr),
        }

    def address(self, i: int) -> int:
        """Address of source ``i``."""
        return int(ffi.cast("uintptr_t", ffi.from_buffer(self._keep[0][i])))


def offload_create(devices: list[object], **cfg: float | int) -> object:
    """Create the native offload layer over device handles; ``cfg`` holds ``dsl_offload_config`` fields."""
    c = ffi.new("dsl_offload_config *")
    for key, value in cfg.items():
        setattr(c, key, value)
    arr = ffi.new("dsl_device *[]", devices)
    out = ffi.new("dsl_offload **")
    st = lib.dsl_offload_create(arr, len(devices), c, out)
    if st == Status.EUNSUPPORTED:
        raise errors.Unsupported(
            "completion='umwait' needs WAITPKG (UMONITOR/UMWAIT), which this CPU lacks or this build left out; "
            "allowed here: thread, poll",
            int(st),
        )
    check(st, f"dsl_offload_create({cfg})")
    return out[0]


def offload_close(o: object, timeout_s: float) -> bool:
    """Stop the offload layer taking requests; calls in flight finish on the CPU. Waits up to ``timeout_s``
    seconds for them to return; True when none is left inside."""
    return int(lib.dsl_offload_close(o, int(max(0.0, timeout_s) * 1e9))) == Status.OK


def offload_destroy(o: object) -> None:
    """Destroy the offload layer (stops its dsa_completion thread); raises DeviceTimeout, freeing nothing, if a
    call is still inside after 30 s."""
    check(lib.dsl_offload_destroy(o), "dsl_offload_destroy (a call is still in flight)")


def offload_zero_pages(o: object, view: np.ndarray, page_size: int, hint: int) -> np.ndarray:
    """Zero-page bitmap through the offload layer (device, and the CPU for whatever the device did not do)."""
    n = view.nbytes // page_size
    out = np.empty(n, dtype=np.bool_)
    check(
        lib.dsl_offload_zero_pages(o, ffi.from_buffer(view), n, page_size, ffi.from_buffer(out), hint),
        "dsl_offload_zero_pages",
    )
    return out


def offload_compare_pages(o: object, a: np.ndarray, b: np.ndarray, page_size: int, hint: int) -> np.ndarray:
    """Page-equality bitmap through the offload layer."""
    n = a.nbytes // page_size
    out = np.empty(n, dtype=np.bool_)
    check(
        lib.dsl_offload_compare_pages(
            o, ffi.from_buffer(a), ffi.from_buffer(b), n, page_size, ffi.from_buffer(out), hint
        ),
        "dsl_offload_compare_pages",
    )
    return out


def offload_stats(o: object) -> dict[str, int]:
    """The offload layer's counters (``dsl_offload_stats``)."""
    out = ffi.new("dsl_offload_stats *")
    lib.dsl_offload_get_stats(o, out)
    return {f: int(getattr(out, f)) for f in OFFLOAD_STAT_FIELDS}


def offload_detect_fn_address() -> int:
    """Address of the offload layer's ``dsl_detect_fn`` (for the multifd engine's senders)."""
    return int(ffi.cast("uintptr_t", lib.dsl_offload_detect_fn()))


def umwait_supported() -> bool:
    """Whether UMWAIT completion waiting is compiled and the CPU has WAITPKG."""
    return bool(lib.dsl_umwait_supported())
