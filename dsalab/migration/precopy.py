"""The ``live_migration`` thread (pre-copy rounds, then the final phase) and the trial's overall deadline.

Each round is one call into the native engine, which walks the pages, hands packets to the ``multifdsend_<i>``
threads and waits for the ``multifdrecv_<i>`` threads to acknowledge (all without the GIL). With a dirty rate, a
``guest_dirty`` thread writes pages and marks a dirty bitmap; rounds go on until what is left fits the downtime
limit at the measured bandwidth, then the dirtier stops (the guest is paused) and the rest is sent: that final
phase is the downtime.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import numpy as np

from dsalab import _binding
from dsalab.trial import Trial
from dsalab.units import format_bytes

#: called about 10 times a second with (pages sent, guest pages)
ProgressFn = Callable[[int, int], None]

#: the slowest a healthy trial is assumed to move guest memory, bytes/s: a bound for the deadline, not a forecast
DEADLINE_MIN_RATE = 1 << 20
#: how long live_migration waits, s, for the trial to read its CPU time before the thread ends anyway
RELEASE_WAIT_S = 60.0
#: how often the trial looks at the live_migration thread (progress, deadline), s
POLL_S = 0.1


def trial_deadline_s(trial: Trial) -> float:
    """The overall deadline of ``trial``'s migration, seconds from the start of its ``live_migration`` thread.

    ``4 * io_timeout_ms / 1000 + rounds * guest_bytes / rate``, where ``rounds`` is ``max_iterations + 1`` with a
    dirty rate (each pre-copy round and the final phase may resend the whole guest) and 1 without, and ``rate`` is
    :data:`DEADLINE_MIN_RATE` (1 MiB/s) or half of ``max_bandwidth_bytes`` when that is lower. The engine's own
    bound (``io_timeout_ms`` without progress) fires first for a stalled channel; this one ends a trial that
    progresses too slowly to be worth waiting for (pass ``deadline_s`` to :func:`run_trial` to choose another).
    """
    rounds = trial.max_iterations + 1 if trial.dirty_rate_bytes_per_s > 0 else 1
    rate = float(DEADLINE_MIN_RATE)
    if trial.max_bandwidth_bytes > 0:
        rate = min(rate, trial.max_bandwidth_bytes / 2)
    return 4 * trial.io_timeout_ms / 1000 + rounds * trial.guest_bytes / rate


@dataclasses.dataclass
class Rounds:
    """What the live_migration thread measured (times are ``time.perf_counter()`` seconds)."""

    iterations: int = 0
    syncs: int = 0
    converged: bool = True
    dirtied: int = 0
    downtime_s: float = 0.0
    end: float = 0.0
    error: str = ""
    #: CPU time the guest_dirty thread reported when it stopped, ms
    guest_cpu_ms: float = 0.0
    #: set by live_migration when its work is done; it then waits for `release` so that the trial can read
    #: its CPU time while it still exists
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)


def live_migration(engine: _binding.MigrationEngine, trial: Trial, out: Rounds) -> None:
    """The live_migration thread: pre-copy rounds, then the final phase; results and any error go to ``out``."""
    _binding.set_thread_name("live_migration")
    try:
        pending = engine.new_bitmap()  # dirty pages not sent yet
        fresh = engine.new_bitmap()
        limit_s = trial.downtime_limit_ms / 1000.0
        dirty = trial.dirty_rate_bytes_per_s > 0
        if dirty:
            engine.dirtier_start(trial.dirty_rate_bytes_per_s, trial.seed ^ 0x5EED)
        send_bitmap = None  # the bulk round sends every page
        while True:
            b0, t0 = engine.bytes_sent(), time.perf_counter()
            st, _ = engine.send_pages(send_bitmap)
            out.iterations += 1
            if st:
                out.error = engine.error() or f"round {out.iterations} failed with native status {st}"
                return
            bandwidth = max((engine.bytes_sent() - b0) / max(time.perf_counter() - t0, 1e-6), 1e6)
            if not dirty:
                break
            remaining = engine.dirty_sync(pending)
            out.syncs += 1
            if remaining * trial.page_size / bandwidth <= limit_s:
                break
            if out.iterations >= trial.max_iterations:
                out.converged = False
                break
            send_bitmap = pending
        # final phase: the guest stops; what is still dirty goes now (pending, and what was dirtied since)
        t_down = time.perf_counter()
        out.dirtied = engine.dirtier_stop() if dirty else 0
        out.guest_cpu_ms = engine.dirtier_cpu_ns() / 1e6
        engine.dirty_sync(fresh)
        out.syncs += 1
        np.bitwise_or(pending, fresh, out=pending)
        st, _ = engine.send_pages(pending)
        out.iterations += 1
        if not st:
            st = engine.finish()
        out.end = time.perf_counter()
        out.downtime_s = out.end - t_down
        if st:
            out.error = engine.error() or f"final phase failed with native status {st}"
    except BaseException as exc:  # never leave the trial waiting on a dead thread
        out.error = f"live_migration: {type(exc).__name__}: {exc}"
    finally:
        out.done.set()
        out.release.wait(RELEASE_WAIT_S)


def wait_for_rounds(
    engine: _binding.MigrationEngine,
    rounds: Rounds,
    deadline_s: float,
    stop_s: float,
    progress: ProgressFn | None,
    npages: int,
) -> None:
    """Wait for the live_migration thread, calling ``progress``; past ``deadline_s`` seconds abort the engine and
    wait ``stop_s`` seconds more for the thread to give up (its error then names what did not finish)."""
    deadline = time.monotonic() + deadline_s
    while not rounds.done.wait(POLL_S):
        if progress is not None:
            progress(engine.pages_sent(), npages)
        if time.monotonic() >= deadline:
            engine.abort(
                f"trial deadline of {deadline_s:.1f} s passed (4 x io_timeout_ms + rounds x guest_bytes / "
                f"{format_bytes(DEADLINE_MIN_RATE)}/s, see trial_deadline_s): live_migration did not finish "
                f"round {rounds.iterations + 1}"
            )
            rounds.done.wait(stop_s)
            return
    if progress is not None:
        progress(engine.pages_sent(), npages)
