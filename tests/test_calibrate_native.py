"""native/calibrate.c through dsalab._binding.calibrate: the micro-measurements of `dsalab calibrate` give
positive figures, refuse bad arguments with the library's errors, and never wait without a bound."""

from __future__ import annotations

import os
import socket

import pytest

from dsalab._binding import calibrate as native
from dsalab.errors import DsalabError

pytestmark = pytest.mark.timeout(60)


def _pair():
    server = socket.create_server(("127.0.0.1", 0))
    out = socket.create_connection(server.getsockname(), timeout=10)
    conn, _ = server.accept()
    server.close()
    return out, conn


def test_wakeup_counts_both_threads():
    cpu, wall = native.wakeup(2000)
    assert cpu > 0 and wall > 0


@pytest.mark.parametrize("rounds", [0, 1 << 33])
def test_wakeup_refuses_bad_rounds(rounds):
    with pytest.raises(DsalabError, match="cal_wakeup"):
        native.wakeup(rounds)


def test_write_cpu_to_dev_null():
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        assert native.write_cpu(fd, 64, 1000) > 0
    finally:
        os.close(fd)


@pytest.mark.parametrize(("fd", "nbytes", "count"), [(-1, 64, 10), (1, 0, 10), (1, 4097, 10), (1, 64, 0)])
def test_write_refuses_bad_arguments(fd, nbytes, count):
    with pytest.raises(DsalabError, match="cal_write"):
        native.write_cpu(fd, nbytes, count)


def test_stream_moves_every_byte():
    out, conn = _pair()
    with out, conn:
        wall, send_cpu, recv_cpu = native.stream(out.fileno(), conn.fileno(), 64 << 10, 64)
    assert wall > 0 and send_cpu > 0 and recv_cpu > 0


def test_stream_to_a_closed_peer_fails_instead_of_hanging():
    out, conn = _pair()
    with out:
        conn.close()  # the reader's end is gone: writes fail (EPIPE / ECONNRESET) or stall, both bounded
        other, peer = _pair()
        with other, peer, pytest.raises(DsalabError, match="cal_stream"):
            native.stream(out.fileno(), peer.fileno(), 1 << 20, 64)


@pytest.mark.parametrize(("nbytes", "count"), [(0, 1), (1 << 30, 1), (64, 0)])
def test_stream_refuses_bad_arguments(nbytes, count):
    out, conn = _pair()
    with out, conn, pytest.raises(DsalabError, match="cal_stream"):
        native.stream(out.fileno(), conn.fileno(), nbytes, count)
