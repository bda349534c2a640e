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
    if fault is None:
        return
    ok = (
        isinstance(fault, Fault)
        and isinstance(fault.kind, str)
        and fault.kind in FAULTS
        and _is_int(fault.channel)
        and 0 <= fault.channel < channels
        and _is_int(fault.after_packets)
        and 0 <= fault.after_packets < 2**63
    )
    if not ok:
        raise MigrationError(
            f"fault {fault!r:.200} is not allowed: a Fault with kind one of {', '.join(FAULTS)}, "
            f"channel an int from 0 to {channels - 1}, after_packets an int from 0 to 2**63-1"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def fault_args(fault: Fault | None) -> dict[str, int]:
    """The keyword arguments of :class:`dsalab._binding.MigrationEngine` that inject ``fault`` (none: no fault)."""
    if fault is None:
        return {"fail_channel": -1, "fail_after_packets": 0, "fail_mode": _binding.FaultMode.NONE}
    return {"fail_channel": fault.channel, "fail_after_packets": fault.after_packets, "fail_mode": FAULTS[fault.kind]}


def connect_channels(n: int) -> tuple[list[socket.socket], list[socket.socket]]:
    """``n`` TCP connections on 127.0.0.1: (source ends, destination ends), paired by index. A failure (e.g. out of
    file descriptors) closes every socket made so far and raises :class:`~dsalab.errors.MigrationError`."""
    srv = socket.create_server(("127.0.0.1", 0), backlog=n)
    srv.settimeout(10)  # accept, like connect, is bounded
    made: list[socket.socket] = []  # every socket opened, for closing on failure
    src, dst = [], []
    try:
        for _ in range(n):
            c = socket.create_connection(srv.getsockname(), timeout=10)
            made.append(c)
            s, _ = srv.accept()
            made.append(s)
            for sock in (c, s):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            src.append(c)
            dst.append(s)
    except OSError as exc:
        for sock in made:
            sock.close()
        raise MigrationError(f"cannot connect {n} channels on 127.0.0.1: {exc.strerror or exc}") from None
    finally:
        srv.close()
    return src, dst
