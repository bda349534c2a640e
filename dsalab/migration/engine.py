"""Run one migration trial: QEMU-style multifd over real TCP connections on 127.0.0.1.

:func:`run_trial` goes through four steps, each in its own place:

1. open (:func:`_opened`, a :class:`contextlib.ExitStack`): the guest and destination memory, the detector
   (:mod:`~dsalab.migration.detectors`), the channels (:mod:`~dsalab.migration.channels`) and the native engine;
2. run (:func:`_run`): the ``live_migration`` thread's pre-copy rounds and final phase
   (:mod:`~dsalab.migration.precopy`), bounded by the trial's deadline; then stop and free what was opened
   (:mod:`~dsalab.migration.teardown`);
3. build the result from the raw counters, a pure function (:func:`~dsalab.migration.counters.build_result`);
4. verify: the destination is compared with the source byte for byte (:mod:`~dsalab.migration.verify`).

Every wait is bounded. The native engine bounds each wait without progress by ``io_timeout_ms``; on top of that a
trial has an overall deadline (:func:`trial_deadline_s`), after which it is aborted and fails with a
:class:`~dsalab.errors.MigrationError` naming the thread that did not finish. Stopping the engine's threads is
bounded too: a thread still running then (one stuck inside a detector) is named in the error, and its engine,
sockets and devices are left allocated rather than freed under it (:func:`release_stuck_trials` frees them once it
has ended).
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np

from dsalab import _binding
from dsalab.errors import MigrationError
from dsalab.migration import accounting
from dsalab.migration.channels import FAULTS, Fault, check_fault, connect_channels, fault_args
from dsalab.migration.counters import RawCounters, build_result
from dsalab.migration.detectors import Detector, make_detector
from dsalab.migration.guest import GuestMemory, anonymous_mapping, memory_shortfall
from dsalab.migration.precopy import (
    DEADLINE_MIN_RATE,
    ProgressFn,
    Rounds,
    live_migration,
    trial_deadline_s,
    wait_for_rounds,
)
from dsalab.migration.teardown import STOP_GRACE_S, release_stuck_trials, shut_down
from dsalab.migration.verify import count_mismatched, require_verified
from dsalab.result import TrialResult
from dsalab.trial import Trial
from dsalab.units import format_bytes

__all__ = [
    "DEADLINE_MIN_RATE",
    "FAULTS",
    "STOP_GRACE_S",
    "Fault",
    "ProgressFn",
    "connect_channels",
    "release_stuck_trials",
    "run_trial",
    "trial_deadline_s",
]

#: bytes of page bookkeeping per guest page on top of the memory itself: the guest's truth and permutation
#: (GuestMemory) and the received map (native)
BOOKKEEPING_BYTES_PER_PAGE = 17


def _checked_deadline(deadline_s: float | None, trial: Trial) -> float:
    """``deadline_s``, or the trial's default deadline when None; anything but a number of seconds > 0 and < 1e9
    raises :class:`~dsalab.errors.MigrationError`."""
    if deadline_s is None:
        return trial_deadline_s(trial)
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float) or not 0 < deadline_s < 1e9:
        raise MigrationError(f"deadline_s={deadline_s!r} is not allowed: allowed is a number of seconds > 0, < 1e9")
    return deadline_s


def _check_guest(trial: Trial, guest: GuestMemory | None) -> None:
    """Refuse a guest that does not match the trial, and memory this machine does not have (before allocating)."""
    if guest is not None and not isinstance(guest, GuestMemory):
        raise MigrationError(f"guest={type(guest).__name__} is not allowed: a GuestMemory or None")
    if guest is not None and (guest.page_size != trial.page_size or guest.guest_bytes != trial.guest_bytes):
        raise MigrationError(
            f"the guest ({guest.guest_bytes} bytes, page {guest.page_size}) does not match the trial "
            f"({trial.guest_bytes} bytes, page {trial.page_size})"
        )
    copies = 2 if guest is None else 1  # source (unless given) and destination
    npages = trial.guest_bytes // trial.page_size
    short = memory_shortfall(copies * trial.guest_bytes + BOOKKEEPING_BYTES_PER_PAGE * npages)
    if short:
        what = "source + destination" if guest is None else "the destination"
        raise MigrationError(
            f"Trial guest_bytes={trial.guest_bytes} ({format_bytes(trial.guest_bytes)}) is too large for this "
            f"machine: {what} {short}"
        )


@dataclasses.dataclass
class _Opened:
    """What one trial holds while it runs; :meth:`close` stops and frees it once (see
    :func:`~dsalab.migration.teardown.shut_down`), leaving it allocated when a thread is stuck."""

    trial: Trial
    guest: GuestMemory
    dst_map: mmap.mmap
    dst: np.ndarray
    stop_s: float
    start_s: float = 0.0
    setup_s: float = 0.0
    before: dict[int, accounting.ThreadSample] = dataclasses.field(default_factory=dict)
    detector: Detector | None = None
    sockets: tuple[list[socket.socket], list[socket.socket]] = ([], [])
    engine: _binding.MigrationEngine | None = None
    live: threading.Thread | None = None
    rounds: Rounds = dataclasses.field(default_factory=Rounds)
    stuck: str = ""
    closed: bool = False
    stuck_raised: bool = False

    def close(self) -> str:
        """Stop and free the engine, sockets and detector (once): "" when done, else the sentence naming the
        threads still running."""
        if not self.closed:
            self.closed = True
            sockets = self.sockets[0] + self.sockets[1]
            keep: list[object] = [self.guest, self.dst_map, self.dst]
            self.stuck = shut_down(self.engine, self.live, sockets, self.detector, self.stop_s, keep)
            if not self.stuck:
                self.engine = None  # destroyed: drop it and the buffers it held
        return self.stuck

    def finish(self) -> None:
        """Close; raise :class:`~dsalab.errors.MigrationError` if a thread is stuck."""
        if self.close():
            self.stuck_raised = True
            raise MigrationError(self.stuck)

    def exit(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        """The ExitStack's exit callback: close, and name a stuck thread in the exception that is raised."""
        stuck = self.close()
        if not stuck or self.stuck_raised:
            return False
        self.stuck_raised = True
        if exc is None:
            raise MigrationError(stuck)
        if isinstance(exc, MigrationError):
            raise MigrationError(f"{exc}; {stuck}") from None
        if isinstance(exc, Exception):  # Ctrl-C and the like go on as they are
            raise MigrationError(f"{type(exc).__name__}: {exc}; {stuck}") from exc
        return False

    def unmap(self) -> None:
        """Release the destination mapping, unless a stuck thread may still write it."""
        if self.stuck:
            return
        self.dst = np.empty(0, dtype=np.uint8)  # drop the view, then the mapping
        with contextlib.suppress(BufferError):
            self.dst_map.close()


