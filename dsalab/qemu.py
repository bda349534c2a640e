"""The same migration run by a real QEMU, for comparison with the engine.

Two QEMU processes on this machine (no guest OS: the VM stays paused, as a guest that does not write), the source
mapping the guest memory that :class:`~dsalab.migration.GuestMemory` filled (through its memfd), the destination
a memfd of ours, so that the destination can be compared with the source byte for byte afterwards. Migration
over TCP on 127.0.0.1 with multifd and ``zero-page-detection=multifd`` (QEMU >= 9.0 finds zero pages in its
multifd threads, as the engine does), driven over QMP with ``qemu.qmp``. Per-thread CPU is sampled from
``/proc/<pid>/task/*/schedstat`` while the migration runs (QEMU's multifd threads exit when it completes);
QEMU's thread names are mapped to the seed's (``mig/src/main`` -> ``live_migration``, ``mig/src/send_0`` ->
``multifdsend_0``, ``mig/dst/recv_0`` -> ``multifdrecv_0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import numpy as np

from dsalab import kernels
from dsalab.backends import Backend
from dsalab.errors import DsalabError, MigrationError
from dsalab.migration import accounting
from dsalab.migration.guest import GuestMemory, memfd_mapping
from dsalab.result import TrialResult
from dsalab.threads import SOURCE_THREADS, cpu_sums
from dsalab.trial import Trial

QEMU_BINARY = "qemu-system-x86_64"
#: max-bandwidth given to QEMU: far above what loopback carries (QEMU's own default caps at 128 MiB/s)
UNLIMITED_BYTES_PER_S = 1 << 40
THREAD_NAMES = [
    (re.compile(r"^mig/src/main$"), "live_migration"),
    (re.compile(r"^live_migration$"), "live_migration"),
    (re.compile(r"^mig/src/send_(\d+)$"), r"multifdsend_\1"),
    (re.compile(r"^multifdsend_(\d+)$"), r"multifdsend_\1"),
    (re.compile(r"^mig/dst/recv_(\d+)$"), r"multifdrecv_\1"),
    (re.compile(r"^multifdrecv_(\d+)$"), r"multifdrecv_\1"),
]


class QemuUnavailable(DsalabError):
    """No usable QEMU binary on this machine (install Debian's qemu-system-x86, >= 9.0 for multifd zero pages)."""


@dataclasses.dataclass
class QemuResult(TrialResult):
    """A :class:`~dsalab.result.TrialResult` of the ``qemu`` backend: what QEMU's query-migrate said, with
    per-thread CPU (seed names) and the verification, plus QEMU's version, accelerator and raw query-migrate reply.

    It enters :func:`dsalab.results.build_dataset` like any result. Caveats (what QEMU does not report): the
    split of sender CPU into detection and sendmsg (``detect_cpu_ms``, ``send_cpu_ms``: NaN), ``packets`` and
    ``iterations`` (-1, the dataset's "unknown"); no DSA device is used (device counters 0); the VM is paused, so
    the guest dirties nothing.
    """

    qemu_version: str = ""
    accel: str = ""
    query_migrate: dict = dataclasses.field(default_factory=dict)


def qemu_version(binary: str = QEMU_BINARY) -> tuple[int, int, int] | None:
    """QEMU's version, or None when it is not installed."""
    path = shutil.which(binary)
    if not path:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def _seed_name(name: str) -> str | None:
    for pattern, repl in THREAD_NAMES:
        if pattern.match(name):
            return pattern.sub(repl, name)
    return None


def _sample(pids: dict[int, str], seen: dict[tuple[int, int], tuple[str, int]]) -> None:
    for pid in pids:
        for tid, s in accounting.snapshot(pid).items():
            seen[(pid, tid)] = (s.name, s.runtime_ns)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(binary: str, accel: str, mem_path: str, size: int, qmp: str, incoming: bool) -> subprocess.Popen:
    cmd = [
        binary,
        "-name", "dsalab,debug-threads=on",
        "-machine", f"q35,accel={accel}",
        "-m", f"{size >> 20}M",
        "-object", f"memory-backend-file,id=mem,size={size},mem-path={mem_path},share=on",
        "-machine", "memory-backend=mem",
        "-nodefaults", "-display", "none", "-S",
        "-qmp", f"unix:{qmp},server=on,wait=off",
    ]  # fmt: skip
    if incoming:
        cmd += ["-incoming", "defer"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=())


async def _connect(qmp_path: str, proc: subprocess.Popen, deadline: float):
    from qemu.qmp import QMPClient

    client = QMPClient("dsalab")
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise MigrationError(f"QEMU exited before QMP was up (status {proc.returncode}): {err.strip()}")
        try:
            await client.connect(qmp_path)
            return client
        except (OSError, ConnectionError, Exception) as exc:  # qemu.qmp raises its own ConnectError
            if time.monotonic() > deadline:
                raise MigrationError(f"QMP at {qmp_path} did not answer: {exc}") from exc
            await asyncio.sleep(0.05)


async def _migrate(src, dst, procs, channels: int, timeout_s: float) -> tuple[dict, dict]:
    port = _free_port()
    for q in (src, dst):
        await q.execute("migrate-set-capabilities", {"capabilities": [{"capability": "multifd", "state": True}]})
        # QEMU's default max-bandwidth is 128 MiB/s; the engine has no limit unless asked: lift QEMU's too
        await q.execute(
            "migrate-set-parameters",
            {"multifd-channels": channels, "zero-page-detection": "multifd", "max-bandwidth": UNLIMITED_BYTES_PER_S},
        )
    await dst.execute("migrate-incoming", {"uri": f"tcp:127.0.0.1:{port}"})
    seen: dict[tuple[int, int], tuple[str, int]] = {}
    _sample(procs, seen)
    before = dict(seen)
    await src.execute("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
    deadline = time.monotonic() + timeout_s
    while True:
        _sample(procs, seen)
        st = await src.execute("query-migrate")
        if st.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            raise MigrationError(f"QEMU migration did not complete within {timeout_s} s (status {st.get('status')})")
        await asyncio.sleep(0.01)
    # wait for the destination to finish loading
    while (await dst.execute("query-status")).get("status") == "inmigrate":
        if time.monotonic() > deadline:
            raise MigrationError("the destination QEMU did not finish loading")
        await asyncio.sleep(0.01)
    cpu: dict[str, float] = {}
    for key, (name, runtime) in seen.items():
        seed = _seed_name(name)
        if seed is None:
            continue
        base = before.get(key, (name, 0))[1]
        cpu[seed] = cpu.get(seed, 0.0) + (runtime - base) / 1e6
    return st, cpu


def qemu_result(
    trial: Trial, st: dict, cpu: dict[str, float], *, qemu_version: str, accel: str, mismatched: int
) -> QemuResult:
    """The result of a completed QEMU migration from the numbers it reported: ``st`` is the final
    ``query-migrate`` reply, ``cpu`` maps seed thread names to CPU ms, ``mismatched`` counts destination pages that
    differ from the source. Pure: no QEMU needed (tests build one from recorded numbers)."""
    ram = st["ram"]
    total_ms = float(st["total-time"])
    zero, normal = int(ram.get("duplicate", 0)), int(ram.get("normal", 0))
    sums = cpu_sums(cpu)
    return QemuResult(
        trial=trial,
        backend=Backend.QEMU,
        total_time_ms=total_ms,
        setup_time_ms=float(st.get("setup-time", 0)),
        downtime_ms=float(st.get("downtime", 0)),
        throughput_mbps=float(ram["transferred"]) * 8 / max(total_ms, 1e-3) / 1e3,
        transferred_bytes=int(ram["transferred"]),
        total_bytes=int(ram["total"]),
        zero_pages=zero,
        normal_pages=normal,
        forced_normal_pages=0,
        pages_sent=zero + normal,
        iterations=-1,
        dirty_sync_count=int(ram.get("dirty-sync-count", -1)),
        dirtied_pages=0,
        converged=st.get("status") == "completed",
        thread_cpu_ms=dict(cpu),
        host_cpu_ms=sums.host_cpu_ms,
        destination_cpu_ms=sums.destination_cpu_ms,
        device_cpu_ms=sums.device_cpu_ms,
        device_busy_ms=0.0,
        guest_cpu_ms=sums.guest_cpu_ms,
        detect_cpu_ms=math.nan,
        send_cpu_ms=math.nan,
        sender_cpu_ms=sum(v for n, v in cpu.items() if n.startswith("multifdsend_") and SOURCE_THREADS.match(n)),
        packets=-1,
        pages_offloaded=0,
        fallback_pages=0,
        fallback_pages_by_reason={},
        queue_full_retries=0,
        page_faults=0,
        verified=mismatched == 0,
        mismatched_pages=int(mismatched),
        qemu_version=qemu_version,
        accel=accel,
        query_migrate=st,
    )


def run_qemu_migration(
    guest: GuestMemory,
    *,
    channels: int = 2,
    binary: str = QEMU_BINARY,
    accel: str = "auto",
    timeout_s: float = 600.0,
) -> QemuResult:
    """Migrate ``guest`` (made with ``shared=True``) between two QEMU processes; see the module docstring."""
    version = qemu_version(binary)
    if version is None:
        raise QemuUnavailable(f"{binary} is not installed (Debian: apt-get install qemu-system-x86)")
    if version < (9, 0, 0):
        raise QemuUnavailable(
            f"{binary} is {'.'.join(map(str, version))}: zero-page-detection=multifd needs QEMU >= 9.0 "
            "(Debian bookworm-backports has 10)"
        )
    if accel == "auto":
        accel = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"
    size = guest.guest_bytes
    dst_fd, dst_map = memfd_mapping(size, "dsalab-qemu-destination")
    tmp = tempfile.mkdtemp(prefix="dsalab-qemu-")
    procs: list[subprocess.Popen] = []
    try:
        src_qmp, dst_qmp = os.path.join(tmp, "src.qmp"), os.path.join(tmp, "dst.qmp")
        dst_path = f"/proc/{os.getpid()}/fd/{dst_fd}"
        procs.append(_start(binary, accel, dst_path, size, dst_qmp, incoming=True))
        procs.append(_start(binary, accel, guest.memfd_path, size, src_qmp, incoming=False))

        async def drive():
            deadline = time.monotonic() + 60
            dst = await _connect(dst_qmp, procs[0], deadline)
            src = await _connect(src_qmp, procs[1], deadline)
            try:
                return await _migrate(src, dst, {procs[1].pid: "src", procs[0].pid: "dst"}, channels, timeout_s)
            finally:
                for q in (src, dst):
                    with contextlib.suppress(Exception):
                        await q.execute("quit")
                    with contextlib.suppress(Exception):
                        await q.disconnect()

        st, cpu = asyncio.run(drive())
        if st.get("status") != "completed":
            raise MigrationError(f"QEMU migration {st.get('status')}: {st.get('error-desc', '')}")
        dst = np.frombuffer(dst_map, dtype=np.uint8)[:size]
        mismatched = int((~kernels.compare_pages(guest.array, dst, guest.page_size, kernel="native")).sum())
        del dst
        trial = Trial(
            guest_bytes=size,
            page_size=guest.page_size,
            normal_ratio=guest.normal_ratio,
            channels=channels,
            detector=Backend.CPU_NATIVE,  # QEMU finds zero pages on the CPU, in its multifd threads
            seed=guest.seed,
        )
        return qemu_result(trial, st, cpu, qemu_version=".".join(map(str, version)), accel=accel, mismatched=mismatched)
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=10)
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
            if p.stderr:
                p.stderr.close()
        with contextlib.suppress(BufferError):
            dst_map.close()
        os.close(dst_fd)
        shutil.rmtree(tmp, ignore_errors=True)
