"""The TCP connections of a trial's multifd channels (127.0.0.1 only), and the engine faults tests inject in them."""

from __future__ import annotations

import dataclasses
import socket

from dsalab import _binding
from dsalab.errors import MigrationError

#: engine fault injection (tests): receiver of a channel exits, resets its connection, or stalls
FAULTS = _binding.FAULT_MODES


@dataclasses.dataclass(frozen=True)
class Fault:
    """An injected engine fault: ``kind`` (a key of :data:`FAULTS`) on ``channel`` after ``after_packets``."""

    kind: str
    channel: int = 0
    after_packets: int = 0


def check_fault(fault: Fault | None, channels: int) -> None:
    """Raise :class:`~dsalab.errors.MigrationError` unless ``fault`` is None or names a known kind and one of
    ``channels`` channels."""
    if fault is not None and (fault.kind not in FAULTS or not 0 <= fault.channel < channels):
        raise MigrationError(f"fault {fault} is not allowed: kind one of {', '.join(FAULTS)}, channel < channels")


def fault_args(fault: Fault | None) -> dict[str, int]:
    """The keyword arguments of :class:`dsalab._binding.MigrationEngine` that inject ``fault`` (none: no fault)."""
    if fault is None:
        return {"fail_channel": -1, "fail_after_packets": 0, "fail_mode": _binding.FaultMode.NONE}
    return {"fail_channel": fault.channel, "fail_after_packets": fault.after_packets, "fail_mode": FAULTS[fault.kind]}


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
