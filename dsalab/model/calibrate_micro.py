"""The micro-measurements of ``dsalab calibrate`` (see :mod:`dsalab.model.calibrate`): wake-ups, ``write()``,
loopback TCP streams and memory bandwidth timed in C (``native/calibrate.c``), and the offload layer's CPU on the
emulated device with its timing model off. Every function returns ns (or bytes/s) of one operation."""

from __future__ import annotations

import os
import socket

from dsalab.model import calibrate_engine as ce


def wakeup(rounds: int) -> float:
    """CPU ns of one blocking wait and its wake-up (both threads)."""
    from dsalab._binding import calibrate as native

    cpu, _ = native.wakeup(rounds)
    return cpu / (2 * rounds)


def write64(count: int) -> float:
    """CPU ns of one 64-byte write() to /dev/null."""
    from dsalab._binding import calibrate as native

    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        return native.write_cpu(fd, 64, count) / count
    finally:
        os.close(fd)


def stream(nbytes: int, count: int) -> tuple[float, float]:
    """(wall ns, writer CPU ns) per message of a one-way loopback TCP stream of ``count`` messages."""
    from dsalab._binding import calibrate as native

    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname(), timeout=10) as out,
    ):
        conn, _ = server.accept()
        with conn:
            out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            wall, send_cpu, _ = native.stream(out.fileno(), conn.fileno(), nbytes, count)
    return wall / count, send_cpu / count


def bandwidth(nbytes: int) -> float:
    """Memory read bytes/s of the native OR-reduce loop over ``nbytes``, every usable core."""
    import time

    import numpy as np

    from dsalab import kernels

    buf = np.ones(nbytes, dtype=np.uint8)
    threads = len(os.sched_getaffinity(0))
    kernels.bandwidth_reference(buf, threads)  # warm-up (and the pages are touched)
    t0 = time.perf_counter()
    kernels.bandwidth_reference(buf, threads)
    return nbytes / (time.perf_counter() - t0)


def dsa_prepare(guest, guest_bytes: int) -> float:
    """Sender detection CPU ns per page on the emulated device, timing model off, one batch of 1024 per packet."""
    from dsalab.migration import run_trial
    from dsalab.trial import Trial

    t = Trial(
        guest_bytes=guest_bytes,
        normal_ratio=0.0,
        channels=1,
        packet_bytes=1024 * ce.PAGE,
        detector="dsa-emulated",
        devices=("emu:gbps=0,engines=1",),
        batch_size=1024,
        completion="thread",
    )
    r = run_trial(t, guest=guest)
    return r.detect_cpu_ms * 1e6 / (guest_bytes // ce.PAGE)
