"""The result of a QEMU migration: :class:`QemuResult` (a :class:`~dsalab.result.TrialResult` with QEMU's
version, accelerator, zero-page detection and raw ``query-migrate`` reply) and :func:`qemu_result`, which builds
one from the numbers QEMU reported (pure: tests build one from recorded numbers)."""

from __future__ import annotations

import dataclasses
import json
import math
import re

from dsalab.backends import Backend
from dsalab.result import TrialResult
from dsalab.threads import SOURCE_THREADS, cpu_sums
from dsalab.trial import Trial

#: QEMU's thread names (``-name ...,debug-threads=on``; QEMU >= 9.1 names them mig/..., older QEMU as the
#: seed's) -> the seed's names
THREAD_NAMES = [
    (re.compile(r"^mig/src/main$"), "live_migration"),
    (re.compile(r"^live_migration$"), "live_migration"),
    (re.compile(r"^mig/src/send_(\d+)$"), r"multifdsend_\1"),
    (re.compile(r"^multifdsend_(\d+)$"), r"multifdsend_\1"),
    (re.compile(r"^mig/dst/recv_(\d+)$"), r"multifdrecv_\1"),
    (re.compile(r"^multifdrecv_(\d+)$"), r"multifdrecv_\1"),
    # the DSA series' completion thread: "dsa_completion" up to v5, "qemu_dsa_completion" from v6 on (longer than
    # Linux's 15-character thread names: glibc refuses to set it, so such a build shows its creator's name;
    # one that truncates it shows "qemu_dsa_comple")
    (re.compile(r"^(qemu_)?dsa_completion$"), "dsa_completion"),
    (re.compile(r"^qemu_dsa_comple$"), "dsa_completion"),
]
#: zero-page detection modes in which a DSA device finds zero pages (offload counters unknown: QEMU has none)
DSA_MODES = ("multifd-dsa-accel", "dsa-accel")
#: bytes of a page's offset in a multifd packet (and of a page header on QEMU's main channel)
OFFSET_BYTES = 8
#: the fields QemuResult adds to TrialResult
QEMU_FIELDS = (
    "qemu_version",
    "accel",
    "zero_page_detection",
    "extra_zero_pages",
    "extra_normal_pages",
    "query_migrate",
    "migrate_parameters",
)


def _page_counts(trial: Trial, ram: dict, extra_zero: int, extra_normal: int, truth_normal: int | None):
    """(zero, normal, forced normal) pages of the guest from QEMU's ``ram`` counts, checked against the trial."""
    from dsalab.qemu.process import QemuFailed

    pages = trial.guest_bytes // trial.page_size
    zero = int(ram.get("duplicate", 0)) - extra_zero
    normal = int(ram.get("normal", 0)) - extra_normal
    blocks = (int(ram.get("total", 0)) - trial.guest_bytes) // trial.page_size
    said = (
        f"QEMU reported duplicate={ram.get('duplicate')}, normal={ram.get('normal')}, total={ram.get('total')} "
        f"bytes; its other RAM blocks were calibrated at {extra_zero} zero and {extra_normal} normal pages"
    )
    if extra_zero + extra_normal != blocks:
        raise QemuFailed(f"{said}, but this run's other RAM blocks hold {blocks} pages: the calibration is stale")
    if zero < 0 or normal < 0 or zero + normal != pages:
        raise QemuFailed(f"{said}: {zero} zero + {normal} normal pages is not the guest's {pages} pages")
    forced = 0
    if truth_normal is not None and trial.force_normal_ratio > 0:
        forced = normal - truth_normal
        if forced < 0:
            raise QemuFailed(f"{said}: fewer normal pages than the guest's {truth_normal}")
        zero, normal = zero + forced, truth_normal
    return zero, normal, forced


def seed_name(name: str) -> str | None:
    """The seed's name of QEMU thread ``name`` (``mig/src/send_0`` -> ``multifdsend_0``), None if unaccounted."""
    for pattern, repl in THREAD_NAMES:
        if pattern.match(name):
            return pattern.sub(repl, name)
    return None


