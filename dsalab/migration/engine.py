"""Run one migration trial: QEMU-style multifd over real TCP connections on 127.0.0.1.

The ``live_migration`` thread (Python, named like QEMU's) runs pre-copy rounds; each round is one call into the
native engine, which walks the pages, hands packets to the ``multifdsend_<i>`` threads and waits for the
``multifdrecv_<i>`` threads to acknowledge (all without the GIL). With a dirty rate, a ``guest_dirty`` thread
writes pages and marks a dirty bitmap; rounds go on until what is left fits the downtime limit at the measured
bandwidth, then the dirtier stops (the guest is paused) and the rest is sent: that final phase is the downtime.
The destination is compared with the source byte for byte at the end.

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
import socket
import threading
import time
from collections.abc import Callable

import numpy as np

from dsalab import _binding, kernels
from dsalab.errors import MigrationError
from dsalab.migration import accounting
from dsalab.migration.detectors import Detector, make_detector
from dsalab.migration.guest import GuestMemory, anonymous_mapping, memory_shortfall
from dsalab.result import TrialResult
from dsalab.threads import split_threads
from dsalab.trial import Trial
from dsalab.units import format_bytes

#: engine fault injection (tests): receiver of a channel exits, resets its connection, or stalls
FAULTS = _binding.FAULT_MODES

ProgressFn = Callable[[int, int], None]

#: the slowest a healthy trial is assumed to move guest memory, bytes/s: a bound for the deadline, not a forecast
DEADLINE_MIN_RATE = 1 << 20
#: extra time, s, beyond io_timeout_ms that stopping the engine's threads may take before they are declared stuck
STOP_GRACE_S = 2.0


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
    """Free what failed trials left allocated because a thread had not finished (see :func:`run_trial`), for
    those whose threads have ended now; wait up to ``timeout_s`` seconds (float) in all. Returns how many remain."""
    deadline = time.monotonic() + max(float(timeout_s), 0.0)
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


@dataclasses.dataclass(frozen=True)
class Fault:
    """An injected engine fault: ``kind`` (a key of :data:`FAULTS`) on ``channel`` after ``after_packets``."""

    kind: str
    channel: int = 0
    after_packets: int = 0


def connect_channels(n: int) -> tuple[list[socket.socket], list[socket.socket]]:
    """``n`` TCP connections on 127.0.0.1: (source ends, destination ends), paired by index."""
    srv = socket.create_server(("127.0.0.1", 0), backlog=n)
    srv.settimeout(10)  # accept, like connect, is bounded
    src, dst = [], []
    try:
        for _ in range(n):
            c = socket.create_connection(srv.getsockname(), timeout=10)
            s, _ = srv.accept()
            for sock in (c, s):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            src.append(c)
            dst.append(s)
    except OSError:
        for sock in src + dst:
            sock.close()
        raise
    finally:
        srv.close()
    return src, dst


@dataclasses.dataclass
class _Rounds:
    """What the live_migration thread measured."""

    iterations: int = 0
    syncs: int = 0
    converged: bool = True
    dirtied: int = 0
    downtime_s: float = 0.0
    end: float = 0.0
    error: str = ""
    #: set by live_migration when its work is done; it then waits for `release` so that the trial can read
    #: its CPU time while it still exists
    guest_cpu_ms: float = 0.0
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)


def _live_migration(engine: _binding.MigrationEngine, trial: Trial, out: _Rounds) -> None:
    """The live_migration thread: pre-copy rounds, then the final phase."""
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
        out.release.wait(60)


def _wait_for_rounds(
    engine: _binding.MigrationEngine,
    rounds: _Rounds,
    deadline_s: float,
    stop_s: float,
    progress: ProgressFn | None,
    npages: int,
) -> None:
    """Wait for the live_migration thread, calling ``progress``; past ``deadline_s`` abort the engine and wait
    ``stop_s`` more for the thread to give up (its error then names what did not finish)."""
    deadline = time.monotonic() + deadline_s
    while not rounds.done.wait(0.1):
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


def _shut_down(
    engine: _binding.MigrationEngine | None,
    live: threading.Thread | None,
    socks: tuple[list[socket.socket], list[socket.socket]],
    detector: Detector | None,
    stop_s: float,
    keep: list[object],
) -> str:
    """Stop and free a trial's engine, sockets and detector within ``stop_s`` seconds: "" when done, else a
    sentence naming the threads still running, whose resources are then left allocated (see _Stuck)."""
    sockets = socks[0] + socks[1]
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
            _STUCK.append(_Stuck(stuck, engine, live, sockets, detector, keep))
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
    if deadline_s is None:
        deadline_s = trial_deadline_s(trial)
    elif isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float) or not 0 < deadline_s < 1e9:
        raise MigrationError(f"deadline_s={deadline_s!r} is not allowed: allowed is a number of seconds > 0, < 1e9")
    if fault is not None and (fault.kind not in FAULTS or not 0 <= fault.channel < trial.channels):
        raise MigrationError(f"fault {fault} is not allowed: kind one of {', '.join(FAULTS)}, channel < channels")
    if guest is not None and (guest.page_size != trial.page_size or guest.guest_bytes != trial.guest_bytes):
        raise MigrationError(
            f"the guest ({guest.guest_bytes} bytes, page {guest.page_size}) does not match the trial "
            f"({trial.guest_bytes} bytes, page {trial.page_size})"
        )
    copies = 2 if guest is None else 1  # source (unless given) and destination
    # + the page bookkeeping: the guest's truth and permutation (GuestMemory), the received map (native)
    short = memory_shortfall(copies * trial.guest_bytes + 17 * (trial.guest_bytes // trial.page_size))
    if short:
        what = "source + destination" if guest is None else "the destination"
        raise MigrationError(
            f"Trial guest_bytes={trial.guest_bytes} ({format_bytes(trial.guest_bytes)}) is too large for this "
            f"machine: {what} {short}"
        )
    if guest is None:
        guest = GuestMemory(
            trial.guest_bytes,
            normal_ratio=trial.normal_ratio,
            seed=trial.seed,
            page_size=trial.page_size,
            huge_pages=trial.huge_pages,
        )
    try:
        dst_map = anonymous_mapping(trial.guest_bytes, huge_pages=trial.huge_pages)
    except OSError as exc:
        raise MigrationError(
            f"could not map {format_bytes(trial.guest_bytes)} of destination memory: {exc.strerror or exc}"
        ) from None
    dst = np.frombuffer(dst_map, dtype=np.uint8)[: trial.guest_bytes]

    before = accounting.snapshot()
    t_start = time.perf_counter()
    detector: Detector | None = None
    engine: _binding.MigrationEngine | None = None
    live: threading.Thread | None = None
    socks: tuple[list[socket.socket], list[socket.socket]] = ([], [])
    rounds = _Rounds()
    stop_s = trial.io_timeout_ms / 1e3 + STOP_GRACE_S
    try:
        detector = make_detector(trial)
        socks = connect_channels(trial.channels)
        engine = _binding.MigrationEngine(
            guest.array,
            dst,
            trial.page_size,
            [s.fileno() for s in socks[0]],
            [s.fileno() for s in socks[1]],
            trial.packet_pages,
            zero_fn_address=detector.zero_fn_address,
            detect_fn_address=detector.detect_fn_address,
            detect_ctx=detector.detect_ctx,
            detect_devices=detector.devices,
            force_normal_ratio=trial.force_normal_ratio,
            seed=trial.seed,
            max_bandwidth=trial.max_bandwidth_bytes,
            io_timeout_ms=trial.io_timeout_ms,
            fail_channel=fault.channel if fault else -1,
            fail_after_packets=fault.after_packets if fault else 0,
            fail_mode=FAULTS[fault.kind] if fault else _binding.FaultMode.NONE,
        )
        t_setup = time.perf_counter()
        live = threading.Thread(target=_live_migration, args=(engine, trial, rounds), name="live_migration")
        live.start()
        try:
            _wait_for_rounds(engine, rounds, deadline_s, stop_s, progress, guest.npages)
            after = accounting.snapshot()  # while live_migration still exists (it waits for `release`)
        except BaseException as exc:  # the progress callback raised, or Ctrl-C: end the migration, then raise
            engine.abort(f"live_migration aborted: the caller raised {type(exc).__name__}: {exc}")
            rounds.done.wait(stop_s)
            raise
        finally:
            rounds.release.set()
            live.join(stop_s)
        if live.is_alive():
            raise MigrationError(
                f"live_migration did not finish within {stop_s:.1f} s of the abort"
                + (f" ({rounds.error})" if rounds.error else "")
            )
        if rounds.error:
            raise MigrationError(rounds.error)
        channel_stats = [engine.channel_stats(i) for i in range(trial.channels)]
        offload = detector.stats()
    except BaseException as exc:
        stuck = _shut_down(engine, live, socks, detector, stop_s, [guest, dst_map, dst])
        if stuck and isinstance(exc, MigrationError):
            raise MigrationError(f"{exc}; {stuck}") from None
        if stuck and isinstance(exc, Exception):  # Ctrl-C and the like go on as they are
            raise MigrationError(f"{type(exc).__name__}: {exc}; {stuck}") from exc
        raise
    stuck = _shut_down(engine, live, socks, detector, stop_s, [guest, dst_map, dst])
    if stuck:
        raise MigrationError(stuck)

    mismatched = int((~kernels.compare_pages(guest.array, dst, trial.page_size, kernel="native")).sum())
    del dst
    with contextlib.suppress(BufferError):
        dst_map.close()

    total_s = rounds.end - t_start
    cpu = {}
    for pattern in (
        accounting.SOURCE_THREADS,
        accounting.DESTINATION_THREADS,
        accounting.DEVICE_THREADS,
        accounting.GUEST_THREADS,
    ):
        cpu.update(accounting.cpu_by_name(before, after, pattern))
    if rounds.guest_cpu_ms:  # the guest_dirty thread has ended: it reported its own CPU time
        cpu["guest_dirty"] = rounds.guest_cpu_ms
    host, dest = split_threads(cpu)
    transferred = sum(c["bytes_sent"] for c in channel_stats)
    result = TrialResult(
        trial=trial,
        backend=detector.backend,
        total_time_ms=total_s * 1e3,
        setup_time_ms=(t_setup - t_start) * 1e3,
        downtime_ms=rounds.downtime_s * 1e3,
        throughput_mbps=transferred * 8 / total_s / 1e6,
        transferred_bytes=transferred,
        total_bytes=trial.guest_bytes,
        zero_pages=sum(c["zero_pages"] for c in channel_stats),
        normal_pages=sum(c["normal_pages"] for c in channel_stats),
        forced_normal_pages=sum(c["forced_normal_pages"] for c in channel_stats),
        pages_sent=sum(c["pages"] for c in channel_stats),
        iterations=rounds.iterations,
        dirty_sync_count=rounds.syncs,
        dirtied_pages=rounds.dirtied,
        converged=rounds.converged,
        thread_cpu_ms=cpu,
        host_cpu_ms=host,
        destination_cpu_ms=dest,
        device_cpu_ms=sum(v for n, v in cpu.items() if accounting.DEVICE_THREADS.match(n)),
        device_busy_ms=offload["device_busy_ms"],
        guest_cpu_ms=sum(v for n, v in cpu.items() if accounting.GUEST_THREADS.match(n)),
        detect_cpu_ms=sum(c["detect_cpu_ns"] for c in channel_stats) / 1e6,
        send_cpu_ms=sum(c["send_cpu_ns"] for c in channel_stats) / 1e6,
        sender_cpu_ms=sum(c["sender_cpu_ns"] for c in channel_stats) / 1e6,
        packets=sum(c["packets"] for c in channel_stats),
        pages_offloaded=offload["pages_offloaded"],
        fallback_pages=offload["fallback_pages"],
        fallback_pages_by_reason=offload["fallback_pages_by_reason"],
        queue_full_retries=offload["queue_full_retries"],
        page_faults=offload["page_faults"],
        verified=mismatched == 0,
        mismatched_pages=mismatched,
        channel_stats=channel_stats,
    )
    if not result.verified:
        raise MigrationError(
            f"destination differs from the source in {mismatched} of {guest.npages} pages after migration "
            f"({detector.backend}, {trial.channels} channels)"
        )
    return result
