"""QMP calls with bounded waits (``qemu.qmp``), errors as :class:`~dsalab.qemu.process.QemuFailed` carrying
QEMU's own message and stderr; :func:`outside_running_loop` lets a caller inside an event loop (Jupyter) run them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from dsalab.qemu.process import STOP_TIMEOUT_S, QemuFailed, QemuProcess, kill_started_by, wait_for_socket

T = TypeVar("T")

#: seconds one QMP command may take
COMMAND_TIMEOUT_S = 30.0


async def connect(proc: QemuProcess, deadline: float):
    """A connected ``qemu.qmp.QMPClient`` for ``proc``; retries until ``deadline`` (``time.monotonic``)."""
    from qemu.qmp import QMPClient

    wait_for_socket(proc, deadline)
    while True:
        client = QMPClient(f"dsalab-{proc.name}")
        try:
            await asyncio.wait_for(client.connect(proc.qmp_path), max(0.1, deadline - time.monotonic()))
            return client
        except Exception as exc:  # qemu.qmp raises its own ConnectError; a timeout is asyncio's
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5.0)
            if proc.returncode() is not None:
                raise proc.failure("QEMU exited before QMP answered") from None
            if time.monotonic() > deadline:
                raise proc.failure(f"QMP at {proc.qmp_path} did not answer ({type(exc).__name__}: {exc})") from None
            await asyncio.sleep(0.05)


async def call(client, proc: QemuProcess, cmd: str, args: Mapping[str, Any] | None = None) -> Any:
    """Execute QMP command ``cmd``; QEMU's refusal or a timeout raises :class:`QemuFailed` naming the command,
    with QEMU's message and stderr."""
    from qemu.qmp import ExecuteError

    try:
        return await asyncio.wait_for(client.execute(cmd, dict(args) if args else None), COMMAND_TIMEOUT_S)
    except ExecuteError as exc:
        raise proc.failure(f"QEMU refused {cmd} {dict(args or {})}: {exc}") from None
    except TimeoutError:
        raise proc.failure(f"QMP command {cmd} got no answer in {COMMAND_TIMEOUT_S} s") from None
    except Exception as exc:  # the connection went away: QEMU died
        if isinstance(exc, QemuFailed):
            raise
        raise proc.failure(f"QMP command {cmd} failed ({type(exc).__name__}: {exc})") from None


async def close(client, proc: QemuProcess, quit_qemu: bool = True) -> None:
    """Ask QEMU to quit (best effort, bounded) and disconnect; the caller still stops the process by PID."""
    if quit_qemu:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.execute("quit"), 5.0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), 5.0)


def outside_running_loop(fn: Callable[..., T], *args: Any, bound_s: float, what: str) -> T:
    """``fn(*args)`` in this thread when it runs no asyncio event loop; otherwise (a Jupyter cell runs inside
    one, where ``asyncio.run`` refuses) in a thread of its own, which runs its own loops and starts (so owns) the
    QEMUs, joined within ``bound_s`` seconds. If the wait is interrupted or the bound passes, the QEMUs that thread
    started get SIGKILL and it is joined (bounded) before the exception goes on. ``what`` names the call in the
    :class:`QemuFailed` of a bound that passed."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # carried to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="dsalab-qemu-trial", daemon=True)
    worker.start()
    try:
        worker.join(bound_s)
        late = worker.is_alive()
    finally:
        if worker.is_alive():
            kill_started_by(worker.ident or 0)
            worker.join(2 * STOP_TIMEOUT_S)
    if late or worker.is_alive():
        raise QemuFailed(f"{what} did not finish within {bound_s:.0f} s; its QEMUs were killed")
    if "error" in box:
        raise box["error"]
    return box["value"]
