"""The native multifd migration engine (native/multifd*.c)."""

from __future__ import annotations

import numpy as np

from dsalab._binding.native import FaultMode, check, ffi, lib

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
