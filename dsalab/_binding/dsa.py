"""DSA devices (emulated, native/emu*.c; hardware work queues, native/hwq.c), raw descriptors, and the offload
layer (native/offload*.c)."""

from __future__ import annotations

import os

import numpy as np

from dsalab import errors
from dsalab._binding.native import Status, check, ffi, lib

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
