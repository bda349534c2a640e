"""The same migration run by a real QEMU, for comparison with the engine (the ``qemu`` runner).

- :func:`run_trial` (:mod:`~dsalab.qemu.runner`): a Trial on two QEMU processes, as a :class:`QemuResult`.
- :mod:`~dsalab.qemu.capabilities`: what a QEMU binary supports (probed, or recorded replies).
- :mod:`~dsalab.qemu.mapping`: a Trial mapped onto those capabilities, or :class:`QemuCannotHonour`.
- :mod:`~dsalab.qemu.process`: one QEMU process, stopped by its PID whatever happens.
- :mod:`~dsalab.qemu.result`: :class:`QemuResult` and the pure :func:`qemu_result`.
"""

from __future__ import annotations

from dsalab.qemu.capabilities import Capabilities, probe
from dsalab.qemu.mapping import UNLIMITED_BYTES_PER_S, MigrationPlan, QemuCannotHonour, plan
from dsalab.qemu.process import QEMU_BINARY, QemuFailed, QemuUnavailable, live_pids, qemu_version
from dsalab.qemu.result import THREAD_NAMES, QemuResult, qemu_result
from dsalab.qemu.runner import run_qemu_migration, run_trial

__all__ = [
    "QEMU_BINARY",
    "THREAD_NAMES",
    "UNLIMITED_BYTES_PER_S",
    "Capabilities",
    "MigrationPlan",
    "QemuCannotHonour",
    "QemuFailed",
    "QemuResult",
    "QemuUnavailable",
    "live_pids",
    "plan",
    "probe",
    "qemu_result",
    "qemu_version",
    "run_qemu_migration",
    "run_trial",
]
