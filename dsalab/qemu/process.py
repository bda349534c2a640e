"""One QEMU process of a trial: started with a QMP socket, its stderr kept in a file, stopped by its PID.

Every :class:`QemuProcess` is stopped (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`) by :func:`stop_all`
(or :meth:`QemuProcess.stop`), which the runner calls in a ``finally`` block, so a trial that ends, fails or is
interrupted (KeyboardInterrupt too) leaves no QEMU behind. When the Python process itself dies without running
its ``finally`` blocks (SIGTERM, SIGKILL, the OOM killer, a Dask nanny restarting a worker), the kernel kills
every QEMU it started: each is started with ``PR_SET_PDEATHSIG`` = SIGKILL. Linux sends that signal when the
*thread* that started the process exits, so QEMUs are started by the thread that runs the trial (which lives as
long as the trial). :func:`live_pids` lists the PIDs started and not yet stopped (tests check it).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading
import time

from dsalab.errors import DsalabError, MigrationError

#: the binary looked up on PATH when none is given
QEMU_BINARY = "qemu-system-x86_64"
#: seconds a QEMU has to exit after SIGTERM before it gets SIGKILL (and again after SIGKILL)
STOP_TIMEOUT_S = 10.0
#: seconds ``--version`` may take
VERSION_TIMEOUT_S = 30.0
#: most bytes of QEMU's stderr carried in an error message
STDERR_LIMIT = 2000

#: Linux's prctl option: the signal a process gets when the thread that forked it exits
PR_SET_PDEATHSIG = 1

_LIVE: dict[int, QemuProcess] = {}
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it


class QemuUnavailable(DsalabError):
    """No usable QEMU binary on this machine (install Debian's qemu-system-x86, >= 9.0 for multifd zero pages)."""


class QemuFailed(MigrationError):
    """A QEMU process failed (it did not start, it exited, or the migration failed); the message carries QEMU's
    own stderr or error description."""


def find_binary(qemu: str | None = None) -> str:
    """The absolute path of the QEMU binary ``qemu`` (a path, a name on PATH, or None for :data:`QEMU_BINARY`);
    raises :class:`QemuUnavailable` naming it when it is missing or not executable."""
    name = qemu or QEMU_BINARY
    path = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
    if not path or not os.path.isfile(path):
        raise QemuUnavailable(
            f"qemu={name!r}: {name} is not installed or not executable (Debian: apt-get install qemu-system-x86)"
        )
    return os.path.abspath(path)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, micro) from ``qemu-system-x86_64 --version`` output, or None."""
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def qemu_version(binary: str = QEMU_BINARY) -> tuple[int, int, int] | None:
    """QEMU's version (major, minor, micro), or None when the binary is not installed or says no version."""
    try:
        path = find_binary(binary)
    except QemuUnavailable:
        return None
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, env=package_env(path)
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(out.stdout)


def package_root(binary: str) -> pathlib.Path | None:
    """The root of an unpacked Debian package (``dpkg -x PKG ROOT``) holding ``binary`` at
    ``ROOT/usr/bin/...``, or None for an installed binary (``/usr/bin``) or any other layout."""
    path = pathlib.Path(binary).resolve()
    if path.parent.name != "bin" or path.parent.parent.name != "usr":
        return None
    root = path.parent.parent.parent
    return root if root != pathlib.Path("/") and (root / "usr/share/qemu").is_dir() else None


def package_env(binary: str) -> dict[str, str] | None:
    """The environment a binary from an unpacked package needs (``QEMU_MODULE_DIR``: its accelerator modules),
    or None (inherit) for an installed one."""
    root = package_root(binary)
    modules = root / "usr/lib/x86_64-linux-gnu/qemu" if root else None
    if modules is None or not modules.is_dir():
        return None
    return {**os.environ, "QEMU_MODULE_DIR": str(modules)}


def package_args(binary: str) -> list[str]:
    """Firmware search paths (``-L``) a binary from an unpacked package needs: its own ``usr/share/qemu``, then
    the installed SeaBIOS (Debian's package links its BIOS images there); empty for an installed binary."""
    root = package_root(binary)
    if root is None:
        return []
    args = ["-L", str(root / "usr/share/qemu")]
    for extra in (root / "usr/share/seabios", pathlib.Path("/usr/share/seabios")):
        if extra.is_dir():
            args += ["-L", str(extra)]
    return args


def accelerator() -> str:
    """``kvm`` where ``/dev/kvm`` can be opened for reading and writing, else ``tcg``."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return "tcg"
    os.close(fd)
    return "kvm"


def live_pids() -> set[int]:
    """PIDs of the QEMU processes started by this process and not stopped yet."""
    return set(_LIVE)


def kill_started_by(thread_id: int) -> None:
    """SIGKILL every live QEMU that thread ``thread_id`` (``threading.get_ident()``) started (an interrupted
    caller ends the trial a worker thread runs; the worker's ``finally`` still reaps them)."""
    for p in list(_LIVE.values()):
        if p.thread_id == thread_id and p.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)