@contextlib.contextmanager
def _opened(trial: Trial, guest: GuestMemory | None, fault: Fault | None) -> Iterator[_Opened]:
    """Open what ``trial`` needs, in order (guest memory, destination mapping, detector, channels, engine), and
    free it on the way out whatever happens (:meth:`_Opened.exit`)."""
    if guest is None:
        guest = GuestMemory(
            trial.guest_bytes,
            normal_ratio=trial.normal_ratio,
            seed=trial.seed,
            page_size=trial.page_size,
            huge_pages=trial.huge_pages,
        )
    try:
        dst_map = anonymous_mapping(
            trial.guest_bytes, huge_pages=trial.huge_pages, populate=trial.prealloc, page_size=trial.page_size
        )
    except OSError as exc:
        raise MigrationError(
            f"could not map {format_bytes(trial.guest_bytes)} of destination memory: {exc.strerror or exc}"
        ) from None
    dst = np.frombuffer(dst_map, dtype=np.uint8)[: trial.guest_bytes]
    res = _Opened(trial, guest, dst_map, dst, stop_s=trial.io_timeout_ms / 1e3 + STOP_GRACE_S)
    del dst  # res holds the only view, so that unmap() can close the mapping
    with contextlib.ExitStack() as stack:
        stack.callback(res.unmap)  # last: after the engine is stopped
        stack.push(res.exit)
        res.before = accounting.snapshot()
        res.start_s = time.perf_counter()
        res.detector = make_detector(trial)
        res.sockets = connect_channels(trial.channels)
        res.engine = _binding.MigrationEngine(
            guest.array,
            res.dst,
            trial.page_size,
            [s.fileno() for s in res.sockets[0]],
            [s.fileno() for s in res.sockets[1]],
            trial.packet_pages,
            zero_fn_address=res.detector.zero_fn_address,
            detect_fn_address=res.detector.detect_fn_address,
            detect_ctx=res.detector.detect_ctx,
            detect_devices=res.detector.devices,
            force_normal_ratio=trial.force_normal_ratio,
            seed=trial.seed,
            max_bandwidth=trial.max_bandwidth_bytes,
            io_timeout_ms=trial.io_timeout_ms,
            **fault_args(fault),
        )
        res.setup_s = time.perf_counter()
        yield res


