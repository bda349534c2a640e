"""Stopping a trial's engine threads and freeing what it opened, within a bound.

A thread still running when the bound passes (one stuck inside a detector) is named, and the trial's engine,
sockets and devices are then left allocated rather than freed under it: :func:`release_stuck_trials` frees them
once the thread has ended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time

from dsalab import _binding
from dsalab.errors import InvalidArgument
from dsalab.migration.detectors import Detector

#: extra time, s, beyond io_timeout_ms that stopping the engine's threads may take before they are declared stuck
STOP_GRACE_S = 2.0


@dataclasses.dataclass
class _Stuck:
    """What a trial leaves allocated when one of its threads did not finish: freed by release_stuck_trials."""

    what: str
    engine: _binding.MigrationEngine
    live: threading.Thread
    sockets: list[socket.socket]
    detector: Detector | None
    keep: list[object]


_STUCK: list[_Stuck] = []
_STUCK_LOCK = threading.Lock()


def release_stuck_trials(timeout_s: float = 0.0) -> int:
    """Free what failed trials left allocated because a thread had not finished (see
    :func:`dsalab.migration.run_trial`), for those whose threads have ended now; wait up to ``timeout_s`` seconds
    (float) in all. Returns how many remain."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 <= timeout_s <= 1e6:
        raise InvalidArgument(f"timeout_s={timeout_s!r} is not allowed: a number of seconds from 0 to 1e6")
    deadline = time.monotonic() + float(timeout_s)
    with _STUCK_LOCK:
        remaining = []
        for item in _STUCK:
            left_ms = max(int((deadline - time.monotonic()) * 1e3), 0)
            item.live.join(left_ms / 1e3)
            if item.live.is_alive() or item.engine.stop(left_ms):
                remaining.append(item)
                continue
            item.engine.destroy()
            for sock in item.sockets:
                sock.close()
            if item.detector is not None:
                item.detector.close()
        _STUCK[:] = remaining
        return len(remaining)


def shut_down(
    engine: _binding.MigrationEngine | None,
    live: threading.Thread | None,
    sockets: list[socket.socket],
    detector: Detector | None,
    stop_s: float,
    keep: list[object],
) -> str:
    """Stop and free a trial's engine, sockets and detector within ``stop_s`` seconds: "" when done, else a
    sentence naming the threads still running, whose resources (and ``keep``) are then left allocated."""
    stuck = ""
    if engine is not None:  # live_migration may be inside the engine: then it must not be stopped under it
        alive = live is not None and live.is_alive()
        stuck = "live_migration" if alive else engine.stop(int(stop_s * 1e3))
    if stuck:
        for sock in sockets:  # wake any I/O, but keep the descriptors: a running thread must not see them reused
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        assert engine is not None and live is not None
        with _STUCK_LOCK:
            _STUCK.append(_Stuck(stuck, engine, live, list(sockets), detector, keep))
        return (
            f"{stuck} did not finish within {stop_s:.1f} s of the stop; its engine, sockets and devices are left "
            "allocated (dsalab.migration.engine.release_stuck_trials() frees them once it has ended)"
        )
    if engine is not None:
        engine.destroy()
    for sock in sockets:
        sock.close()
    if detector is not None:
        detector.close()
    return ""
