"""Micro-measurements of native/calibrate.c for ``dsalab calibrate``: a wait/wake hand-off, write() of a small
buffer, and a one-way socket stream, each timed in C (thread CPU, CLOCK_MONOTONIC wall time), ns."""

from __future__ import annotations

from dsalab._binding.native import check, ffi, lib


def wakeup(rounds: int) -> tuple[int, int]:
    """(CPU ns of both threads, wall ns) of ``rounds`` round trips of a condition-variable hand-off (two
    blocking waits and two wake-ups each)."""
    cpu, wall = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    check(lib.dsl_cal_wakeup(rounds, cpu, wall), f"cal_wakeup(rounds={rounds})")
    return int(cpu[0]), int(wall[0])


def write_cpu(fd: int, nbytes: int, count: int) -> int:
    """CPU ns of ``count`` write() calls of ``nbytes`` (1..4096) to ``fd``."""
    cpu = ffi.new("uint64_t *")
    check(lib.dsl_cal_write(fd, nbytes, count, cpu), f"cal_write(fd={fd}, bytes={nbytes}, count={count})")
    return int(cpu[0])


def stream(fd_out: int, fd_in: int, nbytes: int, count: int) -> tuple[int, int, int]:
    """(wall ns, writer CPU ns, reader CPU ns) of ``count`` messages of ``nbytes`` written to ``fd_out`` and read
    from ``fd_in`` by another thread (both descriptors are made non-blocking)."""
    wall, scpu, rcpu = ffi.new("uint64_t *"), ffi.new("uint64_t *"), ffi.new("uint64_t *")
    st = lib.dsl_cal_stream(fd_out, fd_in, nbytes, count, wall, scpu, rcpu)
    check(st, f"cal_stream(bytes={nbytes}, count={count})")
    return int(wall[0]), int(scpu[0]), int(rcpu[0])