def _run(res: _Opened, deadline_s: float, progress: ProgressFn | None) -> RawCounters:
    """Run the live_migration thread on ``res``'s engine to the end, the deadline or an error; the raw counters
    (``mismatched_pages`` 0: verification comes after the engine has stopped)."""
    assert res.engine is not None and res.detector is not None
    engine, rounds = res.engine, res.rounds
    res.live = threading.Thread(target=live_migration, args=(engine, res.trial, rounds), name="live_migration")
    res.live.start()
    try:
        wait_for_rounds(engine, rounds, deadline_s, res.stop_s, progress, res.guest.npages)
        after = accounting.snapshot()  # while live_migration still exists (it waits for `release`)
    except BaseException as exc:  # the progress callback raised, or Ctrl-C: end the migration, then raise
        engine.abort(f"live_migration aborted: the caller raised {type(exc).__name__}: {exc}")
        rounds.done.wait(res.stop_s)
        raise
    finally:
        rounds.release.set()
        res.live.join(res.stop_s)
    if res.live.is_alive():
        raise MigrationError(
            f"live_migration did not finish within {res.stop_s:.1f} s of the abort"
            + (f" ({rounds.error})" if rounds.error else "")
        )
    if rounds.error:
        raise MigrationError(rounds.error)
    return RawCounters(
        backend=res.detector.backend,
        start_s=res.start_s,
        setup_s=res.setup_s,
        end_s=rounds.end,
        downtime_s=rounds.downtime_s,
        iterations=rounds.iterations,
        syncs=rounds.syncs,
        converged=rounds.converged,
        dirtied_pages=rounds.dirtied,
        threads_before=res.before,
        threads_after=after,
        guest_cpu_ms=rounds.guest_cpu_ms,
        channel_stats=[engine.channel_stats(i) for i in range(res.trial.channels)],
        offload=res.detector.stats(),
        mismatched_pages=0,
        cores=len(os.sched_getaffinity(0)),
    )


def run_trial(
    trial: Trial,
    *,
    guest: GuestMemory | None = None,
    progress: ProgressFn | None = None,
    fault: Fault | None = None,
    deadline_s: float | None = None,
) -> TrialResult:
    """Migrate ``trial``'s guest memory and return its statistics; always verifies the destination.

    Parameters
    ----------
    trial : the parameter point
    guest : guest memory to migrate (default: made from the trial's guest_bytes, normal_ratio and seed)
    progress : called about 10 times a second with (pages sent, guest pages) while the migration runs
    fault : an injected engine fault (tests, and trying out failure handling)
    deadline_s : overall bound of the migration, seconds (default :func:`trial_deadline_s` of the trial)

    Raises
    ------
    MigrationError : a channel failed (the message names it and what happened), the deadline passed (the message
        names the thread that did not finish), the destination differs, or source + destination memory exceeds
        what this machine has available
    """
    release_stuck_trials()
    deadline_s = _checked_deadline(deadline_s, trial)
    check_fault(fault, trial.channels)
    _check_guest(trial, guest)
    with _opened(trial, guest, fault) as res:
        raw = _run(res, deadline_s, progress)
        res.finish()  # the engine's threads have stopped: the destination is final
        mismatched = count_mismatched(res.guest.array, res.dst, trial.page_size)
    return require_verified(build_result(trial, dataclasses.replace(raw, mismatched_pages=mismatched)))
