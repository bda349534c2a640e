"""dsalab: study Intel DSA zero-page offload in QEMU-style multifd live migration.

Import the pieces you need: :mod:`dsalab.kernels` (CPU baselines), :mod:`dsalab.devices` and
:mod:`dsalab.offload` (the DSA submission layer), :mod:`dsalab.migration` (the multifd engine),
:mod:`dsalab.sweep` and :mod:`dsalab.results` (datasets), :mod:`dsalab.plots` and :mod:`dsalab.widgets`.
"""

from __future__ import annotations

import importlib.metadata

from dsalab.errors import DsalabError

try:
    __version__ = importlib.metadata.version("dsalab")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0+unknown"


def info() -> dict[str, object]:
    """Provenance of this machine and build: versions, CPU model and flags, cores, memory, kernel, native build
    facts, git commit, DSA devices and work queues (see :func:`dsalab.machine.info`)."""
    from dsalab import machine

    return machine.info()


__all__ = ["DsalabError", "__version__", "info"]