@dataclasses.dataclass
class QemuResult(TrialResult):
    """A :class:`~dsalab.result.TrialResult` of the ``qemu`` backend: what QEMU's query-migrate said, with
    per-thread CPU (seed names) and the verification, plus QEMU's version, accelerator (``kvm`` or ``tcg``), how
    it found zero pages (``multifd``: its multifd threads; ``legacy``: its main migration thread, QEMU < 9.0),
    the pages its other RAM blocks (firmware, option ROMs, ACPI tables) added to its counts (taken off
    ``zero_pages`` and ``normal_pages``), its raw query-migrate reply and the parameters it ran with.

    It enters :func:`dsalab.results.build_dataset` like any result; :meth:`to_dataset` and :meth:`qemu_attrs`
    carry the QEMU fields as attributes. Caveats (what QEMU does not report): the split of sender CPU into
    detection and sendmsg (``detect_cpu_ms``, ``send_cpu_ms``: NaN), ``packets`` and ``iterations`` (-1, the
    dataset's "unknown"); where a DSA device finds zero pages (``zero_page_detection`` ``multifd-dsa-accel`` or
    ``dsa-accel``) ``pages_offloaded`` and ``fallback_pages`` are -1 (QEMU does not count them), otherwise 0; the
    VM is paused, so the guest dirties nothing. ``transferred_bytes`` is what the multifd channels carried
    (``multifd-bytes``: packet headers, page offsets, normal pages, as the engine counts) less QEMU's other RAM
    blocks' pages; on QEMU < 9.0, whose main channel carries the zero pages, QEMU's ``transferred`` less those
    pages (device state included). QEMU's raw figures stay in ``query_migrate``. ``max-bandwidth`` does not
    limit QEMU's final stop-and-copy phase (the engine limits every packet), so a bandwidth-limited point is
    not like for like: QEMU finishes sooner by what its last phase sends.
    """

    qemu_version: str = ""
    accel: str = ""
    zero_page_detection: str = ""
    extra_zero_pages: int = 0
    extra_normal_pages: int = 0
    query_migrate: dict = dataclasses.field(default_factory=dict)
    migrate_parameters: dict = dataclasses.field(default_factory=dict)

    def qemu_attrs(self) -> dict[str, str | int]:
        """The QEMU fields as flat, netCDF-safe attributes (``qemu_version``, ``qemu_accel``, ...)."""
        return {
            "qemu_version": self.qemu_version,
            "qemu_accel": self.accel,
            "qemu_zero_page_detection": self.zero_page_detection,
            "qemu_extra_zero_pages": self.extra_zero_pages,
            "qemu_extra_normal_pages": self.extra_normal_pages,
            "qemu_query_migrate": json.dumps(self.query_migrate, sort_keys=True),
            "qemu_migrate_parameters": json.dumps(self.migrate_parameters, sort_keys=True),
        }

    def base_dict(self) -> dict:
        """:meth:`to_dict` without the QEMU fields: what :meth:`TrialResult.from_dict` reads (a sweep's partial
        file)."""
        return {k: v for k, v in self.to_dict().items() if k not in QEMU_FIELDS}

    def to_dataset(self):
        """:meth:`TrialResult.to_dataset` with :meth:`qemu_attrs` as attributes."""
        ds = super().to_dataset()
        ds.attrs.update(self.qemu_attrs())
        return ds

    def table(self) -> str:
        """:meth:`TrialResult.table` and a line saying which QEMU ran it, how, and what its counts left out."""
        return (
            super().table()
            + f"\nQEMU {self.qemu_version}, accel {self.accel}, zero-page-detection {self.zero_page_detection}; "
            f"its other RAM blocks' {self.extra_zero_pages} zero and {self.extra_normal_pages} normal pages "
            "are left out of the page counts and transferred bytes"
        )


def qemu_result(
    trial: Trial,
    st: dict,
    cpu: dict[str, float],
    *,
    qemu_version: str,
    accel: str,
    mismatched: int,
    zero_page_detection: str = "multifd",
    extra_pages: tuple[int, int] | None = None,
    cores: int = 0,
    migrate_parameters: dict | None = None,
    truth_normal_pages: int | None = None,
) -> QemuResult:
    """The result of a completed QEMU migration from the numbers it reported: ``st`` is the final
    ``query-migrate`` reply, ``cpu`` maps seed thread names to CPU ms, ``mismatched`` counts destination pages that
    differ from the source, ``extra_pages`` (zero, normal) what QEMU's RAM blocks other than the guest's added
    to ``ram.duplicate`` and ``ram.normal`` (subtracted here and checked; None: QEMU's counts as they are),
    ``cores`` the CPUs QEMU could run on, ``migrate_parameters`` the source's ``query-migrate-parameters`` once
    set (what QEMU ran with), ``truth_normal_pages`` the guest's normal pages (pages QEMU sent as normal beyond
    them are ``forced_normal_pages``, counted as zero pages as the engine does; None: none forced). Raises
    :class:`~dsalab.qemu.QemuFailed` with QEMU's numbers when they are inconsistent with the trial's guest."""
    from dsalab.migration.counters import busy_threads

    ram = st["ram"]
    total_ms = float(st["total-time"])
    extra_zero, extra_normal = extra_pages or (0, 0)
    if extra_pages is None:  # not calibrated: QEMU's own counts, other RAM blocks included, unchecked
        zero, normal, forced = int(ram.get("duplicate", 0)), int(ram.get("normal", 0)), 0
    else:
        zero, normal, forced = _page_counts(trial, ram, extra_zero, extra_normal, truth_normal_pages)
    sums = cpu_sums(cpu)
    dsa = zero_page_detection in DSA_MODES
    extra_bytes = extra_normal * trial.page_size + (extra_zero + extra_normal) * OFFSET_BYTES
    channel_bytes = int(ram.get("multifd-bytes", 0)) if zero_page_detection != "legacy" else 0
    transferred = (channel_bytes or int(ram["transferred"])) - extra_bytes
    return QemuResult(
        trial=trial,
        backend=Backend.QEMU,
        total_time_ms=total_ms,
        setup_time_ms=float(st.get("setup-time", 0)),
        downtime_ms=float(st.get("downtime", 0)),
        throughput_mbps=float(ram["transferred"]) * 8 / max(total_ms, 1e-3) / 1e3,
        transferred_bytes=transferred,
        total_bytes=int(ram["total"]) - (extra_zero + extra_normal) * trial.page_size,
        zero_pages=zero,
        normal_pages=normal,
        forced_normal_pages=forced,
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
        pages_offloaded=-1 if dsa else 0,
        fallback_pages=-1 if dsa else 0,
        fallback_pages_by_reason={},
        queue_full_retries=0,
        page_faults=0,
        verified=mismatched == 0,
        mismatched_pages=int(mismatched),
        busy_threads=busy_threads(cpu, total_ms),
        cores=cores,
        qemu_version=qemu_version,
        accel=accel,
        zero_page_detection=zero_page_detection,
        extra_zero_pages=extra_zero,
        extra_normal_pages=extra_normal,
        query_migrate=st,
        migrate_parameters=dict(migrate_parameters or {}),
    )