def _die_with_parent(parent: int) -> None:
    """In the forked child, before exec: SIGKILL when the forking thread exits, and at once if it already has."""
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died between fork and prctl
        os.kill(os.getpid(), signal.SIGKILL)


def stop_all(procs: list[QemuProcess], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop every process of ``procs`` by its PID: a short bounded wait for a clean exit (after QMP ``quit``),
    then SIGTERM to all of them first, then a bounded wait on each (SIGKILL after ``timeout_s`` seconds). If this
    is interrupted (a second Ctrl-C), every process still running gets SIGKILL before the exception goes on, so
    none is skipped."""
    try:
        deadline = time.monotonic() + min(1.0, timeout_s)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for p in procs:
            p.signal(signal.SIGTERM)
        for p in procs:
            p.stop(timeout_s, grace_s=0.0)
    finally:
        for p in procs:
            p.signal(signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=timeout_s)
            if p.proc.poll() is not None:
                _LIVE.pop(p.pid, None)


class QemuProcess:
    """A paused QEMU (``-S -nodefaults``, no display) with a QMP socket at :attr:`qmp_path`.

    Parameters
    ----------
    binary : absolute path of the QEMU binary (:func:`find_binary`)
    args : further command-line arguments (machine, memory, ``-incoming``)
    name : short name for the socket and stderr files, and QEMU's ``-name``
    workdir : an existing private directory for the socket and the stderr file
    """

    def __init__(self, binary: str, args: list[str], *, name: str, workdir: str) -> None:
        self.name = name
        self.qmp_path = os.path.join(workdir, f"{name}.qmp")
        self._stderr_path = os.path.join(workdir, f"{name}.stderr")
        self.cmd = [
            binary,
            *package_args(binary),
            "-name", f"dsalab-{name},debug-threads=on",
            "-nodefaults", "-display", "none", "-S",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            *args,
        ]  # fmt: skip
        with open(self._stderr_path, "wb") as err:
            try:
                self.proc = subprocess.Popen(
                    self.cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=package_env(binary),
                    close_fds=True,
                    preexec_fn=functools.partial(_die_with_parent, os.getpid()),
                )
            except OSError as exc:
                raise QemuUnavailable(f"qemu={binary!r} cannot be started: {exc.strerror or exc}") from None
        self.pid = self.proc.pid
        self.thread_id = threading.get_ident()
        _LIVE[self.pid] = self

    def stderr_text(self) -> str:
        """What QEMU wrote to stderr so far (its last :data:`STDERR_LIMIT` characters), stripped."""
        try:
            text = pathlib.Path(self._stderr_path).read_text(errors="replace").strip()
        except OSError:
            return ""
        return text if len(text) <= STDERR_LIMIT else "..." + text[-STDERR_LIMIT:]

    def returncode(self) -> int | None:
        """QEMU's exit status, or None while it runs."""
        return self.proc.poll()

    def failure(self, what: str) -> QemuFailed:
        """A :class:`QemuFailed` saying ``what`` happened, with QEMU's exit status and its stderr."""
        status = self.proc.poll()
        state = "running" if status is None else f"exit status {status}"
        err = self.stderr_text() or "(nothing on stderr)"
        return QemuFailed(f"{what} ({self.name} QEMU pid {self.pid}, {state}): {err}")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process by its PID if it still runs (not reaped yet)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S, grace_s: float = 1.0) -> None:
        """Stop the process by its PID: wait ``grace_s`` seconds at most for a clean exit (after QMP ``quit``),
        then SIGTERM, then SIGKILL; each wait bounded by ``timeout_s`` seconds. Safe to call more than once."""
        try:
            if self.proc.poll() is None and grace_s > 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=min(grace_s, timeout_s))
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is not None:
                _LIVE.pop(self.pid, None)

    def __enter__(self) -> QemuProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_socket(proc: QemuProcess, deadline: float) -> None:
    """Wait until ``proc``'s QMP socket exists (bounded by ``deadline``, a ``time.monotonic`` value); raises
    :class:`QemuFailed` with QEMU's stderr if it exits first or the deadline passes."""
    while not os.path.exists(proc.qmp_path):
        if proc.returncode() is not None:
            raise proc.failure("QEMU exited before its QMP socket was up")
        if time.monotonic() > deadline:
            raise proc.failure("QEMU's QMP socket did not appear in time")
        time.sleep(0.01)
