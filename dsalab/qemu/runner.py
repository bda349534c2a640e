"""A Trial migrated by two real QEMU processes: :func:`run_trial` (and the older :func:`run_qemu_migration`).

The source QEMU maps the guest memory that :class:`~dsalab.migration.GuestMemory` filled (``shared=True``:
through its memfd, seeded as the engine's, so page truth is the same), the destination a memfd of ours, so the
destination is compared with the source byte for byte afterwards. Both VMs stay paused (no guest OS: a guest that
writes nothing). Migration over TCP on 127.0.0.1 with multifd, driven over QMP (``qemu.qmp``), with what
:func:`dsalab.qemu.mapping.plan` derived from the Trial. Per-thread CPU is sampled from
``/proc/<pid>/task/*/schedstat`` while it runs (QEMU's multifd threads exit when it completes) and mapped to the
seed's names. QEMU's page counts include its other RAM blocks (firmware, option ROMs, ACPI tables): what they
add is measured once per binary, accelerator and guest size by migrating an all-zero guest of the same size
(:func:`extra_pages`) and taken off. :func:`run_trial` works inside a running event loop (Jupyter) too.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import numpy as np

from dsalab import kernels
from dsalab.errors import InvalidArgument
from dsalab.migration import accounting
from dsalab.migration.guest import GuestMemory, memory_shortfall
from dsalab.qemu import capabilities, mapping, qmp
from dsalab.qemu.process import STOP_TIMEOUT_S, QemuFailed, QemuProcess, accelerator, find_binary, stop_all
from dsalab.qemu.result import QemuResult, qemu_result, seed_name
from dsalab.trial import Trial
from dsalab.units import format_bytes

#: seconds QEMU has to come up and answer QMP, plus per GiB of guest (prealloc=on faults it all in first)
START_TIMEOUT_S, START_S_PER_GIB = 30.0, 10.0
#: seconds a migration may take at most, plus per GiB of guest
MIGRATION_TIMEOUT_S, MIGRATION_S_PER_GIB = 120.0, 60.0
#: seconds between two query-migrate polls
POLL_S = 0.01
#: seconds between two samples of the QEMU threads' CPU time, at first and at most: 1% of the time elapsed
#: within these bounds (a thread's CPU after its last sample is lost when it exits, as QEMU's multifd threads do
#: when the migration completes; a sample of two QEMUs reads ~20 files, ~0.7 ms of CPU)
SAMPLE_S, SAMPLE_MAX_S = 0.001, 0.02

_EXTRA: dict[tuple, tuple[int, int]] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _machine_args(accel: str, size: int, mem_path: str, prealloc: bool) -> list[str]:
    return [
        "-machine", f"q35,accel={accel}",
        "-m", f"{size}B",
        "-object",
        f"memory-backend-file,id=mem,size={size},mem-path={mem_path},share=on,prealloc={'on' if prealloc else 'off'}",
        "-machine", "memory-backend=mem",
    ]  # fmt: skip


def _sample(procs: list[QemuProcess], seen: dict[tuple[int, int], tuple[str, int]]) -> None:
    for p in procs:
        for tid, s in accounting.snapshot(p.pid).items():
            seen[(p.pid, tid)] = (s.name, s.runtime_ns)


class _Sampler:
    """Samples the threads of ``procs`` in a thread of its own, every 1% of the time elapsed (from
    :data:`SAMPLE_S` to :data:`SAMPLE_MAX_S` seconds: what is lost of a thread that exits stays within ~1% of
    the migration's time) until :meth:`stop` (which wakes it at once and joins it, bounded)."""

    def __init__(self, procs: list[QemuProcess], seen: dict[tuple[int, int], tuple[str, int]]) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(procs, seen), name="dsalab-qemu-sampler", daemon=True)
        self._thread.start()

    def _run(self, procs, seen) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            _sample(procs, seen)
            self._stop.wait(min(SAMPLE_MAX_S, max(SAMPLE_S, (time.monotonic() - t0) / 100)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)


async def _wait_for_migration(qs, src: QemuProcess, dst: QemuProcess, port: int, trial: Trial, gib: float) -> dict:
    """Start the migration and poll ``query-migrate`` until it ends; its last reply. Bounded by the overall
    deadline and by ``trial.io_timeout_ms`` without progress; a QEMU that exits meanwhile is a failure."""
    await qmp.call(qs, src, "migrate", {"uri": f"tcp:127.0.0.1:{port}"})
    deadline = time.monotonic() + MIGRATION_TIMEOUT_S + MIGRATION_S_PER_GIB * gib
    progress, last_move = -1, time.monotonic()
    while True:
        st = await qmp.call(qs, src, "query-migrate")
        if st.get("status") in ("completed", "failed", "cancelled"):
            return st
        moved = int(st.get("ram", {}).get("transferred", 0))
        now = time.monotonic()
        if moved != progress:
            progress, last_move = moved, now
        if now - last_move > trial.io_timeout_ms / 1e3:
            raise src.failure(f"no migration progress for io_timeout_ms={trial.io_timeout_ms} (status {st})")
        if now > deadline or dst.returncode() is not None:
            raise (dst if dst.returncode() is not None else src).failure(
                f"the migration did not complete (status {st.get('status')})"
            )
        await asyncio.sleep(POLL_S)


async def _drive(src: QemuProcess, dst: QemuProcess, plan: mapping.MigrationPlan, trial: Trial, gib: float):
    """Configure both QEMUs, migrate, wait for the destination to load; (final query-migrate, CPU ms by seed
    thread name, the source's parameters as QEMU reports them once set)."""
    deadline = time.monotonic() + START_TIMEOUT_S + START_S_PER_GIB * gib
    qd = await qmp.connect(dst, deadline)
    qs = None
    try:
        qs = await qmp.connect(src, deadline)
        for q, p, params in ((qs, src, plan.parameters), (qd, dst, plan.destination_parameters)):
            await qmp.call(q, p, "migrate-set-capabilities", {"capabilities": plan.capabilities})
            await qmp.call(q, p, "migrate-set-parameters", params)
        applied = await qmp.call(qs, src, "query-migrate-parameters")
        port = _free_port()
        await qmp.call(qd, dst, "migrate-incoming", {"uri": f"tcp:127.0.0.1:{port}"})
        seen: dict[tuple[int, int], tuple[str, int]] = {}
        _sample([src, dst], seen)
        before = dict(seen)
        sampler = _Sampler([src, dst], seen)
        try:
            st = await _wait_for_migration(qs, src, dst, port, trial, gib)
        finally:
            sampler.stop()
        _sample([src, dst], seen)
        if st.get("status") != "completed":
            err = st.get("error-desc", "")
            with contextlib.suppress(subprocess.TimeoutExpired):  # let the destination say why, bounded
                dst.proc.wait(timeout=2.0)
            raise src.failure(f"QEMU migration {st.get('status')}: {err}; destination: {dst.stderr_text()}")
        deadline = time.monotonic() + MIGRATION_TIMEOUT_S + MIGRATION_S_PER_GIB * gib
        while True:  # the destination finishes loading after the source completes
            if dst.returncode() is not None:
                raise dst.failure("the destination QEMU exited while loading the migration")
            if (await qmp.call(qd, dst, "query-status")).get("status") != "inmigrate":
                break
            if time.monotonic() > deadline:
                raise dst.failure("the destination QEMU did not finish loading in time")
            await asyncio.sleep(POLL_S)
    finally:
        for q, p in ((qs, src), (qd, dst)):
            if q is not None:
                await qmp.close(q, p)
    return st, _cpu_by_seed_name(seen, before, dst.pid), applied


def _cpu_by_seed_name(seen, before, dst_pid: int) -> dict[str, float]:
    """CPU ms by seed thread name from the samples ``seen`` less the baseline ``before``, both (pid, tid) ->
    (name, runtime ns). A baseline counts only for the same thread name (a TID reused by a thread that started
    later starts from 0). The destination's main thread (TID = PID) is ``incoming_main``: it loads the main
    channel (device state; on QEMU < 9.0 every zero page)."""
    cpu: dict[str, float] = {}
    for key, (name, runtime) in seen.items():
        seed = "incoming_main" if key == (dst_pid, dst_pid) else seed_name(name)
        if seed is None:
            continue
        base_name, base = before.get(key, (name, 0))
        cpu[seed] = cpu.get(seed, 0.0) + (runtime - (base if base_name == name else 0)) / 1e6
    return cpu


def _migrate(binary: str, accel: str, trial: Trial, plan, src_path: str, size: int, inspect=None, dst_bytes=None):
    """Two QEMUs migrate the memory at ``src_path`` into a new memfd; (query-migrate, CPU ms, the source's
    query-migrate-parameters after they were set, ``inspect(destination mapping)`` or None). The destination
    memfd and mapping are closed here, and every QEMU started here is stopped here, whatever happens.
    ``dst_bytes`` (tests only) gives the destination another size, which QEMU refuses."""
    tmp = tempfile.mkdtemp(prefix="dsalab-qemu-")
    procs: list[QemuProcess] = []
    dst_fd, dst_map = -1, None
    try:
        dst_fd = os.memfd_create("dsalab-qemu-destination", os.MFD_CLOEXEC)
        os.ftruncate(dst_fd, dst_bytes or size)
        dst_map = mmap.mmap(dst_fd, dst_bytes or size, flags=mmap.MAP_SHARED)
        dst_args = _machine_args(accel, dst_bytes or size, f"/proc/{os.getpid()}/fd/{dst_fd}", trial.prealloc)
        procs.append(QemuProcess(binary, [*dst_args, "-incoming", "defer"], name="dst", workdir=tmp))
        src_args = _machine_args(accel, size, src_path, trial.prealloc)
        procs.append(QemuProcess(binary, src_args, name="src", workdir=tmp))
        st, cpu, applied = asyncio.run(_drive(procs[1], procs[0], plan, trial, size / (1 << 30)))
        stop_all(procs)
        return st, cpu, applied, (inspect(dst_map) if inspect is not None else None)
    finally:
        try:
            stop_all(procs)
        finally:
            if dst_map is not None:
                with contextlib.suppress(BufferError):
                    dst_map.close()
            if dst_fd >= 0:
                os.close(dst_fd)
            shutil.rmtree(tmp, ignore_errors=True)


def calibration_trial(trial: Trial) -> Trial:
    """The trial the page-count calibration runs: ``trial`` with no forced normal pages, no bandwidth limit and a
    cold destination (page counts depend on none of them)."""
    return trial.replace(force_normal_ratio=0.0, max_bandwidth_bytes=0, prealloc=False)


def binary_identity(binary: str, caps: capabilities.Capabilities) -> tuple:
    """What tells two QEMU binaries apart: real path, modification time (ns), size, version and package."""
    real = os.path.realpath(binary)
    st = os.stat(real)
    return (real, st.st_mtime_ns, st.st_size, caps.version, caps.package)


def extra_pages(binary: str, accel: str, trial: Trial, caps: capabilities.Capabilities) -> tuple[int, int]:
    """(zero, normal) pages QEMU's RAM blocks other than the guest's add to its counts: its counts when it
    migrates an all-zero guest of ``trial.guest_bytes`` (a fresh memfd; :func:`calibration_trial`) less that
    guest's pages; measured once per binary (:func:`binary_identity`), accelerator, guest size, page size and
    zero-page detection, and kept for this process. Raises :class:`QemuFailed` if the counts are impossible."""
    cal = calibration_trial(trial)
    plan = mapping.plan(cal, caps)
    key = (*binary_identity(binary, caps), accel, trial.guest_bytes, trial.page_size, plan.zero_page_detection)
    if key not in _EXTRA:
        zero_fd = os.memfd_create("dsalab-qemu-zero-guest", os.MFD_CLOEXEC)
        try:
            os.ftruncate(zero_fd, trial.guest_bytes)
            zero_path = f"/proc/{os.getpid()}/fd/{zero_fd}"
            st, _, _, _ = _migrate(binary, accel, cal, plan, zero_path, trial.guest_bytes)
        finally:
            os.close(zero_fd)
        ram = st["ram"]
        zero, normal = int(ram["duplicate"]) - trial.guest_bytes // trial.page_size, int(ram["normal"])
        blocks = (int(ram["total"]) - trial.guest_bytes) // trial.page_size
        if zero < 0 or normal < 0 or zero + normal != blocks:
            raise QemuFailed(
                f"QEMU's counts of an all-zero {trial.guest_bytes}-byte guest are impossible: duplicate="
                f"{ram['duplicate']}, normal={ram['normal']}, total={ram['total']} bytes (expected "
                f"{trial.guest_bytes // trial.page_size} guest zero pages plus {blocks} pages of other RAM blocks)"
            )
        _EXTRA[key] = (zero, normal)
    return _EXTRA[key]


def trial_bound_s(trial: Trial) -> float:
    """Seconds a whole :func:`run_trial` may take at most: the probe, then two migrations (calibration and trial),
    each with its start and migration deadlines and the stops (every wait inside has its own bound)."""
    gib = trial.guest_bytes / (1 << 30)
    one = START_TIMEOUT_S + START_S_PER_GIB * gib + 2 * (MIGRATION_TIMEOUT_S + MIGRATION_S_PER_GIB * gib)
    return capabilities.PROBE_TIMEOUT_S + 2 * one + 6 * STOP_TIMEOUT_S


def run_trial(trial: Trial, *, qemu: str | None = None, guest: GuestMemory | None = None) -> QemuResult:
    """Run ``trial`` on two real QEMU processes of binary ``qemu`` (a path, or None: ``qemu-system-x86_64`` on
    PATH) and return its :class:`~dsalab.qemu.QemuResult` (backend ``qemu``); see the module docstring.

    ``guest``: the guest memory to migrate (made with ``shared=True`` and the trial's size, ratio and seed; by
    default made here). Raises :class:`~dsalab.qemu.QemuUnavailable` (no binary),
    :class:`~dsalab.qemu.QemuCannotHonour` (a field this QEMU cannot honour, named with the QEMU version) or
    :class:`~dsalab.qemu.QemuFailed` (QEMU did not start, or the migration failed: with QEMU's own message).
    Callable inside a running event loop (a Jupyter cell): it then runs in a thread of its own, joined within
    :func:`trial_bound_s`."""
    return qmp.outside_running_loop(_run_trial, trial, qemu, guest, bound_s=trial_bound_s(trial), what="run_trial")


def _run_trial(trial: Trial, qemu: str | None, guest: GuestMemory | None) -> QemuResult:
    binary = find_binary(qemu)
    caps = capabilities.probe(binary)
    plan = mapping.plan(trial, caps)
    short = memory_shortfall(3 * trial.guest_bytes)
    if short:
        raise InvalidArgument(
            f"Trial field guest_bytes={trial.guest_bytes} ({format_bytes(trial.guest_bytes)}) is too large for the "
            f"qemu runner here: source, destination and the all-zero calibration guest together {short}"
        )
    own = guest is None
    if not own:
        given = (guest.guest_bytes, guest.page_size, guest.normal_ratio, guest.seed)
        if given != (trial.guest_bytes, trial.page_size, trial.normal_ratio, trial.seed):
            raise InvalidArgument(
                f"guest={guest!r} does not match the trial: allowed is a guest of guest_bytes={trial.guest_bytes}, "
                f"page_size={trial.page_size}, normal_ratio={trial.normal_ratio}, seed={trial.seed}"
            )
    accel = accelerator()
    extra = extra_pages(binary, accel, trial, caps)
    try:
        if own:
            guest = GuestMemory(
                trial.guest_bytes,
                normal_ratio=trial.normal_ratio,
                seed=trial.seed,
                page_size=trial.page_size,
                shared=True,
            )
        st, cpu, applied, mismatched = _migrate(
            binary, accel, trial, plan, guest.memfd_path, trial.guest_bytes, inspect=lambda m: _compare(guest, m)
        )
        truth_normal = guest.normal_pages
    finally:
        if own and guest is not None:
            guest.close()
    return qemu_result(
        trial,
        st,
        cpu,
        qemu_version=".".join(map(str, caps.version)),
        accel=accel,
        mismatched=mismatched,
        zero_page_detection=plan.zero_page_detection,
        extra_pages=extra,
        cores=len(os.sched_getaffinity(0)),
        migrate_parameters=applied,
        truth_normal_pages=truth_normal,
    )


def _compare(guest: GuestMemory, dst_map) -> int:
    """Destination pages that differ from the guest's (byte for byte)."""
    dst = np.frombuffer(dst_map, dtype=np.uint8)[: guest.guest_bytes]
    try:
        return int((~kernels.compare_pages(guest.array, dst, guest.page_size, kernel="native")).sum())
    finally:
        del dst


def run_qemu_migration(
    guest: GuestMemory, *, channels: int = 2, binary: str | None = None, prealloc: bool = True
) -> QemuResult:
    """Migrate ``guest`` (made with ``shared=True``) between two QEMU processes with ``channels`` multifd
    channels: :func:`run_trial` of the matching Trial (detector ``cpu-native``: QEMU finds zero pages on the CPU)."""
    trial = Trial(
        guest_bytes=guest.guest_bytes,
        page_size=guest.page_size,
        normal_ratio=guest.normal_ratio,
        channels=channels,
        detector="cpu-native",
        seed=guest.seed,
        prealloc=prealloc,
    )
    return run_trial(trial, qemu=binary, guest=guest)
