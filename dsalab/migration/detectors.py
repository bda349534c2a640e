"""How a trial's sender threads find zero pages: a CPU kernel behind a C function pointer, or the DSA offload
layer behind a batch function. Each detector knows its backend label and its counters."""

from __future__ import annotations

import dataclasses
from typing import Any

from dsalab import kernels
from dsalab.backends import Backend
from dsalab.trial import Trial


@dataclasses.dataclass
class Detector:
    """What the native engine needs: a per-page zero check, or a batch detector with its context."""

    backend: str
    zero_fn_address: int = 0
    detect_fn_address: int = 0
    detect_ctx: Any = None
    devices: int = 0
    offloader: Any = None
    #: devices this detector opened (closed after the offloader)
    opened: list[Any] = dataclasses.field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        """Offload counters (zeros for CPU detectors)."""
        if self.offloader is None:
            return {
                "pages_offloaded": 0,
                "fallback_pages": 0,
                "fallback_pages_by_reason": {},
                "queue_full_retries": 0,
                "page_faults": 0,
                "device_busy_ms": 0.0,
            }
        return offload_counters(self.offloader.stats())

    def close(self) -> None:
        """Release the offloader, then the devices it used (idempotent)."""
        if self.offloader is not None:
            self.offloader.close()
            self.offloader = None
        _close_all(self.opened)


def _close_all(devices: list[Any]) -> None:
    while devices:
        devices.pop().close()


def offload_counters(stats: dict[str, Any]) -> dict[str, Any]:
    """The trial-level counters from an Offloader's ``stats()``."""
    by_reason = {k: int(v) for k, v in stats.get("pages_cpu_by_reason", {}).items()}
    return {
        "pages_offloaded": int(stats.get("pages_offloaded", 0)),
        "fallback_pages": int(sum(by_reason.values())),
        "fallback_pages_by_reason": by_reason,
        "queue_full_retries": int(stats.get("queue_full_retries", stats.get("retries", 0))),
        "page_faults": int(stats.get("page_faults", 0)),
        "device_busy_ms": float(stats.get("device_busy_ms", 0.0)),
    }


def make_detector(trial: Trial) -> Detector:
    """Open what ``trial.detector`` needs (devices for DSA detectors)."""
    if trial.detector == Backend.CPU_NUMBA:
        return Detector(Backend.CPU_NUMBA, zero_fn_address=kernels.numba_zero_check_address())
    if trial.detector == Backend.CPU_NATIVE:
        return Detector(Backend.CPU_NATIVE, zero_fn_address=kernels.native_zero_check_address())
    return _dsa_detector(trial)


def _dsa_detector(trial: Trial) -> Detector:
    from dsalab import devices, offload

    specs = trial.device_specs
    if trial.detector == Backend.DSA_HARDWARE and not specs:
        found = [q.path for q in devices.discover() if q.access != "none" and not q.access.startswith("none")]
        count = trial.devices if isinstance(trial.devices, int) else len(found)
        specs = tuple(found[:count])
        if len(specs) < count:
            from dsalab.errors import DeviceNotFound

            raise DeviceNotFound(
                f"detector dsa-hardware needs {count} usable DSA work queue(s) but this machine has "
                f"{len(found)} ({', '.join(found) or 'none'}); use detector dsa-emulated, or see `dsalab devices`"
            )
    opened: list[Any] = []
    try:
        for spec in specs:
            opened.append(devices.open_device(spec))
        off = offload.Offloader(
            opened,
            batch_size=trial.batch_size,
            completion=trial.completion,
            cpu_fraction=trial.cpu_fraction,
        )
    except BaseException:  # a spec that does not open, or no offloader: close what did open
        _close_all(opened)
        raise
    backends = {d.backend for d in opened}
    native = off.native_detector()
    return Detector(
        backend=Backend.DSA_HARDWARE if Backend.DSA_HARDWARE in backends else Backend.DSA_EMULATED,
        detect_fn_address=native.fn_address,
        detect_ctx=native.ctx,
        devices=len(opened),
        offloader=off,
        opened=opened,
    )
